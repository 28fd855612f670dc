"""The loading API (`vfedsim.load_run`, `vfedsim.load_sweep`) and what `vfedsim.run` returns and refuses."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vfedsim
from vfedsim.engine import build_mobility
from vfedsim.errors import ScenarioError
from vfedsim.scenario import parse_scenario

REPO = Path(__file__).resolve().parent.parent


def test_load_run_reads_every_table(tiny_run: Path) -> None:
    run = vfedsim.load_run(tiny_run)
    assert isinstance(run, vfedsim.RunResult) and run.out_dir == tiny_run
    assert list(run.rounds["round"]) == [0, 1, 2]
    assert set(run.events["kind"]) >= {"selected", "download_start", "upload_end", "arrived", "aggregate"}
    assert run.events["cause"].map(type).eq(str).all()  # an empty cause reads back as "", not NaN
    assert run.vehicles.index.name == "vehicle" and "times_selected" in run.vehicles
    assert run.config["name"] == "tiny" and run.summary["rounds"] == 2
    assert list(run.tracks.columns) == ["time_s", "vehicle", "x_m", "y_m"]
    assert run.world["road"]["kind"] == "lanes" and len(run.world["rsus"]["x_m"]) == 3
    # the config reads back into the same scenario
    assert parse_scenario(run.config).to_dict() == run.config


def test_run_returns_what_load_run_reads(tiny_run: Path, tmp_path: Path) -> None:
    scenario = vfedsim.load_scenario(REPO / "scenarios" / "tiny.yaml", overrides=["strategy.rounds=1"])
    result = vfedsim.run(scenario, out_dir=tmp_path / "r", progress=False)
    again = vfedsim.load_run(tmp_path / "r")
    pd.testing.assert_frame_equal(result.rounds, again.rounds)
    pd.testing.assert_frame_equal(result.events, again.events)
    pd.testing.assert_frame_equal(result.vehicles, again.vehicles)
    assert result.summary == again.summary


def test_run_refuses_a_non_empty_out_dir_unless_overwrite(tmp_path: Path) -> None:
    scenario = vfedsim.load_scenario(REPO / "scenarios" / "tiny.yaml", overrides=["strategy.rounds=1"])
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ScenarioError, match=r"out_dir: .* is not empty.*overwrite=True"):
        vfedsim.run(scenario, out_dir=out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing written
    (tmp_path / "file").write_text("x")
    with pytest.raises(ScenarioError, match="not a directory"):
        vfedsim.run(scenario, out_dir=tmp_path / "file", progress=False, overwrite=True)
    result = vfedsim.run(scenario, out_dir=out, progress=False, overwrite=True)
    assert (out / "summary.json").is_file() and (out / "notes.txt").read_text() == "mine"
    assert result.summary["rounds"] == 1


def test_load_run_refuses_a_half_written_run(tiny_run: Path, tmp_path: Path) -> None:
    half = tmp_path / "half"
    shutil.copytree(tiny_run, half)
    (half / "summary.json").unlink()
    with pytest.raises(ScenarioError, match=r"run_dir: .* not a finished run directory \(no summary.json"):
        vfedsim.load_run(half)
    with pytest.raises(ScenarioError, match="not a directory"):
        vfedsim.load_run(tmp_path / "missing")


def test_world_and_tracks_are_what_the_mobility_model_says(tiny_run: Path) -> None:
    run = vfedsim.load_run(tiny_run)
    scenario = parse_scenario(run.config)
    mobility = build_mobility(scenario)
    tracks = run.tracks
    assert set(tracks["vehicle"]) == set(range(mobility.trips.n)) & set(tracks["vehicle"])  # output.tracks: all
    assert (tracks.groupby("vehicle")["time_s"].apply(lambda t: t.is_monotonic_increasing)).all()
    for _, row in tracks.sample(20, random_state=0).iterrows():
        xy = mobility.positions_of(np.array([int(row["vehicle"])]), float(row["time_s"]))[0][0]
        assert np.allclose(xy, [row["x_m"], row["y_m"]], atol=1e-5)
    sites = mobility.rsu_sites(scenario.world.rsus)
    assert np.allclose(run.world["rsus"]["x_m"], sites[:, 0]) and run.world["rsus"]["coverage_radius_m"] > 0
    # every sample lies within [0, end of run] and inside the vehicle's trip
    enter = mobility.trips.t_enter_s[tracks["vehicle"]]
    leave = mobility.trips.t_exit_s[tracks["vehicle"]]
    assert ((tracks["time_s"] >= enter - 1e-9) & (tracks["time_s"] < leave)).all()
    assert tracks["time_s"].max() <= run.rounds["sim_time_s"].max() + 1e-9


def test_tracks_default_to_the_selected_vehicles_and_none_writes_none(tmp_path: Path) -> None:
    base = ["strategy.rounds=1"]
    scenario = vfedsim.load_scenario(REPO / "scenarios" / "tiny.yaml", overrides=base)
    run = vfedsim.run(scenario, out_dir=tmp_path / "sel", progress=False)
    selected = set(run.events.loc[run.events["kind"] == "selected", "vehicle"])
    assert set(run.tracks["vehicle"]) == selected
    scenario = vfedsim.load_scenario(REPO / "scenarios" / "tiny.yaml", overrides=[*base, "output.tracks=none"])
    run = vfedsim.run(scenario, out_dir=tmp_path / "none", progress=False)
    assert run.tracks is None and not (tmp_path / "none" / "tracks.csv").exists() and run.world is not None


def test_world_json_geometry_per_road(tmp_path: Path) -> None:
    from vfedsim.world.layout import world_layout

    for name, kind in (("urban.yaml", "streets"), ("sumo-grid.yaml", "trace")):
        scenario = vfedsim.load_scenario(REPO / "scenarios" / name)
        layout = world_layout(scenario, build_mobility(scenario))
        assert layout["road"]["kind"] == kind and len(layout["road"]["polylines"]) > 10
        json.dumps(layout)  # plain data
    # the urban grid: one street per graph edge, of the block lengths
    scenario = vfedsim.load_scenario(REPO / "scenarios" / "urban.yaml")
    streets = np.array(world_layout(scenario, build_mobility(scenario))["road"]["polylines"])
    lengths = np.hypot(*(streets[:, 1] - streets[:, 0]).T)
    road = scenario.world.road
    assert set(np.round(lengths, 6)) == {road.block_x_m, road.block_y_m}


def test_load_sweep(tmp_path: Path, runs) -> None:
    from sweep_fakes import BW, write_experiment

    from vfedsim.sweep import load_experiment, run_sweep

    exp = load_experiment(write_experiment(tmp_path, {"grid": {BW: [2e5, 1e6]}, "seeds": [0, 1]}))
    run_sweep(exp, out_dir=tmp_path / "s", progress=False)
    sweep = vfedsim.load_sweep(tmp_path / "s")
    assert len(sweep.results) == 4 and sweep.grid_keys == [BW] and len(sweep.runs) == 4
    first = sweep.run(0)
    assert isinstance(first, vfedsim.RunResult) and first.out_dir.parent == tmp_path / "s" / "runs"
    assert sweep.runs[first.out_dir.name] is first  # read once
    with pytest.raises(ScenarioError, match="it is a run directory: use load_run"):
        vfedsim.load_sweep(first.out_dir)


def test_world_and_tracks_are_byte_identical_for_the_same_seed(tmp_path: Path) -> None:
    scenario = vfedsim.load_scenario(REPO / "scenarios" / "sumo-grid.yaml", overrides=["strategy.rounds=1"])
    for name in ("a", "b"):
        vfedsim.run(scenario, out_dir=tmp_path / name, progress=False)
    for file in ("world.json", "tracks.csv", "events.csv", "rounds.csv"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    world = json.loads((tmp_path / "a" / "world.json").read_text())
    assert world["road"]["kind"] == "trace" and world["channel"]["profile"] == "urban-grid"


def test_a_sweep_shows_one_bar_over_its_runs(tmp_path: Path, runs, capsys) -> None:
    from sweep_fakes import BW, write_experiment

    from vfedsim.sweep import load_experiment, run_sweep

    exp = load_experiment(write_experiment(tmp_path, {"grid": {BW: [2e5, 1e6]}, "seeds": [0, 1]}))
    run_sweep(exp, out_dir=tmp_path / "s", progress=True)
    err = capsys.readouterr().err
    assert "sweep exp: 2 points x 2 seeds = 4 runs" in err
    assert "4/4" in err and "run" in err and "rounds" not in err  # one bar over runs, no per-run bars
