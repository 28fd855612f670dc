"""The fluid network's event loop: `FluidNetwork` (the model and this design: docs/network.md).

It implements `vfedsim.network.interface.Network` over the world's mobility and radio models. The flows
live in a `vfedsim.network.flows.FlowTable` and share their resources by the processor-sharing math of
`vfedsim.network.flows`; handover, broadcast, relaying, chunk losses and the backhaul are the functions of
their own modules; the queries are `vfedsim.network.queries`. This class only sequences them:

* SimPy sees one wake-up per network instant (a completion, a due time, a tick, a deferred start that
  must be evaluated) and one event per transfer, the one `transfer` returns.
* A transfer's first rate is deferred (`_flush`): starts at different instants share one vectorised
  evaluation, each at its own instant, with exactly the numbers of evaluating each at once.
* A tick evaluates every flow's rate (and the deferred starts') in one call and rebuilds the resources
  with `flows.rebuild`.
"""
from __future__ import annotations

import heapq
import math
from functools import partial
from typing import Any

import numpy as np
import simpy

from ..rng import stream
from . import queries
from .backhaul import start_pause_until
from .broadcast import BroadcastGroups
from .flows import DUE, FLOAT_COLUMNS, FlowTable, Resources, bytes_now, completing, rebuild
from .interface import DIRECTIONS, FAIL_CAUSES, OnEvent, TransferResult, check_cause, check_request
from .links import LinkRates, peak_rate_bps
from .moves import Moves

__all__ = ["FluidNetwork", "DIRECTIONS", "FAIL_CAUSES"]

_INF = math.inf
_NBYTES, _START, _DONE, _RESENT = (FLOAT_COLUMNS.index(c) for c in ("nbytes", "start", "done", "resent"))


class FluidNetwork(Moves, LinkRates, queries.Queries):
    """`Network` over a mobility model and a `vfedsim.world.radio.Radio` (docs/network.md).

    ``mobility`` provides ``trips``, ``positions_of``, ``active_of``, ``travelled_m`` and optionally
    ``next_change_s`` (`vfedsim.world.mobility.MobilityModel`; without it velocities are taken as constant
    between ticks); shadowing is looked up at the distance travelled. ``config`` is a
    `vfedsim.scenario.NetworkConfig`. ``uplink_hz``/``downlink_hz`` [Hz] set each RSU resource's bandwidth
    for rates and outage (default: the radio profile's); coverage discs stay the radio's. ``seed`` keys the
    chunk-loss streams (default: the radio's). ``on_event`` is told of every handover (one call per flow
    moved), relay path change and flow that resent bytes (`vfedsim.network.interface.OnEvent`).
    """

    def __init__(self, env: simpy.Environment, *, mobility: Any, radio: Any, config: Any,
                 uplink_hz: float | None = None, downlink_hz: float | None = None,
                 on_event: OnEvent | None = None, seed: int | None = None) -> None:
        super().__init__(env, mobility=mobility, radio=radio, config=config, uplink_hz=uplink_hz,
                         downlink_hz=downlink_hz)
        self.on_event = on_event
        self.seed = int(seed if seed is not None else getattr(radio, "seed", 0))
        self._period = float(config.update_period_s)
        self._a3 = config.handover_trigger == "a3"
        cap = getattr(config, "backhaul_capacity_bps", None)
        self._cap = _INF if cap is None else float(cap)  # [bit/s] per RSU and direction
        self._latency = float(getattr(config, "backhaul_latency_s", 0.0))
        chunk = getattr(config, "chunk_bytes", None)
        lossy = chunk is not None and getattr(getattr(radio, "profile", None), "rate_mapping", "shannon") != "shannon"
        self._chunk = float(chunk) if lossy else None  # [B], None: goodput only
        self._next_change = getattr(mobility, "next_change_s", None)
        self._turns: dict[int, tuple[float, float]] = {}  # vehicle -> (its next velocity change, asked at)
        self._broadcast = BroadcastGroups() if getattr(config, "downlink_mode", "unicast") == "broadcast" else None
        self._bc_live: dict[int, int] = {}  # broadcast group -> members live on their resource
        self.flows = FlowTable.empty()
        self.resources = Resources.empty(2 * max(int(radio.n_rsus), 1))
        self._events: dict[int, simpy.Event] = {}  # flow id -> the event its result goes to
        self._streams: dict[int, np.random.Generator] = {}  # flow id -> its chunk-loss stream
        self._sent: dict[int, int] = {}  # vehicle -> transfers started (numbers the chunk-loss streams)
        self._next_fid = 0
        self._a3_held: dict[int, tuple[int, float]] = {}  # vehicle -> (A3 target, since when it holds)
        self._pending: list[int] = []  # rows whose first rate is not evaluated yet, in order (see `_flush`)
        self._pending_groups: set[int] = set()  # their resources
        self._pending_bound = _INF  # [s] no pending flow can complete or time out before this
        # a tick can evaluate the pending first rates in its own call unless something it does first (A3,
        # relay paths) or the rates themselves (chunk losses need the bytes carried) depend on them
        self._mergeable = not self._a3 and self._chunk is None and self._v2v is None
        profile = getattr(radio, "profile", None)
        self._peak = {up: min(peak_rate_bps(profile, bw), self._cap) if profile is not None else _INF
                      for up, bw in ((True, self.uplink_hz), (False, self.downlink_hz))}  # [bit/s]
        self._tick_at = _INF
        self._due_at = _INF  # the next instant, as last planned
        self._timers: list[float] = []  # times of the wake-ups SimPy holds (a heap)
        self._due = [_INF] * len(DUE)  # per-column minima of the due times, from the last plan

    @property
    def active_transfers(self) -> int:
        return self.flows.n

    # ------------------------------------------------------------------------------- Network interface
    def transfer(self, vehicle: int, nbytes: int, direction: str) -> simpy.Event:
        nbytes = check_request(nbytes, direction)
        vehicle, now = int(vehicle), self.env.now
        event = self.env.event()
        t_trip = self._t_exit[vehicle]
        if now >= t_trip:
            return event.succeed(self._result(False, "trip_ended", vehicle, direction, nbytes, 0.0, now, -1, 0,
                                              now, hops=0))
        state = self._vehicles.get(vehicle)
        on_road = now >= self._t_enter[vehicle]
        rsu = -1
        if state is not None or on_road:
            pos, vel, idle_rsu = self._where(vehicle, now)
            rsu = state[0] if state is not None else idle_rsu
        path = None
        if rsu < 0 and self._v2v is not None and state is None and on_road:
            found = self._find_paths([vehicle], now).get(vehicle)
            if found is not None:
                path, rsu = found
        if rsu < 0:
            return event.succeed(self._result(False, "no_coverage", vehicle, direction, nbytes, 0.0, now, -1, 0,
                                              now, hops=0))
        if nbytes == 0:
            return event.succeed(self._result(True, None, vehicle, direction, 0, 0.0, now, rsu, 0, now))
        up = direction == "up"
        fid = self._next_fid
        self._next_fid += 1
        self._events[fid] = event
        if self._chunk is not None:
            k = self._sent.get(vehicle, 0)
            self._sent[vehicle] = k + 1
            self._streams[fid] = stream(self.seed, "chunk-loss", vehicle, k)
        if state is None:
            state = self._vehicles[vehicle] = [rsu, 0, _INF]
        state[1] += 1
        pause = start_pause_until(now, self._latency, state[2])
        bc, relay, hops = -1, -1, 1
        if path is not None:
            self._paths[vehicle] = path
            relay, hops = path[-1], len(path)
            self._tell_relay(vehicle, rsu, nbytes, hops, now)
        elif self._broadcast is not None and not up and state[2] == _INF:
            bc = self._broadcast.group(rsu, nbytes, now)
        vx, vy = float(vel[0, 0]), float(vel[0, 1])
        t_exit = _INF if path is not None else now + float(self.radio.time_to_exit_s(pos, vel, np.array([rsu]))[0])
        t_turn = _INF
        if self._next_change is not None:
            turn = self._turns.get(vehicle)
            if turn is None or not turn[1] <= now < turn[0]:  # the next change is the same until it comes
                turn = self._turns[vehicle] = (float(self._next_change(np.array([vehicle]), now)[0]), now)
            t_turn = turn[0] if turn[0] < t_trip else _INF
        g = 2 * rsu + up
        travelled = float(self.mobility.travelled_m(np.array([vehicle]), now)[0]) if pause == _INF else 0.0
        row = self.flows.append(
            (nbytes, now, 0.0, 0.0, 0.0, 0.0, _INF, math.nan, vx, vy, 0.0, self.uplink_hz if up else self.downlink_hz,
             float(pos[0, 0]), float(pos[0, 1]), travelled, t_trip, t_exit, _INF, pause, t_turn),
            (fid, vehicle, rsu, up, g, 0, bc, relay, hops))
        if self._tick_at == _INF and (self._time_varying or vx or vy or path is not None):
            self._tick_at = self._next_tick(now)
        due = self._due  # its due times (`DUE` order; no outage yet) lower the minima
        self._due = [min(due[0], t_trip), min(due[1], t_exit), due[2], min(due[3], pause), min(due[4], t_turn)]
        if pause == _INF:  # its first rate waits (`_flush`), at the latest until it could matter
            self._pending.append(row)
            self._pending_groups.add(g)
            if path is None and bc < 0:  # it completes no earlier than alone at the peak rate, beside the others
                wait = min(8.0 * nbytes * (int(self.resources.count[g]) + 1) / self._peak[up],
                           self.config.outage_timeout_s)
            else:  # relayed and broadcast starts are evaluated when this instant closes
                wait = 0.0
            self._pending_bound = min(self._pending_bound, now + wait)
        self._due_at = min(self._due_at, self._tick_at, self._pending_bound, *self._due)
        self._plan(self._due_at)
        return event

    def cancel(self, vehicle: int, cause: str) -> None:
        check_cause(cause)
        self._flush()
        rows = np.flatnonzero(self.flows.vehicle[:self.flows.n] == int(vehicle))
        if rows.size:
            self._finish(rows, [cause] * rows.size, self.env.now)
            self._reschedule()

    # ---------------------------------------------------------------------------------------- clock
    def _plan(self, due: float) -> None:
        """Make sure SimPy wakes the network at ``due`` or earlier (one timer per distinct instant)."""
        if due < _INF and (not self._timers or self._timers[0] > due):
            heapq.heappush(self._timers, due)
            timer = self.env.timeout(max(due - self.env.now, 0.0))
            timer.callbacks.append(partial(self._wake, due))

    def _reschedule(self, keep: bool = False) -> None:
        """Plan the next instant. ``keep``: no due time fell since the last plan (rows were only removed,
        so the last minima stay valid lower bounds: at worst a wake-up comes early and finds nothing)."""
        flows = self.flows
        if flows.n == 0:
            self._tick_at = _INF
            self._due_at = _INF
            return
        if not keep:
            self._due = flows.due_minima()
        self._due_at = min(float(self.resources.next_s.min()), self._tick_at, self._pending_bound, *self._due)
        self._plan(self._due_at)

    def _wake(self, planned: float, _: simpy.Event) -> None:
        timers = self._timers
        if timers[0] == planned:
            heapq.heappop(timers)
        else:
            timers.remove(planned)
            heapq.heapify(timers)
        t = max(self.env.now, planned)  # the planned instant exactly (now may differ by a rounding)
        if t < self._due_at:
            self._plan(self._due_at)  # early: what it was planned for moved later
            return
        self._due_at = _INF
        due_groups = np.flatnonzero(self.resources.next_s <= t)
        if self._pending and (t >= self._pending_bound or (t >= self._tick_at and not self._mergeable) or
                              not self._pending_groups.isdisjoint(due_groups.tolist())):
            self._flush()  # joins postpone completions on their resources
            due_groups = np.flatnonzero(self.resources.next_s <= t)
        only_completions = self._fire(t, due_groups)
        if self.flows.n and t >= self._tick_at:
            self._tick(t)
            only_completions = False
        self._reschedule(keep=only_completions)

    def _next_tick(self, t: float) -> float:
        at = (math.floor(t / self._period) + 1) * self._period
        return at if at > t else at + self._period

    # ------------------------------------------------------------------------------------- instants
    def _flush(self) -> None:
        """Evaluate the first rates of the pending transfers, each at its own start and place (in one call),
        and let them join their resources in the order they were asked for.

        Until then a pending flow takes no share, and nothing reads or changes its resource: what would
        flushes first (a completion on its resource, a trip end, outage or pause end of a flow there, any
        coverage exit, a tick, `cancel`), and so does the earliest instant it could complete or time out
        (``_pending_bound``: alone beside the flows live on its resource at the profile's peak rate). So the
        numbers are those of evaluating every start at once, while starts at different instants share one
        vectorised call. A tick that nothing else precedes (no A3, no relays, no chunk losses:
        ``_mergeable``) evaluates the pending starts in its own call instead."""
        if not self._pending:
            return
        rows = self._pending_rows()
        start = self.flows.start[rows]
        rate, _, loss = self._rates(rows, start, first=rows.size)
        self._check_peak(rows, rate)
        self._join(rows, start, rate, loss)

    def _pending_rows(self) -> np.ndarray:
        """The rows of the pending flows in the order they were asked for; they are no longer pending."""
        rows = np.array(self._pending, dtype=np.int64)
        self._pending, self._pending_groups, self._pending_bound = [], set(), _INF
        return rows

    def _check_peak(self, rows: np.ndarray, rate: np.ndarray) -> None:
        if (rate > np.where(self.flows.up[rows], self._peak[True], self._peak[False])).any():
            raise RuntimeError("a link rate exceeds the profile's rate at infinite SNR, which bounds when a "
                               "deferred start must be evaluated (vfedsim.network.fluid)")

    def _join(self, rows: np.ndarray, start: np.ndarray, rate: np.ndarray, loss: np.ndarray) -> None:
        """Let flow ``rows`` join their resources at their ``start`` with their first rates (`_flush`)."""
        flows = self.flows
        if self._broadcast is not None:  # a broadcast of one member is one flow
            bc = flows.bc[rows]
            groups, counts = np.unique(bc[bc >= 0], return_counts=True)
            shared = np.isin(bc, groups[counts > 1])
            if shared.any():
                rate[shared] = self._broadcast_rates(rows[shared], rate[shared])
        groups = set()
        grp = flows.grp
        for i, r, lo, t in zip(rows.tolist(), rate.tolist(), loss.tolist(), start.tolist()):
            self._set_rate(i, r, t, lo)
            groups.add(int(grp[i]))
        for g in groups:
            self.resources.plan(g)
        self._due = [min(a, b) for a, b in zip(self._due, flows.floats[-len(DUE):, rows].min(axis=1).tolist())]

    def _fire(self, t: float, due_groups: np.ndarray) -> bool:
        """End, hand over, resume or re-aim every flow whose event is due at ``t`` (``due_groups``: the
        resources with completions due); whether only completions were due."""
        flows = self.flows
        n = flows.n
        if n == 0:
            return False
        complete = completing(flows, self.resources, t, due_groups)
        due = [name for name, at in zip(DUE, self._due) if at <= t]
        if not due:  # the common case: completions only
            if complete.size:
                self._finish(complete, [None] * complete.size, t)
            return True
        taken = np.zeros(n, dtype=bool)  # rows already claimed by an earlier kind of ending
        taken[complete] = True
        ending, causes = [complete], [None] * complete.size
        found = {}
        for name in due:
            rows = np.flatnonzero(~taken & (getattr(flows, name)[:n] <= t))
            taken[rows] = True
            found[name] = rows
        if self._pending and (("t_exit" in found and found["t_exit"].size) or any(  # they touch a pending flow's resource
                not self._pending_groups.isdisjoint(flows.grp[found[k]].tolist()) for k in found if k != "t_turn")):
            self._flush()  # (the rows found stay valid: a flush moves no row and makes nothing due now)
        for name, cause in (("t_trip", "trip_ended"), ("t_outage", "link_outage")):
            if name in found and found[name].size:
                ending.append(found[name])
                causes += [cause] * found[name].size
        exits = found.get("t_exit")
        if exits is not None and exits.size:
            left = self._exits(exits, t)
            ending.append(left)
            causes += ["left_coverage"] * left.size
        resume = found.get("t_resume")
        if resume is not None and resume.size:
            flows.t_resume[resume] = _INF
            for v in np.unique(flows.vehicle[resume]).tolist():
                if self._vehicles[v][2] <= t:
                    self._vehicles[v][2] = _INF
            self._link_update(resume, t)
        turns = found.get("t_turn")
        if turns is not None and turns.size:  # a new velocity: a new exact exit time
            if self._exit_times(turns, t) and self._tick_at == _INF:
                self._tick_at = self._next_tick(t)
        rows = np.concatenate(ending)
        if rows.size:
            self._finish(rows, causes, t)
        return False

    def _finish(self, rows: np.ndarray, causes: list, t: float) -> None:
        """Trigger the result events of flow ``rows`` (ok where the cause is None) in (vehicle, flow id)
        order, and drop them."""
        flows = self.flows
        if rows.size > 1:
            order = np.lexsort((flows.fid[rows], flows.vehicle[rows]))
            rows, causes = rows[order], [causes[k] for k in order.tolist()]
        groups = set()
        for i, cause in zip(rows.tolist(), causes):
            if flows.fin[i] < _INF:
                groups.add(self._leave(i, t))
            if cause is None:
                flows.resent[i] += (flows.nbytes[i] - flows.done[i]) * flows.loss[i]
                flows.done[i] = flows.nbytes[i]
                flows.bc[i] = -1
            else:
                self._leave_broadcast(i, t)
            f, (fid, vehicle, rsu, up, _, handovers, _, _, hops) = flows.floats[:, i], flows.ints[:, i].tolist()
            resent = float(f[_RESENT])
            event = self._events.pop(fid)
            if self._streams:
                self._streams.pop(fid, None)
            if resent > 0.0 and self.on_event is not None:
                self.on_event("resent", time_s=t, vehicle=vehicle, rsu=rsu, nbytes=int(round(resent)))
            event.succeed(TransferResult(ok=cause is None, cause=cause, vehicle=vehicle, direction="up" if up else "down",
                                         nbytes=int(f[_NBYTES]), bytes_done=float(f[_DONE]), start_s=float(f[_START]),
                                         end_s=t, rsu=rsu, handovers=handovers, hops=hops, bytes_resent=resent))
            state = self._vehicles[vehicle]
            state[1] -= 1
            if state[1] == 0:
                del self._vehicles[vehicle]
                self._a3_held.pop(vehicle, None)
                self._paths.pop(vehicle, None)
        self._pending = flows.remove(rows, self._pending)  # (a pending flow is never among them)
        for g in groups:
            self.resources.plan(g)

    # ---------------------------------------------------------------------------------------- ticks
    def _tick(self, t: float) -> None:
        """Re-evaluate every flow's link at tick ``t`` (A3 handovers first) and rebuild the resources."""
        if self._a3:
            self._a3_step(t)
        if self._paths:
            self._reroute(t)
        flows = self.flows
        n = flows.n
        if n == 0:
            self._tick_at = _INF
            return
        paused = flows.t_resume[:n] < _INF
        live_rows = np.flatnonzero(~paused)
        merged = None
        if self._pending:  # their first rates and everyone's rates now in one call (`_mergeable`: the rates
            first = self._pending_rows()  # of now do not depend on the bytes carried)
            rates, vel, loss = self._rates(np.concatenate((first, live_rows)), t, first=first.size)
            self._check_peak(first, rates[:first.size])
            self._join(first, flows.start[first], rates[:first.size], loss[:first.size])
            merged = rates[first.size:], vel, loss[first.size:]
        done = bytes_now(flows, self.resources, t)
        flows.resent[:n] += (done - flows.done[:n]) * flows.loss[:n]
        flows.done[:n] = done
        rates, vel, loss = merged if merged is not None else self._rates(live_rows, t)
        if live_rows.size < n:
            rate, loss_all, vel_all = np.zeros(n), np.zeros(n), np.zeros((n, 2))
            rate[live_rows], loss_all[live_rows], vel_all[live_rows] = rates, loss, vel
            loss, vel = loss_all, vel_all
        else:
            rate = rates
        if (flows.bc[:n] >= 0).any():
            rows = np.flatnonzero(~paused)
            rate[rows] = self._broadcast_rates(rows, rate[rows])
        flows.rate[:n] = rate
        flows.loss[:n] = loss
        live = rate > 0.0
        quiet = live | paused
        since = np.where(quiet, math.nan, np.where(np.isnan(flows.outage_since[:n]), t, flows.outage_since[:n]))
        flows.outage_since[:n] = since
        flows.t_outage[:n] = np.where(quiet, _INF, since + self.config.outage_timeout_s)
        flows.fin[:n] = np.where(live, 8.0 * (flows.nbytes[:n] - done) / np.where(live, rate, 1.0), _INF)
        self._bc_live = rebuild(self.resources, flows, live, t)
        # the exit time is exact and stays valid while the velocity and the RSU do not change
        stale = ~paused & ((vel[:, 0] != flows.vx[:n]) | (vel[:, 1] != flows.vy[:n]))
        if stale.any():
            self._exit_times(np.flatnonzero(stale), t)
        moving = bool(vel.any())
        # relay paths are checked at ticks, so they tick on while any flow is relayed
        self._tick_at = self._next_tick(t) if (moving or self._time_varying or self._paths) else _INF

    def _result(self, ok: bool, cause: str | None, vehicle: int, direction: str, nbytes: int, done: float,
                start: float, rsu: int, handovers: int, end_s: float, *, hops: int = 1,
                resent: float = 0.0) -> TransferResult:
        return TransferResult(ok=ok, cause=cause, vehicle=vehicle, direction=direction, nbytes=nbytes,
                              bytes_done=done, start_s=start, end_s=end_s, rsu=rsu, handovers=handovers,
                              hops=hops, bytes_resent=resent)
