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
