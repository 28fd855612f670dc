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
