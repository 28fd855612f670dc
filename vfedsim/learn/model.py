"""The multi-modal multi-task (M3T) model and its parameter-efficient wrapping.

One encoder per modality turns its input into ``d_model`` tokens: kinematics -> one token per vehicle row
(V = 5, a shared MLP plus a learned slot embedding), occupancy grid -> 4 tokens (two convolutions, pooled
to 2 x 2), camera -> 4 tokens (4 x 4 patches, a strided convolution, pooled to 2 x 2). A learned modality embedding is
added to each modality's tokens and a CLS token is prepended. The 14 tokens go through the preset's trunk
(vfedsim.learn.presets: ``m3t-tiny``, a pre-norm transformer of width ``d_model``; ``minilm-l6``, the
packaged MiniLM-L6 encoder, after a linear projection ``proj`` from ``d_model`` to its width 384), whose
attention projections ``q, k, v, o`` and MLP ``fc1, fc2`` are plain `nn.Linear` modules, so that peft's
adapters target them by name. One linear head per task reads the final CLS token.

Fine-tuning: `wrap_peft` (vfedsim.learn.adapters; `wrap_lora` is the same function) injects the adapters
into the trunk and freezes everything except the adapters and the task heads. `trainable_state` is what a
vehicle uploads.
"""
from __future__ import annotations

import os

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..rng import int_seed
from ..scenario import LearningConfig, ModelConfig
from .adapters import wrap_peft
from .data import KINEMATIC_FEATURES, NEIGHBOURS, TASK_CLASSES, Dataset
from .presets import PRESETS

__all__ = ["M3TModel", "build_model", "wrap_lora", "wrap_peft", "trainable_state", "load_trainable_state",
           "trainable_names", "count_parameters", "TensorData", "to_tensors", "multitask_loss",
           "set_torch_threads"]

MODALITY_TOKENS = {"kinematics": NEIGHBOURS + 1, "occupancy": 4, "camera": 4}
TOKENS = 1 + sum(MODALITY_TOKENS.values())
"""CLS + the modalities' tokens."""


class KinematicsEncoder(nn.Module):
    """(B, V, F) -> (B, V, d): a per-vehicle MLP plus a learned embedding of the row (ego, 1st nearest...),
    layer-normalised (each encoder ends in a LayerNorm so that the modalities' tokens share one scale)."""

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


class M3TModel(nn.Module):
    """Encoders -> shared trunk -> one head per task. ``forward`` returns {task: logits (B, classes)}.

    Inputs: kinematics float32 (B, V, F); occupancy float32 (B, 3, G, G); camera uint8 (B, 1, H, W)
    (scaled to [-0.5, 0.5] here, so batches can stay uint8 until they are used).
    """

    def __init__(self, cfg: ModelConfig, tasks: tuple[str, ...]) -> None:
        super().__init__()
        d = cfg.d_model
        self.tasks = tuple(tasks)
        self.kinematics = KinematicsEncoder(d)
        self.occupancy = GridEncoder(3, d, hidden=max(8, d // 4), kernel=3, stride=1)
        self.camera = GridEncoder(1, d, hidden=max(8, d // 2), kernel=4, stride=4)
        self.modality = nn.Parameter(torch.zeros(len(MODALITY_TOKENS), d))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.normal_(self.modality, std=0.02)
        nn.init.normal_(self.cls, std=0.02)
        preset = PRESETS.get(cfg.preset)
        width = preset.width(cfg)
        self.proj = nn.Linear(d, width) if preset.frozen_trunk else nn.Identity()  # into a packaged trunk
        self.trunk = preset.build(cfg, TOKENS)
        self.heads = nn.ModuleDict({t: nn.Linear(width, len(TASK_CLASSES[t])) for t in self.tasks})

    def forward(self, kinematics: torch.Tensor, occupancy: torch.Tensor,
                camera: torch.Tensor) -> dict[str, torch.Tensor]:
        cam = camera.to(torch.float32) * (1.0 / 255.0) - 0.5
        tokens = torch.cat([
            self.cls.expand(kinematics.shape[0], -1, -1),
            self.kinematics(kinematics) + self.modality[0],
            self.occupancy(occupancy) + self.modality[1],
            self.camera(cam) + self.modality[2],
        ], dim=1)
        z = self.trunk(self.proj(tokens))[:, 0]
        return {t: head(z) for t, head in self.heads.items()}


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
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.kinematics.shape[0])

    def inputs(self, idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(kinematics, occupancy, camera) of rows ``idx`` (all rows when None), the model's arguments."""
        if idx is None:
            return self.kinematics, self.occupancy, self.camera
        return self.kinematics[idx], self.occupancy[idx], self.camera[idx]

    def targets(self, idx: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return dict(self.labels) if idx is None else {t: y[idx] for t, y in self.labels.items()}

    def subset(self, idx: torch.Tensor) -> TensorData:
        return TensorData(*self.inputs(idx), self.targets(idx))


def to_tensors(ds: Dataset, tasks: tuple[str, ...]) -> TensorData:
    return TensorData(torch.from_numpy(ds.kinematics), torch.from_numpy(ds.occupancy),
                      torch.from_numpy(ds.camera), {t: torch.from_numpy(ds.labels[t]) for t in tasks})


def multitask_loss(logits: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The sum over tasks of the mean cross-entropy."""
    return sum(F.cross_entropy(logits[t], labels[t]) for t in logits)


def set_torch_threads() -> int:
    """Use ``$VFEDSIM_TORCH_THREADS`` intra-op threads (default 1) and return the number.

    The models vfedsim trains are small: one thread is as fast as several, immune to the OpenMP slow-downs
    seen when another process shares the cores (10x and worse here), and the same on every machine.
    """
    n = int(os.environ.get("VFEDSIM_TORCH_THREADS", "1"))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
