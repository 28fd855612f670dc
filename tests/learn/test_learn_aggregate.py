import pytest
import torch

from vfedsim.learn.aggregate import apply_delta, state_delta, state_norm, weighted_average


def test_weighted_average_by_hand():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([[0.0]])}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor([[4.0]])}
    out = weighted_average([a, b], [1, 3])
    assert torch.equal(out["w"], torch.tensor([2.5, 5.0]))
    assert torch.equal(out["b"], torch.tensor([[3.0]]))
    assert list(out) == ["w", "b"] and out["w"].dtype == torch.float32


def test_weighted_average_keeps_dtype_and_is_exact_for_one_state():
    a = {"w": torch.randn(5, 3, generator=torch.Generator().manual_seed(1))}
    assert torch.equal(weighted_average([a], [7.0])["w"], a["w"])
    half = {"w": a["w"].half()}
    assert weighted_average([half, half], [1, 1])["w"].dtype == torch.float16


def test_weighted_average_is_order_stable():
    g = torch.Generator().manual_seed(0)
    states = [{"w": torch.randn(100, generator=g)} for _ in range(5)]
    w = [3, 1, 4, 1, 5]
    first = weighted_average(states, w)["w"]
    assert torch.equal(first, weighted_average(states, w)["w"])
    ref = sum(s["w"].double() * wi for s, wi in zip(states, w)) / sum(w)
    assert torch.allclose(first.double(), ref, atol=1e-6)


@pytest.mark.parametrize("weights", [[], [1.0], [0.0, 0.0], [-1.0, 2.0]])
def test_weighted_average_rejects_bad_weights(weights):
    states = [{"w": torch.zeros(1)}, {"w": torch.ones(1)}]
    with pytest.raises(ValueError):
        weighted_average(states, weights)


def test_weighted_average_rejects_key_mismatch():
    with pytest.raises(KeyError):
        weighted_average([{"w": torch.zeros(1)}, {"v": torch.zeros(1)}], [1, 1])


def test_delta_round_trip():
    base = {"w": torch.tensor([1.0, -2.0])}
    new = {"w": torch.tensor([1.5, -1.0])}
    delta = state_delta(new, base)
    assert torch.equal(delta["w"], torch.tensor([0.5, 1.0]))
    assert torch.equal(apply_delta(base, delta)["w"], new["w"])
    assert torch.equal(apply_delta(base, delta, 2.0)["w"], torch.tensor([2.0, 0.0]))
    assert state_norm(delta) == pytest.approx(5 ** 0.5 / 2)


# ------------------------------------------------------------------------ robust and LoRA-exact math
from vfedsim.learn.aggregate import (coordinate_median, fedopt_step, krum_scores, lora_pairs,  # noqa: E402
                                     lora_product_average, multi_krum, pairwise_sq_distances, trimmed_mean)


def _states(*rows):
    return [{"w": torch.tensor(r, dtype=torch.float32)} for r in rows]


def test_coordinate_median_by_hand():
    odd = coordinate_median(_states([1.0, 9.0], [5.0, -1.0], [3.0, 100.0]))["w"]
    assert torch.equal(odd, torch.tensor([3.0, 9.0]))
    even = coordinate_median(_states([1.0], [2.0], [10.0], [4.0]))["w"]
    assert torch.equal(even, torch.tensor([3.0]))  # (2 + 4) / 2, not the lower middle


def test_trimmed_mean_by_hand():
    states = _states([1.0], [2.0], [3.0], [4.0], [100.0])
    assert torch.equal(trimmed_mean(states, 0.2)["w"], torch.tensor([3.0]))  # drop 1 and 100: (2+3+4)/3
    assert torch.equal(trimmed_mean(states, 0.1)["w"], torch.tensor([22.0]))  # floor(0.5) = 0: the mean
    assert torch.equal(trimmed_mean(states, 0.4)["w"], torch.tensor([3.0]))  # floor(2) = 2 each side
    with pytest.raises(ValueError):
        trimmed_mean(states, 0.5)


def test_krum_scores_by_hand_and_picks_the_honest_cluster():
    states = _states([0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [50.0, 50.0])
    d = pairwise_sq_distances(states)
    assert d[0, 3] == 2.0 and d[3, 0] == 2.0 and d[0, 4] == 5000.0 and torch.all(d.diagonal() == 0)
    scores = krum_scores(states, f=1)  # n - f - 2 = 2 nearest neighbours
    assert scores.tolist()[:4] == [2.0, 2.0, 2.0, 2.0] and scores[4] > 4000
    mean, chosen = multi_krum(states, f=1, m=1)
    assert chosen == [0] and torch.equal(mean["w"], torch.tensor([0.0, 0.0]))
    mean, chosen = multi_krum(states, f=1, m=4)
    assert chosen == [0, 1, 2, 3] and torch.equal(mean["w"], torch.tensor([0.5, 0.5]))


def test_krum_with_too_few_states_still_returns_one():
    one = _states([3.0])
    assert multi_krum(one, f=1, m=1)[1] == [0]
    two = _states([3.0], [5.0])
    assert multi_krum(two, f=1, m=1)[1] == [0]  # a tie: the first is kept
    three = _states([0.0], [1.0], [10.0])  # n <= 2f + 2: one neighbour each
    assert multi_krum(three, f=1, m=1)[1] == [0]


def test_fedopt_step_equals_the_formula_on_a_scalar():
    x = {"w": torch.tensor([1.0])}
    target = {"w": torch.tensor([1.5])}
    eta, b1, b2, tau = 0.1, 0.9, 0.99, 1e-3
    delta = 0.5
    m = (1 - b1) * delta
    for variant, v in [("adam", b2 * tau**2 + (1 - b2) * delta**2),
                       ("adagrad", tau**2 + delta**2),
                       ("yogi", tau**2 + (1 - b2) * delta**2)]:  # sign(tau^2 - delta^2) = -1
        new, m_out, v_out = fedopt_step(x, target, None, None, variant=variant, eta=eta, beta1=b1, beta2=b2,
                                        tau=tau)
        assert m_out["w"].item() == pytest.approx(m, rel=1e-12)
        assert v_out["w"].item() == pytest.approx(v, rel=1e-12)
        assert new["w"].item() == pytest.approx(1.0 + eta * m / (v ** 0.5 + tau), rel=1e-6)
        assert new["w"].dtype == torch.float32
    # the second step uses the moments: adam with the same delta
    new, m1, v1 = fedopt_step(x, target, None, None, variant="adam", eta=eta, beta1=b1, beta2=b2, tau=tau)
    _, m2, v2 = fedopt_step(x, target, m1, v1, variant="adam", eta=eta, beta1=b1, beta2=b2, tau=tau)
    assert m2["w"].item() == pytest.approx(b1 * m + (1 - b1) * delta)
    assert v2["w"].item() == pytest.approx(b2 * v1["w"].item() + (1 - b2) * delta**2)


def _lora(b, a, head):
    return {"m.lora_A.default.weight": torch.tensor(a, dtype=torch.float32),
            "m.lora_B.default.weight": torch.tensor(b, dtype=torch.float32),
            "heads.t.weight": torch.tensor(head, dtype=torch.float32)}


def test_lora_pairs_match_by_module_name():
    names = ["x.lora_A.default.weight", "x.lora_B.default.weight", "heads.t.bias",
             "y.lora_A.default.weight", "y.lora_B.default.weight"]
    assert lora_pairs(names) == [("x.lora_A.default.weight", "x.lora_B.default.weight"),
                                 ("y.lora_A.default.weight", "y.lora_B.default.weight")]
    with pytest.raises(KeyError):
        lora_pairs(["x.lora_A.default.weight"])
    with pytest.raises(KeyError):
        lora_pairs(["x.lora_B.default.weight"])


def test_lora_product_is_the_exact_average_of_products_when_rank_allows():
    g = torch.Generator().manual_seed(0)
    # two clients with rank-1 updates padded into rank-2 factors: the average product has rank 2
    states, products = [], []
    for _ in range(2):
        b, a = torch.zeros(5, 2), torch.zeros(2, 3)
        b[:, 0], a[0] = torch.randn(5, generator=g), torch.randn(3, generator=g)
        states.append({"m.lora_A.default.weight": a, "m.lora_B.default.weight": b,
                       "heads.t.weight": torch.randn(2, 2, generator=g)})
        products.append(b.double() @ a.double())
    out = lora_product_average(states, [1.0, 3.0])
    exact = (products[0] * 1 + products[1] * 3) / 4
    got = out["m.lora_B.default.weight"].double() @ out["m.lora_A.default.weight"].double()
    assert torch.allclose(got, exact, atol=1e-6)
    assert not torch.allclose(weighted_average(states, [1, 3])["m.lora_B.default.weight"].double()
                              @ weighted_average(states, [1, 3])["m.lora_A.default.weight"].double(), exact,
                              atol=1e-3)  # averaging A and B separately is not exact
    assert torch.equal(out["heads.t.weight"], weighted_average(states, [1, 3])["heads.t.weight"])
    for k, v in states[0].items():
        assert out[k].shape == v.shape and out[k].dtype == v.dtype
    # A's rows are orthonormal (no dead rank direction), B carries the scale
    a = out["m.lora_A.default.weight"].double()
    assert torch.allclose(a @ a.T, torch.eye(2, dtype=torch.float64), atol=1e-6)


def test_lora_product_truncates_to_the_best_rank_r_approximation():
    g = torch.Generator().manual_seed(1)
    states = [{"m.lora_A.default.weight": torch.randn(1, 4, generator=g),
               "m.lora_B.default.weight": torch.randn(4, 1, generator=g)} for _ in range(3)]
    out = lora_product_average(states, [1, 1, 1])
    exact = sum(s["m.lora_B.default.weight"].double() @ s["m.lora_A.default.weight"].double() for s in states) / 3
    u, s, vh = torch.linalg.svd(exact)
    best = s[0] * torch.outer(u[:, 0], vh[0])
    got = out["m.lora_B.default.weight"].double() @ out["m.lora_A.default.weight"].double()
    assert torch.allclose(got, best, atol=1e-5)


def test_lora_product_of_zero_b_keeps_a_alive():
    states = [_lora([[0.0], [0.0]], [[1.0, 2.0]], [1.0]), _lora([[0.0], [0.0]], [[3.0, 4.0]], [3.0])]
    out = lora_product_average(states, [1, 1])
    assert torch.all(out["m.lora_B.default.weight"] == 0)
    assert out["m.lora_A.default.weight"].norm().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("fn", [
    lambda s: coordinate_median(s), lambda s: trimmed_mean(s, 0.2), lambda s: multi_krum(s, 1, 3)[0],
    lambda s: lora_product_average(s, [1, 2, 3, 4, 5]),
    lambda s: fedopt_step(s[0], s[1], None, None, variant="yogi", eta=0.01, beta1=0.9, beta2=0.99, tau=1e-3)[0],
])
def test_aggregation_math_is_deterministic_and_keeps_keys_shapes_dtypes(fn):
    g = torch.Generator().manual_seed(3)
    states = [{"a.lora_A.default.weight": torch.randn(2, 6, generator=g),
               "a.lora_B.default.weight": torch.randn(5, 2, generator=g),
               "heads.x.bias": torch.randn(3, generator=g)} for _ in range(5)]
    first, second = fn(states), fn(states)
    assert list(first) == list(states[0])
    for k, v in states[0].items():
        assert first[k].shape == v.shape and first[k].dtype == v.dtype
        assert first[k].numpy().tobytes() == second[k].numpy().tobytes()
