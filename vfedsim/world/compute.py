"""On-board compute: FLOPs to seconds and joules, and which device class each vehicle carries.

Simulated compute time is the FLOP count of the local work divided by the device's effective throughput
(DESIGN.md, principle 2), so results never depend on the host. Energy is power x time.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..rng import stream
from ..scenario import DeviceClass

__all__ = ["compute_time_s", "compute_energy_j", "transmit_energy_j", "assign_device_classes"]


def compute_time_s(flops: ArrayLike, flops_per_s: ArrayLike) -> np.ndarray:
    """Compute time [s] = work [FLOP] / effective throughput [FLOP/s]."""
    return np.asarray(flops, dtype=np.float64) / np.asarray(flops_per_s, dtype=np.float64)


def compute_energy_j(seconds: ArrayLike, power_w: ArrayLike) -> np.ndarray:
    """Compute energy [J] = compute power [W] x compute time [s]."""
    return np.asarray(seconds, dtype=np.float64) * np.asarray(power_w, dtype=np.float64)


def transmit_energy_j(seconds: ArrayLike, radio_power_w: ArrayLike) -> np.ndarray:
    """Radio energy [J] = radio power draw [W] x time on air [s]."""
    return np.asarray(seconds, dtype=np.float64) * np.asarray(radio_power_w, dtype=np.float64)


def assign_device_classes(classes: Sequence[DeviceClass], n: int, seed: int) -> np.ndarray:
    """(n,) int64 index into ``classes`` per vehicle, drawn with probability proportional to ``share``.

    Vehicle i draws one uniform number from ``stream(seed, "device", i)``, so its class does not depend on
    how many vehicles there are.
    """
    if not classes:
        raise ValueError("at least one device class is needed")
    cum = np.cumsum([float(c.share) for c in classes])
    cum /= cum[-1]
    u = np.array([stream(seed, "device", i).random() for i in range(int(n))], dtype=np.float64)
    return np.minimum(np.searchsorted(cum, u, side="right"), len(classes) - 1).astype(np.int64)
