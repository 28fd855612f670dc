"""What a run writes about its world so that network figures can be drawn from its files alone.

Numpy only. Two pieces, both pure functions of the mobility model and the scenario (no simulation):

- `world_layout`: the road's geometry as polylines [m], the RSU sites [m], their antenna height [m] and the
  horizontal coverage radius [m] of the channel profile (`vfedsim.world.channel.coverage_radius_m`, the radio's
  own rule), written to ``world.json``;
- `sample_tracks`: vehicles' positions [m] every ``period_s`` [s] while they are on the road, written to
  ``tracks.csv`` (columns ``time_s, vehicle, x_m, y_m``).

Road geometry by mobility model: ``highway``: one line per lane centre (x from 0 to the road's length);
``urban-grid``: the street centre lines (the road graph's edges); ``sumo-fcd``: the trace's own geometry, the
distinct segments that its vehicles drove (rounded to 0.5 m, at most `MAX_TRACE_SEGMENTS`); other path-based
models (``static``): the segments of their vehicles' paths (``paths``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["world_layout", "road_polylines", "sample_tracks", "MAX_TRACE_SEGMENTS"]

MAX_TRACE_SEGMENTS = 20_000
"""A trace's distinct road segments kept in world.json (evenly thinned beyond that; the map is a sketch)."""


def road_polylines(mobility: Any) -> tuple[str, list[np.ndarray]]:
    """``(kind, polylines)``: each polyline an (K, 2) array of (x, y) [m]; kind ``lanes``, ``streets``,
    ``trace``, ``paths`` or ``none`` (see the module docstring)."""
    road = getattr(mobility, "road", None)
    name = getattr(road, "name", "")
    if name == "highway":
        from .mobility import lane_centre_y_m

        lines = []
        directions = (1, -1) if road.directions == 2 else (1,)
        for direction in directions:
            for lane in range(road.lanes_per_direction):
                y = float(lane_centre_y_m(np.array([direction]), np.array([lane]), road.lane_width_m)[0])
                lines.append(np.array([[0.0, y], [float(road.length_m), y]]))
        return "lanes", lines
    graph = getattr(mobility, "graph", None)
    if graph is not None and hasattr(mobility, "node_xy"):
        xy = mobility.node_xy
        return "streets", [np.array([xy[u], xy[v]], dtype=np.float64) for u, v in sorted(graph.edges())]
    if hasattr(mobility, "_p") and hasattr(mobility, "_off"):  # a PathMobility (sumo-fcd, static): its paths
        return ("trace" if name == "sumo-fcd" else "paths"), _trace_segments(mobility._p, mobility._off)
    return "none", []


def _trace_segments(points: np.ndarray, off: np.ndarray) -> list[np.ndarray]:
    """Distinct segments between consecutive breakpoints of each vehicle (rounded to 0.5 m, direction-free)."""
    if points.shape[0] < 2:
        return []
    a, b = points[:-1], points[1:]
    keep = np.ones(points.shape[0] - 1, dtype=bool)
    keep[off[1:-1] - 1] = False  # the jump from one vehicle's last point to the next one's first
    a, b = np.round(a[keep] * 2.0) / 2.0, np.round(b[keep] * 2.0) / 2.0
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo, hi = np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)
    seg = np.unique(np.concatenate([lo, hi], axis=1), axis=0)
    seg = seg[np.any(seg[:, :2] != seg[:, 2:], axis=1)]
    if seg.shape[0] > MAX_TRACE_SEGMENTS:
        seg = seg[np.linspace(0, seg.shape[0] - 1, MAX_TRACE_SEGMENTS).astype(np.int64)]
    return [s.reshape(2, 2) for s in seg]


def world_layout(scenario: Any, mobility: Any) -> dict[str, Any]:
    """The plain-data content of ``world.json`` (see the module docstring and docs/outputs.md)."""
    from .channel import coverage_radius_m

    kind, lines = road_polylines(mobility)
    sites = np.asarray(mobility.rsu_sites(scenario.world.rsus), dtype=np.float64).reshape(-1, 2)
    network = scenario.world.network.model
    height = float(scenario.world.rsus.height_m)
    radius: float | None = None
    if network != "ideal":
        radius = float(coverage_radius_m(scenario.world.channel, height_m=height))
        radius = radius if math.isfinite(radius) else None
    channel = scenario.world.channel
    return {
        "road": {"name": scenario.world.road.name, "kind": kind,
                 "polylines": [np.round(p, 3).tolist() for p in lines]},
        "rsus": {"x_m": np.round(sites[:, 0], 3).tolist(), "y_m": np.round(sites[:, 1], 3).tolist(),
                 "height_m": height, "coverage_radius_m": None if radius is None else round(radius, 3)},
        "network": network,
        "channel": {"profile": channel.profile, "bandwidth_hz": float(channel.bandwidth_hz),
                    "min_snr_db": float(channel.min_snr_db)},
    }


def sample_tracks(mobility: Any, vehicles: np.ndarray, *, end_s: float, period_s: float
                  ) -> dict[str, np.ndarray]:
    """Positions of ``vehicles`` at t = 0, ``period_s``, 2 ``period_s``, ... <= ``end_s`` [s] while each is on
    the road (t_enter <= t < t_exit), plus one row at each vehicle's own entry and last position on the road
    within [0, ``end_s``], so that short trips still have a line. Columns ``time_s, vehicle, x_m, y_m``
    (float, int64, float, float), sorted by vehicle then time."""
    trips = mobility.trips
    ids = np.unique(np.asarray(vehicles, dtype=np.int64))
    enter = np.maximum(trips.t_enter_s[ids], 0.0)
    leave = np.minimum(trips.t_exit_s[ids], float(end_s))
    ids, enter, leave = ids[leave > enter], enter[leave > enter], leave[leave > enter]
    t_parts, v_parts, p_parts = [], [], []
    grid = np.arange(0.0, float(end_s) + 1e-9, float(period_s))
    for t in grid.tolist():  # one vectorised query per instant
        on = ids[(enter < t) & (leave > t)]
        if on.size:
            t_parts.append(np.full(on.size, t))
            v_parts.append(on)
            p_parts.append(np.asarray(mobility.positions_of(on, t)[0]).reshape(-1, 2))
    # the ends of each vehicle's stretch on the road (an exit instant itself is off the road: hold the end)
    for i, v in enumerate(ids.tolist()):
        for t in (float(enter[i]), float(np.nextafter(leave[i], -math.inf))):
            t_parts.append(np.array([t]))
            v_parts.append(np.array([v], dtype=np.int64))
            p_parts.append(np.asarray(mobility.positions_of(np.array([v]), t)[0]).reshape(-1, 2))
    if not t_parts:
        return {"time_s": np.zeros(0), "vehicle": np.zeros(0, dtype=np.int64), "x_m": np.zeros(0),
                "y_m": np.zeros(0)}
    t_all, v_all, p_all = np.concatenate(t_parts), np.concatenate(v_parts), np.concatenate(p_parts)
    order = np.lexsort((t_all, v_all))
    t_all, v_all, p_all = t_all[order], v_all[order], p_all[order]
    keep = np.ones(t_all.size, dtype=bool)
    keep[1:] = (v_all[1:] != v_all[:-1]) | (t_all[1:] != t_all[:-1])  # an end that falls on the grid
    return {"time_s": t_all[keep], "vehicle": v_all[keep], "x_m": p_all[keep, 0], "y_m": p_all[keep, 1]}
