"""Hierarchical federated learning: vehicles -> RSU (edge) aggregation -> cloud aggregation (HierFAVG,
Liu et al., "Client-Edge-Cloud Hierarchical Federated Learning", ICC 2020), with vehicles that move.

Every round is a synchronous round (selection, deadline: `SyncStrategy.play_round`) whose updates are
aggregated at the RSUs:

* a selected vehicle trains from the edge model of the RSU that completes its download (the cloud model
  when that RSU has not aggregated since the last cloud aggregation);
* its update belongs to the RSU that *receives* it, the one serving it when its upload ends: a vehicle
  that drove on to the next RSU during the round joins that RSU's aggregate (events.csv: ``arrived`` rows
  carry the receiving RSU in ``rsu``);
* at the end of every round each RSU with arrivals aggregates them into its edge model (``aggregate``
  event with its ``rsu``);
* every ``cloud_every`` rounds (and after the last round) the cloud aggregates the edge models that
  changed since its last aggregation, each weighted by the samples of the updates it absorbed since then,
  each edge model contributing only the modules its vehicles sent (module-aware, as for vehicles),
  after ``backhaul_latency_s`` of simulated time (``aggregate`` event with ``rsu`` -1); the new cloud model
  becomes every RSU's edge model.

Edge models are committed to the learner as versions (they are just states), so lazy jobs can train from
them; each RSU and the cloud has its own copy of the configured aggregator (server optimisers keep
separate state). ``rounds`` counts cloud aggregations: a run has up to ``rounds x cloud_every`` rows
after row 0, one per edge round, with ``cloud`` = 1 on the rows that ended with a cloud aggregation.
Metrics are those of the cloud model, evaluated on cloud rows only (every ``eval_every``-th cloud
aggregation and the last); edge rows leave them empty.
"""
from __future__ import annotations

import copy
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from .base import STRATEGIES, RoundContext, ServerUpdate, StrategyContext
from .sync import SyncStrategy

__all__ = ["HierarchicalStrategy"]


@STRATEGIES.register("hierarchical")
class HierarchicalStrategy(SyncStrategy):
    """Edge aggregation every round, cloud aggregation every ``cloud_every`` rounds."""

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.cloud_version = ctx.learner.version
        self.edge_version: dict[int, int] = {}  # RSU -> its edge model's version since the last cloud round
        self.edge_samples: dict[int, float] = {}  # RSU -> samples absorbed since the last cloud round
        self.edge_keys: dict[int, set[str]] = {}  # RSU -> tensors its vehicles sent since the last cloud round
        self.edge_aggregators: dict[int, Any] = {}
        self.cloud_aggregator = copy.deepcopy(ctx.aggregator)
        self.held: set[int] = {self.cloud_version}

    def run(self) -> Generator[simpy.Event, Any, None]:
        ctx, env, cfg = self.ctx, self.env, self.cfg
        rec, learner = ctx.recorder, ctx.learner
        rec.round_row(round=0, sim_time_s=env.now, selected=0, arrived=0, dropped=0,
                      metrics=self.evaluate(0, learner.global_state(self.cloud_version)), train_loss=float("nan"),
                      extra={"cloud": 1})
        duration = ctx.scenario.duration_s
        total = cfg.rounds * cfg.cloud_every
        clouds = 0
        for r in range(1, total + 1):
            if env.now >= duration:
                break
            rec.set_round(r)
            rnd = yield from self.play_round(self.round_context(r, self.cloud_version),
                                             select=cfg.clients_per_round, keep=cfg.clients_per_round)
            arrived = sorted(rnd.arrivals)
            updates = self.updates_for([rnd.arrivals[v] for v in arrived])
            for u in updates:
                self.last_loss[u.vehicle] = u.train_loss
            self.aggregate_edges(arrived, updates, rnd.receivers)
            last = r == total or env.now >= duration
            cloud = r % cfg.cloud_every == 0 or last
            metrics: dict[str, float] = {}
            if cloud:
                yield from self.aggregate_cloud()
                clouds += 1
                if clouds % cfg.eval_every == 0 or last:
                    metrics = self.evaluate(r, learner.global_state(self.cloud_version))
            self.release_unused()
            rec.round_row(round=r, sim_time_s=env.now, selected=len(rnd.chosen), arrived=len(arrived),
                          dropped=len(rnd.chosen) - len(arrived), metrics=metrics,
                          train_loss=float(np.mean([u.train_loss for u in updates])) if updates else float("nan"),
                          extra={"cloud": int(cloud)})

    def base_version(self, v: int, rc: RoundContext, down: Any) -> int:
        """The edge model of the RSU that completed the download (the cloud model if it has none)."""
        return self.edge_version.get(int(down.rsu), self.cloud_version)

    def aggregate_edges(self, arrived: list[int], updates: list[Any], receivers: dict[int, int]) -> None:
        """Each receiving RSU aggregates its arrivals (in vehicle order) into its edge model."""
        learner = self.ctx.learner
        by_rsu: dict[int, list[Any]] = {}
        for v, u in zip(arrived, updates):
            by_rsu.setdefault(receivers[v], []).append(u)
        for rsu in sorted(by_rsu):
            ups = by_rsu[rsu]
            aggregator = self.edge_aggregators.setdefault(rsu, copy.deepcopy(self.ctx.aggregator))
            state = aggregator.aggregate(learner.global_state(self.edge_version.get(rsu, self.cloud_version)), ups)
            self.edge_version[rsu] = learner.commit(state)
            self.held.add(self.edge_version[rsu])
            self.edge_samples[rsu] = self.edge_samples.get(rsu, 0.0) + float(sum(u.num_samples for u in ups))
            self.edge_keys.setdefault(rsu, set()).update(*(u.state.keys() for u in ups))
            self.ctx.recorder.event("aggregate", rsu=rsu, nbytes=0)

    def aggregate_cloud(self) -> Generator[simpy.Event, Any, None]:
        """The cloud averages the edge models that changed, weighted by their samples, after the backhaul."""
        learner, latency = self.ctx.learner, self.cfg.backhaul_latency_s
        if latency > 0:
            yield self.env.timeout(latency)
        edges = sorted(self.edge_version)
        if edges:
            models = [ServerUpdate(vehicle=-1, num_samples=self.edge_samples[rsu],
                                   state={k: t for k, t in learner.global_state(self.edge_version[rsu]).items()
                                          if k in self.edge_keys.get(rsu, ())},
                                   train_loss=float("nan"), base_version=self.cloud_version) for rsu in edges]
            state = self.cloud_aggregator.aggregate(learner.global_state(self.cloud_version), models)
            self.cloud_version = learner.commit(state)
            self.held.add(self.cloud_version)
        self.ctx.recorder.event("aggregate", rsu=-1, nbytes=0, duration_s=latency,
                                cause="" if edges else "no_updates")
        self.edge_version.clear()
        self.edge_samples.clear()
        self.edge_keys.clear()

    def release_unused(self) -> None:
        """Release the versions that are neither the cloud model nor an edge model (no job is pending
        between rounds)."""
        keep = {self.cloud_version, *self.edge_version.values()}
        for version in sorted(self.held - keep):
            self.ctx.learner.release(version)
            self.held.discard(version)
