"""Local training jobs and evaluation: the real PyTorch work that the simulated vehicles do.

A `TrainJob` says who trains (vehicle), from which global model version, on which samples, with which
random seed. `Learner.run_jobs` trains each from that version's trainable state (adapters + heads, and the
multi-task log-variances with uncertainty weighting) and returns `Update`s. A job's result depends only on
(base state, indices, seed, config): each job reloads its base state, gets a fresh optimizer, shuffles
(and draws PCGrad's orders) with its own ``torch.Generator`` and runs inside ``torch.random.fork_rng``
seeded with its seed, so neither the jobs before it nor their order matter (DESIGN.md, principle 3).
Updates travel as bytes, both ways (broadcast and upload): the trainable tensors are packed in
``payload_dtype`` and read back (vfedsim.learn.payload), so float16 and int8 payloads really lose
precision. The size that the network carries, `Learner.payload_bytes`, is that of a ``torch.save`` file of
the state (names, shapes and all), a little more than the packed values; `Learner.payload_breakdown` splits
it by module.

Heterogeneous vehicles and modules: a job carries the vehicle's modalities and tasks (its sensor suite and
task set). It runs only its modalities' encoders, computes only its tasks' losses, and trains and uploads
only the module groups that it can change (`Learner.job_groups`): the shared trunk adapter, its
modalities' adapters, its tasks' heads (and the log-variances), less the groups that a task onboarding
froze. Its `Update` holds only those tensors, and `Learner.upload_bytes` is the size of that state's file:
upload sizes differ per vehicle. Its download carries only the groups its job reads (`Learner.read_groups`:
those it trains plus the frozen ones its forward pass goes through; `Learner.download_bytes`), and its
simulated compute counts only the forward and backward passes its job runs (`Learner.train_flops` with its
modalities, tasks and round). A vehicle with every modality and every existing task downloads the whole
state and counts the full model's FLOPs. Task onboarding (``learning.onboarding``): a task arriving at round
R is in no job (nor any download or FLOP count) before R, is evaluated as NaN before R, and its head starts
from (seed, "head-init", task).

Local objective: the multi-task loss of ``learning.mtl`` (vfedsim.learn.mtl) plus, with
``local.prox_mu`` = mu > 0, FedProx's proximal term mu/2 ||w - w_global||^2 (Li et al., MLSys 2020, eq. 2)
over the trainable parameters, w_global being the job's base state; its gradient mu (w - w_global) is
added to the parameters' gradients after the multi-task backward pass (and after PCGrad's projection: it
is not a task). The reported training loss is the unweighted sum of the tasks' losses, without the term.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..scenario import LearningConfig, LocalTraining, MtlConfig
from .adapters import module_group, wrap_peft
from .data import DataBundle, load_data
from .jobs import TrainJob
from .metrics import accuracy, ade, balanced_accuracy, fde, macro_f1, mae
from .model import MODALITIES, M3TModel, TensorData, init_head, set_torch_threads, to_tensors, trainable_state
from .mtl import REGRESSION_SCALE, MultiTaskObjective, UncertaintyWeighting, task_loss, task_spec
from .payload import breakdown, deserialize_state, pack_tensors, serialize_state, unpack_state
from .pretrain import load_pretrained

__all__ = ["TrainJob", "Update", "Learner", "local_train", "serialize_state", "deserialize_state",
           "pack_tensors", "unpack_state"]


@dataclass(frozen=True, eq=False)
class Update:
    """A trained job's upload: its trainable state (float32, after the payload round trip)."""

    vehicle: int
    num_samples: int
    state: dict[str, torch.Tensor]
    train_loss: float
    base_version: int


def local_train(model: torch.nn.Module, params: Sequence[torch.nn.Parameter], data: TensorData,
                indices: torch.Tensor, local: LocalTraining, generator: torch.Generator, *,
                objective: MultiTaskObjective | None = None, modalities: Sequence[str] | None = None,
                tasks: Sequence[str] | None = None) -> float:
    """``local.epochs`` epochs of shuffled mini-batches over rows ``indices`` of ``data``, updating ``params``
    (the model's trainable parameters) with a fresh optimizer, through the encoders of ``modalities`` and the
    heads of ``tasks`` (all when None). ``objective`` None: the plain sum of the tasks' losses. Returns the
    mean training loss over steps (see the module docstring)."""
    if local.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=local.lr)
    else:
        optimizer = torch.optim.SGD(params, lr=local.lr)
    if objective is None:
        objective = MultiTaskObjective(MtlConfig(), ())
    mu = local.prox_mu
    anchor = [p.detach().clone() for p in params] if mu > 0 else None
    n, batch = len(indices), local.batch_size
    total, steps = 0.0, 0
    if not model.training:
        model.train()
    for _ in range(local.epochs):
        order = indices[torch.randperm(n, generator=generator)]
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            optimizer.zero_grad(set_to_none=True)
            outputs = model(*data.inputs(idx), modalities=modalities, tasks=tasks)
            total += objective.backward(outputs, data.targets(idx), params, generator)
            if anchor is not None:
                with torch.no_grad():
                    for p, w0 in zip(params, anchor):
                        prox = (p - w0).mul_(mu)
                        if p.grad is None:
                            p.grad = prox
                        else:
                            p.grad.add_(prox)
            optimizer.step()
            steps += 1
    return total / max(steps, 1)


class Learner:
    """The learning side of a run: data, the adapter-wrapped pretrained model, global versions, jobs, evaluation.

    ``seed`` (the scenario seed) initialises the adapters; data and pretraining have their own seed
    (``data.seed``) so that runs with different scenario seeds share the cached data and foundation model.
    """

    def __init__(self, cfg: LearningConfig, *, bundle: DataBundle | None = None, seed: int = 0,
                 progress: bool = False) -> None:
        self.cfg = cfg
        set_torch_threads()
        self.bundle = bundle if bundle is not None else load_data(cfg.data, progress=progress)
        model = load_pretrained(cfg, self.bundle, progress=progress)
        self.onboarding = {o.task: o for o in cfg.onboarding}
        for task in self.onboarding:
            init_head(model, task, seed)
        self.model: M3TModel = wrap_peft(model, cfg.peft, seed=seed)
        if cfg.mtl.weighting == "uncertainty":
            self.model.mtl = UncertaintyWeighting(cfg.tasks)   # trainable, registered after the heads
        self.objective = MultiTaskObjective(cfg.mtl, cfg.tasks, getattr(self.model, "mtl", None))
        self.pool = to_tensors(self.bundle.pool, cfg.tasks)
        self.test = to_tensors(self.bundle.test, cfg.tasks)
        self.version = 0
        self._trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self._group = {n: module_group(n) for n, _ in self._trainable}
        self.groups = tuple(dict.fromkeys(self._group.values()))
        """The module groups of the trainable state, in order (payload.breakdown's groups)."""
        self._states: dict[int, dict[str, torch.Tensor]] = {0: trainable_state(self.model)}
        self._flops: dict[tuple, int] = {}  # (batch, modalities, tasks, trained groups) -> FLOPs
        self._payload_bytes: int | None = None
        self._group_bytes: dict[tuple[str, ...], int] = {}  # module groups -> their file's size [B]

    # ---------------------------------------------------------------- tasks and modules
    def active_tasks(self, round: int | None = None) -> tuple[str, ...]:
        """The tasks that exist at ``round`` (every task when None): those not onboarded after it."""
        if round is None:
            return self.cfg.tasks
        return tuple(t for t in self.cfg.tasks if t not in self.onboarding or self.onboarding[t].round <= round)

    def frozen_groups(self, round: int | None = None) -> set[str]:
        """The module groups that onboardings up to ``round`` froze (see `vfedsim.scenario.Onboarding`)."""
        out: set[str] = set()
        for o in self.cfg.onboarding:
            if round is None or o.round > round:
                continue
            for part in o.freeze:
                if part == "shared":
                    out.update(g for g in self.groups if g.startswith("trunk."))
                elif part == "modality":
                    out.update(g for g in self.groups if g.startswith("encoder."))
                else:
                    out.update(f"heads.{t}" for t in self.active_tasks(o.round - 1))
        return out

    def job_groups(self, modalities: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                   round: int | None = None) -> tuple[str, ...]:
        """The module groups a vehicle with ``modalities`` and ``tasks`` (all when None) trains and uploads at
        ``round``: the trunk's shared adapter, its modalities' adapters, its existing tasks' heads and the
        log-variances, less the frozen groups; none when it has no task yet."""
        frozen = self.frozen_groups(round)
        return tuple(g for g in self.read_groups(modalities, tasks, round) if g not in frozen)

    def job_tasks(self, tasks: Sequence[str] | None, round: int | None) -> tuple[str, ...]:
        """The tasks of a task set (all when None) that exist at ``round``."""
        return tuple(t for t in self.active_tasks(round) if tasks is None or t in tasks)

    def read_groups(self, modalities: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                    round: int | None = None) -> tuple[str, ...]:
        """The module groups the job of a vehicle with ``modalities`` and ``tasks`` (all when None) reads at
        ``round``, so what its download must carry: `job_groups` plus the frozen groups its forward pass
        goes through (the trunk's adapters, its modalities' adapters, its existing tasks' heads, the
        log-variances); none when it has no task yet; every group for a vehicle with every modality and
        every task."""
        mods = MODALITIES if modalities is None else tuple(modalities)
        active = self.job_tasks(tasks, round)
        if not active:
            return ()
        keep = []
        for g in self.groups:
            kind, _, name = g.partition(".")
            if (kind == "encoder" and name not in mods) or (kind == "heads" and name not in active):
                continue
            keep.append(g)
        return tuple(keep)

    # ---------------------------------------------------------------- global versions
    def global_state(self, version: int | None = None) -> dict[str, torch.Tensor]:
        """The trainable state (adapters + heads) of global ``version`` (the current one when None)."""
        version = self.version if version is None else version
        try:
            return self._states[version]
        except KeyError:
            raise KeyError(f"global version {version} is unknown or was released") from None

    def commit(self, state: Mapping[str, torch.Tensor]) -> int:
        """Make ``state`` the next global version; returns its number."""
        if state.keys() != self._states[0].keys():
            raise KeyError("committed state does not have the trainable parameters' keys")
        self.version += 1
        self._states[self.version] = {k: v.detach().to(torch.float32).clone() for k, v in state.items()}
        return self.version

    def release(self, version: int) -> None:
        """Forget an old version's state (the current version and version 0 are kept)."""
        if version not in (0, self.version):
            self._states.pop(version, None)

    # ---------------------------------------------------------------- sizes and costs
    def payload_bytes(self) -> int:
        """Bytes of one serialised trainable state in ``payload_dtype``: the download (and upload) of a vehicle
        with every modality and task."""
        if self._payload_bytes is None:
            self._payload_bytes = len(serialize_state(self._states[0], self.cfg.payload_dtype))
        return self._payload_bytes

    def payload_breakdown(self) -> dict[str, int]:
        """`payload_bytes` by module group: ``trunk.<method>`` (the adapters), ``heads.<task>``, ``mtl`` (the
        log-variances, with uncertainty weighting): the values in ``payload_dtype`` (int8: plus a float32
        scale per tensor); ``container``: the rest of the file (names, shapes, records). Sums to
        `payload_bytes`."""
        return breakdown(self._states[0], self.cfg.payload_dtype, module_group, total=self.payload_bytes())

    def _subset(self, groups: Sequence[str]) -> dict[str, torch.Tensor]:
        keep = set(groups)
        return {n: t for n, t in self._states[0].items() if self._group[n] in keep}

    def _groups_bytes(self, groups: tuple[str, ...]) -> int:
        """[B] The file of the trainable state's ``groups`` in ``payload_dtype`` (0 for none), cached."""
        if groups not in self._group_bytes:
            subset = self._subset(groups)
            self._group_bytes[groups] = len(serialize_state(subset, self.cfg.payload_dtype)) if subset else 0
        return self._group_bytes[groups]

    def upload_bytes(self, modalities: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                     round: int | None = None) -> int:
        """[B] The upload of a vehicle with ``modalities`` and ``tasks`` at ``round``: the file of the module
        groups it trained (`job_groups`), in ``payload_dtype``; 0 when it trained none."""
        return self._groups_bytes(self.job_groups(modalities, tasks, round))

    def download_bytes(self, modalities: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                       round: int | None = None) -> int:
        """[B] The download of a vehicle with ``modalities`` and ``tasks`` at ``round``: the file of the
        module groups its job reads (`read_groups`), in ``payload_dtype``; 0 when it has no task yet. With
        every modality and task (all None): `payload_bytes`, the whole state's file, byte for byte."""
        return self._groups_bytes(self.read_groups(modalities, tasks, round))

    def upload_breakdown(self, modalities: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                         round: int | None = None) -> dict[str, int]:
        """`upload_bytes` by module group (plus ``container``), as `payload_breakdown`."""
        subset = self._subset(self.job_groups(modalities, tasks, round))
        if not subset:
            return {}
        return breakdown(subset, self.cfg.payload_dtype, module_group,
                         total=self.upload_bytes(modalities, tasks, round))

    def _batch_flops(self, batch: int, modalities: Sequence[str] | None = None,
                     tasks: Sequence[str] | None = None, round: int | None = None) -> int:
        """FLOPs of one forward + backward pass on ``batch`` samples as a job with ``modalities``, ``tasks``
        and ``round`` runs it (`run_job`: only those modalities' encoders, only its existing tasks' heads
        and losses, gradients only for the groups it trains), counted by torch's FlopCounterMode; cached
        per (batch, modalities, tasks, trained groups). 0 when the job trains nothing. The pass changes no
        parameter, buffer or random state."""
        groups = self.job_groups(modalities, tasks, round)
        if not groups:
            return 0
        mods = tuple(m for m in MODALITIES if modalities is None or m in modalities)
        active = self.job_tasks(tasks, round)
        key = (batch, mods, active, groups)
        if key not in self._flops:
            idx = torch.arange(batch) % len(self.pool)
            keep = set(groups)
            params = [p for n, p in self._trainable if self._group[n] in keep]
            others = [p for n, p in self._trainable if self._group[n] not in keep]
            buffers = {n: b.detach().clone() for n, b in self.model.named_buffers()}  # batch-norm statistics
            self.model.train()
            try:
                for p in others:
                    p.requires_grad_(False)
                with torch.random.fork_rng(devices=[]), FlopCounterMode(display=False) as counter:
                    outputs = self.model(*self.pool.inputs(idx), modalities=mods, tasks=active)
                    self.objective.backward(outputs, self.pool.targets(idx), params,
                                            torch.Generator().manual_seed(0))
            finally:
                for p in others:
                    p.requires_grad_(True)
                for _, p in self._trainable:
                    p.grad = None
                with torch.no_grad():
                    for n, b in self.model.named_buffers():
                        b.copy_(buffers[n])
            self._flops[key] = int(counter.get_total_flops())
        return self._flops[key]

    def train_flops(self, n_samples: int, modalities: Sequence[str] | None = None,
                    tasks: Sequence[str] | None = None, round: int | None = None) -> int:
        """FLOPs of the local job of a vehicle with ``modalities`` and ``tasks`` (all when None) at ``round``
        (every task when None) on ``n_samples``: epochs x (full batches + the last, smaller one), each batch
        as `_batch_flops` counts it. 0 when the vehicle has no task yet (its job trains nothing)."""
        local = self.cfg.local
        full, rest = divmod(int(n_samples), local.batch_size)
        per_batch = self._batch_flops(local.batch_size, modalities, tasks, round)
        per_epoch = full * per_batch + (self._batch_flops(rest, modalities, tasks, round) if rest else 0)
        return local.epochs * per_epoch

    def train_steps(self, n_samples: int) -> int:
        return self.cfg.local.epochs * math.ceil(n_samples / self.cfg.local.batch_size)

    # ---------------------------------------------------------------- jobs
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The adapters and task heads (and log-variances), in `trainable_state` order."""
        return [p for _, p in self._trainable]

    def _load(self, state: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, p in self._trainable:
                p.copy_(state[name])

    def train_tensors(self, indices: np.ndarray) -> TensorData:
        """The pool rows of a job (for a bare PyTorch loop that repeats its steps)."""
        return self.pool.subset(torch.as_tensor(np.asarray(indices, dtype=np.int64)))

    def downlink(self, version: int) -> dict[str, torch.Tensor]:
        """Global ``version`` as a vehicle receives it (through the payload round trip)."""
        state = self.global_state(version)
        if self.cfg.payload_dtype == "float32":
            return state
        return unpack_state(pack_tensors(list(state.values()), self.cfg.payload_dtype), state,
                            self.cfg.payload_dtype)

    def run_job(self, job: TrainJob) -> Update:
        """Train ``job`` (see the module docstring); its update holds only the groups it trained."""
        indices = torch.as_tensor(np.asarray(job.indices, dtype=np.int64))
        if len(indices) == 0:
            raise ValueError(f"job of vehicle {job.vehicle} has no samples")
        groups = set(self.job_groups(job.modalities, job.tasks, job.round))
        if not groups:
            return Update(job.vehicle, len(indices), {}, float("nan"), job.base_version)
        self._load(self.downlink(job.base_version))
        names = [n for n, _ in self._trainable if self._group[n] in groups]
        params = [p for n, p in self._trainable if self._group[n] in groups]
        others = [p for n, p in self._trainable if self._group[n] not in groups]
        modalities = MODALITIES if job.modalities is None else tuple(job.modalities)
        tasks = self.job_tasks(job.tasks, job.round)
        generator = torch.Generator().manual_seed(int(job.seed))
        try:
            for p in others:
                p.requires_grad_(False)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(job.seed))  # dropout, if any
                loss = local_train(self.model, params, self.pool, indices, self.cfg.local, generator,
                                   objective=self.objective, modalities=modalities, tasks=tasks)
        finally:
            for p in others:
                p.requires_grad_(True)
        dtype = self.cfg.payload_dtype
        payload = pack_tensors(params, dtype)
        state = unpack_state(payload, {n: self._states[0][n] for n in names}, dtype)
        return Update(job.vehicle, len(indices), state, loss, job.base_version)

    def run_jobs(self, jobs: Sequence[TrainJob]) -> list[Update]:
        """Train each job from its base version; the updates come back in job order."""
        return [self.run_job(job) for job in jobs]

    # ---------------------------------------------------------------- evaluation
    def evaluate_at(self, round: int, state: Mapping[str, torch.Tensor] | None = None, *,
                    modalities: Sequence[str] | None = None) -> dict[str, float]:
        """`evaluate` at ``round``: tasks onboarded after it are NaN."""
        return self.evaluate(state, round=round, modalities=modalities)

    def evaluate(self, state: Mapping[str, torch.Tensor] | None = None, *, round: int | None = None,
                 modalities: Sequence[str] | None = None, batch: int = 512) -> dict[str, float]:
        """Metrics of the global model on the test split, for every task of ``learning.tasks``:
        classification '<task>.accuracy', '.macro_f1', '.balanced_accuracy'; ``ttc`` '.mae' [s];
        ``trajectory`` '.ade', '.fde' [m]; and '.loss' (the training loss). 'mean.<metric>' are the means over
        the classification tasks ('mean.loss' over all tasks). A task onboarded after ``round`` is NaN (and
        left out of the means). ``state`` None: the current global version. ``modalities``: the inputs the
        model sees, as a vehicle with that sensor suite would run it (default: every modality)."""
        state = self.global_state() if state is None else state
        if state.keys() != self._states[0].keys():
            raise KeyError("evaluated state does not have the trainable parameters' keys")
        self._load(state)
        self.model.eval()
        active = self.active_tasks(round)
        outputs: dict[str, list[torch.Tensor]] = {t: [] for t in self.cfg.tasks}
        with torch.inference_mode():
            for start in range(0, len(self.test), batch):
                idx = torch.arange(start, min(start + batch, len(self.test)))
                for t, z in self.model(*self.test.inputs(idx), modalities=modalities).items():
                    outputs[t].append(z)
        out: dict[str, float] = {}
        nan = float("nan")
        for t in self.cfg.tasks:
            z, y = torch.cat(outputs[t]), self.test.labels[t]
            spec = task_spec(t)
            on = t in active
            if spec.kind == "classification":
                pred, truth, k = z.argmax(dim=1).numpy(), y.numpy(), len(spec.classes)
                out[f"{t}.accuracy"] = accuracy(truth, pred) if on else nan
                out[f"{t}.macro_f1"] = macro_f1(truth, pred, k) if on else nan
                out[f"{t}.balanced_accuracy"] = balanced_accuracy(truth, pred, k) if on else nan
            else:
                pred = (z.to(torch.float64) * REGRESSION_SCALE.get(t, 1.0)).numpy()
                truth = y.to(torch.float64).numpy()
                if len(spec.shape) == 2:
                    out[f"{t}.ade"] = ade(truth, pred) if on else nan
                    out[f"{t}.fde"] = fde(truth, pred) if on else nan
                else:
                    out[f"{t}.mae"] = mae(truth, pred) if on else nan
            out[f"{t}.loss"] = float(task_loss(t, z, y)) if on else nan
        classify = [t for t in active if task_spec(t).kind == "classification"]
        for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
            out[f"mean.{metric}"] = float(np.mean([out[f"{t}.{metric}"] for t in classify])) if classify else nan
        out["mean.loss"] = float(np.mean([out[f"{t}.loss"] for t in active]))
        return out
