"""Highway trips: determinism, per-vehicle streams, linear motion, trip windows, staying on the road."""
from __future__ import annotations

import numpy as np
import pytest

from vfedsim.errors import ScenarioError
from vfedsim.scenario import HighwayRoad, TrafficConfig
from vfedsim.world.mobility import MOBILITY, HighwayMobility, TripMobility, Trips

ROAD = HighwayRoad(length_m=1500.0, lanes_per_direction=3, lane_width_m=4.0, directions=2)
TRAFFIC = TrafficConfig(initial_vehicles=15, arrival_rate_per_s=0.2)


def make(seed=0, traffic=TRAFFIC, duration=300.0, road=ROAD):
    return HighwayMobility(road, traffic, seed=seed, duration_s=duration)


def test_registry_names_highway():
    assert MOBILITY.get("highway") is HighwayMobility
    with pytest.raises(ScenarioError, match="allowed: highway"):
        MOBILITY.get("grid")


def test_deterministic_and_seed_dependent():
    a, b, c = make(0).trips, make(0).trips, make(1).trips
    for field in Trips.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.n != c.n or not np.array_equal(a.speed_mps, c.speed_mps)


def test_trip_table_is_consistent():
    tr = make().trips
    n0 = TRAFFIC.initial_vehicles
    assert tr.n > n0
    assert np.all(tr.t_enter_s[:n0] == 0.0)
    assert np.all(np.diff(tr.t_enter_s[n0:]) > 0) and tr.t_enter_s[-1] <= 300.0
    assert set(np.unique(tr.direction)) <= {-1, 1}
    assert np.all((tr.lane >= 0) & (tr.lane < 3))
    assert np.all(np.sign(tr.y_m) == -tr.direction)
    np.testing.assert_allclose(np.abs(tr.y_m), (tr.lane + 0.5) * 4.0)
    sp = TRAFFIC.speed
    assert np.all((tr.speed_mps >= sp.min_kmh / 3.6 - 1e-12) & (tr.speed_mps <= sp.max_kmh / 3.6 + 1e-12))
    # arrivals enter at the end their direction starts from
    arr = slice(n0, None)
    np.testing.assert_array_equal(tr.x_enter_m[arr], np.where(tr.direction[arr] > 0, 0.0, ROAD.length_m))
    # trip length within bounds unless the road ended first
    length = (tr.t_exit_s - tr.t_enter_s) * tr.speed_mps
    to_end = np.where(tr.direction > 0, ROAD.length_m - tr.x_enter_m, tr.x_enter_m)
    tl = TRAFFIC.trip_length
    assert np.all(length <= tl.max_m + 1e-6)
    assert np.all((length >= tl.min_m - 1e-6) | np.isclose(length, to_end))


def test_adding_vehicles_does_not_change_others():
    base = make(traffic=TrafficConfig(initial_vehicles=5, arrival_rate_per_s=0.05)).trips
    more_arrivals = make(traffic=TrafficConfig(initial_vehicles=5, arrival_rate_per_s=0.5)).trips
    more_initial = make(traffic=TrafficConfig(initial_vehicles=9, arrival_rate_per_s=0.05)).trips
    for other in (more_arrivals, more_initial):
        for field in ("x_enter_m", "direction", "lane", "y_m", "speed_mps", "t_exit_s"):
            np.testing.assert_array_equal(getattr(base, field)[:5], getattr(other, field)[:5])


def test_positions_linear_in_time_and_inactive_outside_window():
    m = make()
    tr = m.trips
    t1, t2 = 40.0, 41.5
    s1, s2, s3 = m.state(t1), m.state(t2), m.state(t1 + 2 * (t2 - t1))
    both = s1.active & s2.active & s3.active
    assert both.sum() > 5
    np.testing.assert_allclose((s3.position_m - s2.position_m)[both], (s2.position_m - s1.position_m)[both])
    np.testing.assert_allclose(s2.position_m[both] - s1.position_m[both], s1.velocity_mps[both] * (t2 - t1))
    np.testing.assert_allclose(np.abs(s1.velocity_mps[both, 0]), tr.speed_mps[both])
    np.testing.assert_array_equal(s1.active, (tr.t_enter_s <= t1) & (t1 < tr.t_exit_s))
    assert np.all(s1.velocity_mps[~s1.active] == 0.0)


def test_everyone_stays_on_the_road():
    m = make(duration=600.0)
    for t in np.linspace(0, 700, 71):
        s = m.state(t)
        assert np.all(np.isfinite(s.position_m))
        assert np.all((s.position_m[:, 0] >= -1e-9) & (s.position_m[:, 0] <= ROAD.length_m + 1e-9))
        assert np.all(np.abs(s.position_m[:, 1]) <= 3 * 4.0)


def test_positions_of_and_travelled_match_state():
    m = make()
    ids = np.array([3, 0, 17, 3])
    s = m.state(55.0)
    pos, vel = m.positions_of(ids, 55.0)
    np.testing.assert_array_equal(pos, s.position_m[ids])
    np.testing.assert_array_equal(vel, s.velocity_mps[ids])
    tr = m.trips
    expected = np.clip(55.0 - tr.t_enter_s[ids], 0, tr.t_exit_s[ids] - tr.t_enter_s[ids]) * tr.speed_mps[ids]
    np.testing.assert_allclose(m.travelled_m(ids, 55.0), expected)


def test_one_direction_road():
    road = HighwayRoad(length_m=1000.0, lanes_per_direction=2, directions=1)
    tr = make(road=road).trips
    assert np.all(tr.direction == 1) and np.all(tr.y_m < 0)


def test_trip_mobility_from_hand_made_trips():
    trips = Trips(t_enter_s=np.array([0.0, 10.0]), t_exit_s=np.array([20.0, 30.0]),
                  x_enter_m=np.array([100.0, 500.0]), direction=np.array([1, -1], dtype=np.int8),
                  lane=np.array([0, 1]), y_m=np.array([-2.0, 6.0]), speed_mps=np.array([10.0, 20.0]))
    m = TripMobility(trips)
    s = m.state(15.0)
    np.testing.assert_allclose(s.position_m, [[250.0, -2.0], [400.0, 6.0]])
    np.testing.assert_allclose(s.velocity_mps, [[10.0, 0.0], [-20.0, 0.0]])
    s = m.state(25.0)  # vehicle 0 done: sits at its trip's end
    np.testing.assert_array_equal(s.active, [False, True])
    np.testing.assert_allclose(s.position_m[0], [300.0, -2.0])
    np.testing.assert_allclose(m.state(5.0).position_m[1], [500.0, 6.0])


def test_empty_road():
    m = make(traffic=TrafficConfig(initial_vehicles=0, arrival_rate_per_s=0.0))
    assert m.trips.n == 0
    s = m.state(10.0)
    assert s.position_m.shape == (0, 2) and s.active.shape == (0,)


def test_one_vehicle_queries_equal_the_batched_ones():
    mob = HighwayMobility(HighwayRoad(length_m=3000.0), TrafficConfig(initial_vehicles=30, arrival_rate_per_s=0.2),
                          seed=4, duration_s=200.0)
    ids = np.arange(mob.trips.n)
    for t in (0.0, 17.3, 90.0, 250.0):
        pos, vel = mob.positions_of(ids, t)
        trav = mob.travelled_m(ids, t)
        for i in ids:
            p1, v1 = mob.positions_of([i], t)
            np.testing.assert_array_equal(p1[0], pos[i])
            np.testing.assert_array_equal(v1[0], vel[i])
            assert mob.travelled_m([i], t)[0] == trav[i]


def test_highway_next_change_is_entry_then_exit():
    m = make(traffic=TrafficConfig(initial_vehicles=3, arrival_rate_per_s=0.1), duration=100.0)
    tr = m.trips
    i = tr.n - 1  # an arrival
    t0, t1 = float(tr.t_enter_s[i]), float(tr.t_exit_s[i])
    assert t0 > 0.0
    np.testing.assert_array_equal(m.next_change_s([0, i], 0.0), [tr.t_exit_s[0], t0])
    assert m.next_change_s([i], t0)[0] == t1 and m.next_change_s([i], (t0 + t1) / 2)[0] == t1
    assert m.next_change_s([i], t1)[0] == np.inf


def test_highway_rsu_sites_are_the_road_layout_or_explicit():
    from vfedsim.scenario import RSUConfig
    from vfedsim.world.radio import rsu_positions

    m = make()
    cfg = RSUConfig(spacing_m=400.0, first_at_m=200.0)
    np.testing.assert_array_equal(m.rsu_sites(cfg), rsu_positions(m.road, cfg))
    np.testing.assert_array_equal(m.rsu_sites(RSUConfig(positions_m=((1.0, 2.0),))), [[1.0, 2.0]])
    assert list(m.trips.columns()) == ["t_enter_s", "t_exit_s", "direction", "lane", "speed_mps"]
