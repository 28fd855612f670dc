"""The synchronous strategy's clock, pinned with an ideal network and fixed compute times."""
from types import SimpleNamespace

import numpy as np
import pytest
import simpy

from vfedsim.fleet import Fleet
from vfedsim.record import Recorder
from vfedsim.scenario import DeviceClass, parse_scenario
from vfedsim.strategies.base import StrategyContext
from vfedsim.strategies.sync import SyncStrategy
from vfedsim.strategies.transfer import IdealNetwork

PAYLOAD = 1_000_000  # [B]: 1 s at 8 Mbit/s


class FakeLearner:
    """Counts FLOPs as 1e9 per sample, trains by adding 1 to a scalar, and logs which jobs ran."""

    def __init__(self):
        self.version = 0
        self.states = {0: {"w": 0.0}}
        self.trained = []

    def payload_bytes(self):
        return PAYLOAD

    def train_flops(self, n):
        return int(1e9) * int(n)

    def run_jobs(self, jobs):
        self.trained += [(j.vehicle, j.round) for j in jobs]
        return [SimpleNamespace(vehicle=j.vehicle, num_samples=len(j.indices), train_loss=1.0,
                                state={"w": self.states[j.base_version]["w"] + 1.0}) for j in jobs]

    def evaluate(self, state=None):
        return {"maneuver.accuracy": float(self.version)}

    def global_state(self, version=None):
        return self.states[self.version if version is None else version]

    def commit(self, state):
        self.version += 1
        self.states[self.version] = state
        return self.version

    def release(self, version):
        pass


class MeanAggregator:
    def aggregate(self, global_state, updates):
        return {"w": float(np.mean([u.state["w"] for u in updates]))}


class StillMobility:
    """Everyone on the road for ever (the ideal network ignores positions anyway)."""

    def __init__(self, n):
        self.trips = SimpleNamespace(n=n, t_exit_s=np.full(n, 1e9), t_enter_s=np.zeros(n))
        self.n = n

    def state(self, t):
        return SimpleNamespace(active=np.ones(self.n, bool), position_m=np.zeros((self.n, 2)),
                               velocity_mps=np.zeros((self.n, 2)))


class AllSelector:
    def select(self, snapshot, k, rng):
        return snapshot.vehicle_ids[:k]


def build(compute_s, *, deadline, rounds=1, lazy=True):
    n = len(compute_s)
    scenario = parse_scenario({"strategy": {"rounds": rounds, "clients_per_round": n, "deadline_s": deadline,
                                            "lazy": lazy}, "learning": {"data": {"samples_per_vehicle": 1}}})
    env = simpy.Environment()
    rec = Recorder(now=lambda: env.now)
    classes = tuple(DeviceClass(name=f"d{i}", flops_per_s=1e9 / c, compute_power_w=10.0) for i, c in enumerate(compute_s))
    fleet = Fleet(device_classes=classes, device=np.arange(n), home_group=np.zeros(n, int), n_samples=np.ones(n, int))
    learner = FakeLearner()
    ctx = StrategyContext(env=env, scenario=scenario, network=IdealNetwork(env, rate_bps=8e6), mobility=StillMobility(n),
                          fleet=fleet, learner=learner, selector=AllSelector(), aggregator=MeanAggregator(),
                          recorder=rec, shards=lambda v: np.array([v]))
    env.process(SyncStrategy(ctx).run())
    env.run()
    return rec, learner


def test_round_lasts_as_long_as_its_slowest_participant():
    rec, learner = build([1.0, 2.0, 5.0], deadline=100.0)
    rounds = rec.rounds()
    # 1 s download + 5 s compute + 1 s upload for the slowest
    assert rounds.loc[1, "sim_time_s"] == pytest.approx(7.0)
    assert rounds.loc[1, "clients_arrived"] == 3
    assert rounds.loc[1, "bytes_up"] == 3 * PAYLOAD and rounds.loc[1, "bytes_down"] == 3 * PAYLOAD


def test_deadline_drops_late_updates_which_are_never_trained():
    rec, learner = build([1.0, 2.0, 5.0], deadline=4.5)
    rounds = rec.rounds()
    assert rounds.loc[1, "sim_time_s"] == pytest.approx(4.5)
    assert rounds.loc[1, "clients_arrived"] == 2 and rounds.loc[1, "clients_dropped"] == 1
    events = rec.events()
    drop = events[events["kind"] == "dropped"]
    assert drop["vehicle"].tolist() == [2] and drop["cause"].tolist() == ["deadline"]
    assert drop["time_s"].tolist() == [pytest.approx(4.5)]
    assert sorted(learner.trained) == [(0, 1), (1, 1)]  # lazy: the dropped job never ran


def test_eager_trains_every_computed_job_but_records_the_same():
    rec_lazy, _ = build([1.0, 2.0, 3.0], deadline=4.5, rounds=2)
    rec_eager, learner = build([1.0, 2.0, 3.0], deadline=4.5, rounds=2, lazy=False)
    pd_lazy, pd_eager = rec_lazy.rounds(), rec_eager.rounds()
    assert pd_lazy.equals(pd_eager)
    assert (2, 1) in learner.trained  # computed (compute ends at 4 s) though its upload missed the deadline


def test_compute_time_is_flops_over_device_speed():
    rec, _ = build([0.25, 3.0], deadline=100.0)
    ev = rec.events()
    compute = ev[ev["kind"] == "compute_end"].set_index("vehicle")["duration_s"]
    assert compute[0] == pytest.approx(0.25) and compute[1] == pytest.approx(3.0)
    energy = ev[ev["kind"] == "compute_end"].set_index("vehicle")["energy_j"]
    assert energy[1] == pytest.approx(30.0)  # 10 W x 3 s


def test_deadline_during_compute_charges_the_energy_spent_so_far():
    rec, _ = build([1.0, 10.0], deadline=4.5)
    ev = rec.events()
    cut = ev[(ev["kind"] == "compute_end") & (ev["vehicle"] == 1)]
    assert cut["cause"].tolist() == ["deadline"]
    assert cut["duration_s"].tolist() == [pytest.approx(3.5)]  # from 1 s (download done) to 4.5 s
    assert cut["energy_j"].tolist() == [pytest.approx(35.0)]
