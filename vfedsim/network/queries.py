"""What a strategy may ask the fluid network without scheduling anything: serving RSUs, time to coverage,
dwell times, link rates and SNRs, for one vehicle or for a whole fleet at once (`Queries`, the base of
`vfedsim.network.fluid.FluidNetwork`; docs/network.md, "Queries").

A vehicle with a transfer in flight is served by its flows' RSU; any other vehicle on the road by the RSU
it would attach to (`vfedsim.world.radio.Radio.attach`: the nearest covering RSU that keeps it for a
positive time). The fleet-wide answers at one instant share one attachment of every vehicle on the road
(`Queries.attached`), computed once per instant.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy
from numpy.typing import ArrayLike

from .interface import as_ids, check_request

__all__ = ["Queries", "LinkView"]

_FLEET_QUERY = 64
"""A query for at least this many vehicles attaches the whole fleet on the road at once (`Queries.attached`),
which later queries at the same instant reuse; smaller ones attach only the vehicles asked about."""


@dataclass(frozen=True)
class LinkView:
    """Vehicles' links to their serving RSUs as they were at one instant (`Queries.link_view`): what they
    return does not depend on when they are asked (a selection snapshot computes its link fields late)."""

    radio: Any
    ids: np.ndarray  # (k,) vehicle ids
    position_m: np.ndarray  # (k, 2) [m]
    velocity_mps: np.ndarray  # (k, 2) [m/s]
    rsu: np.ndarray  # (k,) serving RSU (-1: none)
    travelled_m: np.ndarray  # (k,) [m]
    trip_left_s: np.ndarray  # (k,) [s] until each trip ends
    time_s: float  # [s] the instant
    time_varying: bool
    bandwidth_hz: tuple[float, float]  # [Hz] uplink, downlink

    def _link(self, quantity: Callable[..., np.ndarray], direction: str) -> np.ndarray:
        check_request(0, direction)
        up = direction == "up"
        extra = {"time_s": self.time_s} if self.time_varying else {}
        return quantity(self.ids, self.position_m, self.rsu, self.travelled_m, uplink=up,
                        bandwidth_hz=self.bandwidth_hz[0 if up else 1], **extra)

    def rates_bps(self, direction: str) -> np.ndarray:
        """(k,) [bit/s] `Queries.link_rates_bps` at the instant."""
        return self._link(self.radio.rate_bps, direction)

    def snrs_db(self, direction: str) -> np.ndarray:
        """(k,) [dB] `Queries.link_snrs_db` at the instant."""
        return self._link(self.radio.snr_db, direction)

    def dwell_times_s(self) -> np.ndarray:
        """(k,) [s] `Queries.dwell_times_s` at the instant."""
        return np.where(self.rsu >= 0, np.minimum(self.radio.time_to_exit_s(self.position_m, self.velocity_mps,
                                                                               self.rsu), self.trip_left_s), 0.0)


class Queries:
    """The state the queries read (vehicles in flight, relay paths) and the queries themselves."""

    def __init__(self, env: simpy.Environment, *, mobility: Any, radio: Any, config: Any,
                 uplink_hz: float | None, downlink_hz: float | None) -> None:
        self.env = env
        self.mobility = mobility
        self.radio = radio
        self.config = config
        self.uplink_hz = float(uplink_hz if uplink_hz is not None else radio.profile.bandwidth_hz)
        self.downlink_hz = float(downlink_hz if downlink_hz is not None else radio.profile.downlink_hz)
        self._time_varying = bool(getattr(radio, "time_varying", False))
        v2v = getattr(config, "v2v", None)
        self._v2v = v2v if v2v is not None and v2v.enabled else None
        trips = mobility.trips
        self._t_enter, self._t_exit = trips.t_enter_s.tolist(), trips.t_exit_s.tolist()
        self._vehicles: dict[int, list] = {}  # vehicle in flight -> [rsu, flows, interrupted until]
        self._paths: dict[int, tuple[int, ...]] = {}  # relayed vehicle -> its path (itself, ..., the relay)
        self._memo_t, self._memo = math.nan, {}  # `_where` answers at time _memo_t
        self._fleet_t, self._fleet = math.nan, None  # `attached` at time _fleet_t

    def _find_paths(self, vehicles: Any, t: float) -> dict[int, tuple[tuple[int, ...], int]]:
        raise NotImplementedError  # FluidNetwork's

    # ------------------------------------------------------------------------------------- one vehicle
    def serving_rsu(self, vehicle: int) -> int:
        vehicle, now = int(vehicle), self.env.now
        state = self._vehicles.get(vehicle)
        if state is not None:
            return state[0]
        return self._where(vehicle, now)[2] if self._t_enter[vehicle] <= now < self._t_exit[vehicle] else -1

    def time_to_coverage_s(self, vehicle: int) -> float:
        vehicle, now = int(vehicle), self.env.now
        if now >= self._t_exit[vehicle]:
            return math.inf
        if vehicle in self._vehicles:
            return 0.0
        if now < self._t_enter[vehicle]:
            return float(self.times_to_coverage_s([vehicle])[0])
        pos, vel, rsu = self._where(vehicle, now)
        if rsu >= 0 or (self._v2v is not None and vehicle in self._find_paths([vehicle], now)):
            return 0.0
        wait = float(self.radio.time_to_coverage_s(pos, vel)[0])
        return wait if now + wait < self._t_exit[vehicle] else math.inf

    def dwell_time_s(self, vehicle: int) -> float:
        return float(self.dwell_times_s([vehicle])[0])

    def link_rate_bps(self, vehicle: int, direction: str) -> float:
        return float(self.link_rates_bps([vehicle], direction)[0])

    def _where(self, vehicle: int, t: float) -> tuple[np.ndarray, np.ndarray, int]:
        """Position (1, 2), velocity (1, 2) and the RSU it would attach to of one vehicle on the road at
        ``t``, remembered for the current instant (a strategy asks, then starts a transfer)."""
        if self._memo_t != t:
            self._memo_t, self._memo = t, {}
        hit = self._memo.get(vehicle)
        if hit is None:
            pos, vel = self.mobility.positions_of(np.array([vehicle]), t)
            hit = self._memo[vehicle] = (pos, vel, int(self.radio.attach(pos, vel)[0]))
        return hit

    # ----------------------------------------------------------------------------------------- a fleet
    def attached(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every vehicle on the road now: ids (ascending), positions (k, 2) [m], velocities (k, 2) [m/s] and
        the RSU each would attach to (-1: none), whether in flight or not; computed once per instant."""
        now = self.env.now
        if self._fleet_t != now:
            trips = self.mobility.trips
            ids = np.flatnonzero((trips.t_enter_s <= now) & (now < trips.t_exit_s))
            pos, vel = self.mobility.positions_of(ids, now)
            self._fleet_t, self._fleet = now, (ids, pos, vel, self.radio.attach(pos, vel))
        return self._fleet

    def _links(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions, velocities and serving RSUs (-1: none) of ``ids`` now."""
        now, mob = self.env.now, self.mobility
        if ids.size == 1 and self._t_enter[int(ids[0])] <= now < self._t_exit[int(ids[0])]:
            pos, vel, r = self._where(int(ids[0]), now)
            rsu = np.array([r])
        elif self._fleet_t == now or ids.size >= _FLEET_QUERY:
            on, on_pos, on_vel, on_rsu = self.attached()
            k = np.minimum(np.searchsorted(on, ids), max(on.size - 1, 0))
            hit = on[k] == ids if on.size else np.zeros(ids.shape, dtype=bool)
            if hit.all():
                pos, vel, rsu = on_pos[k], on_vel[k], on_rsu[k]
            else:  # some are not on the road: where they are (they attach to nothing)
                pos, vel = mob.positions_of(ids, now)
                rsu = np.full(ids.shape, -1, dtype=np.int64)
                pos[hit], vel[hit], rsu[hit] = on_pos[k[hit]], on_vel[k[hit]], on_rsu[k[hit]]
        else:
            pos, vel = mob.positions_of(ids, now)
            rsu = np.where(mob.active_of(ids, now), self.radio.attach(pos, vel), -1)
        if self._vehicles:  # a vehicle in flight is served by its flows' RSU
            get = self._vehicles.get
            rsu = rsu.copy()
            for j, v in enumerate(ids.tolist()):
                state = get(v)
                if state is not None:
                    rsu[j] = state[0]
        return pos, vel, rsu

    def serving_rsus(self, vehicles: ArrayLike) -> np.ndarray:
        """(k,) `serving_rsu` of each vehicle."""
        return self._links(as_ids(vehicles))[2]

    def times_to_coverage_s(self, vehicles: ArrayLike) -> np.ndarray:
        """(k,) `time_to_coverage_s` of each vehicle."""
        ids = as_ids(vehicles)
        now, trips = self.env.now, self.mobility.trips
        t_enter, t_exit = trips.t_enter_s[ids], trips.t_exit_s[ids]
        pos, vel, rsu = self._links(ids)
        wait = np.zeros(ids.shape)
        out = rsu < 0
        if out.any():
            wait[out] = self.radio.time_to_coverage_s(pos[out], vel[out])
            if self._v2v is not None:  # reachable through neighbours now
                on_road = out & (t_enter <= now) & (now < t_exit)
                paths = self._find_paths(ids[on_road], now) if on_road.any() else {}
                wait[np.isin(ids, list(paths)) & on_road] = 0.0
        for i in np.flatnonzero(now < t_enter):  # not on the road yet: from where and when it enters
            p, v = self.mobility.positions_of(ids[i:i + 1], t_enter[i])
            wait[i] = t_enter[i] - now + float(self.radio.time_to_coverage_s(p, v)[0])
        return np.where((now < t_exit) & (now + wait < t_exit), wait, math.inf)

    def dwell_times_s(self, vehicles: ArrayLike) -> np.ndarray:
        """(k,) `dwell_time_s` of each vehicle."""
        return self.link_view(vehicles).dwell_times_s()

    def link_rates_bps(self, vehicles: ArrayLike, direction: str) -> np.ndarray:
        """(k,) `link_rate_bps` of each vehicle."""
        return self.link_view(vehicles).rates_bps(direction)

    def link_snrs_db(self, vehicles: ArrayLike, direction: str) -> np.ndarray:
        """(k,) [dB] instantaneous SNR (the SINR with co-channel interference) of each vehicle's link to its
        serving RSU, over the direction's bandwidth; -inf for a vehicle without one."""
        return self.link_view(vehicles).snrs_db(direction)

    def link_view(self, vehicles: ArrayLike) -> LinkView:
        """The vehicles' links to their serving RSUs now, to be evaluated now or later (`LinkView`)."""
        ids = as_ids(vehicles)
        now = self.env.now
        pos, vel, rsu = self._links(ids)
        return LinkView(radio=self.radio, ids=ids, position_m=pos, velocity_mps=vel, rsu=rsu,
                        travelled_m=self.mobility.travelled_m(ids, now),
                        trip_left_s=self.mobility.trips.t_exit_s[ids] - now, time_s=now,
                        time_varying=self._time_varying, bandwidth_hz=(self.uplink_hz, self.downlink_hz))
