"""V2V relay paths for `vfedsim.network.fluid.FluidNetwork`: pure functions over arrays, no SimPy
(docs/network.md, "V2V relaying").

A vehicle out of every RSU's coverage may reach one through neighbours (``world.network.v2v``). The V2V
graph at one instant has the vehicles on the road as nodes and an edge between two vehicles within
``range_m`` [m] of each other whose V2V link has a positive rate (`v2v_rate_bps`). A relay path of at most
``max_hops`` V2V hops ends at a vehicle that has an RSU; its rate is its bottleneck (the smallest of its
hops' rates and of the last vehicle's own RSU link, which the caller adds).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike

from ..scenario import ChannelProfile
from ..world.channel import median_snr_db, rate_from_snr_bps

__all__ = ["v2v_rate_bps", "v2v_edges", "relay_paths", "near_any", "hop_bottleneck_bps"]

_MIN_DISTANCE_M = 1e-9  # [m] two vehicles at one point are 1 nm apart (path loss clamps at 1 m anyway)


def v2v_rate_bps(profile: ChannelProfile, distance_m: ArrayLike, bandwidth_hz: ArrayLike,
                 min_usable_snr_db: float) -> np.ndarray:
    """[bit/s] median rate of V2V links over ``distance_m`` [m] in ``bandwidth_hz`` [Hz]: the profile's path
    loss between two vehicle antennas at road level (3D distance = 2D distance), the vehicle's transmit power
    at both ends, no shadowing and no fading (`vfedsim.world.channel.median_snr_db`), mapped by the profile's
    `vfedsim.world.channel.rate_from_snr_bps`; 0 below ``min_usable_snr_db`` [dB] (the radio's outage SNR).
    """
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), _MIN_DISTANCE_M)
    snr = median_snr_db(profile, d, uplink=True, bandwidth_hz=bandwidth_hz, distance_2d_m=d)
    usable = snr >= min_usable_snr_db
    return np.where(usable, rate_from_snr_bps(profile, bandwidth_hz, np.where(usable, snr, profile.min_snr_db)),
                    0.0)


def v2v_edges(position_m: np.ndarray, range_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i, j) of rows of ``position_m`` (N, 2) [m] at most ``range_m`` apart, and their distances
    [m]: a sweep along x (sorted, stable), vectorised, so the pairs compared are those closer than the range
    in x, not all N^2. Pairs come in sweep order (deterministic for given positions)."""
    x, y = position_m[:, 0], position_m[:, 1]
    order = np.argsort(x, kind="stable")
    xs = x[order]
    m = order.size
    hi = np.searchsorted(xs, xs + range_m, side="right")
    counts = np.maximum(hi - np.arange(m) - 1, 0)
    a = np.repeat(np.arange(m), counts)
    b = a + 1 + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
    i, j = order[a], order[b]
    d = np.hypot(x[j] - x[i], y[j] - y[i])
    near = d <= range_m
    return i[near], j[near], d[near]


def relay_paths(ids: np.ndarray, position_m: np.ndarray, rsu: np.ndarray, wanted: Iterable[int], *,
                profile: ChannelProfile, bandwidth_hz: float, min_usable_snr_db: float, range_m: float,
                max_hops: int) -> dict[int, tuple[tuple[int, ...], int]]:
    """Relay paths of the ``wanted`` vehicles: vehicle -> ((itself, ..., relay), the relay's RSU).

    ``ids`` (N,) are the vehicles on the road, ``position_m`` (N, 2) [m] their positions and ``rsu`` (N,) the
    RSU each may relay to (-1: none). The graph (networkx, nodes in ``ids`` order, edges in `v2v_edges`
    order) holds the pairs within ``range_m`` whose `v2v_rate_bps` over ``bandwidth_hz`` is positive. For
    each wanted vehicle, `networkx.single_source_shortest_path` (breadth first, at most ``max_hops`` hops)
    gives one shortest path to every reachable vehicle; of those ending at a vehicle with an RSU, the path
    with the fewest hops, then the highest bottleneck V2V rate, then the lowest relay id is taken. A wanted
    vehicle with no such path is absent from the answer.
    """
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(ids.tolist())
    i, j, d = v2v_edges(position_m, range_m)
    ok = v2v_rate_bps(profile, d, bandwidth_hz, min_usable_snr_db) > 0.0
    graph.add_edges_from(zip(ids[i[ok]].tolist(), ids[j[ok]].tolist()))
    index = {v: k for k, v in enumerate(ids.tolist())}
    x, y = position_m[:, 0], position_m[:, 1]
    out = {}
    for v in wanted:
        if v not in index:
            continue
        best = None
        for target, path in nx.single_source_shortest_path(graph, v, cutoff=max_hops).items():
            r = int(rsu[index[target]])
            if target == v or r < 0:
                continue
            k = np.array([index[u] for u in path])
            rate = float(v2v_rate_bps(profile, np.hypot(np.diff(x[k]), np.diff(y[k])), bandwidth_hz,
                                      min_usable_snr_db).min())
            key = (len(path), -rate, target)
            if best is None or key < best[0]:
                best = (key, tuple(path), r)
        if best is not None:
            out[v] = (best[1], best[2])
    return out


def near_any(position_m: np.ndarray, centres_m: np.ndarray, reach_m: float) -> np.ndarray:
    """(N,) bool: which rows of ``position_m`` (N, 2) lie within ``reach_m`` [m] of any row of ``centres_m``."""
    near = np.zeros(position_m.shape[0], dtype=bool)
    for q in centres_m:
        near |= np.hypot(position_m[:, 0] - q[0], position_m[:, 1] - q[1]) <= reach_m
    return near


def hop_bottleneck_bps(profile: ChannelProfile, path_position_m: np.ndarray, bandwidth_hz: float,
                       min_usable_snr_db: float) -> float:
    """[bit/s] the smallest `v2v_rate_bps` of the hops between consecutive rows of ``path_position_m``."""
    d = np.hypot(*np.diff(path_position_m, axis=0).T)
    return float(v2v_rate_bps(profile, d, bandwidth_hz, min_usable_snr_db).min())
