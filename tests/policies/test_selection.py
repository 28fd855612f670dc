import numpy as np
import pytest

from vfedsim.errors import ScenarioError
from vfedsim.policies import SELECTORS, WorldSnapshot, make_selector


def snapshot(n=6, *, dwell=100.0, rate=1e6, compute=1.0, rsu=None, deadline=30.0):
    ids = np.arange(10, 10 + n)
    return WorldSnapshot(
        time_s=5.0, round=1, deadline_s=deadline, download_bytes=125_000, upload_bytes=125_000,
        vehicle_ids=ids, position_m=np.zeros((n, 2)), speed_mps=np.full(n, 25.0),
        serving_rsu=np.zeros(n, dtype=int) if rsu is None else np.asarray(rsu),
        rate_up_bps=np.full(n, rate), rate_down_bps=np.full(n, rate),
        dwell_time_s=np.broadcast_to(np.asarray(dwell, dtype=float), (n,)).copy(),
        trip_remaining_s=np.full(n, 1000.0), compute_time_s=np.full(n, compute),
        device_class=("embedded",) * n, participation_count=np.zeros(n, dtype=int), last_loss=np.full(n, np.nan))


def test_random_selects_k_distinct_candidates_reproducibly():
    sel = make_selector("random", {})
    snap = snapshot(6)
    a = sel.select(snap, 3, np.random.default_rng(1))
    b = sel.select(snap, 3, np.random.default_rng(1))
    assert len(set(a.tolist())) == 3 and set(a) <= set(snap.vehicle_ids)
    assert np.array_equal(a, b)
    assert len(sel.select(snap, 10, np.random.default_rng(0))) == 6


def test_predicted_time_is_download_compute_upload():
    snap = snapshot(2, rate=1e6, compute=2.0)
    # 125 kB = 1 Mbit at 1 Mbit/s: 1 s down + 2 s compute + 1 s up
    assert np.allclose(snap.predicted_time_s, 4.0)


def test_coverage_policy_prefers_vehicles_that_stay_covered():
    # 1 Mbit each way at 1 Mbit/s, 2 vehicles share the RSU when k=2: (2 s x 2 + 1 s) x 1.2 = 6 s needed
    dwell = np.array([3.0, 50.0, 4.0, 60.0, 1.0, 5.9])
    sel = make_selector("coverage", {})
    chosen = sel.select(snapshot(6, dwell=dwell), 2, np.random.default_rng(0))
    assert set(chosen.tolist()) == {11, 13}


def test_coverage_policy_fills_by_slack_when_too_few_are_feasible():
    dwell = np.array([3.0, 50.0, 4.0, 1.0])
    chosen = make_selector("coverage", {}).select(snapshot(4, dwell=dwell), 2, np.random.default_rng(0))
    assert set(chosen.tolist()) == {11, 12}  # the feasible one, then the largest slack (4 s dwell)
    strict = make_selector("coverage", {"fill": False}).select(snapshot(4, dwell=dwell), 2, np.random.default_rng(0))
    assert strict.tolist() == [11]


def test_unknown_policy_and_option_name_the_key_and_allowed_values():
    with pytest.raises(ScenarioError, match=r"strategy\.selection\.name.*did you mean 'random'.*allowed: .*coverage"):
        make_selector("randon", {})
    with pytest.raises(ScenarioError, match=r"strategy\.selection\.options\.margn.*did you mean 'margin'"):
        make_selector("coverage", {"margn": 2})
    with pytest.raises(ScenarioError, match="strategy.selection.options: margin must be > 0"):
        make_selector("coverage", {"margin": -1})


def test_user_policy_registers_by_name():
    @SELECTORS.register("test-first")
    class First:
        def select(self, snapshot, k, rng):
            return snapshot.vehicle_ids[:k]

    try:
        assert make_selector("test-first", {}).select(snapshot(4), 2, np.random.default_rng()).tolist() == [10, 11]
    finally:
        SELECTORS._entries.pop("test-first")  # leave the registry as the other tests expect it


# ------------------------------------------------------------------------------- built-in policies
NEW_POLICIES = ["all", "channel", "deadline", "oort", "power_of_choice", "fair", "rsu_balanced"]


def _with(snap, **fields):
    from dataclasses import replace

    return replace(snap, **{k: np.asarray(v) for k, v in fields.items()})


@pytest.mark.parametrize("name", NEW_POLICIES + ["random", "coverage"])
def test_every_policy_returns_sorted_unique_candidates_reproducibly(name):
    rng = np.random.default_rng(42)
    n = 9
    snap = _with(snapshot(n, dwell=rng.uniform(1, 100, n), rsu=rng.integers(0, 3, n)),
                 rate_up_bps=rng.uniform(1e5, 1e7, n), rate_down_bps=rng.uniform(1e5, 1e7, n),
                 participation_count=rng.integers(0, 4, n),
                 last_loss=np.where(rng.random(n) < 0.4, np.nan, rng.uniform(0.1, 2, n)))
    for k in (1, 3, 9, 20):
        a = make_selector(name, {}).select(snap, k, np.random.default_rng(7))
        b = make_selector(name, {}).select(snap, k, np.random.default_rng(7))
        assert np.array_equal(a, b)
        assert np.array_equal(a, np.unique(a)) and set(a.tolist()) <= set(snap.vehicle_ids.tolist())
        assert len(a) <= (n if name == "all" else min(k, n))
        if name not in ("deadline", "coverage"):
            assert len(a) == (n if name == "all" else min(k, n))
    empty = snapshot(0)
    assert make_selector(name, {}).select(empty, 3, np.random.default_rng(0)).size == 0


def test_all_ignores_k():
    assert make_selector("all", {}).select(snapshot(5), 2, np.random.default_rng(0)).tolist() == [10, 11, 12, 13, 14]


def test_channel_picks_the_top_uplink_rates():
    snap = _with(snapshot(5), rate_up_bps=[3e6, 9e6, 1e6, 5e6, 7e6])
    assert make_selector("channel", {}).select(snap, 2, np.random.default_rng(0)).tolist() == [11, 14]
    assert make_selector("channel", {}).select(snap, 3, np.random.default_rng(0)).tolist() == [11, 13, 14]


def test_channel_breaks_ties_at_random():
    snap = snapshot(6)  # all the same rate
    picks = {tuple(make_selector("channel", {}).select(snap, 2, np.random.default_rng(s))) for s in range(20)}
    assert len(picks) > 1


def test_deadline_excludes_infeasible_and_ranks_by_slack():
    # 1 Mbit each way at 1 Mbit/s, k=2 share one RSU: (2 s x 2 + 1 s) x 1.2 = 6 s needed; budget min(dwell, 30)
    dwell = np.array([3.0, 50.0, 8.0, 20.0, 1.0, 5.9])
    sel = make_selector("deadline", {})
    assert sel.select(snapshot(6, dwell=dwell), 2, np.random.default_rng(0)).tolist() == [11, 13]  # slack 24, 14
    # k=3: 3 sharers, (2 s x 3 + 1 s) x 1.2 = 8.4 s needed: only 11 and 13 fit (no fill)
    assert sel.select(snapshot(6, dwell=dwell), 3, np.random.default_rng(0)).tolist() == [11, 13]
    # the deadline binds too: 30 s deadline caps vehicle 11's 50 s dwell; a 5 s deadline rules all out
    assert sel.select(snapshot(6, dwell=dwell, deadline=5.0), 2, np.random.default_rng(0)).size == 0
    # margin 1: 7 s needed, vehicle 12's 8 s dwell fits; k=1 takes the largest slack
    assert make_selector("deadline", {"margin": 1.0}).select(
        snapshot(6, dwell=dwell), 3, np.random.default_rng(0)).tolist() == [11, 12, 13]
    assert sel.select(snapshot(6, dwell=dwell), 1, np.random.default_rng(0)).tolist() == [11]


def test_fair_picks_the_least_served_with_random_ties():
    snap = _with(snapshot(6), participation_count=[3, 0, 2, 0, 1, 5])
    assert make_selector("fair", {}).select(snap, 3, np.random.default_rng(0)).tolist() == [11, 13, 14]
    tie = _with(snapshot(6), participation_count=[1, 0, 1, 1, 1, 1])
    picks = {tuple(make_selector("fair", {}).select(tie, 2, np.random.default_rng(s))) for s in range(20)}
    assert all(11 in p for p in picks) and len(picks) > 1


def test_rsu_balanced_spreads_across_rsus():
    rsu = [0, 0, 0, 0, 0, 1, 1, 2]
    snap = snapshot(8, rsu=rsu)
    for seed in range(10):
        chosen = make_selector("rsu_balanced", {}).select(snap, 3, np.random.default_rng(seed))
        assert sorted(np.asarray(rsu)[chosen - 10].tolist()) == [0, 1, 2]
        chosen = make_selector("rsu_balanced", {}).select(snap, 6, np.random.default_rng(seed))
        assert np.bincount(np.asarray(rsu)[chosen - 10]).tolist() == [3, 2, 1]  # RSU 2 runs out, then RSU 1


def test_power_of_choice_picks_the_highest_loss_among_the_sampled():
    loss = np.array([0.5, 2.0, 0.1, 1.5, 0.9, 0.3, 1.2, 0.7])
    snap = _with(snapshot(8), last_loss=loss)
    for seed in range(10):
        # the same draws the policy makes: d indices, then the tie-breaking permutation
        sampled = np.random.default_rng(seed).choice(8, size=4, replace=False)
        expect = sorted((10 + sampled[np.argsort(-loss[sampled])[:2]]).tolist())
        assert make_selector("power_of_choice", {}).select(snap, 2, np.random.default_rng(seed)).tolist() == expect
    # d = all candidates: the global top-k losses
    assert make_selector("power_of_choice", {"d": 8}).select(snap, 2, np.random.default_rng(0)).tolist() == [11, 13]


def test_power_of_choice_tries_vehicles_that_never_reported():
    loss = np.array([5.0, np.nan, 9.0, np.nan])
    snap = _with(snapshot(4), last_loss=loss)
    assert make_selector("power_of_choice", {"d": 4}).select(snap, 2, np.random.default_rng(0)).tolist() == [11, 13]


def test_oort_prefers_high_loss_fast_vehicles_and_explores_unreported_ones():
    # 1 Mbit each way at 1 Mbit/s + compute: predicted 2 s + compute; deadline (preferred T) 30 s
    loss = np.array([1.0, 2.0, 2.0, 0.5, np.nan, np.nan, np.nan, 1.9])
    compute = np.array([1.0, 1.0, 118.0, 1.0, 1.0, 1.0, 1.0, 1.0])  # vehicle 12: 120 s -> (30/120)^2 = 1/16
    snap = _with(snapshot(8), last_loss=loss, compute_time_s=compute)
    sel = make_selector("oort", {})
    assert np.allclose(sel.utility(snap)[:4], [1.0, 2.0, 2.0 / 16, 0.5])
    for seed in range(10):
        chosen = make_selector("oort", {}).select(snap, 5, np.random.default_rng(seed)).tolist()
        # round(0.2 x 5) = 1 exploration slot among 14, 15, 16; exploitation: 11, 17, 10, 13 (not slow 12)
        assert [v for v in chosen if v < 14 or v > 16] == [10, 11, 13, 17]
        assert len([v for v in chosen if 14 <= v <= 16]) == 1
    # with no losses reported yet everyone is unexplored: k drawn at random
    fresh = make_selector("oort", {}).select(snapshot(8), 3, np.random.default_rng(0))
    assert len(fresh) == 3
    # epsilon = 0: no exploration unless the explored run out
    greedy = make_selector("oort", {"epsilon": 0.0}).select(snap, 3, np.random.default_rng(0)).tolist()
    assert greedy == [10, 11, 17]


def test_oort_pacer_relaxes_the_preferred_duration_when_utility_drops():
    sel = make_selector("oort", {"pacer_window": 2, "pacer_step_s": 10.0, "epsilon": 0.0})
    for level in (4.0, 4.0, 1.0, 1.0):  # the exploited losses drop in the second window
        sel.select(_with(snapshot(4), last_loss=np.full(4, level)), 2, np.random.default_rng(0))
    assert sel.relax_s == 10.0
    slow = _with(snapshot(2, compute=38.0), last_loss=[1.0, 1.0])  # predicted 40 s, T = 30 + 10 s
    assert np.allclose(sel.utility(slow), 1.0)


@pytest.mark.parametrize("name, options, message", [
    ("deadline", {"margin": 0}, "margin must be a number > 0"),
    ("oort", {"epsilon": 1.5}, "epsilon must be >= 0 and <= 1"),
    ("oort", {"alpha": -1}, "alpha must be >= 0"),
    ("oort", {"preferred_duration_s": 0}, "preferred_duration_s must be > 0"),
    ("oort", {"pacer_window": 0}, "pacer_window must be an integer >= 1"),
    ("power_of_choice", {"d": 0}, "d must be an integer >= 1"),
    ("power_of_choice", {"d": 2.5}, "d must be an integer >= 1"),
])
def test_bad_options_are_scenario_errors(name, options, message):
    with pytest.raises(ScenarioError, match=f"strategy.selection.options: {message}"):
        make_selector(name, options)


@pytest.mark.parametrize("name", NEW_POLICIES)
def test_unknown_option_names_its_key(name):
    with pytest.raises(ScenarioError, match=r"strategy\.selection\.options\.bogus"):
        make_selector(name, {"bogus": 1})


# ------------------------------------------------------------------------------ the snapshot's own sizes
def test_predicted_time_uses_each_vehicles_own_sizes_when_given() -> None:
    from dataclasses import replace

    snap = _snapshot_for_sizes()
    whole = snap.predicted_time_s
    own = replace(snap, vehicle_download_bytes=np.array([1000, 500]), vehicle_upload_bytes=np.array([1000, 250]))
    assert np.allclose(whole, 8.0 * 1000 / 8000.0 * 2 + 1.0)
    assert np.allclose(own.predicted_time_s, [1.0 + 1.0 + 1.0, 0.5 + 0.25 + 1.0])
    assert own.upload_bytes_each.tolist() == [1000, 250] and snap.upload_bytes_each.tolist() == [1000, 1000]


def _snapshot_for_sizes():
    from vfedsim.policies.selection import WorldSnapshot

    return WorldSnapshot(time_s=0.0, round=1, deadline_s=10.0, download_bytes=1000, upload_bytes=1000,
                         vehicle_ids=np.array([3, 7]), position_m=np.zeros((2, 2)), speed_mps=np.zeros(2),
                         serving_rsu=np.zeros(2, dtype=np.int64), rate_up_bps=np.full(2, 8000.0),
                         rate_down_bps=np.full(2, 8000.0), dwell_time_s=np.full(2, 100.0),
                         trip_remaining_s=np.full(2, 100.0), compute_time_s=np.ones(2),
                         device_class=("a", "a"), participation_count=np.zeros(2, dtype=np.int64),
                         last_loss=np.full(2, np.nan))
