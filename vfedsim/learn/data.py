"""Data sets of multi-modal, multi-task samples from highway-env scenes (or a Waymo Open Dataset v2 copy, see
`vfedsim.learn.waymo`), cached on disk, and non-IID shards.

`load_data` returns a `DataBundle`: the *pool* of target-group samples that vehicles' shards are cut from,
a held-out *test* split of the same groups (other episodes), and the *source* split that the foundation
model is pretrained on. Samples are simulated episode by episode (`vfedsim.learn.scenes` says what a sample
holds and how its labels are defined), in worker processes when the machine has several cores; the result
does not depend on how many. A bundle is cached as one ``.npz`` keyed by the settings that shape it.
Shards follow the vehicle's home group and, optionally, a per-vehicle Dirichlet draw over the classes of one
task (``DataConfig.label_skew``, Hsu et al. 2019). This module needs numpy and highway-env only (no torch).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..rng import int_seed, stream
from ..scenario import DataConfig, LabelSkew, SceneGroup
from .scenes import (EPISODE_SAMPLES, GRID_CELLS, KINEMATIC_FEATURES, LIDAR_BEAMS, MODALITIES, NEIGHBOURS,
                     TASK_CLASSES, TASKS, episode, make_env)

__all__ = [
    "Dataset", "DataBundle", "load_data", "shard_indices", "cache_dir", "data_key", "generate_split",
    "generate_splits", "atomic_write", "TASK_CLASSES", "DATA_VERSION", "KINEMATIC_FEATURES", "NEIGHBOURS",
    "GRID_CELLS", "EPISODE_SAMPLES", "TASKS", "MODALITIES", "LIDAR_BEAMS", "label_array",
]

DATA_VERSION = 3
"""Bump when generation changes: it is part of the cache key."""


# ------------------------------------------------------------------------------------------ containers
@dataclass(frozen=True)
class Dataset:
    """Index-aligned samples: row i of every array is sample i."""

    kinematics: np.ndarray          # float32 (n, V, F)
    occupancy: np.ndarray           # float32 (n, 3, G, G)
    camera: np.ndarray              # uint8 (n, 1, H, W)
    lidar: np.ndarray               # float32 (n, 2, LIDAR_BEAMS): distance / range, closing speed / 10 m/s
    labels: dict[str, np.ndarray]   # every task in TASKS: int64 (n,) class index, or float32 (n, *shape)
    group: np.ndarray               # int64 (n,): index into DataConfig.groups (source_groups for `source`)

    def __len__(self) -> int:
        return int(self.group.shape[0])

    def subset(self, idx: np.ndarray) -> Dataset:
        idx = np.asarray(idx, dtype=np.int64)
        return Dataset(self.kinematics[idx], self.occupancy[idx], self.camera[idx], self.lidar[idx],
                       {t: y[idx] for t, y in self.labels.items()}, self.group[idx])

    @staticmethod
    def concatenate(parts: Sequence[Dataset]) -> Dataset:
        return Dataset(np.concatenate([p.kinematics for p in parts]),
                       np.concatenate([p.occupancy for p in parts]),
                       np.concatenate([p.camera for p in parts]),
                       np.concatenate([p.lidar for p in parts]),
                       {t: np.concatenate([p.labels[t] for p in parts]) for t in TASKS},
                       np.concatenate([p.group for p in parts]))


def label_array(task: str, values) -> np.ndarray:
    """The labels of ``task`` as stored in a `Dataset`: int64 (n,) or float32 (n, *shape)."""
    spec = TASKS[task]
    if spec.kind == "classification":
        return np.asarray(values, dtype=np.int64).reshape(-1)
    return np.asarray(values, dtype=np.float32).reshape((-1, *spec.shape))


@dataclass(frozen=True)
class DataBundle:
    pool: Dataset    # target groups, samples_per_group each: vehicles' shards come from here
    test: Dataset    # held-out target-group samples (other episodes), test_samples in total
    source: Dataset  # pretrain_samples from source_groups, for central pretraining only


# ------------------------------------------------------------------------------------------ generation
@dataclass(frozen=True)
class _Task:
    """One episode to simulate: the ``episode``-th of group ``g`` of ``split``, at most ``limit`` samples."""

    group: SceneGroup
    g: int
    split: str
    episode: int
    limit: int
    seed: int
    image_px: int


_ENVS: dict[tuple[str, int], tuple] = {}   # per process: one env + viewer per (scene group, image size)


def _run_task(task: _Task) -> list[tuple]:
    key = (task.group.model_dump_json(), task.image_px)
    if key not in _ENVS:
        _ENVS[key] = make_env(task.group, task.image_px)
    env, viewer = _ENVS[key]
    ep_seed = int_seed(task.seed, f"data-{task.split}", task.g, task.episode) % 2**31
    rng = stream(task.seed, f"data-{task.split}-observers", task.g, task.episode)
    return episode(env, viewer, task.group, ep_seed, rng, task.limit)


def _workers(n_tasks: int) -> int:
    """Worker processes for generation: ``$VFEDSIM_DATA_WORKERS``, else one per CPU core (at most 4); 1 where
    fork is unavailable. Results do not depend on it."""
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        return 1
    wanted = int(os.environ.get("VFEDSIM_DATA_WORKERS", "0")) or min(os.cpu_count() or 1, 4)
    return max(1, min(wanted, n_tasks))


def _run_all(tasks: Sequence[_Task]) -> list[list[tuple]]:
    workers = _workers(len(tasks))
    if workers <= 1:
        return [_run_task(t) for t in tasks]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    import highway_env.envs  # noqa: F401  # imported once here; the forked workers inherit it

    # longest first for a balanced pool; results are put back in task order
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i].limit)
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            done = list(pool.map(_run_task, [tasks[i] for i in order]))
    except BrokenProcessPool:  # a worker died (out of memory, a signal): same results, in this process
        return [_run_task(t) for t in tasks]
    out: list[list[tuple]] = [[] for _ in tasks]
    for i, rows in zip(order, done):
        out[i] = rows
    return out


def generate_splits(requests: Sequence[tuple[str, Sequence[SceneGroup], Sequence[int]]], *, seed: int,
                    image_px: int, progress: bool = False) -> list[Dataset]:
    """Samples for several splits at once: ``requests`` holds (split name, groups, samples per group).

    Group g of a split is sampled from episodes 0, 1, ... seeded by (seed, "data-<split>", g, episode),
    ``EPISODE_SAMPLES`` samples each (the last one fewer); if an episode falls short (too
    few vehicles on the road), further episodes make up the rest. The schedule is fixed in advance, so the
    result does not depend on how many worker processes run it.
    """
    per_episode = EPISODE_SAMPLES
    tasks: list[_Task] = []
    for split, groups, counts in requests:
        for g, (group, n) in enumerate(zip(groups, counts)):
            for e in range(-(-n // per_episode)):
                tasks.append(_Task(group, g, split, e, min(per_episode, n - e * per_episode), seed, image_px))
    rows: dict[tuple[str, int], list[tuple]] = {}
    for task, got in zip(tasks, _run_all(tasks)):
        rows.setdefault((task.split, task.g), []).extend(got)
    out = []
    for split, groups, counts in requests:
        parts = []
        for g, (group, n) in enumerate(zip(groups, counts)):
            have = rows.get((split, g), [])
            next_episode = -(-n // per_episode)
            while len(have) < n:  # top up, in order (rare: an episode with few vehicles)
                if next_episode > 10 * (n + 10):
                    raise RuntimeError(f"scene {group.scene!r} yields no samples")
                have.extend(_run_task(_Task(group, g, split, next_episode, n - len(have), seed, image_px)))
                next_episode += 1
            if progress:
                print(f"  data: {split} group {g} ({group.scene}): {n} samples", file=sys.stderr, flush=True)
            if n:
                parts.append(_stack(have, g))
        out.append(Dataset.concatenate(parts) if parts else _empty(image_px))
    return out


def generate_split(groups: Sequence[SceneGroup], counts: Sequence[int], *, seed: int, split: str,
                   image_px: int, progress: bool = False) -> Dataset:
    """``counts[g]`` samples of each group (see `generate_splits`)."""
    return generate_splits([(split, groups, counts)], seed=seed, image_px=image_px, progress=progress)[0]


def _stack(rows: Sequence[tuple], g: int) -> Dataset:
    """Rows (kinematics, occupancy, camera, lidar, labels dict) of `vfedsim.learn.scenes` as a Dataset."""
    kin, occ, cam, lidar, labels = zip(*rows)
    return Dataset(np.stack(kin), np.stack(occ), np.stack(cam), np.stack(lidar),
                   {t: label_array(t, [y[t] for y in labels]) for t in TASKS},
                   np.full(len(rows), g, dtype=np.int64))


def _empty(image_px: int) -> Dataset:
    return Dataset(np.zeros((0, NEIGHBOURS + 1, len(KINEMATIC_FEATURES)), np.float32),
                   np.zeros((0, 3, GRID_CELLS, GRID_CELLS), np.float32),
                   np.zeros((0, 1, image_px, image_px), np.uint8),
                   np.zeros((0, 2, LIDAR_BEAMS), np.float32),
                   {t: label_array(t, np.zeros((0, *TASKS[t].shape))) for t in TASKS}, np.zeros(0, np.int64))


def _near_split(total: int, bins: int) -> list[int]:
    q, r = divmod(total, bins)
    return [q + (1 if i < r else 0) for i in range(bins)]


# ------------------------------------------------------------------------------------------ cache
_SHARD_ONLY = ("cache_dir", "samples_per_vehicle", "home_fraction", "label_skew")


def data_key(cfg: DataConfig) -> str:
    """sha256 (hex, 16 chars) of the settings that change the generated samples, and DATA_VERSION.

    Shard settings (``samples_per_vehicle``, ``home_fraction``, ``label_skew``) and ``cache_dir`` do not
    change the samples and are left out, so sweeps over them share one cached data set. The task specs
    (`TASKS`) and the modalities are part of the key; for ``waymo-v2`` also the names and sizes of the
    Parquet files read.
    """
    fields = cfg.model_dump(mode="json", exclude=set(_SHARD_ONLY))
    tasks = {t: [s.kind, list(s.classes), list(s.shape), s.unit] for t, s in TASKS.items()}
    payload = {"data": fields, "version": DATA_VERSION, "tasks": tasks, "modalities": MODALITIES,
               "lidar_beams": LIDAR_BEAMS}
    if cfg.source == "waymo-v2":   # the files read, so that a changed copy is read again
        from .waymo import fingerprint
        payload["waymo_files"] = fingerprint(cfg.waymo_dir)
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_dir(cfg: DataConfig) -> Path:
    """``cfg.cache_dir``, else ``$VFEDSIM_CACHE``, else ``~/.cache/vfedsim``."""
    root = cfg.cache_dir or os.environ.get("VFEDSIM_CACHE") or Path.home() / ".cache" / "vfedsim"
    return Path(root).expanduser()


def atomic_write(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temporary file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _to_arrays(bundle: DataBundle) -> dict[str, np.ndarray]:
    out = {}
    for split in ("pool", "test", "source"):
        d: Dataset = getattr(bundle, split)
        out.update({f"{split}.kinematics": d.kinematics, f"{split}.occupancy": d.occupancy,
                    f"{split}.camera": d.camera, f"{split}.lidar": d.lidar, f"{split}.group": d.group})
        out.update({f"{split}.label.{t}": y for t, y in d.labels.items()})
    return out


def _from_arrays(arrays) -> DataBundle:
    def split(name: str) -> Dataset:
        return Dataset(arrays[f"{name}.kinematics"], arrays[f"{name}.occupancy"], arrays[f"{name}.camera"],
                       arrays[f"{name}.lidar"], {t: arrays[f"{name}.label.{t}"] for t in TASKS},
                       arrays[f"{name}.group"])
    return DataBundle(split("pool"), split("test"), split("source"))


def load_data(cfg: DataConfig, *, progress: bool = False) -> DataBundle:
    """The data bundle of ``cfg``: read from the cache, or generated (seconds) and cached atomically."""
    path = cache_dir(cfg) / f"data-{data_key(cfg)}.npz"
    if path.is_file():
        try:
            with np.load(path) as arrays:
                return _from_arrays({k: arrays[k] for k in arrays.files})
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # a corrupt or stale file: regenerate it
    if cfg.source == "waymo-v2":
        from .waymo import load_waymo
        bundle = DataBundle(*load_waymo(cfg, progress=progress))
        atomic_write(path, lambda fh: np.savez(fh, **_to_arrays(bundle)))
        return bundle
    pool, test, source = generate_splits(
        [("pool", cfg.groups, [cfg.samples_per_group] * len(cfg.groups)),
         ("test", cfg.groups, _near_split(cfg.test_samples, len(cfg.groups))),
         ("source", cfg.source_groups, _near_split(cfg.pretrain_samples, len(cfg.source_groups)))],
        seed=cfg.seed, image_px=cfg.image_size_px, progress=progress)
    bundle = DataBundle(pool, test, source)
    atomic_write(path, lambda fh: np.savez(fh, **_to_arrays(bundle)))
    return bundle


# ------------------------------------------------------------------------------------------ shards
def shard_indices(pool: Dataset, *, home_group: int, n_samples: int, home_fraction: float,
                  rng: np.random.Generator, label_skew: LabelSkew | None = None) -> np.ndarray:
    """A vehicle's shard: sorted indices into ``pool``, round(home_fraction x n) from its home group and the
    rest uniformly from the other groups (all from home when there is one group). Without replacement while
    a group has enough samples.

    With ``label_skew`` (task T, concentration alpha) the vehicle first draws its class mix
    q ~ Dirichlet(alpha x p) from ``rng``, p being the pool's class frequencies of T (Hsu, Qi & Brown 2019,
    Sec. 3); the home part and the other part each take multinomial(size, q) samples per class (q restricted
    to the classes that part holds, renormalised), drawn per class without replacement while the class has
    enough samples there, with replacement beyond. Without it, the draws are exactly the ones above.
    """
    groups = np.unique(pool.group)
    home = np.flatnonzero(pool.group == home_group)
    others = np.flatnonzero(pool.group != home_group)
    n_home = int(round(home_fraction * n_samples)) if len(others) else n_samples
    n_other = n_samples - n_home
    if home_group not in groups:
        raise ValueError(f"home group {home_group} has no samples (groups {groups.tolist()})")
    if label_skew is not None:
        y = pool.labels[label_skew.task]
        prior = np.bincount(y, minlength=len(TASK_CLASSES[label_skew.task])) / max(len(y), 1)
        present = prior > 0
        mix = np.zeros_like(prior)
        mix[present] = rng.dirichlet(label_skew.alpha * prior[present])
        pick = [_skewed_choice(home, y[home], n_home, mix, rng)]
        if n_other:
            pick.append(_skewed_choice(others, y[others], n_other, mix, rng))
        return np.sort(np.concatenate(pick)).astype(np.int64)
    pick = [rng.choice(home, size=n_home, replace=n_home > len(home))]
    if n_other:
        pick.append(rng.choice(others, size=n_other, replace=n_other > len(others)))
    return np.sort(np.concatenate(pick)).astype(np.int64)


def _skewed_choice(idx: np.ndarray, y: np.ndarray, n: int, mix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` of ``idx`` (labels ``y``) whose classes follow ``mix`` (restricted to the classes present)."""
    have = np.bincount(y, minlength=len(mix))[:len(mix)] > 0
    q = np.where(have, mix, 0.0)
    if q.sum() <= 0:   # the drawn mix has no mass on the classes here: follow this part's own class mix
        q = have / have.sum()
    counts = rng.multinomial(n, q / q.sum())
    pick = []
    for c in np.flatnonzero(counts):
        members = idx[y == c]
        pick.append(rng.choice(members, size=int(counts[c]), replace=counts[c] > len(members)))
    return np.concatenate(pick) if pick else np.zeros(0, np.int64)
