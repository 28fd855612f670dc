"""Parameter-efficient adapters on the frozen trunk, injected by ``peft`` (``inject_adapter_in_model``).

Methods (``learning.peft.method``; the options are documented on `vfedsim.scenario.PeftConfig`):

- ``lora``: W x + (alpha / r) B A x, A (r x in) random, B (out x r) zero (Hu et al., ICLR 2022).
- ``loha``: W + (alpha / r) (W1a W1b) ⊙ (W2a W2b), low-rank Hadamard product (Hyeon-Woo et al., ICLR 2022).
- ``lokr``: W + (alpha / r) W1 ⊗ W2, a Kronecker product with a low-rank W2 (Yeh et al., ICLR 2024).
- ``ia3``: l ⊙ (W x) for targets, W (l ⊙ x) for feedforward modules, l initialised to 1 (Liu et al. 2022).

Each starts as the identity (one factor zero, or IA3's vectors one), so a wrapped model computes exactly what
the pretrained one does. Random initial factors come from (seed, "<method>-init") ("lora-init" for LoRA),
never from the global random state. After wrapping, only the adapters and the task heads are trainable.
"""
from __future__ import annotations

import torch
from torch import nn

from ..rng import int_seed
from ..scenario import PeftConfig

__all__ = ["ADAPTER_PREFIX", "wrap_peft", "peft_config", "module_group", "is_adapter"]

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


def is_adapter(name: str) -> bool:
    """Whether parameter ``name`` belongs to an adapter (of any method) inside the trunk."""
    return name.startswith("trunk.") and any(p in name for p in ADAPTER_PREFIX.values())


def wrap_peft(model: nn.Module, cfg: PeftConfig, *, seed: int) -> nn.Module:
    """Inject ``cfg.method`` adapters into ``model.trunk``'s ``cfg.target_modules`` (in place) and freeze all
    but the adapters and ``model.heads``. Returns the model."""
    from peft import inject_adapter_in_model

    label = "lora-init" if cfg.method == "lora" else f"{cfg.method}-init"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int_seed(seed, label))
        inject_adapter_in_model(peft_config(cfg), model.trunk)
    for name, p in model.named_parameters():
        p.requires_grad_(is_adapter(name) or name.startswith("heads."))
    return model


def module_group(name: str) -> str:
    """The payload group of a trainable parameter: ``trunk.<method>`` for the trunk's adapters,
    ``heads.<task>`` for a task head, the first part of the name otherwise (``mtl`` for the log-variances)."""
    parts = name.split(".")
    if name.startswith("trunk."):
        for method, prefix in ADAPTER_PREFIX.items():
            if prefix in name:
                return f"trunk.{method}"
        return "trunk"
    if parts[0] == "heads" and len(parts) > 1:
        return f"heads.{parts[1]}"
    return parts[0]
