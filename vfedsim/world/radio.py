"""RSUs and their links to vehicles: placement, association, instantaneous SNR and rate, coverage timing.

Coverage is a disc: a vehicle is covered by an RSU where the *median* SNR of both directions is at least
``profile.min_snr_db``, which is a horizontal distance of at most `Radio.coverage_radius_m` (the SNR falls
monotonically with distance). Inside the disc, shadowing, the LOS state and fading make the instantaneous
SNR vary; where it is below ``min_snr_db`` (or below the lowest MCS of an MCS table) the link is in outage
(rate 0).

Instantaneous SNR of a link at time t (`Radio.snr_db`): median SNR with the path loss of the link's state
(``path_loss`` when LOS or without a LOS model, ``nlos_path_loss`` otherwise; NLOSv adds its random blockage
loss, drawn per link and LOS slot), minus that state's shadowing (two independent Gudmundson processes per
link, one per state, with the state's standard deviation, so a change of state draws a fresh value: the
spatially consistent procedure of TR 38.901 §7.6.3.1 also keeps separate LOS and NLOS maps), plus
10 log10 of the fading gain (`vfedsim.world.linkstate`). Positions are [m] (x along the road, y across it), velocities
[m/s], times [s]. Vehicle antennas are at road level; ``rsu_height_m`` is the RSU antenna's height above them.

Co-channel interference (profile ``interference: co-channel``; `Radio.interference_mw`): RSU i transmits on
channel i mod ``frequency_reuse``. Downlink, every other RSU j on the serving RSU's channel adds
``activity_factor`` x its deterministic received power at the vehicle (`vfedsim.world.channel.
mean_received_power_dbm`: the LOS-probability-weighted median path gain, no shadowing or fading) to the noise.
Uplink, the RSU hears the vehicles that the co-channel RSUs serve: modelled as one vehicle at the foot of each
co-channel RSU j (the centre of its cell, at road level) transmitting ``activity_factor`` of the time, so the
uplink interference of RSU s is a constant per RSU. A mean-field simplification (the network does not tell
the radio where other cells' uploading vehicles are); it keeps the link rate a function of the link alone.
`Radio.snr_db` then returns the SINR, SNR - 10 log10(1 + I/N) with N the noise over the direction's whole
bandwidth (interferers spread their power over their channel, so I/N is the same in any share of it).
Coverage discs and `Radio.rsrp_dbm` stay interference-free.

Geometry uses a tolerance of `COVERAGE_TOLERANCE_M` (1 um) on the disc's edge, so that a vehicle that has
waited exactly `Radio.time_to_coverage_s` is covered despite floating-point rounding.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ..scenario import ChannelProfile, HighwayRoad, NoFading, RSUConfig
from .channel import (
    THERMAL_NOISE_DBM_PER_HZ, Shadowing, coverage_radius_m, dbm_to_mw, direction_bandwidth_hz,
    mean_received_power_dbm, noise_power_dbm, per_from_snr, rate_from_snr_bps, rsu_channels, sinr_db,
    usable_snr_db,
)
from .linkstate import fading_gain, link_normal, los_state, time_slot
from .pathloss import is_nlosv, nlosv_blockage_db, nlosv_los_loss_db, path_loss_db

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


def _exit_time_one(qx: float, qy: float, vx: float, vy: float, radius: float) -> float:
    """`_exit_time_s` of one offset and velocity, on Python floats (the same operations, the same result)."""
    qq = qx * qx + qy * qy
    if not qq <= (radius + COVERAGE_TOLERANCE_M) ** 2:
        return 0.0
    if math.isinf(radius):
        return math.inf
    a = vx * vx + vy * vy
    if not a > 0.0:
        return math.inf
    b = 2.0 * (qx * vx + qy * vy)
    c = qq - radius * radius
    disc = b * b - 4.0 * a * c
    if not disc >= 0.0:
        return 0.0
    sq = math.sqrt(max(disc, 0.0))
    root = -2.0 * c / (b + sq) if b > 0.0 else (sq - b) / (2.0 * a)
    return max(root, 0.0)


class _DiscIndex:
    """Which coverage discs may hold a point: a grid of square cells over the discs' bounding box, each
    listing in ascending order the RSUs whose disc (radius ``reach_m``) reaches into it, so that attaching
    a fleet compares each vehicle with a few RSUs instead of all (the answers are those of comparing all:
    every disc that holds a point is among its cell's candidates, and ties still go to the lowest id)."""

    MAX_CELLS = 1 << 20

    def __init__(self, rsu_xy: np.ndarray, reach_m: float) -> None:
        self.lo = rsu_xy.min(axis=0) - reach_m
        span = rsu_xy.max(axis=0) + reach_m - self.lo
        self.cell_m = max(reach_m, float(np.sqrt(span[0] * span[1] / self.MAX_CELLS)))
        self.shape = (int(span[0] // self.cell_m) + 1, int(span[1] // self.cell_m) + 1)
        cells: list[list[int]] = [[] for _ in range(self.shape[0] * self.shape[1])]
        slack = reach_m * (1.0 + 1e-9) + 1e-6  # [m] generous: an extra candidate costs nothing
        for r, (x, y) in enumerate(rsu_xy.tolist()):
            i0, i1 = (int(max((x - slack - self.lo[0]) // self.cell_m, 0)),
                      int(min((x + slack - self.lo[0]) // self.cell_m, self.shape[0] - 1)))
            j0, j1 = (int(max((y - slack - self.lo[1]) // self.cell_m, 0)),
                      int(min((y + slack - self.lo[1]) // self.cell_m, self.shape[1] - 1)))
            for i in range(i0, i1 + 1):
                for j in range(j0, j1 + 1):
                    # distance from the RSU to the cell's rectangle
                    dx = max(self.lo[0] + i * self.cell_m - x, 0.0, x - (self.lo[0] + (i + 1) * self.cell_m))
                    dy = max(self.lo[1] + j * self.cell_m - y, 0.0, y - (self.lo[1] + (j + 1) * self.cell_m))
                    if dx * dx + dy * dy <= slack * slack:
                        cells[i * self.shape[1] + j].append(r)
        self.lists = cells  # per cell, its candidates (ascending)
        width = max(1, max(len(c) for c in cells))
        self.table = np.full((len(cells) + 1, width), -1, dtype=np.int64)  # the last row: outside the grid
        for k, c in enumerate(cells):
            self.table[k, :len(c)] = c

    def cell(self, x: float, y: float) -> int:
        """The cell of one point (-1 outside the grid)."""
        i, j = (x - self.lo[0]) // self.cell_m, (y - self.lo[1]) // self.cell_m
        if 0 <= i < self.shape[0] and 0 <= j < self.shape[1]:
            return int(i) * self.shape[1] + int(j)
        return -1

    def candidates(self, p: np.ndarray) -> np.ndarray:
        """(N, K) the candidate RSUs of each point of ``p`` (N, 2), ascending, padded with -1."""
        i = np.floor((p[:, 0] - self.lo[0]) / self.cell_m)
        j = np.floor((p[:, 1] - self.lo[1]) / self.cell_m)
        inside = (i >= 0) & (i < self.shape[0]) & (j >= 0) & (j < self.shape[1])
        k = np.where(inside, np.where(inside, i, 0).astype(np.int64) * self.shape[1] + np.where(inside, j, 0)
                     .astype(np.int64), len(self.lists))
        return self.table[k]


class Radio:
    """The RSUs' links: who serves whom, at what SNR and rate, and for how long.

    ``rsu_xy`` (R, 2) [m] (see `rsu_positions`), ``rsu_height_m`` [m], ``seed`` for the links' shadowing
    (`vfedsim.world.channel.Shadowing`), LOS states and fading (`vfedsim.world.linkstate`).
    ``coverage_radius_m`` [m] is horizontal and uses the profile's bandwidths; ``n_rsus`` is R.
    ``time_varying`` says whether a link's quality changes while its vehicle stands still (a LOS model,
    fading or NLOSv blockage); then the link-quality methods need ``time_s``.
    """

    def __init__(self, *, profile: ChannelProfile, rsu_xy: ArrayLike, rsu_height_m: float, seed: int) -> None:
        self.profile = profile
        self.seed = int(seed)
        self.rsu_xy = np.asarray(rsu_xy, dtype=np.float64).reshape(-1, 2)
        self.rsu_height_m = float(rsu_height_m)
        self.n_rsus = int(self.rsu_xy.shape[0])
        self.coverage_radius_m = coverage_radius_m(profile, height_m=self.rsu_height_m)
        reach = self.coverage_radius_m + COVERAGE_TOLERANCE_M
        self._index = _DiscIndex(self.rsu_xy, reach) if self.n_rsus and math.isfinite(reach) else None
        self._xs, self._ys = self.rsu_xy[:, 0].tolist(), self.rsu_xy[:, 1].tolist()
        self.min_usable_snr_db = usable_snr_db(profile)
        self.shadowing = Shadowing(seed=seed, std_db=profile.shadowing_std_db,
                                   decorrelation_m=profile.shadowing_decorrelation_m)
        nlos_std = profile.nlos_shadowing_std_db
        self.nlos_shadowing = Shadowing(seed=seed, std_db=profile.shadowing_std_db if nlos_std is None else nlos_std,
                                        decorrelation_m=profile.shadowing_decorrelation_m, kind="shadowing-nlos")
        self._base_cache: dict[tuple[bool, float | None], float] = {}
        self._has_los = profile.los_model != "none"
        self._has_fading = not isinstance(profile.fading, NoFading)
        self._blocked = is_nlosv(profile.path_loss) or (self._has_los and is_nlosv(profile.nlos_path_loss))
        self.time_varying = self._has_los or self._has_fading or self._blocked
        self.channel = rsu_channels(self.n_rsus, profile.frequency_reuse)
        # (R, R) bool: RSU j interferes with RSU s (same channel, j != s)
        self._co_channel = (self.channel[:, None] == self.channel[None, :]) & ~np.eye(self.n_rsus, dtype=bool)
        self.interference = profile.interference == "co-channel" and bool(self._co_channel.any())
        self._uplink_interference_mw = np.zeros(self.n_rsus)
        if self.interference:
            gap = self.rsu_xy[:, None, :] - self.rsu_xy[None, :, :]
            d2 = np.hypot(gap[..., 0], gap[..., 1])
            rx = dbm_to_mw(mean_received_power_dbm(profile, profile.vehicle_tx_power_dbm,
                                                   np.hypot(d2, self.rsu_height_m), distance_2d_m=d2))
            self._uplink_interference_mw = profile.activity_factor * np.where(self._co_channel, rx, 0.0).sum(axis=1)

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

    def covering(self, position_m: ArrayLike) -> np.ndarray:
        """(N, R) bool: which RSUs' coverage discs hold each position."""
        return self._covering(self._offsets(position_m))[1]

    def serving(self, position_m: ArrayLike, current: ArrayLike | None = None) -> np.ndarray:
        """(N,) serving RSU index per position, -1 outside every coverage disc.

        A vehicle keeps ``current`` (its previous RSU, -1 for none) while that RSU still covers it (no
        ping-pong); otherwise it takes the nearest covering RSU (lowest index on a tie).
        """
        if current is None and self.n_rsus and np.size(position_m) == 2:  # one position: fewer numpy calls
            q = self.rsu_xy - np.asarray(position_m, dtype=np.float64).reshape(2)
            d2 = q[:, 0] ** 2 + q[:, 1] ** 2  # the same arithmetic as `_covering`
            best = int(np.argmin(d2))
            return np.array([best if d2[best] <= (self.coverage_radius_m + COVERAGE_TOLERANCE_M) ** 2 else -1])
        d2, cov = self._covering(self._offsets(position_m))
        best = self._nearest(d2, cov)
        if current is None or self.n_rsus == 0:
            return best
        cur = np.asarray(current, dtype=np.int64).reshape(-1)
        keep = (cur >= 0) & cov[np.arange(cov.shape[0]), np.clip(cur, 0, self.n_rsus - 1)]
        return np.where(keep, cur, best)

    def attach(self, position_m: ArrayLike, velocity_mps: ArrayLike) -> np.ndarray:
        """(N,) the RSU a vehicle without a transfer attaches to now: the nearest one whose disc holds it and
        keeps it for a positive time (lowest index on a tie), -1 if none. Unlike `serving`, a vehicle on a
        disc's edge driving outwards is not attached to that disc (it would leave it at once)."""
        p = np.asarray(position_m, dtype=np.float64).reshape(-1, 2)
        v = np.asarray(velocity_mps, dtype=np.float64).reshape(-1, 2)
        index = self._index
        if index is None:
            q = self._offsets(p)
            d2, cov = self._covering(q)
            self._keeps(q, v, cov)
            return self._nearest(d2, cov)
        if p.shape[0] == 1:  # one vehicle: its cell's few candidates, on Python floats (the same arithmetic)
            x, y, vx, vy = float(p[0, 0]), float(p[0, 1]), float(v[0, 0]), float(v[0, 1])
            cell = index.cell(x, y)
            best, best_d2, limit, radius = -1, math.inf, (self.coverage_radius_m + COVERAGE_TOLERANCE_M) ** 2, \
                self.coverage_radius_m
            for r in (index.lists[cell] if cell >= 0 else ()):
                qx, qy = x - self._xs[r], y - self._ys[r]
                d2 = qx * qx + qy * qy
                if d2 <= limit and d2 < best_d2 and _exit_time_one(qx, qy, vx, vy, radius) > _MIN_DWELL_S:
                    best, best_d2 = r, d2
            return np.array([best])
        cand = index.candidates(p)  # (N, K), ascending: argmin's first minimum is the lowest id
        valid = cand >= 0
        c = np.where(valid, cand, 0)
        q = p[:, None, :] - self.rsu_xy[c]
        d2, cov = self._covering(q)
        cov &= valid
        self._keeps(q, v, cov)
        best = self._nearest(d2, cov)
        return np.where(best >= 0, c[np.arange(c.shape[0]), np.maximum(best, 0)], -1)

    def _keeps(self, q: np.ndarray, v: np.ndarray, cov: np.ndarray) -> None:
        """Clear the (vehicle, RSU) pairs of ``cov`` (N, R) whose disc does not keep the vehicle for a positive
        time (offsets ``q`` (N, R, 2), velocities ``v`` (N, 2)); exit times are computed for covered pairs only."""
        vi, ri = np.nonzero(cov)
        if vi.size:
            cov[vi, ri] = _exit_time_s(q[vi, ri], v.reshape(-1, 2)[vi], self.coverage_radius_m) > _MIN_DWELL_S

    def handover_target(self, position_m: ArrayLike, velocity_mps: ArrayLike, current: ArrayLike) -> np.ndarray:
        """(N,) the RSU that takes over a vehicle leaving ``current``'s disc now, or -1.

        The nearest RSU other than ``current`` whose disc holds the vehicle and keeps it for a positive
        time (a vehicle on a disc's edge driving outwards does not count).
        """
        q = self._offsets(position_m)
        d2, cov = self._covering(q)
        self._keeps(q, np.asarray(velocity_mps, dtype=np.float64), cov)
        cur = np.asarray(current, dtype=np.int64).reshape(-1)
        cov &= np.arange(self.n_rsus)[None, :] != cur[:, None]
        return self._nearest(d2, cov)

    # ------------------------------------------------------------------------------------ link quality
    def _geometry(self, position_m: ArrayLike, rsu_ids: ArrayLike
                  ) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray, np.ndarray]:
        """RSU ids (-1 replaced by 0), whether all were valid, the valid mask, 2D and 3D distances [m]."""
        rsu = np.asarray(rsu_ids, dtype=np.int64).reshape(-1)
        p = np.asarray(position_m, dtype=np.float64).reshape(-1, 2)
        valid = rsu >= 0
        every = bool(valid.all())
        if not every:
            rsu = np.where(valid, rsu, 0)
        q = p - self.rsu_xy[rsu] if self.n_rsus else p
        d2 = np.einsum("ij,ij->i", q, q)
        return rsu, every, valid, np.sqrt(d2), np.sqrt(d2 + self.rsu_height_m ** 2)

    def _base_db(self, uplink: bool | ArrayLike, bandwidth_hz: ArrayLike | None) -> ArrayLike:
        """P_tx + 2 G - noise [dB] of each link (a float when both arguments are scalars)."""
        p = self.profile
        if np.ndim(uplink) == 0 and np.ndim(bandwidth_hz) == 0:
            up = bool(uplink)
            key = (up, None if bandwidth_hz is None else float(bandwidth_hz))
            base = self._base_cache.get(key)
            if base is None:
                bw = key[1] if key[1] is not None else (p.bandwidth_hz if up else p.downlink_hz)
                base = (p.vehicle_tx_power_dbm if up else p.rsu_tx_power_dbm) + 2.0 * p.antenna_gain_dbi - (
                    THERMAL_NOISE_DBM_PER_HZ + 10.0 * float(np.log10(bw)) + p.noise_figure_db)
                self._base_cache[key] = base
            return base
        up = np.asarray(uplink, dtype=bool)
        if bandwidth_hz is None:
            bandwidth_hz = direction_bandwidth_hz(p, up)
        tx = np.where(up, p.vehicle_tx_power_dbm, p.rsu_tx_power_dbm)
        return tx + 2.0 * p.antenna_gain_dbi - noise_power_dbm(bandwidth_hz, p.noise_figure_db)

    def _time(self, time_s: ArrayLike | None) -> ArrayLike:
        if time_s is None:
            raise ValueError(f"channel profile {self.profile.profile!r} varies with time (LOS state, fading or "
                             "NLOSv blockage): pass time_s")
        return time_s

    def _loss_db(self, vehicles: np.ndarray, rsu: np.ndarray, d2: np.ndarray, d3: np.ndarray,
                 travelled_m: ArrayLike, time_s: ArrayLike | None) -> np.ndarray:
        """Path loss of each link's state plus its shadowing [dB] (no fading); ``rsu`` all valid."""
        p, fc = self.profile, self.profile.carrier_hz
        if not self.time_varying:
            return path_loss_db(p.path_loss, d3, fc, distance_2d_m=d2) + self.shadowing.value_db(
                vehicles, rsu, travelled_m)
        t = self._time(time_s)
        los = (los_state(p.los_model, seed=self.seed, vehicle=vehicles, rsu=rsu, time_s=t, distance_2d_m=d2,
                         period_s=p.los_update_period_s)
               if self._has_los else np.ones(vehicles.shape, dtype=bool))
        loss = self._state_loss_db(p.path_loss, vehicles, rsu, d2, d3, t)
        loss = loss + self.shadowing.value_db(vehicles, rsu, travelled_m) if self.shadowing.std_db else loss
        if self._has_los and not los.all():
            n = ~los
            nloss = (self._state_loss_db(p.nlos_path_loss, vehicles[n], rsu[n], d2[n], d3[n],
                                         np.broadcast_to(np.asarray(t, dtype=np.float64), los.shape)[n])
                     + self.nlos_shadowing.value_db(vehicles[n], rsu[n],
                                                    np.broadcast_to(np.asarray(travelled_m), los.shape)[n]))
            loss = np.array(loss, dtype=np.float64)
            loss[n] = nloss
        return loss

    def _state_loss_db(self, model: object, vehicles: np.ndarray, rsu: np.ndarray, d2: np.ndarray,
                       d3: np.ndarray, time_s: ArrayLike) -> np.ndarray:
        fc = self.profile.carrier_hz
        if not is_nlosv(model):
            return path_loss_db(model, d3, fc, distance_2d_m=d2)
        z = link_normal(self.seed, "blockage", vehicles, rsu, time_slot(time_s, self.profile.los_update_period_s))
        return nlosv_los_loss_db(model, d3, fc) + nlosv_blockage_db(model, d3, z)

    def interference_mw(self, position_m: ArrayLike, rsu_ids: ArrayLike, *, uplink: bool | ArrayLike
                        ) -> np.ndarray:
        """(k,) co-channel interference power [mW] over the direction's whole bandwidth at each link's receiver.

        Downlink (at the vehicle): ``activity_factor`` x sum over the RSUs j on the serving RSU's channel
        (j != serving) of `mean_received_power_dbm` (RSU tx power, 3D distance from the vehicle to RSU j).
        Uplink (at the serving RSU s): ``activity_factor`` x sum over those j of the power of a vehicle at the
        foot of RSU j (vehicle tx power, horizontal distance |c_s - c_j|, 3D with ``rsu_height_m``); see the
        module docstring. 0 without interference or where the id is -1. ``uplink``: one flag or one per link.
        """
        rsu = np.asarray(rsu_ids, dtype=np.int64).reshape(-1)
        if not self.interference:
            return np.zeros(rsu.shape)
        valid = rsu >= 0
        s = np.where(valid, rsu, 0)
        up = np.broadcast_to(np.asarray(uplink, dtype=bool), rsu.shape)
        out = np.where(up, self._uplink_interference_mw[s], 0.0)
        down = ~up & valid
        if down.any():
            q = self._offsets(np.asarray(position_m, dtype=np.float64).reshape(-1, 2)[down])  # (n, R, 2)
            d2 = np.hypot(q[..., 0], q[..., 1])
            rx = dbm_to_mw(mean_received_power_dbm(self.profile, self.profile.rsu_tx_power_dbm,
                                                   np.hypot(d2, self.rsu_height_m), distance_2d_m=d2))
            out[down] = self.profile.activity_factor * np.where(self._co_channel[s[down]], rx, 0.0).sum(axis=1)
        return np.where(valid, out, 0.0)

    def snr_db(self, vehicle_ids: ArrayLike, position_m: ArrayLike, rsu_ids: ArrayLike, travelled_m: ArrayLike,
               *, uplink: bool | ArrayLike, bandwidth_hz: ArrayLike | None = None,
               time_s: ArrayLike | None = None) -> np.ndarray:
        """(k,) instantaneous SNR [dB] of each vehicle's link to ``rsu_ids`` (-inf where the id is -1); the
        SINR when the profile has co-channel interference.

        P_tx + 2 G - (path loss of the link's state + its shadowing at the distance the vehicle has travelled
        [m]) - noise + 10 log10(fading gain) (see the module docstring); with interference, minus
        10 log10(1 + I/N) (`interference_mw`, N over the direction's whole bandwidth). ``uplink`` is one flag or
        one per link; ``bandwidth_hz`` (scalar or per link) overrides the noise bandwidth; ``time_s`` [s]
        (scalar or per link) is needed when the channel is `time_varying`.
        """
        p = self.profile
        rsu, every, valid, d2, d3 = self._geometry(position_m, rsu_ids)
        vehicles = np.asarray(vehicle_ids, dtype=np.int64).reshape(-1)
        if vehicles.shape != rsu.shape:
            vehicles = np.broadcast_to(vehicles, rsu.shape)
        if not every and not valid.any():
            return np.full(rsu.shape, -np.inf)
        snr = self._base_db(uplink, bandwidth_hz) - self._loss_db(vehicles, rsu, d2, d3, travelled_m, time_s)
        if self._has_fading:
            g = fading_gain(p.fading, seed=self.seed, vehicle=vehicles, rsu=rsu, time_s=self._time(time_s),
                            distance_m=d3, period_s=p.fading_period_s)
            snr = snr + 10.0 * np.log10(np.maximum(g, 1e-300))
        if self.interference:
            noise_mw = dbm_to_mw(noise_power_dbm(direction_bandwidth_hz(p, uplink), p.noise_figure_db))
            snr = sinr_db(snr, self.interference_mw(position_m, rsu_ids, uplink=uplink) / noise_mw)
        return snr if every else np.where(valid, snr, -np.inf)

    def rate_bps(self, vehicle_ids: ArrayLike, position_m: ArrayLike, rsu_ids: ArrayLike, travelled_m: ArrayLike,
                 *, uplink: bool | ArrayLike, bandwidth_hz: ArrayLike | None = None,
                 time_s: ArrayLike | None = None, goodput: bool = True) -> np.ndarray:
        """(k,) full-band instantaneous rate [bit/s] (no sharing): shadowing, LOS state, fading and (when the
        profile has it) co-channel interference included.

        The profile's `rate_from_snr_bps` (Shannon or MCS) of `snr_db` over the direction's bandwidth
        (``bandwidth_hz`` if given, else the profile's, `direction_bandwidth_hz`); 0 where the SNR is below
        ``min_snr_db`` or the lowest MCS (outage) or the RSU id is -1. ``uplink`` is one flag or one per link.
        With an MCS table, ``goodput`` True (default) gives the PHY rate x (1 - PER), a fluid average of packet
        losses; False the PHY rate of the chosen MCS, for a caller that draws losses per chunk with
        `packet_error_rate` (use one or the other, not both). Shannon: the same either way.
        """
        p = self.profile
        bw = bandwidth_hz if bandwidth_hz is not None else direction_bandwidth_hz(p, uplink)
        snr = self.snr_db(vehicle_ids, position_m, rsu_ids, travelled_m, uplink=uplink, bandwidth_hz=bw,
                          time_s=time_s)
        usable = snr >= self.min_usable_snr_db
        rate = rate_from_snr_bps(p, bw, np.where(usable, snr, p.min_snr_db), goodput=goodput)
        return np.where(usable, rate, 0.0)

    def packet_error_rate(self, vehicle_ids: ArrayLike, position_m: ArrayLike, rsu_ids: ArrayLike,
                          travelled_m: ArrayLike, *, uplink: bool | ArrayLike, bandwidth_hz: ArrayLike | None = None,
                          time_s: ArrayLike | None = None) -> np.ndarray:
        """(k,) packet error rate in [0, 1] of each link now: that of the MCS link adaptation picks at `snr_db`
        (the logistic curve of `vfedsim.world.channel.packet_error_rate`); 0 with ``rate_mapping: shannon``
        (no packet errors); 1 where the link is in outage (`rate_bps` is 0) or the RSU id is -1. The arguments
        are `rate_bps`'s. A chunk sent at ``rate_bps(..., goodput=False)`` is lost with this probability."""
        return self.rate_and_per(vehicle_ids, position_m, rsu_ids, travelled_m, uplink=uplink,
                                 bandwidth_hz=bandwidth_hz, time_s=time_s, goodput=False)[1]

    def rate_and_per(self, vehicle_ids: ArrayLike, position_m: ArrayLike, rsu_ids: ArrayLike,
                     travelled_m: ArrayLike, *, uplink: bool | ArrayLike, bandwidth_hz: ArrayLike | None = None,
                     time_s: ArrayLike | None = None, goodput: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(`rate_bps`, `packet_error_rate`) of each link from one SNR evaluation [bit/s, 1]; ``goodput`` as
        in `rate_bps` (default False here: the PHY rate that goes with the PER)."""
        p = self.profile
        bw = bandwidth_hz if bandwidth_hz is not None else direction_bandwidth_hz(p, uplink)
        snr = self.snr_db(vehicle_ids, position_m, rsu_ids, travelled_m, uplink=uplink, bandwidth_hz=bw,
                          time_s=time_s)
        usable = snr >= self.min_usable_snr_db
        safe = np.where(usable, snr, p.min_snr_db)
        rate = np.where(usable, rate_from_snr_bps(p, bw, safe, goodput=goodput), 0.0)
        per = np.where(usable, per_from_snr(p, safe), 1.0)
        return rate, per

    def rsrp_dbm(self, vehicle_ids: ArrayLike, position_m: ArrayLike, rsu_ids: ArrayLike, travelled_m: ArrayLike,
                 *, time_s: ArrayLike | None = None) -> np.ndarray:
        """(k,) received power [dBm] of each RSU's signal at the vehicle: RSU tx power + 2 G - path loss of the
        link's state - shadowing; no fading (a handover measurement averages it out). -inf where the id is -1."""
        p = self.profile
        rsu, every, valid, d2, d3 = self._geometry(position_m, rsu_ids)
        vehicles = np.broadcast_to(np.asarray(vehicle_ids, dtype=np.int64).reshape(-1), rsu.shape)
        if not every and not valid.any():
            return np.full(rsu.shape, -np.inf)
        rx = p.rsu_tx_power_dbm + 2.0 * p.antenna_gain_dbi - self._loss_db(vehicles, rsu, d2, d3, travelled_m,
                                                                         time_s)
        return rx if every else np.where(valid, rx, -np.inf)

    # ---------------------------------------------------------------------------------- coverage timing
    def time_to_exit_s(self, position_m: ArrayLike, velocity_mps: ArrayLike, rsu_ids: ArrayLike) -> np.ndarray:
        """(k,) time [s] until each vehicle leaves its RSU's disc at constant velocity.

        The larger root of |p + v t - c| = R (R = `coverage_radius_m`, horizontal); inf when stationary
        inside; 0 when outside or the id is -1.
        """
        rsu = np.asarray(rsu_ids, dtype=np.int64).reshape(-1)
        p = np.asarray(position_m, dtype=np.float64).reshape(-1, 2)
        v = np.asarray(velocity_mps, dtype=np.float64).reshape(-1, 2)
        if rsu.size == 1:  # one link: the same arithmetic on Python floats (fewer numpy calls)
            r = int(rsu[0])
            if r < 0:
                return np.zeros(1)
            return np.array([_exit_time_one(float(p[0, 0] - self.rsu_xy[r, 0]), float(p[0, 1] - self.rsu_xy[r, 1]),
                                            float(v[0, 0]), float(v[0, 1]), self.coverage_radius_m)])
        valid = rsu >= 0
        if not valid.any():
            return np.zeros(rsu.shape)
        q = p - self.rsu_xy[np.where(valid, rsu, 0)]
        return np.where(valid, _exit_time_s(q, v, self.coverage_radius_m), 0.0)

    def time_to_coverage_s(self, position_m: ArrayLike, velocity_mps: ArrayLike) -> np.ndarray:
        """(N,) time [s] until each vehicle is in a coverage disc that keeps it, at constant velocity.

        0 when inside one now (not just leaving it on its edge, see `attach`); inf when its path meets none.
        (Whether that is before its trip ends is the caller's concern.)
        """
        q = self._offsets(position_m)
        d2, cov = self._covering(q)
        n = q.shape[0]
        if self.n_rsus == 0 or self.coverage_radius_m <= 0.0:
            return np.full(n, np.inf)
        self._keeps(q, np.asarray(velocity_mps, dtype=np.float64), cov)
        v = np.asarray(velocity_mps, dtype=np.float64).reshape(-1, 1, 2)
        radius = self.coverage_radius_m
        qx, qy, vx, vy = q[..., 0], q[..., 1], v[..., 0], v[..., 1]
        a = vx * vx + vy * vy
        b = 2.0 * (qx * vx + qy * vy)
        c = d2 - radius * radius
        disc = b * b - 4.0 * a * c
        sq = np.sqrt(np.maximum(disc, 0.0))
        hits = (a > 0.0) & (b < 0.0) & (disc >= 0.0)  # approaching (b < 0) a disc it is outside of (c > 0)
        entry = np.where(hits, np.maximum(2.0 * c / np.where(hits, sq - b, 1.0), 0.0), np.inf)  # smaller root
        return np.where(cov.any(axis=1), 0.0, entry.min(axis=1))
