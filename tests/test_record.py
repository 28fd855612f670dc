"""The run summary: fairness (Jain's index over the vehicles that could have been selected) and best values."""
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


def test_best_is_the_smallest_loss_or_error_and_the_largest_score() -> None:
    rounds = pd.DataFrame({"round": [0, 1, 2], "sim_time_s": [0.0, 10.0, 20.0], "bytes_up": 0, "bytes_down": 0,
                           "clients_selected": 0, "clients_arrived": 0,
                           "maneuver.accuracy": [0.5, 0.7, 0.6], "maneuver.loss": [1.0, 0.4, 0.6],
                           "ttc.mae": [2.0, 1.5, 1.8], "trajectory.ade": [9.0, 4.0, 5.0],
                           "trajectory.fde": [12.0, 8.0, 7.0]})
    vehicles = pd.DataFrame({"times_selected": [0], "energy_compute_j": 0.0, "energy_tx_j": 0.0,
                             "t_enter_s": [0.0], "t_exit_s": [30.0]})
    best = Recorder.summary(rounds, pd.DataFrame(columns=EVENT_COLUMNS), vehicles)["best"]
    assert best == {"maneuver.accuracy": 0.7, "maneuver.loss": 0.4, "ttc.mae": 1.5, "trajectory.ade": 4.0,
                    "trajectory.fde": 7.0}
