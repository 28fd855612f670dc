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
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import ScenarioError
from ..registry import Registry

__all__ = ["WorldSnapshot", "Deferred", "Selector", "SELECTORS", "RandomSelector", "CoverageAwareSelector", "AllSelector",
           "ChannelSelector", "DeadlineSelector", "OortSelector", "PowerOfChoiceSelector", "FairSelector",
           "RsuBalancedSelector", "make_selector"]


class Deferred:
    """A `WorldSnapshot` field whose value is computed when it is first read (then kept): the strategy sets the
    costly per-candidate link quantities this way, so that a policy that never reads them (``random``) does
    not pay for them over thousands of candidates. ``compute`` must not depend on when it is called (the
    network's `vfedsim.network.queries.LinkView` captures the instant)."""

    __slots__ = ("compute",)

    def __init__(self, compute: Any) -> None:
        self.compute = compute


@dataclass(frozen=True)
class WorldSnapshot:
    """The read-only view a selection policy sees when a round starts.

    One entry per *candidate*: a vehicle on the road, inside an RSU's coverage, not busy. Arrays are
    aligned with ``vehicle_ids`` (sorted ascending). Predictions assume the vehicle's current speed and
    link rates hold; the network may still prove them wrong. ``download_bytes`` and ``upload_bytes`` are
    the whole trainable state; a vehicle downloads and uploads only its own modules (its sensors' adapters,
    its tasks' heads): ``vehicle_download_bytes`` / ``vehicle_upload_bytes`` are each candidate's own sizes,
    and `predicted_time_s` uses them. ``compute_time_s`` is the vehicle's own: the FLOPs of the forward and
    backward passes its job runs (its modalities, its tasks existing this round). ``snr_up_db`` /
    ``snr_down_db`` are the current instantaneous SNRs [dB] of its links to the serving RSU (the SINR with
    co-channel interference; +inf on an ideal network; empty when the network cannot tell). The link fields
    (rates, SNRs, dwell times) may be `Deferred`: computed for the snapshot's instant when first read.

    Learning side (per candidate; empty tuples / arrays when the strategy does not know them):
    ``sensors`` the modalities of its sensor suite (``fleet.sensor_suites``), ``tasks`` its task set
    (``fleet.task_sets``; empty: every task of ``learning.tasks``), ``n_samples`` its local shard size
    [samples], ``last_selected_round`` the round (async: aggregation) it was last selected in, -1 if never.
    """

    time_s: float  # [s] simulated time of selection
    round: int
    deadline_s: float  # [s] round length limit
    download_bytes: int  # [B] the whole trainable state (a full-suite vehicle's download)
    upload_bytes: int  # [B] the whole trainable state (a full-suite vehicle's upload)
    vehicle_ids: np.ndarray  # (M,) int
    position_m: np.ndarray  # (M, 2) [m]
    speed_mps: np.ndarray  # (M,) [m/s]
    serving_rsu: np.ndarray  # (M,) int RSU index
    rate_up_bps: np.ndarray  # (M,) [bit/s] current full-band uplink rate to the serving RSU (no sharing)
    rate_down_bps: np.ndarray  # (M,) [bit/s] current full-band downlink rate
    dwell_time_s: np.ndarray  # (M,) [s] predicted remaining time in the current RSU's coverage
    trip_remaining_s: np.ndarray  # (M,) [s] until the vehicle's trip ends
    compute_time_s: np.ndarray  # (M,) [s] predicted local training time (its job's FLOPs / device FLOP/s)
    device_class: tuple[str, ...]  # (M,) device class names
    participation_count: np.ndarray  # (M,) int rounds this vehicle was selected in before
    last_loss: np.ndarray  # (M,) last reported training loss; NaN if it never reported
    sensors: tuple[tuple[str, ...], ...] = ()  # (M,) modalities of each vehicle's sensor suite
    tasks: tuple[tuple[str, ...], ...] = ()  # (M,) each vehicle's task set (empty: all tasks)
    n_samples: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (M,) [samples]
    last_selected_round: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (M,) -1: never
    snr_up_db: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,) [dB] uplink SNR now
    snr_down_db: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,) [dB] downlink SNR now
    vehicle_download_bytes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (M,) [B]
    vehicle_upload_bytes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (M,) [B]

    @property
    def download_bytes_each(self) -> np.ndarray:
        """(M,) [B] each candidate's download: ``vehicle_download_bytes`` when given, else the whole state."""
        if self.vehicle_download_bytes.shape == (len(self),):
            return self.vehicle_download_bytes
        return np.full(len(self), self.download_bytes, dtype=np.int64)

    @property
    def upload_bytes_each(self) -> np.ndarray:
        """(M,) [B] each candidate's upload: ``vehicle_upload_bytes`` when given, else the whole state."""
        if self.vehicle_upload_bytes.shape == (len(self),):
            return self.vehicle_upload_bytes
        return np.full(len(self), self.upload_bytes, dtype=np.int64)

    @property
    def predicted_time_s(self) -> np.ndarray:
        """(M,) [s] download + compute + upload time if each vehicle had its RSU to itself."""
        with np.errstate(divide="ignore"):
            down = 8.0 * self.download_bytes_each / self.rate_down_bps
            up = 8.0 * self.upload_bytes_each / self.rate_up_bps
        return down + self.compute_time_s + up

    def __len__(self) -> int:
        return int(self.vehicle_ids.shape[0])

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if type(value) is Deferred:  # a field computed on first read (see `Deferred`)
            value = value.compute()
            object.__setattr__(self, name, value)
        return value


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
        slack = _slack_s(snapshot, k, self.margin)
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


@SELECTORS.register("all")
class AllSelector:
    """Every candidate (every vehicle on the road, covered and not busy); ``k`` is ignored. The full
    participation baseline of FedAvg's analysis (McMahan et al., 2017, C = 1)."""

    def select(self, snapshot: WorldSnapshot, k: int, rng: np.random.Generator) -> np.ndarray:
        return np.sort(snapshot.vehicle_ids)


@SELECTORS.register("channel")
class ChannelSelector:
    """The ``k`` candidates with the best current channel: highest full-band uplink rate to the serving
    RSU (the SNR proxy the snapshot carries; rate is monotone in SNR until the spectral-efficiency cap,
    where ties are broken at random). Cf. the proportional-fair scheduler of Yang, Liu, Quek & Poor,
    "Scheduling policies for federated learning in wireless networks", IEEE Trans. Commun. 2020, which
    with statistically identical links picks the best instantaneous SNRs."""

    def select(self, snapshot: WorldSnapshot, k: int, rng: np.random.Generator) -> np.ndarray:
        if len(snapshot) == 0 or k <= 0:
            return snapshot.vehicle_ids[:0]
        return np.sort(snapshot.vehicle_ids[_top(snapshot.rate_up_bps, k, rng)])


@SELECTORS.register("deadline")
class DeadlineSelector:
    """Only vehicles predicted to finish in time: download + compute + upload, with the RSU's bandwidth
    shared as in ``coverage``, times ``margin`` (default 1.2), must fit the round deadline, the remaining
    time in coverage and the remaining trip. Like ``coverage`` with ``fill: false``, but the feasible
    vehicles are ranked by slack (``min(dwell, trip, deadline) - margin x predicted``, largest first;
    ties at random) instead of drawn at random. Returns fewer than ``k`` (possibly none) when fewer are
    feasible. Deadline-based selection in the spirit of FedCS (Nishio & Yonetani, ICC 2019)."""

    def __init__(self, *, margin: float = 1.2) -> None:
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin > 0:
            raise ValueError(f"margin must be a number > 0, got {margin!r}")
        self.margin = float(margin)

    def select(self, snapshot: WorldSnapshot, k: int, rng: np.random.Generator) -> np.ndarray:
        if len(snapshot) == 0 or k <= 0:
            return snapshot.vehicle_ids[:0]
        slack = _slack_s(snapshot, k, self.margin)
        feasible = np.flatnonzero(slack >= 0)
        return np.sort(snapshot.vehicle_ids[feasible[_top(slack[feasible], k, rng)]])


@SELECTORS.register("oort")
class OortSelector:
    """Oort (Lai et al., OSDI 2021, "Oort: efficient federated learning via guided participant selection",
    Sec. 4 and Alg. 1), simplified to what the snapshot shows.

    Utility of an explored vehicle (one that reported a loss) = statistical x system utility:

    - statistical: Oort's ``|B_i| sqrt(mean_k loss_k^2)`` approximated by the last reported mean training
      loss (the snapshot has no per-vehicle sample count; the scenarios' shards are all the same size, so
      the factor |B_i| would not change the ranking);
    - system: ``(T / t_i)^alpha`` when the predicted round time ``t_i`` (download + compute + upload, RSU to
      itself: ``snapshot.predicted_time_s``) exceeds the preferred duration T, else 1.

    Of the ``k`` slots, ``round(epsilon x k)`` go to unexplored vehicles (NaN loss) drawn at random, the
    rest to the explored vehicles with the highest utility (ties at random); either side fills the other's
    slots when it runs short. Oort decays epsilon and adds a staleness bonus and a utility cut-off with
    sampling; here epsilon is fixed and the top utilities are taken.

    Pacer: T = ``preferred_duration_s`` (default: the round's deadline) + relaxation. After every
    ``pacer_window`` rounds (from 2 windows on), if the statistical utility summed over the exploited picks
    of the last window is below that of the window before, the relaxation grows by ``pacer_step_s`` [s],
    admitting slower vehicles with more to learn (Oort Alg. 1, lines 4-6). One instance per run.
    """

    def __init__(self, *, epsilon: float = 0.2, alpha: float = 2.0, preferred_duration_s: float | None = None,
                 pacer_step_s: float = 5.0, pacer_window: int = 5) -> None:
        self.epsilon = _option_number("epsilon", epsilon, 0.0, 1.0)
        self.alpha = _option_number("alpha", alpha, 0.0)
        self.preferred_duration_s = (None if preferred_duration_s is None
                                     else _option_number("preferred_duration_s", preferred_duration_s, 0.0,
                                                         strict=True))
        self.pacer_step_s = _option_number("pacer_step_s", pacer_step_s, 0.0)
        if isinstance(pacer_window, bool) or not isinstance(pacer_window, int) or pacer_window < 1:
            raise ValueError(f"pacer_window must be an integer >= 1, got {pacer_window!r}")
        self.pacer_window = pacer_window
        self.relax_s = 0.0  # [s] added to the preferred duration by the pacer
        self.history: list[float] = []  # statistical utility of each round's exploited picks

    def utility(self, snapshot: WorldSnapshot) -> np.ndarray:
        """(M,) Oort utility of each candidate (NaN for unexplored ones)."""
        preferred = self.preferred_duration_s if self.preferred_duration_s is not None else snapshot.deadline_s
        t_pref = preferred + self.relax_s
        t = snapshot.predicted_time_s
        with np.errstate(divide="ignore", invalid="ignore"):
            system = np.where(t > t_pref, (t_pref / t) ** self.alpha, 1.0)
        return snapshot.last_loss * system

    def select(self, snapshot: WorldSnapshot, k: int, rng: np.random.Generator) -> np.ndarray:
        n = len(snapshot)
        if n == 0 or k <= 0:
            return snapshot.vehicle_ids[:0]
        k = min(k, n)
        explored = np.flatnonzero(np.isfinite(snapshot.last_loss))
        unexplored = np.flatnonzero(~np.isfinite(snapshot.last_loss))
        n_explore = min(int(np.floor(self.epsilon * k + 0.5)), unexplored.size)
        n_exploit = min(k - n_explore, explored.size)
        n_explore = min(k - n_exploit, unexplored.size)
        util = self.utility(snapshot)
        exploit = explored[_top(util[explored], n_exploit, rng)]
        explore = rng.choice(unexplored, size=n_explore, replace=False) if n_explore else unexplored[:0]
        self._pace(float(np.sum(snapshot.last_loss[exploit])))
        return np.sort(snapshot.vehicle_ids[np.concatenate([exploit, explore])])

    def _pace(self, utility_sum: float) -> None:
        self.history.append(utility_sum)
        w = self.pacer_window
        if len(self.history) >= 2 * w and len(self.history) % w == 0:
            if sum(self.history[-w:]) < sum(self.history[-2 * w:-w]):
                self.relax_s += self.pacer_step_s


@SELECTORS.register("power_of_choice")
class PowerOfChoiceSelector:
    """Power-of-choice (Cho, Wang & Joshi, AISTATS 2022 / arXiv 2010.01243, 2020): draw ``d`` candidates
    uniformly at random without replacement, keep the ``k`` with the highest last reported training loss.
    A vehicle that never reported (NaN loss) counts as +inf, so new vehicles get tried; ties at random.
    ``d`` default None = 2k; it is clamped to [k, candidates]. The paper draws the d candidates with
    probability proportional to their data size; the snapshot has no sample counts (equal shards here)."""

    def __init__(self, *, d: int | None = None) -> None:
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1):
            raise ValueError(f"d must be an integer >= 1 (or null for 2k), got {d!r}")
        self.d = d

    def select(self, snapshot: WorldSnapshot, k: int, rng: np.random.Generator) -> np.ndarray:
        n = len(snapshot)
        if n == 0 or k <= 0:
            return snapshot.vehicle_ids[:0]
        d = min(max(2 * k if self.d is None else self.d, k), n)
        sampled = rng.choice(n, size=d, replace=False)
        loss = np.where(np.isnan(snapshot.last_loss), np.inf, snapshot.last_loss)
        return np.sort(snapshot.vehicle_ids[sampled[_top(loss[sampled], k, rng)]])


@SELECTORS.register("fair")
class FairSelector:
    """Least served first: the ``k`` candidates with the lowest participation count (rounds selected in
    before), ties at random, so participation evens out over time (round-robin-like fairness; cf. the
    age-based scheduling of Yang et al., "Age-based scheduling policy for federated learning in mobile
    edge networks", ICASSP 2020)."""

    def select(self, snapshot: WorldSnapshot, k: int, rng: np.random.Generator) -> np.ndarray:
        if len(snapshot) == 0 or k <= 0:
            return snapshot.vehicle_ids[:0]
        score = -np.asarray(snapshot.participation_count, dtype=np.float64)
        return np.sort(snapshot.vehicle_ids[_top(score, k, rng)])


@SELECTORS.register("rsu_balanced")
class RsuBalancedSelector:
    """Spread the ``k`` picks over the serving RSUs round-robin, so no RSU's bandwidth is shared by many
    while another idles: the RSUs are visited in a random order, one random candidate from each per turn,
    until ``k`` are chosen (an RSU that runs out is skipped). Picks per RSU differ by at most one unless
    an RSU has too few candidates. Load balancing across edge servers as in hierarchical FL (e.g.
    Liu et al., "Client-edge-cloud hierarchical federated learning", ICC 2020)."""

    def select(self, snapshot: WorldSnapshot, k: int, rng: np.random.Generator) -> np.ndarray:
        n = len(snapshot)
        if n == 0 or k <= 0:
            return snapshot.vehicle_ids[:0]
        rsus = np.unique(snapshot.serving_rsu)
        rsu_rank = np.empty(rsus.size, dtype=np.int64)
        rsu_rank[rng.permutation(rsus.size)] = np.arange(rsus.size)
        group = np.searchsorted(rsus, snapshot.serving_rsu)
        depth = np.empty(n, dtype=np.int64)  # a candidate's random place in its RSU's queue
        for g in range(rsus.size):
            members = np.flatnonzero(group == g)
            depth[rng.permutation(members)] = np.arange(members.size)
        order = np.lexsort((rsu_rank[group], depth))
        return np.sort(snapshot.vehicle_ids[order[:k]])


def _top(score: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the ``k`` highest scores (all when fewer), ties broken at random with ``rng``."""
    perm = rng.permutation(score.shape[0])
    return perm[np.argsort(-score[perm], kind="stable")][: max(k, 0)]


def _slack_s(snapshot: WorldSnapshot, k: int, margin: float) -> np.ndarray:
    """(M,) [s] ``min(dwell, trip, deadline) - margin x predicted``, where predicted = transfer time x
    sharers + compute, and sharers = the number of the ``k`` picks expected at the vehicle's RSU if picks
    were spread like the candidates: ``ceil(k x candidates there / all candidates)``, at most the
    candidates there."""
    _, inverse, counts = np.unique(snapshot.serving_rsu, return_inverse=True, return_counts=True)
    expected = np.ceil(min(k, len(snapshot)) * counts / max(len(snapshot), 1))
    sharers = np.maximum(np.minimum(counts, expected), 1)[inverse]
    with np.errstate(divide="ignore"):
        transfer = 8.0 * (snapshot.download_bytes_each / snapshot.rate_down_bps
                          + snapshot.upload_bytes_each / snapshot.rate_up_bps)
    predicted = (transfer * sharers + snapshot.compute_time_s) * margin
    budget = np.minimum(np.minimum(snapshot.dwell_time_s, snapshot.trip_remaining_s), snapshot.deadline_s)
    return budget - predicted


def _option_number(name: str, value: Any, low: float, high: float | None = None, *, strict: bool = False) -> float:
    """``value`` as a float >= low (> low when ``strict``) and <= high, or a ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    x = float(value)
    if x < low or (strict and x == low) or (high is not None and x > high):
        bounds = f"{'>' if strict else '>='} {low:g}" + ("" if high is None else f" and <= {high:g}")
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return x


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
