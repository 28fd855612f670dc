"""Coverage exits stay exact when a vehicle turns between ticks (the mobility model's ``next_change_s``)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from networld import run, world

from vfedsim.world.mobility import Trips


class TurnMobility:
    """One vehicle from (x0, 0) at (+v, 0) m/s that turns at ``t_turn`` to (0, -v) m/s; on the road forever."""

    def __init__(self, x0, v, t_turn, *, announce=True):
        self.x0, self.v, self.t_turn = x0, v, t_turn
        self.trips = Trips(t_enter_s=np.zeros(1), t_exit_s=np.full(1, math.inf), x_enter_m=np.array([x0]),
                           direction=np.ones(1, dtype=np.int8), lane=np.zeros(1, dtype=np.int64),
                           y_m=np.zeros(1), speed_mps=np.array([v]))
        if not announce:
            self.next_change_s = None

    def _one(self, t):
        if t < self.t_turn:
            return (self.x0 + self.v * t, 0.0), (self.v, 0.0)
        return (self.x0 + self.v * self.t_turn, -self.v * (t - self.t_turn)), (0.0, -self.v)

    def positions_of(self, ids, t):
        ids = np.asarray(ids).reshape(-1)
        p, v = self._one(float(t))
        return np.tile(p, (ids.size, 1)), np.tile(v, (ids.size, 1))

    def active_of(self, ids, t):
        return np.ones(np.asarray(ids).reshape(-1).size, dtype=bool)

    def travelled_m(self, ids, t):
        return np.full(np.asarray(ids).reshape(-1).size, self.v * float(t))

    def next_change_s(self, ids, t):
        return np.full(np.asarray(ids).reshape(-1).size, self.t_turn if t < self.t_turn else math.inf)


def test_a_turn_between_ticks_moves_the_exit_time():
    # 6 m inside the disc's edge, driving out at 25 m/s; at 0.2 s (1 m inside) it turns to -y: from
    # (R - 1, 0) it leaves where (25 s)^2 = R^2 - (R - 1)^2, i.e. s = sqrt(2R - 1) / 25 after the turn
    R = world([(0.0, 0.0, 0.0, 0.0, math.inf)])[2].coverage_radius_m
    env, net, radio, mob = world([], mobility=TurnMobility(R - 6.0, 25.0, 0.2))
    (res,) = run(env, net.transfer(0, 10**13, "up"))
    assert res.cause == "left_coverage"
    assert res.end_s == pytest.approx(0.2 + math.sqrt(2 * R - 1.0) / 25.0, rel=1e-12)
    assert net.dwell_time_s(0) == 0.0


def test_without_next_change_the_old_velocity_exit_stands():
    # a mobility model without next_change_s: the exit computed at the start (before the turn) ends the flow
    R = world([(0.0, 0.0, 0.0, 0.0, math.inf)])[2].coverage_radius_m
    env, net, radio, _ = world([], mobility=TurnMobility(R - 6.0, 25.0, 0.2, announce=False))
    (res,) = run(env, net.transfer(0, 10**13, "up"))
    assert res.cause == "left_coverage" and res.end_s == pytest.approx(6.0 / 25.0, rel=1e-9)


def test_turn_then_completion_is_exact():
    # a turn does not change the rate (rates change at ticks); a small transfer completes before any tick
    R = world([(0.0, 0.0, 0.0, 0.0, math.inf)])[2].coverage_radius_m
    env, net, radio, mob = world([], mobility=TurnMobility(R - 60.0, 25.0, 0.1))
    pos, _ = mob.positions_of([0], 0.0)
    rate = float(radio.rate_bps([0], pos, [0], [0.0], uplink=True)[0])
    nbytes = int(rate * 0.3 / 8)
    (res,) = run(env, net.transfer(0, nbytes, "up"))
    assert res.ok and res.end_s == pytest.approx(8 * nbytes / rate, rel=1e-12)
