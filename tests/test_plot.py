"""plot.py draws from run and sweep directories alone: synthetic directories written here, no engine."""
from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vfedsim.errors import ScenarioError
from vfedsim.plot import plot_directory, plot_link_budget, plot_run, plot_sweep, tasks_in

TASKS = ("maneuver", "longitudinal", "leader")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rounds_table(n_rounds: int = 4, *, seed: int = 0, bandwidth_hz: float = 1e6, tasks=TASKS) -> pd.DataFrame:
    """A rounds.csv as the recorder writes it: row 0 is the pretrained model."""
    rng = np.random.default_rng(seed)
    rows = []
    cum_up = cum_down = 0
    for r in range(n_rounds + 1):
        up, down = (0, 0) if r == 0 else (40_000 * 4, 40_000 * 4)
        cum_up, cum_down = cum_up + up, cum_down + down
        row = {"round": r, "sim_time_s": 17.5 * r, "bytes_up": up, "bytes_down": down, "cum_bytes_up": cum_up,
               "cum_bytes_down": cum_down, "clients_selected": 0 if r == 0 else 4,
               "clients_arrived": 0 if r == 0 else 3, "clients_dropped": 0 if r == 0 else 1}
        gain = min(1.0, bandwidth_hz / 1e6)
        for i, task in enumerate(tasks):
            acc = 0.4 + 0.05 * i + 0.06 * r * gain + 0.01 * rng.standard_normal()
            row[f"{task}.accuracy"] = acc
            row[f"{task}.macro_f1"] = acc - 0.08
            row[f"{task}.balanced_accuracy"] = acc - 0.03
            row[f"{task}.loss"] = 1.2 - acc
        rows.append(row)
    return pd.DataFrame(rows)


def write_run_dir(path: Path, *, seed: int = 0, bandwidth_hz: float = 1e6, n_rounds: int = 4) -> Path:
    path.mkdir(parents=True)
    rounds_table(n_rounds, seed=seed, bandwidth_hz=bandwidth_hz).to_csv(path / "rounds.csv", index=False)
    (path / "config.yaml").write_text(yaml.safe_dump({"name": "synthetic", "seed": seed}))
    return path


def write_sweep_dir(path: Path, *, grid: dict, seeds=(0, 1), name: str = "synthetic-sweep") -> Path:
    """A sweep directory with results.csv, rounds.csv and experiment.yaml like run_sweep writes."""
    path.mkdir(parents=True)
    results, all_rounds = [], []
    keys = list(grid)
    for combo in itertools.product(*grid.values()):
        point = dict(zip(keys, combo))
        for seed in seeds:
            bw = point.get("world.channel.bandwidth_hz", 1e6)
            bonus = 1.0 if point.get("strategy.selection.name") == "coverage" else 0.8
            rounds = rounds_table(3, seed=seed, bandwidth_hz=bw * bonus)
            ident = {"point_id": "p", **point, "seed": seed}
            results.append({**ident, "run_dir": "runs/x", **rounds.iloc[-1].to_dict()})
            all_rounds.append(rounds.assign(**ident))
    pd.DataFrame(results).to_csv(path / "results.csv", index=False)
    pd.concat(all_rounds).to_csv(path / "rounds.csv", index=False)
    (path / "experiment.yaml").write_text(yaml.safe_dump(
        {"name": name, "base": "/x/tiny.yaml", "set": [], "grid": grid, "seeds": list(seeds)}, sort_keys=False))
    return path


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000, path


# ---------------------------------------------------------------------------------------------- runs
def test_plot_run_writes_both_figures(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run")
    paths = plot_run(run_dir)
    assert [p.name for p in paths] == ["accuracy_vs_time.png", "accuracy_vs_uplink_bytes.png"]
    for p in paths:
        assert p.parent == run_dir / "plots"
        assert_png(p)
    assert not [p for p in (run_dir / "plots").iterdir() if p.name.startswith(".")], "temporary files left"


def test_plot_run_with_only_the_pretrained_row(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run", n_rounds=0)
    for p in plot_run(run_dir):
        assert_png(p)


def test_plot_run_without_rounds_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not a run directory"):
        plot_run(tmp_path)


def test_plot_does_not_import_the_engine_or_torch(tmp_path: Path) -> None:
    import subprocess

    run_dir = write_run_dir(tmp_path / "run")
    code = ("import sys; from vfedsim.plot import plot_run; plot_run(sys.argv[1]); "
            "bad = [m for m in ('torch', 'vfedsim.engine', 'simpy') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_tasks_in() -> None:
    assert tasks_in(["round", "a.accuracy", "a.loss", "b.accuracy"]) == ["a", "b"]
    assert tasks_in(["a.accuracy", "a.loss"], "loss") == ["a"]


# -------------------------------------------------------------------------------------------- sweeps
GRID = {"world.channel.bandwidth_hz": [5e4, 2.5e5, 1e6, 5e6], "strategy.selection.name": ["random", "coverage"]}


def test_plot_sweep_accuracy_vs_bandwidth(tmp_path: Path) -> None:
    sweep = write_sweep_dir(tmp_path / "sweep", grid=GRID)
    paths = plot_sweep(sweep)
    assert [p.name for p in paths] == ["accuracy_vs_bandwidth.png"]
    assert_png(paths[0])


def test_plot_sweep_without_the_hue_key(tmp_path: Path) -> None:
    sweep = write_sweep_dir(tmp_path / "sweep", grid={"world.channel.bandwidth_hz": [1e5, 1e6]}, seeds=(0,))
    assert_png(plot_sweep(sweep)[0])


def test_plot_sweep_other_metric_and_categorical_x(tmp_path: Path) -> None:
    sweep = write_sweep_dir(tmp_path / "sweep", grid=GRID)
    paths = plot_sweep(sweep, x="strategy.selection.name", hue="world.channel.bandwidth_hz", metric="macro_f1")
    assert [p.name for p in paths] == ["macro_f1_vs_selection.png"]
    assert_png(paths[0])


def test_plot_sweep_extra_varying_key_splits_lines(tmp_path: Path) -> None:
    grid = {**GRID, "strategy.rounds": [2, 4]}
    sweep = write_sweep_dir(tmp_path / "sweep", grid=grid, seeds=(0,))
    assert_png(plot_sweep(sweep)[0])


@pytest.mark.parametrize("kwargs, key", [({"x": "world.road.length_m"}, "x"), ({"hue": "nope"}, "hue"),
                                         ({"metric": "acuracy"}, "metric")])
def test_plot_sweep_bad_keys(tmp_path: Path, kwargs: dict, key: str) -> None:
    sweep = write_sweep_dir(tmp_path / "sweep", grid=GRID)
    with pytest.raises(ScenarioError) as info:
        plot_sweep(sweep, **kwargs)
    assert info.value.key_path == key
    assert "allowed" in str(info.value)


def test_plot_directory_dispatches(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run")
    assert [p.name for p in plot_directory(run_dir)] == ["accuracy_vs_time.png", "accuracy_vs_uplink_bytes.png"]
    sweep = write_sweep_dir(tmp_path / "sweep", grid={"strategy.rounds": [1, 2]}, seeds=(0,))
    assert [p.name for p in plot_directory(sweep)] == ["accuracy_vs_rounds.png"]  # first grid key as x
    with pytest.raises(ScenarioError, match="neither a run directory"):
        plot_directory(tmp_path / "run" / "plots")


def test_plot_link_budget(tmp_path: Path) -> None:
    d = np.array([10.0, 100.0, 1000.0])
    budget = {"distance_m": d, "path_loss_db": 60 + 30 * np.log10(d), "snr_db": 40 - 30 * np.log10(d / 10),
              "rate_bps": np.array([6e7, 2e7, 0.0])}
    assert_png(plot_link_budget(budget, tmp_path / "lb.png", title="t", min_snr_db=0.0))


def test_unevaluated_rounds_are_skipped_not_drawn_as_gaps(tmp_path):
    import numpy as np
    import pandas as pd

    from vfedsim.plot import _metric_figure

    rounds = pd.DataFrame({"round": [0, 1, 2, 3], "sim_time_s": [0.0, 1.0, 2.0, 3.0],
                           "maneuver.accuracy": [0.5, np.nan, 0.7, np.nan]})
    fig = _metric_figure(rounds, ["maneuver"], x="sim_time_s", scale=1.0, xlabel="t", title="t")
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [0.0, 2.0] and list(line.get_ydata()) == [0.5, 0.7]


# ------------------------------------------------------------------------ sweeps: curves and tables
STRAT = "strategy.name"
# per (strategy, seed): sim_time_s and mean accuracy of each rounds.csv row (NaN: a row not evaluated)
CURVES = {
    ("sync", 0): ([0.0, 10.0, 20.0], [0.70, 0.72, 0.76]),
    ("sync", 1): ([0.0, 10.0, 20.0], [0.70, 0.71, 0.72]),          # never reaches 0.70 + 0.03
    ("async", 0): ([0.0, 4.0, 8.0, 12.0], [0.70, 0.74, 0.75, 0.77]),
    ("async", 1): ([0.0, 5.0, 9.0], [0.70, np.nan, 0.80]),         # an unevaluated row, skipped
}
SUMMARIES = {
    ("sync", 0): {"drops_by_cause": {"deadline": 2}, "jain_fairness_selected": 0.5,
                  "clients_arrived_total": 14, "clients_selected_total": 16, "bytes_up_total": 2_000_000},
    ("sync", 1): {"drops_by_cause": {"deadline": 4, "left_coverage": 1}, "jain_fairness_selected": 0.3,
                  "clients_arrived_total": 11, "clients_selected_total": 16, "bytes_up_total": 1_000_000},
    ("async", 0): {"drops_by_cause": {"cancelled": 3}, "jain_fairness_selected": 0.2,
                   "clients_arrived_total": 12, "clients_selected_total": 15, "bytes_up_total": 3_000_000},
    ("async", 1): {"drops_by_cause": {}, "jain_fairness_selected": 0.4,
                   "clients_arrived_total": 8, "clients_selected_total": 8, "bytes_up_total": 3_000_000},
}


def curve_rounds(times, accs) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame({
        "round": range(n), "sim_time_s": times, "bytes_up": [0] + [100_000] * (n - 1),
        "cum_bytes_up": [100_000 * r for r in range(n)], "clients_selected": [0] + [4] * (n - 1),
        "clients_arrived": [0] + [3] * (n - 1), "clients_dropped": [0] + [1] * (n - 1),
        "maneuver.accuracy": accs, "maneuver.macro_f1": [a - 0.1 for a in accs],
        "mean.accuracy": accs, "mean.macro_f1": [a - 0.1 for a in accs]})


def write_strategy_sweep(path: Path, *, summaries: bool = True) -> Path:
    """A sweep over strategy.name with run directories (rounds.csv, summary.json) like run_sweep leaves."""
    path.mkdir(parents=True)
    results, all_rounds = [], []
    for (strategy, seed), (times, accs) in CURVES.items():
        rounds = curve_rounds(times, accs)
        run_dir = path / "runs" / f"strategy-{strategy}-seed{seed}"
        run_dir.mkdir(parents=True)
        rounds.to_csv(run_dir / "rounds.csv", index=False)
        if summaries:
            (run_dir / "summary.json").write_text(json.dumps(SUMMARIES[strategy, seed]))
        ident = {"point_id": f"strategy-{strategy}", STRAT: strategy, "seed": seed}
        results.append({**ident, "run_dir": f"runs/{run_dir.name}", **rounds.iloc[-1].to_dict()})
        all_rounds.append(pd.concat([pd.DataFrame([ident] * len(rounds)), rounds], axis=1))
    pd.DataFrame(results).to_csv(path / "results.csv", index=False)
    pd.concat(all_rounds).to_csv(path / "rounds.csv", index=False)
    (path / "experiment.yaml").write_text(yaml.safe_dump(
        {"name": "strategies", "base": "/x/q.yaml", "set": [], "grid": {STRAT: ["sync", "async"]},
         "seeds": [0, 1]}, sort_keys=False))
    return path


def test_step_band_holds_each_run_and_ignores_nan() -> None:
    from vfedsim.plot import _step_band

    grid, mean, lo, hi = _step_band([(np.array([0.0, 10.0, 20.0]), np.array([0.5, 0.6, 0.7])),
                                     (np.array([0.0, 5.0, 15.0]), np.array([0.5, np.nan, 0.9]))])
    assert list(grid) == [0.0, 10.0, 15.0, 20.0]  # the NaN cell at 5 s is no point of the grid
    np.testing.assert_allclose(mean, [0.5, 0.55, 0.75, 0.8])
    np.testing.assert_allclose(lo, [0.5, 0.5, 0.6, 0.7])
    np.testing.assert_allclose(hi, [0.5, 0.6, 0.9, 0.9])
    grid, mean, _, _ = _step_band([(np.array([3.0, 1.0, 1.0]), np.array([0.3, 0.1, 0.2]))])
    assert list(grid) == [1.0, 3.0] and list(mean) == [0.2, 0.3]  # unsorted; at equal x the last row counts
    assert len(_step_band([(np.array([0.0]), np.array([np.nan]))])[0]) == 0


def test_plot_sweep_curves_against_time_and_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vfedsim.plot as plot

    sweep = write_strategy_sweep(tmp_path / "sweep")
    paths = plot_sweep(sweep, x="sim_time_s", hue=STRAT)
    assert [p.relative_to(sweep).as_posix() for p in paths] == ["plots/accuracy_vs_time.png"]
    assert_png(paths[0])
    assert [p.name for p in plot_sweep(sweep, x="cum_bytes_up", hue=STRAT, metric="macro_f1")] == [
        "macro_f1_vs_uplink_bytes.png"]

    figures = []
    monkeypatch.setattr(plot, "_save", lambda fig, path: figures.append(fig) or path)
    plot_sweep(sweep, x="sim_time_s", hue=STRAT)
    ax = figures[0].axes[0]  # maneuver
    lines = {line.get_label(): line for line in ax.lines}
    assert {"sync", "async", "pretrained (round 0)"} <= set(lines)
    sync = lines["sync"]
    assert sync.get_drawstyle() == "steps-post"
    assert list(sync.get_xdata()) == [0.0, 10.0, 20.0]
    np.testing.assert_allclose(sync.get_ydata(), [0.70, 0.715, 0.74])
    async_ = lines["async"]  # seed 1 holds 0.70 until 9 s; seed 0 holds 0.77 after 12 s
    assert list(async_.get_xdata()) == [0.0, 4.0, 8.0, 9.0, 12.0]
    np.testing.assert_allclose(async_.get_ydata(), [0.70, 0.72, 0.725, 0.775, 0.785])


def test_plot_sweep_curves_without_hue_split_by_the_grid(tmp_path: Path) -> None:
    sweep = write_strategy_sweep(tmp_path / "sweep")
    assert [p.name for p in plot_directory(sweep, x="sim_time_s")] == ["accuracy_vs_time.png"]


def test_plot_sweep_bad_x_lists_grid_keys_and_curve_columns(tmp_path: Path) -> None:
    sweep = write_strategy_sweep(tmp_path / "sweep")
    with pytest.raises(ScenarioError) as info:
        plot_sweep(sweep, x="sim_time")
    assert info.value.key_path == "x"
    assert "strategy.name" in str(info.value) and "sim_time_s" in str(info.value)


def test_cli_plot_time_curves(tmp_path: Path, capsys) -> None:
    from vfedsim.cli import main

    sweep = write_strategy_sweep(tmp_path / "sweep")
    assert main(["plot", str(sweep), "--x", "sim_time_s", "--hue", STRAT]) == 0
    assert capsys.readouterr().out.split() == [str(sweep / "plots" / "accuracy_vs_time.png"),
                                               str(sweep / "report.html")]
    assert_png(sweep / "plots" / "accuracy_vs_time.png")


def test_summary_table(tmp_path: Path) -> None:
    from vfedsim.plot import summary_table

    sweep = write_strategy_sweep(tmp_path / "sweep")
    table = summary_table(sweep, by=STRAT)
    assert list(table.index) == ["sync", "async"]
    sync, async_ = table.loc["sync"], table.loc["async"]
    assert sync["runs"] == 2 and sync["target_reached"] == 1 and async_["target_reached"] == 2
    assert sync["time_to_target_s"] == 20.0 and np.isnan(sync["time_to_target_s_std"])  # one run reached
    assert async_["time_to_target_s"] == pytest.approx(6.5)  # 4 s and 9 s (the NaN row at 5 s is skipped)
    assert sync["final_accuracy"] == pytest.approx(0.74) and async_["final_accuracy"] == pytest.approx(0.785)
    assert sync["final_macro_f1"] == pytest.approx(0.64)
    assert sync["final_accuracy_std"] == pytest.approx(np.std([0.76, 0.72], ddof=1))
    assert sync["mb_up"] == pytest.approx(1.5) and async_["mb_up"] == pytest.approx(3.0)
    assert sync["drops.deadline"] == 3 and sync["drops.left_coverage"] == 0.5 and sync["drops.cancelled"] == 0
    assert async_["drops.cancelled"] == 1.5 and async_["drops.deadline"] == 0
    assert sync["jain_fairness"] == pytest.approx(0.4) and async_["clients_arrived"] == 10
    assert sync["clients_selected"] == 16 and sync["target_accuracy"] == pytest.approx(0.73)
    written = pd.read_csv(sweep / "summary.csv", index_col=0)
    assert list(written.index) == ["sync", "async"] and "drops.left_coverage_std" in written.columns
    runs = pd.read_csv(sweep / "summary_runs.csv")
    assert len(runs) == 4 and {"seed", STRAT, "time_to_target_s"} <= set(runs.columns)

    absolute = summary_table(sweep, by=STRAT, target=0.79, write=False)
    assert list(absolute["target_reached"]) == [0, 1] and absolute.loc["async", "time_to_target_s"] == 9.0
    assert summary_table(sweep, by=STRAT, target_gain=0.0, write=False)["time_to_target_s"].eq(0).all()


def test_summary_table_gives_each_partial_sensor_suites_final_accuracy(tmp_path: Path) -> None:
    from vfedsim.plot import format_summary, summary_table, suites_in, tasks_in

    sweep = write_strategy_sweep(tmp_path / "sweep")
    finals = {}
    for k, run_dir in enumerate(sorted((sweep / "runs").iterdir())):
        rounds = pd.read_csv(run_dir / "rounds.csv")
        camera = rounds["mean.accuracy"] - 0.01 * (k + 1)
        if k == 0:
            camera.iloc[-1] = np.nan  # not evaluated in the last row: the last evaluated one counts
        rounds["suite.camera.mean.accuracy"] = camera
        rounds["suite.camera.maneuver.accuracy"] = camera
        rounds.to_csv(run_dir / "rounds.csv", index=False)
        finals[run_dir.name] = float(camera[camera.notna()].iloc[-1])
    assert suites_in(rounds.columns) == ["camera"] and "suite.camera.maneuver" not in tasks_in(rounds.columns)
    table = summary_table(sweep, by=STRAT, write=False)
    for strategy in ("sync", "async"):
        mine = [v for name, v in finals.items() if name.startswith(f"strategy-{strategy}-")]
        assert table.loc[strategy, "suite_accuracy.camera"] == pytest.approx(np.mean(mine))
    assert "acc camera" in format_summary(table)


def test_summary_table_without_summary_json_falls_back_to_rounds(tmp_path: Path) -> None:
    from vfedsim.plot import summary_table

    sweep = write_strategy_sweep(tmp_path / "sweep", summaries=False)
    table = summary_table(sweep, by=STRAT, write=False)
    assert table.loc["sync", "clients_arrived"] == 6 and table.loc["sync", "mb_up"] == pytest.approx(0.2)
    assert np.isnan(table.loc["sync", "jain_fairness"])
    assert not [c for c in table.columns if c.startswith("drops.")]


def test_summary_table_by_default_groups_by_the_varying_grid_keys(tmp_path: Path) -> None:
    from vfedsim.plot import summary_table

    sweep = write_sweep_dir(tmp_path / "sweep", grid=GRID)  # no run directories: the sweep's rounds.csv
    table = summary_table(sweep, write=False)
    assert table.index.names == ["strategy.selection.name", "world.channel.bandwidth_hz"]
    assert len(table) == 8 and (table["runs"] == 2).all()
    with pytest.raises(ScenarioError) as info:
        summary_table(sweep, by="strategy.name")
    assert info.value.key_path == "hue"


def test_cli_plot_table(tmp_path: Path, capsys) -> None:
    from vfedsim.cli import main

    sweep = write_strategy_sweep(tmp_path / "sweep")
    assert main(["plot", str(sweep), "--table", "--hue", STRAT]) == 0
    out = capsys.readouterr().out
    assert "±" in out and "drop deadline" in out and "1/2" in out and "+ 0.03" in out
    assert out.strip().endswith(str(sweep / "summary.csv")) and (sweep / "summary.csv").is_file()
    assert main(["plot", str(sweep), "--table", "--hue", STRAT, "--target", "+0.08"]) == 0
    assert "0/2" in capsys.readouterr().out  # sync never gains 0.08
    assert main(["plot", str(sweep), "--table", "--hue", STRAT, "--target", "0.79"]) == 0
    assert ">= 0.79" in capsys.readouterr().out
    assert main(["plot", str(sweep), "--table", "--target", "high"]) == 2
    assert "--target" in capsys.readouterr().err
    assert main(["plot", str(sweep), "--target", "0.8"]) == 2
