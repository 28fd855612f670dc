"""SUMO FCD replay: reading .xml / .xml.gz / .parquet, interpolation, ids, time options, errors, the shipped trace."""
from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vfedsim.errors import ScenarioError
from vfedsim.scenario import RSUConfig, SumoFcdRoad, parse_scenario
from vfedsim.world.fcd import FcdMobility, read_fcd
from vfedsim.world.mobility import MOBILITY

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "scenarios" / "traces" / "grid-small.fcd.xml.gz"

# Three vehicles. "b" and "a" both appear at t = 0 (ids: a -> 0, b -> 1, by id string), "c" at t = 1 (id 2).
# a: (0, 0) -> (10, 0) -> (20, 0) -> (20, 5): straight at 10 m/s twice (one segment), then north at 5 m/s.
# b: stands at (100, 50) for two steps, then moves to (103, 54) (5 m/s) and is gone after t = 3.
# c: seen once (t = 1): never on the road.
FCD = """<?xml version="1.0" encoding="UTF-8"?>
<fcd-export>
    <timestep time="0.00">
        <vehicle id="b" x="100.00" y="50.00" angle="0.00" speed="0.00" lane="e1_0"/>
        <vehicle id="a" x="0.00" y="0.00" angle="90.00" speed="10.00" lane="e0_0"/>
    </timestep>
    <timestep time="1.00">
        <vehicle id="a" x="10.00" y="0.00" angle="90.00" speed="10.00" lane="e0_0"/>
        <vehicle id="b" x="100.00" y="50.00" angle="0.00" speed="0.00" lane="e1_0"/>
        <vehicle id="c" x="7.00" y="7.00" angle="0.00" speed="0.00" lane="e2_0"/>
    </timestep>
    <timestep time="2.00">
        <vehicle id="a" x="20.00" y="0.00" angle="90.00" speed="10.00" lane="e0_0"/>
        <vehicle id="b" x="100.00" y="50.00" angle="0.00" speed="0.00" lane="e1_0"/>
        <person id="p" x="1.00" y="1.00"/>
    </timestep>
    <timestep time="3.00">
        <vehicle id="a" x="20.00" y="5.00" angle="0.00" speed="5.00" lane="e3_0"/>
        <vehicle id="b" x="103.00" y="54.00" angle="0.00" speed="5.00" lane="e1_0"/>
    </timestep>
</fcd-export>
"""


def rows() -> pd.DataFrame:
    return pd.DataFrame({
        "time": [0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
        "id": ["b", "a", "a", "b", "c", "a", "b", "a", "b"],
        "x": [100.0, 0.0, 10.0, 100.0, 7.0, 20.0, 100.0, 20.0, 103.0],
        "y": [50.0, 0.0, 0.0, 50.0, 7.0, 0.0, 50.0, 5.0, 54.0],
        "speed": [0.0, 10.0, 10.0, 0.0, 0.0, 10.0, 0.0, 5.0, 5.0],
        "angle": 0.0, "lane": "e",
    })


@pytest.fixture()
def traces(tmp_path: Path) -> dict[str, Path]:
    xml = tmp_path / "t.fcd.xml"
    xml.write_text(FCD)
    gz = tmp_path / "t.fcd.xml.gz"
    gz.write_bytes(gzip.compress(FCD.encode()))
    pq = tmp_path / "t.parquet"
    rows().sample(frac=1.0, random_state=3).to_parquet(pq)  # row order must not matter
    return {"xml": xml, "gz": gz, "parquet": pq}


def make(path: Path, **road) -> FcdMobility:
    return FcdMobility(SumoFcdRoad(trace=str(path), **road), None, seed=0, duration_s=100.0)


def test_registered_by_name():
    assert MOBILITY.get("sumo-fcd") is FcdMobility


def test_ids_by_first_appearance_then_name(traces):
    m = make(traces["xml"])
    assert m.names == ["a", "b", "c"]
    np.testing.assert_array_equal(m.trips.t_enter_s, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(m.trips.t_exit_s, [3.0, 3.0, 1.0])
    np.testing.assert_allclose(m.trips.speed_mps, [25.0 / 3.0, 5.0 / 3.0, 0.0])


def test_positions_at_and_between_timesteps(traces):
    m = make(traces["xml"])
    expect = {  # t: (position of a, velocity of a, position of b, velocity of b)
        0.0: ([0, 0], [10, 0], [100, 50], [0, 0]),
        0.5: ([5, 0], [10, 0], [100, 50], [0, 0]),
        1.0: ([10, 0], [10, 0], [100, 50], [0, 0]),
        1.75: ([17.5, 0], [10, 0], [100, 50], [0, 0]),
        2.0: ([20, 0], [0, 5], [100, 50], [3, 4]),
        2.5: ([20, 2.5], [0, 5], [101.5, 52], [3, 4]),
        3.0: ([20, 5], [0, 0], [103, 54], [0, 0]),  # the last timestep: off the road
        9.0: ([20, 5], [0, 0], [103, 54], [0, 0]),
        -1.0: ([0, 0], [0, 0], [100, 50], [0, 0]),
    }
    for t, (pa, va, pb, vb) in expect.items():
        pos, vel = m.positions_of([0, 1], t)
        np.testing.assert_allclose(pos, [pa, pb], atol=1e-12, err_msg=f"t={t}")
        np.testing.assert_allclose(vel, [va, vb], atol=1e-12, err_msg=f"t={t}")
        for i in (0, 1):
            p1, v1 = m.positions_of([i], t)
            np.testing.assert_array_equal(p1[0], pos[i])
            np.testing.assert_array_equal(v1[0], vel[i])
    np.testing.assert_array_equal(m.active_of([0, 1, 2], 2.9), [True, True, False])
    np.testing.assert_array_equal(m.active_of([0, 1, 2], 1.0), [True, True, False])
    np.testing.assert_array_equal(m.active_of([0, 1, 2], 3.0), [False, False, False])
    np.testing.assert_allclose(m.travelled_m([0, 1, 2], 2.5), [22.5, 2.5, 0.0])
    np.testing.assert_allclose(m.travelled_m([0, 1], 10.0), [25.0, 5.0])
    assert m.travelled_m([0], 2.5)[0] == m.travelled_m([0, 1], 2.5)[0]


def test_next_change_skips_timesteps_where_nothing_changes(traces):
    m = make(traces["xml"])
    np.testing.assert_array_equal(m.next_change_s([0, 1, 2], -1.0), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(m.next_change_s([0, 1, 2], 0.0), [2.0, 2.0, 1.0])  # t = 1: same velocity
    np.testing.assert_array_equal(m.next_change_s([0, 1, 2], 1.5), [2.0, 2.0, math.inf])
    np.testing.assert_array_equal(m.next_change_s([0, 1, 2], 2.0), [3.0, 3.0, math.inf])
    np.testing.assert_array_equal(m.next_change_s([0, 1], 3.0), [math.inf, math.inf])


def test_xml_gz_and_parquet_give_identical_results(traces):
    models = {k: make(p) for k, p in traces.items()}
    ref = models["xml"]
    for name, m in models.items():
        assert m.names == ref.names, name
        for t in (-0.5, 0.0, 0.3, 1.0, 1.99, 2.0, 2.7, 3.0, 5.0):
            s, r = m.state(t), ref.state(t)
            np.testing.assert_array_equal(s.position_m, r.position_m)
            np.testing.assert_array_equal(s.velocity_mps, r.velocity_mps)
            np.testing.assert_array_equal(s.active, r.active)
            np.testing.assert_array_equal(m.next_change_s([0, 1, 2], t), ref.next_change_s([0, 1, 2], t))


def test_start_max_vehicles_and_loop(traces):
    m = make(traces["xml"], start_s=1.0)
    np.testing.assert_array_equal(m.trips.t_enter_s, [-1.0, -1.0, 0.0])
    np.testing.assert_allclose(m.positions_of([0], 0.5)[0], [[15.0, 0.0]])
    assert make(traces["xml"], max_vehicles=1).names == ["a"]
    looped = FcdMobility(SumoFcdRoad(trace=str(traces["xml"]), loop=True), None, seed=0, duration_s=10.0)
    assert looped.period_s == 4.0 and looped.trips.n == 9 and looped.names[3:6] == ["a", "b", "c"]
    np.testing.assert_array_equal(looped.trips.t_enter_s, [0, 0, 1, 4, 4, 5, 8, 8, 9])
    np.testing.assert_allclose(looped.positions_of([3], 6.5)[0], [[20.0, 2.5]])
    # a late start drops the vehicles already gone
    late = FcdMobility(SumoFcdRoad(trace=str(traces["xml"]), loop=True, start_s=3.5), None, seed=0, duration_s=6.0)
    np.testing.assert_array_equal(late.trips.t_enter_s, [0.5, 0.5, 1.5, 4.5, 4.5, 5.5])
    with pytest.raises(ScenarioError, match="world.road.start_s"):
        make(traces["xml"], start_s=50.0)


def test_rsu_sites(traces):
    m = make(traces["xml"])
    np.testing.assert_allclose(m.bbox_m, [[0.0, 0.0], [103.0, 54.0]])
    # lattice of pitch 50 m from (10, 10) inside the box (0, 0)-(103, 54): x 10, 60; y 10
    np.testing.assert_allclose(m.rsu_sites(RSUConfig(spacing_m=50.0, first_at_m=10.0)), [[10, 10], [60, 10]])
    np.testing.assert_allclose(m.rsu_sites(RSUConfig(spacing_m=40.0, first_at_m=0.0)),
                               [[0, 0], [40, 0], [80, 0], [0, 40], [40, 40], [80, 40]])
    np.testing.assert_array_equal(m.rsu_sites(RSUConfig(positions_m=((5.0, 6.0),))), [[5.0, 6.0]])


@pytest.mark.parametrize("text, match", [
    ("<fcd-export><timestep time='0'><vehicle id='a' x='1' y='2'/></timestep", "malformed FCD XML.*line 1"),
    ("<fcd-export>\n<timestep time='0'>\n<vehicle id='a' x='1' y=2/></timestep></fcd-export>",
     "malformed FCD XML.*line 3, column"),
    ("<routes><vehicle id='a'/></routes>", "not a SUMO FCD file"),
    ("<fcd-export><timestep time='0'><vehicle id='a' y='2'/></timestep></fcd-export>", "no numeric 'x'"),
    ("<fcd-export><timestep><vehicle id='a' x='1' y='2'/></timestep></fcd-export>", "no numeric 'time'"),
    ("<fcd-export><timestep time='0'><vehicle x='1' y='2'/></timestep></fcd-export>", "has no 'id'"),
    ("<fcd-export><timestep time='0'><vehicle id='a' x='1' y='2'/><vehicle id='a' x='2' y='2'/></timestep>"
     "</fcd-export>", "appears twice"),
    ("<fcd-export></fcd-export>", "no vehicle positions"),
])
def test_bad_traces_are_one_line_scenario_errors(tmp_path, text, match):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=match) as info:
        make(path)
    assert info.value.key_path.startswith("world.road") and "\n" not in str(info.value)


def test_missing_or_unreadable_files(tmp_path):
    with pytest.raises(ScenarioError, match="world.road.trace: trace file not found"):
        read_fcd(tmp_path / "nope.xml")
    bad_gz = tmp_path / "bad.xml.gz"
    bad_gz.write_bytes(b"not gzip at all")
    with pytest.raises(ScenarioError, match="cannot read"):
        read_fcd(bad_gz)
    pq = tmp_path / "cols.parquet"
    rows().drop(columns=["y"]).to_parquet(pq)
    with pytest.raises(ScenarioError, match="lacks the columns"):
        read_fcd(pq)


def test_parquet_without_pyarrow_names_the_extra(traces, monkeypatch):
    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    with pytest.raises(ScenarioError, match=r"pip install 'vfedsim\[parquet\]'"):
        read_fcd(traces["parquet"])


def test_trace_path_is_relative_to_the_scenario_file(tmp_path, traces):
    raw = {"world": {"road": {"name": "sumo-fcd", "trace": "t.fcd.xml"}}}
    s = parse_scenario(raw, base_dir=traces["xml"].parent)
    assert Path(s.world.road.trace) == traces["xml"].resolve()
    with pytest.raises(ScenarioError, match="world.road.trace: trace file not found"):
        parse_scenario(raw, base_dir=tmp_path / "elsewhere")
    with pytest.raises(ScenarioError, match="world.road.trace: must be a .xml"):
        parse_scenario({"world": {"road": {"name": "sumo-fcd", "trace": "t.csv"}}}, base_dir=tmp_path)


def test_shipped_trace_replays_on_the_grid_streets():
    assert SHIPPED.stat().st_size < 300_000
    m = FcdMobility(SumoFcdRoad(trace=str(SHIPPED)), None, seed=0, duration_s=120.0)
    assert m.trips.n == 30 and m.timestep_s == 1.0
    again = FcdMobility(SumoFcdRoad(trace=str(SHIPPED)), None, seed=0, duration_s=120.0)
    np.testing.assert_array_equal(m._t, again._t) and np.testing.assert_array_equal(m._p, again._p)
    ids = np.arange(m.trips.n)
    for t in np.arange(0.0, 120.0, 2.5):
        pos, vel = m.positions_of(ids, t)
        on = m.active_of(ids, t)
        gx = np.abs(pos[on, 0] - np.round(pos[on, 0] / 433.0) * 433.0)
        gy = np.abs(pos[on, 1] - np.round(pos[on, 1] / 250.0) * 250.0)
        assert np.all(np.minimum(gx, gy) < 12.0)  # on a street of the 433 m x 250 m grid (SUMO's lanes)
        assert np.all(np.hypot(vel[:, 0], vel[:, 1]) < 25.0)  # [m/s] below 90 km/h on 50 km/h streets
        nxt = m.next_change_s(ids, t)
        assert np.all(nxt > t)
