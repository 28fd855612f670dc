"""Aggregators through the registry, on hand-built updates (no training)."""
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from vfedsim.errors import ScenarioError
from vfedsim.learn.aggregate import weighted_average
from vfedsim.policies import AGGREGATORS, make_aggregator

NEW_AGGREGATORS = ["fedprox", "fedadam", "fedyogi", "fedadagrad", "median", "trimmed_mean", "krum", "multi_krum",
                   "lora_product"]


def update(state, num_samples=10, vehicle=0):
    return SimpleNamespace(vehicle=vehicle, num_samples=num_samples, state=state, train_loss=1.0, base_version=0)


def lora_states(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"t.q.lora_A.default.weight": torch.randn(4, 8, generator=g),
             "t.q.lora_B.default.weight": torch.randn(8, 4, generator=g) * 0.1,
             "heads.m.weight": torch.randn(3, 8, generator=g), "heads.m.bias": torch.randn(3, generator=g)}
            for _ in range(n)]


def test_registry_lists_the_built_ins():
    assert set(NEW_AGGREGATORS + ["fedavg"]) <= set(AGGREGATORS.names())


def test_policies_import_without_torch():
    code = "import sys, vfedsim.policies; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", NEW_AGGREGATORS + ["fedavg"])
def test_every_aggregator_keeps_keys_shapes_dtypes_and_is_deterministic(name):
    states = lora_states(5)
    glob = lora_states(1, seed=9)[0]
    ups = [update(s, 10 + i, i) for i, s in enumerate(states)]
    a = make_aggregator(name, {}).aggregate(glob, ups)
    b = make_aggregator(name, {}).aggregate(glob, ups)
    assert list(a) == list(glob)
    for k, v in glob.items():
        assert a[k].shape == v.shape and a[k].dtype == v.dtype and torch.isfinite(a[k]).all()
        assert a[k].numpy().tobytes() == b[k].numpy().tobytes()
    one = make_aggregator(name, {}).aggregate(glob, ups[:1])  # a single arrival must work too
    assert list(one) == list(glob)


def test_fedprox_server_side_is_fedavg():
    ups = [update(s, n) for s, n in zip(lora_states(3), (5, 10, 20))]
    a = make_aggregator("fedprox", {}).aggregate({}, ups)
    b = make_aggregator("fedavg", {}).aggregate({}, ups)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fedadam_keeps_its_moments_across_rounds():
    glob = {"w": torch.tensor([0.0])}
    agg = make_aggregator("fedadam", {"eta": 0.1, "tau": 1e-3})
    ups = [update({"w": torch.tensor([1.0])}, 1), update({"w": torch.tensor([3.0])}, 3)]  # average 2.5
    first = agg.aggregate(glob, ups)
    m, v = 0.1 * 2.5, 0.99 * 1e-6 + 0.01 * 2.5**2
    assert first["w"].item() == pytest.approx(0.1 * m / (v**0.5 + 1e-3), rel=1e-6)
    second = agg.aggregate(glob, ups)  # same inputs, but m and v have moved on
    m2, v2 = 0.9 * m + 0.1 * 2.5, 0.99 * v + 0.01 * 2.5**2
    assert second["w"].item() == pytest.approx(0.1 * m2 / (v2**0.5 + 1e-3), rel=1e-6)
    assert make_aggregator("fedadam", {"eta": 0.1, "tau": 1e-3}).aggregate(glob, ups)["w"] == first["w"]


def test_median_and_trimmed_mean_ignore_an_outlier():
    ups = [update({"w": torch.tensor([x])}, n) for x, n in ((1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1), (1e6, 100))]
    assert make_aggregator("median", {}).aggregate({}, ups)["w"].item() == 3.0
    assert make_aggregator("trimmed_mean", {"trim_fraction": 0.2}).aggregate({}, ups)["w"].item() == 3.0


def test_krum_and_multi_krum_keep_the_honest_cluster():
    honest = [[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1], [0.05, 0.05]]
    ups = [update({"w": torch.tensor(x)}, 10, i) for i, x in enumerate(honest + [[100.0, -100.0]])]
    krum = make_aggregator("krum", {"f": 1}).aggregate({}, ups)["w"]
    assert torch.equal(krum, torch.tensor([0.05, 0.05]))  # the centre of the cluster
    multi = make_aggregator("multi_krum", {"f": 1}).aggregate({}, ups)["w"]  # m = n - f = 5: the honest ones
    assert torch.allclose(multi, torch.tensor([0.05, 0.05]))
    two = make_aggregator("multi_krum", {"f": 1, "m": 2}).aggregate({}, ups)["w"]
    assert two.abs().max() < 1.0


def test_lora_product_aggregator_is_exact_when_rank_allows():
    g = torch.Generator().manual_seed(5)
    states = []
    for _ in range(2):
        a, b = torch.zeros(2, 6), torch.zeros(4, 2)
        a[0], b[:, 0] = torch.randn(6, generator=g), torch.randn(4, generator=g)
        states.append({"x.lora_A.default.weight": a, "x.lora_B.default.weight": b})
    out = make_aggregator("lora_product", {}).aggregate({}, [update(states[0], 2), update(states[1], 6)])
    exact = sum(w * s["x.lora_B.default.weight"].double() @ s["x.lora_A.default.weight"].double()
                for w, s in zip((0.25, 0.75), states))
    got = out["x.lora_B.default.weight"].double() @ out["x.lora_A.default.weight"].double()
    assert torch.allclose(got, exact, atol=1e-6)
    separate = weighted_average(states, [2, 6])
    assert not torch.allclose(separate["x.lora_B.default.weight"].double()
                              @ separate["x.lora_A.default.weight"].double(), exact, atol=1e-3)


@pytest.mark.parametrize("name, options, message", [
    ("fedadam", {"eta": 0}, "eta must be > 0"),
    ("fedyogi", {"beta1": 1.0}, "beta1 must be < 1"),
    ("fedadagrad", {"tau": -1}, "tau must be > 0"),
    ("fedadam", {"beta2": "x"}, "beta2 must be a number"),
    ("trimmed_mean", {"trim_fraction": 0.5}, "trim_fraction must be < 0.5"),
    ("krum", {"f": -1}, "f must be an integer >= 0"),
    ("multi_krum", {"m": 0}, "m must be an integer >= 1"),
])
def test_bad_options_are_scenario_errors(name, options, message):
    with pytest.raises(ScenarioError, match=f"strategy.aggregation.options: {message}"):
        make_aggregator(name, options)


@pytest.mark.parametrize("name", NEW_AGGREGATORS)
def test_unknown_option_names_its_key(name):
    with pytest.raises(ScenarioError, match=r"strategy\.aggregation\.options\.bogus"):
        make_aggregator(name, {"bogus": 1})
