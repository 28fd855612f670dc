"""The asynchronous (FedBuff) strategy's clock, pinned with an ideal network and fixed compute times
(1 s download, compute, 1 s upload), plus every strategy end to end on tiny.yaml."""
import math

import numpy as np
import pytest

from test_sync_clock import PAYLOAD, WeightedMean, build
from vfedsim.errors import ScenarioError
from vfedsim.scenario import parse_scenario
from vfedsim.strategies.asynchronous import rebase, staleness_weight


# ------------------------------------------------------------------------------------------- schema
@pytest.mark.parametrize("raw, pattern", [
    ({"name": "x"}, r"^strategy\.name: unknown 'x'; allowed: async, hierarchical, sync$"),
    ({"name": "asyn"}, r"^strategy\.name: unknown 'asyn'; did you mean 'async'\? allowed: async, hierarchical, sync$"),
    ({"name": "async", "over_commit": 2}, r"^strategy\.over_commit: unknown key; allowed: name, rounds, "),
    ({"name": "async", "buffer_size": 0}, r"^strategy\.buffer_size: input should be greater than 0"),
    ({"name": "hierarchical", "cloud_evry": 2}, r"^strategy\.cloud_evry: unknown key; did you mean 'cloud_every'"),
    ({"over_commit": 0.5}, r"^strategy\.over_commit: input should be greater than or equal to 1"),
])
def test_strategy_is_a_tagged_union_with_one_line_errors(raw, pattern):
    with pytest.raises(ScenarioError, match=pattern):
        parse_scenario({"strategy": raw})


def test_strategy_defaults_and_shared_fields():
    assert parse_scenario({"strategy": {"rounds": 2}}).strategy.name == "sync"  # no name: sync
    s = parse_scenario({"strategy": {"name": "async", "clients_per_round": 7, "deadline_s": 9}}).strategy
    assert (s.concurrency, s.buffer_size, s.staleness_exponent, s.max_staleness, s.server_lr) == (7, 4, 0.5, None, 1.0)
    assert s.deadline_s == 9
    h = parse_scenario({"strategy": {"name": "hierarchical"}}).strategy
    assert (h.cloud_every, h.backhaul_latency_s) == (2, 0.05)
    resolved = parse_scenario({"strategy": {"name": "async"}}).to_dict()["strategy"]  # config.yaml's values
    again = parse_scenario({"strategy": resolved})
    assert again.strategy.concurrency == 5 and again.strategy.buffer_size == 3


# ----------------------------------------------------------------------------------------- the clock
def run_async(compute_s, **options):
    options.setdefault("buffer_size", 2)
    options.setdefault("aggregator", WeightedMean())
    return build(compute_s, name="async", **options)


def test_staleness_weight_is_the_fedbuff_formula():
    for s in (0, 1, 2, 3, 10):
        assert staleness_weight(s) == pytest.approx(1.0 / math.sqrt(1.0 + s))
        assert staleness_weight(s, 1.0) == pytest.approx(1.0 / (1.0 + s))
    assert staleness_weight(5, 0.0) == 1.0
    assert rebase({"w": 3.0}, {"w": 1.0}, {"w": 1.5}) == {"w": 3.5}


def test_aggregation_happens_at_the_buffer_size_th_arrival():
    # arrivals: v0 at 3 s, v1 at 4.5 s (B = 2), v2 at 7 s, v3 at 9 s
    rec, learner = run_async([1.0, 2.5, 5.0, 7.0], rounds=1)
    rounds = rec.rounds()
    assert len(rounds) == 2 and rounds.loc[1, "sim_time_s"] == pytest.approx(4.5)
    assert rounds.loc[1, "clients_arrived"] == 2 and rounds.loc[1, "mean_staleness"] == 0
    assert rounds.loc[1, "bytes_up"] == 2 * PAYLOAD
    ev = rec.events()
    assert ev[ev["kind"] == "aggregate"]["time_s"].tolist() == [pytest.approx(4.5)]
    # the run is over: the vehicles still training are cancelled, never trained
    drop = ev[ev["kind"] == "dropped"]
    assert set(drop["cause"]) == {"cancelled"} and sorted(drop["vehicle"]) == [0, 2, 3]
    assert sorted(v for v, _ in learner.trained) == [0, 1]


def test_second_aggregation_weights_stale_updates_by_the_formula():
    # v0 is re-selected at 3 s and downloads version 0 (ends 4 s) before the first aggregation (4.5 s);
    # its second update (6 s) and v2's (7 s) are one version stale and form the second aggregation at 7 s
    agg = WeightedMean()
    rec, learner = run_async([1.0, 2.5, 5.0, 7.0], rounds=2, aggregator=agg)
    rounds = rec.rounds()
    assert rounds["sim_time_s"].tolist()[1:] == [pytest.approx(4.5), pytest.approx(7.0)]
    assert rounds.loc[2, "mean_staleness"] == 1
    assert agg.calls[0] == [(0, 1.0), (1, 1.0)]
    assert agg.calls[1] == [(0, pytest.approx(1 / math.sqrt(2))), (2, pytest.approx(1 / math.sqrt(2)))]
    # version 1 = 1; each stale delta (+1 from version 0) is moved onto version 1: 1 + 1 = 2
    assert learner.states[learner.version]["w"] == pytest.approx(2.0)
    assert rounds.loc[2, "maneuver.accuracy"] == pytest.approx(2.0)


def test_each_client_trains_on_the_version_current_at_its_download_end():
    rec, learner = run_async([1.0, 2.5, 5.0, 7.0], rounds=3)
    bases = [(j.vehicle, j.base_version) for j in learner.jobs]
    # first runs from version 0; v0's second (download ended 4 s < 4.5 s) too; v1's second download
    # (4.5 s -> 5.5 s) and v0's third (6 s -> 7 s, just as the second aggregation happens) see newer ones
    assert bases[:2] == [(0, 0), (1, 0)] and (0, 0) in bases[2:4]
    assert (1, 1) in bases


def test_server_lr_scales_the_step():
    _, full = run_async([1.0, 2.5, 5.0, 7.0], rounds=1)
    _, half = run_async([1.0, 2.5, 5.0, 7.0], rounds=1, server_lr=0.5)
    assert full.states[1]["w"] == pytest.approx(1.0) and half.states[1]["w"] == pytest.approx(0.5)


def test_max_staleness_drops_old_updates_untrained():
    # every vehicle's first download is version 0; after the first aggregation (4.5 s) their updates are
    # one version stale: v0's second (6 s), v2 (7 s), v3 (9 s); v0's third and v1's second (both from
    # version 1) arrive at 9 s and make the second aggregation
    rec, learner = run_async([1.0, 2.5, 5.0, 7.0], rounds=2, max_staleness=0)
    ev = rec.events()
    stale = ev[(ev["kind"] == "dropped") & (ev["cause"] == "stale")]
    assert stale["vehicle"].tolist() == [0, 2, 3]
    assert stale["time_s"].tolist() == [pytest.approx(6.0), pytest.approx(7.0), pytest.approx(9.0)]
    assert sorted((j.vehicle, j.base_version) for j in learner.jobs) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    rounds = rec.rounds()
    assert rounds.loc[2, "sim_time_s"] == pytest.approx(9.0)
    assert rounds.loc[2, "mean_staleness"] == 0 and rounds.loc[2, "clients_dropped"] == 3


def test_lazy_and_eager_record_the_same_and_old_versions_are_released():
    for options in ({"rounds": 4}, {"rounds": 2, "max_staleness": 0}):
        rec_lazy, lazy = run_async([1.0, 2.5, 5.0, 7.0], **options)
        rec_eager, eager = run_async([1.0, 2.5, 5.0, 7.0], lazy=False, **options)
        assert rec_lazy.rounds().equals(rec_eager.rounds())
        assert rec_lazy.events().equals(rec_eager.events())
        assert lazy.released and set(lazy.states) <= {0, lazy.version}
    assert len(eager.jobs) > len(lazy.jobs)  # eager also trained the stale updates


def test_per_vehicle_deadline_drops_a_slow_vehicle():
    rec, _ = run_async([1.0, 50.0], rounds=4, buffer_size=1, deadline=10.0)
    ev = rec.events()
    late = ev[(ev["kind"] == "dropped") & (ev["vehicle"] == 1)]
    assert late["cause"].tolist()[0] == "deadline" and late["time_s"].tolist()[0] == pytest.approx(10.0)
    assert rec.rounds()["sim_time_s"].tolist()[1:] == [pytest.approx(t) for t in (3.0, 6.0, 9.0, 12.0)]


def test_async_consumes_more_updates_than_sync_when_device_speeds_vary():
    compute = [1.0, 1.0, 20.0, 20.0]
    sync, _ = build(compute, rounds=1000, duration=100.0)
    fedbuff, _ = run_async(compute, rounds=1000, duration=100.0)
    consumed_sync = int(sync.rounds()["clients_arrived"].sum())
    consumed_async = int(fedbuff.rounds()["clients_arrived"].sum())
    # sync: a 22 s round keeps everyone waiting for the slow devices -> 4 x 4 + 2 updates in 100 s;
    # async: the fast devices cycle every 3 s
    assert consumed_sync == 18
    assert consumed_async > 3 * consumed_sync
    assert fedbuff.rounds()["sim_time_s"].max() <= 100.0


def test_a_policy_that_picks_nobody_is_retried_until_the_duration():
    class Nobody:
        calls = 0

        def select(self, snapshot, k, rng):
            Nobody.calls += 1
            return np.array([], dtype=np.int64)

    rec, _ = run_async([1.0], rounds=2, duration=5.0, retry_s=1.0, selector=Nobody())
    assert len(rec.rounds()) == 1 and rec.events().empty
    assert Nobody.calls == 5  # at 0, 1, 2, 3, 4 s


# ------------------------------------------------------------------------------------- engine level
@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    ["strategy.over_commit=1.5", "strategy.min_participants=2"],
    ["strategy.name=async", "strategy.rounds=4", "strategy.buffer_size=2"],
    ["strategy.name=hierarchical", "strategy.rounds=2", "strategy.cloud_every=2"],
], ids=["sync", "async", "hierarchical"])
def test_every_strategy_runs_on_tiny_deterministically(tiny_path, tmp_path, overrides):
    from vfedsim.engine import load_scenario, run

    first = run(load_scenario(tiny_path, overrides=overrides), out_dir=tmp_path / "a", progress=False)
    again = run(load_scenario(tiny_path, overrides=overrides), out_dir=tmp_path / "b", progress=False)
    assert (first.out_dir / "rounds.csv").read_bytes() == (again.out_dir / "rounds.csv").read_bytes()
    assert (first.out_dir / "events.csv").read_bytes() == (again.out_dir / "events.csv").read_bytes()
    rounds = first.rounds
    assert rounds["sim_time_s"].is_monotonic_increasing and rounds["round"].tolist() == list(range(len(rounds)))
    if "strategy.name=async" in overrides:
        assert rounds["clients_arrived"].tolist()[1:] == [2] * (len(rounds) - 1)
        assert "mean_staleness" in rounds.columns
        eager = run(load_scenario(tiny_path, overrides=[*overrides, "strategy.lazy=false"]),
                    out_dir=tmp_path / "eager", progress=False)
        assert (first.out_dir / "rounds.csv").read_bytes() == (eager.out_dir / "rounds.csv").read_bytes()
        assert (first.out_dir / "events.csv").read_bytes() == (eager.out_dir / "events.csv").read_bytes()
    if "strategy.name=hierarchical" in overrides:
        assert rounds["cloud"].tolist() == [1, 0, 1, 0, 1]
        assert rounds["maneuver.accuracy"].isna().tolist() == [False, True, False, True, False]
