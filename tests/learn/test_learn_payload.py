"""Payload encodings (float32 / float16 / int8), their round trips and the per-module breakdown."""
import pytest
import torch

from vfedsim.learn.adapters import module_group
from vfedsim.learn.data import shard_indices
from vfedsim.learn.payload import (SCALE_BYTES, breakdown, dequantize_int8, deserialize_state, pack_tensors,
                                   quantize_int8, serialize_state, unpack_state)
from vfedsim.learn.train import Learner, TrainJob
from vfedsim.rng import stream


def _state(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"trunk.blocks.0.attn.q.lora_A.default": torch.randn(4, 32, generator=g),
            "trunk.blocks.0.attn.q.lora_B.default": torch.zeros(32, 4),
            "heads.leader.weight": 3.0 * torch.randn(2, 32, generator=g),
            "heads.leader.bias": torch.tensor([1e-3, -2e-3])}


def test_int8_quantisation_error_is_at_most_half_a_step():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(1)) * 5
    q, s = quantize_int8(x)
    assert q.dtype == torch.int8 and s.dtype == torch.float32
    assert float(s) == pytest.approx(float(x.abs().max()) / 127)
    assert int(q.abs().max()) == 127
    err = (dequantize_int8(q, s) - x).abs().max()
    assert err <= float(s) / 2 * (1 + 1e-5)
    zq, zs = quantize_int8(torch.zeros(3, 3))       # an all-zero tensor (LoRA's B at the start)
    assert float(zs) == 0 and torch.equal(dequantize_int8(zq, zs), torch.zeros(3, 3))


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_wire_and_file_formats_agree(dtype):
    state = _state()
    wire = unpack_state(pack_tensors(list(state.values()), dtype), state, dtype)
    assert list(wire) == list(state)
    assert all(torch.equal(a, b) for a, b in zip(wire.values(), deserialize_state(serialize_state(state, dtype)).values()))
    for k, v in state.items():
        step = float(v.abs().max()) / 127 if dtype == "int8" else 0.0
        tol = {"float32": 0.0, "float16": 1e-3 * float(v.abs().max()) + 1e-7, "int8": step / 2 * (1 + 1e-5)}[dtype]
        assert (wire[k] - v).abs().max() <= tol, k


def test_wire_sizes_by_dtype():
    state = _state()
    n, t = sum(v.numel() for v in state.values()), len(state)
    assert len(pack_tensors(list(state.values()), "float32")) == 4 * n
    assert len(pack_tensors(list(state.values()), "float16")) == 2 * n
    assert len(pack_tensors(list(state.values()), "int8")) == n + SCALE_BYTES * t


def test_breakdown_groups_and_container():
    state = _state()
    total = len(serialize_state(state, "float16"))
    parts = breakdown(state, "float16", module_group, total=total)
    assert list(parts) == ["trunk.lora", "heads.leader", "container"]
    assert parts["trunk.lora"] == 2 * (128 + 128) and parts["heads.leader"] == 2 * (64 + 2)
    assert sum(parts.values()) == total and parts["container"] > 0
    assert breakdown(state, "int8", module_group)["heads.leader"] == 66 + 2 * SCALE_BYTES


def _job(learner, vehicle=0, seed=3):
    idx = shard_indices(learner.bundle.pool, home_group=0, n_samples=24, home_fraction=0.8,
                        rng=stream(0, "shard", vehicle))
    return TrainJob(vehicle=vehicle, round=1, base_version=0, indices=idx, seed=seed)


def test_learner_payload_sizes_by_dtype(tiny_learning, tiny_bundle, tiny_pretrained):
    learners = {d: Learner(tiny_learning.model_copy(update={"payload_dtype": d}), bundle=tiny_bundle)
                for d in ("float32", "float16", "int8")}
    parts = {d: l.payload_breakdown() for d, l in learners.items()}
    for d, l in learners.items():
        assert sum(parts[d].values()) == l.payload_bytes()
    state = learners["float32"].global_state()
    values, tensors = sum(v.numel() for v in state.values()), len(state)
    payload_values = {d: sum(v for k, v in p.items() if k != "container") for d, p in parts.items()}
    assert payload_values["float32"] == 4 * values
    assert payload_values["float16"] == 2 * values                      # half
    assert payload_values["int8"] == values + SCALE_BYTES * tensors     # a quarter, plus a scale per tensor
    assert learners["int8"].payload_bytes() < learners["float16"].payload_bytes() < learners["float32"].payload_bytes()
    assert abs(learners["float32"].payload_bytes() - learners["float16"].payload_bytes() - 2 * values) < 64 * tensors


def test_int8_payload_is_applied_both_ways(tiny_learning, tiny_bundle, tiny_pretrained):
    learner = Learner(tiny_learning.model_copy(update={"payload_dtype": "int8"}), bundle=tiny_bundle)
    full = Learner(tiny_learning, bundle=tiny_bundle)
    down = learner.downlink(0)
    for k, v in learner.global_state(0).items():
        q, s = quantize_int8(v)
        assert torch.equal(down[k], dequantize_int8(q, s))
        assert (down[k] - v).abs().max() <= float(s) / 2 * (1 + 1e-5)
    (u8,) = learner.run_jobs([_job(learner)])
    (u32,) = full.run_jobs([_job(full)])
    for k, v in u8.state.items():                                      # each uploaded tensor is on its int8 grid
        q, s = quantize_int8(v)
        assert torch.allclose(dequantize_int8(q, s), v, atol=float(s) * 1e-3 + 1e-12), k
    assert any(not torch.equal(u8.state[k], u32.state[k]) for k in u8.state)
    (again,) = learner.run_jobs([_job(learner)])
    assert all(torch.equal(u8.state[k], again.state[k]) for k in u8.state)
