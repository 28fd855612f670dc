"""Transfers as fluid flows through shared RSU links (DESIGN.md, principle 4).

A strategy reaches the radio network only through the `Network` interface (STYLE.md, 5). `FluidNetwork`
implements it over the world's mobility and radio models; `IdealNetwork` is the always-connected,
constant-rate stand-in for tests, baselines and overhead benchmarks.

How `FluidNetwork` moves bytes. Each RSU has one uplink and one downlink resource. The flows of one RSU and
direction that currently have a usable link (rate > 0) time-share it equally, so each gets its own full-band
link rate divided by their number: two equal transfers on one RSU take exactly twice as long as one. Rates
are piecewise constant: they are re-evaluated whenever a flow starts, ends or hands over, and every
``config.update_period_s`` while any vehicle with an active flow moves. Between evaluations one SimPy
process sleeps until the earliest of: a flow completing at the current rates, the next update tick, a
vehicle's exact exit from its RSU's coverage disc, a trip end and an outage timing out. Completion and
failure times are therefore exact (not quantised to ticks) wherever rates are constant. When no flow is
active, no process runs and nothing is scheduled: idle stretches cost nothing. (SimPy cannot unschedule a
timeout, so a wake-up planned before a transfer was cancelled, or before an earlier one was needed, still
passes once, as a no-op; while vehicles move it lies at most ``update_period_s`` ahead.)

A flow ends in one of these ways: success; or ``ok=False`` with a cause from `FAIL_CAUSES`:

* ``no_coverage``: requested while the vehicle had no serving RSU (or had not entered the road yet);
* ``trip_ended``: the vehicle's trip ended (also when requested after it ended);
* ``left_coverage``: it left its RSU's disc and, with ``handover: continue``, no other RSU covered it
  (with ``handover: drop`` leaving the disc always ends the flow);
* ``link_outage``: the instantaneous SNR stayed below ``min_snr_db`` for ``outage_timeout_s`` (outage is
  detected at rate evaluations, so its start is quantised to them);
* ``deadline`` / ``cancelled`` (or any other label in `FAIL_CAUSES`): the strategy called `Network.cancel`.

Simultaneous endings are resolved in the order completion, trip end, coverage exit, outage.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np
import simpy
from numpy.typing import ArrayLike

__all__ = ["FAIL_CAUSES", "DIRECTIONS", "TransferResult", "Network", "FluidNetwork", "IdealNetwork"]

FAIL_CAUSES = ("left_coverage", "trip_ended", "deadline", "link_outage", "no_coverage", "cancelled")
DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class TransferResult:
    """How a transfer ended. Times [s] are simulated; bytes [B]."""

    ok: bool  # all ``nbytes`` arrived
    cause: str | None  # None when ok, else one of FAIL_CAUSES
    vehicle: int
    direction: str  # "up" (vehicle -> RSU) or "down" (RSU -> vehicle)
    nbytes: int  # requested
    bytes_done: float  # carried before the end (== nbytes when ok)
    start_s: float  # when it was requested
    end_s: float  # when it completed or failed
    rsu: int  # the RSU that carried it last (-1 when there was none)
    handovers: int  # how many times it moved to another RSU


class Network(Protocol):
    """The radio network as a strategy sees it: the one interface injected into strategies.

    All times are simulated seconds at ``env.now``; sizes are bytes; rates bit/s; RSUs are indices 0..R-1
    and -1 means none. Vehicle ids are those of `vfedsim.world.mobility.Trips`. The plural queries take an
    array of vehicle ids and answer for all of them at once (use them for whole-fleet snapshots).
    """

    def transfer(self, vehicle: int, nbytes: int, direction: str) -> simpy.Event:
        """Start moving ``nbytes`` in ``direction`` ("up" or "down") over the vehicle's serving RSU.

        The returned event always *succeeds* (never fails) with a `TransferResult`; a transfer that cannot
        start (no coverage, trip over) succeeds at once with ``ok=False``. Failures are results, not errors.
        """
        ...

    def cancel(self, vehicle: int, cause: str) -> None:
        """End that vehicle's in-flight transfers now with ``ok=False`` and ``cause`` (one of `FAIL_CAUSES`,
        typically "deadline"); their events are triggered before this returns. No-op when none is in flight."""
        ...

    def serving_rsu(self, vehicle: int) -> int:
        """The RSU serving the vehicle now (its in-flight transfer's RSU, else the nearest covering one);
        -1 when it is out of coverage or not on the road."""
        ...

    def time_to_coverage_s(self, vehicle: int) -> float:
        """[s] until the vehicle is covered: 0 if covered now; inf if not before its trip ends."""
        ...

    def dwell_time_s(self, vehicle: int) -> float:
        """[s] predicted time left in the current RSU's coverage (capped at its trip end); 0 if none."""
        ...

    def link_rate_bps(self, vehicle: int, direction: str) -> float:
        """[bit/s] current full-band rate to the serving RSU, without sharing; 0 if none or in outage."""
        ...

    def serving_rsus(self, vehicles: ArrayLike) -> np.ndarray: ...
    def times_to_coverage_s(self, vehicles: ArrayLike) -> np.ndarray: ...
    def dwell_times_s(self, vehicles: ArrayLike) -> np.ndarray: ...
    def link_rates_bps(self, vehicles: ArrayLike, direction: str) -> np.ndarray: ...


OnEvent = Callable[..., None]
"""Observer hook ``on_event(kind, *, time_s, vehicle, rsu, nbytes=None, cause=None)`` (the recorder)."""


def _check_request(nbytes: int, direction: str) -> int:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if int(nbytes) < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    return int(nbytes)


def _check_cause(cause: str) -> str:
    if cause not in FAIL_CAUSES:
        raise ValueError(f"cause must be one of {FAIL_CAUSES}, got {cause!r}")
    return cause


def _ids(vehicles: ArrayLike) -> np.ndarray:
    return np.asarray(vehicles, dtype=np.int64).reshape(-1)


_FIELDS = {  # the flow table: one array per column, one row per active flow, in flow-id order
    "fid": np.int64, "vehicle": np.int64, "rsu": np.int64, "up": np.bool_, "bandwidth_hz": np.float64,
    "nbytes": np.float64, "done": np.float64, "start": np.float64, "handovers": np.int64,
    "outage_since": np.float64,  # [s] when the current outage began (nan: none)
    "share": np.float64,  # [bit/s] rate since the last evaluation (0 for flows added since)
    "vx": np.float64, "vy": np.float64,  # [m/s] the velocity its t_exit was computed for
    "t_complete": np.float64, "t_trip": np.float64, "t_exit": np.float64, "t_outage": np.float64,  # due [s]
}


class FluidNetwork:
    """`Network` over a mobility model and a `vfedsim.world.radio.Radio` (see the module docstring).

    ``mobility`` provides ``trips``, ``positions_of``, ``active_of`` and ``travelled_m``
    (`vfedsim.world.mobility.MobilityModel`); shadowing is looked up at the distance travelled.
    ``uplink_hz``/``downlink_hz`` [Hz] set each RSU resource's bandwidth for rates and outage (default: the
    radio profile's); coverage discs stay the radio's. ``on_event`` is told of every handover.
    """

    def __init__(self, env: simpy.Environment, *, mobility: Any, radio: Any, config: Any,
                 uplink_hz: float | None = None, downlink_hz: float | None = None,
                 on_event: OnEvent | None = None) -> None:
        self.env = env
        self.mobility = mobility
        self.radio = radio
        self.config = config
        self.on_event = on_event
        self.uplink_hz = float(uplink_hz if uplink_hz is not None else radio.profile.bandwidth_hz)
        self.downlink_hz = float(downlink_hz if downlink_hz is not None else radio.profile.downlink_hz)
        self._f = {name: np.zeros(0, dtype=dt) for name, dt in _FIELDS.items()}
        self._pending: list[dict[str, Any]] = []  # flows started since the table was last read
        self._events: dict[int, simpy.Event] = {}  # flow id -> the event its result goes to
        self._next_fid = 0
        self._t_eval = 0.0  # when rates were last evaluated
        self._due = math.inf  # the earliest due time found then
        self._process: simpy.Process | None = None
        self._wake: simpy.Event | None = None
        self._timer: simpy.Event | None = None
        self._timer_at = math.inf

    @property
    def active_transfers(self) -> int:
        return int(self._flows()["fid"].shape[0])

    def _flows(self) -> dict[str, np.ndarray]:
        """The flow table, with the flows started since it was last read appended (in flow-id order)."""
        if self._pending:
            rows, self._pending = self._pending, []
            self._f = {name: np.concatenate([col, np.array([r.get(name, math.inf if name[:2] == "t_" else 0)
                                                            for r in rows], dtype=col.dtype)])
                       for name, col in self._f.items()}
        return self._f

    # ------------------------------------------------------------------------------- Network interface
    def transfer(self, vehicle: int, nbytes: int, direction: str) -> simpy.Event:
        nbytes = _check_request(nbytes, direction)
        vehicle, now = int(vehicle), self.env.now
        event = self.env.event()
        if now >= self.mobility.trips.t_exit_s[vehicle]:
            return event.succeed(self._result(False, "trip_ended", vehicle, direction, nbytes, 0.0, now, -1, 0))
        rsu = self.serving_rsu(vehicle)
        if rsu < 0:
            return event.succeed(self._result(False, "no_coverage", vehicle, direction, nbytes, 0.0, now, -1, 0))
        if nbytes == 0:
            return event.succeed(self._result(True, None, vehicle, direction, 0, 0.0, now, rsu, 0))
        up = direction == "up"
        row = {"fid": self._next_fid, "vehicle": vehicle, "rsu": rsu, "up": up, "nbytes": nbytes, "start": now,
               "bandwidth_hz": self.uplink_hz if up else self.downlink_hz, "outage_since": math.nan,
               "t_exit": math.nan, "t_trip": self.mobility.trips.t_exit_s[vehicle]}
        self._pending.append(row)
        self._events[self._next_fid] = event
        self._next_fid += 1
        self._poke()
        return event

    def cancel(self, vehicle: int, cause: str) -> None:
        _check_cause(cause)
        f = self._flows()
        rows = np.flatnonzero(f["vehicle"] == int(vehicle))
        if not rows.size:
            return
        carried = f["share"][rows] * (self.env.now - self._t_eval) / 8.0
        f["done"][rows] = np.minimum(f["done"][rows] + carried, f["nbytes"][rows])
        self._finish(rows, np.full(rows.shape, cause, dtype=object))
        self._poke()

    def serving_rsu(self, vehicle: int) -> int:
        return int(self.serving_rsus([vehicle])[0])

    def time_to_coverage_s(self, vehicle: int) -> float:
        return float(self.times_to_coverage_s([vehicle])[0])

    def dwell_time_s(self, vehicle: int) -> float:
        return float(self.dwell_times_s([vehicle])[0])

    def link_rate_bps(self, vehicle: int, direction: str) -> float:
        return float(self.link_rates_bps([vehicle], direction)[0])

    # ----------------------------------------------------------------------------- batched queries
    def _links(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions, velocities and serving RSUs (-1: none) of ``ids`` now."""
        now, mob = self.env.now, self.mobility
        pos, vel = mob.positions_of(ids, now)
        rsu = np.where(mob.active_of(ids, now), self.radio.serving(pos), -1)
        f = self._flows()
        if f["vehicle"].size:  # a vehicle in flight is served by its (first) flow's RSU
            flying, first = np.unique(f["vehicle"], return_index=True)
            j = np.minimum(np.searchsorted(flying, ids), flying.size - 1)
            rsu = np.where(flying[j] == ids, f["rsu"][first[j]], rsu)
        return pos, vel, rsu

    def serving_rsus(self, vehicles: ArrayLike) -> np.ndarray:
        """(k,) `serving_rsu` of each vehicle."""
        return self._links(_ids(vehicles))[2]

    def times_to_coverage_s(self, vehicles: ArrayLike) -> np.ndarray:
        """(k,) `time_to_coverage_s` of each vehicle."""
        ids = _ids(vehicles)
        now, trips = self.env.now, self.mobility.trips
        t_enter, t_exit = trips.t_enter_s[ids], trips.t_exit_s[ids]
        pos, vel, rsu = self._links(ids)
        wait = np.where(rsu >= 0, 0.0, self.radio.time_to_coverage_s(pos, vel))
        for i in np.flatnonzero(now < t_enter):  # not on the road yet: from where and when it enters
            p, v = self.mobility.positions_of(ids[i:i + 1], t_enter[i])
            wait[i] = t_enter[i] - now + float(self.radio.time_to_coverage_s(p, v)[0])
        return np.where((now < t_exit) & (now + wait < t_exit), wait, math.inf)

    def dwell_times_s(self, vehicles: ArrayLike) -> np.ndarray:
        """(k,) `dwell_time_s` of each vehicle."""
        ids = _ids(vehicles)
        pos, vel, rsu = self._links(ids)
        left = self.mobility.trips.t_exit_s[ids] - self.env.now
        return np.where(rsu >= 0, np.minimum(self.radio.time_to_exit_s(pos, vel, rsu), left), 0.0)

    def link_rates_bps(self, vehicles: ArrayLike, direction: str) -> np.ndarray:
        """(k,) `link_rate_bps` of each vehicle."""
        _check_request(0, direction)
        ids = _ids(vehicles)
        pos, _, rsu = self._links(ids)
        up = direction == "up"
        return self.radio.rate_bps(ids, pos, rsu, self.mobility.travelled_m(ids, self.env.now), uplink=up,
                                   bandwidth_hz=self.uplink_hz if up else self.downlink_hz)

    # ------------------------------------------------------------------------------------ the process
    def _poke(self) -> None:
        """Re-plan now: start the process if none runs, else wake it."""
        if self._process is None:
            if self._pending or self._f["fid"].size:
                self._process = self.env.process(self._run())
        elif self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _run(self):  # the one SimPy process; runs only while flows are active
        env = self.env
        self._t_eval = env.now
        while self._flows()["fid"].size:
            t_next = self._evaluate(env.now)
            self._wake = env.event()
            timer = self._timer_for(t_next)
            yield self._wake if timer is None else env.any_of([timer, self._wake])
            fire_at = env.now
            if timer is not None and timer.processed:
                fire_at = max(fire_at, self._timer_at)
            self._advance(env.now)
            if fire_at >= self._due:
                self._fire(fire_at)
        self._process = self._wake = None

    def _timer_for(self, t_next: float) -> simpy.Event | None:
        """A timeout at ``t_next``; an earlier pending one is reused (an early wake-up only re-plans)."""
        if not math.isfinite(t_next):
            return None
        if self._timer is not None and not self._timer.processed and self._timer_at <= t_next:
            return self._timer
        self._timer = self.env.timeout(max(t_next - self.env.now, 0.0))
        self._timer_at = t_next
        return self._timer

    def _advance(self, now: float) -> None:
        f = self._flows()
        f["done"] = np.minimum(f["done"] + f["share"] * (now - self._t_eval) / 8.0, f["nbytes"])
        self._t_eval = now

    def _evaluate(self, t: float) -> float:
        """Rates and due times of every flow at ``t``; returns when the process must next wake."""
        f, radio, mob = self._flows(), self.radio, self.mobility
        v, rsu, up = f["vehicle"], f["rsu"], f["up"]
        pos, vel = mob.positions_of(v, t)
        rate = radio.rate_bps(v, pos, rsu, mob.travelled_m(v, t), uplink=up, bandwidth_hz=f["bandwidth_hz"])
        live = rate > 0.0
        group = rsu * 2 + up  # one resource per RSU and direction, time-shared by its live flows
        sharers = np.bincount(group, weights=live)[group]
        share = np.where(live, rate / np.maximum(sharers, 1.0), 0.0)
        f["share"] = share
        since = np.where(live, math.nan, np.where(np.isnan(f["outage_since"]), t, f["outage_since"]))
        f["outage_since"] = since
        f["t_outage"] = np.where(live, math.inf, since + self.config.outage_timeout_s)
        f["t_complete"] = np.where(live, t + (f["nbytes"] - f["done"]) * 8.0 / np.where(live, share, 1.0),
                                   math.inf)
        # the exit time is exact and stays valid while the velocity and the RSU do not change
        vx, vy = vel[:, 0], vel[:, 1]
        stale = np.isnan(f["t_exit"]) | (vx != f["vx"]) | (vy != f["vy"])
        if stale.any():
            f["t_exit"][stale] = t + radio.time_to_exit_s(pos[stale], vel[stale], rsu[stale])
            f["vx"][stale], f["vy"][stale] = vx[stale], vy[stale]
        self._due = float(min(f["t_complete"].min(), f["t_trip"].min(), f["t_exit"].min(), f["t_outage"].min()))
        moving = bool(vx.any() or vy.any())
        return min(self._due, t + self.config.update_period_s) if moving else self._due

    def _fire(self, t: float) -> None:
        """End or hand over every flow whose event is due at ``t``, in (vehicle, flow id) order."""
        f = self._f
        complete = f["t_complete"] <= t
        trip = ~complete & (f["t_trip"] <= t)
        exits = ~complete & ~trip & (f["t_exit"] <= t)  # (nan: not computed yet, never due)
        outage = ~complete & ~trip & ~exits & (f["t_outage"] <= t)
        causes = np.full(complete.shape, "", dtype=object)
        causes[trip], causes[outage], causes[exits] = "trip_ended", "link_outage", "left_coverage"
        if exits.any() and self.config.handover == "continue":
            now = self.env.now
            idx = np.flatnonzero(exits)
            idx = idx[np.lexsort((f["fid"][idx], f["vehicle"][idx]))]
            pos, vel = self.mobility.positions_of(f["vehicle"][idx], now)
            target = self.radio.handover_target(pos, vel, f["rsu"][idx])
            for i, new in zip(idx[target >= 0], target[target >= 0]):
                f["rsu"][i], f["outage_since"][i], f["t_exit"][i] = new, math.nan, math.nan  # nan: recompute
                f["handovers"][i] += 1
                causes[i] = ""
                if self.on_event is not None:
                    self.on_event("handover", time_s=now, vehicle=int(f["vehicle"][i]), rsu=int(new),
                                  nbytes=int(f["nbytes"][i]))
        f["done"][complete] = f["nbytes"][complete]
        causes[complete] = None
        ending = np.flatnonzero(complete | (causes != ""))
        if ending.size:
            self._finish(ending, causes[ending])

    def _finish(self, rows: np.ndarray, causes: np.ndarray) -> None:
        """Trigger the result events of flow ``rows`` (ok where the cause is None) in (vehicle, flow id)
        order, and drop them."""
        f, now = self._f, self.env.now
        order = np.lexsort((f["fid"][rows], f["vehicle"][rows]))
        for i, cause in zip(rows[order].tolist(), causes[order].tolist()):
            event = self._events.pop(int(f["fid"][i]))
            event.succeed(self._result(cause is None, cause, int(f["vehicle"][i]), "up" if f["up"][i] else "down",
                                       int(f["nbytes"][i]), float(f["done"][i]), float(f["start"][i]),
                                       int(f["rsu"][i]), int(f["handovers"][i]), end_s=now))
        keep = np.ones(f["fid"].shape, dtype=bool)
        keep[rows] = False
        self._f = {name: col[keep] for name, col in f.items()}

    def _result(self, ok: bool, cause: str | None, vehicle: int, direction: str, nbytes: int, done: float,
                start: float, rsu: int, handovers: int, *, end_s: float | None = None) -> TransferResult:
        return TransferResult(ok=ok, cause=cause, vehicle=vehicle, direction=direction, nbytes=nbytes,
                              bytes_done=done, start_s=start, end_s=self.env.now if end_s is None else end_s,
                              rsu=rsu, handovers=handovers)


class IdealNetwork:
    """`Network` where every vehicle is always covered by RSU 0 at a constant ``rate_bps`` [bit/s].

    A transfer of S bytes takes ``latency_s + 8 S / rate_bps`` seconds whatever else is in flight (no
    sharing) and never fails unless cancelled. For tests, upper-bound baselines and overhead benchmarks. A
    cancelled transfer's timer still fires, as a no-op, at its would-be end.
    """

    def __init__(self, env: simpy.Environment, *, rate_bps: float = 1e9, latency_s: float = 0.0,
                 on_event: OnEvent | None = None) -> None:
        if rate_bps <= 0 or latency_s < 0:
            raise ValueError("rate_bps must be > 0 and latency_s >= 0")
        self.env = env
        self.rate_bps = float(rate_bps)
        self.latency_s = float(latency_s)
        self.on_event = on_event  # never called: there are no handovers
        self._in_flight: dict[int, list[tuple[simpy.Event, str, int, float]]] = {}

    def transfer(self, vehicle: int, nbytes: int, direction: str) -> simpy.Event:
        nbytes = _check_request(nbytes, direction)
        vehicle, event = int(vehicle), self.env.event()
        flight = (event, direction, nbytes, self.env.now)
        self._in_flight.setdefault(vehicle, []).append(flight)
        timer = self.env.timeout(self.latency_s + 8.0 * nbytes / self.rate_bps)
        timer.callbacks.append(partial(self._complete, vehicle, flight))
        return event

    def _complete(self, vehicle: int, flight: tuple[simpy.Event, str, int, float], _: simpy.Event) -> None:
        event, direction, nbytes, start = flight
        if event.triggered:  # cancelled earlier
            return
        self._in_flight[vehicle].remove(flight)
        event.succeed(TransferResult(ok=True, cause=None, vehicle=vehicle, direction=direction, nbytes=nbytes,
                                     bytes_done=float(nbytes), start_s=start, end_s=self.env.now, rsu=0,
                                     handovers=0))

    def cancel(self, vehicle: int, cause: str) -> None:
        _check_cause(cause)
        now = self.env.now
        for event, direction, nbytes, start in self._in_flight.pop(int(vehicle), []):
            done = min(max(now - start - self.latency_s, 0.0) * self.rate_bps / 8.0, float(nbytes))
            event.succeed(TransferResult(ok=False, cause=cause, vehicle=int(vehicle), direction=direction,
                                         nbytes=nbytes, bytes_done=done, start_s=start, end_s=now, rsu=0,
                                         handovers=0))

    def serving_rsu(self, vehicle: int) -> int:
        return 0

    def time_to_coverage_s(self, vehicle: int) -> float:
        return 0.0

    def dwell_time_s(self, vehicle: int) -> float:
        return math.inf

    def link_rate_bps(self, vehicle: int, direction: str) -> float:
        _check_request(0, direction)
        return self.rate_bps

    def serving_rsus(self, vehicles: ArrayLike) -> np.ndarray:
        return np.zeros(_ids(vehicles).shape, dtype=np.int64)

    def times_to_coverage_s(self, vehicles: ArrayLike) -> np.ndarray:
        return np.zeros(_ids(vehicles).shape)

    def dwell_times_s(self, vehicles: ArrayLike) -> np.ndarray:
        return np.full(_ids(vehicles).shape, math.inf)

    def link_rates_bps(self, vehicles: ArrayLike, direction: str) -> np.ndarray:
        _check_request(0, direction)
        return np.full(_ids(vehicles).shape, self.rate_bps)
