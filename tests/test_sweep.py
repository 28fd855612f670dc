"""Sweeps: experiment validation, grid expansion, point ids, validation before running, the directory layout.

The engine's `run` is replaced by a fast fake that writes a run directory, except in the slow test.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import vfedsim.engine as engine
from vfedsim.cli import main
from vfedsim.errors import ScenarioError, VfedsimError
from vfedsim.scenario import apply_overrides
from vfedsim.sweep import Experiment, Point, execute_run, expand_grid, load_experiment, plan_runs, run_sweep

from sweep_fakes import BW, GRID, REPO, SEL, TINY, fake_run, write_experiment

# ---------------------------------------------------------------------------------------- experiment
def test_load_experiment_resolves_base_and_reads_floats(tmp_path: Path) -> None:
    text = (f"name: e\nbase: {os.path.relpath(TINY, tmp_path / 'experiments')}\nset: strategy.rounds=2\n"
            f"grid:\n  {BW}: [5e4, 1.0e6]\n  {SEL}: [random]\nseeds: [3, 1]\n")
    exp = load_experiment(write_experiment(tmp_path, text))
    assert exp.base == TINY.resolve()
    assert exp.overrides == ("strategy.rounds=2",)
    assert exp.grid == {BW: (50000.0, 1.0e6), SEL: ("random",)}
    assert all(isinstance(v, float) for v in exp.grid[BW])
    assert exp.seeds == (3, 1)


def test_experiment_name_defaults_to_file_stem(tmp_path: Path) -> None:
    exp = load_experiment(write_experiment(tmp_path, {"grid": GRID}, name="my_study.yaml"))
    assert exp.name == "my_study" and exp.seeds is None


@pytest.mark.parametrize("body, key, fragment", [
    ({"grid": GRID, "seed": [0]}, "seed", "did you mean 'seeds'"),
    ({"grid": {BW: 1e6}}, "grid", "non-empty list"),
    ({"grid": {BW: []}}, "grid", "non-empty list"),
    ({"grid": {BW: [1e6, 1e6]}}, "grid", "distinct"),
    ({"grid": {"seed": [1, 2]}}, "grid", "seeds"),
    ({"grid": {"world channel": [1]}}, "grid", "dotted key"),
    ({"grid": GRID, "seeds": [-1]}, "seeds.0", "greater than or equal to 0"),
    ({"grid": GRID, "seeds": [1, 1]}, "seeds", "distinct"),
    ({"grid": GRID, "base": "nowhere.yaml"}, "base", "not found"),
    ("name: x\ngrid: {}\n", "base", "required"),
    ("name: [unclosed\n", "experiment", "malformed YAML"),
    ("- just\n- a list\n", "experiment", "must be a mapping"),
])
def test_load_experiment_errors(tmp_path: Path, body, key: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_experiment(write_experiment(tmp_path, body))
    assert info.value.key_path == key
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_experiment_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="file not found"):
        load_experiment(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------------------------------- points
def test_expand_grid_is_the_cartesian_product_in_key_order() -> None:
    points = expand_grid({"a.x": [1, 2, 3], "b.name": ["p", "q"]})
    assert len(points) == 6
    assert [p.as_dict() for p in points[:3]] == [{"a.x": 1, "b.name": "p"}, {"a.x": 1, "b.name": "q"},
                                                 {"a.x": 2, "b.name": "p"}]
    assert len({p.point_id for p in points}) == 6
    assert expand_grid({}) == [Point(())]


def test_point_ids_are_readable_stable_and_safe() -> None:
    point = Point(((BW, 1.0e6), (SEL, "coverage")))
    assert point.point_id == "bandwidth_hz-1e6_selection-coverage-137df577"  # stable across processes
    swapped = Point(((SEL, "coverage"), (BW, 1.0e6)))
    assert swapped.point_id.rsplit("-", 1)[1] == point.point_id.rsplit("-", 1)[1]  # hash ignores key order
    assert Point(((BW, 2.5e5),)).point_id.startswith("bandwidth_hz-2.5e5-")
    odd = Point((("learning.tasks", ["maneuver", "leader"]), ("strategy.selection.options", {"a": "b/c d"})))
    assert all(c.isalnum() or c in "._+-" for c in odd.point_id)
    assert Point(()).point_id.startswith("base-")


@pytest.mark.parametrize("value", [1e-5, 2.5e5, 3, "random", True, [1, 2], {"k": 1.5}, "1e5", "yes", "a: b"])
def test_point_overrides_parse_back_to_the_value(value) -> None:
    (override,) = Point((("strategy.selection.options.x", value),)).overrides
    assert apply_overrides({}, [override])["strategy"]["selection"]["options"]["x"] == value


# -------------------------------------------------------------------------------------------- planning
def test_plan_validates_every_point_before_anything_runs(tmp_path: Path, runs: list[str]) -> None:
    exp = load_experiment(write_experiment(tmp_path, {"grid": {BW: [1e6, -5.0]}, "seeds": [0]}))
    out = tmp_path / "sweep"
    with pytest.raises(ScenarioError) as info:
        run_sweep(exp, out_dir=out, progress=False)
    assert info.value.key_path == BW
    assert "sweep point bandwidth_hz--5" in str(info.value)
    assert not out.exists() and runs == []


def test_unknown_policy_in_the_grid_names_the_allowed_ones(tmp_path: Path, runs: list[str]) -> None:
    exp = load_experiment(write_experiment(tmp_path, {"grid": {SEL: ["random", "coverag"]}}))
    with pytest.raises(ScenarioError) as info:
        plan_runs(exp, out_dir=tmp_path / "s")
    assert info.value.key_path == SEL
    assert "did you mean 'coverage'" in str(info.value) and "random" in str(info.value)


def test_plan_names_runs_by_point_and_seed(tmp_path: Path) -> None:
    exp = load_experiment(write_experiment(tmp_path, {"grid": GRID, "seeds": [0, 7]}))
    tasks = plan_runs(exp, out_dir=tmp_path / "s")
    assert len(tasks) == 8
    assert [t.index for t in tasks] == list(range(8))
    assert tasks[1].run_dir == tmp_path / "s" / "runs" / f"{exp.points[0].point_id}-seed7"
    assert tasks[1].scenario.seed == 7 and tasks[1].scenario.world.channel.bandwidth_hz == 2.0e5
    assert tasks[2].scenario.strategy.selection.name == "coverage"


def test_without_seeds_each_point_runs_with_the_base_seed(tmp_path: Path) -> None:
    exp = load_experiment(write_experiment(tmp_path, {"grid": {BW: [1e6]}}))
    (task,) = plan_runs(exp, out_dir=tmp_path / "s")
    assert task.seed == 0 and task.run_dir.name.endswith("-seed0")


# --------------------------------------------------------------------------------------------- running
def test_run_sweep_writes_the_layout(tmp_path: Path, runs: list[str]) -> None:
    exp = load_experiment(write_experiment(tmp_path, {"set": ["strategy.rounds=2"], "grid": GRID,
                                                      "seeds": [0, 1]}))
    out = tmp_path / "sweep"
    results = run_sweep(exp, out_dir=out, progress=False)
    assert len(runs) == 8
    assert sorted(p.name for p in out.iterdir()) == ["experiment.yaml", "results.csv", "rounds.csv", "runs"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(runs)

    on_disk = pd.read_csv(out / "results.csv")
    assert list(on_disk.columns[:5]) == ["point_id", BW, SEL, "seed", "run_dir"]
    assert len(on_disk) == 8 and on_disk["round"].eq(2).all()
    assert on_disk[BW].tolist() == [2e5, 2e5, 2e5, 2e5, 1e6, 1e6, 1e6, 1e6]
    assert on_disk["seed"].tolist() == [0, 1] * 4
    for _, row in on_disk.iterrows():
        run_rounds = pd.read_csv(out / row["run_dir"] / "rounds.csv")
        assert row["maneuver.accuracy"] == pytest.approx(run_rounds["maneuver.accuracy"].iloc[-1])
    assert list(results.columns) == list(on_disk.columns)

    rounds = pd.read_csv(out / "rounds.csv")
    assert len(rounds) == 8 * 3
    assert list(rounds.columns[:4]) == ["point_id", BW, SEL, "seed"]

    again = load_experiment(out / "experiment.yaml")
    assert again.grid == exp.grid and again.base == exp.base and again.overrides == exp.overrides
    assert not [p for p in out.rglob(".*")], "temporary files left behind"


def test_results_do_not_depend_on_execution_order(tmp_path: Path, runs: list[str]) -> None:
    exp = load_experiment(write_experiment(tmp_path, {"grid": GRID, "seeds": [0, 1]}))

    def backwards(tasks, *, jobs, progress, plugins):  # an Executor that finishes the last run first
        for task in reversed(tasks):
            execute_run(task)
            yield task

    forward = run_sweep(exp, out_dir=tmp_path / "a", progress=False)
    reverse = run_sweep(exp, out_dir=tmp_path / "b", progress=False, executor=backwards)
    pd.testing.assert_frame_equal(forward, reverse)


def test_local_processes_give_the_same_results(tmp_path: Path, runs: list[str], monkeypatch) -> None:
    """--jobs 2 runs in fresh processes (forkserver/spawn); a plugin file installs the fake run there."""
    import inspect
    import sys
    import types

    warmed = []
    monkeypatch.setitem(sys.modules, "vfedsim.learn.pretrain", types.SimpleNamespace(
        ensure_pretrained=lambda cfg, progress=True: warmed.append(cfg) or tmp_path))

    plugin = tmp_path / "fake_engine_plugin.py"
    plugin.write_text("import json\nfrom pathlib import Path\nimport pandas as pd\nimport yaml\n"
                      "import vfedsim.engine as engine\n\n" + inspect.getsource(fake_run) + "\nengine.run = fake_run\n")
    exp = load_experiment(write_experiment(tmp_path, {"set": ["strategy.rounds=2"], "grid": GRID, "seeds": [0, 1]}))
    serial = run_sweep(exp, out_dir=tmp_path / "j1", jobs=1, progress=False)
    assert len(runs) == 8
    parallel = run_sweep(exp, out_dir=tmp_path / "j2", jobs=2, progress=False, plugins=[plugin])
    assert len(runs) == 8  # the parent ran nothing the second time
    assert len(warmed) == 1  # one learning configuration: its cache was built once, before the workers
    pd.testing.assert_frame_equal(serial, parallel)
    assert sorted(p.name for p in (tmp_path / "j2" / "runs").iterdir()) == sorted(runs)


def test_run_sweep_refuses_a_non_empty_directory(tmp_path: Path, runs: list[str]) -> None:
    exp = load_experiment(write_experiment(tmp_path, {"grid": {BW: [1e6]}}))
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ScenarioError, match="not an empty directory"):
        run_sweep(exp, out_dir=out, progress=False)
    assert runs == [] and (out / "keep.txt").read_text() == "mine"


def test_a_failing_run_is_a_vfedsim_error_naming_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(scenario, *, out_dir, progress=True):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine, "run", boom)
    exp = load_experiment(write_experiment(tmp_path, {"grid": {BW: [1e6]}}))
    with pytest.raises(VfedsimError, match=r"run bandwidth_hz-1e6-\w+-seed0 failed: RuntimeError: out of memory"):
        run_sweep(exp, out_dir=tmp_path / "s", progress=False)


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_sweep_bad_point_exits_2_and_writes_nothing(tmp_path: Path, runs: list[str], capsys) -> None:
    path = write_experiment(tmp_path, {"grid": {BW: [1e6, -1.0]}})
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vfedsim: error: world.channel.bandwidth_hz:") and err.count("\n") == 1
    assert not out.exists() and runs == []


def test_cli_executor_ray_without_ray_exits_2_and_writes_nothing(tmp_path: Path, runs: list[str], capsys,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    out = tmp_path / "sweep"
    assert main(["sweep", str(write_experiment(tmp_path, {"grid": {BW: [1e6]}})), "--out", str(out),
                 "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vfedsim: error: --executor: ray needs Ray installed") and err.count("\n") == 1
    assert "vfedsim[ray]" in err and not out.exists() and runs == []


def test_cli_sweep_dry_run_lists_runs(tmp_path: Path, runs: list[str], capsys) -> None:
    path = write_experiment(tmp_path, {"grid": GRID, "seeds": [0, 1]})
    assert main(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "8 runs; nothing run" in out and out.count("-seed1:") == 4
    assert runs == [] and not (tmp_path / "s").exists()


def test_cli_sweep_runs_and_plots(tmp_path: Path, runs: list[str], capsys) -> None:
    path = write_experiment(tmp_path, {"set": ["strategy.rounds=1"], "grid": GRID, "seeds": [0, 1]})
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "plots" / "accuracy_vs_bandwidth.png").stat().st_size > 5000


def test_the_shipped_experiment_is_valid(tmp_path: Path) -> None:
    exp = load_experiment(REPO / "experiments" / "accuracy_vs_bandwidth.yaml")
    assert exp.base == (REPO / "scenarios" / "quickstart.yaml").resolve()
    assert set(exp.grid) == {BW, SEL} and set(exp.grid[SEL]) == {"random", "coverage"}
    assert len(exp.grid[BW]) >= 3 and len(exp.seeds) == 2
    assert len(plan_runs(exp, out_dir=tmp_path)) == len(exp.grid[BW]) * 2 * 2


def test_the_shipped_strategies_experiment_is_valid(tmp_path: Path) -> None:
    exp = load_experiment(REPO / "experiments" / "strategies.yaml")
    assert exp.base == (REPO / "scenarios" / "quickstart.yaml").resolve()
    assert exp.grid == {"strategy.name": ("sync", "async", "hierarchical")} and exp.seeds == (0, 1)
    tasks = plan_runs(exp, out_dir=tmp_path)
    assert len(tasks) == 6
    for task in tasks:  # the same simulated time for all; the clock, not the round budget, ends them
        assert task.scenario.duration_s == 240 and task.scenario.strategy.rounds >= 100
        flops = sorted(d.flops_per_s for d in task.scenario.fleet.device_classes)
        assert flops[-1] / flops[0] >= 20 and task.scenario.output.plots is False


@pytest.mark.parametrize("name, road", [("selection_policies", "highway"),
                                        ("selection_policies_urban", "urban-grid")])
def test_the_shipped_selection_experiments_cover_every_policy(tmp_path: Path, name: str, road: str) -> None:
    from vfedsim.policies import SELECTORS

    exp = load_experiment(REPO / "experiments" / f"{name}.yaml")
    built_in = [n for n in SELECTORS.names() if SELECTORS.get(n).__module__.startswith("vfedsim.")]  # no plugins
    assert sorted(exp.grid[SEL]) == sorted(built_in) and list(exp.grid) == [SEL]
    assert len(exp.seeds) == 3
    tasks = plan_runs(exp, out_dir=tmp_path)
    assert len(tasks) == 3 * len(built_in) and all(t.scenario.strategy.rounds == 8 for t in tasks)
    assert {t.scenario.world.road.name for t in tasks} == {road}
    # the same learning, devices and deadline on both roads: only the world differs
    highway = plan_runs(load_experiment(REPO / "experiments" / "selection_policies.yaml"), out_dir=tmp_path)[0]
    assert tasks[0].scenario.learning == highway.scenario.learning
    assert tasks[0].scenario.fleet == highway.scenario.fleet


@pytest.mark.slow
def test_real_two_point_sweep_does_not_depend_on_jobs(tmp_path: Path) -> None:
    """End to end with the real engine: two points in two processes equal the same points run in-process."""
    exp = Experiment(name="two", base=TINY, overrides=("strategy.rounds=1",), grid={BW: (2.0e5, 5.0e6)},
                     seeds=(0,))
    serial = run_sweep(exp, out_dir=tmp_path / "j1", jobs=1, progress=False)
    parallel = run_sweep(exp, out_dir=tmp_path / "j2", jobs=2, progress=False)
    assert len(parallel) == 2 and parallel["round"].eq(1).all()
    pd.testing.assert_frame_equal(parallel, serial)
    run_dir = tmp_path / "j2" / parallel["run_dir"].iloc[0]
    assert (run_dir / "events.csv").is_file() or (run_dir / "events.parquet").is_file()


# --------------------------------------------------------------------------------------------- resume
def test_resume_runs_only_the_unfinished_runs_and_gives_the_same_results(tmp_path: Path, runs: list[str]) -> None:
    exp = load_experiment(write_experiment(tmp_path, {"set": ["strategy.rounds=2"], "grid": GRID, "seeds": [0]}))
    whole = run_sweep(exp, out_dir=tmp_path / "whole", progress=False)
    assert len(runs) == 4
    out = tmp_path / "part"
    run_sweep(exp, out_dir=out, progress=False)
    names = sorted(p.name for p in (out / "runs").iterdir())
    (out / "runs" / names[0] / "summary.json").unlink()      # interrupted before its summary was written
    (out / "results.csv").unlink()
    runs.clear()
    resumed = run_sweep(exp, out_dir=out, progress=False, resume=True)
    assert runs == [names[0]]
    pd.testing.assert_frame_equal(whole.drop(columns="run_dir"), resumed.drop(columns="run_dir"))


def test_resume_of_a_finished_sweep_runs_nothing(tmp_path: Path, runs: list[str]) -> None:
    exp = load_experiment(write_experiment(tmp_path, {"grid": {BW: [1e6]}, "seeds": [0, 1]}))
    run_sweep(exp, out_dir=tmp_path / "s", progress=False)
    runs.clear()
    run_sweep(exp, out_dir=tmp_path / "s", progress=False, resume=True)
    assert runs == []


def test_resume_refuses_a_different_experiment(tmp_path: Path, runs: list[str]) -> None:
    run_sweep(load_experiment(write_experiment(tmp_path, {"grid": {BW: [1e6]}})), out_dir=tmp_path / "s",
              progress=False)
    other = load_experiment(write_experiment(tmp_path, {"grid": {BW: [2e6]}}, name="other.yaml"))
    with pytest.raises(ScenarioError, match="different experiment"):
        run_sweep(other, out_dir=tmp_path / "s", progress=False, resume=True)


def test_cli_resume_needs_out(tmp_path: Path, runs: list[str], capsys) -> None:
    exp = write_experiment(tmp_path, {"grid": {BW: [1e6]}})
    assert main(["sweep", str(exp), "--resume"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert runs == []


def test_cli_resume_continues_a_sweep(tmp_path: Path, runs: list[str], capsys) -> None:
    exp = write_experiment(tmp_path, {"grid": {BW: [1e6, 2e6]}})
    out = tmp_path / "s"
    assert main(["sweep", str(exp), "--out", str(out), "--no-plots", "-q"]) == 0
    runs.clear()
    assert main(["sweep", str(exp), "--out", str(out), "--no-plots", "-q"]) == 2   # no overwrite without --resume
    assert main(["sweep", str(exp), "--out", str(out), "--no-plots", "-q", "--resume"]) == 0
    assert runs == []
