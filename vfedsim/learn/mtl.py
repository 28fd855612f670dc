"""Multi-task training: the tasks' losses, how they are weighted and how their gradients are combined.

Task losses L_t (`task_losses`): a classification task's mean cross-entropy; a regression task's mean
smooth-L1 (Huber with beta = 1; Girshick, "Fast R-CNN", ICCV 2015, eq. 3) between the head's outputs and
the targets divided by the task's constant `REGRESSION_SCALE` (``ttc`` 10 s, its label range; ``trajectory``
30 m, about the displacement at highway speed in 1 s), so that one unit of output is one scale of error and
the losses of all tasks are of a similar size. The heads' regression outputs are in those units.

Weighting (``learning.mtl.weighting``), over the tasks' losses L_t:

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
- ``cagrad``: conflict-averse gradient descent (Liu, Liu, Jin, Stone and Liu, NeurIPS 2021, Algorithm 1 and
  the authors' code): with g0 the average of the K task gradients and phi = c^2 |g0|^2, find the simplex
  weights w minimising g_w . g0 + sqrt(phi) |g_w| (g_w = sum_i w_i g_i; SLSQP from w = 1/K, as the
  authors do), then d = g0 + sqrt(phi) / |g_w| g_w, rescaled by 1 / (1 + c^2) (their ``rescale=1``). The
  update is K d, so that c = 0 gives the gradient of the plain sum as ``none`` does.

The training loss reported for a job is the unweighted sum of the L_t, whatever the weighting, so that
runs compare.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..scenario import MtlConfig
from .scenes import TASKS, TaskSpec

__all__ = ["task_spec", "REGRESSION_SCALE", "task_loss", "task_losses", "UncertaintyWeighting",
           "fixed_weighting", "pcgrad", "cagrad", "MultiTaskObjective"]

Losses = Mapping[str, torch.Tensor]

REGRESSION_SCALE = {"ttc": 10.0, "trajectory": 30.0}
"""[s] / [m]: a regression task's targets are divided by this constant for its loss (the module docstring)."""


def task_spec(task: str) -> TaskSpec:
    """The `TaskSpec` of ``task`` (vfedsim.learn.scenes.TASKS)."""
    try:
        return TASKS[task]
    except KeyError:
        raise KeyError(f"unknown task {task!r}; known: {sorted(TASKS)}") from None


def task_loss(task: str, output: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Task ``task``'s mean loss: cross-entropy (a classification task, or a task not in `TASKS`), or
    smooth-L1 on targets / `REGRESSION_SCALE` (a regression task)."""
    spec = TASKS.get(task)
    if spec is None or spec.kind == "classification":
        return F.cross_entropy(output, label)
    return F.smooth_l1_loss(output, label.to(output.dtype) / REGRESSION_SCALE.get(task, 1.0))


def task_losses(outputs: Losses, labels: Losses) -> dict[str, torch.Tensor]:
    """{task: mean loss}, in the order of ``outputs``."""
    return {t: task_loss(t, z, labels[t]) for t, z in outputs.items()}


class UncertaintyWeighting(nn.Module):
    """Kendall et al. 2018 (eq. 10): task t's objective is exp(-s_t) L_t + s_t / 2; ``log_vars`` holds s."""

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, losses: Losses) -> dict[str, torch.Tensor]:
        """The weighted objectives of the tasks in ``losses`` (a vehicle trains a subset of the tasks)."""
        s = self.log_vars
        return {t: torch.exp(-s[i]) * losses[t] + 0.5 * s[i] for i, t in enumerate(self.tasks) if t in losses}


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


def cagrad(grads: torch.Tensor, c: float) -> torch.Tensor:
    """CAGrad's update direction (see the module docstring) for ``grads`` (tasks, params): K d / (1 + c^2).

    The weights are found in float64 with scipy's SLSQP (deterministic); c = 0 or one task gives the sum.
    """
    k = grads.shape[0]
    if k == 1 or c == 0:
        return grads.sum(dim=0)
    from scipy.optimize import minimize

    g = grads.to(torch.float64)
    gg = (g @ g.T).numpy()                      # (K, K) Gram matrix
    g0_norm = float(np.sqrt(max(gg.mean(), 0.0) + 1e-8))
    radius = c * g0_norm + 1e-8                 # sqrt(phi) = c |g0|
    b = np.full(k, 1.0 / k)

    def objective(w: np.ndarray) -> float:      # g_w . g0 + sqrt(phi) |g_w|
        return float(w @ gg @ b + radius * np.sqrt(w @ gg @ w + 1e-8))

    res = minimize(objective, b.copy(), bounds=[(0.0, 1.0)] * k,
                   constraints=({"type": "eq", "fun": lambda w: 1.0 - w.sum()},), method="SLSQP")
    w = torch.from_numpy(np.asarray(res.x, dtype=np.float64))
    gw = (w[:, None] * g).sum(dim=0)
    d = g.mean(dim=0) + radius / (float(gw.norm()) + 1e-8) * gw
    return (k * d / (1.0 + c * c)).to(grads.dtype)


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
        if self.cfg.gradient in ("pcgrad", "cagrad") and len(objectives) > 1:
            rows = []
            for t, objective in objectives.items():
                g = torch.autograd.grad(objective, params, retain_graph=True, allow_unused=True)
                rows.append(torch.cat([(x if x is not None else torch.zeros_like(p)).reshape(-1)
                                       for x, p in zip(g, params)]))
            if self.cfg.gradient == "pcgrad":
                update = pcgrad(torch.stack(rows), generator).sum(dim=0)
            else:
                update = cagrad(torch.stack(rows), self.cfg.cagrad_c)
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
