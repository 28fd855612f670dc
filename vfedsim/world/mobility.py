"""Where vehicles are: trips on a straight multi-lane highway, as vectorised numpy over all vehicles.

Coordinates [m]: x along the road from 0 to ``length_m``; y across it, with the centre line at y = 0.
Vehicles driving towards +x (direction +1) use the lanes at y < 0, those driving towards -x the lanes at
y > 0 (right-hand traffic seen from above with y to the left of +x). Lane 0 is the innermost lane of its
direction (next to y = 0); lane k's centre is at |y| = (k + 0.5) x lane width. With one direction, every
vehicle drives towards +x on the y < 0 lanes.

Each vehicle drives one trip at constant speed in its lane (car-following is future work): it is on the road
(``active``) for t_enter <= t < t_exit and leaves at its trip length or at the road end, whichever is first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from ..registry import Registry
from ..rng import stream
from ..scenario import HighwayRoad, TrafficConfig

__all__ = ["Trips", "MobilityState", "MobilityModel", "TripMobility", "HighwayMobility", "MOBILITY",
           "lane_centre_y_m"]

MOBILITY: Registry[type] = Registry("mobility model", "world.road.name")
"""Mobility models by ``world.road.name``; an entry is called ``(road, traffic, *, seed, duration_s)``."""


@dataclass(frozen=True)
class Trips:
    """All vehicles of a run; index i is vehicle id i. Times [s], positions [m], speeds [m/s]."""

    t_enter_s: np.ndarray  # (N,) float64: time the vehicle appears
    t_exit_s: np.ndarray  # (N,) float64: t_enter + min(trip length, distance to road end) / speed
    x_enter_m: np.ndarray  # (N,) float64: x at t_enter
    direction: np.ndarray  # (N,) int8: +1 drives towards +x, -1 towards -x
    lane: np.ndarray  # (N,) int64: lane within its direction, 0 = innermost (next to y = 0)
    y_m: np.ndarray  # (N,) float64: lateral coordinate of the lane centre (y < 0 for direction +1)
    speed_mps: np.ndarray  # (N,) float64: constant speed

    @property
    def n(self) -> int:
        return int(self.t_enter_s.shape[0])


@dataclass(frozen=True)
class MobilityState:
    """All vehicles at one instant. Inactive vehicles sit at their trip's start or end point."""

    time_s: float
    position_m: np.ndarray  # (N, 2) x, y [m], clamped to the trip's start/end points when inactive
    velocity_mps: np.ndarray  # (N, 2) [m/s]; zero when inactive
    active: np.ndarray  # (N,) bool: t_enter <= t < t_exit


class MobilityModel(Protocol):
    """What the radio network and the strategies need from a mobility model.

    ``trips`` gives every vehicle's id, entry and exit time; positions are [m], velocities [m/s], times [s].
    Velocities must be constant between the times at which they change, and the network re-reads them at
    every rate update, so exit times computed from them are exact where they are constant.
    """

    trips: Trips

    def state(self, t: float) -> MobilityState: ...
    def positions_of(self, ids: ArrayLike, t: float) -> tuple[np.ndarray, np.ndarray]: ...
    def active_of(self, ids: ArrayLike, t: float) -> np.ndarray: ...
    def travelled_m(self, ids: ArrayLike, t: float) -> np.ndarray: ...


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
