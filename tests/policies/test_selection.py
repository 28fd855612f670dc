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

    assert make_selector("test-first", {}).select(snapshot(4), 2, np.random.default_rng()).tolist() == [10, 11]
