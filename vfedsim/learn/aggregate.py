"""Tensor math of aggregation, as pure functions over state dicts (name -> tensor).

Aggregation *policies* (who is averaged with what weight) live in vfedsim.policies; this module only does the
arithmetic, in float64 and in the key order of the first state, so results are bit-reproducible.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["weighted_average", "state_delta", "apply_delta", "state_norm"]

State = Mapping[str, torch.Tensor]


def _check_keys(states: Sequence[State]) -> None:
    keys = list(states[0].keys())
    for i, s in enumerate(states[1:], start=1):
        if set(s.keys()) != set(keys):
            raise KeyError(f"state {i} has different keys from state 0")


def weighted_average(states: Sequence[State], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """sum_i w_i x_i / sum_i w_i, per tensor (FedAvg with w_i = samples: McMahan et al. 2017, Alg. 1).

    Accumulates in float64 in the given order; each result has the dtype of ``states[0]``'s tensor.
    Weights must be non-negative with a positive sum.
    """
    if len(states) == 0:
        raise ValueError("weighted_average of no states")
    if len(states) != len(weights):
        raise ValueError(f"{len(states)} states but {len(weights)} weights")
    w = [float(x) for x in weights]
    if any(x < 0 for x in w) or not sum(w) > 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {w}")
    _check_keys(states)
    total = sum(w)
    out = {}
    for name, first in states[0].items():
        acc = torch.zeros(first.shape, dtype=torch.float64)
        for s, wi in zip(states, w):
            acc += s[name].to(torch.float64) * (wi / total)
        out[name] = acc.to(first.dtype)
    return out


def state_delta(new: State, base: State) -> dict[str, torch.Tensor]:
    """new - base, per tensor (computed in float64, returned in new's dtype)."""
    _check_keys([new, base])
    return {k: (v.to(torch.float64) - base[k].to(torch.float64)).to(v.dtype) for k, v in new.items()}


def apply_delta(base: State, delta: State, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """base + scale x delta, per tensor (computed in float64, returned in base's dtype)."""
    _check_keys([base, delta])
    return {k: (v.to(torch.float64) + scale * delta[k].to(torch.float64)).to(v.dtype) for k, v in base.items()}


def state_norm(state: State) -> float:
    """The L2 norm of all tensors together."""
    return float(torch.sqrt(sum((v.to(torch.float64) ** 2).sum() for v in state.values())))
