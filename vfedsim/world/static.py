"""Vehicles at explicit positions: standing still, or each on a straight line at a constant velocity.

``world.road.name: static`` (`vfedsim.scenario.StaticRoad`): vehicle i starts at ``positions_m[i]`` [m] and
moves at ``velocities_mps[i]`` [m/s] (0 by default), on the road from t = 0 to ``duration_s`` [s]. It serves
studies of the network alone (``vfedsim net``, `vfedsim.simulate_transfers`): fixed geometries, drive-bys past
an RSU, and comparisons with packet-level simulators. RSUs stand at ``world.rsus.positions_m``, else one at the
origin.
"""
from __future__ import annotations

import numpy as np

from ..scenario import RSUConfig, StaticRoad, TrafficConfig
from .mobility import MOBILITY, PathMobility, explicit_rsu_sites

__all__ = ["StaticMobility"]


@MOBILITY.register("static")
class StaticMobility(PathMobility):
    """`vfedsim.world.mobility.PathMobility` of one straight segment per vehicle, [0, ``duration_s``];
    ``traffic`` and ``seed`` are not used (nothing is random)."""

    def __init__(self, road: StaticRoad, traffic: TrafficConfig | None = None, *, seed: int = 0,
                 duration_s: float) -> None:
        start = np.asarray(road.positions_m, dtype=np.float64).reshape(-1, 2)
        velocity = (np.zeros_like(start) if road.velocities_mps is None
                    else np.asarray(road.velocities_mps, dtype=np.float64).reshape(-1, 2))
        span = float(duration_s)
        times = [np.array([0.0, span]) for _ in range(start.shape[0])]
        points = [np.stack([p, p + v * span]) for p, v in zip(start, velocity)]
        super().__init__(PathMobility.trips_from(times, points, speed_mps=np.hypot(velocity[:, 0], velocity[:, 1])),
                         times, points)

    def rsu_sites(self, rsus: RSUConfig) -> np.ndarray:
        """(R, 2) ``rsus.positions_m`` [m], else one RSU at the origin."""
        sites = explicit_rsu_sites(rsus)
        return sites if sites is not None else np.zeros((1, 2))
