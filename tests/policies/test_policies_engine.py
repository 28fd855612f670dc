"""Every built-in selection policy and aggregator runs end to end on tiny.yaml through the engine."""
import numpy as np
import pandas as pd
import pytest

from vfedsim.engine import load_scenario, run

pytestmark = pytest.mark.slow

SELECTION = ["all", "channel", "deadline", "oort", "power_of_choice", "fair", "rsu_balanced"]
AGGREGATION = ["fedprox", "fedadam", "fedyogi", "fedadagrad", "median", "trimmed_mean", "krum", "multi_krum",
               "lora_product"]
# each new policy with fedavg, each new aggregator with random selection (a fraction of a second each once
# the session's data and pretrained trunk are cached)
PAIRS = [(name, "fedavg") for name in SELECTION] + [("random", name) for name in AGGREGATION]


@pytest.mark.parametrize("selection, aggregation", PAIRS)
def test_policy_and_aggregator_run_on_tiny(tiny_path, tmp_path, selection, aggregation):
    scenario = load_scenario(tiny_path, overrides=[f"strategy.selection.name={selection}",
                                                   f"strategy.aggregation.name={aggregation}"])
    result = run(scenario, out_dir=tmp_path / "run", progress=False)
    rounds = pd.read_csv(result.out_dir / "rounds.csv")
    assert rounds["round"].tolist() == [0, 1, 2, 3]
    assert (rounds["clients_arrived"] + rounds["clients_dropped"] == rounds["clients_selected"]).all()
    if selection != "all":
        assert (rounds["clients_selected"] <= scenario.strategy.clients_per_round).all()
    assert rounds["clients_arrived"].sum() > 0
    assert np.isfinite(rounds["maneuver.accuracy"]).all()
    assert np.isfinite(rounds.loc[rounds["clients_arrived"] > 0, "train_loss"]).all()


def test_the_snapshot_a_policy_sees_in_a_run(tiny_path, tmp_path):
    """A recording policy sees SNRs consistent with the rates, its own sizes, sensors and selection history."""
    from vfedsim.policies import SELECTORS

    seen = []

    @SELECTORS.register("test-recording")
    class Recording:
        def select(self, snapshot, k, rng):
            seen.append(snapshot)
            return snapshot.vehicle_ids[:k]

    try:
        scenario = load_scenario(tiny_path, overrides=["strategy.selection.name=test-recording"])
        run(scenario, out_dir=tmp_path / "run", progress=False)
    finally:
        SELECTORS._entries.pop("test-recording")
    assert len(seen) == scenario.strategy.rounds
    picked: set[int] = set()
    for snap in seen:
        m = len(snap)
        assert snap.snr_up_db.shape == (m,) and snap.snr_down_db.shape == (m,)
        assert np.isfinite(snap.snr_up_db).all()
        order = np.argsort(snap.snr_up_db, kind="stable")   # the rate is non-decreasing in the SNR
        assert np.all(np.diff(snap.rate_up_bps[order]) >= -1e-6 * snap.rate_up_bps.max())
        assert snap.vehicle_upload_bytes.shape == (m,) and (snap.vehicle_upload_bytes > 0).all()
        assert snap.vehicle_download_bytes.shape == (m,) and len(snap.sensors) == m
        assert snap.n_samples.shape == (m,) and (snap.n_samples > 0).all()
        was_picked = np.isin(snap.vehicle_ids, sorted(picked))
        assert ((snap.last_selected_round >= 1) == was_picked).all()
        picked |= set(snap.vehicle_ids[:scenario.strategy.clients_per_round].tolist())
