"""plot.py draws from run and sweep directories alone: synthetic directories written here, no engine."""
from __future__ import annotations

import itertools
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
