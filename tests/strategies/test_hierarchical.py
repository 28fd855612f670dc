"""The hierarchical strategy: updates go to the RSU that receives them, edge models every round, the cloud
every ``cloud_every`` rounds; pinned with a fake network whose serving RSU changes over time."""
import dataclasses

import numpy as np
import pytest

from test_sync_clock import FakeLearner, WeightedMean, build
from vfedsim.network import IdealNetwork


class MovingNetwork(IdealNetwork):
    """The ideal network, but each vehicle's serving RSU is ``rsu_of(vehicle, t)``; a transfer is received
    by the RSU serving the vehicle when it ends."""

    def __init__(self, env, rsu_of):
        super().__init__(env, rate_bps=8e6)
        self.rsu_of = rsu_of

    def transfer(self, vehicle, nbytes, direction):
        inner, outer = super().transfer(vehicle, nbytes, direction), self.env.event()
        inner.callbacks.append(lambda ev: outer.succeed(dataclasses.replace(
            ev.value, rsu=self.rsu_of(int(vehicle), self.env.now))))
        return outer

    def serving_rsu(self, vehicle):
        return self.rsu_of(int(vehicle), self.env.now)

    def serving_rsus(self, vehicles):
        return np.array([self.rsu_of(int(v), self.env.now) for v in np.asarray(vehicles).reshape(-1)], dtype=np.int64)


def route(v, t):
    """v0 stays at RSU 0, v2 at RSU 1; v1 is at RSU 0 until 2 s, then at RSU 1."""
    return {0: 0, 1: 0 if t < 2.0 else 1, 2: 1}[v]


def run_hier(**options):
    options.setdefault("aggregator", WeightedMean())
    learner = FakeLearner(gain=lambda v: float(v + 1))  # v0 adds 1, v1 adds 2, v2 adds 3
    return build([1.0, 2.0, 3.0], name="hierarchical", learner=learner,
                 network=lambda env: MovingNetwork(env, route), **options)


def test_updates_go_to_the_rsu_that_receives_them():
    rec, learner = run_hier(rounds=1, cloud_every=2, backhaul_latency_s=0.05)
    ev = rec.events()
    first = ev[ev["round"] == 1]
    arrived = first[first["kind"] == "arrived"]
    assert arrived["vehicle"].tolist() == [0, 1, 2] and arrived["rsu"].tolist() == [0, 1, 1]
    down = first[(first["kind"] == "download_end") & (first["vehicle"] == 1)]
    assert down["rsu"].tolist() == [0]  # v1 downloaded at RSU 0 and uploaded to RSU 1
    edges = first[first["kind"] == "aggregate"]
    assert edges["rsu"].tolist() == [0, 1] and edges["time_s"].tolist() == [pytest.approx(5.0)] * 2
    # round 1 edge models: RSU 0 = 0 + 1 = 1; RSU 1 = mean(0 + 2, 0 + 3) = 2.5
    # round 2 trains from the edge model of the RSU that completes the download:
    # v0: 1 + 1 = 2 (RSU 0); v1: 2.5 + 2 = 4.5 and v2: 2.5 + 3 = 5.5 (RSU 1)
    assert [j.round for j in learner.jobs] == [1, 1, 1, 2, 2, 2]
    second = [j for j in learner.jobs if j.round == 2]
    assert [j.base_version for j in second] == [1, 2, 2]  # versions 1, 2: the edge models of RSUs 0, 1
    # cloud: RSU 0 model 2 (2 samples absorbed), RSU 1 model mean(4.5, 5.5) = 5 (4 samples) -> 24 / 6 = 4
    assert learner.states[learner.version]["w"] == pytest.approx(4.0)


def test_cloud_aggregates_every_cloud_every_rounds_after_the_backhaul():
    rec, learner = run_hier(rounds=2, cloud_every=2, backhaul_latency_s=0.05)
    rounds = rec.rounds()
    assert rounds["round"].tolist() == [0, 1, 2, 3, 4]
    assert rounds["cloud"].tolist() == [1, 0, 1, 0, 1]
    # each round lasts 5 s (the slowest: 1 + 3 + 1); a cloud round adds the 0.05 s backhaul
    assert rounds["sim_time_s"].tolist() == [0, pytest.approx(5.0), pytest.approx(10.05), pytest.approx(15.05),
                                            pytest.approx(20.1)]
    # metrics are the cloud model's, on cloud rows only
    assert rounds["maneuver.accuracy"].isna().tolist() == [False, True, False, True, False]
    assert rounds.loc[2, "maneuver.accuracy"] == pytest.approx(4.0)
    ev = rec.events()
    cloud = ev[(ev["kind"] == "aggregate") & (ev["rsu"] == -1)]
    assert cloud["round"].tolist() == [2, 4] and cloud["duration_s"].tolist() == [pytest.approx(0.05)] * 2
    # after a cloud round every vehicle starts from the cloud model again
    third = [j for j in learner.jobs if j.round == 3]
    assert {j.base_version for j in third} == {5}  # versions: 1, 2 edges; 3, 4 edges; 5 cloud


def test_cloud_every_one_is_two_level_fedavg_and_releases_old_versions():
    rec, learner = run_hier(rounds=3, cloud_every=1, backhaul_latency_s=0.0)
    rounds = rec.rounds()
    assert rounds["cloud"].tolist() == [1, 1, 1, 1] and rounds["maneuver.accuracy"].notna().all()
    # round 1 from 0: edges 1 (1 sample) and 2.5 (2 samples) -> cloud (1 + 5) / 3 = 2
    assert rounds.loc[1, "maneuver.accuracy"] == pytest.approx(2.0)
    assert set(learner.states) <= {0, learner.version}


def test_lazy_and_eager_record_the_same():
    lazy, _ = run_hier(rounds=2, cloud_every=2)
    eager, _ = run_hier(rounds=2, cloud_every=2, lazy=False)
    assert lazy.rounds().equals(eager.rounds()) and lazy.events().equals(eager.events())
