"""Per-entity random streams (DESIGN.md, principle 6).

Every consumer of randomness asks for its own stream by (seed, kind, id), so adding a vehicle or a policy
never reshuffles anyone else's draws, and the same seed reproduces byte for byte. Never use global state
(``np.random.seed``, ``torch.manual_seed`` without a generator).
"""
from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["stream", "seed_sequence", "int_seed"]


def _kind_key(kind: str) -> int:
    # A stable 32-bit key for a kind name (Python's hash() is salted per process).
    return int.from_bytes(hashlib.sha256(kind.encode()).digest()[:4], "little")


def seed_sequence(seed: int, kind: str, entity: int = 0, *extra: int) -> np.random.SeedSequence:
    """The SeedSequence for (seed, kind, entity, *extra); entity ids and extras are non-negative ints."""
    return np.random.SeedSequence([int(seed), _kind_key(kind), int(entity), *map(int, extra)])


def stream(seed: int, kind: str, entity: int = 0, *extra: int) -> np.random.Generator:
    """A numpy Generator (PCG64) for one entity: ``stream(seed, "vehicle", 17)``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, kind, entity, *extra)))


def int_seed(seed: int, kind: str, entity: int = 0, *extra: int) -> int:
    """A 63-bit integer seed for libraries that take one (``torch.Generator().manual_seed``)."""
    return int(seed_sequence(seed, kind, entity, *extra).generate_state(2, np.uint64)[0] >> np.uint64(1))
