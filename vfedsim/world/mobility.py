"""Where vehicles are: the `MobilityModel` protocol, its highway model and the piecewise-linear kinematics
the road-graph models share, as vectorised numpy over all vehicles.

Models by ``world.road.name`` (`MOBILITY`): ``highway`` (here), ``urban-grid`` (`vfedsim.world.urban`),
``sumo-fcd`` (`vfedsim.world.fcd`). The highway's layout:

Coordinates [m]: x along the road from 0 to ``length_m``; y across it, with the centre line at y = 0.
Vehicles driving towards +x (direction +1) use the lanes at y < 0, those driving towards -x the lanes at
y > 0 (right-hand traffic seen from above with y to the left of +x). Lane 0 is the innermost lane of its
direction (next to y = 0); lane k's centre is at |y| = (k + 0.5) x lane width. With one direction, every
vehicle drives towards +x on the y < 0 lanes.

Each vehicle drives one trip at constant speed in its lane (car-following is future work): it is on the road
(``active``) for t_enter <= t < t_exit and leaves at its trip length or at the road end, whichever is first.
"""
from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from ..registry import Registry
from ..rng import stream
from ..scenario import HighwayRoad, RSUConfig, TrafficConfig
from .radio import rsu_positions

__all__ = ["Trips", "MobilityState", "MobilityModel", "TripMobility", "HighwayMobility", "PathMobility",
           "MOBILITY", "lane_centre_y_m", "explicit_rsu_sites"]

MOBILITY: Registry[type] = Registry("mobility model", "world.road.name")
"""Mobility models by ``world.road.name``; an entry is called ``(road, traffic, *, seed, duration_s)``."""


@dataclass(frozen=True)
class Trips:
    """All vehicles of a run; index i is vehicle id i. Times [s], positions [m], speeds [m/s].

    Every model fills ``t_enter_s``, ``t_exit_s`` and ``speed_mps``; the highway's straight-lane fields
    (``x_enter_m``, ``direction``, ``lane``, ``y_m``) are None elsewhere (``lane`` may be set by any model
    whose vehicles keep one lane).
    """

    t_enter_s: np.ndarray  # (N,) float64: time the vehicle appears (on the road for t_enter <= t < t_exit)
    t_exit_s: np.ndarray  # (N,) float64: time it leaves (highway: t_enter + min(trip, to road end) / speed)
    speed_mps: np.ndarray  # (N,) float64: its constant speed (a trace: its mean speed over the trip)
    x_enter_m: np.ndarray | None = None  # (N,) float64: highway: x at t_enter
    direction: np.ndarray | None = None  # (N,) int8: highway: +1 drives towards +x, -1 towards -x
    lane: np.ndarray | None = None  # (N,) int64: lane within its direction, 0 = innermost (next to the centre)
    y_m: np.ndarray | None = None  # (N,) float64: highway: lane centre's y (y < 0 for direction +1)

    @property
    def n(self) -> int:
        return int(self.t_enter_s.shape[0])

    def columns(self) -> dict[str, np.ndarray]:
        """Per-vehicle columns for the run's vehicles table: times, then direction and lane where the model
        has them, then speed."""
        out = {"t_enter_s": self.t_enter_s, "t_exit_s": self.t_exit_s}
        if self.direction is not None:
            out["direction"] = self.direction.astype(np.int64)
        if self.lane is not None:
            out["lane"] = self.lane
        out["speed_mps"] = self.speed_mps
        return out


@dataclass(frozen=True)
class MobilityState:
    """All vehicles at one instant. Inactive vehicles sit at their trip's start or end point."""

    time_s: float
    position_m: np.ndarray  # (N, 2) x, y [m], clamped to the trip's start/end points when inactive
    velocity_mps: np.ndarray  # (N, 2) [m/s]; zero when inactive
    active: np.ndarray  # (N,) bool: t_enter <= t < t_exit


class MobilityModel(Protocol):
    """What the radio network and the strategies need from a mobility model.

    Built as ``MOBILITY.get(name)(road, traffic, *, seed, duration_s)``. ``trips`` gives every vehicle's
    id, entry and exit time; positions are [m], velocities [m/s], times [s]. Positions are continuous and
    piecewise linear in time, velocities piecewise constant and right-continuous (at a change instant the
    new velocity applies); a vehicle is on the road for t_enter <= t < t_exit and has velocity 0 off it.
    The network re-reads velocities at every rate update and at every `next_change_s`, so coverage-exit
    times computed from them are exact.

    - ``state(t)``: every vehicle at ``t``.
    - ``positions_of(ids, t)``: positions (k, 2) [m] and velocities (k, 2) [m/s]; called very often, for one
      vehicle and for many, so it must be vectorised and cheap.
    - ``active_of(ids, t)``: (k,) bool, on the road.
    - ``travelled_m(ids, t)``: (k,) distance [m] driven since the trip began (shadowing is indexed by it).
    - ``next_change_s(ids, t)``: (k,) the first instant [s] strictly after ``t`` at which each vehicle's
      velocity may change (trip start, a turn, a trace timestep, trip end); the velocity is constant on
      [t, that instant). ``inf`` when it never changes again (after the trip).
    - ``rsu_sites(rsus)``: (R, 2) RSU positions [m] for this road (`vfedsim.scenario.RSUConfig`); may be
      empty (the engine rejects a scenario without RSUs).
    """

    trips: Trips

    def state(self, t: float) -> MobilityState: ...
    def positions_of(self, ids: ArrayLike, t: float) -> tuple[np.ndarray, np.ndarray]: ...
    def active_of(self, ids: ArrayLike, t: float) -> np.ndarray: ...
    def travelled_m(self, ids: ArrayLike, t: float) -> np.ndarray: ...
    def next_change_s(self, ids: ArrayLike, t: float) -> np.ndarray: ...
    def rsu_sites(self, rsus: RSUConfig) -> np.ndarray: ...


def explicit_rsu_sites(rsus: RSUConfig) -> np.ndarray | None:
    """(R, 2) ``rsus.positions_m`` [m] when the scenario lists them (any road), else None."""
    if rsus.positions_m is None:
        return None
    return np.asarray(rsus.positions_m, dtype=np.float64).reshape(-1, 2)


def lane_centre_y_m(direction: ArrayLike, lane: ArrayLike, lane_width_m: float) -> np.ndarray:
    """Lateral coordinate [m] of a lane centre: -(lane + 0.5) w for direction +1, +(lane + 0.5) w for -1."""
    return -np.asarray(direction, dtype=np.float64) * (np.asarray(lane, dtype=np.float64) + 0.5) * lane_width_m


class TripMobility:
    """Constant-speed straight-lane motion along given `Trips` (the kinematics every model here shares)."""

    def __init__(self, trips: Trips) -> None:
        self.trips = trips
        self._vx = trips.direction.astype(np.float64) * trips.speed_mps  # [m/s] signed speed along x
        self._span = np.maximum(trips.t_exit_s - trips.t_enter_s, 0.0)  # [s] trip duration

    def _clock(self, ids: np.ndarray | slice, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Seconds driven so far (clamped to the trip) and whether on the road, at ``t``."""
        enter = self.trips.t_enter_s[ids]
        active = (enter <= t) & (t < self.trips.t_exit_s[ids])
        return np.minimum(np.maximum(t - enter, 0.0), self._span[ids]), active

    def _kinematics(self, ids: np.ndarray | slice, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        elapsed, active = self._clock(ids, t)
        vx = self._vx[ids]
        pos = np.empty((vx.shape[0], 2))
        pos[:, 0] = self.trips.x_enter_m[ids] + vx * elapsed
        pos[:, 1] = self.trips.y_m[ids]
        vel = np.zeros((vx.shape[0], 2))
        vel[:, 0] = np.where(active, vx, 0.0)
        return pos, vel, active

    def state(self, t: float) -> MobilityState:
        """Every vehicle at time ``t`` [s] (vectorised)."""
        pos, vel, active = self._kinematics(slice(None), float(t))
        return MobilityState(time_s=float(t), position_m=pos, velocity_mps=vel, active=active)

    def _one(self, i: int, t: float) -> tuple[float, bool]:
        """`_clock` of one vehicle on Python floats (the same arithmetic): seconds driven, on the road."""
        enter = float(self.trips.t_enter_s[i])
        return min(max(t - enter, 0.0), float(self._span[i])), enter <= t < float(self.trips.t_exit_s[i])

    def positions_of(self, ids: ArrayLike, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Positions (k, 2) [m] and velocities (k, 2) [m/s] of vehicles ``ids`` at time ``t`` [s]."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 1:  # one vehicle: fewer numpy calls, the same numbers
            i = int(ids[0])
            elapsed, active = self._one(i, float(t))
            vx = float(self._vx[i])
            return (np.array([[float(self.trips.x_enter_m[i]) + vx * elapsed, float(self.trips.y_m[i])]]),
                    np.array([[vx if active else 0.0, 0.0]]))
        pos, vel, _ = self._kinematics(ids, float(t))
        return pos, vel

    def active_of(self, ids: ArrayLike, t: float) -> np.ndarray:
        """(k,) bool: which of ``ids`` are on the road at ``t`` (t_enter <= t < t_exit)."""
        return self._clock(np.asarray(ids, dtype=np.int64).reshape(-1), float(t))[1]

    def travelled_m(self, ids: ArrayLike, t: float) -> np.ndarray:
        """Distance [m] each of ``ids`` has driven since its trip began, at ``t`` [s] (0 before, trip at end)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 1:
            i = int(ids[0])
            return np.array([self._one(i, float(t))[0] * float(self.trips.speed_mps[i])])
        return self._clock(ids, float(t))[0] * self.trips.speed_mps[ids]

    def next_change_s(self, ids: ArrayLike, t: float) -> np.ndarray:
        """(k,) when each velocity next changes after ``t`` [s]: its t_enter before the trip, its t_exit
        during it, ``inf`` after (the speed is constant and the lane straight)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        t = float(t)
        enter, leave = self.trips.t_enter_s[ids], self.trips.t_exit_s[ids]
        return np.where(t < enter, enter, np.where(t < leave, leave, np.inf))


@MOBILITY.register("highway")
class HighwayMobility(TripMobility):
    """Trips on a `HighwayRoad` drawn from a `TrafficConfig`.

    ``traffic.initial_vehicles`` are on the road at t = 0 (ids 0 .. n0-1), spread uniformly in x. Then
    Poisson arrivals at ``arrival_rate_per_s`` (both directions together) over [0, ``duration_s``] enter at
    x = 0 (direction +1) or x = length (direction -1); their ids continue in arrival order. Arrival times
    come from ``stream(seed, "arrivals")``. Each vehicle's own attributes come from ``stream(seed,
    "vehicle", i)``, always drawn in the same order (direction, lane, speed, trip length, initial x), so
    adding vehicles never changes another vehicle's attributes. Speed: normal(mean, std) [km/h] clipped to
    [min, max], converted to m/s; trip length: uniform [min_m, max_m].
    """

    def __init__(self, road: HighwayRoad, traffic: TrafficConfig, *, seed: int, duration_s: float) -> None:
        self.road = road
        self.traffic = traffic
        n0 = int(traffic.initial_vehicles)
        arrivals = _poisson_times(stream(seed, "arrivals"), traffic.arrival_rate_per_s, float(duration_s))
        n = n0 + arrivals.size
        sp, tl = traffic.speed, traffic.trip_length
        direction = np.empty(n, dtype=np.int8)
        lane = np.empty(n, dtype=np.int64)
        speed_kmh = np.empty(n)
        trip_m = np.empty(n)
        x0 = np.empty(n)
        for i in range(n):
            rng = stream(seed, "vehicle", i)
            towards_minus_x = rng.random() >= 0.5  # drawn even on one-way roads, to keep the draw order
            direction[i] = -1 if road.directions == 2 and towards_minus_x else 1
            lane[i] = rng.integers(road.lanes_per_direction)
            speed_kmh[i] = min(max(rng.normal(sp.mean_kmh, sp.std_kmh), sp.min_kmh), sp.max_kmh)
            trip_m[i] = rng.uniform(tl.min_m, tl.max_m)
            x0[i] = rng.uniform(0.0, road.length_m)
        x0[n0:] = np.where(direction[n0:] > 0, 0.0, road.length_m)
        speed = speed_kmh / 3.6
        to_end = np.where(direction > 0, road.length_m - x0, x0)
        t_enter = np.concatenate([np.zeros(n0), arrivals])
        super().__init__(Trips(
            t_enter_s=t_enter, t_exit_s=t_enter + np.minimum(trip_m, to_end) / speed, x_enter_m=x0,
            direction=direction, lane=lane, y_m=lane_centre_y_m(direction, lane, road.lane_width_m),
            speed_mps=speed))

    def rsu_sites(self, rsus: RSUConfig) -> np.ndarray:
        """(R, 2) RSU positions [m]: ``rsus.positions_m`` if given, else along the road
        (`vfedsim.world.radio.rsu_positions`)."""
        sites = explicit_rsu_sites(rsus)
        return sites if sites is not None else rsu_positions(self.road, rsus)


def _poisson_times(rng: np.random.Generator, rate_per_s: float, duration_s: float) -> np.ndarray:
    """Arrival times [s] of a Poisson process of rate ``rate_per_s`` on [0, duration_s] (exponential gaps)."""
    if rate_per_s <= 0.0 or duration_s <= 0.0:
        return np.zeros(0)
    times: list[float] = []
    t = 0.0
    while True:
        t += rng.exponential(1.0 / rate_per_s)
        if t > duration_s:
            return np.asarray(times, dtype=np.float64)
        times.append(t)


class PathMobility:
    """Piecewise-linear motion along per-vehicle polylines in time (the kinematics of the road-graph models).

    Vehicle i passes breakpoint k at time ``times[i][k]`` [s] (strictly increasing) at ``points[i][k]``
    (x, y) [m] and moves in a straight line at constant velocity in between; it is on the road from its
    first to its last breakpoint (``t_enter`` <= t < ``t_exit``). Consecutive segments with exactly the
    same velocity are merged, so every remaining breakpoint is a velocity change (`next_change_s`).

    Storage is flat over all breakpoints (vehicle i owns rows ``off[i]:off[i+1]``): times, points, the
    velocity of the segment that starts there (0 on the last row), its speed and the distance driven up to
    there. A query finds every vehicle's segment with one `np.searchsorted`, exactly: each row's time is
    replaced by its rank g_b among all distinct breakpoint times G, so the integer keys i (|G| + 1) + g_b
    are sorted over all rows; the query (i, t) is the key i (|G| + 1) + g(t), g(t) = #{G <= t}, and the
    first row after it is that vehicle's first breakpoint later than t. Then p_k + v_k (t - t_k). One
    vehicle takes a `bisect` on its own rows, on Python floats.
    """

    def __init__(self, trips: Trips, times: list[np.ndarray], points: list[np.ndarray]) -> None:
        if len(times) != trips.n or len(points) != trips.n:
            raise ValueError("need one breakpoint array per vehicle")
        kept_t, kept_p, kept_v = [], [], []
        for i, (tk, pk) in enumerate(zip(times, points)):
            tk = np.asarray(tk, dtype=np.float64).reshape(-1)
            pk = np.asarray(pk, dtype=np.float64).reshape(-1, 2)
            if tk.size == 0 or tk.size != pk.shape[0]:
                raise ValueError(f"vehicle {i}: needs at least one breakpoint, as many times as points")
            if np.any(np.diff(tk) <= 0.0):
                raise ValueError(f"vehicle {i}: breakpoint times must be strictly increasing")
            v = np.zeros_like(pk)
            v[:-1] = np.diff(pk, axis=0) / np.diff(tk)[:, None]
            keep = np.ones(tk.size, dtype=bool)
            keep[1:-1] = np.any(v[1:-1] != v[:-2], axis=1)  # drop breakpoints where nothing changes
            kept_t.append(tk[keep])
            kept_p.append(pk[keep])
            kept_v.append(v[keep])
        counts = np.array([a.size for a in kept_t], dtype=np.int64)
        self.trips = trips
        self._off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._cnt = counts
        self._t = np.concatenate(kept_t) if kept_t else np.zeros(0)
        self._p = np.concatenate(kept_p) if kept_p else np.zeros((0, 2))
        self._v = np.concatenate(kept_v) if kept_v else np.zeros((0, 2))
        self._s = np.hypot(self._v[:, 0], self._v[:, 1])  # [m/s] speed of the segment starting at each row
        dur = np.zeros(self._t.size)
        dur[:-1] = np.diff(self._t)
        dur[self._off[1:] - 1] = 0.0  # a vehicle's last row starts no segment
        self._dur = dur  # [s] duration of the segment that starts at each row
        seg = self._s * dur
        d = np.concatenate([[0.0], np.cumsum(seg)])[:-1]
        self._d = d - np.repeat(d[self._off[:-1]], counts) if counts.size else d  # [m] driven up to the row
        self._g = np.unique(self._t)  # every distinct breakpoint time [s], sorted
        self._stride = np.int64(self._g.size + 1)
        owner = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
        self._key = owner * self._stride + np.searchsorted(self._g, self._t, side="right")  # sorted int64
        self._px, self._py = self._p[:, 0].copy(), self._p[:, 1].copy()  # 1-D copies: `take` is fastest
        self._vx, self._vy = self._v[:, 0].copy(), self._v[:, 1].copy()
        # array.array copies (8 bytes a value) for the one-vehicle path: `bisect` and indexing give Python
        # floats, with no numpy call
        self._tl, self._offl = _doubles(self._t), array("q", self._off.tobytes())
        self._pxl, self._pyl, self._vxl, self._vyl = map(_doubles, (self._px, self._py, self._vx, self._vy))
        self._dl, self._sl, self._durl = _doubles(self._d), _doubles(self._s), _doubles(self._dur)

    @staticmethod
    def trips_from(times: list[np.ndarray], points: list[np.ndarray], *, speed_mps: np.ndarray | None = None,
                   lane: np.ndarray | None = None) -> Trips:
        """`Trips` of breakpoint lists: first and last time; ``speed_mps`` default: path length / duration."""
        enter = np.array([float(t[0]) for t in times])
        leave = np.array([float(t[-1]) for t in times])
        if speed_mps is None:
            length = np.array([float(np.hypot(*np.diff(np.asarray(p).reshape(-1, 2), axis=0).T).sum())
                               for p in points])
            span = leave - enter
            speed_mps = np.divide(length, span, out=np.zeros_like(length), where=span > 0)
        return Trips(t_enter_s=enter, t_exit_s=leave, speed_mps=np.asarray(speed_mps, dtype=np.float64), lane=lane)

    # ------------------------------------------------------------------------------------------ lookup
    def _after(self, ids: np.ndarray, t: float) -> np.ndarray:
        """(k,) per vehicle, the first row whose time is > t (its ``off[i+1]`` when none)."""
        g = np.int64(np.searchsorted(self._g, t, side="right"))
        return np.searchsorted(self._key, ids * self._stride + g, side="right")

    def _rows(self, ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each vehicle's current row (its first before the trip, its last after), seconds since that row's
        time (0 before the trip, at most the segment's duration, so 0 after), on the road."""
        row = np.maximum(self._after(ids, t) - 1, self._off.take(ids))  # _after is never past off[i+1]
        dt = np.minimum(np.maximum(t - self._t.take(row), 0.0), self._dur.take(row))
        active = (self.trips.t_enter_s.take(ids) <= t) & (t < self.trips.t_exit_s.take(ids))
        return row, dt, active

    def _one(self, i: int, t: float) -> tuple[int, float, bool]:
        """`_rows` of one vehicle on Python floats (the same arithmetic)."""
        a, b = self._offl[i], self._offl[i + 1]
        tl = self._tl
        row = max(bisect_right(tl, t, a, b) - 1, a)
        return row, min(max(t - tl[row], 0.0), self._durl[row]), tl[a] <= t < tl[b - 1]

    # ------------------------------------------------------------------------------------- protocol
    def _kinematics(self, ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        row, dt, active = self._rows(ids, t)
        vx, vy = self._vx.take(row), self._vy.take(row)
        pos = np.empty((row.size, 2))
        vel = np.empty((row.size, 2))
        np.add(self._px.take(row), vx * dt, out=pos[:, 0])
        np.add(self._py.take(row), vy * dt, out=pos[:, 1])
        np.multiply(vx, active, out=vel[:, 0])  # 0 off the road (after the trip, the last row's is 0)
        np.multiply(vy, active, out=vel[:, 1])
        return pos, vel, active

    def state(self, t: float) -> MobilityState:
        """Every vehicle at time ``t`` [s] (vectorised)."""
        pos, vel, active = self._kinematics(np.arange(self.trips.n), float(t))
        return MobilityState(time_s=float(t), position_m=pos, velocity_mps=vel, active=active)

    def positions_of(self, ids: ArrayLike, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Positions (k, 2) [m] and velocities (k, 2) [m/s] of vehicles ``ids`` at time ``t`` [s]."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 1:
            row, dt, active = self._one(int(ids[0]), float(t))
            vx, vy = self._vxl[row], self._vyl[row]
            return (np.array([[self._pxl[row] + vx * dt, self._pyl[row] + vy * dt]]),
                    np.array([[vx, vy]]) if active else np.zeros((1, 2)))
        pos, vel, _ = self._kinematics(ids, float(t))
        return pos, vel

    def active_of(self, ids: ArrayLike, t: float) -> np.ndarray:
        """(k,) bool: which of ``ids`` are on the road at ``t`` (t_enter <= t < t_exit)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        t = float(t)
        return (self.trips.t_enter_s[ids] <= t) & (t < self.trips.t_exit_s[ids])

    def travelled_m(self, ids: ArrayLike, t: float) -> np.ndarray:
        """Distance [m] each of ``ids`` has driven along its path since its trip began, at ``t`` [s]."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 1:
            row, dt, _ = self._one(int(ids[0]), float(t))
            return np.array([self._dl[row] + self._sl[row] * dt])
        row, dt, _ = self._rows(ids, float(t))
        return self._d.take(row) + self._s.take(row) * dt

    def next_change_s(self, ids: ArrayLike, t: float) -> np.ndarray:
        """(k,) the first breakpoint time [s] after ``t`` of each vehicle (its entry, a turn or trace step,
        its exit); ``inf`` after its exit."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            return np.zeros(0)
        if ids.size == 1:  # one vehicle (the network asks per flow): a bisect on its rows
            i, t = int(ids[0]), float(t)
            k = bisect_right(self._tl, t, self._offl[i], self._offl[i + 1])
            return np.array([self._tl[k] if k < self._offl[i + 1] else math.inf])
        nxt = self._after(ids, float(t))
        has = nxt < self._off.take(ids + 1)
        return np.where(has, self._t.take(np.minimum(nxt, self._t.size - 1)), np.inf)


def _doubles(a: np.ndarray) -> array:
    """An ``array('d')`` copy of a float64 array (indexing it gives Python floats)."""
    out = array("d")
    out.frombytes(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return out
