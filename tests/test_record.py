"""The run summary's fairness: Jain's index over the vehicles that could have been selected."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vfedsim.record import EVENT_COLUMNS, Recorder, jain_index


def test_jain_index_bounds() -> None:
    assert jain_index(np.array([3, 3, 3])) == pytest.approx(1.0)
    assert jain_index(np.array([5, 0, 0, 0])) == pytest.approx(0.25)
    assert jain_index(np.array([1, 2])) == pytest.approx(9 / 10)
    assert math.isnan(jain_index(np.zeros(3))) and math.isnan(jain_index(np.zeros(0)))


def test_fairness_ignores_vehicles_that_were_never_on_the_road_during_the_run() -> None:
    rounds = pd.DataFrame({"round": [0, 1], "sim_time_s": [0.0, 100.0], "bytes_up": [0, 10], "bytes_down": [0, 10],
                           "clients_selected": [0, 2], "clients_arrived": [0, 2], "maneuver.accuracy": [0.5, 0.6]})
    vehicles = pd.DataFrame({"times_selected": [2, 2, 0, 0], "energy_compute_j": 0.0, "energy_tx_j": 0.0,
                             # 2 and 3 arrive after the run's 100 s: they could never have been selected
                             "t_enter_s": [0.0, 10.0, 150.0, 300.0], "t_exit_s": [90.0, 200.0, 400.0, 500.0]})
    summary = Recorder.summary(rounds, pd.DataFrame(columns=EVENT_COLUMNS), vehicles)
    assert summary["jain_fairness_selected"] == pytest.approx(1.0)
    assert summary["vehicles_present"] == 2 and summary["vehicles"] == 4
