"""RSUs and their links to vehicles: placement, association, instantaneous SNR and rate, coverage timing.

Coverage is a disc: a vehicle is covered by an RSU where the *median* SNR of both directions is at least
``profile.min_snr_db``, which is a horizontal distance of at most `Radio.coverage_radius_m` (the SNR falls
monotonically with distance). Inside the disc, shadowing makes the instantaneous SNR vary; where it is below
``min_snr_db`` the link is in outage (rate 0). Positions are [m] (x along the road, y across it), velocities
[m/s], times [s]. Vehicle antennas are at road level; ``rsu_height_m`` is the RSU antenna's height above them.

Geometry uses a tolerance of `COVERAGE_TOLERANCE_M` (1 um) on the disc's edge, so that a vehicle that has
waited exactly `Radio.time_to_coverage_s` is covered despite floating-point rounding.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ..scenario import ChannelProfile, HighwayRoad, RSUConfig
from .channel import Shadowing, coverage_radius_m, direction_bandwidth_hz, median_snr_db, shannon_rate_bps

__all__ = ["rsu_positions", "Radio", "COVERAGE_TOLERANCE_M"]

COVERAGE_TOLERANCE_M = 1e-6  # [m] slack on the coverage edge against floating-point rounding
_MIN_DWELL_S = 1e-9  # [s] a handover target must keep the vehicle longer than this


def rsu_positions(road: HighwayRoad, rsus: RSUConfig) -> np.ndarray:
    """(R, 2) RSU positions [m]: x = first_at_m + k spacing_m for every k >= 0 with x <= length_m; all on
    the +y side of the road at y = road edge + side_offset_m (the edge is lanes x lane width with two
    directions, y = 0 with one; see `vfedsim.world.mobility` for the lane layout)."""
    count = int(math.floor((road.length_m - rsus.first_at_m) / rsus.spacing_m + 1e-9)) + 1
    x = rsus.first_at_m + rsus.spacing_m * np.arange(max(count, 0), dtype=np.float64)
    edge = road.lanes_per_direction * road.lane_width_m if road.directions == 2 else 0.0
    return np.stack([x, np.full_like(x, edge + rsus.side_offset_m)], axis=-1)


def _exit_time_s(q: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Time until |q + v t| = radius for good (the larger root, clipped at 0); offsets q [m], velocity v [m/s].

    0 when more than the tolerance outside or the path misses the disc; inf when stationary inside.
    """
    qx, qy, vx, vy = q[..., 0], q[..., 1], v[..., 0], v[..., 1]
    qq = qx * qx + qy * qy
    inside = qq <= (radius + COVERAGE_TOLERANCE_M) ** 2
    if math.isinf(radius):
        return np.where(inside, np.inf, 0.0)
    a = vx * vx + vy * vy
    b = 2.0 * (qx * vx + qy * vy)
    c = qq - radius * radius
    disc = b * b - 4.0 * a * c
    sq = np.sqrt(np.maximum(disc, 0.0))
    moving = a > 0.0
    # numerically stable larger root of a t^2 + b t + c = 0 (denominators made safe where unused)
    pos_b = b > 0.0
    root = np.where(pos_b, -2.0 * c / np.where(pos_b, b + sq, 1.0), (sq - b) / np.where(moving, 2.0 * a, 1.0))
    out = np.where(moving, np.where(disc >= 0.0, np.maximum(root, 0.0), 0.0), np.inf)
    return np.where(inside, out, 0.0)


class Radio:
    """The RSUs' links: who serves whom, at what SNR and rate, and for how long.

    ``rsu_xy`` (R, 2) [m] (see `rsu_positions`), ``rsu_height_m`` [m], ``seed`` for the links' shadowing
    (`vfedsim.world.channel.Shadowing`). ``coverage_radius_m`` [m] is horizontal and uses the profile's
    bandwidths; ``n_rsus`` is R.
    """

    def __init__(self, *, profile: ChannelProfile, rsu_xy: ArrayLike, rsu_height_m: float, seed: int) -> None:
        self.profile = profile
        self.rsu_xy = np.asarray(rsu_xy, dtype=np.float64).reshape(-1, 2)
        self.rsu_height_m = float(rsu_height_m)
        self.n_rsus = int(self.rsu_xy.shape[0])
        self.coverage_radius_m = coverage_radius_m(profile, height_m=self.rsu_height_m)
        self.shadowing = Shadowing(seed=seed, std_db=profile.shadowing_std_db,
                                   decorrelation_m=profile.shadowing_decorrelation_m)

    # ------------------------------------------------------------------------------------ association
    def _offsets(self, position_m: ArrayLike) -> np.ndarray:
        p = np.asarray(position_m, dtype=np.float64).reshape(-1, 2)
        return p[:, None, :] - self.rsu_xy[None, :, :]  # (N, R, 2)

    def _covering(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d2 = q[..., 0] ** 2 + q[..., 1] ** 2
        return d2, d2 <= (self.coverage_radius_m + COVERAGE_TOLERANCE_M) ** 2

    @staticmethod
    def _nearest(d2: np.ndarray, ok: np.ndarray) -> np.ndarray:
        if d2.shape[1] == 0:
            return np.full(d2.shape[0], -1, dtype=np.int64)
        masked = np.where(ok, d2, np.inf)
        best = np.argmin(masked, axis=1)
        return np.where(ok.any(axis=1), best, -1).astype(np.int64)

    def serving(self, position_m: ArrayLike, current: ArrayLike | None = None) -> np.ndarray:
        """(N,) serving RSU index per position, -1 outside every coverage disc.

        A vehicle keeps ``current`` (its previous RSU, -1 for none) while that RSU still covers it (no
        ping-pong); otherwise it takes the nearest covering RSU (lowest index on a tie).
        """
        d2, cov = self._covering(self._offsets(position_m))
        best = self._nearest(d2, cov)
        if current is None or self.n_rsus == 0:
            return best
        cur = np.asarray(current, dtype=np.int64).reshape(-1)
        keep = (cur >= 0) & cov[np.arange(cov.shape[0]), np.clip(cur, 0, self.n_rsus - 1)]
        return np.where(keep, cur, best)

    def handover_target(self, position_m: ArrayLike, velocity_mps: ArrayLike, current: ArrayLike) -> np.ndarray:
        """(N,) the RSU that takes over a vehicle leaving ``current``'s disc now, or -1.

        The nearest RSU other than ``current`` whose disc holds the vehicle and keeps it for a positive
        time (a vehicle on a disc's edge driving outwards does not count).
        """
        q = self._offsets(position_m)
        d2, cov = self._covering(q)
        v = np.asarray(velocity_mps, dtype=np.float64).reshape(-1, 1, 2)
        cov &= _exit_time_s(q, v, self.coverage_radius_m) > _MIN_DWELL_S
        cur = np.asarray(current, dtype=np.int64).reshape(-1)
        cov &= np.arange(self.n_rsus)[None, :] != cur[:, None]
        return self._nearest(d2, cov)

    # ------------------------------------------------------------------------------------ link quality
    def snr_db(self, vehicle_ids: ArrayLike, position_m: ArrayLike, rsu_ids: ArrayLike, travelled_m: ArrayLike,
               *, uplink: bool | ArrayLike, bandwidth_hz: ArrayLike | None = None) -> np.ndarray:
        """(k,) instantaneous SNR [dB] of each vehicle's link to ``rsu_ids`` (-inf where the id is -1).

        Median SNR at the 3D distance (`vfedsim.world.channel.median_snr_db`) minus the link's shadowing at
        the distance the vehicle has travelled [m]. ``uplink`` is one flag or one per link;
        ``bandwidth_hz`` (scalar or per link) overrides the noise bandwidth.
        """
        rsu = np.asarray(rsu_ids, dtype=np.int64).reshape(-1)
        p = np.asarray(position_m, dtype=np.float64).reshape(-1, 2)
        valid = rsu >= 0
        c = self.rsu_xy[np.where(valid, rsu, 0)] if self.n_rsus else np.zeros_like(p)
        dx, dy = p[:, 0] - c[:, 0], p[:, 1] - c[:, 1]
        d3 = np.sqrt(dx * dx + dy * dy + self.rsu_height_m ** 2)
        snr = median_snr_db(self.profile, d3, uplink=uplink, bandwidth_hz=bandwidth_hz)
        if valid.any():
            snr = snr - self.shadowing.value_db(np.asarray(vehicle_ids, dtype=np.int64).reshape(-1),
                                                np.where(valid, rsu, 0), travelled_m)
        return np.where(valid, snr, -np.inf)

    def rate_bps(self, vehicle_ids: ArrayLike, position_m: ArrayLike, rsu_ids: ArrayLike, travelled_m: ArrayLike,
                 *, uplink: bool | ArrayLike, bandwidth_hz: ArrayLike | None = None) -> np.ndarray:
        """(k,) full-band instantaneous rate [bit/s] (no sharing), shadowing included.

        `shannon_rate_bps` of `snr_db` over the direction's bandwidth (``bandwidth_hz`` if given, else the
        profile's, `direction_bandwidth_hz`); 0 where the SNR is below ``min_snr_db`` (outage) or the RSU
        id is -1. ``uplink`` is one flag or one per link.
        """
        p = self.profile
        bw = bandwidth_hz if bandwidth_hz is not None else direction_bandwidth_hz(p, uplink)
        snr = self.snr_db(vehicle_ids, position_m, rsu_ids, travelled_m, uplink=uplink, bandwidth_hz=bw)
        usable = snr >= p.min_snr_db
        rate = shannon_rate_bps(bw, np.where(usable, snr, 0.0), p.efficiency, p.max_spectral_efficiency)
        return np.where(usable, rate, 0.0)

    # ---------------------------------------------------------------------------------- coverage timing
    def time_to_exit_s(self, position_m: ArrayLike, velocity_mps: ArrayLike, rsu_ids: ArrayLike) -> np.ndarray:
        """(k,) time [s] until each vehicle leaves its RSU's disc at constant velocity.

        The larger root of |p + v t - c| = R (R = `coverage_radius_m`, horizontal); inf when stationary
        inside; 0 when outside or the id is -1.
        """
        rsu = np.asarray(rsu_ids, dtype=np.int64).reshape(-1)
        p = np.asarray(position_m, dtype=np.float64).reshape(-1, 2)
        v = np.asarray(velocity_mps, dtype=np.float64).reshape(-1, 2)
        valid = rsu >= 0
        if not valid.any():
            return np.zeros(rsu.shape)
        q = p - self.rsu_xy[np.where(valid, rsu, 0)]
        return np.where(valid, _exit_time_s(q, v, self.coverage_radius_m), 0.0)

    def time_to_coverage_s(self, position_m: ArrayLike, velocity_mps: ArrayLike) -> np.ndarray:
        """(N,) time [s] until each vehicle first enters a coverage disc at constant velocity.

        0 when inside one now; inf when its path meets none. (Whether that is before its trip ends is the
        caller's concern.)
        """
        q = self._offsets(position_m)
        d2, cov = self._covering(q)
        n = q.shape[0]
        if self.n_rsus == 0 or self.coverage_radius_m <= 0.0:
            return np.full(n, np.inf)
        v = np.asarray(velocity_mps, dtype=np.float64).reshape(-1, 1, 2)
        radius = self.coverage_radius_m
        qx, qy, vx, vy = q[..., 0], q[..., 1], v[..., 0], v[..., 1]
        a = vx * vx + vy * vy
        b = 2.0 * (qx * vx + qy * vy)
        c = d2 - radius * radius
        disc = b * b - 4.0 * a * c
        sq = np.sqrt(np.maximum(disc, 0.0))
        hits = (a > 0.0) & (b < 0.0) & (disc >= 0.0)  # approaching (b < 0) a disc it is outside of (c > 0)
        entry = np.where(hits, 2.0 * c / np.where(hits, sq - b, 1.0), np.inf)  # stable smaller root
        return np.where(cov.any(axis=1), 0.0, entry.min(axis=1))
