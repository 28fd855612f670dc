"""The synchronous strategy's clock, pinned with an ideal network and fixed compute times.

The fakes and `build` here are shared with test_async_clock.py and test_hierarchical.py.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import simpy

from vfedsim.fleet import Fleet
from vfedsim.record import Recorder
from vfedsim.scenario import DeviceClass, parse_scenario
from vfedsim.strategies import STRATEGIES
from vfedsim.strategies.base import StrategyContext
from vfedsim.strategies.sync import over_committed
from vfedsim.network import IdealNetwork

PAYLOAD = 1_000_000  # [B]: 1 s at 8 Mbit/s


class FakeLearner:
    """Counts FLOPs as 1e9 per sample, trains by adding ``gain(vehicle)`` (default 1) to a scalar ``w``,
    logs which jobs ran, and really forgets released versions (so a premature release fails loudly)."""

    def __init__(self, gain=lambda v: 1.0):
        self.version = 0
        self.states = {0: {"w": 0.0}}
        self.trained = []  # (vehicle, round) of every job run
        self.jobs = []  # every job run
        self.released = []
        self.gain = gain

    def payload_bytes(self):
        return PAYLOAD

    def train_flops(self, n):
        return int(1e9) * int(n)

    def run_jobs(self, jobs):
        self.trained += [(j.vehicle, j.round) for j in jobs]
        self.jobs += list(jobs)
        return [SimpleNamespace(vehicle=j.vehicle, num_samples=len(j.indices), train_loss=1.0,
                                base_version=j.base_version,
                                state={"w": self.global_state(j.base_version)["w"] + self.gain(j.vehicle)})
                for j in jobs]

    def evaluate(self, state=None):
        return {"maneuver.accuracy": float(self.global_state()["w"] if state is None else state["w"])}

    def global_state(self, version=None):
        version = self.version if version is None else version
        if version not in self.states:
            raise KeyError(f"version {version} was released")
        return self.states[version]

    def commit(self, state):
        self.version += 1
        self.states[self.version] = dict(state)
        return self.version

    def release(self, version):
        if version not in (0, self.version):
            self.released.append(version)
            self.states.pop(version, None)


class MeanAggregator:
    def aggregate(self, global_state, updates):
        return {"w": float(np.mean([u.state["w"] for u in updates]))}


class WeightedMean:
    """sum n_i w_i / sum n_i (FedAvg on a scalar); logs the (vehicle, num_samples) of every call."""

    def __init__(self):
        self.calls = []

    def aggregate(self, global_state, updates):
        self.calls.append([(u.vehicle, u.num_samples) for u in updates])
        n = np.array([float(u.num_samples) for u in updates])
        return {"w": float(np.dot(n, [u.state["w"] for u in updates]) / n.sum())}


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


def build(compute_s, *, deadline=100.0, rounds=1, lazy=True, name="sync", duration=3600.0, network=None,
          learner=None, aggregator=None, selector=None, **options):
    """Run strategy ``name`` on vehicles with the given compute times [s] (one sample each, 1 s transfers
    on an ideal 8 Mbit/s network unless ``network(env)`` gives another); returns (recorder, learner)."""
    n = len(compute_s)
    strategy = {"name": name, "rounds": rounds, "clients_per_round": n, "deadline_s": deadline, "lazy": lazy,
                **options}
    scenario = parse_scenario({"duration_s": duration, "strategy": strategy,
                               "learning": {"data": {"samples_per_vehicle": 1}}})
    env = simpy.Environment()
    rec = Recorder(now=lambda: env.now)
    classes = tuple(DeviceClass(name=f"d{i}", flops_per_s=1e9 / c, compute_power_w=10.0) for i, c in enumerate(compute_s))
    fleet = Fleet(device_classes=classes, device=np.arange(n), home_group=np.zeros(n, int), n_samples=np.ones(n, int))
    learner = learner if learner is not None else FakeLearner()
    net = network(env) if network is not None else IdealNetwork(env, rate_bps=8e6)
    ctx = StrategyContext(env=env, scenario=scenario, network=net, mobility=StillMobility(n),
                          fleet=fleet, learner=learner, selector=selector if selector is not None else AllSelector(),
                          aggregator=aggregator if aggregator is not None else MeanAggregator(),
                          recorder=rec, shards=lambda v: np.array([v]))
    env.run(until=env.process(STRATEGIES.get(name)(ctx).run()))
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


def test_over_commit_keeps_the_first_arrivals_and_cancels_the_rest():
    # 4 selected (2 x 2), 2 kept: vehicle 0 arrives at 3 s, vehicle 1 at 4 s and the round ends then;
    # vehicle 2 is uploading (3.5 s -> 4.5 s) and vehicle 3 still computing: both cancelled
    rec, learner = build([1.0, 2.0, 2.5, 9.0], clients_per_round=2, over_commit=2.0)
    rounds, ev = rec.rounds(), rec.events()
    assert rounds.loc[1, "sim_time_s"] == pytest.approx(4.0)
    assert rounds.loc[1, ["clients_selected", "clients_arrived", "clients_dropped"]].tolist() == [4, 2, 2]
    drop = ev[ev["kind"] == "dropped"]
    assert drop["vehicle"].tolist() == [2, 3] and set(drop["cause"]) == {"over_commit"}
    up = ev[(ev["kind"] == "upload_end") & (ev["vehicle"] == 2)]
    assert up["cause"].tolist() == ["cancelled"] and up["bytes"].tolist() == [PAYLOAD // 2]
    cut = ev[(ev["kind"] == "compute_end") & (ev["vehicle"] == 3)]
    assert cut["cause"].tolist() == ["over_commit"] and cut["duration_s"].tolist() == [pytest.approx(3.0)]
    assert sorted(learner.trained) == [(0, 1), (1, 1)]  # the cancelled jobs never ran


def test_over_commit_rounds_up_without_float_noise():
    assert over_committed(10, 1.1) == 11 and over_committed(5, 1.1) == 6 and over_committed(4, 1.0) == 4
    assert over_committed(3, 1.5) == 5


def test_min_participants_skips_the_aggregation():
    rec, learner = build([1.0, 2.0, 5.0], deadline=4.5, rounds=2, min_participants=3)
    rounds, ev = rec.rounds(), rec.events()
    assert learner.version == 0 and learner.trained == []  # the model never changed; nothing was trained
    assert rounds["clients_arrived"].tolist()[1:] == [2, 2]
    assert rounds["train_loss"].isna().tolist()[1:] == [True, True]
    assert ev[ev["kind"] == "aggregate"]["cause"].tolist() == ["min_participants"] * 2
    assert rounds.loc[2, "sim_time_s"] == pytest.approx(9.0)


def test_min_participants_met_aggregates_as_usual():
    rec, learner = build([1.0, 2.0, 5.0], deadline=4.5, rounds=1, min_participants=2)
    assert learner.version == 1 and rec.events().query("kind == 'aggregate'")["cause"].tolist() == [""]


@pytest.mark.parametrize("name", ["sync", "async"])
def test_a_deadline_cut_by_the_run_end_is_labelled_run_ended(name):
    rec, _ = build([1.0, 10.0], deadline=20.0, duration=6.5, name=name, rounds=100)
    drops = rec.events()
    drops = drops[drops["kind"] == "dropped"]
    assert len(drops) >= 1 and set(drops["cause"]) == {"run_ended"}
    assert drops["time_s"].tolist() == [pytest.approx(6.5)] * len(drops)
