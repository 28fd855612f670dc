"""Urban Manhattan-grid mobility: road graph, shortest routes with turns, lanes, timing, RSU sites."""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from vfedsim.scenario import RSUConfig, TrafficConfig, UrbanGridRoad
from vfedsim.world.mobility import MOBILITY
from vfedsim.rng import stream
from vfedsim.world.urban import UrbanGridMobility, grid_graph, lane_polyline, route_nodes

ROAD = UrbanGridRoad(rows=4, cols=5)
TRAFFIC = TrafficConfig(initial_vehicles=15, arrival_rate_per_s=0.1)


def make(seed: int = 0, road: UrbanGridRoad = ROAD, traffic: TrafficConfig = TRAFFIC,
         duration: float = 300.0) -> UrbanGridMobility:
    return UrbanGridMobility(road, traffic, seed=seed, duration_s=duration)


def test_registered_by_name():
    assert MOBILITY.get("urban-grid") is UrbanGridMobility


def test_grid_graph_follows_the_tr37885_block_sizes():
    g = grid_graph(ROAD)
    assert g.number_of_nodes() == 20 and g.number_of_edges() == 4 * 4 + 3 * 5
    assert g.nodes[7]["pos"] == (2 * 433.0, 250.0) and g.nodes[7]["rc"] == (1, 2)
    assert g.edges[7, 8]["length_m"] == 433.0 and g.edges[7, 12]["length_m"] == 250.0


def test_routes_are_shortest_paths_between_different_intersections():
    m = make()
    g = m.graph
    for route in m.routes:
        assert route[0] != route[-1] and len(set(route)) == len(route)
        assert all(g.has_edge(u, w) for u, w in zip(route, route[1:]))
        length = sum(g.edges[u, w]["length_m"] for u, w in zip(route, route[1:]))
        assert length == pytest.approx(nx.shortest_path_length(g, route[0], route[-1], weight="length_m"))


def test_routes_choose_among_equal_turns():
    """Between opposite corners many staircases are shortest; the vehicles do not all take the same one."""
    g = grid_graph(ROAD)
    dist = nx.single_source_dijkstra_path_length(g, 19, weight="length_m")
    corner = {tuple(route_nodes(g, dist, 0, 19, stream(0, "test", k))) for k in range(20)}
    assert len(corner) > 3
    m = make(traffic=TrafficConfig(initial_vehicles=100, arrival_rate_per_s=0.0))
    turns = [int(np.sum(np.any(np.diff(np.sign(np.diff(m.node_xy[r], axis=0)), axis=0) != 0, axis=1)))
             for r in m.routes]
    assert max(turns) >= 2


def test_same_seed_same_trips_other_seed_differs_and_vehicles_keep_their_draws():
    a, b, c = make(0), make(0), make(1)
    for name in ("t_enter_s", "t_exit_s", "speed_mps", "lane"):
        np.testing.assert_array_equal(getattr(a.trips, name), getattr(b.trips, name))
    np.testing.assert_array_equal(a._t, b._t)
    np.testing.assert_array_equal(a._p, b._p)
    assert not np.array_equal(a.trips.speed_mps[:10], c.trips.speed_mps[:10])
    more = make(0, traffic=TrafficConfig(initial_vehicles=15, arrival_rate_per_s=0.5))
    n = a.trips.n
    np.testing.assert_array_equal(more.trips.speed_mps[:15], a.trips.speed_mps[:15])
    np.testing.assert_array_equal(more.trips.lane[:n], a.trips.lane)
    assert more.routes[:15] == a.routes[:15]


def test_speeds_lanes_and_entry_times():
    m = make()
    tr = m.trips
    assert np.all(tr.speed_mps >= 15 / 3.6) and np.all(tr.speed_mps <= 60 / 3.6)
    assert set(np.unique(tr.lane)) <= {0, 1}
    assert np.all(tr.t_enter_s[:15] == 0.0) and np.all(np.diff(tr.t_enter_s[15:]) > 0)
    assert np.all(tr.t_exit_s > tr.t_enter_s)
    assert tr.direction is None and tr.x_enter_m is None
    assert list(tr.columns()) == ["t_enter_s", "t_exit_s", "lane", "speed_mps"]


def test_hand_computed_route_with_one_left_turn():
    """A vehicle in lane 0 (offset 1.75 m) from (0, 0) east to (433, 0) then north to (433, 250)."""
    xy = np.array([[0.0, 0.0], [433.0, 0.0], [433.0, 250.0]])
    pts = lane_polyline(xy, 1.75)
    np.testing.assert_allclose(pts, [[0.0, -1.75], [434.75, -1.75], [434.75, 250.0]])
    right = lane_polyline(xy[::-1], 1.75)  # back: west then ... a right turn cuts the corner
    np.testing.assert_allclose(right, [[433.0 - 1.75, 250.0], [433.0 - 1.75, 1.75], [0.0, 1.75]])
    straight = lane_polyline(np.array([[0.0, 0.0], [433.0, 0.0], [866.0, 0.0]]), 5.25)
    np.testing.assert_allclose(straight, [[0.0, -5.25], [866.0, -5.25]])  # no breakpoint where nothing turns


def test_positions_velocities_and_the_turn_time():
    m = make()
    # a vehicle that arrived (starts at a node) and turns at least once
    i = next(i for i in range(15, m.trips.n) if m._cnt[i] >= 3)
    a = int(m._off[i])
    t0, speed = float(m.trips.t_enter_s[i]), float(m.trips.speed_mps[i])
    p0, p1, p2 = m._p[a], m._p[a + 1], m._p[a + 2]
    t_turn = t0 + np.hypot(*(p1 - p0)) / speed
    assert m._t[a + 1] == pytest.approx(t_turn)
    d1 = (p1 - p0) / np.hypot(*(p1 - p0))
    d2 = (p2 - p1) / np.hypot(*(p2 - p1))
    assert abs(float(d1 @ d2)) < 1e-12  # a right angle
    for frac in (0.0, 0.3, 0.999):
        t = t0 + frac * (t_turn - t0)
        pos, vel = m.positions_of([i], t)
        np.testing.assert_allclose(pos[0], p0 + d1 * speed * (t - t0), atol=1e-9)
        np.testing.assert_allclose(vel[0], d1 * speed, atol=1e-9)
        assert m.next_change_s([i], t)[0] == m._t[a + 1]
    pos, vel = m.positions_of([i], m._t[a + 1])  # at the turn: the corner, already the new heading
    np.testing.assert_allclose(pos[0], p1, atol=1e-9)
    np.testing.assert_allclose(vel[0], d2 * speed, atol=1e-9)
    assert m.next_change_s([i], m._t[a + 1])[0] == m._t[a + 2]
    np.testing.assert_allclose(m.travelled_m([i], t_turn + 2.0), np.hypot(*(p1 - p0)) + 2.0 * speed)


def test_before_and_after_the_trip():
    m = make()
    i = m.trips.n - 1
    t0, t1 = float(m.trips.t_enter_s[i]), float(m.trips.t_exit_s[i])
    a, b = int(m._off[i]), int(m._off[i + 1])
    pos, vel = m.positions_of([i], t0 - 5.0)
    np.testing.assert_array_equal(pos[0], m._p[a]) and np.testing.assert_array_equal(vel[0], [0.0, 0.0])
    assert m.next_change_s([i], t0 - 5.0)[0] == t0 and not m.active_of([i], t0 - 5.0)[0]
    assert m.active_of([i], t0)[0] and not m.active_of([i], t1)[0]
    pos, vel = m.positions_of([i], t1 + 5.0)
    np.testing.assert_array_equal(pos[0], m._p[b - 1]) and np.testing.assert_array_equal(vel[0], [0.0, 0.0])
    assert m.next_change_s([i], t1)[0] == math.inf
    assert m.travelled_m([i], t1 + 5.0)[0] == pytest.approx(m.trips.speed_mps[i] * (t1 - t0))
    assert m.travelled_m([i], t0 - 1.0)[0] == 0.0


def test_vehicles_stay_in_their_lane_on_the_road_graph_edges():
    road = ROAD
    m = make(road=road)
    half_road = road.lanes_per_direction * road.lane_width_m
    for t in np.linspace(0.0, 300.0, 61):
        s = m.state(t)
        pos, vel = s.position_m[s.active], s.velocity_mps[s.active]
        lane = m.trips.lane[s.active]
        gx = np.abs(pos[:, 0] - np.round(pos[:, 0] / road.block_x_m) * road.block_x_m)
        gy = np.abs(pos[:, 1] - np.round(pos[:, 1] / road.block_y_m) * road.block_y_m)
        assert np.all(np.minimum(gx, gy) <= half_road + 1e-9)  # on a street
        assert np.all((pos >= -half_road - 1e-9).all(axis=1))
        assert np.all(pos[:, 0] <= (road.cols - 1) * road.block_x_m + half_road + 1e-9)
        assert np.all(pos[:, 1] <= (road.rows - 1) * road.block_y_m + half_road + 1e-9)
        speed = np.hypot(vel[:, 0], vel[:, 1])
        np.testing.assert_allclose(speed, m.trips.speed_mps[s.active], rtol=1e-12)
        assert np.all((vel[:, 0] == 0) | (vel[:, 1] == 0))  # along a street
        offset = (lane + 0.5) * road.lane_width_m
        east = vel[:, 0] > 0  # right-hand traffic: eastbound lanes lie south of the centre line
        y_line = np.round(pos[east, 1] / road.block_y_m) * road.block_y_m
        np.testing.assert_allclose(pos[east, 1], y_line - offset[east], atol=1e-9)
        north = vel[:, 1] > 0
        x_line = np.round(pos[north, 0] / road.block_x_m) * road.block_x_m
        np.testing.assert_allclose(pos[north, 0], x_line + offset[north], atol=1e-9)


def test_velocity_is_constant_until_next_change():
    m = make()
    ids = np.arange(m.trips.n)
    for t in (0.0, 12.5, 77.7, 150.0):
        nxt = m.next_change_s(ids, t)
        _, v0 = m.positions_of(ids, t)
        finite = np.isfinite(nxt)
        mid = np.where(finite, (t + nxt) / 2.0, t + 1e6)
        for i in np.flatnonzero(finite)[:40]:
            _, v = m.positions_of([i], mid[i])
            np.testing.assert_array_equal(v[0], v0[i])
            _, v_at = m.positions_of([i], nxt[i])
            assert not np.array_equal(v_at[0], v0[i])
        assert np.all(nxt > t)


def test_one_vehicle_queries_equal_the_batched_ones():
    m = make()
    ids = np.arange(m.trips.n)
    for t in (0.0, 17.3, 90.0, 250.0, 1e4):
        pos, vel = m.positions_of(ids, t)
        trav = m.travelled_m(ids, t)
        s = m.state(t)
        np.testing.assert_array_equal(s.position_m, pos)
        np.testing.assert_array_equal(s.velocity_mps, vel)
        np.testing.assert_array_equal(s.active, m.active_of(ids, t))
        nxt = m.next_change_s(ids, t)
        for i in ids:
            p1, v1 = m.positions_of([i], t)
            np.testing.assert_array_equal(p1[0], pos[i])
            np.testing.assert_array_equal(v1[0], vel[i])
            assert m.travelled_m([i], t)[0] == trav[i]
            assert m.next_change_s([i], t)[0] == nxt[i]


def test_rsu_sites_at_intersections():
    m = make()
    edge = 2 * 3.5 + 10.0
    every = m.rsu_sites(RSUConfig())
    assert every.shape == (20, 2)
    np.testing.assert_allclose(every[0], [edge, edge])
    second = m.rsu_sites(RSUConfig(every_nth_intersection=2, side_offset_m=0.0))
    np.testing.assert_allclose(second, [[x + 7.0, y + 7.0] for y in (0.0, 500.0) for x in (0.0, 866.0, 1732.0)])
    explicit = m.rsu_sites(RSUConfig(positions_m=((1.0, 2.0), (3.0, 4.0))))
    np.testing.assert_array_equal(explicit, [[1.0, 2.0], [3.0, 4.0]])


def test_empty_grid():
    m = make(traffic=TrafficConfig(initial_vehicles=0, arrival_rate_per_s=0.0))
    assert m.trips.n == 0
    s = m.state(3.0)
    assert s.position_m.shape == (0, 2) and m.next_change_s([], 3.0).shape == (0,)
