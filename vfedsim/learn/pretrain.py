"""Central pretraining of the foundation model on the source split, cached on disk.

Encoders (every modality, lidar included), trunk and heads are trained together on ``bundle.source``
(``data.source_groups``) with the multi-task loss (the sum over tasks of `vfedsim.learn.mtl.task_losses`:
cross-entropy, or smooth-L1 for regression tasks), Adam, ``pretrain.epochs`` epochs of shuffled
mini-batches. Everything random comes from (data.seed, "pretrain"): the same settings give the same weights.
The result is a ``state_dict`` saved atomically under the data cache, keyed by the data key and the model,
pretraining and task settings; federated fine-tuning starts from it. A preset whose trunk comes from a
package (``minilm-l6``) keeps it frozen here too: only the encoders, the projection and the heads train, and
the cached file holds only those (the trunk is read from the package again, and the package's version is
part of the key). Tasks that are onboarded later (``learning.onboarding``) are not pretrained: their heads
keep their initial weights here, and the learner initialises them again when they arrive.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
import time
from pathlib import Path

import torch

from ..rng import int_seed
from ..scenario import LearningConfig
from .data import DataBundle, Dataset, atomic_write, cache_dir, data_key, load_data
from .model import M3TModel, build_model, multitask_loss, to_tensors, set_torch_threads
from .presets import PRESETS

__all__ = ["pretrain", "pretrain_key", "pretrained_path", "ensure_pretrained", "load_pretrained",
           "pretrain_tasks", "PRETRAIN_VERSION"]

PRETRAIN_VERSION = 2  # 2: lidar encoder, regression tasks, onboarded tasks left out
"""Bump when the model or the pretraining procedure changes: it is part of the cache key."""


def pretrain_tasks(cfg: LearningConfig) -> tuple[str, ...]:
    """The tasks pretraining trains: ``learning.tasks`` less those onboarded later."""
    later = {o.task for o in cfg.onboarding}
    return tuple(t for t in cfg.tasks if t not in later)


def pretrain_key(cfg: LearningConfig) -> str:
    model = cfg.model.model_dump(mode="json")
    if model.get("trunk_init") == "packaged":
        model.pop("trunk_init")   # a key added later: at its default, caches made before it stay valid
    preset = PRESETS.get(cfg.model.preset)
    if preset.fingerprint is not None and cfg.model.trunk_init == "packaged":
        model["weights"] = preset.fingerprint()
    if model.get("camera_encoder") == "conv":
        model.pop("camera_encoder")   # added later: at its default, caches made before it stay valid
    else:                             # a packaged camera encoder: its weights package's version
        from .efficientnet import fingerprint

        model["camera_weights"] = fingerprint()
    key = {"data": data_key(cfg.data), "model": model, "pretrain": cfg.pretrain.model_dump(mode="json"),
           "tasks": list(cfg.tasks), "version": PRETRAIN_VERSION}
    if cfg.onboarding:
        key["pretrain_tasks"] = list(pretrain_tasks(cfg))
    text = json.dumps(key, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _frozen_trunk(cfg: LearningConfig) -> bool:
    return PRESETS.get(cfg.model.preset).frozen_trunk


def pretrained_path(cfg: LearningConfig) -> Path:
    return cache_dir(cfg.data) / f"pretrained-{pretrain_key(cfg)}.pt"


def pretrain(cfg: LearningConfig, source: Dataset, *, progress: bool = False) -> M3TModel:
    """Train a fresh model on ``source``; deterministic for given settings."""
    seed = int_seed(cfg.data.seed, "pretrain")
    set_torch_threads()
    model = build_model(cfg)
    if _frozen_trunk(cfg):
        model.trunk.requires_grad_(False)
    tasks = pretrain_tasks(cfg)
    data = to_tensors(source, tasks)
    n, batch = len(data), cfg.pretrain.batch_size
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.pretrain.lr)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout, if any
        for epoch in range(cfg.pretrain.epochs):
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for start in range(0, n, batch):
                idx = order[start:start + batch]
                loss = multitask_loss(model(*data.inputs(idx), tasks=tasks), data.targets(idx))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            if progress:
                print(f"  pretrain epoch {epoch + 1}/{cfg.pretrain.epochs}: loss {total / n:.4f} "
                      f"({time.perf_counter() - started:.1f} s)", file=sys.stderr, flush=True)
    model.requires_grad_(True)
    model.eval()
    return model


def ensure_pretrained(cfg: LearningConfig, bundle: DataBundle | None = None, *, progress: bool = False) -> Path:
    """The path of the pretrained weights for ``cfg``, pretraining (and caching) them first if needed."""
    path = pretrained_path(cfg)
    if path.is_file():
        return path
    if bundle is None:
        bundle = load_data(cfg.data, progress=progress)
    model = pretrain(cfg, bundle.source, progress=progress)
    state = model.state_dict()
    if _frozen_trunk(cfg):
        state = {k: v for k, v in state.items() if not k.startswith("trunk.")}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))
    return path


def load_pretrained(cfg: LearningConfig, bundle: DataBundle | None = None, *,
                    progress: bool = False) -> M3TModel:
    """A plain (no adapters) M3T model with the pretrained weights of ``cfg``."""
    path = ensure_pretrained(cfg, bundle, progress=progress)
    model = build_model(cfg)
    try:
        _load_state(model, torch.load(path, map_location="cpu", weights_only=True), _frozen_trunk(cfg))
    except (RuntimeError, OSError, EOFError, KeyError, pickle.UnpicklingError):  # corrupt or stale file: pretrain again
        path.unlink(missing_ok=True)
        path = ensure_pretrained(cfg, bundle, progress=progress)
        _load_state(model, torch.load(path, map_location="cpu", weights_only=True), _frozen_trunk(cfg))
    model.eval()
    return model


def _load_state(model: M3TModel, state: dict, frozen_trunk: bool) -> None:
    """Load a cached state; with a frozen (packaged) trunk the file lacks exactly the trunk's weights."""
    if not frozen_trunk:
        model.load_state_dict(state)
        return
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("trunk.") for k in missing):
        raise KeyError(f"pretrained state mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
