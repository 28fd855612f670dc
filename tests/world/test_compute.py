"""Device compute: FLOPs to seconds and joules, and the per-vehicle device-class draw."""
from __future__ import annotations

import numpy as np
import pytest

from vfedsim.scenario import DeviceClass
from vfedsim.world.compute import assign_device_classes, compute_energy_j, compute_time_s, transmit_energy_j

CLASSES = (DeviceClass(name="a", flops_per_s=1e10, compute_power_w=10, share=3.0),
           DeviceClass(name="b", flops_per_s=1e11, compute_power_w=50, share=1.0))


def test_time_and_energy():
    assert compute_time_s(2e10, 1e10) == pytest.approx(2.0)
    np.testing.assert_allclose(compute_time_s([1e9, 1e11], [1e9, 1e10]), [1.0, 10.0])
    assert compute_energy_j(2.0, 15.0) == pytest.approx(30.0)
    assert transmit_energy_j(0.5, 2.0) == pytest.approx(1.0)


def test_device_classes_by_share_and_per_vehicle():
    dev = assign_device_classes(CLASSES, 4000, seed=1)
    assert set(np.unique(dev)) == {0, 1}
    assert np.mean(dev == 0) == pytest.approx(0.75, abs=0.03)
    np.testing.assert_array_equal(assign_device_classes(CLASSES, 10, seed=1), dev[:10])  # prefix-stable
    assert not np.array_equal(assign_device_classes(CLASSES, 200, seed=2), dev[:200])
    assert np.all(assign_device_classes(CLASSES[:1], 5, seed=0) == 0)
