"""Transfers as fluid flows through shared RSU links (DESIGN.md, principle 4): `FluidNetwork`.

It implements `vfedsim.strategies.network.Network` over the world's mobility and radio models.

How bytes move. Each RSU has one uplink and one downlink resource. The flows of one RSU and direction that
currently have a usable link (rate > 0, not paused) time-share it equally, so each gets its own full-band
link rate divided by their number: two equal transfers on one RSU take exactly twice as long as one. A
flow's link rate is piecewise constant: it is evaluated when the flow starts, hands over or resumes after a
pause, and on a fixed grid of ticks every ``config.update_period_s`` (t = k x period) while any vehicle with
a flow moves or the channel varies in time (LOS state, fading). A flow's rate therefore never depends on when
*other* flows start or end; only its share does. Between events nothing is computed: one SimPy timeout (for
the whole network) waits for the earliest of a flow completing at the current shares, the next tick, a
vehicle's exact exit from its RSU's coverage disc, its next velocity change (the mobility model's
``next_change_s``, e.g. a turn: its exit time is then recomputed, so exits stay exact on a road grid), a trip
end, an outage timing out and a pause ending. Completion and failure times are exact (not quantised to
ticks) wherever rates are constant. When no flow is active nothing is scheduled: idle stretches cost
nothing. (SimPy cannot unschedule a timeout, so a wake-up planned before a transfer was cancelled, or before
an earlier one was needed, still passes once, as a no-op.)

Sharing is computed per resource in airtime units (processor sharing): a resource's virtual time V grows
at 1/n per second with n live flows, and a flow that still needs A seconds of the full band completes when
V has grown by A. A start or an end therefore touches only its own resource.

Backhaul. Each RSU reaches the cloud over a full-duplex backhaul of ``backhaul_capacity_bps`` [bit/s] per
direction (None: unlimited), shared equally by that RSU's live flows of the direction, like the radio. A
flow's throughput is min(radio share, backhaul share) = min(r, C) / n for link rate r, capacity C and n live
flows, so the backhaul is an equal split, not max-min fair: bandwidth a radio-limited flow leaves unused on
the backhaul is not given to the others. ``backhaul_latency_s`` [s] is added once per transfer, at its
start: the flow is paused that long (the request's round trip to the cloud before the first byte moves),
and can fail meanwhile like any paused flow (trip end, coverage exit). The backhaul never fails a transfer
(it has no failure cause of its own): it only slows it.

Downlink broadcast (``downlink_mode: broadcast``). Downloads of the same size that one RSU is asked for at
the same instant, by vehicles not in a handover interruption and not relayed, form one broadcast: a single
transmission that takes one share of the RSU's downlink (and of its backhaul), at the lowest of its members'
link rates (so that every member decodes it), evaluated when its members' rates are (start, ticks, pause
ends). Members progress together and complete at the same instant. A member that fails or is cancelled,
hands over, or whose link goes out (rate 0) leaves the broadcast for good (the last two go on as unicast
flows); the others then go on at the lowest rate of those left, from their last evaluation. A later request
never joins a running broadcast (it would need the bytes already sent). Broadcasts have no per-receiver
resends: with chunk losses their members use the radio's goodput.

V2V relaying (``v2v.enabled``). A vehicle with no RSU of its own, when it asks for a transfer or when its
flows leave coverage with no handover target, reaches one through neighbours: the graph's nodes are the
vehicles on the road and its edges the pairs within ``v2v.range_m`` with a positive V2V rate; a path of at
most ``v2v.max_hops`` V2V hops ends at a covered vehicle, whose RSU carries the flow
(`vfedsim.strategies.relay` says which path is taken). A relayed flow's rate is its path's bottleneck: the
smallest of its hops' V2V rates (`vfedsim.strategies.relay.v2v_rate_bps`: the profile's path loss between
vehicles, median, no shadowing or fading) and of the relay's own link to its RSU; it takes one share of
that RSU's resource (V2V hops are on a sidelink of their own and share nothing). The path is evaluated at
the start and at every tick (not exactly between ticks): a vehicle back in a disc goes direct, one whose
path broke takes another or fails with ``left_coverage``.
Relay changes are told to ``on_event`` (kind ``relay``); `TransferResult.hops` is the path's hop count.
A move onto or between relay paths is not a handover: it has no interruption and ``handover: restart`` does
not restart the flow; with ``handover: drop`` a flow leaving its disc is not relayed. Relayed flows use the
radio's goodput (no chunk losses) and never join a broadcast.

Chunk losses. With ``chunk_bytes`` L set and a channel profile whose rate mapping has packet errors (an MCS
table; Shannon has none), a flow carries its payload in chunks of L bytes at the PHY rate of the link's MCS,
and each chunk is lost with the packet error rate p of that MCS at the link's SNR
(`vfedsim.world.radio.Radio.rate_and_per`) and sent again. The fluid model draws the losses per rate
evaluation: when a flow's rate is evaluated and m = ceil(remaining payload / L) chunks are left, the number of resends
k ~ NegativeBinomial(m, 1 - p) (failures before m successes) is drawn from the flow's own stream
``stream(seed, "chunk-loss", vehicle, k-th transfer of that vehicle)``, and until the next evaluation the
payload moves at PHY rate x m / (m + k) with k L / m bytes resent per payload byte. With a constant link
this is exactly the i.i.d. chunk-loss model with every resend counted as L bytes; when p changes, the
resends still to come are redrawn for the chunks still to send (each chunk's loss is independent, so this
is the same model with the new p from then on, spread evenly over the interval). ``bytes_resent`` counts
the resent bytes; without ``chunk_bytes`` the radio's goodput (rate x (1 - PER)) is used and nothing is
counted as resent.

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
`FluidNetwork.time_to_coverage_s` predicts at the current velocity (a turn before then makes it late).

A flow ends in one of these ways: success; or ``ok=False`` with a cause from `FAIL_CAUSES`:

* ``no_coverage``: requested while the vehicle had no serving RSU (or had not entered the road yet);
* ``trip_ended``: the vehicle's trip ended (also when requested after it ended);
* ``left_coverage``: it left its RSU's disc and no other RSU covered it, nor (with V2V) a relay path
  reached one; or its relay path broke with no other at a tick (with ``handover: drop``, leaving the disc
  always ends the flow);
* ``handover_failed``: an A3 handover with ``handover: drop``;
* ``link_outage``: the instantaneous SNR stayed below the profile's usable SNR for ``outage_timeout_s``
  (outage is detected at rate evaluations, so its start is quantised to them);
* ``deadline`` / ``cancelled`` (or any other label in `FAIL_CAUSES`): the strategy called `Network.cancel`.

Simultaneous events are resolved in the order completion, trip end, coverage exit, outage, pause end,
velocity change; results of one instant are delivered in (vehicle, flow id) order.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import simpy
from numpy.typing import ArrayLike

from ..rng import stream
from ..world.channel import per_from_snr, rate_from_snr_bps
from .network import DIRECTIONS, FAIL_CAUSES, OnEvent, TransferResult
from .network import as_ids as _ids
from .network import check_cause as _check_cause
from .network import check_request as _check_request
from .relay import relay_paths, v2v_rate_bps

__all__ = ["FluidNetwork", "DIRECTIONS", "FAIL_CAUSES"]


_COLUMNS = {  # the flow table: one array per column, one row per active flow (rows in no particular order)
    "fid": (np.int64, 0), "vehicle": (np.int64, 0), "rsu": (np.int64, 0), "up": (np.bool_, False),
    "grp": (np.int64, 0),  # the resource: rsu * 2 + up
    "bandwidth_hz": (np.float64, 0.0), "nbytes": (np.float64, 0.0), "start": (np.float64, 0.0),
    "handovers": (np.int64, 0),
    "done": (np.float64, 0.0),  # [B] payload carried; for a live flow: when it (re)joined its resource
    "rate": (np.float64, 0.0),  # [bit/s] payload rate on the full band (backhaul-capped; 0: outage, paused)
    "loss": (np.float64, 0.0),  # [B/B] bytes resent per payload byte since the last evaluation (chunk losses)
    "resent": (np.float64, 0.0),  # [B] resent so far, up to when `done` was last brought up to date
    "fin": (np.float64, math.inf),  # live flow: its resource's virtual time at completion; inf otherwise
    "outage_since": (np.float64, math.nan),  # [s] when the current outage began (nan: none)
    "vx": (np.float64, 0.0), "vy": (np.float64, 0.0),  # [m/s] the velocity its t_exit was computed for
    "bc": (np.int64, -1),  # broadcast group (-1: unicast)
    "relay": (np.int64, -1),  # the covered vehicle that forwards it over V2V hops to its RSU (-1: direct)
    "hops": (np.int64, 1),  # wireless hops to its RSU (1: direct)
    "link": (np.float64, 0.0),  # [bit/s] a broadcast member's own payload rate at its last evaluation
    "t_trip": (np.float64, math.inf), "t_exit": (np.float64, math.inf), "t_outage": (np.float64, math.inf),
    "t_resume": (np.float64, math.inf),  # [s] end of a pause: handover interruption, backhaul latency
    "t_turn": (np.float64, math.inf),  # [s] the vehicle's next velocity change (mobility ``next_change_s``)
}
_DUE = ("t_trip", "t_exit", "t_outage", "t_resume", "t_turn")
_SLACK = 1e-12  # relative slack when deciding that a flow has completed at a wake-up


class FluidNetwork:
    """`Network` over a mobility model and a `vfedsim.world.radio.Radio` (see the module docstring).

    ``mobility`` provides ``trips``, ``positions_of``, ``active_of``, ``travelled_m`` and optionally
    ``next_change_s`` (`vfedsim.world.mobility.MobilityModel`; without it velocities are taken as constant
    between ticks); shadowing is looked up at the distance travelled. ``config`` is a
    `vfedsim.scenario.NetworkConfig`. ``uplink_hz``/``downlink_hz`` [Hz] set each RSU resource's bandwidth
    for rates and outage (default: the radio profile's); coverage discs stay the radio's. ``seed`` keys the
    chunk-loss streams (default: the radio's). ``on_event`` is told of every handover (one call per flow
    moved), relay path change and flow that resent bytes (see `vfedsim.strategies.network.OnEvent`).
    """

    def __init__(self, env: simpy.Environment, *, mobility: Any, radio: Any, config: Any,
                 uplink_hz: float | None = None, downlink_hz: float | None = None,
                 on_event: OnEvent | None = None, seed: int | None = None) -> None:
        self.env = env
        self.mobility = mobility
        self.radio = radio
        self.config = config
        self.on_event = on_event
        self.uplink_hz = float(uplink_hz if uplink_hz is not None else radio.profile.bandwidth_hz)
        self.downlink_hz = float(downlink_hz if downlink_hz is not None else radio.profile.downlink_hz)
        self.seed = int(seed if seed is not None else getattr(radio, "seed", 0))
        self._period = float(config.update_period_s)
        self._time_varying = bool(getattr(radio, "time_varying", False))
        self._a3 = config.handover_trigger == "a3"
        cap = getattr(config, "backhaul_capacity_bps", None)
        self._cap = math.inf if cap is None else float(cap)  # [bit/s] per RSU and direction
        self._latency = float(getattr(config, "backhaul_latency_s", 0.0))
        chunk = getattr(config, "chunk_bytes", None)
        profile = getattr(radio, "profile", None)
        lossy = chunk is not None and getattr(profile, "rate_mapping", "shannon") != "shannon"
        self._chunk = float(chunk) if lossy else None  # [B], None: goodput only
        self._next_change = getattr(mobility, "next_change_s", None)
        self._turns: dict[int, tuple[float, float]] = {}  # vehicle -> (its next velocity change, asked at)
        self._broadcast = getattr(config, "downlink_mode", "unicast") == "broadcast"
        self._bc_open: dict[tuple[int, int], tuple[float, int]] = {}  # (rsu, nbytes) -> (formed at, group)
        self._bc_live: dict[int, int] = {}  # broadcast group -> members live on their resource
        self._next_bc = 0
        v2v = getattr(config, "v2v", None)
        self._v2v = v2v if v2v is not None and v2v.enabled else None
        self._paths: dict[int, tuple[int, ...]] = {}  # relayed vehicle -> its path (itself, ..., the relay)
        self._n = 0
        self._c = self._allocate(16)
        self._events: dict[int, simpy.Event] = {}  # flow id -> the event its result goes to
        self._streams: dict[int, np.random.Generator] = {}  # flow id -> its chunk-loss stream
        self._sent: dict[int, int] = {}  # vehicle -> transfers started (numbers the chunk-loss streams)
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
        self._due = [math.inf] * len(_DUE)  # per-column minima of the due times, from the last plan
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
            return event.succeed(self._result(False, "trip_ended", vehicle, direction, nbytes, 0.0, now, -1, 0,
                                              hops=0))
        state = self._vehicles.get(vehicle)
        if state is None and now < trips.t_enter_s[vehicle]:
            rsu = -1
        else:
            pos, vel, idle_rsu = self._where(vehicle, now)
            rsu = state[0] if state is not None else idle_rsu
        path = None
        if rsu < 0 and self._v2v is not None and state is None and now >= trips.t_enter_s[vehicle]:
            found = self._find_paths([vehicle], now).get(vehicle)
            if found is not None:
                path, rsu = found
        if rsu < 0:
            return event.succeed(self._result(False, "no_coverage", vehicle, direction, nbytes, 0.0, now, -1, 0,
                                              hops=0))
        if nbytes == 0:
            return event.succeed(self._result(True, None, vehicle, direction, 0, 0.0, now, rsu, 0))
        up = direction == "up"
        bandwidth = self.uplink_hz if up else self.downlink_hz
        fid = self._next_fid
        self._next_fid += 1
        self._events[fid] = event
        if self._chunk is not None:
            k = self._sent.get(vehicle, 0)
            self._sent[vehicle] = k + 1
            self._streams[fid] = stream(self.seed, "chunk-loss", vehicle, k)
        if state is None:
            state = self._vehicles[vehicle] = [rsu, 0, math.inf]
        state[1] += 1
        g = 2 * rsu + up
        row = self._append(fid=fid, vehicle=vehicle, rsu=rsu, up=up, grp=g, nbytes=nbytes,
                           bandwidth_hz=bandwidth, start=now, t_trip=t_trip)
        c = self._c
        pause = state[2]  # the vehicle's handover interruption (inf: none)
        if self._latency > 0.0:
            pause = max(now + self._latency, pause if pause < math.inf else now)
        members = None
        if path is not None:
            self._paths[vehicle] = path
            c["relay"][row], c["hops"][row] = path[-1], len(path)
            self._tell_relay(vehicle, rsu, nbytes, len(path), now)
        elif self._broadcast and not up and state[2] == math.inf:
            opened = self._bc_open.get((rsu, nbytes))
            if opened is None or opened[0] != now:
                opened = self._bc_open[(rsu, nbytes)] = (now, self._next_bc)
                self._next_bc += 1
            else:
                members = np.flatnonzero(c["bc"][:row] == opened[1])
            c["bc"][row] = opened[1]
        if pause < math.inf:  # backhaul latency, or the vehicle is in a handover interruption
            c["t_resume"][row] = pause
        elif members is not None and members.size:  # joins the broadcast formed at this instant
            self._link_update(np.append(members, row), now)
        else:
            if path is not None:
                r, _, lo = self._rates(np.array([row]), now)
                rate, loss = float(r[0]), float(lo[0])
            elif self._chunk is None:  # one link: scalar arguments use the radio's cached link budget
                extra = {"time_s": now} if self._time_varying else {}
                ids = np.array([vehicle])
                rate = float(self.radio.rate_bps(ids, pos, np.array([rsu]), self.mobility.travelled_m(ids, now),
                                                 uplink=up, bandwidth_hz=bandwidth, **extra)[0])
                rate, loss = min(rate, self._cap), 0.0
            else:
                r, _, lo = self._rates(np.array([row]), now, pos=pos, vel=vel)
                rate, loss = float(r[0]), float(lo[0])
            self._set_rate(row, rate, now, loss)
            self._group_next(g)
        vx, vy = float(vel[0, 0]), float(vel[0, 1])
        if path is None:  # a relayed flow's path is checked at ticks instead
            c["t_exit"][row] = now + float(self.radio.time_to_exit_s(pos, vel, np.array([rsu]))[0])
        c["vx"][row], c["vy"][row] = vx, vy
        if self._next_change is not None:
            turn = self._turns.get(vehicle)
            if turn is None or not turn[1] <= now < turn[0]:  # the next change is the same until it comes
                turn = self._turns[vehicle] = (float(self._next_change(np.array([vehicle]), now)[0]), now)
            c["t_turn"][row] = turn[0] if turn[0] < t_trip else math.inf
        if self._tick_at == math.inf and (self._time_varying or vx or vy or path is not None):
            self._tick_at = self._next_tick(now)
        self._reschedule(row if path is None and members is None else None)
        return event

    def cancel(self, vehicle: int, cause: str) -> None:
        _check_cause(cause)
        rows = np.flatnonzero(self._c["vehicle"][:self._n] == int(vehicle))
        if rows.size:
            self._finish(rows, [cause] * rows.size, self.env.now)
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
        if rsu >= 0 or (self._v2v is not None and vehicle in self._find_paths([vehicle], now)):
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
        ids = _ids(vehicles)
        pos, vel, rsu = self._links(ids)
        left = self.mobility.trips.t_exit_s[ids] - self.env.now
        return np.where(rsu >= 0, np.minimum(self.radio.time_to_exit_s(pos, vel, rsu), left), 0.0)

    def link_rates_bps(self, vehicles: ArrayLike, direction: str) -> np.ndarray:
        """(k,) `link_rate_bps` of each vehicle."""
        return self._serving_link(self.radio.rate_bps, vehicles, direction)

    def link_snrs_db(self, vehicles: ArrayLike, direction: str) -> np.ndarray:
        """(k,) [dB] instantaneous SNR (the SINR with co-channel interference) of each vehicle's link to its
        serving RSU, over the direction's bandwidth; -inf for a vehicle without one."""
        return self._serving_link(self.radio.snr_db, vehicles, direction)

    def _serving_link(self, quantity: Callable[..., np.ndarray], vehicles: ArrayLike, direction: str) -> np.ndarray:
        """``quantity`` (a `Radio` link method) of each vehicle's link to its serving RSU, now."""
        _check_request(0, direction)
        ids = _ids(vehicles)
        pos, _, rsu = self._links(ids)
        up = direction == "up"
        extra = {"time_s": self.env.now} if self._time_varying else {}
        return quantity(ids, pos, rsu, self.mobility.travelled_m(ids, self.env.now), uplink=up,
                        bandwidth_hz=self.uplink_hz if up else self.downlink_hz, **extra)

    # ----------------------------------------------------------------------------------- flow table
    def _allocate(self, capacity: int) -> dict[str, np.ndarray]:
        """Empty columns for ``capacity`` flows, each contiguous (a tick or a scan reads whole columns); the
        due-time columns are rows of one (5, capacity) array (``_due_times``), so that planning takes all
        their minima in one call."""
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
        if rows.size <= 2:
            for r in sorted(rows.tolist(), reverse=True):
                n -= 1
                if r != n:
                    for col in self._c.values():
                        col[r] = col[n]
        else:
            keep = np.ones(n, dtype=bool)
            keep[rows] = False
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
        first = float(c["fin"][:k].min(where=c["grp"][:k] == g, initial=math.inf))
        self._g_next[g] = self._g_t[g] + (first - self._g_v[g]) * n

    def _leave(self, i: int, t: float) -> None:
        """Take live flow row ``i`` off its resource at ``t``, keeping the bytes it carried."""
        c = self._c
        g = int(c["grp"][i])
        self._advance(g, t)
        nbytes, before = float(c["nbytes"][i]), float(c["done"][i])
        remaining = (float(c["fin"][i]) - float(self._g_v[g])) * float(c["rate"][i]) / 8.0
        done = min(max(nbytes - remaining, before), nbytes)
        c["done"][i] = done
        c["resent"][i] += (done - before) * float(c["loss"][i])
        c["fin"][i] = math.inf
        b = int(c["bc"][i])
        if b >= 0:  # a broadcast is one transmission: its resource counts it once
            self._bc_live[b] -= 1
            if self._bc_live[b]:
                return
            del self._bc_live[b]
        self._g_n[g] -= 1

    def _set_rate(self, i: int, rate: float, t: float, loss: float = 0.0) -> None:
        """Give flow row ``i`` a new payload rate [bit/s] (and resent bytes per payload byte) at ``t``
        (leaving and re-joining its resource)."""
        c = self._c
        if c["fin"][i] < math.inf:
            self._leave(i, t)
        c["rate"][i], c["loss"][i] = rate, loss
        if rate > 0.0:
            g = int(c["grp"][i])
            self._advance(g, t)
            c["fin"][i] = self._g_v[g] + 8.0 * (c["nbytes"][i] - c["done"][i]) / rate
            b = int(c["bc"][i])
            if b >= 0:
                self._bc_live[b] = self._bc_live.get(b, 0) + 1
                if self._bc_live[b] > 1:
                    c["outage_since"][i], c["t_outage"][i] = math.nan, math.inf
                    return
            self._g_n[g] += 1
            c["outage_since"][i], c["t_outage"][i] = math.nan, math.inf
        else:
            if math.isnan(c["outage_since"][i]):
                c["outage_since"][i] = t
            c["t_outage"][i] = c["outage_since"][i] + self.config.outage_timeout_s

    def _bytes_now(self, t: float) -> np.ndarray:
        """(n,) payload bytes carried by every flow at ``t``."""
        c, n = self._c, self._n
        fin, grp = c["fin"][:n], c["grp"][:n]
        live = fin < math.inf
        v_now = self._g_v + (t - self._g_t) / np.maximum(self._g_n, 1)
        carried = c["nbytes"][:n] - (np.where(live, fin, 0.0) - v_now[grp]) * c["rate"][:n] / 8.0
        return np.where(live, np.clip(carried, c["done"][:n], c["nbytes"][:n]), c["done"][:n])

    # ------------------------------------------------------------------------------------- link rates
    def _rates(self, rows: np.ndarray | slice, t: float, *, pos: np.ndarray | None = None,
               vel: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Payload rates [bit/s] of flow ``rows`` at ``t`` (full band, backhaul-capped; see the module
        docstring), their vehicles' velocities and the resent bytes per payload byte (chunk losses)."""
        c, mob, radio = self._c, self.mobility, self.radio
        v = c["vehicle"][rows]
        if pos is None:
            pos, vel = mob.positions_of(v, t)
        extra = {"time_s": t} if self._time_varying else {}
        rsu, up, bw = c["rsu"][rows], c["up"][rows], c["bandwidth_hz"][rows]
        travelled = mob.travelled_m(v, t)
        if self._chunk is None:
            rate = radio.rate_bps(v, pos, rsu, travelled, uplink=up, bandwidth_hz=bw, **extra)
            loss = np.zeros(rate.shape)
        else:
            rate, loss = self._lossy_rates(rows, v, pos, rsu, travelled, up, bw, extra)
            member = c["bc"][rows] >= 0
            if member.any():  # a broadcast has no per-receiver resends: its members use the goodput
                rate[member] = radio.rate_bps(v[member], pos[member], rsu[member], travelled[member],
                                              uplink=up[member], bandwidth_hz=bw[member], **extra)
                loss[member] = 0.0
        relayed = c["relay"][rows] >= 0
        if relayed.any():  # the path's bottleneck: its V2V hops and the relay's own RSU link
            relayed_rows = np.arange(self._n)[rows][relayed]
            rate = np.array(rate, dtype=np.float64)
            rate[relayed] = self._path_rates(relayed_rows, t, extra)
            loss[relayed] = 0.0
        return (np.minimum(rate, self._cap) if self._cap < math.inf else rate), vel, loss

    # ---------------------------------------------------------------------------------------- V2V relays
    def _find_paths(self, vehicles: ArrayLike, t: float) -> dict[int, tuple[tuple[int, ...], int]]:
        """Relay paths at ``t`` of the (uncovered, on-road) ``vehicles`` (`vfedsim.strategies.relay.relay_paths`
        over the uplink band): a vehicle relays to the RSU it would attach to (`vfedsim.world.radio.Radio.attach`)
        or that its own flows use; a relayed vehicle relays no one."""
        wanted = [int(v) for v in np.asarray(vehicles, dtype=np.int64).reshape(-1)]
        if not wanted:
            return {}
        trips, cfg = self.mobility.trips, self._v2v
        ids = np.flatnonzero((trips.t_enter_s <= t) & (t < trips.t_exit_s))
        pos, vel = self.mobility.positions_of(ids, t)
        # only vehicles within max_hops x range of a wanted one can be on its paths
        wanted_pos = pos[np.isin(ids, wanted)]
        near = np.zeros(ids.size, dtype=bool)
        for q in wanted_pos:
            near |= np.hypot(pos[:, 0] - q[0], pos[:, 1] - q[1]) <= cfg.max_hops * cfg.range_m
        ids, pos, vel = ids[near], pos[near], vel[near]
        rsu = self.radio.attach(pos, vel) if ids.size else np.zeros(0, dtype=np.int64)
        for k, v in enumerate(ids.tolist()):
            state = self._vehicles.get(v)
            if state is not None:
                rsu[k] = state[0] if v not in self._paths else -1
        return relay_paths(ids, pos, rsu, wanted, profile=self.radio.profile, bandwidth_hz=self.uplink_hz,
                           min_usable_snr_db=self.radio.min_usable_snr_db, range_m=cfg.range_m,
                           max_hops=cfg.max_hops)

    def _path_rates(self, rows: np.ndarray, t: float, extra: dict) -> np.ndarray:
        """[bit/s] the rates of relayed flow ``rows`` at ``t``: the minimum of their paths' V2V hops' and
        their relays' RSU links (one flow on the relay's RSU resource; V2V hops use a sidelink of their own,
        not shared)."""
        c, mob = self._c, self.mobility
        out = np.zeros(rows.size)
        for k, i in enumerate(rows.tolist()):
            path = np.array(self._paths[int(c["vehicle"][i])])
            pos, _ = mob.positions_of(path, t)
            bw = float(c["bandwidth_hz"][i])
            d = np.hypot(*np.diff(pos, axis=0).T)
            hop = float(v2v_rate_bps(self.radio.profile, d, bw, self.radio.min_usable_snr_db).min())
            relay = path[-1:]
            direct = float(self.radio.rate_bps(relay, pos[-1:], c["rsu"][i:i + 1], mob.travelled_m(relay, t),
                                               uplink=bool(c["up"][i]), bandwidth_hz=bw, **extra)[0])
            out[k] = min(hop, direct)
        return out

    def _to_relay(self, rows: np.ndarray, t: float) -> np.ndarray:
        """Put the flow ``rows`` whose vehicles just left coverage on relay paths at ``t``; the rows of
        vehicles with no path are returned."""
        c = self._c
        vehicles = np.unique(c["vehicle"][rows]).tolist()
        paths = self._find_paths(vehicles, t)
        moved = []
        for v in vehicles:
            if v not in paths:
                continue
            path, rsu = paths[v]
            mine = rows[c["vehicle"][rows] == v]
            for i in mine.tolist():
                if c["fin"][i] < math.inf:
                    g = int(c["grp"][i])
                    self._leave(i, t)
                    self._group_next(g)
                self._leave_broadcast(i, t)
                c["rsu"][i], c["grp"][i] = rsu, 2 * rsu + int(c["up"][i])
                c["relay"][i], c["hops"][i], c["t_exit"][i] = path[-1], len(path), math.inf
                self._tell_relay(v, rsu, int(c["nbytes"][i]), len(path), t)
            self._vehicles[v][0] = rsu
            self._paths[v] = path
            self._link_update(mine[c["t_resume"][mine] == math.inf], t)
            moved.append(v)
        if moved and self._tick_at == math.inf:
            self._tick_at = self._next_tick(t)
        return rows[~np.isin(c["vehicle"][rows], moved)]

    def _tell_relay(self, vehicle: int, rsu: int, nbytes: int, hops: int, t: float) -> None:
        if self.on_event is not None:
            self.on_event("relay", time_s=t, vehicle=vehicle, rsu=rsu, nbytes=nbytes, cause=f"hops={hops}")

    def _reroute(self, t: float) -> None:
        """At tick ``t``: a relayed vehicle that an RSU covers again goes direct; the others take the path
        of now (another relay, or fail ``left_coverage`` when there is none)."""
        c = self._c
        vehicles = sorted(self._paths)
        pos, vel = self.mobility.positions_of(np.array(vehicles), t)
        direct = self.radio.attach(pos, vel)
        paths = self._find_paths([v for v, r in zip(vehicles, direct.tolist()) if r < 0], t)
        lost = []
        for k, v in enumerate(vehicles):
            rows = np.flatnonzero(c["vehicle"][:self._n] == v)
            new_rsu = int(direct[k])
            path = (v,) if new_rsu >= 0 else None
            if path is None and v in paths:
                path, new_rsu = paths[v]
            if path is None:
                lost.append(rows)
                continue
            if path == self._paths[v]:
                continue
            for i in rows.tolist():
                if c["fin"][i] < math.inf:
                    g = int(c["grp"][i])
                    self._leave(i, t)
                    self._group_next(g)
                c["rsu"][i], c["grp"][i] = new_rsu, 2 * new_rsu + int(c["up"][i])
                c["relay"][i], c["hops"][i], c["rate"][i] = (path[-1] if len(path) > 1 else -1), len(path), 0.0
                self._tell_relay(v, new_rsu, int(c["nbytes"][i]), len(path), t)
            self._vehicles[v][0] = new_rsu
            if len(path) > 1:
                self._paths[v] = path
            else:
                del self._paths[v]
                self._exit_times(rows, t)
        if lost:
            rows = np.concatenate(lost)
            self._finish(rows, ["left_coverage"] * rows.size, t)

    def _lossy_rates(self, rows: np.ndarray | slice, v: np.ndarray, pos: np.ndarray, rsu: np.ndarray,
                     travelled: np.ndarray, up: np.ndarray, bw: np.ndarray, extra: dict
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Payload rates and resent bytes per payload byte with chunk losses drawn (module docstring)."""
        c, radio = self._c, self.radio
        if hasattr(radio, "rate_and_per"):  # the PHY rate of the link's MCS and its packet error rate
            phy, per = radio.rate_and_per(v, pos, rsu, travelled, uplink=up, bandwidth_hz=bw, goodput=False,
                                          **extra)
        else:
            profile = radio.profile
            snr = radio.snr_db(v, pos, rsu, travelled, uplink=up, bandwidth_hz=bw, **extra)
            usable = snr >= radio.min_usable_snr_db
            safe = np.where(usable, snr, profile.min_snr_db)
            phy = np.where(usable, rate_from_snr_bps(profile, bw, safe, goodput=False), 0.0)
            per = per_from_snr(profile, safe)
        per = np.where(phy > 0.0, per, 0.0)  # no chunk moves in an outage
        chunks = np.ceil(np.maximum(c["nbytes"][rows] - c["done"][rows], 0.0) / self._chunk)
        resends = np.zeros(phy.shape)
        for k, (fid, m, p) in enumerate(zip(c["fid"][rows].tolist(), chunks.tolist(), per.tolist())):
            if m > 0 and p > 0.0:
                resends[k] = float(self._streams[fid].negative_binomial(m, max(1.0 - p, 1e-12)))
        m = np.maximum(chunks, 1.0)
        return phy * m / (m + resends), resends * self._chunk / np.maximum(chunks * self._chunk, 1.0)

    def _link_update(self, rows: np.ndarray, t: float) -> None:
        """Evaluate flow ``rows``' rates at ``t`` and update their resources."""
        rate, _, loss = self._rates(rows, t)
        rate = self._broadcast_rates(rows, rate)
        groups = set()
        for i, r, lo in zip(rows.tolist(), rate.tolist(), loss.tolist()):
            self._set_rate(i, r, t, lo)
            groups.add(int(self._c["grp"][i]))
        for g in groups:
            self._group_next(g)

    def _broadcast_rates(self, rows: np.ndarray, rate: np.ndarray) -> np.ndarray:
        """The rates to give ``rows`` (all members of their broadcasts) evaluated at ``rate``: a member whose
        link is out (rate 0) leaves its broadcast for good; the others go at their weakest member's rate."""
        c = self._c
        bc = c["bc"][rows]
        if not (bc >= 0).any():
            return rate
        c["link"][rows] = rate
        member = bc >= 0
        c["bc"][rows[member & (rate <= 0.0)]] = -1
        bc = c["bc"][rows]
        out = rate.copy()
        for b in np.unique(bc[bc >= 0]).tolist():
            mine = bc == b
            out[mine] = rate[mine].min()
        return out

    def _leave_broadcast(self, i: int, t: float) -> None:
        """Take flow row ``i`` (not live) out of its broadcast; the rest go on at their weakest member's
        last evaluated rate from ``t``."""
        c, n = self._c, self._n
        b = int(c["bc"][i])
        if b < 0:
            return
        c["bc"][i] = -1
        rest = np.flatnonzero(c["bc"][:n] == b)
        if rest.size == 0 or not (c["fin"][rest] < math.inf).any():
            return
        rate = float(c["link"][rest].min())
        if rate == float(c["rate"][rest[0]]):
            return
        for r in rest.tolist():
            self._set_rate(r, rate, t)
        self._group_next(int(c["grp"][rest[0]]))

    def _exit_times(self, rows: np.ndarray, t: float) -> bool:
        """Exact coverage-exit times and next velocity changes of flow ``rows`` from ``t``; whether any of
        their vehicles moves."""
        c = self._c
        v = c["vehicle"][rows]
        pos, vel = self.mobility.positions_of(v, t)
        c["t_exit"][rows] = np.where(c["relay"][rows] >= 0, math.inf,
                                     t + self.radio.time_to_exit_s(pos, vel, c["rsu"][rows]))
        c["vx"][rows], c["vy"][rows] = vel[:, 0], vel[:, 1]
        if self._next_change is not None:
            turn = self._next_change(v, t)
            c["t_turn"][rows] = np.where(turn < c["t_trip"][rows], turn, math.inf)
        return bool(vel.any())

    def _next_tick(self, t: float) -> float:
        at = (math.floor(t / self._period) + 1) * self._period
        return at if at > t else at + self._period

    # ------------------------------------------------------------------------------------ scheduling
    def _reschedule(self, added: int | None = None, keep: bool = False) -> None:
        """Plan one wake-up at the earliest due time (a later pending one is superseded). ``added``: the only
        row whose due times changed since the last plan is this new one (its minima are merged in); ``keep``:
        no due time changed, rows were only removed (the last minima are kept as lower bounds)."""
        n = self._n
        if n == 0:
            self._tick_at = math.inf
            return
        if keep:
            minima = self._due
        elif added is None:
            minima = self._due_times[:, :n].min(axis=1).tolist()
        else:
            minima = [min(a, b) for a, b in zip(self._due, self._due_times[:, added].tolist())]
        self._due = minima
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
        only_completions = self._fire(t)
        if self._n and t >= self._tick_at:
            self._tick(t)
            only_completions = False
        # rows that completed can only raise the due-time minima: the old ones stay valid lower bounds (at
        # worst a wake-up comes early and finds nothing due, and the minima are then recomputed)
        self._reschedule(keep=only_completions)

    # ----------------------------------------------------------------------------------------- events
    def _completing(self, t: float) -> np.ndarray:
        """Rows of the flows that complete at ``t``."""
        c, n = self._c, self._n
        out = []
        for g in np.flatnonzero(self._g_next <= t).tolist():
            members = np.flatnonzero(c["grp"][:n] == g)
            fin = c["fin"][members]
            v_now = self._g_v[g] + (t - self._g_t[g]) / max(int(self._g_n[g]), 1)
            hit = members[fin <= v_now * (1.0 + _SLACK) + _SLACK]
            # the first flow of a due resource completes whatever the rounding
            out.append(hit if hit.size else members[np.argmin(fin)][None])
        if len(out) == 1:
            return out[0]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _fire(self, t: float) -> bool:
        """End, hand over, resume or re-aim every flow whose event is due at ``t``; whether only completions
        were due."""
        n, c = self._n, self._c
        if n == 0:
            return False
        complete = self._completing(t)
        due = [name for name, at in zip(_DUE, self._due) if at <= t]
        if not due:  # the common case: completions only
            if complete.size:
                self._finish(complete, [None] * complete.size, t)
            return True
        taken = np.zeros(n, dtype=bool)  # rows already claimed by an earlier kind of ending
        taken[complete] = True
        ending = [complete]
        causes: list = [None] * complete.size
        found = {}
        for name in due:
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
                if self._v2v is not None and left.size:  # out of every disc: through neighbours, if any
                    left = self._to_relay(left, t)
            ending.append(left)
            causes += ["left_coverage"] * left.size
        resume = found.get("t_resume")
        if resume is not None and resume.size:
            c["t_resume"][resume] = math.inf
            for v in np.unique(c["vehicle"][resume]).tolist():
                if self._vehicles[v][2] <= t:
                    self._vehicles[v][2] = math.inf
            self._link_update(resume, t)
        turns = found.get("t_turn")
        if turns is not None and turns.size:  # a new velocity: a new exact exit time
            if self._exit_times(turns, t) and self._tick_at == math.inf:
                self._tick_at = self._next_tick(t)
        rows = np.concatenate(ending)
        if rows.size:
            self._finish(rows, causes, t)
        return False

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
            self._leave_broadcast(i, t)
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
        waiting = c["t_resume"][rows]  # flows still in their backhaul latency stay paused until its end
        if pause > 0.0:
            state[2] = t + pause
            c["t_resume"][rows] = np.where(waiting < math.inf, np.maximum(waiting, t + pause), t + pause)
        else:
            self._link_update(rows[waiting == math.inf], t)
        self._exit_times(rows, t)

    def _finish(self, rows: np.ndarray, causes: list, t: float) -> None:
        """Trigger the result events of flow ``rows`` (ok where the cause is None) in (vehicle, flow id)
        order, and drop them."""
        c = self._c
        if rows.size > 1:
            order = np.lexsort((c["fid"][rows], c["vehicle"][rows]))
            rows, causes = rows[order], [causes[k] for k in order.tolist()]
        groups = set()
        for i, cause in zip(rows.tolist(), causes):
            if c["fin"][i] < math.inf:
                groups.add(int(c["grp"][i]))
                self._leave(i, t)
            if cause is None:
                c["resent"][i] += (c["nbytes"][i] - c["done"][i]) * c["loss"][i]
                c["done"][i] = c["nbytes"][i]
                c["bc"][i] = -1
            else:
                self._leave_broadcast(i, t)
            vehicle, fid = int(c["vehicle"][i]), int(c["fid"][i])
            resent = float(c["resent"][i])
            event = self._events.pop(fid)
            self._streams.pop(fid, None)
            if resent > 0.0 and self.on_event is not None:
                self.on_event("resent", time_s=t, vehicle=vehicle, rsu=int(c["rsu"][i]), nbytes=int(round(resent)))
            event.succeed(self._result(cause is None, cause, vehicle, "up" if c["up"][i] else "down",
                                       int(c["nbytes"][i]), float(c["done"][i]), float(c["start"][i]),
                                       int(c["rsu"][i]), int(c["handovers"][i]), end_s=t, resent=resent,
                                       hops=int(c["hops"][i])))
            state = self._vehicles[vehicle]
            state[1] -= 1
            if state[1] == 0:
                del self._vehicles[vehicle]
                self._a3_state.pop(vehicle, None)
                self._paths.pop(vehicle, None)
        self._remove(rows)
        for g in groups:
            self._group_next(g)

    # ---------------------------------------------------------------------------------------- ticks
    def _tick(self, t: float) -> None:
        """Re-evaluate every flow's link at tick ``t`` (A3 handovers first) and rebuild the resources."""
        if self._a3:
            self._a3_step(t)
        if self._paths:
            self._reroute(t)
        n, c = self._n, self._c
        if n == 0:
            self._tick_at = math.inf
            return
        done = self._bytes_now(t)
        c["resent"][:n] += (done - c["done"][:n]) * c["loss"][:n]
        c["done"][:n] = done
        paused = c["t_resume"][:n] < math.inf
        if paused.any():
            rate, loss = np.zeros(n), np.zeros(n)
            rows = np.flatnonzero(~paused)
            rate[rows], vel_rows, loss[rows] = self._rates(rows, t)
            vel = np.zeros((n, 2))
            vel[rows] = vel_rows
        else:
            rate, vel, loss = self._rates(slice(0, n), t)
        bc = c["bc"][:n]
        if (bc >= 0).any():
            rows = np.flatnonzero(~paused)
            rate[rows] = self._broadcast_rates(rows, rate[rows])
            bc = c["bc"][:n]
        c["rate"][:n] = rate
        c["loss"][:n] = loss
        live = rate > 0.0
        grp = c["grp"][:n]
        since = c["outage_since"][:n]
        quiet = live | paused
        since = np.where(quiet, math.nan, np.where(np.isnan(since), t, since))
        c["outage_since"][:n] = since
        c["t_outage"][:n] = np.where(quiet, math.inf, since + self.config.outage_timeout_s)
        fin = np.where(live, 8.0 * (c["nbytes"][:n] - done) / np.where(live, rate, 1.0), math.inf)
        c["fin"][:n] = fin
        member = live & (bc >= 0)
        self._g_n[:] = np.bincount(grp[live & (bc < 0)], minlength=self._g_n.size)
        self._bc_live = {}
        if member.any():  # a broadcast counts once on its resource
            groups, first_row, count = np.unique(bc[member], return_index=True, return_counts=True)
            self._g_n += np.bincount(grp[np.flatnonzero(member)[first_row]], minlength=self._g_n.size)
            self._bc_live = dict(zip(groups.tolist(), count.tolist()))
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
        # relay paths are checked at ticks, so they tick on while any flow is relayed
        self._tick_at = self._next_tick(t) if (moving or self._time_varying or self._paths) else math.inf

    def _a3_step(self, t: float) -> None:
        """A3 handovers due at tick ``t`` (see the module docstring)."""
        n, c = self._n, self._c
        rows = np.flatnonzero((c["t_resume"][:n] == math.inf) & (c["relay"][:n] < 0))
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
                self._finish(mine, ["handover_failed"] * mine.size, t)
            else:
                self._handover(vehicle, target, t)

    def _result(self, ok: bool, cause: str | None, vehicle: int, direction: str, nbytes: int, done: float,
                start: float, rsu: int, handovers: int, *, end_s: float | None = None, hops: int = 1,
                resent: float = 0.0) -> TransferResult:
        return TransferResult(ok=ok, cause=cause, vehicle=vehicle, direction=direction, nbytes=nbytes,
                              bytes_done=done, start_s=start, end_s=self.env.now if end_s is None else end_s,
                              rsu=rsu, handovers=handovers, hops=hops, bytes_resent=resent)
