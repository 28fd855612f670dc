"""Tensor math of aggregation, as pure functions over state dicts (name -> tensor).

Aggregation *policies* (who is averaged with what weight) live in vfedsim.policies; this module only does the
arithmetic, in float64 and in the key order of the first state, so results are bit-reproducible.

Module-aware aggregation (`module_aware`): vehicles upload only the modules they trained (their sensors'
adapters, their tasks' heads), so the states of one aggregation may hold different keys. Each tensor is
combined over the states that hold it only (its *senders*), with their weights; a tensor nobody sent keeps
the global value. When every state holds every key this is exactly the combination of the full states.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

__all__ = ["weighted_average", "state_delta", "apply_delta", "state_norm", "coordinate_median", "trimmed_mean",
           "pairwise_sq_distances", "krum_scores", "multi_krum", "FEDOPT_VARIANTS", "fedopt_step", "lora_pairs",
           "lora_product_average", "sender_groups", "module_aware"]

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


def _universe(global_state: State, states: Sequence[State]) -> list[str]:
    """The keys of ``global_state``, then those only the states hold (in order of appearance)."""
    keys = dict.fromkeys(global_state)
    for s in states:
        keys.update(dict.fromkeys(k for k in s if k not in keys))
    return list(keys)


def sender_groups(global_state: State, states: Sequence[State]) -> list[tuple[list[str], list[int]]]:
    """The keys that some state holds (in `_universe` order: the global state's first), grouped by which
    states hold them: [(keys, sender indices ascending)], groups in order of their first key."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for name in _universe(global_state, states):
        senders = tuple(i for i, s in enumerate(states) if name in s)
        if senders:
            groups.setdefault(senders, []).append(name)
    return [(keys, list(senders)) for senders, keys in groups.items()]


def module_aware(global_state: State, states: Sequence[State], weights: Sequence[float],
                 combine: Callable[[list[State], list[float]], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``combine(states, weights)`` applied per group of tensors over the states that sent them
    (`sender_groups`); tensors nobody sent keep ``global_state``'s value. Keys: the global state's, then any
    that only the states hold."""
    if len(states) != len(weights):
        raise ValueError(f"{len(states)} states but {len(weights)} weights")
    out: dict[str, torch.Tensor] = dict(global_state)
    for keys, senders in sender_groups(global_state, states):
        out.update(combine([{k: states[i][k] for k in keys} for i in senders], [weights[i] for i in senders]))
    return {k: out[k] for k in _universe(global_state, states)}


# ----------------------------------------------------------------------------------- robust statistics
def _stack(states: Sequence[State], name: str) -> torch.Tensor:
    """(n, *shape) float64 stack of tensor ``name`` across the states."""
    return torch.stack([s[name].to(torch.float64) for s in states])


def coordinate_median(states: Sequence[State]) -> dict[str, torch.Tensor]:
    """Coordinate-wise median of the states, unweighted (Yin et al., ICML 2018, "Byzantine-robust
    distributed learning: towards optimal statistical rates", Def. 1). With an even count the two middle
    values are averaged (``torch.median`` would return the lower one)."""
    if len(states) == 0:
        raise ValueError("coordinate_median of no states")
    _check_keys(states)
    n = len(states)
    out = {}
    for name, first in states[0].items():
        ordered = torch.sort(_stack(states, name), dim=0).values
        mid = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
        out[name] = mid.to(first.dtype)
    return out


def trimmed_mean(states: Sequence[State], trim_fraction: float) -> dict[str, torch.Tensor]:
    """Coordinate-wise beta-trimmed mean, unweighted (Yin et al., ICML 2018, Def. 2): per coordinate,
    drop the ``floor(beta n)`` largest and smallest values and average the rest. ``0 <= beta < 1/2``."""
    if len(states) == 0:
        raise ValueError("trimmed_mean of no states")
    if not 0.0 <= trim_fraction < 0.5:
        raise ValueError(f"trim_fraction must be in [0, 0.5), got {trim_fraction}")
    _check_keys(states)
    n = len(states)
    b = int(trim_fraction * n)
    out = {}
    for name, first in states[0].items():
        ordered = torch.sort(_stack(states, name), dim=0).values
        out[name] = ordered[b:n - b].mean(dim=0).to(first.dtype)
    return out


def _flat(state: State, names: Sequence[str]) -> torch.Tensor:
    return torch.cat([state[n].to(torch.float64).reshape(-1) for n in names])


def pairwise_sq_distances(states: Sequence[State]) -> torch.Tensor:
    """(n, n) float64 squared L2 distances between the states (all tensors flattened together), each pair
    summed directly as ``sum((x_i - x_j)^2)`` (no ``|x|^2 + |y|^2 - 2xy`` cancellation)."""
    _check_keys(states)
    names = list(states[0].keys())
    flat = torch.stack([_flat(s, names) for s in states])
    n = flat.shape[0]
    d = torch.zeros((n, n), dtype=torch.float64)
    for i in range(n - 1):
        row = ((flat[i + 1:] - flat[i]) ** 2).sum(dim=1)
        d[i, i + 1:] = row
        d[i + 1:, i] = row
    return d


def krum_scores(states: Sequence[State], f: int) -> torch.Tensor:
    """Krum scores (Blanchard et al., NeurIPS 2017, "Machine learning with adversaries: Byzantine tolerant
    gradient descent", Sec. 4): for each state, the sum of squared distances to its ``n - f - 2`` nearest
    other states. The guarantee needs ``n > 2f + 2``; below that the neighbour count is clamped to
    ``[1, n - 1]`` (so with two states both scores are their distance). One state scores 0.
    """
    n = len(states)
    if n == 0:
        raise ValueError("krum_scores of no states")
    if n == 1:
        return torch.zeros(1, dtype=torch.float64)
    d = pairwise_sq_distances(states)
    neighbours = min(max(n - f - 2, 1), n - 1)
    scores = torch.empty(n, dtype=torch.float64)
    for i in range(n):
        others = torch.cat([d[i, :i], d[i, i + 1:]])
        scores[i] = torch.sort(others).values[:neighbours].sum()
    return scores


def multi_krum(states: Sequence[State], f: int, m: int) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Multi-Krum (Blanchard et al. 2017, Sec. 4): the unweighted mean of the ``m`` states with the lowest
    Krum scores (``m = 1`` is Krum). Ties go to the earlier state. Returns (mean, chosen indices in order)."""
    scores = krum_scores(states, f)
    m = min(max(int(m), 1), len(states))
    order = sorted(range(len(states)), key=lambda i: (float(scores[i]), i))[:m]
    chosen = sorted(order)
    return weighted_average([states[i] for i in chosen], [1.0] * len(chosen)), chosen


# ------------------------------------------------------------------------------- server optimisers
FEDOPT_VARIANTS = ("adam", "yogi", "adagrad")


def fedopt_step(global_state: State, target: State, m: State | None, v: State | None, *, variant: str,
                eta: float, beta1: float, beta2: float, tau: float
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One server step of FedAdagrad / FedAdam / FedYogi (Reddi et al., ICLR 2021, "Adaptive federated
    optimization", Alg. 2), per coordinate, in float64:

        Delta = target - x                     (pseudo-gradient; target = the clients' average)
        m     = beta1 m + (1 - beta1) Delta
        v     = v + Delta^2                                        (adagrad)
              = v - (1 - beta2) Delta^2 sign(v - Delta^2)          (yogi)
              = beta2 v + (1 - beta2) Delta^2                      (adam)
        x     = x + eta m / (sqrt(v) + tau)

    ``m`` and ``v`` start (None) at 0 and tau^2 (the paper's v_{-1} >= tau^2); no bias correction, as in
    the paper. Returns (new state in the global state's dtypes, m, v) with m and v in float64.
    """
    if variant not in FEDOPT_VARIANTS:
        raise ValueError(f"variant must be one of {FEDOPT_VARIANTS}, got {variant!r}")
    _check_keys([global_state, target])
    new, m_out, v_out = {}, {}, {}
    for name, x in global_state.items():
        x64 = x.to(torch.float64)
        delta = target[name].to(torch.float64) - x64
        m_prev = torch.zeros_like(x64) if m is None else m[name].to(torch.float64)
        v_prev = torch.full_like(x64, tau * tau) if v is None else v[name].to(torch.float64)
        m_new = beta1 * m_prev + (1.0 - beta1) * delta
        d2 = delta * delta
        if variant == "adagrad":
            v_new = v_prev + d2
        elif variant == "yogi":
            v_new = v_prev - (1.0 - beta2) * d2 * torch.sign(v_prev - d2)
        else:
            v_new = beta2 * v_prev + (1.0 - beta2) * d2
        new[name] = (x64 + eta * m_new / (torch.sqrt(v_new) + tau)).to(x.dtype)
        m_out[name], v_out[name] = m_new, v_new
    return new, m_out, v_out


# ----------------------------------------------------------------------------- LoRA-exact averaging
def lora_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """(A key, B key) pairs of the LoRA modules among ``names``: ``...lora_A...`` with the same name but
    ``lora_B`` (peft's ``<module>.lora_A.<adapter>.weight`` / ``<module>.lora_B.<adapter>.weight``).
    An A without its B (or a B without its A) is an error."""
    keys = set(names)
    pairs = []
    for name in names:
        if "lora_A" in name:
            partner = name.replace("lora_A", "lora_B")
            if partner not in keys:
                raise KeyError(f"LoRA factor {name!r} has no matching {partner!r}")
            pairs.append((name, partner))
        elif "lora_B" in name and name.replace("lora_B", "lora_A") not in keys:
            raise KeyError(f"LoRA factor {name!r} has no matching {name.replace('lora_B', 'lora_A')!r}")
    return pairs


def lora_product_average(states: Sequence[State], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """Average LoRA updates through their products, then refactor to rank r.

    For each LoRA module with factors A (r, in) and B (out, r) the adapter adds ``s B A`` to the frozen
    weight (s = alpha / r, the same for every client). Averaging A and B separately gives
    ``avg(B) avg(A) != avg(B A)``; this computes the exact ``dW = sum_i w_i B_i A_i / sum_i w_i`` in float64
    and takes its truncated SVD ``dW ~ U_r S_r V_r^T``: B <- U_r S_r, A <- V_r^T (orthonormal rows, so no
    rank direction of A goes to zero and stops learning). The result is exact whenever rank(dW) <= r (e.g.
    n clients with rank r/n each), and otherwise the best rank-r approximation in Frobenius norm
    (Eckart-Young). Tensors that are not LoRA factors (task heads) are averaged as in `weighted_average`.
    """
    base = weighted_average(states, weights)  # checks states, weights and keys
    w = [float(x) for x in weights]
    total = sum(w)
    for a_name, b_name in lora_pairs(list(states[0].keys())):
        a0, b0 = states[0][a_name], states[0][b_name]
        if a0.dim() != 2 or b0.dim() != 2 or b0.shape[1] != a0.shape[0]:
            raise ValueError(f"LoRA factors {a_name!r} {tuple(a0.shape)} and {b_name!r} {tuple(b0.shape)} "
                             "are not (r, in) and (out, r)")
        r = a0.shape[0]
        product = torch.zeros((b0.shape[0], a0.shape[1]), dtype=torch.float64)
        for s, wi in zip(states, w):
            product += (s[b_name].to(torch.float64) @ s[a_name].to(torch.float64)) * (wi / total)
        u, sigma, vh = torch.linalg.svd(product, full_matrices=False)
        k = min(r, sigma.shape[0])
        new_b = torch.zeros((b0.shape[0], r), dtype=torch.float64)
        new_a = torch.zeros((r, a0.shape[1]), dtype=torch.float64)
        new_b[:, :k] = u[:, :k] * sigma[:k]
        new_a[:k] = vh[:k]
        base[a_name], base[b_name] = new_a.to(a0.dtype), new_b.to(b0.dtype)
    return base
