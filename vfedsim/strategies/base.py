"""What every federated strategy is given, and the registry that names strategies.

A strategy is a plain SimPy generator (STYLE.md, 1): it selects, starts client processes, waits for
transfers and compute timeouts, aggregates and evaluates. It reaches the radio network only through the
injected `Network` (strategies/transfer.py), the model only through `Learning`, and reports only through
the `Recorder` hooks. It holds no world math of its own.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..registry import Registry

if TYPE_CHECKING:  # back-references for type checkers only (imports flow one way)
    import simpy

    from ..fleet import Fleet
    from ..policies import Aggregator, Selector
    from ..record import Recorder
    from ..scenario import Scenario
    from ..world.mobility import HighwayMobility
    from .transfer import Network

__all__ = ["Learning", "RoundContext", "StrategyContext", "STRATEGIES"]


class Learning(Protocol):
    """The learning side as a strategy sees it (implemented by `vfedsim.learn.train.Learner`).

    ``version`` is the current global model version (0 = pretrained). ``run_jobs`` trains the given
    jobs, each from the global state of its ``base_version``; a job's result depends only on the job, so
    computing jobs lazily (only those whose update arrived) or eagerly gives identical results.
    """

    version: int

    def payload_bytes(self) -> int: ...
    def train_flops(self, n_samples: int) -> int: ...
    def run_jobs(self, jobs: Sequence[Any]) -> list[Any]: ...
    def evaluate(self, state: Mapping[str, Any] | None = None) -> dict[str, float]: ...
    def global_state(self, version: int | None = None) -> dict[str, Any]: ...
    def commit(self, state: Mapping[str, Any]) -> int: ...
    def release(self, version: int) -> None: ...


@dataclass(frozen=True)
class RoundContext:
    """One synchronous round, as its client processes see it."""

    round: int
    start_s: float  # [s] simulated time the round started
    deadline_at_s: float  # [s] absolute simulated time of the deadline
    base_version: int  # global model version the clients download and train on
    download_bytes: int  # [B]
    upload_bytes: int  # [B]


@dataclass(frozen=True)
class StrategyContext:
    """Everything the engine wires into a strategy (frozen; the parts themselves hold their state)."""

    env: "simpy.Environment"
    scenario: "Scenario"
    network: "Network"
    mobility: "HighwayMobility"
    fleet: "Fleet"
    learner: Learning
    selector: "Selector"
    aggregator: "Aggregator"
    recorder: "Recorder"
    shards: Any  # callable vehicle id -> np.ndarray of sample indices into the data pool

    def compute_time_s(self, vehicle: int | np.ndarray) -> np.ndarray | float:
        """[s] local training time: FLOPs of the vehicle's local work / its device's FLOP/s."""
        flops = np.vectorize(self.learner.train_flops, otypes=[np.float64])(self.fleet.n_samples[vehicle])
        return flops / self.fleet.flops_per_s[vehicle]


STRATEGIES: Registry[type] = Registry("strategy", "strategy.name")
