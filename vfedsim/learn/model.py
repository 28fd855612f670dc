"""The multi-modal multi-task (M3T) model and its parameter-efficient wrapping.

One encoder per modality (`vfedsim.learn.scenes.MODALITIES`) turns its input into ``d_model`` tokens:
kinematics -> one token per vehicle row (V = 5, a shared MLP plus a learned slot embedding), occupancy grid ->
4 tokens (two convolutions, pooled to 2 x 2), camera -> 4 tokens (``camera_encoder: conv``: 4 x 4 patches, a
strided convolution, pooled to 2 x 2; ``efficientnet-lite0``: the frozen, packaged EfficientNet-Lite0 feature
extractor, pooled to 2 x 2 and projected, vfedsim.learn.efficientnet), lidar -> 4 tokens (two 1-D convolutions
over the beams, the second strided by 4, pooled to 4). A learned modality embedding is added to each
modality's tokens and a CLS token is prepended. The 18 tokens go through the preset's trunk
(vfedsim.learn.presets: ``m3t-tiny``, a pre-norm transformer of width ``d_model``; ``minilm-l6``, the packaged
MiniLM-L6 encoder, after a linear projection ``proj`` from ``d_model`` to its width 384), whose attention
projections ``q, k, v, o`` and MLP ``fc1, fc2`` are plain `nn.Linear` modules, so that peft's adapters target
them by name. One linear head per task reads the final CLS token: a classification task's logits (B, classes),
a regression task's outputs (B, *shape) in units of `vfedsim.learn.mtl.REGRESSION_SCALE` (multiply by it to
get seconds or metres).

Missing sensors: ``forward(..., modalities=...)`` runs only the given modalities' encoders and leaves the
others' tokens out of the trunk's input (no padding, no mask; a packaged trunk's position embeddings are
those of the kept token positions). ``tasks=...`` computes only those heads.

Fine-tuning: `wrap_peft` (vfedsim.learn.adapters; `wrap_lora` is the same function) injects the adapters
(shared on the trunk, per modality on the encoders, or both) and freezes everything except the adapters and
the task heads. `trainable_state` is what a vehicle may upload.
"""
from __future__ import annotations

import os

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..rng import int_seed
from ..scenario import LearningConfig, ModelConfig
from .adapters import wrap_peft
from .data import Dataset
from .mtl import task_losses, task_spec
from .presets import PRESETS
from .scenes import KINEMATIC_FEATURES, LIDAR_BEAMS, MODALITIES, NEIGHBOURS, TASKS

__all__ = ["M3TModel", "build_model", "wrap_lora", "wrap_peft", "trainable_state", "load_trainable_state",
           "trainable_names", "count_parameters", "TensorData", "to_tensors", "multitask_loss",
           "set_torch_threads", "MODALITIES", "MODALITY_TOKENS", "TOKENS", "init_head"]

MODALITY_TOKENS = {"kinematics": NEIGHBOURS + 1, "occupancy": 4, "camera": 4, "lidar": 4}
TOKENS = 1 + sum(MODALITY_TOKENS.values())
"""CLS + the modalities' tokens."""
LIDAR_CHANNELS = 2
"""Lidar channels: normalised range and closing speed per beam (vfedsim.learn.scenes)."""


class KinematicsEncoder(nn.Module):
    """(B, V, F) -> (B, V, d): a per-vehicle MLP plus a learned embedding of the row (ego, 1st nearest...),
    layer-normalised (each encoder ends in a LayerNorm so that the modalities' tokens share one scale)."""

    adapter_targets = ("net.0", "net.2")

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(len(KINEMATIC_FEATURES), d_model), nn.GELU(),
                                 nn.Linear(d_model, d_model))
        self.slot = nn.Parameter(torch.zeros(NEIGHBOURS + 1, d_model))
        nn.init.normal_(self.slot, std=0.02)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.net(x) + self.slot)


class GridEncoder(nn.Module):
    """(B, C, H, W) -> (B, 4, d): a first convolution (``kernel`` x ``kernel``, ``stride``; a patchify when
    they are equal), a strided 3x3 convolution to d channels, average-pooled to 2 x 2, layer-normalised."""

    adapter_targets = ("conv1", "conv2")

    def __init__(self, channels: int, d_model: int, *, hidden: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, kernel, stride=stride, padding=(kernel - stride + 1) // 2)
        self.conv2 = nn.Conv2d(hidden, d_model, 3, stride=2, padding=1)
        self.pos = nn.Parameter(torch.zeros(4, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        x = F.adaptive_avg_pool2d(x, 2)                            # (B, d, 2, 2)
        return self.norm(x.flatten(2).transpose(1, 2) + self.pos)  # (B, 4, d)


class LidarEncoder(nn.Module):
    """(B, 2, beams) -> (B, 4, d): a 1-D convolution over neighbouring beams (kernel 3, circular padding:
    the beams go round 360 degrees), a strided one (kernel = stride = 4) to d channels, average-pooled to 4
    sectors, plus a learned sector embedding, layer-normalised."""

    adapter_targets = ("conv1", "conv2")

    def __init__(self, d_model: int, *, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(LIDAR_CHANNELS, hidden, 3, padding=1, padding_mode="circular")
        self.conv2 = nn.Conv1d(hidden, d_model, 4, stride=4)
        self.pos = nn.Parameter(torch.zeros(4, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        x = F.adaptive_avg_pool1d(x, 4)                            # (B, d, 4)
        return self.norm(x.transpose(1, 2) + self.pos)             # (B, 4, d)


def _camera_encoder(cfg: ModelConfig) -> nn.Module:
    """The camera encoder of ``cfg.camera_encoder`` (same token contract: (B, 1, H, W) -> (B, 4, d))."""
    if cfg.camera_encoder == "efficientnet-lite0":
        from .efficientnet import EfficientNetCameraEncoder

        return EfficientNetCameraEncoder(cfg.d_model)
    return GridEncoder(1, cfg.d_model, hidden=max(8, cfg.d_model // 2), kernel=4, stride=4)


def _head(width: int, task: str) -> nn.Linear:
    spec = task_spec(task)
    out = len(spec.classes) if spec.kind == "classification" else int(np.prod(spec.shape, dtype=np.int64))
    return nn.Linear(width, out)


class M3TModel(nn.Module):
    """Encoders -> shared trunk -> one head per task. ``forward`` returns {task: output}: logits (B, classes)
    for a classification task, (B, *shape) scaled values for a regression task.

    Inputs, in `MODALITIES` order: kinematics float32 (B, V, F); occupancy float32 (B, 3, G, G); camera
    uint8 (B, 1, H, W) (scaled to [-0.5, 0.5] here, so batches can stay uint8 until they are used); lidar
    float32 (B, 2, LIDAR_BEAMS).
    """

    def __init__(self, cfg: ModelConfig, tasks: tuple[str, ...]) -> None:
        super().__init__()
        d = cfg.d_model
        self.tasks = tuple(tasks)
        self.encoders = nn.ModuleDict({
            "kinematics": KinematicsEncoder(d),
            "occupancy": GridEncoder(3, d, hidden=max(8, d // 4), kernel=3, stride=1),
            "camera": _camera_encoder(cfg),
            "lidar": LidarEncoder(d, hidden=max(8, d // 4)),
        })
        self.modality = nn.Parameter(torch.zeros(len(MODALITIES), d))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.normal_(self.modality, std=0.02)
        nn.init.normal_(self.cls, std=0.02)
        preset = PRESETS.get(cfg.preset)
        width = preset.width(cfg)
        self.proj = nn.Linear(d, width) if preset.frozen_trunk else nn.Identity()  # into a packaged trunk
        self.trunk = preset.build(cfg, TOKENS)
        self.heads = nn.ModuleDict({t: _head(width, t) for t in self.tasks})

    def forward(self, kinematics: torch.Tensor, occupancy: torch.Tensor, camera: torch.Tensor,
                lidar: torch.Tensor | None = None, *, modalities: Sequence[str] | None = None,
                tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        inputs = {"kinematics": kinematics, "occupancy": occupancy,
                  "camera": camera.to(torch.float32) * (1.0 / 255.0) - 0.5, "lidar": lidar}
        use = set(MODALITIES if modalities is None else modalities)
        if lidar is None:
            use.discard("lidar")
        if not use:
            raise ValueError("the model needs at least one modality")
        parts = [self.cls.expand(kinematics.shape[0], -1, -1)]
        keep, offset = [0], 1
        for i, m in enumerate(MODALITIES):
            n = MODALITY_TOKENS[m]
            if m in use:
                parts.append(self.encoders[m](inputs[m]) + self.modality[i])
                keep.extend(range(offset, offset + n))
            offset += n
        positions = None if len(keep) == TOKENS else torch.tensor(keep)
        z = self.trunk(self.proj(torch.cat(parts, dim=1)), positions)[:, 0]
        out = {}
        for t, head in self.heads.items():
            if tasks is None or t in tasks:
                y = head(z)
                spec = task_spec(t)
                out[t] = y if spec.kind == "classification" else y.view(-1, *spec.shape)
        return out


def init_head(model: M3TModel, task: str, seed: int) -> None:
    """Re-initialise ``task``'s head (a new task, onboarded) from (seed, "head-init", the task's index in
    `vfedsim.learn.scenes.TASKS`): the default `nn.Linear` initialisation, drawn from that stream only."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(int_seed(seed, "head-init", list(TASKS).index(task)))
        model.heads[task].reset_parameters()


def build_model(cfg: LearningConfig, *, seed: int | None = None) -> M3TModel:
    """A freshly initialised M3T model; its initial weights come from (``seed`` or data.seed, "model-init"),
    never from the global torch random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int_seed(cfg.data.seed if seed is None else seed, "model-init"))
        return M3TModel(cfg.model, cfg.tasks)


wrap_lora = wrap_peft
"""`vfedsim.learn.adapters.wrap_peft` (any ``peft.method``, LoRA by default)."""


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the trainable parameters, in registration order."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the trainable parameters (LoRA adapters + heads), in registration order."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into the model's trainable parameters; its keys must be exactly those parameters."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if params.keys() != state.keys():
        missing, extra = params.keys() - state.keys(), state.keys() - params.keys()
        raise KeyError(f"trainable state mismatch: missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(state[n])


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


# ------------------------------------------------------------------------------------------ batches
@dataclass(frozen=True, eq=False)
class TensorData:
    """A `Dataset` as torch tensors (sharing memory with the numpy arrays); camera stays uint8."""

    kinematics: torch.Tensor
    occupancy: torch.Tensor
    camera: torch.Tensor
    lidar: torch.Tensor
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.kinematics.shape[0])

    def inputs(self, idx: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """(kinematics, occupancy, camera, lidar) of rows ``idx`` (all rows when None), the model's arguments."""
        if idx is None:
            return self.kinematics, self.occupancy, self.camera, self.lidar
        return self.kinematics[idx], self.occupancy[idx], self.camera[idx], self.lidar[idx]

    def targets(self, idx: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return dict(self.labels) if idx is None else {t: y[idx] for t, y in self.labels.items()}

    def subset(self, idx: torch.Tensor) -> TensorData:
        return TensorData(*self.inputs(idx), self.targets(idx))


def to_tensors(ds: Dataset, tasks: Sequence[str]) -> TensorData:
    """``ds`` as tensors with the labels of ``tasks``. A data set without lidar (made before it existed)
    gets an all-"nothing in range" scan (range 1, speed 0)."""
    lidar = getattr(ds, "lidar", None)
    if lidar is None:
        lidar = np.zeros((len(ds.kinematics), LIDAR_CHANNELS, LIDAR_BEAMS), np.float32)
        lidar[:, 0] = 1.0
    return TensorData(torch.from_numpy(ds.kinematics), torch.from_numpy(ds.occupancy),
                      torch.from_numpy(ds.camera), torch.from_numpy(np.ascontiguousarray(lidar)),
                      {t: torch.from_numpy(ds.labels[t]) for t in tasks})


def multitask_loss(outputs: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The sum over the outputs' tasks of their losses (`vfedsim.learn.mtl.task_losses`)."""
    return sum(task_losses(outputs, labels).values())


def set_torch_threads() -> int:
    """Use ``$VFEDSIM_TORCH_THREADS`` intra-op threads (default 1) and return the number.

    The models vfedsim trains are small: one thread is as fast as several, immune to the OpenMP slow-downs
    seen when another process shares the cores (10x and worse here), and the same on every machine.
    """
    n = int(os.environ.get("VFEDSIM_TORCH_THREADS", "1"))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
