"""Scenarios on the urban grid and on the shipped SUMO trace: validate, short end-to-end runs, the trace command."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from vfedsim.cli import main
from vfedsim.engine import build_mobility, load_scenario

REPO = Path(__file__).resolve().parent.parent
URBAN = REPO / "scenarios" / "urban.yaml"
SUMO_GRID = REPO / "scenarios" / "sumo-grid.yaml"


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", [URBAN, SUMO_GRID])
def test_validate_the_road_scenarios(capsys, path):
    code, out, err = cli(capsys, "validate", path)
    assert code == 0, err
    assert out.startswith(f"ok: {path.stem}")


def test_existing_scenarios_still_validate_on_the_highway(capsys):
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        scenario = load_scenario(path)
        mob = build_mobility(scenario)
        assert mob.rsu_sites(scenario.world.rsus).shape[1] == 2
    assert load_scenario(REPO / "scenarios" / "tiny.yaml").world.road.name == "highway"


def test_missing_and_malformed_traces_exit_2(tmp_path, capsys):
    raw = yaml.safe_load(SUMO_GRID.read_text())
    raw["world"]["road"]["trace"] = "missing.fcd.xml.gz"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, out, err = cli(capsys, "validate", path)
    assert code == 2 and err.count("\n") == 1 and "world.road.trace: trace file not found" in err
    (tmp_path / "bad.fcd.xml").write_text("<fcd-export><timestep time='0'>")
    code, out, err = cli(capsys, "validate", path, "--set", "world.road.trace=bad.fcd.xml")
    assert code == 2 and err.count("\n") == 1 and "world.road.trace: malformed FCD XML" in err


def test_no_rsu_site_is_an_error(capsys):
    code, _, err = cli(capsys, "validate", SUMO_GRID, "--set", "world.rsus.positions_m=null",
                       "--set", "world.rsus.first_at_m=5000")
    assert code == 2 and "world.rsus: no RSU site" in err


def test_trace_command_without_sumo_names_the_extra(tmp_path, capsys, monkeypatch):
    from vfedsim.tools import sumo_trace

    monkeypatch.setenv("SUMO_HOME", str(tmp_path / "no-sumo"))
    monkeypatch.setitem(sys.modules, "sumo", None)  # as if eclipse-sumo were not installed
    code, out, err = cli(capsys, "trace", "--out", tmp_path / "t.xml.gz")
    # a missing extra is a runtime failure, exit 1, like every other extra
    assert sumo_trace.INSTALL_HINT in err
    assert code == 1 and "pip install 'vfedsim[sumo]'" in err and err.count("\n") == 1
    assert not (tmp_path / "t.xml.gz").exists()


def _has_sumo() -> bool:
    from vfedsim.errors import VfedsimError
    from vfedsim.tools.sumo_trace import sumo_home

    try:
        sumo_home()
    except VfedsimError:
        return False
    return True


@pytest.mark.skipif(not _has_sumo(), reason="needs eclipse-sumo (pip install 'vfedsim[sumo]')")
def test_trace_command_makes_a_replayable_deterministic_trace(tmp_path, capsys):
    a, b = tmp_path / "a.fcd.xml.gz", tmp_path / "b.fcd.xml.gz"
    for out in (a, b):
        code, stdout, err = cli(capsys, "trace", "--net", "highway", "--vehicles", "4", "--duration", "30",
                                "--seed", "3", "--out", out)
        assert code == 0, err and stdout == f"trace: {out}\n"
    assert a.read_bytes() == b.read_bytes()
    from vfedsim.scenario import SumoFcdRoad
    from vfedsim.world.fcd import FcdMobility

    mob = FcdMobility(SumoFcdRoad(trace=str(a)), None, seed=0, duration_s=30.0)
    assert 1 <= mob.trips.n <= 4
    assert abs(mob.bbox_m[:, 1]).max() < 20.0  # a straight road along x


def _short_run(capsys, tmp_path: Path, scenario: Path, name: str = "run") -> Path:
    out_dir = tmp_path / name
    code, out, err = cli(capsys, "run", scenario, "--out", out_dir, "--quiet", "--set", "strategy.rounds=1",
                         "--set", "duration_s=120")
    assert code == 0, err
    return out_dir


@pytest.mark.slow
@pytest.mark.parametrize("path", [URBAN, SUMO_GRID])
def test_short_end_to_end_run(capsys, tmp_path, path):
    out_dir = _short_run(capsys, tmp_path, path)
    rounds = pd.read_csv(out_dir / "rounds.csv")
    assert list(rounds["round"]) == [0, 1] and rounds["clients_selected"].iloc[1] > 0
    vehicles = pd.read_csv(out_dir / "vehicles.csv")
    assert "direction" not in vehicles.columns and {"t_enter_s", "t_exit_s", "speed_mps"} <= set(vehicles.columns)
    config = yaml.safe_load((out_dir / "config.yaml").read_text())
    assert config["world"]["road"]["name"] == load_scenario(path).world.road.name
    assert json.loads((out_dir / "summary.json").read_text())["scenario"] == path.stem
    if path == URBAN:  # same seed, same bytes
        again = _short_run(capsys, tmp_path, path, "again")
        for name in ("rounds.csv", "events.csv", "vehicles.csv"):
            assert (out_dir / name).read_bytes() == (again / name).read_bytes(), name
    if path == SUMO_GRID:  # the resolved config names the trace by an absolute path: it reloads from anywhere
        assert Path(config["world"]["road"]["trace"]).is_absolute()
        moved = tmp_path / "elsewhere" / "config.yaml"
        moved.parent.mkdir()
        shutil.copy(out_dir / "config.yaml", moved)
        assert load_scenario(moved).world.road.trace == config["world"]["road"]["trace"]
