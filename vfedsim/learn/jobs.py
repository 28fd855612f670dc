"""Training jobs as plain data (no torch import): what a strategy hands to the learner.

A job is (vehicle, base model version, round, shard, seed, the vehicle's modalities and tasks); its result
depends on nothing else, so jobs can be computed lazily, eagerly, in any order or together (DESIGN.md,
principle 3). ``round`` also says which onboarded tasks exist yet (``learning.onboarding``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TrainJob"]


@dataclass(frozen=True, eq=False)
class TrainJob:
    vehicle: int
    round: int
    base_version: int  # global model version the vehicle downloaded
    indices: np.ndarray  # sample indices into the data pool (the vehicle's shard)
    seed: int  # the job's own random seed (shuffling, dropout)
    modalities: tuple[str, ...] | None = None  # the vehicle's sensor suite; None: every modality
    tasks: tuple[str, ...] | None = None  # the vehicle's task set; None: every task of learning.tasks
