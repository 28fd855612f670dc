"""Urban Manhattan-grid mobility: vehicles drive shortest routes on a networkx road graph of intersections.

Layout (3GPP TR 37.885 §6.1.2 urban grid, after TR 36.885 Table A.1.2-1: blocks of 433 m x 250 m, 2 lanes
per direction of 3.5 m): intersection (r, c), r < ``rows``, c < ``cols``, is graph node ``r cols + c`` at
x = c ``block_x_m``, y = r ``block_y_m`` [m]; edges join horizontal and vertical neighbours, with attribute
``length_m`` [m]. Traffic is right-handed: a vehicle in lane k (0 = next to the centre line) drives at
(k + 0.5) ``lane_width_m`` to the right of the street's centre line; it turns at the intersection of its
two lanes' centre lines, so a right turn cuts the corner and a left turn crosses the centre.

Each vehicle i draws from ``stream(seed, "vehicle", i)``, always in this order: its start node, its
destination (another node), its lane, its speed uniform in [min_speed_kmh, max_speed_kmh] (constant, in
km/h, converted to m/s), a fraction in [0, 1), then one choice per intersection with more than one way
on. Its route is a shortest path (networkx Dijkstra distances to the destination): at each intersection
it picks uniformly among the neighbours that stay on some shortest path, so routes turn in varied places.
``traffic.initial_vehicles`` (ids 0 .. n0-1) are on their routes at t = 0, the fraction of the way along;
later vehicles arrive as a Poisson process of ``traffic.arrival_rate_per_s`` (``stream(seed, "arrivals")``)
at their start node. A vehicle leaves at its destination.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from ..rng import stream
from ..scenario import RSUConfig, TrafficConfig, UrbanGridRoad
from .mobility import MOBILITY, PathMobility, _poisson_times, explicit_rsu_sites

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["UrbanGridMobility", "grid_graph", "route_nodes", "lane_polyline"]

_TIE_M = 1e-6  # [m] two route lengths closer than this are equally short


def grid_graph(road: UrbanGridRoad) -> "nx.Graph":
    """The road graph: node ``r cols + c`` with ``pos`` (x, y) [m] and ``rc`` (r, c); edges with ``length_m``."""
    import networkx as nx  # imported here: `vfedsim validate` of a highway scenario does not need it

    g = nx.Graph()
    for r in range(road.rows):
        for c in range(road.cols):
            g.add_node(r * road.cols + c, pos=(c * road.block_x_m, r * road.block_y_m), rc=(r, c))
    for r in range(road.rows):
        for c in range(road.cols):
            u = r * road.cols + c
            if c + 1 < road.cols:
                g.add_edge(u, u + 1, length_m=road.block_x_m)
            if r + 1 < road.rows:
                g.add_edge(u, u + road.cols, length_m=road.block_y_m)
    return g


def route_nodes(graph: "nx.Graph", dist_to_dst: dict[int, float], src: int, dst: int,
                rng: np.random.Generator) -> list[int]:
    """A shortest route src -> dst, choosing uniformly (one ``rng.integers`` per intersection with more than
    one option) among the neighbours that stay on some shortest path; ``dist_to_dst`` [m] from Dijkstra."""
    route = [src]
    u = src
    while u != dst:
        here = dist_to_dst[u]
        options = sorted(w for w in graph.neighbors(u)
                         if dist_to_dst[w] + graph.edges[u, w]["length_m"] <= here + _TIE_M)
        u = options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]
        route.append(u)
    return route


def lane_polyline(node_xy: np.ndarray, offset_m: float) -> np.ndarray:
    """(K, 2) corner points [m] of a lane ``offset_m`` to the right of a route through ``node_xy`` (M, 2).

    The start and end points are offset to the right of the first and last streets; at a turn the corner is
    node + offset (right(d_in) + right(d_out)), the crossing of the two lanes' centre lines (exact for the
    grid's right angles); intersections driven straight through are not breakpoints. right((dx, dy)) =
    (dy, -dx) (right-hand traffic, y to the left of +x).
    """
    d = np.diff(node_xy, axis=0)
    d = d / np.hypot(d[:, 0], d[:, 1])[:, None]
    right = np.stack([d[:, 1], -d[:, 0]], axis=1)
    pts = [node_xy[0] + offset_m * right[0]]
    for j in range(1, len(d)):
        if np.any(d[j] != d[j - 1]):
            pts.append(node_xy[j] + offset_m * (right[j - 1] + right[j]))
    pts.append(node_xy[-1] + offset_m * right[-1])
    return np.asarray(pts)


def _trim(points: np.ndarray, s0_m: float) -> np.ndarray:
    """The polyline ``points`` from arc length ``s0_m`` [m] on (0 <= s0 < its length)."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    j = min(int(np.searchsorted(cum, s0_m, side="right")) - 1, len(seg) - 1)
    start = points[j] + (s0_m - cum[j]) / seg[j] * (points[j + 1] - points[j])
    return np.vstack([start, points[j + 1:]])


@MOBILITY.register("urban-grid")
class UrbanGridMobility(PathMobility):
    """Vehicles on an `UrbanGridRoad` (see the module docstring); ``graph`` is the networkx road graph."""

    def __init__(self, road: UrbanGridRoad, traffic: TrafficConfig, *, seed: int, duration_s: float) -> None:
        import networkx as nx

        self.road = road
        self.traffic = traffic
        self.graph = grid_graph(road)
        xy = np.array([self.graph.nodes[u]["pos"] for u in range(self.graph.number_of_nodes())], dtype=np.float64)
        self.node_xy = xy

        @lru_cache(maxsize=None)
        def dist_to(dst: int) -> dict[int, float]:
            return nx.single_source_dijkstra_path_length(self.graph, dst, weight="length_m")

        n0 = int(traffic.initial_vehicles)
        arrivals = _poisson_times(stream(seed, "arrivals"), traffic.arrival_rate_per_s, float(duration_s))
        n, n_nodes = n0 + arrivals.size, xy.shape[0]
        t_enter = np.concatenate([np.zeros(n0), arrivals])
        lane = np.empty(n, dtype=np.int64)
        speed = np.empty(n)
        self.routes: list[list[int]] = []
        times, points = [], []
        for i in range(n):
            rng = stream(seed, "vehicle", i)
            src = int(rng.integers(n_nodes))
            dst = int(rng.integers(n_nodes - 1))
            dst += dst >= src
            lane[i] = rng.integers(road.lanes_per_direction)
            speed[i] = rng.uniform(road.min_speed_kmh, road.max_speed_kmh) / 3.6
            fraction = rng.random()
            route = route_nodes(self.graph, dist_to(dst), src, dst, rng)
            self.routes.append(route)
            pts = lane_polyline(xy[route], (lane[i] + 0.5) * road.lane_width_m)
            if i < n0:  # already driving at t = 0: start part of the way along
                length = float(np.hypot(*np.diff(pts, axis=0).T).sum())
                pts = _trim(pts, fraction * length)
            cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
            times.append(t_enter[i] + cum / speed[i])
            points.append(pts)
        super().__init__(PathMobility.trips_from(times, points, speed_mps=speed, lane=lane), times, points)

    def rsu_sites(self, rsus: RSUConfig) -> np.ndarray:
        """(R, 2) RSU positions [m]: ``rsus.positions_m`` if given, else one at each intersection (r, c) with
        r and c multiples of ``rsus.every_nth_intersection``, on its corner towards +x, +y at
        ``side_offset_m`` beyond both streets' edges (edge: lanes_per_direction x lane_width_m from the
        centre line), in node order."""
        sites = explicit_rsu_sites(rsus)
        if sites is not None:
            return sites
        k = int(rsus.every_nth_intersection)
        rc = np.array([self.graph.nodes[u]["rc"] for u in range(self.node_xy.shape[0])])
        chosen = (rc[:, 0] % k == 0) & (rc[:, 1] % k == 0)
        corner = self.road.lanes_per_direction * self.road.lane_width_m + rsus.side_offset_m
        return self.node_xy[chosen] + corner
