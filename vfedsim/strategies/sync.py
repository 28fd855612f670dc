"""Synchronous federated rounds with a deadline (FedAvg-style), with over-commit and a participation floor.

Each round: select up to ``ceil(clients_per_round x over_commit)`` candidates, then every selected vehicle
downloads the global trainable state, trains locally (simulated time = FLOPs / device FLOP/s), waits for
coverage if it has none and uploads its update. The round ends when ``clients_per_round`` updates have
arrived (the others are cancelled: dropped with cause ``over_commit``, FedScale-style), when every selected
vehicle has arrived or dropped, or at the deadline, whichever comes first. The server aggregates what
arrived, unless fewer than ``min_participants`` (at least one) did: then the model stays as it was and the
``aggregate`` event says why (``no_updates`` or ``min_participants``). It evaluates and records the round.

Training is a job (DESIGN.md, principle 3): in lazy mode (the default) only the jobs whose update arrived
and is aggregated are computed, at aggregation time; in eager mode every job is computed when its
simulated compute ends. Both give identical results because a job depends only on (base version, shard,
seed).
"""
from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from ..rng import stream
from .base import STRATEGIES, ClientStrategy, RoundContext

__all__ = ["SyncStrategy", "RoundOutcome", "over_committed"]


@dataclass
class RoundOutcome:
    """What one round's clients produced: the kept updates in arrival order and who received them."""

    keep: int  # how many arrivals the round keeps; the round ends at the keep-th
    enough: simpy.Event  # triggered at the keep-th arrival
    chosen: list[int] = field(default_factory=list)
    arrivals: dict[int, Any] = field(default_factory=dict)  # vehicle -> update or pending job
    receivers: dict[int, int] = field(default_factory=dict)  # vehicle -> RSU that received its upload


def over_committed(k: int, over_commit: float) -> int:
    """How many vehicles to select to keep ``k``: ceil(k x over_commit), ignoring float noise (10 x 1.1)."""
    return math.ceil(round(k * over_commit, 9))


@STRATEGIES.register("sync")
class SyncStrategy(ClientStrategy):
    """The synchronous strategy; ``run()`` is the SimPy generator the engine starts."""

    # ------------------------------------------------------------------------------------------ rounds
    def run(self) -> Generator[simpy.Event, Any, None]:
        ctx, env, cfg = self.ctx, self.env, self.cfg
        rec = ctx.recorder
        rec.round_row(round=0, sim_time_s=env.now, selected=0, arrived=0, dropped=0,
                      metrics=self.evaluate(0), train_loss=float("nan"))
        duration = ctx.scenario.duration_s
        k = cfg.clients_per_round
        for r in range(1, cfg.rounds + 1):
            if env.now >= duration:
                break
            rec.set_round(r)
            base = ctx.learner.version
            rnd = yield from self.play_round(self.round_context(r, base), select=over_committed(k, cfg.over_commit),
                                             keep=k)
            arrived = sorted(rnd.arrivals)
            enough = len(arrived) >= max(cfg.min_participants, 1)
            updates = self.updates_for([rnd.arrivals[v] for v in arrived]) if enough else []
            for u in updates:
                self.last_loss[u.vehicle] = u.train_loss
            if updates:
                state = ctx.aggregator.aggregate(ctx.learner.global_state(base), updates)
                ctx.learner.commit(state)
                ctx.learner.release(base)
            rec.event("aggregate", nbytes=0,
                      cause="" if updates else ("no_updates" if not arrived else "min_participants"))
            loss = float(np.mean([u.train_loss for u in updates])) if updates else float("nan")
            last = r == cfg.rounds or env.now >= duration
            metrics = self.evaluate(r) if (r % cfg.eval_every == 0 or last) else {}
            rec.round_row(round=r, sim_time_s=env.now, selected=len(rnd.chosen), arrived=len(arrived),
                          dropped=len(rnd.chosen) - len(arrived), metrics=metrics, train_loss=loss)

    def round_context(self, r: int, base_version: int) -> RoundContext:
        now, payload = self.env.now, self.ctx.learner.payload_bytes()
        return RoundContext(round=r, start_s=now, deadline_at_s=min(now + self.cfg.deadline_s,
                                                                    self.ctx.scenario.duration_s),
                            base_version=base_version, download_bytes=payload, upload_bytes=payload)

    def play_round(self, rc: RoundContext, *, select: int, keep: int) -> Generator[simpy.Event, Any, RoundOutcome]:
        """Select ``select`` vehicles and run them until ``keep`` updates arrived, all ended, or the deadline;
        the clients still running then are interrupted (``over_commit`` or ``deadline``)."""
        ctx, env = self.ctx, self.env
        snapshot = self.snapshot(rc)
        rnd = RoundOutcome(keep=keep, enough=env.event())
        rnd.chosen = [int(v) for v in ctx.selector.select(snapshot, select,
                                                          stream(ctx.scenario.seed, "selection", rc.round))]
        procs = {v: self.start_client(v, rc, rnd) for v in rnd.chosen}
        timer = env.timeout(rc.deadline_at_s - env.now)
        if procs:
            yield simpy.AnyOf(env, [timer, simpy.AllOf(env, list(procs.values())), rnd.enough])
        else:
            yield timer
        cause = "over_commit" if rnd.enough.triggered else _deadline_cause(rc, self.cfg.deadline_s)
        for proc in procs.values():
            if proc.is_alive:
                proc.interrupt(cause)
        if any(p.is_alive for p in procs.values()):
            yield simpy.AllOf(env, [p for p in procs.values() if p.is_alive])
        return rnd

    def arrive(self, v: int, result: Any, up: Any, rc: RoundContext, rnd: RoundOutcome) -> None:
        """Keep the update unless the round already has its ``keep`` arrivals (then: ``over_commit``)."""
        if len(rnd.arrivals) >= rnd.keep:
            self.drop(v, "over_commit")
            return
        rnd.arrivals[v] = result
        rnd.receivers[v] = int(up.rsu)
        self.ctx.recorder.event("arrived", vehicle=v, rsu=up.rsu)
        if len(rnd.arrivals) == rnd.keep and not rnd.enough.triggered:
            rnd.enough.succeed()


def _deadline_cause(rc: RoundContext, deadline_s: float) -> str:
    """``deadline``, or ``run_ended`` when the round's deadline was cut short by the scenario's duration."""
    return "run_ended" if rc.deadline_at_s < rc.start_s + deadline_s - 1e-9 else "deadline"
