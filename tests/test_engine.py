"""End to end on tiny.yaml: the run directory's contract, determinism and lazy == eager."""
import json

import pandas as pd
import pytest

from vfedsim.engine import load_scenario, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tiny_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "run"
    return run(load_scenario(tiny_path), out_dir=out, progress=False)


def test_run_directory_contract(tiny_run):
    out = tiny_run.out_dir
    for name in ("rounds.csv", "events.csv", "vehicles.csv", "config.yaml", "summary.json"):
        assert (out / name).is_file(), name
    rounds = pd.read_csv(out / "rounds.csv")
    for col in ("round", "sim_time_s", "bytes_up", "bytes_down", "clients_selected", "clients_arrived",
                "clients_dropped", "maneuver.accuracy", "leader.accuracy", "longitudinal.macro_f1"):
        assert col in rounds.columns, col
    assert rounds["round"].tolist() == list(range(len(rounds)))
    assert rounds.loc[0, "sim_time_s"] == 0 and rounds.loc[0, "bytes_up"] == 0  # row 0: pretrained model
    assert rounds["sim_time_s"].is_monotonic_increasing
    assert (rounds["clients_arrived"] + rounds["clients_dropped"] == rounds["clients_selected"]).all()
    events = pd.read_csv(out / "events.csv")
    assert list(events.columns[:7]) == ["time_s", "round", "vehicle", "kind", "rsu", "bytes", "cause"]
    assert events["time_s"].is_monotonic_increasing
    arrived = events[events["kind"] == "arrived"].groupby("round").size()
    assert arrived.sum() == rounds["clients_arrived"].sum()
    ups = events[(events["kind"] == "upload_end") & (events["cause"].isna())]
    assert ups["bytes"].sum() <= rounds["bytes_up"].sum()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == len(rounds) - 1 and "maneuver.accuracy" in summary["final"]
    vehicles = pd.read_csv(out / "vehicles.csv")
    assert vehicles["times_selected"].sum() == rounds["clients_selected"].sum()


def test_same_seed_same_bytes_and_lazy_equals_eager(tiny_path, tiny_run, tmp_path):
    again = run(load_scenario(tiny_path), out_dir=tmp_path / "again", progress=False)
    eager = run(load_scenario(tiny_path, overrides=["strategy.lazy=false"]), out_dir=tmp_path / "eager",
                progress=False)
    first = tiny_run.out_dir
    assert (first / "rounds.csv").read_bytes() == (again.out_dir / "rounds.csv").read_bytes()
    assert (first / "events.csv").read_bytes() == (again.out_dir / "events.csv").read_bytes()
    assert (first / "rounds.csv").read_bytes() == (eager.out_dir / "rounds.csv").read_bytes()
    assert (first / "events.csv").read_bytes() == (eager.out_dir / "events.csv").read_bytes()


def test_other_seed_changes_the_run(tiny_path, tiny_run, tmp_path):
    other = run(load_scenario(tiny_path, seed=1), out_dir=tmp_path / "s1", progress=False)
    assert (tiny_run.out_dir / "events.csv").read_bytes() != (other.out_dir / "events.csv").read_bytes()
