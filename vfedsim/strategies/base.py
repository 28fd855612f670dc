"""What every federated strategy is given, the client life they share, and the registry of strategies.

A strategy is a plain SimPy generator (STYLE.md, 1): it selects, starts client processes, waits for
transfers and compute timeouts, aggregates and evaluates. It reaches the radio network only through the
injected `Network` (`vfedsim.network.interface`), the model only through `Learning`, and reports only through
the `Recorder` hooks. It holds no world math of its own.

`ClientStrategy` is the part the strategies share: the read-only `WorldSnapshot` a selection policy
sees, and one selected vehicle's life as a SimPy process: download, train (simulated time = FLOPs /
device FLOP/s), wait for coverage, upload. The job carries the vehicle's sensor suite and task set, and
so do its costs: its download carries only the modules its job reads (`download_bytes`), its FLOPs count
only the forward and backward passes its job runs (`StrategyContext.compute_time_s`), and its upload
carries only the modules it trained (`upload_bytes`); the recorder is told the bytes of each module that
arrived (rounds.csv ``bytes_up.<module>``). A vehicle with every sensor and task downloads the whole state
and counts the full model's FLOPs. What the vehicle trains from and what happens to its update when it
arrives are the strategy's (`base_version`, `arrive`).
"""
from __future__ import annotations

import inspect
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import simpy

from ..learn.jobs import TrainJob
from ..policies.selection import Deferred, WorldSnapshot
from ..registry import Registry
from ..rng import int_seed
from ..scenario import ALL_MODALITIES
from ..network.interface import FAIL_CAUSES

if TYPE_CHECKING:  # back-references for type checkers only (imports flow one way)
    from ..fleet import Fleet
    from ..policies import Aggregator, Selector
    from ..record import Recorder
    from ..scenario import Scenario
    from ..world.mobility import HighwayMobility
    from ..network.interface import Network, TransferResult

__all__ = ["Learning", "RoundContext", "StrategyContext", "STRATEGIES", "ClientStrategy", "Dropped",
           "ServerUpdate", "network_cause"]


class Learning(Protocol):
    """The learning side as a strategy sees it (implemented by `vfedsim.learn.train.Learner`).

    ``version`` is the current global model version (0 = pretrained). ``run_jobs`` trains the given
    jobs, each from the global state of its ``base_version``; a job's result depends only on the job, so
    computing jobs lazily (only those whose update arrived) or eagerly gives identical results.
    ``commit`` stores any state as the next version (hierarchical strategies commit edge models too);
    ``release`` forgets a version no pending job needs.
    """

    version: int

    def payload_bytes(self) -> int: ...
    def train_flops(self, n_samples: int) -> int: ...
    # optional (`vfedsim.learn.train.Learner` has them; simpler learners may not):
    #   train_flops(n_samples, modalities=, tasks=, round=)  a vehicle's own local FLOPs (keywords accepted)
    #   download_bytes(modalities, tasks, round) -> int      a vehicle's download size [B]
    #   upload_bytes(modalities, tasks, round) -> int        a vehicle's upload size [B]
    #   upload_breakdown(modalities, tasks, round) -> dict   the same by module group
    #   evaluate_at(round, state=None) -> dict               evaluation that knows the round (onboarding)
    def run_jobs(self, jobs: Sequence[Any]) -> list[Any]: ...
    def evaluate(self, state: Mapping[str, Any] | None = None) -> dict[str, float]: ...
    def global_state(self, version: int | None = None) -> dict[str, Any]: ...
    def commit(self, state: Mapping[str, Any]) -> int: ...
    def release(self, version: int) -> None: ...


@dataclass(frozen=True)
class RoundContext:
    """One round (async: one selection), as its client processes see it."""

    round: int  # sync: the round; async: the aggregation in progress; hierarchical: the edge round
    start_s: float  # [s] simulated time the round (selection) started
    deadline_at_s: float  # [s] absolute simulated time of the deadline
    base_version: int  # global model version current when the round started
    download_bytes: int  # [B] the whole trainable state (a vehicle's own: `ClientStrategy.download_bytes`)
    upload_bytes: int  # [B] the whole trainable state (a vehicle's own: `ClientStrategy.upload_bytes`)


@dataclass(frozen=True)
class StrategyContext:
    """Everything the engine wires into a strategy (frozen; the parts themselves hold their state)."""

    env: simpy.Environment
    scenario: "Scenario"
    network: "Network"
    mobility: "HighwayMobility"
    fleet: "Fleet"
    learner: Learning
    selector: "Selector"
    aggregator: "Aggregator"
    recorder: "Recorder"
    shards: Any  # callable vehicle id -> np.ndarray of sample indices into the data pool

    def compute_time_s(self, vehicle: int | np.ndarray, round: int | None = None) -> np.ndarray | float:
        """[s] local training time: FLOPs of the vehicle's local work / its device's FLOP/s. The FLOPs are
        its own job's (its modalities and tasks, the tasks existing at ``round``; every task when None)
        when the learner's ``train_flops`` takes them, else the full model's."""
        return self.train_flops(vehicle, round) / self.fleet.flops_per_s[vehicle]

    def train_flops(self, vehicle: int | np.ndarray, round: int | None = None) -> np.ndarray:
        """(shape of ``vehicle``,) [FLOP] float64: the local job's FLOPs, asked of the learner once per
        distinct (shard size, sensor suite, task set) among the vehicles (the learner caches its counts)."""
        v = np.asarray(vehicle, dtype=np.int64)
        flat = v.reshape(-1)
        fleet, learner = self.fleet, self.learner
        n = np.asarray(fleet.n_samples[flat], dtype=np.int64)
        if not _takes_modules(learner.train_flops):
            if flat.size == 1:
                return np.array(learner.train_flops(int(n[0])), dtype=np.float64).reshape(v.shape)
            return np.vectorize(learner.train_flops, otypes=[np.float64])(n).reshape(v.shape)

        def one(j: int) -> int:  # the FLOPs of the job of vehicle flat[j]
            w = int(flat[j])
            return learner.train_flops(int(n[j]), modalities=fleet.modalities(w), tasks=fleet.tasks(w),
                                       round=round)

        if flat.size <= 1:
            return np.array([one(j) for j in range(flat.size)], dtype=np.float64).reshape(v.shape)
        key = n
        for kind in (getattr(fleet, "suite", None), getattr(fleet, "task_set", None)):  # (N,) indices or None
            if kind is not None:
                key = key * (int(kind.max(initial=0)) + 1) + kind[flat]
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        per_key = np.array([one(int(j)) for j in first], dtype=np.float64)
        return per_key[inverse.reshape(-1)].reshape(v.shape)


_TAKES_MODULES: dict[Any, bool] = {}


def _takes_modules(train_flops: Any) -> bool:
    """Whether a learner's ``train_flops`` accepts ``modalities``, ``tasks`` and ``round`` keywords (cached
    per function)."""
    func = getattr(train_flops, "__func__", train_flops)
    if func not in _TAKES_MODULES:
        try:
            params = inspect.signature(train_flops).parameters
        except (TypeError, ValueError):
            params = {}
        _TAKES_MODULES[func] = all(k in params for k in ("modalities", "tasks", "round")) or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return _TAKES_MODULES[func]


STRATEGIES: Registry[type] = Registry("strategy", "strategy.name")


class Dropped(Exception):
    """A client's work ended without a kept update; ``cause`` labels it (events.csv ``cause``)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def network_cause(cause: str) -> str:
    """The label to cancel a transfer with: a strategy's own drop causes (``over_commit``, ...) are not the
    network's, which ends such transfers as ``cancelled``."""
    return cause if cause in FAIL_CAUSES else "cancelled"


@dataclass(frozen=True)
class ServerUpdate:
    """An update as an aggregator sees it when the server reweights or rebases it (async staleness
    weights, hierarchical edge models): ``num_samples`` carries the weight (a float)."""

    vehicle: int  # -1 for an edge model
    num_samples: float
    state: Mapping[str, Any]
    train_loss: float
    base_version: int


class ClientStrategy:
    """The machinery shared by strategies whose selected vehicles download, train and upload.

    A subclass provides ``run()`` (the SimPy generator the engine starts) and may override the hooks:

    * ``base_version(v, rc, down)`` -> the model version vehicle ``v`` trains from, once its download
      ``down`` (a `TransferResult`) completed; default ``rc.base_version``;
    * ``job_seed(v, rc)`` -> the training job's seed; default (seed, "train", v, round);
    * ``arrive(v, result, up, rc, outcome)``: the update (an `Update`, or the pending `TrainJob` when lazy)
      reached RSU ``up.rsu``; record ``arrived`` and keep it, or ``drop`` it;
    * ``drop(v, cause)``: record the drop (override to count drops);
    * ``client_done(v, rc, outcome)``: the vehicle's process ends (after ``arrive`` or a drop).
    """

    def __init__(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.scenario.strategy
        self.env = ctx.env
        self.participation = np.zeros(ctx.fleet.n, dtype=np.int64)
        self.last_loss = np.full(ctx.fleet.n, np.nan)
        self.last_selected = np.full(ctx.fleet.n, -1, dtype=np.int64)

    # ----------------------------------------------------------------------------- vehicles' modules
    def modalities(self, v: int) -> tuple[str, ...] | None:
        fleet = self.ctx.fleet
        return fleet.modalities(v) if hasattr(fleet, "modalities") else None

    def tasks(self, v: int) -> tuple[str, ...] | None:
        fleet = self.ctx.fleet
        return fleet.tasks(v) if hasattr(fleet, "tasks") else None

    def download_bytes(self, v: int, rc: RoundContext) -> int:
        """[B] What vehicle ``v`` downloads in ``rc``: the modules its job reads (``rc.download_bytes``, the
        whole state, when the learner does not size downloads per vehicle). With ``downlink_mode:
        broadcast`` only downloads of equal size at one RSU and instant share a transmission."""
        size = getattr(self.ctx.learner, "download_bytes", None)
        return rc.download_bytes if size is None else int(size(self.modalities(v), self.tasks(v), rc.round))

    def upload_bytes(self, v: int, rc: RoundContext) -> int:
        """[B] What vehicle ``v`` uploads in ``rc``: the modules it trains (``rc.upload_bytes`` when the
        learner does not size uploads per vehicle)."""
        size = getattr(self.ctx.learner, "upload_bytes", None)
        return rc.upload_bytes if size is None else int(size(self.modalities(v), self.tasks(v), rc.round))

    def evaluate(self, round: int, state: Mapping[str, Any] | None = None) -> dict[str, float]:
        """The learner's metrics of ``state`` (the global model when None) at ``round``, with every modality;
        for each of the fleet's sensor suites that lacks a modality, also as that suite's vehicles run the
        model (only their modalities as input): 'suite.<suite>.<metric>' for every metric but the losses (a
        suite with every modality is the first evaluation itself)."""
        at = getattr(self.ctx.learner, "evaluate_at", None)
        if at is None:
            return self.ctx.learner.evaluate() if state is None else self.ctx.learner.evaluate(state)
        out = at(round, state)
        for suite in self._partial_suites():
            out.update({f"suite.{suite.name}.{key}": value
                        for key, value in at(round, state, modalities=suite.modalities).items()
                        if not key.endswith(".loss")})
        return out

    def _partial_suites(self) -> tuple[Any, ...]:
        """The fleet's sensor suites that lack some modality."""
        full = set(ALL_MODALITIES)
        return tuple(s for s in getattr(self.ctx.fleet, "sensor_suites", ()) if set(s.modalities) != full)

    # ------------------------------------------------------------------------------------------- hooks
    def base_version(self, v: int, rc: RoundContext, down: "TransferResult") -> int:
        return rc.base_version

    def job_seed(self, v: int, rc: RoundContext) -> int:
        return int_seed(self.ctx.scenario.seed, "train", v, rc.round)

    def arrive(self, v: int, result: Any, up: "TransferResult", rc: RoundContext, outcome: Any) -> None:
        raise NotImplementedError

    def drop(self, v: int, cause: str) -> None:
        self.ctx.recorder.event("dropped", vehicle=v, cause=cause)

    def client_done(self, v: int, rc: RoundContext, outcome: Any) -> None:
        pass

    # -------------------------------------------------------------------------------------- selection
    def snapshot(self, rc: RoundContext, exclude: Sequence[int] = ()) -> WorldSnapshot:
        """The read-only view the selection policy sees: candidates on the road and covered now, less
        ``exclude`` (vehicles busy training). Vectorised over the fleet; the link fields are `Deferred`
        (computed for this instant when a policy first reads them) when the network offers a ``link_view``."""
        ctx, now = self.ctx, self.env.now
        trips, net = ctx.mobility.trips, ctx.network
        active = np.flatnonzero((trips.t_enter_s <= now) & (now < trips.t_exit_s)).astype(np.int64)
        if len(exclude):
            active = np.setdiff1d(active, np.asarray(exclude, dtype=np.int64))
        rsu = net.serving_rsus(active)
        covered = rsu >= 0
        ids, rsu = active[covered], rsu[covered]
        view = getattr(net, "link_view", None)
        links = view(ids) if view is not None and ids.size else None
        if links is not None:
            pos, vel = links.position_m, links.velocity_mps
        elif hasattr(ctx.mobility, "positions_of"):
            pos, vel = ctx.mobility.positions_of(ids, now)
        else:  # a mobility model with only `state` (test doubles)
            state = ctx.mobility.state(now)
            pos, vel = state.position_m[ids], state.velocity_mps[ids]
        if links is not None:
            rate_up, rate_down = Deferred(lambda: links.rates_bps("up")), Deferred(lambda: links.rates_bps("down"))
            snr_up, snr_down = Deferred(lambda: links.snrs_db("up")), Deferred(lambda: links.snrs_db("down"))
            dwell = Deferred(links.dwell_times_s)
        else:
            rate_up, rate_down = net.link_rates_bps(ids, "up"), net.link_rates_bps(ids, "down")
            snr_up, snr_down = self._snrs(ids, "up"), self._snrs(ids, "down")
            dwell = net.dwell_times_s(ids)
        return WorldSnapshot(
            time_s=now, round=rc.round, deadline_s=rc.deadline_at_s - now,
            download_bytes=rc.download_bytes, upload_bytes=rc.upload_bytes, vehicle_ids=ids,
            position_m=pos, speed_mps=np.linalg.norm(vel, axis=1), serving_rsu=rsu,
            rate_up_bps=rate_up, rate_down_bps=rate_down, dwell_time_s=dwell,
            trip_remaining_s=trips.t_exit_s[ids] - now,
            compute_time_s=(np.asarray(ctx.compute_time_s(ids, rc.round), dtype=np.float64) if ids.size
                            else np.zeros(0)),
            device_class=self._device_classes(ids),
            participation_count=self.participation[ids].copy(),
            last_loss=self.last_loss[ids].copy(),
            sensors=tuple(m or () for m in self._per_profile(ids, self.modalities)),
            tasks=tuple(t or () for t in self._per_profile(ids, self.tasks)),
            n_samples=np.asarray(ctx.fleet.n_samples[ids], dtype=np.int64),
            last_selected_round=self.last_selected[ids].copy(),
            snr_up_db=snr_up, snr_down_db=snr_down,
            vehicle_download_bytes=np.array(self._per_profile(ids, lambda v: self.download_bytes(v, rc)),
                                            dtype=np.int64),
            vehicle_upload_bytes=np.array(self._per_profile(ids, lambda v: self.upload_bytes(v, rc)),
                                          dtype=np.int64),
        )

    def _device_classes(self, ids: np.ndarray) -> tuple[str, ...]:
        """The device class name of each of ``ids`` (vectorised over a `Fleet`'s ``device`` indices)."""
        fleet = self.ctx.fleet
        device, classes = getattr(fleet, "device", None), getattr(fleet, "device_classes", None)
        if isinstance(device, np.ndarray) and classes is not None:
            names = np.array([d.name for d in classes], dtype=object)
            return tuple(names[device[ids]].tolist())
        return tuple(fleet.device_name(int(v)) for v in ids)

    def _per_profile(self, ids: np.ndarray, value: Any) -> list[Any]:
        """``value(v)`` for every v in ``ids``. A vehicle's modalities, tasks and module sizes depend only
        on its sensor suite and task set, so with a `Fleet`'s per-vehicle indices (and this class's own
        hooks) ``value`` is asked once per distinct (suite, task set) among them; else once per vehicle."""
        fleet, base = self.ctx.fleet, ClientStrategy
        suite, task_set = getattr(fleet, "suite", None), getattr(fleet, "task_set", None)
        own = all(getattr(type(self), h) is getattr(base, h) for h in ("modalities", "tasks", "download_bytes",
                                                                      "upload_bytes"))
        if not own or not all(k is None or isinstance(k, np.ndarray) for k in (suite, task_set)) or \
                not hasattr(fleet, "suite") or ids.size <= 1:
            return [value(int(v)) for v in ids]
        key = np.zeros(ids.size, dtype=np.int64) if suite is None else suite[ids].astype(np.int64)
        if task_set is not None:
            key = key * (int(task_set.max(initial=0)) + 1) + task_set[ids]
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        values = [value(int(ids[j])) for j in first]
        return [values[k] for k in inverse.reshape(-1).tolist()]

    def _snrs(self, ids: np.ndarray, direction: str) -> np.ndarray:
        """[dB] the candidates' link SNRs, or an empty array when the network does not report them."""
        snrs = getattr(self.ctx.network, "link_snrs_db", None)
        if snrs is None or not ids.size:
            return np.zeros(0)
        return np.asarray(snrs(ids, direction), dtype=np.float64)

    def start_client(self, v: int, rc: RoundContext, outcome: Any) -> simpy.Process:
        """Record the selection of ``v`` and start its process."""
        self.participation[v] += 1
        self.last_selected[v] = rc.round
        self.ctx.recorder.event("selected", vehicle=v, rsu=self.ctx.network.serving_rsu(v))
        return self.env.process(self.client(v, rc, outcome))

    # ------------------------------------------------------------------------------------------ client
    def client(self, v: int, rc: RoundContext, outcome: Any) -> Generator[simpy.Event, Any, None]:
        """One selected vehicle: download, compute, (wait for coverage), upload, then `arrive`.

        Interrupting the process (cause: a drop label such as "deadline") ends it as a drop; a transfer in
        flight is cancelled and the compute time spent so far is charged.
        """
        ctx, env, rec = self.ctx, self.env, self.ctx.recorder
        computing_since: float | None = None
        try:
            down = yield from self.transfer(v, self.download_bytes(v, rc), "down")
            base = self.base_version(v, rc, down)
            seconds = float(ctx.compute_time_s(v, rc.round))
            trip_left = float(ctx.mobility.trips.t_exit_s[v]) - env.now
            rec.event("compute_start", vehicle=v)
            computing_since = env.now
            if seconds > trip_left:
                yield env.timeout(max(trip_left, 0.0))
                computing_since = None
                self.energy_compute(v, max(trip_left, 0.0), cause="trip_ended")
                raise Dropped("trip_ended")
            yield env.timeout(seconds)
            computing_since = None
            self.energy_compute(v, seconds, cause="")
            job = TrainJob(vehicle=v, round=rc.round, base_version=base, indices=ctx.shards(v),
                           seed=self.job_seed(v, rc), modalities=self.modalities(v), tasks=self.tasks(v))
            result: Any = job if self.cfg.lazy else ctx.learner.run_jobs([job])[0]
            wait = ctx.network.time_to_coverage_s(v)
            if wait > 0:
                if not np.isfinite(wait):
                    raise Dropped("no_coverage")
                rec.event("wait_coverage", vehicle=v, duration_s=wait)
                yield env.timeout(wait)
            up = yield from self.transfer(v, self.upload_bytes(v, rc), "up")
            modules = getattr(ctx.learner, "upload_breakdown", None)
            if modules is not None and hasattr(rec, "upload_modules"):
                rec.upload_modules(modules(self.modalities(v), self.tasks(v), rc.round))
            self.arrive(v, result, up, rc, outcome)
        except Dropped as drop:
            self.drop(v, drop.cause)
        except simpy.Interrupt as stop:
            cause = str(stop.cause)
            if computing_since is not None:  # the interrupt cut the local training short
                self.energy_compute(v, env.now - computing_since, cause=cause)
            ctx.network.cancel(v, network_cause(cause))
            self.drop(v, cause)
        self.client_done(v, rc, outcome)

    def transfer(self, v: int, nbytes: int, direction: str) -> Generator[simpy.Event, Any, "TransferResult"]:
        """Move ``nbytes`` over the network and record it; returns the result, raises `Dropped` on failure."""
        ctx, rec = self.ctx, self.ctx.recorder
        kind = "download" if direction == "down" else "upload"
        rec.event(f"{kind}_start", vehicle=v, rsu=ctx.network.serving_rsu(v), nbytes=nbytes)
        event = ctx.network.transfer(v, nbytes, direction)
        try:
            res = yield event
        except simpy.Interrupt as stop:
            # end the transfer now and account for the bytes it did carry
            ctx.network.cancel(v, network_cause(str(stop.cause)))
            res = event.value if event.triggered else None
            if res is not None:
                self.record_transfer_end(kind, v, res, direction)
            raise
        self.record_transfer_end(kind, v, res, direction)
        if not res.ok:
            raise Dropped(res.cause or "failed")
        return res

    def record_transfer_end(self, kind: str, v: int, res: Any, direction: str) -> None:
        seconds = res.end_s - res.start_s
        energy = float(self.ctx.fleet.radio_power_w[v]) * seconds if direction == "up" else 0.0
        self.ctx.recorder.event(f"{kind}_end", vehicle=v, rsu=res.rsu, nbytes=int(round(res.bytes_done)),
                                cause=res.cause or "", duration_s=seconds, energy_j=energy,
                                direction=direction)

    def energy_compute(self, v: int, seconds: float, *, cause: str) -> None:
        """Record the end of local training (``cause`` empty when it completed) and its energy [J]."""
        energy = float(self.ctx.fleet.compute_power_w[v]) * seconds
        self.ctx.recorder.event("compute_end", vehicle=v, duration_s=seconds, energy_j=energy, cause=cause)

    def updates_for(self, results: Sequence[Any]) -> list[Any]:
        """The updates of ``results``, computing now (in one batch) the jobs that lazy mode deferred."""
        pending = [r for r in results if isinstance(r, TrainJob)]
        computed = iter(self.ctx.learner.run_jobs(pending)) if pending else iter(())
        return [next(computed) if isinstance(r, TrainJob) else r for r in results]
