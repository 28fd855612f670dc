"""Aggregation rules: how the server turns the updates that arrived into the next global state.

An aggregator is any object with ``aggregate(global_state, updates) -> state``, registered by name in
`AGGREGATORS`. ``updates`` carry ``num_samples`` and ``state`` (the trained trainable parameters: LoRA
factors and task heads). Tensor math lives in `vfedsim.learn.aggregate`, imported lazily, so that this
module stays importable without torch.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..registry import Registry
from .selection import _construct

__all__ = ["Aggregator", "AGGREGATORS", "FedAvg", "make_aggregator"]


class Aggregator(Protocol):
    """Combines the updates of one aggregation into the next global trainable state.

    ``updates`` is never empty (with no arrivals the strategy keeps the global state). Must be
    deterministic: the same inputs in the same order give the same bytes.
    """

    def aggregate(self, global_state: Mapping[str, Any], updates: Sequence[Any]) -> dict[str, Any]: ...


AGGREGATORS: Registry[type] = Registry("aggregator", "strategy.aggregation.name")


@AGGREGATORS.register("fedavg")
class FedAvg:
    """FedAvg (McMahan et al., 2017): average of the client states weighted by their sample counts.

    LoRA factors A and B are averaged separately, the common practice.
    """

    def aggregate(self, global_state: Mapping[str, Any], updates: Sequence[Any]) -> dict[str, Any]:
        from ..learn.aggregate import weighted_average

        return weighted_average([u.state for u in updates], [float(u.num_samples) for u in updates])


def make_aggregator(name: str, options: dict[str, Any]) -> Aggregator:
    return _construct(AGGREGATORS.get(name), options, "strategy.aggregation.options")
