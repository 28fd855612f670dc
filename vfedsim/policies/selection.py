"""Client selection: which vehicles a synchronous round invites.

A policy is any object with ``select(snapshot, k, rng) -> vehicle ids``, registered by name in
`SELECTORS`; the scenario names it (``strategy.selection.name``) and passes keyword ``options``. User
policies live in the user's own file, loaded with ``vfedsim run --plugins my_policy.py``::

    from vfedsim.policies import SELECTORS

    @SELECTORS.register("fastest")
    class Fastest:
        def select(self, snapshot, k, rng):
            order = np.argsort(snapshot.predicted_time_s, kind="stable")
            return snapshot.vehicle_ids[order[:k]]
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ScenarioError
from ..registry import Registry

__all__ = ["WorldSnapshot", "Selector", "SELECTORS", "RandomSelector", "CoverageAwareSelector", "make_selector"]


@dataclass(frozen=True)
class WorldSnapshot:
    """The read-only view a selection policy sees when a round starts.

    One entry per *candidate*: a vehicle on the road, inside an RSU's coverage, not busy. Arrays are
    aligned with ``vehicle_ids`` (sorted ascending). Predictions assume the vehicle's current speed and
    link rates hold; the network may still prove them wrong.
    """

    time_s: float  # [s] simulated time of selection
    round: int
    deadline_s: float  # [s] round length limit
    download_bytes: int  # [B] global model broadcast to each selected vehicle
    upload_bytes: int  # [B] update each vehicle sends back
    vehicle_ids: np.ndarray  # (M,) int
    position_m: np.ndarray  # (M, 2) [m]
    speed_mps: np.ndarray  # (M,) [m/s]
    serving_rsu: np.ndarray  # (M,) int RSU index
    rate_up_bps: np.ndarray  # (M,) [bit/s] current full-band uplink rate to the serving RSU (no sharing)
    rate_down_bps: np.ndarray  # (M,) [bit/s] current full-band downlink rate
    dwell_time_s: np.ndarray  # (M,) [s] predicted remaining time in the current RSU's coverage
    trip_remaining_s: np.ndarray  # (M,) [s] until the vehicle's trip ends
    compute_time_s: np.ndarray  # (M,) [s] predicted local training time (FLOPs / device FLOP/s)
    device_class: tuple[str, ...]  # (M,) device class names
    participation_count: np.ndarray  # (M,) int rounds this vehicle was selected in before
    last_loss: np.ndarray  # (M,) last reported training loss; NaN if it never reported

    @property
    def predicted_time_s(self) -> np.ndarray:
        """(M,) [s] download + compute + upload time if each vehicle had its RSU to itself."""
        with np.errstate(divide="ignore"):
            down = 8.0 * self.download_bytes / self.rate_down_bps
            up = 8.0 * self.upload_bytes / self.rate_up_bps
        return down + self.compute_time_s + up

    def __len__(self) -> int:
        return int(self.vehicle_ids.shape[0])


class Selector(Protocol):
    """Chooses up to ``k`` vehicles among the snapshot's candidates.

    Returns vehicle ids (a subset of ``snapshot.vehicle_ids``, no repeats); fewer than ``k`` when there
    are fewer candidates, or when the policy judges the others hopeless. ``rng`` is the round's own
    stream: use it and nothing else for randomness, so runs reproduce.
    """

    def select(self, snapshot: WorldSnapshot, k: int, rng: np.random.Generator) -> np.ndarray: ...


SELECTORS: Registry[type] = Registry("selection policy", "strategy.selection.name")


@SELECTORS.register("random")
class RandomSelector:
    """Uniformly random candidates (the FedAvg default)."""

    def select(self, snapshot: WorldSnapshot, k: int, rng: np.random.Generator) -> np.ndarray:
        k = min(k, len(snapshot))
        return np.sort(rng.choice(snapshot.vehicle_ids, size=k, replace=False)) if k else snapshot.vehicle_ids[:0]


@SELECTORS.register("coverage")
class CoverageAwareSelector:
    """Prefer vehicles predicted to finish download + compute + upload while still covered.

    A candidate's predicted round time assumes the RSU's bandwidth is shared by the selected vehicles at
    that RSU (at most ``k``; the number of candidates there if fewer): transfer time x sharers. It is
    *feasible* when that time x ``margin`` fits the remaining time in coverage, the trip and the round
    deadline. Feasible vehicles are drawn at random; when fewer than ``k`` are feasible the rest are
    filled by the largest slack (``min(dwell, trip, deadline) - predicted``) unless ``fill`` is false.
    """

    def __init__(self, *, margin: float = 1.2, fill: bool = True) -> None:
        if margin <= 0:
            raise ValueError("margin must be > 0")
        self.margin = float(margin)
        self.fill = bool(fill)

    def select(self, snapshot: WorldSnapshot, k: int, rng: np.random.Generator) -> np.ndarray:
        if len(snapshot) == 0 or k <= 0:
            return snapshot.vehicle_ids[:0]
        _, inverse, counts = np.unique(snapshot.serving_rsu, return_inverse=True, return_counts=True)
        sharers = np.minimum(counts[inverse], k)
        with np.errstate(divide="ignore"):
            transfer = 8.0 * (snapshot.download_bytes / snapshot.rate_down_bps
                              + snapshot.upload_bytes / snapshot.rate_up_bps)
        predicted = (transfer * sharers + snapshot.compute_time_s) * self.margin
        budget = np.minimum(np.minimum(snapshot.dwell_time_s, snapshot.trip_remaining_s), snapshot.deadline_s)
        slack = budget - predicted
        feasible = np.flatnonzero(slack >= 0)
        if feasible.size >= k:
            chosen = rng.choice(feasible, size=k, replace=False)
        else:
            chosen = feasible
            if self.fill:
                rest = np.setdiff1d(np.arange(len(snapshot)), feasible)
                order = rest[np.argsort(-slack[rest], kind="stable")]
                chosen = np.concatenate([feasible, order[: k - feasible.size]])
        return np.sort(snapshot.vehicle_ids[chosen])


def make_selector(name: str, options: dict[str, Any]) -> Selector:
    """Instantiate the registered policy ``name`` with keyword ``options`` (errors name the key path)."""
    cls = SELECTORS.get(name)
    return _construct(cls, options, "strategy.selection.options")


def _construct(cls: Any, options: dict[str, Any], key_path: str) -> Any:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    allowed = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for key in options:
        if not accepts_any and key not in allowed:
            raise ScenarioError(f"{key_path}.{key}", "unknown option", allowed=allowed, value=key)
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(key_path, str(exc)) from None
