"""The fleet: who the vehicles are, beyond where they drive.

Each vehicle has a device class (on-board compute), a home data group (its non-IID data distribution) and
a shard size. Everything is drawn from the vehicle's own stream, ``stream(seed, "fleet", id)``, so adding
vehicles leaves everyone else's draws as they were (DESIGN.md, principle 6).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rng import stream
from .scenario import DeviceClass, Scenario
from .world.compute import assign_device_classes

__all__ = ["Fleet", "build_fleet"]


@dataclass(frozen=True)
class Fleet:
    """Per-vehicle attributes as arrays indexed by vehicle id (the same ids as `Trips`)."""

    device_classes: tuple[DeviceClass, ...]
    device: np.ndarray  # (N,) int: index into device_classes
    home_group: np.ndarray  # (N,) int: index into learning.data.groups
    n_samples: np.ndarray  # (N,) int: local shard size

    @property
    def n(self) -> int:
        return int(self.device.shape[0])

    @property
    def flops_per_s(self) -> np.ndarray:
        """(N,) effective training throughput [FLOP/s]."""
        return np.array([d.flops_per_s for d in self.device_classes])[self.device]

    @property
    def compute_power_w(self) -> np.ndarray:
        return np.array([d.compute_power_w for d in self.device_classes])[self.device]

    @property
    def radio_power_w(self) -> np.ndarray:
        return np.array([d.radio_power_w for d in self.device_classes])[self.device]

    def device_name(self, vehicle: int) -> str:
        return self.device_classes[int(self.device[vehicle])].name


def build_fleet(scenario: Scenario, n_vehicles: int) -> Fleet:
    """Draw every vehicle's device class and home data group from its own stream."""
    seed = scenario.seed
    classes = scenario.fleet.device_classes
    device = assign_device_classes(classes, n_vehicles, seed)
    n_groups = len(scenario.learning.data.groups)
    home = np.array([stream(seed, "fleet", i).integers(n_groups) for i in range(n_vehicles)], dtype=np.int64)
    n_samples = np.full(n_vehicles, scenario.learning.data.samples_per_vehicle, dtype=np.int64)
    return Fleet(device_classes=tuple(classes), device=np.asarray(device, dtype=np.int64), home_group=home,
                 n_samples=n_samples)
