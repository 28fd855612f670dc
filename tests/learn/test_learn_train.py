import io

import numpy as np
import pytest
import torch

from vfedsim.learn.aggregate import weighted_average
from vfedsim.learn.data import shard_indices
from vfedsim.learn.model import trainable_state
from vfedsim.learn.train import (Learner, TrainJob, deserialize_state, pack_tensors, serialize_state,
                                 unpack_state)
from vfedsim.rng import stream


def _job(learner, vehicle=0, seed=11, version=0, n=None):
    n = n or learner.cfg.data.samples_per_vehicle
    idx = shard_indices(learner.bundle.pool, home_group=vehicle % 2, n_samples=n, home_fraction=0.8,
                        rng=stream(0, "shard", vehicle))
    return TrainJob(vehicle=vehicle, round=1, base_version=version, indices=idx, seed=seed)


def _same(a, b):
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_job_changes_only_adapters_and_heads(learner):
    frozen = {n: p.detach().clone() for n, p in learner.model.named_parameters() if not p.requires_grad}
    (update,) = learner.run_jobs([_job(learner)])
    assert not _same(update.state, learner.global_state(0))
    for n, p in learner.model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[n]), n
    assert list(update.state) == list(learner.global_state(0))
    assert update.num_samples == learner.cfg.data.samples_per_vehicle and update.base_version == 0
    assert np.isfinite(update.train_loss) and update.train_loss > 0


def test_jobs_are_deterministic_and_order_free(learner):
    a, b = _job(learner, 0, seed=5), _job(learner, 1, seed=6)
    (first,) = learner.run_jobs([a])
    again = learner.run_jobs([b, a, b])
    assert _same(first.state, again[1].state) and first.train_loss == again[1].train_loss
    assert _same(again[0].state, again[2].state)
    assert not _same(again[0].state, again[1].state)
    other_seed = learner.run_jobs([_job(learner, 0, seed=99)])[0]
    assert not _same(first.state, other_seed.state)
    # a job does not touch the global random state either
    torch.manual_seed(0)
    x = torch.rand(3)
    torch.manual_seed(0)
    learner.run_jobs([a])
    assert torch.equal(torch.rand(3), x)


def test_fresh_learner_reproduces_a_job(learner, tiny_learning, tiny_bundle):
    job = _job(learner, 3, seed=42)
    (u1,) = learner.run_jobs([job])
    (u2,) = Learner(tiny_learning, bundle=tiny_bundle, seed=0).run_jobs([job])
    assert _same(u1.state, u2.state)


def test_versions_commit_and_release(learner):
    updates = learner.run_jobs([_job(learner, v, seed=v) for v in range(3)])
    avg = weighted_average([u.state for u in updates], [u.num_samples for u in updates])
    assert learner.commit(avg) == 1 and learner.version == 1
    assert _same(learner.global_state(), learner.global_state(1))
    (u,) = learner.run_jobs([_job(learner, 0, version=1)])
    assert u.base_version == 1
    learner.commit(u.state)
    learner.release(1)
    with pytest.raises(KeyError):
        learner.global_state(1)
    learner.release(2)                      # the current version is kept
    assert learner.global_state(2) is not None and learner.global_state(0) is not None
    with pytest.raises(KeyError):
        learner.commit({"nope": torch.zeros(1)})


def test_payload_bytes_is_the_serialised_size(learner, tiny_learning, tiny_bundle):
    state = learner.global_state()
    buffer = io.BytesIO()
    torch.save({k: v.to(torch.float32) for k, v in state.items()}, buffer)
    assert learner.payload_bytes() == len(buffer.getvalue()) == len(serialize_state(state))
    values = sum(v.numel() for v in state.values())
    overhead = 1024 * len(state)   # zip entries, names, shapes: well under 1 KiB per tensor
    assert values * 4 < learner.payload_bytes() < values * 4 + overhead
    half = Learner(tiny_learning.model_copy(update={"payload_dtype": "float16"}), bundle=tiny_bundle)
    saved = learner.payload_bytes() - half.payload_bytes()
    assert abs(saved - values * 2) < 64 * len(state)   # float16 halves the values (storage is 64-byte aligned)


def test_float16_payload_rounds_updates(learner, tiny_learning, tiny_bundle):
    half = Learner(tiny_learning.model_copy(update={"payload_dtype": "float16"}), bundle=tiny_bundle)
    job = _job(learner, 2, seed=8)
    (u32,) = learner.run_jobs([job])
    (u16,) = half.run_jobs([job])
    assert all(v.dtype == torch.float32 for v in u16.state.values())
    assert all(torch.equal(v, v.half().float()) for v in u16.state.values())   # representable in fp16
    assert not _same(u32.state, u16.state)
    assert all(torch.allclose(u32.state[k], u16.state[k], atol=1e-2, rtol=1e-2) for k in u32.state)


def test_pack_matches_torch_save_round_trip(learner):
    state = learner.run_jobs([_job(learner)])[0].state
    for dtype in ("float32", "float16"):
        packed = unpack_state(pack_tensors(list(state.values()), dtype), state, dtype)
        assert _same(packed, deserialize_state(serialize_state(state, dtype)))


def test_train_flops_counted_and_scaling(learner):
    local = learner.cfg.local
    one_batch = learner.train_flops(local.batch_size)
    assert one_batch > 0
    assert learner.train_flops(4 * local.batch_size) == 4 * one_batch
    partial = learner.train_flops(local.batch_size + 1)
    assert one_batch < partial < 2 * one_batch
    assert learner.train_flops(local.batch_size // 2) < one_batch
    assert learner.train_steps(local.batch_size + 1) == 2 * local.epochs


def test_evaluate_keys_and_ranges(learner, tiny_learning):
    metrics = learner.evaluate()
    for task in tiny_learning.tasks:
        for m in ("accuracy", "macro_f1", "balanced_accuracy"):
            assert 0.0 <= metrics[f"{task}.{m}"] <= 1.0
        assert metrics[f"{task}.loss"] > 0
    assert "mean.accuracy" in metrics
    assert learner.evaluate(learner.global_state(0)) == metrics


def test_round_zero_is_the_pretrained_model(learner, tiny_learning, tiny_bundle):
    from vfedsim.learn.model import to_tensors
    from vfedsim.learn.pretrain import load_pretrained

    plain = load_pretrained(tiny_learning, tiny_bundle)
    test = to_tensors(tiny_bundle.test, tiny_learning.tasks)
    learner.model.eval()
    with torch.no_grad():
        a, b = plain(*test.inputs()), learner.model(*test.inputs())
    assert all(torch.allclose(a[t], b[t], atol=1e-5) for t in a)
    # the heads are the pretrained heads
    heads = {k: v for k, v in trainable_state(learner.model).items() if k.startswith("heads.")}
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in heads.items())


def test_bare_loop_helpers(learner):
    job = _job(learner)
    data = learner.train_tensors(job.indices)
    assert len(data) == len(job.indices)
    params = learner.trainable_parameters()
    assert [p.data_ptr() for p in params] == [p.data_ptr() for n, p in learner.model.named_parameters()
                                              if p.requires_grad]
