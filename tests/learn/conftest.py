"""Learning fixtures: the tiny scenario's data, generated once per session into the session cache."""
from __future__ import annotations

import pytest

from vfedsim.scenario import load_scenario_file


@pytest.fixture(scope="session")
def tiny_learning(tiny_path):
    return load_scenario_file(tiny_path).learning


@pytest.fixture(scope="session")
def tiny_bundle(tiny_learning):
    from vfedsim.learn.data import load_data

    return load_data(tiny_learning.data)


@pytest.fixture(scope="session")
def tiny_pretrained(tiny_learning, tiny_bundle):
    from vfedsim.learn.pretrain import ensure_pretrained

    return ensure_pretrained(tiny_learning, tiny_bundle)


@pytest.fixture
def learner(tiny_learning, tiny_bundle, tiny_pretrained):
    """A fresh Learner (data and pretrained weights come from the session cache)."""
    from vfedsim.learn.train import Learner

    return Learner(tiny_learning, bundle=tiny_bundle, seed=0)
