"""Synchronous federated rounds with a deadline (FedAvg-style).

Each round: select up to ``clients_per_round`` candidates, then every selected vehicle downloads the
global trainable state, trains locally (simulated time = FLOPs / device FLOP/s), waits for coverage if it
has none and uploads its update. The round ends when every selected vehicle has arrived or dropped, or at
the deadline, whichever comes first; the server aggregates what arrived, evaluates and records the round.

Training is a job (DESIGN.md, principle 3): in lazy mode (the default) only the jobs whose update arrived
are computed, at aggregation time; in eager mode every job is computed when its simulated compute ends.
Both give identical results because a job depends only on (base version, shard, seed).
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from ..learn.jobs import TrainJob
from ..policies.selection import WorldSnapshot
from ..rng import int_seed, stream
from .base import STRATEGIES, RoundContext, StrategyContext

__all__ = ["SyncStrategy"]


class _Dropped(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@STRATEGIES.register("sync")
class SyncStrategy:
    """The synchronous strategy; ``run()`` is the SimPy generator the engine starts."""

    def __init__(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.scenario.strategy
        self.env = ctx.env
        self.participation = np.zeros(ctx.fleet.n, dtype=np.int64)
        self.last_loss = np.full(ctx.fleet.n, np.nan)

    # ------------------------------------------------------------------------------------------ rounds
    def run(self) -> Generator[simpy.Event, Any, None]:
        ctx, env, cfg = self.ctx, self.env, self.cfg
        rec = ctx.recorder
        rec.round_row(round=0, sim_time_s=env.now, selected=0, arrived=0, dropped=0,
                      metrics=ctx.learner.evaluate(), train_loss=float("nan"))
        duration = ctx.scenario.duration_s
        for r in range(1, cfg.rounds + 1):
            if env.now >= duration:
                break
            rec.set_round(r)
            base = ctx.learner.version
            rc = RoundContext(round=r, start_s=env.now, deadline_at_s=min(env.now + cfg.deadline_s, duration),
                              base_version=base, download_bytes=ctx.learner.payload_bytes(),
                              upload_bytes=ctx.learner.payload_bytes())
            snapshot = self.snapshot(rc)
            chosen = [int(v) for v in ctx.selector.select(snapshot, cfg.clients_per_round,
                                                          stream(ctx.scenario.seed, "selection", r))]
            outcome: dict[int, Any] = {}
            procs = {}
            for v in chosen:
                self.participation[v] += 1
                rec.event("selected", vehicle=v, rsu=ctx.network.serving_rsu(v))
                procs[v] = env.process(self.client(v, rc, outcome))
            timer = env.timeout(rc.deadline_at_s - env.now)
            if procs:
                yield simpy.AnyOf(env, [timer, simpy.AllOf(env, list(procs.values()))])
            else:
                yield timer
            for v, proc in procs.items():
                if proc.is_alive:
                    proc.interrupt("deadline")
            if any(p.is_alive for p in procs.values()):
                yield simpy.AllOf(env, [p for p in procs.values() if p.is_alive])
            arrived = sorted(v for v, o in outcome.items() if o is not None)
            updates = self.updates_for(arrived, outcome)
            for u in updates:
                self.last_loss[u.vehicle] = u.train_loss
            if updates:
                state = ctx.aggregator.aggregate(ctx.learner.global_state(base), updates)
                ctx.learner.commit(state)
                ctx.learner.release(base)
            rec.event("aggregate", nbytes=0, cause="" if updates else "no_updates")
            loss = float(np.mean([u.train_loss for u in updates])) if updates else float("nan")
            last = r == cfg.rounds or env.now >= duration
            metrics = ctx.learner.evaluate() if (r % cfg.eval_every == 0 or last) else {}
            rec.round_row(round=r, sim_time_s=env.now, selected=len(chosen), arrived=len(arrived),
                          dropped=len(chosen) - len(arrived), metrics=metrics, train_loss=loss)

    def updates_for(self, arrived: list[int], outcome: dict[int, Any]) -> list[Any]:
        """The arrived vehicles' updates, computing now the jobs that lazy mode deferred (one batch)."""
        pending = [outcome[v] for v in arrived if isinstance(outcome[v], TrainJob)]
        computed = {u.vehicle: u for u in self.ctx.learner.run_jobs(pending)} if pending else {}
        return [computed[v] if isinstance(outcome[v], TrainJob) else outcome[v] for v in arrived]

    # -------------------------------------------------------------------------------------- selection
    def snapshot(self, rc: RoundContext) -> WorldSnapshot:
        """The read-only view the selection policy sees: candidates on the road and covered now."""
        ctx, now = self.ctx, self.env.now
        state = ctx.mobility.state(now)
        net = ctx.network
        active = np.flatnonzero(state.active).astype(np.int64)
        rsu = net.serving_rsus(active)
        ids, rsu = active[rsu >= 0], rsu[rsu >= 0]
        speed = np.linalg.norm(state.velocity_mps[ids], axis=1)
        return WorldSnapshot(
            time_s=now, round=rc.round, deadline_s=rc.deadline_at_s - now,
            download_bytes=rc.download_bytes, upload_bytes=rc.upload_bytes, vehicle_ids=ids,
            position_m=state.position_m[ids], speed_mps=speed, serving_rsu=rsu,
            rate_up_bps=net.link_rates_bps(ids, "up"), rate_down_bps=net.link_rates_bps(ids, "down"),
            dwell_time_s=net.dwell_times_s(ids),
            trip_remaining_s=ctx.mobility.trips.t_exit_s[ids] - now,
            compute_time_s=np.asarray(ctx.compute_time_s(ids), dtype=np.float64) if ids.size else np.zeros(0),
            device_class=tuple(ctx.fleet.device_name(int(v)) for v in ids),
            participation_count=self.participation[ids].copy(),
            last_loss=self.last_loss[ids].copy(),
        )

    # ------------------------------------------------------------------------------------------ client
    def client(self, v: int, rc: RoundContext, outcome: dict[int, Any]) -> Generator[simpy.Event, Any, None]:
        """One selected vehicle's round: download, compute, (wait for coverage), upload.

        Sets ``outcome[v]`` to the update (eager), the pending job (lazy) or None (dropped).
        """
        ctx, env, rec = self.ctx, self.env, self.ctx.recorder
        outcome[v] = None
        computing_since: float | None = None
        try:
            yield from self.transfer(v, rc.download_bytes, "down")
            seconds = float(ctx.compute_time_s(v))
            trip_left = float(ctx.mobility.trips.t_exit_s[v]) - env.now
            rec.event("compute_start", vehicle=v)
            computing_since = env.now
            if seconds > trip_left:
                yield env.timeout(max(trip_left, 0.0))
                computing_since = None
                self.energy_compute(v, max(trip_left, 0.0), cause="trip_ended")
                raise _Dropped("trip_ended")
            yield env.timeout(seconds)
            computing_since = None
            self.energy_compute(v, seconds, cause="")
            job = TrainJob(vehicle=v, round=rc.round, base_version=rc.base_version,
                           indices=ctx.shards(v), seed=int_seed(ctx.scenario.seed, "train", v, rc.round))
            result: Any = job if self.cfg.lazy else ctx.learner.run_jobs([job])[0]
            wait = ctx.network.time_to_coverage_s(v)
            if wait > 0:
                if not np.isfinite(wait):
                    raise _Dropped("no_coverage")
                rec.event("wait_coverage", vehicle=v, duration_s=wait)
                yield env.timeout(wait)
            yield from self.transfer(v, rc.upload_bytes, "up")
            outcome[v] = result
            rec.event("arrived", vehicle=v, rsu=ctx.network.serving_rsu(v))
        except _Dropped as drop:
            rec.event("dropped", vehicle=v, cause=drop.cause)
        except simpy.Interrupt as stop:
            if computing_since is not None:  # the deadline cut the local training short
                self.energy_compute(v, env.now - computing_since, cause=str(stop.cause))
            ctx.network.cancel(v, str(stop.cause))
            rec.event("dropped", vehicle=v, cause=str(stop.cause))

    def transfer(self, v: int, nbytes: int, direction: str) -> Generator[simpy.Event, Any, None]:
        ctx, rec = self.ctx, self.ctx.recorder
        kind = "download" if direction == "down" else "upload"
        rec.event(f"{kind}_start", vehicle=v, rsu=ctx.network.serving_rsu(v), nbytes=nbytes)
        event = ctx.network.transfer(v, nbytes, direction)
        try:
            res = yield event
        except simpy.Interrupt:
            # the deadline: end the transfer now and account for the bytes it did carry
            ctx.network.cancel(v, "deadline")
            res = event.value if event.triggered else None
            if res is not None:
                self.record_transfer_end(kind, v, res, direction)
            raise
        self.record_transfer_end(kind, v, res, direction)
        if not res.ok:
            raise _Dropped(res.cause or "failed")

    def record_transfer_end(self, kind: str, v: int, res: Any, direction: str) -> None:
        seconds = res.end_s - res.start_s
        energy = float(self.ctx.fleet.radio_power_w[v]) * seconds if direction == "up" else 0.0
        self.ctx.recorder.event(f"{kind}_end", vehicle=v, rsu=res.rsu, nbytes=int(round(res.bytes_done)),
                                cause=res.cause or "", duration_s=seconds, energy_j=energy,
                                direction=direction)

    def energy_compute(self, v: int, seconds: float, *, cause: str) -> None:
        """Record the end of local training (``cause`` empty when it completed) and its energy [J]."""
        energy = float(self.ctx.fleet.compute_power_w[v]) * seconds
        self.ctx.recorder.event("compute_end", vehicle=v, duration_s=seconds, energy_j=energy, cause=cause)
