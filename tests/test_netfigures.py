"""Network figures from a run's files: the tables they are drawn from, and the figures themselves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vfedsim
from vfedsim.netfigures import (MAX_GANTT_ROWS, air_traffic_figure, drops_figure, outcomes, phase_intervals,
                                plot_network, road_map_figure, sample_vehicles, timeline_figure,
                                transfer_segments)
from vfedsim.record import EVENT_COLUMNS
from vfedsim.results import RunResult


def events(*rows: tuple) -> pd.DataFrame:
    """Rows (time_s, round, vehicle, kind, rsu=-1, bytes=0, cause="", duration_s=0)."""
    full = [(*r, *(-1, 0, "", 0.0)[len(r) - 4:], 0.0) if len(r) < 8 else (*r, 0.0) for r in rows]
    return pd.DataFrame(full, columns=list(EVENT_COLUMNS))


EVENTS = events(
    (0.0, 1, 1, "selected", 0), (0.0, 1, 1, "download_start", 0, 1000), (1.0, 1, 1, "handover", 1, 1000),
    (2.0, 1, 1, "download_end", 1, 1000, "", 2.0), (2.0, 1, 1, "compute_start"), (3.0, 1, 1, "compute_end", -1, 0, "", 1.0),
    (3.0, 1, 1, "wait_coverage", -1, 0, "", 1.0), (4.0, 1, 1, "upload_start", 1, 500),
    (5.0, 1, 1, "upload_end", 1, 500, "", 1.0), (5.0, 1, 1, "arrived", 1),
    (0.0, 1, 2, "selected", 0), (0.0, 1, 2, "download_start", 0, 1000), (1.5, 1, 2, "download_end", 0, 1000, "", 1.5),
    (1.5, 1, 2, "compute_start"), (2.5, 1, 2, "compute_end", -1, 0, "deadline", 1.0), (2.5, 1, 2, "dropped", -1, 0, "deadline"),
    (6.0, 1, -1, "aggregate"),
).sort_values("time_s", kind="stable").reset_index(drop=True)


def test_phase_intervals_follow_each_vehicle() -> None:
    got = phase_intervals(EVENTS)
    v1 = got[got["vehicle"] == 1][["phase", "start_s", "end_s"]].values.tolist()
    assert v1 == [["selected", 0.0, 0.0], ["download", 0.0, 2.0], ["compute", 2.0, 3.0],
                  ["wait_coverage", 3.0, 4.0], ["upload", 4.0, 5.0]]
    v2 = got[got["vehicle"] == 2][["phase", "start_s", "end_s"]].values.tolist()
    assert v2 == [["selected", 0.0, 0.0], ["download", 0.0, 1.5], ["compute", 1.5, 2.5]]  # cut by the drop
    ends = outcomes(EVENTS)
    assert ends[["vehicle", "outcome", "cause"]].values.tolist() == [[2, "dropped", "deadline"], [1, "arrived", ""]]


def test_a_phase_open_at_the_end_closes_there() -> None:
    open_ = events((0.0, 1, 3, "selected", 0), (0.0, 1, 3, "download_start", 0, 10))
    got = phase_intervals(open_, end_s=7.0)
    assert got[["phase", "start_s", "end_s"]].values.tolist()[-1] == ["download", 0.0, 7.0]


def test_transfer_segments_split_bytes_at_handovers() -> None:
    segs = transfer_segments(EVENTS)
    v1_down = segs[(segs["vehicle"] == 1) & (segs["direction"] == "down")]
    assert v1_down[["rsu", "start_s", "end_s", "bytes", "handover"]].values.tolist() == [
        [0, 0.0, 1.0, 500.0, False], [1, 1.0, 2.0, 500.0, True]]
    assert segs.groupby(["vehicle", "direction"])["bytes"].sum().to_dict() == {
        (1, "down"): 1000.0, (1, "up"): 500.0, (2, "down"): 1000.0}


def test_sampling_keeps_the_gantt_readable_at_300_vehicles() -> None:
    rows = []
    for v in range(300):
        t = v * 0.5
        rows += [(t, 1, v, "selected", 0), (t, 1, v, "download_start", 0, 10), (t + 1, 1, v, "download_end", 0, 10),
                 (t + 1, 1, v, "dropped", -1, 0, "left_coverage")]
    ev = events(*rows).sort_values("time_s", kind="stable").reset_index(drop=True)
    shown, total = sample_vehicles(phase_intervals(ev))
    assert total == 300 and len(shown) == MAX_GANTT_ROWS and shown[0] == 0 and shown[-1] == 299
    rounds = pd.DataFrame({"round": [0, 1], "sim_time_s": [0.0, 151.0]})
    run = RunResult(out_dir=Path("big"), rounds=rounds, summary={}, events=ev, config={"name": "big", "seed": 0})
    fig = timeline_figure(run)
    title = fig.axes[0].get_title(loc="left")
    assert f"{MAX_GANTT_ROWS} of 300 selected vehicles, evenly sampled" in title
    assert "all 300" in fig.axes[1].get_title(loc="left")  # the phase counts aggregate every vehicle
    assert "300 dropped" in drops_figure(run).axes[0].get_title(loc="left")


def test_air_traffic_is_a_heat_map_beyond_eight_rsus() -> None:
    rows = [(float(r), 1, r, "upload_start", r, 100) for r in range(12)]
    rows += [(float(r) + 0.5, 1, r, "upload_end", r, 100, "", 0.5) for r in range(12)]
    ev = events(*rows).sort_values("time_s", kind="stable").reset_index(drop=True)
    run = RunResult(out_dir=Path("x"), rounds=pd.DataFrame({"round": [0], "sim_time_s": [12.0]}), summary={},
                    events=ev, world={"rsus": {"x_m": list(range(12)), "y_m": [0] * 12}})
    fig = air_traffic_figure(run)
    image = fig.axes[0].images[0].get_array()
    assert image.shape[0] == 12 and np.isclose(image.sum() * (12.0 / image.shape[1]) / 8e-3, 1200, rtol=0.02)


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_plot_network_writes_every_figure(tiny_run: Path, tmp_path: Path, fmt: str) -> None:
    files = plot_network(tiny_run, fmt=fmt, out_dir=tmp_path)
    assert [p.name for p in files] == [f"{s}.{fmt}" for s in ("timeline", "road_map", "drops_by_cause", "air_traffic")]
    assert all(p.stat().st_size > 1000 for p in files)


def test_plot_run_draws_the_network_too_and_the_map_shows_tracks(tiny_run: Path) -> None:
    run = vfedsim.load_run(tiny_run)
    fig = road_map_figure(run)
    ax = fig.axes[0]
    assert "3 RSUs, coverage radius" in ax.get_title(loc="left")
    assert len(ax.patches) == 3  # a coverage circle per RSU
    assert fig.axes[1].get_xlabel() == "simulated time [s]"  # highway: the time-space diagram
    n = run.tracks["vehicle"].nunique()
    assert f"tracks of {n} vehicles" in ax.get_title(loc="left")


def test_vfedsim_plot_redraws_them(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    from vfedsim.cli import main

    run_dir = tmp_path / "copy"
    shutil.copytree(tiny_run, run_dir)
    assert main(["plot", str(run_dir), "--format", "svg", "--no-report"]) == 0
    names = sorted(p.name for p in (run_dir / "plots").iterdir())
    assert {"timeline.svg", "road_map.svg", "drops_by_cause.svg", "air_traffic.svg", "accuracy_vs_time.svg"} <= set(names)
    assert not (run_dir / "report.html").exists()
