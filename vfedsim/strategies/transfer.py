"""Transfers as fluid flows through shared RSU links (DESIGN.md, principle 4).

A strategy reaches the radio network only through the `Network` interface (STYLE.md, 5). `FluidNetwork`
implements it over the world's mobility and radio models; `IdealNetwork` is the always-connected,
constant-rate stand-in for tests, baselines and overhead benchmarks.

How `FluidNetwork` moves bytes. Each RSU has one uplink and one downlink resource. The flows of one RSU and
direction that currently have a usable link (rate > 0, not interrupted by a handover) time-share it
equally, so each gets its own full-band link rate divided by their number: two equal transfers on one RSU
take exactly twice as long as one. A flow's link rate is piecewise constant: it is evaluated when the flow
starts, hands over or resumes after a handover interruption, and on a fixed grid of ticks every
``config.update_period_s`` (t = k x period) while any vehicle with a flow moves or the channel varies in
time (LOS state, fading). A flow's rate therefore never depends on when *other* flows start or end; only
its share does. Between events nothing is computed: one SimPy timeout waits for the earliest of a flow
completing at the current shares, the next tick, a vehicle's exact exit from its RSU's coverage disc, a
trip end, an outage timing out and a handover interruption ending. Completion and failure times are exact
(not quantised to ticks) wherever rates are constant. When no flow is active nothing is scheduled: idle
stretches cost nothing. (SimPy cannot unschedule a timeout, so a wake-up planned before a transfer was
cancelled, or before an earlier one was needed, still passes once, as a no-op.)

Sharing is computed per resource in airtime units (processor sharing): a resource's virtual time V grows
at 1/n per second with n live flows, and a flow that still needs A seconds of the full band completes when
V has grown by A. A start or an end therefore touches only its own resource.

Handover. A flow moves to another RSU when its vehicle leaves the serving RSU's coverage disc and another
disc holds it (``handover_trigger: coverage-exit``, the default), and with ``handover_trigger: a3`` also at a
tick where a covering RSU's received power (`vfedsim.world.radio.Radio.rsrp_dbm`: path loss and shadowing,
no fading) has exceeded the serving one's by more than ``handover_hysteresis_db`` for at least
``time_to_trigger_s`` (event A3 of 3GPP TS 36.331 §5.5.4.4; the condition is checked at ticks, so the
time-to-trigger is rounded up to them). All flows of a vehicle hand over together. After a handover a flow
carries nothing for ``handover_interruption_s``; ``handover: continue`` keeps its bytes, ``restart`` starts
it again from zero at the new RSU (``bytes_done`` then counts the last attempt only), ``drop`` ends it.
Idle vehicles (no flow) are associated with the nearest covering RSU (the strongest by median power) that
keeps them for a positive time (`vfedsim.world.radio.Radio.attach`), so that a vehicle on a disc's edge
driving out is not "covered" by it: asking for coverage and retrying at once cannot loop in zero time.

A flow ends in one of these ways: success; or ``ok=False`` with a cause from `FAIL_CAUSES`:

* ``no_coverage``: requested while the vehicle had no serving RSU (or had not entered the road yet);
* ``trip_ended``: the vehicle's trip ended (also when requested after it ended);
* ``left_coverage``: it left its RSU's disc and no other RSU covered it (with ``handover: drop``, leaving
  the disc always ends the flow);
* ``handover_failed``: an A3 handover with ``handover: drop``;
* ``link_outage``: the instantaneous SNR stayed below the profile's usable SNR for ``outage_timeout_s``
  (outage is detected at rate evaluations, so its start is quantised to them);
* ``deadline`` / ``cancelled`` (or any other label in `FAIL_CAUSES`): the strategy called `Network.cancel`.

Simultaneous endings are resolved in the order completion, trip end, coverage exit, outage; results of one
instant are delivered in (vehicle, flow id) order.
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

FAIL_CAUSES = ("left_coverage", "trip_ended", "deadline", "link_outage", "no_coverage", "cancelled",
               "handover_failed")
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


_COLUMNS = {  # the flow table: one array per column, one row per active flow (rows in no particular order)
    "fid": (np.int64, 0), "vehicle": (np.int64, 0), "rsu": (np.int64, 0), "up": (np.bool_, False),
    "grp": (np.int64, 0),  # the resource: rsu * 2 + up
    "bandwidth_hz": (np.float64, 0.0), "nbytes": (np.float64, 0.0), "start": (np.float64, 0.0),
    "handovers": (np.int64, 0),
    "done": (np.float64, 0.0),  # [B] carried; for a live flow: when it (re)joined its resource
    "rate": (np.float64, 0.0),  # [bit/s] full-band link rate since its last evaluation (0: outage, paused)
    "fin": (np.float64, math.inf),  # live flow: its resource's virtual time at completion; inf otherwise
    "outage_since": (np.float64, math.nan),  # [s] when the current outage began (nan: none)
    "vx": (np.float64, 0.0), "vy": (np.float64, 0.0),  # [m/s] the velocity its t_exit was computed for
    "t_trip": (np.float64, math.inf), "t_exit": (np.float64, math.inf), "t_outage": (np.float64, math.inf),
    "t_resume": (np.float64, math.inf),  # [s] end of a handover interruption (inf: not interrupted)
}
_DUE = ("t_trip", "t_exit", "t_outage", "t_resume")
_SLACK = 1e-12  # relative slack when deciding that a flow has completed at a wake-up


class FluidNetwork:
    """`Network` over a mobility model and a `vfedsim.world.radio.Radio` (see the module docstring).

    ``mobility`` provides ``trips``, ``positions_of``, ``active_of`` and ``travelled_m``
    (`vfedsim.world.mobility.MobilityModel`); shadowing is looked up at the distance travelled.
    ``config`` is a `vfedsim.scenario.NetworkConfig`. ``uplink_hz``/``downlink_hz`` [Hz] set each RSU
    resource's bandwidth for rates and outage (default: the radio profile's); coverage discs stay the
    radio's. ``on_event`` is told of every handover (one call per flow moved).
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
        self._period = float(config.update_period_s)
        self._time_varying = bool(getattr(radio, "time_varying", False))
        self._a3 = config.handover_trigger == "a3"
        self._n = 0
        self._c = self._allocate(16)
        self._events: dict[int, simpy.Event] = {}  # flow id -> the event its result goes to
        self._next_fid = 0
        groups = 2 * max(int(radio.n_rsus), 1)
        self._g_n = np.zeros(groups, dtype=np.int64)  # live flows per resource
        self._g_v = np.zeros(groups)  # [s] virtual (per-flow airtime) time at _g_t
        self._g_t = np.zeros(groups)  # [s] when _g_v was last brought up to date
        self._g_next = np.full(groups, math.inf)  # [s] the resource's next completion
        self._vehicles: dict[int, list] = {}  # vehicle in flight -> [rsu, flows, interrupted until]
        self._a3_state: dict[int, tuple[int, float]] = {}  # vehicle -> (A3 target, since when it holds)
        self._tick_at = math.inf
        self._timer_at = math.inf
        self._timer_token = 0
        self._due = {name: math.inf for name in _DUE}  # per-column minima of the due times, from the last plan
        self._memo_t, self._memo = math.nan, {}  # `_where` answers at time _memo_t

    @property
    def active_transfers(self) -> int:
        return self._n

    # ------------------------------------------------------------------------------- Network interface
    def transfer(self, vehicle: int, nbytes: int, direction: str) -> simpy.Event:
        nbytes = _check_request(nbytes, direction)
        vehicle, now = int(vehicle), self.env.now
        event = self.env.event()
        trips = self.mobility.trips
        t_trip = float(trips.t_exit_s[vehicle])
        if now >= t_trip:
            return event.succeed(self._result(False, "trip_ended", vehicle, direction, nbytes, 0.0, now, -1, 0))
        ids = np.array([vehicle])
        state = self._vehicles.get(vehicle)
        if state is None and now < trips.t_enter_s[vehicle]:
            rsu = -1
        else:
            pos, vel, idle_rsu = self._where(vehicle, now)
            rsu = state[0] if state is not None else idle_rsu
        if rsu < 0:
            return event.succeed(self._result(False, "no_coverage", vehicle, direction, nbytes, 0.0, now, -1, 0))
        if nbytes == 0:
            return event.succeed(self._result(True, None, vehicle, direction, 0, 0.0, now, rsu, 0))
        up = direction == "up"
        bandwidth = self.uplink_hz if up else self.downlink_hz
        fid = self._next_fid
        self._next_fid += 1
        self._events[fid] = event
        if state is None:
            state = self._vehicles[vehicle] = [rsu, 0, math.inf]
        state[1] += 1
        row = self._append(fid=fid, vehicle=vehicle, rsu=rsu, up=up, grp=2 * rsu + up, nbytes=nbytes,
                           bandwidth_hz=bandwidth, start=now, t_trip=t_trip)
        c = self._c
        if state[2] < math.inf:  # the vehicle is in a handover interruption: so is its new flow
            c["t_resume"][row] = state[2]
        else:
            extra = {"time_s": now} if self._time_varying else {}
            rate = self.radio.rate_bps(ids, pos, np.array([rsu]), self.mobility.travelled_m(ids, now), uplink=up,
                                       bandwidth_hz=bandwidth, **extra)
            self._set_rate(row, float(rate[0]), now)
            self._group_next(2 * rsu + up)
        c["t_exit"][row] = now + float(self.radio.time_to_exit_s(pos, vel, np.array([rsu]))[0])
        c["vx"][row], c["vy"][row] = vel[0, 0], vel[0, 1]
        if self._tick_at == math.inf and (self._time_varying or vel.any()):
            self._tick_at = self._next_tick(now)
        self._reschedule()
        return event

    def cancel(self, vehicle: int, cause: str) -> None:
        _check_cause(cause)
        rows = np.flatnonzero(self._c["vehicle"][:self._n] == int(vehicle))
        if rows.size:
            self._finish(rows, np.full(rows.shape, cause, dtype=object), self.env.now)
            self._reschedule()

    def serving_rsu(self, vehicle: int) -> int:
        return int(self.serving_rsus([vehicle])[0])

    def time_to_coverage_s(self, vehicle: int) -> float:
        vehicle, now, trips = int(vehicle), self.env.now, self.mobility.trips
        if now >= trips.t_exit_s[vehicle]:
            return math.inf
        if vehicle in self._vehicles:
            return 0.0
        if now < trips.t_enter_s[vehicle]:
            return float(self.times_to_coverage_s([vehicle])[0])
        pos, vel, rsu = self._where(vehicle, now)
        if rsu >= 0:
            return 0.0
        wait = float(self.radio.time_to_coverage_s(pos, vel)[0])
        return wait if now + wait < trips.t_exit_s[vehicle] else math.inf

    def dwell_time_s(self, vehicle: int) -> float:
        return float(self.dwell_times_s([vehicle])[0])

    def link_rate_bps(self, vehicle: int, direction: str) -> float:
        return float(self.link_rates_bps([vehicle], direction)[0])

    # ----------------------------------------------------------------------------- batched queries
    def _where(self, vehicle: int, t: float) -> tuple[np.ndarray, np.ndarray, int]:
        """Position (1, 2), velocity (1, 2) and the RSU it would attach to (`Radio.attach`) of one vehicle on
        the road at ``t``, remembered for the current instant (a strategy asks, then starts a transfer)."""
        if self._memo_t != t:
            self._memo_t, self._memo = t, {}
        hit = self._memo.get(vehicle)
        if hit is None:
            pos, vel = self.mobility.positions_of(np.array([vehicle]), t)
            hit = self._memo[vehicle] = (pos, vel, int(self.radio.attach(pos, vel)[0]))
        return hit

    def _links(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions, velocities and serving RSUs (-1: none) of ``ids`` now."""
        now, mob = self.env.now, self.mobility
        pos, vel = mob.positions_of(ids, now)
        rsu = np.where(mob.active_of(ids, now), self.radio.attach(pos, vel), -1)
        if self._vehicles:  # a vehicle in flight is served by its flows' RSU
            get = self._vehicles.get
            for k, v in enumerate(ids.tolist()):
                state = get(v)
                if state is not None:
                    rsu[k] = state[0]
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
        wait = np.zeros(ids.shape)
        out = rsu < 0
        if out.any():
            wait[out] = self.radio.time_to_coverage_s(pos[out], vel[out])
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
        extra = {"time_s": self.env.now} if self._time_varying else {}
        return self.radio.rate_bps(ids, pos, rsu, self.mobility.travelled_m(ids, self.env.now), uplink=up,
                                   bandwidth_hz=self.uplink_hz if up else self.downlink_hz, **extra)

    # ----------------------------------------------------------------------------------- flow table
    def _allocate(self, capacity: int) -> dict[str, np.ndarray]:
        """Empty columns for ``capacity`` flows; the due-time columns are rows of one (4, capacity) array
        (``_due_times``), so that planning takes all their minima in one call."""
        self._due_times = np.full((len(_DUE), capacity), math.inf)
        cols = {name: np.full(capacity, default, dtype=dt) for name, (dt, default) in _COLUMNS.items()
                if name not in _DUE}
        cols.update({name: self._due_times[k] for k, name in enumerate(_DUE)})
        return cols

    def _append(self, **values: Any) -> int:
        n = self._n
        if n == self._c["fid"].shape[0]:
            old = self._c
            self._c = self._allocate(2 * n)
            for name, col in old.items():
                self._c[name][:n] = col[:n]
        for name, col in self._c.items():
            col[n] = values.get(name, _COLUMNS[name][1])
        self._n = n + 1
        return n

    def _remove(self, rows: np.ndarray) -> None:
        """Drop flow ``rows`` (the last rows move into the freed ones)."""
        n = self._n
        keep = np.ones(n, dtype=bool)
        keep[rows] = False
        if rows.size <= 2:
            for r in sorted(rows.tolist(), reverse=True):
                n -= 1
                if r != n:
                    for col in self._c.values():
                        col[r] = col[n]
        else:
            k = int(keep.sum())
            for col in self._c.values():
                col[:k] = col[:n][keep]
            n = k
        self._n = n

    # ------------------------------------------------------------------------------ shared resources
    def _advance(self, g: int, t: float) -> None:
        n = self._g_n[g]
        if n:
            self._g_v[g] += (t - self._g_t[g]) / n
        self._g_t[g] = t

    def _group_next(self, g: int) -> None:
        n = int(self._g_n[g])
        if n == 0:
            self._g_next[g] = math.inf
            return
        c, k = self._c, self._n
        first = float(c["fin"][:k][c["grp"][:k] == g].min())
        self._g_next[g] = self._g_t[g] + (first - self._g_v[g]) * n

    def _leave(self, i: int, t: float) -> None:
        """Take live flow row ``i`` off its resource at ``t``, keeping the bytes it carried."""
        c = self._c
        g = int(c["grp"][i])
        self._advance(g, t)
        remaining = (c["fin"][i] - self._g_v[g]) * c["rate"][i] / 8.0
        c["done"][i] = min(max(c["nbytes"][i] - remaining, c["done"][i]), c["nbytes"][i])
        c["fin"][i] = math.inf
        self._g_n[g] -= 1

    def _set_rate(self, i: int, rate: float, t: float) -> None:
        """Give flow row ``i`` a new link rate at ``t`` (leaving and re-joining its resource)."""
        c = self._c
        if c["fin"][i] < math.inf:
            self._leave(i, t)
        c["rate"][i] = rate
        if rate > 0.0:
            g = int(c["grp"][i])
            self._advance(g, t)
            c["fin"][i] = self._g_v[g] + 8.0 * (c["nbytes"][i] - c["done"][i]) / rate
            self._g_n[g] += 1
            c["outage_since"][i], c["t_outage"][i] = math.nan, math.inf
        else:
            if math.isnan(c["outage_since"][i]):
                c["outage_since"][i] = t
            c["t_outage"][i] = c["outage_since"][i] + self.config.outage_timeout_s

    def _bytes_now(self, t: float) -> np.ndarray:
        """(n,) bytes carried by every flow at ``t``."""
        c, n = self._c, self._n
        fin, grp = c["fin"][:n], c["grp"][:n]
        live = fin < math.inf
        v_now = self._g_v + (t - self._g_t) / np.maximum(self._g_n, 1)
        carried = c["nbytes"][:n] - (np.where(live, fin, 0.0) - v_now[grp]) * c["rate"][:n] / 8.0
        return np.where(live, np.clip(carried, c["done"][:n], c["nbytes"][:n]), c["done"][:n])

    # ------------------------------------------------------------------------------------- link rates
    def _rates(self, rows: np.ndarray | slice, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Full-band link rates [bit/s] of flow ``rows`` at ``t``, and their vehicles' velocities."""
        c, mob = self._c, self.mobility
        v = c["vehicle"][rows]
        pos, vel = mob.positions_of(v, t)
        extra = {"time_s": t} if self._time_varying else {}
        rate = self.radio.rate_bps(v, pos, c["rsu"][rows], mob.travelled_m(v, t), uplink=c["up"][rows],
                                   bandwidth_hz=c["bandwidth_hz"][rows], **extra)
        return rate, vel

    def _link_update(self, rows: np.ndarray, t: float) -> None:
        """Evaluate flow ``rows``' rates at ``t`` and update their resources."""
        rate, _ = self._rates(rows, t)
        groups = set()
        for i, r in zip(rows.tolist(), rate.tolist()):
            self._set_rate(i, r, t)
            groups.add(int(self._c["grp"][i]))
        for g in groups:
            self._group_next(g)

    def _exit_times(self, rows: np.ndarray, t: float) -> bool:
        """Exact coverage-exit times of flow ``rows`` from ``t``; whether any of their vehicles moves."""
        c = self._c
        pos, vel = self.mobility.positions_of(c["vehicle"][rows], t)
        c["t_exit"][rows] = t + self.radio.time_to_exit_s(pos, vel, c["rsu"][rows])
        c["vx"][rows], c["vy"][rows] = vel[:, 0], vel[:, 1]
        return bool(vel.any())

    def _next_tick(self, t: float) -> float:
        at = (math.floor(t / self._period) + 1) * self._period
        return at if at > t else at + self._period

    # ------------------------------------------------------------------------------------ scheduling
    def _reschedule(self) -> None:
        """Plan one wake-up at the earliest due time (a later pending one is superseded)."""
        n = self._n
        if n == 0:
            self._tick_at = math.inf
            return
        minima = self._due_times[:, :n].min(axis=1).tolist()
        self._due = dict(zip(_DUE, minima))
        due = min(float(self._g_next.min()), self._tick_at, *minima)
        if due < self._timer_at:
            self._timer_token += 1
            self._timer_at = due
            timer = self.env.timeout(max(due - self.env.now, 0.0))
            timer.callbacks.append(partial(self._wake, self._timer_token))

    def _wake(self, token: int, _: simpy.Event) -> None:
        if token != self._timer_token:
            return  # superseded by an earlier wake-up
        t = max(self.env.now, self._timer_at)
        self._timer_at = math.inf
        self._fire(t)
        if self._n and t >= self._tick_at:
            self._tick(t)
        self._reschedule()

    # ----------------------------------------------------------------------------------------- events
    def _fire(self, t: float) -> None:
        """End, hand over or resume every flow whose event is due at ``t``."""
        n, c = self._n, self._c
        if n == 0:
            return
        taken = np.zeros(n, dtype=bool)  # rows already claimed by an earlier kind of ending
        done_rows = []
        for g in np.flatnonzero(self._g_next <= t).tolist():
            members = np.flatnonzero(c["grp"][:n] == g)
            fin = c["fin"][members]
            v_now = self._g_v[g] + (t - self._g_t[g]) / max(int(self._g_n[g]), 1)
            hit = members[fin <= v_now * (1.0 + _SLACK) + _SLACK]
            # the first flow of a due resource completes whatever the rounding
            done_rows.append(hit if hit.size else members[np.argmin(fin)][None])
        complete = np.concatenate(done_rows) if done_rows else np.zeros(0, dtype=np.int64)
        taken[complete] = True
        ending = [complete]
        causes: list = [None] * complete.size
        due = self._due  # per-column minima from the last plan: skip the columns with nothing due
        found = {}
        for name in ("t_trip", "t_exit", "t_outage", "t_resume"):
            if due[name] <= t:
                rows = np.flatnonzero(~taken & (c[name][:n] <= t))
                taken[rows] = True
                found[name] = rows
        for name, cause in (("t_trip", "trip_ended"), ("t_outage", "link_outage")):
            if found.get(name) is not None and found[name].size:
                ending.append(found[name])
                causes += [cause] * found[name].size
        exits = found.get("t_exit")
        if exits is not None and exits.size:
            left = exits
            if self.config.handover != "drop":
                vehicles = np.unique(c["vehicle"][exits])
                pos, vel = self.mobility.positions_of(vehicles, t)
                state_rsu = np.array([self._vehicles[v][0] for v in vehicles.tolist()])
                target = self.radio.handover_target(pos, vel, state_rsu)
                for v, new in zip(vehicles.tolist(), target.tolist()):
                    if new >= 0:
                        self._handover(v, new, t, rows=exits[c["vehicle"][exits] == v])
                left = exits[np.isin(c["vehicle"][exits], vehicles[target < 0])]
            ending.append(left)
            causes += ["left_coverage"] * left.size
        resume = found.get("t_resume")
        if resume is not None and resume.size:
            c["t_resume"][resume] = math.inf
            for v in np.unique(c["vehicle"][resume]).tolist():
                self._vehicles[v][2] = math.inf
            self._link_update(resume, t)
        rows = np.concatenate(ending)
        if rows.size:
            self._finish(rows, np.array(causes, dtype=object), t)

    def _handover(self, vehicle: int, new_rsu: int, t: float, rows: np.ndarray | None = None) -> None:
        """Move the flows of ``vehicle`` (all, or ``rows``) to ``new_rsu`` at ``t`` (continue and restart)."""
        c, n = self._c, self._n
        if rows is None:
            rows = np.flatnonzero(c["vehicle"][:n] == vehicle)
        rows = rows[np.argsort(c["fid"][rows])]
        groups = set()
        for i in rows.tolist():
            if c["fin"][i] < math.inf:
                groups.add(int(c["grp"][i]))
                self._leave(i, t)
            if self.config.handover == "restart":
                c["done"][i] = 0.0
            c["rsu"][i], c["grp"][i] = new_rsu, 2 * new_rsu + int(c["up"][i])
            c["handovers"][i] += 1
            c["rate"][i], c["outage_since"][i], c["t_outage"][i] = 0.0, math.nan, math.inf
            if self.on_event is not None:
                self.on_event("handover", time_s=t, vehicle=vehicle, rsu=new_rsu, nbytes=int(c["nbytes"][i]))
        for g in groups:
            self._group_next(g)
        state = self._vehicles[vehicle]
        state[0] = new_rsu
        pause = self.config.handover_interruption_s
        if pause > 0.0:
            state[2] = t + pause
            c["t_resume"][rows] = t + pause
        else:
            self._link_update(rows, t)
        self._exit_times(rows, t)

    def _finish(self, rows: np.ndarray, causes: np.ndarray, t: float) -> None:
        """Trigger the result events of flow ``rows`` (ok where the cause is None) in (vehicle, flow id)
        order, and drop them."""
        c = self._c
        if rows.size > 1:
            order = np.lexsort((c["fid"][rows], c["vehicle"][rows]))
            rows, causes = rows[order], causes[order]
        groups = set()
        for i, cause in zip(rows.tolist(), causes.tolist()):
            if c["fin"][i] < math.inf:
                groups.add(int(c["grp"][i]))
                self._leave(i, t)
            if cause is None:
                c["done"][i] = c["nbytes"][i]
            vehicle = int(c["vehicle"][i])
            event = self._events.pop(int(c["fid"][i]))
            event.succeed(self._result(cause is None, cause, vehicle, "up" if c["up"][i] else "down",
                                       int(c["nbytes"][i]), float(c["done"][i]), float(c["start"][i]),
                                       int(c["rsu"][i]), int(c["handovers"][i]), end_s=t))
            state = self._vehicles[vehicle]
            state[1] -= 1
            if state[1] == 0:
                del self._vehicles[vehicle]
                self._a3_state.pop(vehicle, None)
        self._remove(rows)
        for g in groups:
            self._group_next(g)

    # ---------------------------------------------------------------------------------------- ticks
    def _tick(self, t: float) -> None:
        """Re-evaluate every flow's link at tick ``t`` (A3 handovers first) and rebuild the resources."""
        if self._a3:
            self._a3_step(t)
        n, c = self._n, self._c
        if n == 0:
            self._tick_at = math.inf
            return
        done = self._bytes_now(t)
        c["done"][:n] = done
        paused = c["t_resume"][:n] < math.inf
        if paused.any():
            rate = np.zeros(n)
            rows = np.flatnonzero(~paused)
            rate[rows], vel_rows = self._rates(rows, t)
            vel = np.zeros((n, 2))
            vel[rows] = vel_rows
        else:
            rate, vel = self._rates(slice(0, n), t)
        c["rate"][:n] = rate
        live = rate > 0.0
        grp = c["grp"][:n]
        since = c["outage_since"][:n]
        quiet = live | paused
        since = np.where(quiet, math.nan, np.where(np.isnan(since), t, since))
        c["outage_since"][:n] = since
        c["t_outage"][:n] = np.where(quiet, math.inf, since + self.config.outage_timeout_s)
        fin = np.where(live, 8.0 * (c["nbytes"][:n] - done) / np.where(live, rate, 1.0), math.inf)
        c["fin"][:n] = fin
        self._g_n[:] = np.bincount(grp[live], minlength=self._g_n.size)
        self._g_v[:] = 0.0
        self._g_t[:] = t
        first = np.full(self._g_n.size, math.inf)
        np.minimum.at(first, grp[live], fin[live])
        busy = self._g_n > 0
        self._g_next[:] = np.where(busy, t + np.where(busy, first, 0.0) * self._g_n, math.inf)
        # the exit time is exact and stays valid while the velocity and the RSU do not change
        stale = ~paused & ((vel[:, 0] != c["vx"][:n]) | (vel[:, 1] != c["vy"][:n]))
        if stale.any():
            self._exit_times(np.flatnonzero(stale), t)
        moving = bool(vel.any())
        self._tick_at = self._next_tick(t) if (moving or self._time_varying) else math.inf

    def _a3_step(self, t: float) -> None:
        """A3 handovers due at tick ``t`` (see the module docstring)."""
        n, c = self._n, self._c
        rows = np.flatnonzero(c["t_resume"][:n] == math.inf)
        if rows.size == 0:
            self._a3_state = {}
            return
        vehicles, first = np.unique(c["vehicle"][rows], return_index=True)
        serving = c["rsu"][rows[first]]
        pos, _ = self.mobility.positions_of(vehicles, t)
        cover = self.radio.covering(pos)
        cover[np.arange(vehicles.size), serving] = False
        vi, cand = np.nonzero(cover)
        state: dict[int, tuple[int, float]] = {}
        moves: list[tuple[int, int]] = []
        if vi.size:
            extra = {"time_s": t} if self._time_varying else {}
            travelled = self.mobility.travelled_m(vehicles, t)
            rx_serving = self.radio.rsrp_dbm(vehicles, pos, serving, travelled, **extra)
            rx = self.radio.rsrp_dbm(vehicles[vi], pos[vi], cand, travelled[vi], **extra)
            order = np.lexsort((cand, -rx, vi))  # per vehicle: strongest candidate first (lowest id on a tie)
            vi, cand, rx = vi[order], cand[order], rx[order]
            head = np.ones(vi.size, dtype=bool)
            head[1:] = vi[1:] != vi[:-1]
            hyst, ttt = self.config.handover_hysteresis_db, self.config.time_to_trigger_s
            for k, target, power in zip(vi[head].tolist(), cand[head].tolist(), rx[head].tolist()):
                if not power > rx_serving[k] + hyst:
                    continue
                vehicle = int(vehicles[k])
                held = self._a3_state.get(vehicle)
                since = held[1] if held is not None and held[0] == target else t
                if t - since >= ttt - 1e-9:
                    moves.append((vehicle, target))
                else:
                    state[vehicle] = (target, since)
        self._a3_state = state
        for vehicle, target in moves:
            if self.config.handover == "drop":
                mine = np.flatnonzero(c["vehicle"][:self._n] == vehicle)
                self._finish(mine, np.full(mine.shape, "handover_failed", dtype=object), t)
            else:
                self._handover(vehicle, target, t)

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
