"""Asynchronous buffered aggregation: FedBuff (Nguyen et al., "Federated Learning with Buffered Asynchronous
Aggregation", AISTATS 2022, Algorithm 1).

Up to ``concurrency`` vehicles train at once. Whenever fewer do (at the start, when one finishes or
drops, and every ``retry_s`` while none could be chosen) the selection policy picks among the idle
covered vehicles. Each vehicle trains on the global version current when its download *ends* (its base
version). When its update arrives, its staleness is s = current version - base version; an update with
s > ``max_staleness`` is dropped (cause ``stale``), never trained. Every ``buffer_size`` (B) kept arrivals
the server aggregates, at the B-th arrival's simulated time:

* each update's delta from its base is moved onto the current model (x + (y_i - x_base_i));
* the aggregator combines them with weights ``num_samples x staleness_weight(s)``, where
  ``staleness_weight(s) = (1 + s) ** -staleness_exponent`` (1/sqrt(1+s) by default, FedBuff's s(t));
  with ``fedavg`` that is x + the weighted mean of the deltas. (FedBuff divides the sum by B instead of
  by the weights' sum; here staleness weights act relative to the buffer's other updates.)
* x <- x + ``server_lr`` x (aggregate - x).

A vehicle's update must arrive within ``deadline_s`` of its selection (else: dropped, ``deadline``). The
run ends after ``rounds`` aggregations (vehicles still training are dropped, cause ``cancelled``) or at
``duration_s`` (cause ``deadline``).

rounds.csv has one row per aggregation: ``round`` is the aggregation index; ``clients_selected`` and
``clients_dropped`` count selections and drops since the previous row, ``clients_arrived`` the updates
aggregated (B); ``mean_staleness`` is their mean s. Events are tagged with the aggregation in progress.
Jobs stay lazy: only the updates that are aggregated are computed, at aggregation; a global version is
released once no pending job or buffered update refers to it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Mapping
from typing import Any

import numpy as np
import simpy

from ..rng import int_seed, stream
from .base import STRATEGIES, ClientStrategy, RoundContext, ServerUpdate, StrategyContext

__all__ = ["AsyncStrategy", "staleness_weight", "rebase"]


def staleness_weight(staleness: float, exponent: float = 0.5) -> float:
    """FedBuff's polynomial staleness discount (1 + s) ** -exponent; exponent 0.5 gives 1/sqrt(1 + s)."""
    return float((1.0 + staleness) ** -exponent)


def rebase(current: Mapping[str, Any], base: Mapping[str, Any], trained: Mapping[str, Any]) -> dict[str, Any]:
    """current + (trained - base), per tensor the client sent: a stale client's delta applied to the current
    model (a client sends only the modules it trained)."""
    return {k: current[k] + (trained[k] - base[k]) for k in trained}


@STRATEGIES.register("async")
class AsyncStrategy(ClientStrategy):
    """FedBuff over the vehicular network; ``run()`` is the SimPy generator the engine starts."""

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.busy: dict[int, simpy.Process] = {}  # vehicle -> its process, while it trains
        self.stopping: set[int] = set()  # busy vehicles already interrupted
        self.base_of: dict[int, int] = {}  # busy vehicle -> base version, once its download ended
        self.buffer: list[tuple[int, Any, int]] = []  # (vehicle, update or job, base version), arrival order
        self.refs: Counter[int] = Counter()  # version -> pending jobs and buffered updates that need it
        self.held: set[int] = {ctx.learner.version}  # versions not yet released
        self.aggregations = 0
        self.selections = 0  # selection calls so far (each has its own random stream)
        self.selected_since = 0
        self.dropped_since = 0
        self.changed = self.env.event()  # a vehicle finished (re-armed by the main loop)
        self.finished = self.env.event()  # the last aggregation is done

    # ------------------------------------------------------------------------------------- main loop
    def run(self) -> Generator[simpy.Event, Any, None]:
        ctx, env, cfg = self.ctx, self.env, self.cfg
        rec = ctx.recorder
        rec.round_row(round=0, sim_time_s=env.now, selected=0, arrived=0, dropped=0,
                      metrics=self.evaluate(0), train_loss=float("nan"),
                      extra={"mean_staleness": float("nan")})
        rec.set_round(1)
        duration = ctx.scenario.duration_s
        end = env.timeout(max(duration - env.now, 0.0))
        while self.aggregations < cfg.rounds and env.now < duration:
            self.changed = env.event()
            self.fill()
            waits = [self.changed, self.finished, end]
            if len(self.busy) < cfg.concurrency:
                waits.append(env.timeout(cfg.retry_s))
            yield simpy.AnyOf(env, waits)
        cause = "run_ended" if env.now >= duration else "cancelled"
        procs = [self.busy[v] for v in sorted(self.busy)]
        for v in sorted(self.busy):
            self.stop(v, cause)
        alive = [p for p in procs if p.is_alive]
        if alive:
            yield simpy.AllOf(env, alive)

    def fill(self) -> None:
        """Select idle covered vehicles until ``concurrency`` train (or the policy picks no more)."""
        ctx, env, cfg = self.ctx, self.env, self.cfg
        free = cfg.concurrency - len(self.busy)
        if free <= 0:
            return
        payload = ctx.learner.payload_bytes()
        rc = RoundContext(round=self.aggregations + 1, start_s=env.now,
                          deadline_at_s=min(env.now + cfg.deadline_s, ctx.scenario.duration_s),
                          base_version=ctx.learner.version, download_bytes=payload, upload_bytes=payload)
        # a deadline cut short by the end of the run is not the vehicle's failure
        cause = "run_ended" if rc.deadline_at_s < env.now + cfg.deadline_s - 1e-9 else "deadline"
        snapshot = self.snapshot(rc, exclude=sorted(self.busy))
        if not len(snapshot):
            return
        chosen = ctx.selector.select(snapshot, free, stream(ctx.scenario.seed, "async-selection", self.selections))
        self.selections += 1
        for v in (int(x) for x in chosen):
            self.selected_since += 1
            self.busy[v] = self.start_client(v, rc, None)
            env.process(self.watch(v, self.busy[v], rc.deadline_at_s, cause))

    def watch(self, v: int, proc: simpy.Process, deadline_at_s: float,
              cause: str = "deadline") -> Generator[simpy.Event, Any, None]:
        """Drop vehicle ``v`` (with ``cause``) if its update has not arrived by ``deadline_at_s``."""
        yield simpy.AnyOf(self.env, [self.env.timeout(max(deadline_at_s - self.env.now, 0.0)), proc])
        if proc.is_alive:
            self.stop(v, cause)

    def stop(self, v: int, cause: str) -> None:
        proc = self.busy.get(v)
        if proc is not None and proc.is_alive and v not in self.stopping:
            self.stopping.add(v)
            proc.interrupt(cause)

    # --------------------------------------------------------------------------------- client hooks
    def base_version(self, v: int, rc: RoundContext, down: Any) -> int:
        base = self.ctx.learner.version
        self.base_of[v] = base
        self.refs[base] += 1
        self.held.add(base)
        return base

    def job_seed(self, v: int, rc: RoundContext) -> int:
        return int_seed(self.ctx.scenario.seed, "train-async", v, int(self.participation[v]))

    def arrive(self, v: int, result: Any, up: Any, rc: RoundContext, outcome: Any) -> None:
        cfg = self.cfg
        if self.aggregations >= cfg.rounds:  # arrived in the same instant as the last aggregation
            self.drop(v, "cancelled")
            return
        base = self.base_of[v]
        if cfg.max_staleness is not None and self.ctx.learner.version - base > cfg.max_staleness:
            self.drop(v, "stale")
            return
        self.buffer.append((v, result, self.base_of.pop(v)))  # the buffer now holds its reference
        self.ctx.recorder.event("arrived", vehicle=v, rsu=up.rsu)
        if len(self.buffer) >= cfg.buffer_size:
            self.aggregate()

    def drop(self, v: int, cause: str) -> None:
        super().drop(v, cause)
        self.dropped_since += 1

    def client_done(self, v: int, rc: RoundContext, outcome: Any) -> None:
        self.busy.pop(v, None)
        self.stopping.discard(v)
        base = self.base_of.pop(v, None)
        if base is not None:  # dropped after its download: its job is abandoned
            self.refs[base] -= 1
            self.release_unreferenced()
        if not self.changed.triggered:
            self.changed.succeed()

    # ---------------------------------------------------------------------------------- aggregation
    def aggregate(self) -> None:
        """Aggregate the buffer now (the B-th arrival), commit, evaluate and record the row."""
        ctx, cfg, learner, rec = self.ctx, self.cfg, self.ctx.learner, self.ctx.recorder
        entries, self.buffer = self.buffer, []
        current = learner.version
        x = learner.global_state(current)
        updates = self.updates_for([result for _, result, _ in entries])
        staleness = [current - base for _, _, base in entries]
        weighted = []
        for (v, _, base), u, s in zip(entries, updates, staleness):
            state = u.state if s == 0 else rebase(x, learner.global_state(base), u.state)
            weight = u.num_samples * staleness_weight(s, cfg.staleness_exponent)
            weighted.append(ServerUpdate(vehicle=v, num_samples=weight, state=state, train_loss=u.train_loss,
                                         base_version=base))
            self.last_loss[v] = u.train_loss
        new = ctx.aggregator.aggregate(x, weighted)
        if cfg.server_lr != 1.0:
            new = {k: x[k] + cfg.server_lr * (new[k] - x[k]) for k in x}
        version = learner.commit(new)
        self.held.add(version)
        for _, _, base in entries:
            self.refs[base] -= 1
        self.release_unreferenced()
        self.aggregations += 1
        rec.event("aggregate", nbytes=0)
        last = self.aggregations == cfg.rounds
        metrics = self.evaluate(self.aggregations) if (self.aggregations % cfg.eval_every == 0 or last) else {}
        rec.round_row(round=self.aggregations, sim_time_s=self.env.now, selected=self.selected_since,
                      arrived=len(entries), dropped=self.dropped_since, metrics=metrics,
                      train_loss=float(np.mean([u.train_loss for u in updates])),
                      extra={"mean_staleness": float(np.mean(staleness))})
        self.selected_since = self.dropped_since = 0
        rec.set_round(self.aggregations + 1)
        if last and not self.finished.triggered:
            self.finished.succeed()

    def release_unreferenced(self) -> None:
        """Release every held version that is not current and that no pending job or buffered update needs."""
        current = self.ctx.learner.version
        for version in sorted(self.held):
            if version != current and self.refs[version] <= 0:
                self.ctx.learner.release(version)
                self.held.discard(version)
                self.refs.pop(version, None)
