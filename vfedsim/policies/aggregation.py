"""Aggregation rules: how the server turns the updates that arrived into the next global state.

An aggregator is any object with ``aggregate(global_state, updates) -> state``, registered by name in
`AGGREGATORS`; the scenario names it (``strategy.aggregation.name``) and passes keyword ``options``.
``updates`` carry ``num_samples`` and ``state`` (the trained trainable parameters: LoRA factors
``...lora_A...`` / ``...lora_B...`` and task heads). One instance serves a whole run, so a server optimiser
keeps its moments in it. Tensor math lives in `vfedsim.learn.aggregate`, imported lazily, so that this
module stays importable without torch (``vfedsim validate`` never imports it).

Every built-in is module-aware (`vfedsim.learn.aggregate.module_aware`): an update's state holds only the
modules its vehicle trained (its sensors' adapters, its tasks' heads); each tensor is combined over the
updates that hold it (weighted by their samples where the rule weighs), and a tensor no update holds keeps
the global value. Robust rules apply per group of tensors over its senders.

Built-ins: ``fedavg``, ``fedprox`` (sample-weighted averages); ``fedadam``, ``fedyogi``, ``fedadagrad``
(server optimisers); ``median``, ``trimmed_mean``, ``krum``, ``multi_krum`` (robust, unweighted);
``lora_product`` (exact average of the LoRA products B A, refactored to rank r).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..registry import Registry
from .selection import _construct

__all__ = ["Aggregator", "AGGREGATORS", "FedAvg", "FedProx", "FedAdam", "FedYogi", "FedAdagrad", "Median",
           "TrimmedMean", "Krum", "MultiKrum", "LoraProduct", "make_aggregator"]


class Aggregator(Protocol):
    """Combines the updates of one aggregation into the next global trainable state.

    ``updates`` is never empty (with no arrivals the strategy keeps the global state). Must be
    deterministic: the same inputs in the same order give the same bytes. Returns a dict with the keys,
    shapes and dtypes of the updates' states.
    """

    def aggregate(self, global_state: Mapping[str, Any], updates: Sequence[Any]) -> dict[str, Any]: ...


AGGREGATORS: Registry[type] = Registry("aggregator", "strategy.aggregation.name")


def _weights(updates: Sequence[Any]) -> list[float]:
    return [float(u.num_samples) for u in updates]


def _per_module(global_state: Mapping[str, Any], updates: Sequence[Any], combine: Any) -> dict[str, Any]:
    """``combine(states, weights)`` per group of tensors over the updates that sent them (module-aware)."""
    from ..learn.aggregate import module_aware

    return module_aware(global_state, [u.state for u in updates], _weights(updates), combine)


def _number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float inside the given bounds, or a ValueError that names the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    x = float(value)
    if low is not None and (x < low or (low_open and x == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and (x > high or (high_open and x == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {value!r}")
    return x


def _count(name: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


@AGGREGATORS.register("fedavg")
class FedAvg:
    """FedAvg (McMahan et al., 2017): average of the client states weighted by their sample counts.

    LoRA factors A and B are averaged separately, the common practice.
    """

    def aggregate(self, global_state: Mapping[str, Any], updates: Sequence[Any]) -> dict[str, Any]:
        from ..learn.aggregate import weighted_average

        return _per_module(global_state, updates, weighted_average)


@AGGREGATORS.register("fedprox")
class FedProx(FedAvg):
    """FedProx (Li et al., MLSys 2020, "Federated optimization in heterogeneous networks").

    The server side is FedAvg's sample-weighted average; what makes it FedProx is the clients' proximal
    term ``mu/2 |w - w_global|^2``, set on the client side by ``learning.local.prox_mu`` (0 = FedAvg).
    """


class _FedOpt:
    """Adaptive server optimiser (Reddi et al., ICLR 2021, "Adaptive federated optimization", Alg. 2).

    The pseudo-gradient is the sample-weighted average of the client states minus the global state; the
    server applies ``x <- x + eta m / (sqrt(v) + tau)`` with the moments of `learn.aggregate.fedopt_step`
    (kept by this instance across aggregations, float64). Defaults: beta1 = 0.9, beta2 = 0.99 (the values
    the paper fixes); eta = 0.01 and tau = 0.001 from the middle of the grids the paper tunes them over
    (both should be tuned: with v_{-1} = tau^2 the first step moves each coordinate by about eta, for
    adam and yogi, or eta (1 - beta1) for adagrad).
    """

    variant = ""

    def __init__(self, *, eta: float = 1e-2, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3) -> None:
        self.eta = _number("eta", eta, low=0.0, low_open=True)
        self.beta1 = _number("beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = _number("beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.tau = _number("tau", tau, low=0.0, low_open=True)
        self.m: dict[str, Any] | None = None
        self.v: dict[str, Any] | None = None

    def aggregate(self, global_state: Mapping[str, Any], updates: Sequence[Any]) -> dict[str, Any]:
        import torch

        from ..learn.aggregate import fedopt_step, weighted_average

        target = _per_module(global_state, updates, weighted_average)
        if self.m is not None and self.m.keys() != global_state.keys():
            self.m = self.v = None  # a different model: start the moments again
        m_prev, v_prev = self.m, self.v
        new, self.m, self.v = fedopt_step(global_state, target, self.m, self.v, variant=self.variant,
                                          eta=self.eta, beta1=self.beta1, beta2=self.beta2, tau=self.tau)
        sent = set().union(*(u.state.keys() for u in updates))
        for k in global_state:
            if k not in sent:  # nobody sent this module: it and its moments stay as they were
                new[k] = global_state[k]
                self.m[k] = torch.zeros_like(self.m[k]) if m_prev is None else m_prev[k]
                self.v[k] = torch.full_like(self.v[k], self.tau ** 2) if v_prev is None else v_prev[k]
        return new


@AGGREGATORS.register("fedadam")
class FedAdam(_FedOpt):
    __doc__ = "FedAdam: v <- beta2 v + (1 - beta2) Delta^2.\n\n" + (_FedOpt.__doc__ or "")
    variant = "adam"


@AGGREGATORS.register("fedyogi")
class FedYogi(_FedOpt):
    __doc__ = "FedYogi: v <- v - (1 - beta2) Delta^2 sign(v - Delta^2).\n\n" + (_FedOpt.__doc__ or "")
    variant = "yogi"


@AGGREGATORS.register("fedadagrad")
class FedAdagrad(_FedOpt):
    __doc__ = "FedAdagrad: v <- v + Delta^2 (beta2 is not used).\n\n" + (_FedOpt.__doc__ or "")
    variant = "adagrad"


@AGGREGATORS.register("median")
class Median:
    """Coordinate-wise median of the client states (Yin et al., ICML 2018), unweighted: sample counts are
    ignored, since a Byzantine client could lie about them. Even counts average the two middle values."""

    def aggregate(self, global_state: Mapping[str, Any], updates: Sequence[Any]) -> dict[str, Any]:
        from ..learn.aggregate import coordinate_median

        return _per_module(global_state, updates, lambda states, w: coordinate_median(states))


@AGGREGATORS.register("trimmed_mean")
class TrimmedMean:
    """Coordinate-wise trimmed mean (Yin et al., ICML 2018), unweighted: per coordinate the
    ``floor(trim_fraction x n)`` largest and smallest values are dropped and the rest averaged.
    ``trim_fraction`` (beta) in [0, 0.5), default 0.1; with fewer than 1/beta updates nothing is trimmed."""

    def __init__(self, *, trim_fraction: float = 0.1) -> None:
        self.trim_fraction = _number("trim_fraction", trim_fraction, low=0.0, high=0.5, high_open=True)

    def aggregate(self, global_state: Mapping[str, Any], updates: Sequence[Any]) -> dict[str, Any]:
        from ..learn.aggregate import trimmed_mean

        return _per_module(global_state, updates, lambda states, w: trimmed_mean(states, self.trim_fraction))


@AGGREGATORS.register("krum")
class Krum:
    """Krum (Blanchard et al., NeurIPS 2017): the one client state whose ``n - f - 2`` nearest neighbours
    are closest (sum of squared L2 distances over all trainable tensors). ``f`` (default 1) is the number
    of Byzantine clients tolerated. The guarantee needs ``n > 2f + 2`` updates; with fewer the neighbour
    count is clamped to [1, n - 1] and Krum still keeps one state, the most central by that measure (with
    two updates both score the same and the first, lowest vehicle id, is kept; one update is kept as is).
    """

    def __init__(self, *, f: int = 1) -> None:
        self.f = _count("f", f, low=0)

    def aggregate(self, global_state: Mapping[str, Any], updates: Sequence[Any]) -> dict[str, Any]:
        from ..learn.aggregate import multi_krum

        return _per_module(global_state, updates, lambda states, w: multi_krum(states, self.f, 1)[0])


@AGGREGATORS.register("multi_krum")
class MultiKrum:
    """Multi-Krum (Blanchard et al., NeurIPS 2017): the unweighted mean of the ``m`` states with the best
    Krum scores. ``f`` default 1; ``m`` default None = ``n - f`` of the n updates that arrived (at least
    1), and never more than n. Fewer than ``2f + 3`` updates: scores as in ``krum`` (clamped neighbours).
    """

    def __init__(self, *, f: int = 1, m: int | None = None) -> None:
        self.f = _count("f", f, low=0)
        self.m = None if m is None else _count("m", m, low=1)

    def aggregate(self, global_state: Mapping[str, Any], updates: Sequence[Any]) -> dict[str, Any]:
        from ..learn.aggregate import multi_krum

        def combine(states: list, w: list) -> dict[str, Any]:
            m = max(len(states) - self.f, 1) if self.m is None else self.m
            return multi_krum(states, self.f, m)[0]

        return _per_module(global_state, updates, combine)


@AGGREGATORS.register("lora_product")
class LoraProduct:
    """LoRA-exact averaging: the sample-weighted average of each module's product ``B_i A_i`` (what the
    adapter adds to the frozen weight), refactored into rank-r factors by truncated SVD (B <- U_r S_r,
    A <- V_r^T). Exact up to the rank-r truncation (exact when the averaged product has rank <= r; the
    best rank-r approximation otherwise); task heads and other tensors are averaged as in FedAvg. A and B
    are paired by name (``lora_A`` <-> ``lora_B``). The shared scaling alpha / r does not change.
    Compare FedEx-LoRA (Singhal et al., 2024), which folds the residual into the frozen weights instead.
    """

    def aggregate(self, global_state: Mapping[str, Any], updates: Sequence[Any]) -> dict[str, Any]:
        from ..learn.aggregate import lora_product_average

        return _per_module(global_state, updates, lora_product_average)


def make_aggregator(name: str, options: dict[str, Any]) -> Aggregator:
    """Instantiate the registered aggregator ``name`` with keyword ``options`` (errors name the key path)."""
    return _construct(AGGREGATORS.get(name), options, "strategy.aggregation.options")
