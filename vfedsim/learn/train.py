"""Local training jobs and evaluation: the real PyTorch work that the simulated vehicles do.

A `TrainJob` says who trains (vehicle), from which global model version, on which samples, with which
random seed. `Learner.run_jobs` trains each from that version's trainable state (LoRA adapters + heads) and
returns `Update`s. A job's result depends only on (base state, indices, seed, config): each job reloads its
base state, gets a fresh optimizer, shuffles with its own ``torch.Generator`` and runs inside
``torch.random.fork_rng`` seeded with its seed, so neither the jobs before it nor their order matter
(DESIGN.md, principle 3). Updates travel as bytes, both ways (broadcast and upload): the trainable tensors
are packed in ``payload_dtype`` and read back, so float16 payloads really lose precision. The size that
the network carries, `Learner.payload_bytes`, is that of a ``torch.save`` file of the state (names, shapes
and all), a little more than the packed values.
"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..scenario import LearningConfig, LocalTraining
from .data import TASK_CLASSES, DataBundle, load_data
from .jobs import TrainJob
from .metrics import accuracy, balanced_accuracy, macro_f1
from .model import M3TModel, TensorData, set_torch_threads, multitask_loss, to_tensors, trainable_state, wrap_lora
from .pretrain import load_pretrained

__all__ = ["TrainJob", "Update", "Learner", "local_train", "serialize_state", "deserialize_state",
           "pack_tensors", "unpack_state"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True, eq=False)
class Update:
    """A trained job's upload: its trainable state (float32, after the payload round trip)."""

    vehicle: int
    num_samples: int
    state: dict[str, torch.Tensor]
    train_loss: float
    base_version: int


def serialize_state(state: Mapping[str, torch.Tensor], dtype: str = "float32") -> bytes:
    """``torch.save`` of the state cast to ``dtype``: the self-describing file whose size is the payload."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().to(_DTYPES[dtype]).contiguous() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def deserialize_state(payload: bytes) -> dict[str, torch.Tensor]:
    """The state in a `serialize_state` payload, as float32 tensors."""
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    return {k: v.to(torch.float32) for k, v in state.items()}


def pack_tensors(tensors: Sequence[torch.Tensor], dtype: str = "float32") -> bytes:
    """The raw bytes of the tensors, flattened and concatenated in order, in ``dtype`` (a wire format whose
    layout, the trainable parameters' names and shapes, both ends know). Same values as `serialize_state`."""
    flat = torch.cat([t.detach().reshape(-1) for t in tensors]).to(_DTYPES[dtype])
    return flat.numpy().tobytes()


def unpack_state(payload: bytes, template: Mapping[str, torch.Tensor],
                 dtype: str = "float32") -> dict[str, torch.Tensor]:
    """`pack_tensors` read back into float32 tensors named and shaped like ``template``."""
    flat = torch.frombuffer(bytearray(payload), dtype=_DTYPES[dtype]).to(torch.float32)
    out, start = {}, 0
    for name, t in template.items():
        out[name] = flat[start:start + t.numel()].view(t.shape)
        start += t.numel()
    if start != flat.numel():
        raise ValueError(f"payload holds {flat.numel()} values, the template {start}")
    return out


def local_train(model: torch.nn.Module, params: Sequence[torch.nn.Parameter], data: TensorData,
                indices: torch.Tensor, local: LocalTraining, generator: torch.Generator) -> float:
    """``local.epochs`` epochs of shuffled mini-batches over rows ``indices`` of ``data``, updating ``params``
    (the model's trainable parameters) with a fresh optimizer. Returns the mean training loss over steps."""
    if local.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=local.lr)
    else:
        optimizer = torch.optim.SGD(params, lr=local.lr)
    n, batch = len(indices), local.batch_size
    total, steps = 0.0, 0
    if not model.training:
        model.train()
    for _ in range(local.epochs):
        order = indices[torch.randperm(n, generator=generator)]
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            loss = multitask_loss(model(*data.inputs(idx)), data.targets(idx))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
    return total / max(steps, 1)


class Learner:
    """The learning side of a run: data, the LoRA-wrapped pretrained model, global versions, jobs, evaluation.

    ``seed`` (the scenario seed) initialises the LoRA adapters; data and pretraining have their own seed
    (``data.seed``) so that runs with different scenario seeds share the cached data and foundation model.
    """

    def __init__(self, cfg: LearningConfig, *, bundle: DataBundle | None = None, seed: int = 0,
                 progress: bool = False) -> None:
        self.cfg = cfg
        set_torch_threads()
        self.bundle = bundle if bundle is not None else load_data(cfg.data, progress=progress)
        self.model: M3TModel = wrap_lora(load_pretrained(cfg, self.bundle, progress=progress), cfg.peft,
                                         seed=seed)
        self.pool = to_tensors(self.bundle.pool, cfg.tasks)
        self.test = to_tensors(self.bundle.test, cfg.tasks)
        self.version = 0
        self._trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self._states: dict[int, dict[str, torch.Tensor]] = {0: trainable_state(self.model)}
        self._flops: dict[int, int] = {}
        self._payload_bytes: int | None = None

    # ---------------------------------------------------------------- global versions
    def global_state(self, version: int | None = None) -> dict[str, torch.Tensor]:
        """The trainable state (LoRA + heads) of global ``version`` (the current one when None)."""
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
        """Bytes of one serialised trainable state in ``payload_dtype``: one upload, or one broadcast."""
        if self._payload_bytes is None:
            self._payload_bytes = len(serialize_state(self._states[0], self.cfg.payload_dtype))
        return self._payload_bytes

    def _batch_flops(self, batch: int) -> int:
        """FLOPs of one forward + backward pass on ``batch`` samples, counted by torch's FlopCounterMode."""
        if batch not in self._flops:
            idx = torch.arange(batch) % len(self.pool)
            self.model.train()
            with torch.random.fork_rng(devices=[]), FlopCounterMode(display=False) as counter:
                loss = multitask_loss(self.model(*self.pool.inputs(idx)), self.pool.targets(idx))
                loss.backward()
            for _, p in self._trainable:
                p.grad = None
            self._flops[batch] = int(counter.get_total_flops())
        return self._flops[batch]

    def train_flops(self, n_samples: int) -> int:
        """FLOPs of a local job on ``n_samples``: epochs x (full batches + the last, smaller one)."""
        local = self.cfg.local
        full, rest = divmod(int(n_samples), local.batch_size)
        per_epoch = full * self._batch_flops(local.batch_size) + (self._batch_flops(rest) if rest else 0)
        return local.epochs * per_epoch

    def train_steps(self, n_samples: int) -> int:
        return self.cfg.local.epochs * math.ceil(n_samples / self.cfg.local.batch_size)

    # ---------------------------------------------------------------- jobs
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The LoRA adapters and task heads, in `trainable_state` order."""
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
        indices = torch.as_tensor(np.asarray(job.indices, dtype=np.int64))
        if len(indices) == 0:
            raise ValueError(f"job of vehicle {job.vehicle} has no samples")
        self._load(self.downlink(job.base_version))
        params = [p for _, p in self._trainable]
        generator = torch.Generator().manual_seed(int(job.seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(job.seed))  # dropout, if any
            loss = local_train(self.model, params, self.pool, indices, self.cfg.local, generator)
        dtype = self.cfg.payload_dtype
        payload = pack_tensors(params, dtype)
        state = unpack_state(payload, self._states[0], dtype)
        return Update(job.vehicle, len(indices), state, loss, job.base_version)

    def run_jobs(self, jobs: Sequence[TrainJob]) -> list[Update]:
        """Train each job from its base version; the updates come back in job order."""
        return [self.run_job(job) for job in jobs]

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, state: Mapping[str, torch.Tensor] | None = None, *, batch: int = 512) -> dict[str, float]:
        """Metrics on the test split: '<task>.accuracy', '.macro_f1', '.balanced_accuracy', '.loss' for each
        task, and their means over tasks as 'mean.<metric>'. ``state`` None: the current global version."""
        state = self.global_state() if state is None else state
        if state.keys() != self._states[0].keys():
            raise KeyError("evaluated state does not have the trainable parameters' keys")
        self._load(state)
        self.model.eval()
        logits: dict[str, list[torch.Tensor]] = {t: [] for t in self.cfg.tasks}
        with torch.inference_mode():
            for start in range(0, len(self.test), batch):
                idx = torch.arange(start, min(start + batch, len(self.test)))
                for t, z in self.model(*self.test.inputs(idx)).items():
                    logits[t].append(z)
        out: dict[str, float] = {}
        for t in self.cfg.tasks:
            z = torch.cat(logits[t])
            y = self.test.labels[t]
            pred, truth, k = z.argmax(dim=1).numpy(), y.numpy(), len(TASK_CLASSES[t])
            out[f"{t}.accuracy"] = accuracy(truth, pred)
            out[f"{t}.macro_f1"] = macro_f1(truth, pred, k)
            out[f"{t}.balanced_accuracy"] = balanced_accuracy(truth, pred, k)
            out[f"{t}.loss"] = float(torch.nn.functional.cross_entropy(z, y))
        for metric in ("accuracy", "macro_f1", "balanced_accuracy", "loss"):
            out[f"mean.{metric}"] = float(np.mean([out[f"{t}.{metric}"] for t in self.cfg.tasks]))
        return out
