"""Moving flows on, off and between resources: joining and leaving a resource, rate changes, broadcast
leavers, handovers (coverage exit and A3), relay paths and exact exit times (`Moves`, a part of
`vfedsim.network.fluid.FluidNetwork`; the decisions are the pure functions of `handover`, `broadcast` and
`relay`, the sharing math `flows`)."""
from __future__ import annotations

import math

import numpy as np

from .broadcast import weakest_rates
from .flows import carried_bytes
from .handover import a3_candidates, a3_decisions

__all__ = ["Moves"]

_INF = math.inf


class Moves:
    """The flow-moving steps of `FluidNetwork` (they read and write its table, resources and vehicles)."""

    def _exits(self, exits: np.ndarray, t: float) -> np.ndarray:
        """Flows whose vehicles leave their discs at ``t``: hand over where another disc holds them, else relay
        (with V2V); the rows left with neither."""
        if self.config.handover == "drop":
            return exits
        flows = self.flows
        vehicles = np.unique(flows.vehicle[exits])
        pos, vel = self.mobility.positions_of(vehicles, t)
        target = self.radio.handover_target(pos, vel, np.array([self._vehicles[v][0] for v in vehicles.tolist()]))
        for v, new in zip(vehicles.tolist(), target.tolist()):
            if new >= 0:
                self._handover(v, new, t, rows=exits[flows.vehicle[exits] == v])
        left = exits[np.isin(flows.vehicle[exits], vehicles[target < 0])]
        if self._v2v is not None and left.size:  # out of every disc: through neighbours, if any
            left = self._to_relay(left, t)
        return left

    def _a3_step(self, t: float) -> None:
        """A3 handovers due at tick ``t`` (`vfedsim.network.handover`)."""
        flows = self.flows
        n = flows.n
        rows = np.flatnonzero((flows.t_resume[:n] == _INF) & (flows.relay[:n] < 0))
        if rows.size == 0:
            self._a3_held = {}
            return
        vehicles, first = np.unique(flows.vehicle[rows], return_index=True)
        serving = flows.rsu[rows[first]]
        pos, _ = self.mobility.positions_of(vehicles, t)
        vi, cand = a3_candidates(self.radio.covering(pos), serving)
        rx_serving = rx = np.zeros(0)
        if vi.size:
            extra = {"time_s": t} if self._time_varying else {}
            travelled = self.mobility.travelled_m(vehicles, t)
            rx_serving = self.radio.rsrp_dbm(vehicles, pos, serving, travelled, **extra)
            rx = self.radio.rsrp_dbm(vehicles[vi], pos[vi], cand, travelled[vi], **extra)
        moves, self._a3_held = a3_decisions(vehicles, vi, cand, rx, rx_serving, self._a3_held, t,
                                            hysteresis_db=self.config.handover_hysteresis_db,
                                            time_to_trigger_s=self.config.time_to_trigger_s)
        for vehicle, target in moves:
            if self.config.handover == "drop":
                mine = np.flatnonzero(flows.vehicle[:flows.n] == vehicle)
                self._finish(mine, ["handover_failed"] * mine.size, t)
            else:
                self._handover(vehicle, target, t)

    # ------------------------------------------------------------------------------ moving flows
    def _handover(self, vehicle: int, new_rsu: int, t: float, rows: np.ndarray | None = None) -> None:
        """Move the flows of ``vehicle`` (all, or ``rows``) to ``new_rsu`` at ``t`` (continue and restart)."""
        flows = self.flows
        if rows is None:
            rows = np.flatnonzero(flows.vehicle[:flows.n] == vehicle)
        rows = rows[np.argsort(flows.fid[rows])]
        groups = set()
        for i in rows.tolist():
            if flows.fin[i] < _INF:
                groups.add(self._leave(i, t))
            self._leave_broadcast(i, t)
            if self.config.handover == "restart":
                flows.done[i] = 0.0
            flows.rsu[i], flows.grp[i] = new_rsu, 2 * new_rsu + int(flows.up[i])
            flows.handovers[i] += 1
            flows.rate[i], flows.outage_since[i], flows.t_outage[i] = 0.0, math.nan, _INF
            if self.on_event is not None:
                self.on_event("handover", time_s=t, vehicle=vehicle, rsu=new_rsu, nbytes=int(flows.nbytes[i]))
        for g in groups:
            self.resources.plan(g)
        state = self._vehicles[vehicle]
        state[0] = new_rsu
        pause = self.config.handover_interruption_s
        waiting = flows.t_resume[rows]  # flows still in their backhaul latency stay paused until its end
        if pause > 0.0:
            state[2] = t + pause
            flows.t_resume[rows] = np.where(waiting < _INF, np.maximum(waiting, t + pause), t + pause)
        else:
            self._link_update(rows[waiting == _INF], t)
        self._exit_times(rows, t)

    def _move(self, i: int, rsu: int, relay: int, hops: int, t: float) -> None:
        """Put live or paused flow row ``i`` on ``rsu`` over a relay path (``relay`` -1: direct) at ``t``."""
        flows = self.flows
        if flows.fin[i] < _INF:
            self.resources.plan(self._leave(i, t))
        flows.rsu[i], flows.grp[i] = rsu, 2 * rsu + int(flows.up[i])
        flows.relay[i], flows.hops[i] = relay, hops
        self._tell_relay(int(flows.vehicle[i]), rsu, int(flows.nbytes[i]), hops, t)

    def _to_relay(self, rows: np.ndarray, t: float) -> np.ndarray:
        """Put the flow ``rows`` whose vehicles just left coverage on relay paths at ``t``; the rows of
        vehicles with no path are returned."""
        flows = self.flows
        vehicles = np.unique(flows.vehicle[rows]).tolist()
        paths = self._find_paths(vehicles, t)
        moved = []
        for v in vehicles:
            if v not in paths:
                continue
            path, rsu = paths[v]
            mine = rows[flows.vehicle[rows] == v]
            for i in mine.tolist():
                if flows.fin[i] < _INF:
                    self.resources.plan(self._leave(i, t))
                self._leave_broadcast(i, t)
                flows.t_exit[i] = _INF
                self._move(i, rsu, path[-1], len(path), t)
            self._vehicles[v][0] = rsu
            self._paths[v] = path
            self._link_update(mine[flows.t_resume[mine] == _INF], t)
            moved.append(v)
        if moved and self._tick_at == _INF:
            self._tick_at = self._next_tick(t)
        return rows[~np.isin(flows.vehicle[rows], moved)]

    def _reroute(self, t: float) -> None:
        """At tick ``t``: a relayed vehicle that an RSU covers again goes direct; the others take the path
        of now (another relay, or fail ``left_coverage`` when there is none)."""
        flows = self.flows
        vehicles = sorted(self._paths)
        pos, vel = self.mobility.positions_of(np.array(vehicles), t)
        direct = self.radio.attach(pos, vel)
        paths = self._find_paths([v for v, r in zip(vehicles, direct.tolist()) if r < 0], t)
        lost = []
        for k, v in enumerate(vehicles):
            rows = np.flatnonzero(flows.vehicle[:flows.n] == v)
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
                self._move(i, new_rsu, path[-1] if len(path) > 1 else -1, len(path), t)
                flows.rate[i] = 0.0
            self._vehicles[v][0] = new_rsu
            if len(path) > 1:
                self._paths[v] = path
            else:
                del self._paths[v]
                self._exit_times(rows, t)
        if lost:
            rows = np.concatenate(lost)
            self._finish(rows, ["left_coverage"] * rows.size, t)

    def _tell_relay(self, vehicle: int, rsu: int, nbytes: int, hops: int, t: float) -> None:
        if self.on_event is not None:
            self.on_event("relay", time_s=t, vehicle=vehicle, rsu=rsu, nbytes=nbytes, cause=f"hops={hops}")

    def _exit_times(self, rows: np.ndarray, t: float) -> bool:
        """Exact coverage-exit times and next velocity changes of flow ``rows`` from ``t``; whether any of
        their vehicles moves."""
        flows = self.flows
        v = flows.vehicle[rows]
        pos, vel = self.mobility.positions_of(v, t)
        flows.t_exit[rows] = np.where(flows.relay[rows] >= 0, _INF, t + self.radio.time_to_exit_s(pos, vel, flows.rsu[rows]))
        flows.vx[rows], flows.vy[rows] = vel[:, 0], vel[:, 1]
        if self._next_change is not None:
            turn = self._next_change(v, t)
            flows.t_turn[rows] = np.where(turn < flows.t_trip[rows], turn, _INF)
        return bool(vel.any())

    # -------------------------------------------------------------------------------- resources
    def _leave(self, i: int, t: float) -> int:
        """Take live flow row ``i`` off its resource at ``t``, keeping the bytes it carried; its resource
        (whose next completion the caller re-plans)."""
        flows, res = self.flows, self.resources
        g = int(flows.grp[i])
        v = res.advance(g, t)
        before, fin = float(flows.done[i]), float(flows.fin[i])
        done = carried_bytes(float(flows.nbytes[i]), before, fin, v, float(flows.rate[i]))
        flows.done[i] = done
        flows.resent[i] += (done - before) * float(flows.loss[i])
        flows.fin[i] = _INF
        b = int(flows.bc[i])
        if b >= 0:  # a broadcast is one transmission: its resource counts it once
            self._bc_live[b] -= 1
            if not self._bc_live[b]:
                del self._bc_live[b]
                res.count[g] -= 1
        else:
            res.count[g] -= 1
        res.left(g, fin, flows)
        return g

    def _set_rate(self, i: int, rate: float, t: float, loss: float = 0.0) -> None:
        """Give flow row ``i`` a new payload rate [bit/s] (and resent bytes per payload byte) at ``t``
        (leaving and re-joining its resource; the caller re-plans it)."""
        flows, res = self.flows, self.resources
        if flows.fin[i] < _INF:
            self._leave(i, t)
        flows.rate[i], flows.loss[i] = rate, loss
        if rate > 0.0:
            g = int(flows.grp[i])
            fin = res.advance(g, t) + 8.0 * (flows.nbytes[i] - flows.done[i]) / rate
            flows.fin[i] = fin
            flows.outage_since[i], flows.t_outage[i] = math.nan, _INF
            b = int(flows.bc[i])
            if b >= 0:
                self._bc_live[b] = self._bc_live.get(b, 0) + 1
                if self._bc_live[b] > 1:
                    res.joined(g, fin)
                    return
            res.count[g] += 1
            res.joined(g, fin)
        else:
            if math.isnan(flows.outage_since[i]):
                flows.outage_since[i] = t
            flows.t_outage[i] = flows.outage_since[i] + self.config.outage_timeout_s

    def _link_update(self, rows: np.ndarray, t: float) -> None:
        """Evaluate flow ``rows``' rates at ``t`` (in one call) and update their resources."""
        rate, _, loss = self._rates(rows, t)
        rate = self._broadcast_rates(rows, rate)
        groups = set()
        grp = self.flows.grp
        for i, r, lo in zip(rows.tolist(), rate.tolist(), loss.tolist()):
            self._set_rate(i, r, t, lo)
            groups.add(int(grp[i]))
        for g in groups:
            self.resources.plan(g)

    def _broadcast_rates(self, rows: np.ndarray, rate: np.ndarray) -> np.ndarray:
        """The rates to give ``rows`` evaluated at ``rate`` (`vfedsim.network.broadcast.weakest_rates`)."""
        flows = self.flows
        bc = flows.bc[rows]
        if not (bc >= 0).any():
            return rate
        flows.link[rows] = rate
        out, flows.bc[rows] = weakest_rates(bc, rate)
        return out

    def _leave_broadcast(self, i: int, t: float) -> None:
        """Take flow row ``i`` (not live) out of its broadcast; the rest go on at their weakest member's
        last evaluated rate from ``t``."""
        flows = self.flows
        b = int(flows.bc[i])
        if b < 0:
            return
        flows.bc[i] = -1
        rest = np.flatnonzero(flows.bc[:flows.n] == b)
        if rest.size == 0 or not (flows.fin[rest] < _INF).any():
            return
        rate = float(flows.link[rest].min())
        if rate == float(flows.rate[rest[0]]):
            return
        for r in rest.tolist():
            self._set_rate(r, rate, t)
        self.resources.plan(int(flows.grp[rest[0]]))
