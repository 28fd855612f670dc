"""The Ray executor (`vfedsim.sweep.execute_ray`) on a local Ray instance: the same results as running in this
process, run directories written here from files the workers send back, failures named, and the CLI flag."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pandas as pd
import pytest

from vfedsim.cli import main
from vfedsim.errors import VfedsimError
from vfedsim.sweep import Experiment, execute_ray, load_experiment, run_sweep

from sweep_fakes import BW, GRID, TINY, fake_run, write_experiment

ray = pytest.importorskip("ray", reason="the ray extra (in the test extra) is not installed")

FAKE_PLUGIN = ("import json\nfrom pathlib import Path\nimport pandas as pd\nimport yaml\n"
               "import vfedsim.engine as engine\n\n" + inspect.getsource(fake_run) + "\nengine.run = fake_run\n")


def test_an_unreachable_cluster_exits_2_at_once_and_writes_nothing(tmp_path: Path, runs: list[str], capsys) -> None:
    # (first in the module: with Ray already initialised here, the CLI would use that instance instead)
    assert not ray.is_initialized()
    exp = write_experiment(tmp_path, {"grid": {BW: [1e6]}})
    out = tmp_path / "s"
    assert main(["sweep", str(exp), "--out", str(out), "--ray-address", "127.0.0.1:1", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vfedsim: error: --ray-address: no Ray cluster answers at '127.0.0.1:1'")
    assert err.count("\n") == 1 and "allowed: auto" in err
    assert not out.exists() and runs == [] and not ray.is_initialized()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (an executor leaves a Ray it did not start running)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _no_pretraining(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    monkeypatch.setitem(sys.modules, "vfedsim.learn.pretrain",
                        types.SimpleNamespace(ensure_pretrained=lambda cfg, progress=True: None))


def test_ray_gives_the_results_of_a_serial_sweep(tmp_path: Path, runs: list[str], local_ray, monkeypatch) -> None:
    _no_pretraining(monkeypatch)
    plugin = tmp_path / "fake_engine_plugin.py"
    plugin.write_text(FAKE_PLUGIN)
    exp = load_experiment(write_experiment(tmp_path, {"set": ["strategy.rounds=2"], "grid": GRID, "seeds": [3]}))
    serial = run_sweep(exp, out_dir=tmp_path / "serial", progress=False)
    assert len(runs) == 4
    on_ray = run_sweep(exp, out_dir=tmp_path / "ray", progress=False, plugins=[plugin], executor=execute_ray)
    assert len(runs) == 4  # this process ran nothing the second time: the workers did
    pd.testing.assert_frame_equal(serial, on_ray)
    for name in runs:  # every run directory came back whole
        a, b = tmp_path / "serial" / "runs" / name, tmp_path / "ray" / "runs" / name
        assert sorted(p.name for p in b.iterdir()) == sorted(p.name for p in a.iterdir())
        assert (b / "rounds.csv").read_bytes() == (a / "rounds.csv").read_bytes()
    assert ray.is_initialized()  # it did not shut down a Ray it had not started


def test_a_failing_ray_run_is_a_vfedsim_error_naming_the_run(tmp_path: Path, local_ray, monkeypatch) -> None:
    _no_pretraining(monkeypatch)
    plugin = tmp_path / "boom_plugin.py"
    plugin.write_text("import vfedsim.engine as engine\n\n"
                      "def boom(scenario, *, out_dir, progress=True):\n    raise RuntimeError('out of memory')\n\n"
                      "engine.run = boom\n")
    exp = load_experiment(write_experiment(tmp_path, {"grid": {BW: [1e6]}}))
    with pytest.raises(VfedsimError, match=r"run bandwidth_hz-1e6-\w+-seed0 failed: RuntimeError: out of memory"):
        run_sweep(exp, out_dir=tmp_path / "s", progress=False, plugins=[plugin], executor=execute_ray)
    assert not list((tmp_path / "s" / "runs").iterdir())  # nothing half-written


def test_cli_executor_ray(tmp_path: Path, runs: list[str], local_ray, monkeypatch, capsys) -> None:
    _no_pretraining(monkeypatch)
    plugin = tmp_path / "fake_engine_plugin.py"
    plugin.write_text(FAKE_PLUGIN)
    exp = write_experiment(tmp_path, {"grid": {BW: [2.0e5, 1.0e6]}})
    # (the CLI loads the plugin here too, to validate the points; ``runs`` restores the engine afterwards)
    assert main(["sweep", str(exp), "--out", str(tmp_path / "s"), "--executor", "ray", "--plugins", str(plugin),
                 "--no-plots", "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "s")
    assert len(pd.read_csv(tmp_path / "s" / "results.csv")) == 2


@pytest.mark.slow
def test_real_sweep_on_ray_equals_the_local_one(tmp_path: Path, local_ray) -> None:
    """End to end with the real engine: the run directories Ray workers send back give the same tables."""
    exp = Experiment(name="two", base=TINY, overrides=("strategy.rounds=1",), grid={BW: (2.0e5, 5.0e6)},
                     seeds=(0,))
    local = run_sweep(exp, out_dir=tmp_path / "local", progress=False)
    on_ray = run_sweep(exp, out_dir=tmp_path / "ray", progress=False, executor=execute_ray)
    pd.testing.assert_frame_equal(on_ray, local)
    for name in local["run_dir"]:
        for table in ("rounds.csv", "vehicles.csv", "events.csv"):
            assert (tmp_path / "ray" / name / table).read_bytes() == (tmp_path / "local" / name / table).read_bytes()
        summaries = [json.loads((tmp_path / where / name / "summary.json").read_text()) for where in ("ray", "local")]
        for summary in summaries:  # the host's wall-clock figures differ; everything simulated is equal
            for key in [k for k in summary if k.startswith("wall_")]:
                del summary[key]
        assert summaries[0] == summaries[1]
