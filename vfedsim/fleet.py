"""The fleet: who the vehicles are, beyond where they drive.

Each vehicle has a device class (on-board compute), a home data group (its non-IID data distribution), a
shard size, a sensor suite (the modalities it has) and a task set (the tasks it trains). Everything is
drawn from the vehicle's own stream, ``stream(seed, "fleet", id)``, in that order (home group, then suite,
then task set; a choice among one option draws nothing), so adding vehicles, suites or task sets leaves
everyone else's draws as they were (DESIGN.md, principle 6).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import ScenarioError
from .rng import stream
from .scenario import DeviceClass, Scenario, SensorSuite, TaskSet
from .world.compute import assign_device_classes

__all__ = ["Fleet", "build_fleet", "check_fleet"]

FULL_SUITE = SensorSuite(name="full", modalities=("kinematics", "occupancy", "camera", "lidar"))


@dataclass(frozen=True)
class Fleet:
    """Per-vehicle attributes as arrays indexed by vehicle id (the same ids as `Trips`)."""

    device_classes: tuple[DeviceClass, ...]
    device: np.ndarray  # (N,) int: index into device_classes
    home_group: np.ndarray  # (N,) int: index into learning.data.groups
    n_samples: np.ndarray  # (N,) int: local shard size
    sensor_suites: tuple[SensorSuite, ...] = (FULL_SUITE,)
    suite: np.ndarray | None = None  # (N,) int: index into sensor_suites (None: all vehicles have the first)
    task_sets: tuple[TaskSet, ...] | None = None  # None: every vehicle trains every task
    task_set: np.ndarray | None = None  # (N,) int: index into task_sets

    @property
    def n(self) -> int:
        return int(self.device.shape[0])

    @cached_property
    def flops_per_s(self) -> np.ndarray:
        """(N,) effective training throughput [FLOP/s]."""
        return np.array([d.flops_per_s for d in self.device_classes])[self.device]

    @cached_property
    def compute_power_w(self) -> np.ndarray:
        return np.array([d.compute_power_w for d in self.device_classes])[self.device]

    @cached_property
    def radio_power_w(self) -> np.ndarray:
        return np.array([d.radio_power_w for d in self.device_classes])[self.device]

    def device_name(self, vehicle: int) -> str:
        return self.device_classes[int(self.device[vehicle])].name

    def suite_of(self, vehicle: int) -> SensorSuite:
        return self.sensor_suites[0 if self.suite is None else int(self.suite[vehicle])]

    def modalities(self, vehicle: int) -> tuple[str, ...]:
        """The modalities of the vehicle's sensor suite."""
        return tuple(self.suite_of(vehicle).modalities)

    def tasks(self, vehicle: int) -> tuple[str, ...] | None:
        """The tasks of the vehicle's task set; None: every task of ``learning.tasks``."""
        if self.task_sets is None or self.task_set is None:
            return None
        return tuple(self.task_sets[int(self.task_set[vehicle])].tasks)

    def task_set_name(self, vehicle: int) -> str:
        return "all" if self.task_sets is None or self.task_set is None else \
            self.task_sets[int(self.task_set[vehicle])].name


def _choose(rng: np.random.Generator, shares: list[float]) -> int:
    """An index drawn with probability proportional to ``shares``; one option draws nothing."""
    if len(shares) == 1:
        return 0
    cum = np.cumsum(shares)
    return int(min(np.searchsorted(cum / cum[-1], rng.random(), side="right"), len(shares) - 1))


def check_fleet(scenario: Scenario) -> None:
    """Cross-section checks the schema cannot make: every task set's tasks are in ``learning.tasks``."""
    tasks = scenario.learning.tasks
    for i, ts in enumerate(scenario.fleet.task_sets or ()):
        unknown = [t for t in ts.tasks if t not in tasks]
        if unknown:
            raise ScenarioError(f"fleet.task_sets.{i}.tasks", f"tasks {unknown} are not in learning.tasks",
                                allowed=list(tasks))


def build_fleet(scenario: Scenario, n_vehicles: int) -> Fleet:
    """Draw every vehicle's device class, home data group, sensor suite and task set from its own stream."""
    seed = scenario.seed
    fleet_cfg = scenario.fleet
    classes = fleet_cfg.device_classes
    device = assign_device_classes(classes, n_vehicles, seed)
    n_groups = len(scenario.learning.data.groups)
    suites = tuple(fleet_cfg.sensor_suites)
    task_sets = fleet_cfg.task_sets
    home, suite, task_set = [], [], []
    for i in range(n_vehicles):
        rng = stream(seed, "fleet", i)
        home.append(rng.integers(n_groups))
        suite.append(_choose(rng, [s.share for s in suites]))
        if task_sets is not None:
            task_set.append(_choose(rng, [t.share for t in task_sets]))
    n_samples = np.full(n_vehicles, scenario.learning.data.samples_per_vehicle, dtype=np.int64)
    return Fleet(device_classes=tuple(classes), device=np.asarray(device, dtype=np.int64),
                 home_group=np.array(home, dtype=np.int64), n_samples=n_samples, sensor_suites=suites,
                 suite=np.array(suite, dtype=np.int64),
                 task_sets=None if task_sets is None else tuple(task_sets),
                 task_set=None if task_sets is None else np.array(task_set, dtype=np.int64))
