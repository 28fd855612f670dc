"""Parameter-efficient adapters on the frozen trunk, injected by ``peft`` (``inject_adapter_in_model``).

Methods (``learning.peft.method``; the options are documented on `vfedsim.scenario.PeftConfig`):

- ``lora``: W x + (alpha / r) B A x, A (r x in) random, B (out x r) zero (Hu et al., ICLR 2022).
- ``loha``: W + (alpha / r) (W1a W1b) ⊙ (W2a W2b), low-rank Hadamard product (Hyeon-Woo et al., ICLR 2022).
- ``lokr``: W + (alpha / r) W1 ⊗ W2, a Kronecker product with a low-rank W2 (Yeh et al., ICLR 2024).
- ``ia3``: l ⊙ (W x) for targets, W (l ⊙ x) for feedforward modules, l initialised to 1 (Liu et al. 2022).

Placement (``learning.peft.adapters``): ``shared`` puts ``method`` adapters on the trunk's targets (one
module, shared by every modality and task); ``per-modality`` puts LoRA (``rank``, ``alpha``, ``dropout``) on
each modality encoder's layers (`adapter_targets`: the kinematics MLP's linears, the grid, camera and lidar
encoders' convolutions; peft's LoRA has Conv1d/Conv2d layers; with ``camera_encoder: efficientnet-lite0``
the camera's projection ``proj`` from the frozen EfficientNet features, whose own layers are not adapted),
one module per modality and none on the trunk; ``per-modality+shared`` does both, as the reference (camera /
LiDAR / text adapters plus a shared one).

Each starts as the identity (one factor zero, or IA3's vectors one), so a wrapped model computes exactly what
the pretrained one does. Random initial factors come from (seed, "<method>-init") ("lora-init" for LoRA)
for the trunk and (seed, "lora-init", 1 + the modality's index in MODALITIES) for an encoder, never from the global random state. After
wrapping, only the adapters and the task heads are trainable.

Payload module groups (`module_group`): ``trunk.<method>`` (the shared adapter), ``encoder.<modality>``
(a modality's adapter), ``heads.<task>``, ``mtl``. A vehicle uploads the groups it trained.
"""
from __future__ import annotations

import torch
from torch import nn

from ..rng import int_seed
from ..scenario import PeftConfig

__all__ = ["ADAPTER_PREFIX", "wrap_peft", "peft_config", "encoder_lora_config", "module_group", "is_adapter"]

ADAPTER_PREFIX = {"lora": "lora_", "ia3": "ia3_", "loha": "hada_", "lokr": "lokr_"}
"""The prefix of each method's parameter names inside the wrapped layers (peft's tuner ``prefix``)."""


def peft_config(cfg: PeftConfig):
    """The ``peft`` config object for ``cfg`` (all the trunk's adapters are named ``default``)."""
    import peft

    targets = list(cfg.target_modules)
    if cfg.method == "lora":
        return peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets)
    if cfg.method == "ia3":
        return peft.IA3Config(target_modules=targets, feedforward_modules=list(cfg.ia3_feedforward))
    if cfg.method == "loha":
        return peft.LoHaConfig(r=cfg.rank, alpha=cfg.alpha, rank_dropout=cfg.rank_dropout,
                               module_dropout=cfg.module_dropout, target_modules=targets)
    if cfg.method == "lokr":
        return peft.LoKrConfig(r=cfg.rank, alpha=cfg.alpha, rank_dropout=cfg.rank_dropout,
                               module_dropout=cfg.module_dropout, decompose_both=cfg.decompose_both,
                               decompose_factor=cfg.decompose_factor, target_modules=targets)
    raise ValueError(f"unknown PEFT method {cfg.method!r}")


def encoder_lora_config(cfg: PeftConfig, targets: tuple[str, ...]):
    """The LoRA config of one modality encoder's adapter (its layers ``targets``)."""
    import peft

    return peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(targets))


def is_adapter(name: str) -> bool:
    """Whether parameter ``name`` belongs to an adapter (of any method) inside the trunk or an encoder."""
    return name.startswith(("trunk.", "encoders.")) and any(p in name for p in ADAPTER_PREFIX.values())


def wrap_peft(model: nn.Module, cfg: PeftConfig, *, seed: int) -> nn.Module:
    """Inject the adapters of ``cfg.adapters`` (in place): ``cfg.method`` on ``model.trunk``'s
    ``cfg.target_modules`` and/or LoRA on each of ``model.encoders``; freeze all but the adapters and
    ``model.heads``. Returns the model."""
    from peft import inject_adapter_in_model

    if cfg.adapters in ("shared", "per-modality+shared"):
        label = "lora-init" if cfg.method == "lora" else f"{cfg.method}-init"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int_seed(seed, label))
            inject_adapter_in_model(peft_config(cfg), model.trunk)
    if cfg.adapters in ("per-modality", "per-modality+shared"):
        for i, encoder in enumerate(model.encoders.values()):  # entity i + 1: the modality's index + 1
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int_seed(seed, "lora-init", i + 1))
                inject_adapter_in_model(encoder_lora_config(cfg, encoder.adapter_targets), encoder)
    for name, p in model.named_parameters():
        p.requires_grad_(is_adapter(name) or name.startswith("heads."))
    return model


def module_group(name: str) -> str:
    """The payload group of a trainable parameter: ``trunk.<method>`` for the trunk's adapters,
    ``encoder.<modality>`` for a modality encoder's adapter, ``heads.<task>`` for a task head, the first part
    of the name otherwise (``mtl`` for the log-variances)."""
    parts = name.split(".")
    if parts[0] == "encoders" and len(parts) > 1:
        return f"encoder.{parts[1]}"
    if name.startswith("trunk."):
        for method, prefix in ADAPTER_PREFIX.items():
            if prefix in name:
                return f"trunk.{method}"
        return "trunk"
    if parts[0] == "heads" and len(parts) > 1:
        return f"heads.{parts[1]}"
    return parts[0]
