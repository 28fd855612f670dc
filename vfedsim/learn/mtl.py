"""Multi-task training: how the task losses are weighted and how their gradients are combined.

Weighting (``learning.mtl.weighting``), over the tasks' mean cross-entropies L_t:

- ``sum``: L = sum_t L_t.
- ``fixed``: L = sum_t w_t L_t (tasks without a weight weigh 1).
- ``uncertainty``: L = sum_t exp(-s_t) L_t + s_t / 2, s_t = log sigma_t^2 learned (Kendall, Gal and Cipolla,
  "Multi-task learning using uncertainty to weigh losses", CVPR 2018, eq. 10 for softmax outputs:
  L_t / sigma_t^2 + log sigma_t). s starts at 0 (plain sum), lives in the model as ``mtl.log_vars`` and is
  trained locally and sent with the adapters.

Gradient combination (``learning.mtl.gradient``):

- ``none``: the gradient of the weighted sum.
- ``pcgrad``: projecting conflicting gradients (Yu et al., "Gradient surgery for multi-task learning",
  NeurIPS 2020, Algorithm 1): each task's gradient g_i, for the other tasks j in a random order, loses its
  component along g_j whenever g_i . g_j < 0 (g_i -= (g_i . g_j / |g_j|^2) g_j); the update is the sum of
  the projected gradients. The orders are drawn from the job's ``torch.Generator``, so a job stays a
  function of its seed.

The training loss reported for a job is the unweighted sum of the L_t, whatever the weighting, so that
runs compare.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import MtlConfig

__all__ = ["task_losses", "UncertaintyWeighting", "fixed_weighting", "pcgrad", "MultiTaskObjective"]

Losses = Mapping[str, torch.Tensor]


def task_losses(logits: Losses, labels: Losses) -> dict[str, torch.Tensor]:
    """{task: mean cross-entropy}, in the order of ``logits``."""
    return {t: F.cross_entropy(z, labels[t]) for t, z in logits.items()}


class UncertaintyWeighting(nn.Module):
    """Kendall et al. 2018 (eq. 10): task t's objective is exp(-s_t) L_t + s_t / 2; ``log_vars`` holds s."""

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, losses: Losses) -> dict[str, torch.Tensor]:
        s = self.log_vars
        return {t: torch.exp(-s[i]) * losses[t] + 0.5 * s[i] for i, t in enumerate(self.tasks)}


def fixed_weighting(weights: Mapping[str, float]) -> Callable[[Losses], dict[str, torch.Tensor]]:
    """Task t's objective is weights[t] x L_t (1 x L_t for a task without a weight)."""
    w = dict(weights)
    return lambda losses: {t: float(w.get(t, 1.0)) * loss for t, loss in losses.items()}


def pcgrad(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """PCGrad's projected per-task gradients (Yu et al. 2020, Algorithm 1): ``grads`` is (tasks, params);
    row i comes back without its components that conflict with the other rows, taken in a random order
    (from ``generator``; index order without one). The update direction is the sum of the rows."""
    n = grads.shape[0]
    out = grads.clone()
    sq = (grads * grads).sum(dim=1)
    for i in range(n):
        g = out[i]
        order = torch.randperm(n, generator=generator).tolist() if generator is not None else range(n)
        for j in order:
            if j == i:
                continue
            dot = torch.dot(g, grads[j])
            if dot < 0:
                g.sub_(grads[j], alpha=float(dot / sq[j]))
    return out


class MultiTaskObjective:
    """Computes the weighted multi-task loss of a batch and puts its gradient in the parameters' ``.grad``.

    ``weighting``: the `UncertaintyWeighting` module for ``uncertainty`` (its parameters must be among the
    trained ones), built here for ``sum`` and ``fixed``.
    """

    def __init__(self, cfg: MtlConfig, tasks: Sequence[str], weighting: nn.Module | None = None) -> None:
        self.cfg = cfg
        self.tasks = tuple(tasks)
        if cfg.weighting == "uncertainty":
            if weighting is None:
                raise ValueError("uncertainty weighting needs its UncertaintyWeighting module")
            self.weigh: Callable[[Losses], dict[str, torch.Tensor]] | None = weighting
        elif cfg.weighting == "fixed":
            self.weigh = fixed_weighting(cfg.weights)
        else:
            self.weigh = None

    def backward(self, logits: Losses, labels: Losses, params: Sequence[torch.Tensor],
                 generator: torch.Generator | None = None) -> float:
        """Accumulate the gradient into ``params``' ``.grad`` (set to None first by the caller) and return the
        unweighted sum of the task losses."""
        losses = task_losses(logits, labels)
        objectives = losses if self.weigh is None else self.weigh(losses)
        if self.cfg.gradient == "pcgrad" and len(objectives) > 1:
            rows = []
            for t, objective in objectives.items():
                g = torch.autograd.grad(objective, params, retain_graph=True, allow_unused=True)
                rows.append(torch.cat([(x if x is not None else torch.zeros_like(p)).reshape(-1)
                                       for x, p in zip(g, params)]))
            update = pcgrad(torch.stack(rows), generator).sum(dim=0)
            start = 0
            for p in params:
                p.grad = update[start:start + p.numel()].view_as(p).clone()
                start += p.numel()
        else:
            total = sum(objectives.values())
            total.backward()
            if self.weigh is None:
                return total.item()
        return float(sum(loss.detach() for loss in losses.values()))
