import pytest
import torch

from vfedsim.learn.data import TASK_CLASSES
from vfedsim.learn.model import (build_model, count_parameters, load_trainable_state, to_tensors,
                                 trainable_names, trainable_state, wrap_lora)
from vfedsim.scenario import LearningConfig, ModelConfig, PeftConfig


def _inputs(n=6, px=24):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 5, 7, generator=g), torch.rand(n, 3, 11, 11, generator=g),
            torch.randint(0, 256, (n, 1, px, px), generator=g, dtype=torch.uint8))


@pytest.mark.parametrize("tasks", [("maneuver", "longitudinal", "leader"), ("leader",)])
@pytest.mark.parametrize("px", [16, 24, 32])
def test_forward_shapes(tasks, px):
    cfg = LearningConfig(tasks=tasks, model=ModelConfig(d_model=32, layers=1, heads=2))
    out = build_model(cfg)(*_inputs(px=px))
    assert list(out) == list(tasks)
    for t, z in out.items():
        assert z.shape == (6, len(TASK_CLASSES[t])) and torch.isfinite(z).all()


def test_trunk_uses_named_linear_modules():
    model = build_model(LearningConfig())
    names = {n.rsplit(".", 1)[-1] for n, m in model.trunk.named_modules() if isinstance(m, torch.nn.Linear)}
    assert {"q", "k", "v", "o", "fc1", "fc2"} <= names
    assert isinstance(model.heads, torch.nn.ModuleDict)


def test_build_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model(LearningConfig())
    assert torch.equal(torch.rand(1), before)
    b = build_model(LearningConfig())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_lora_wrapping_trains_only_adapters_and_heads():
    cfg = LearningConfig(peft=PeftConfig(rank=4, target_modules=("q", "v", "fc2")))
    model = build_model(cfg)
    x = _inputs(px=32)
    before = {t: z.detach() for t, z in model(*x).items()}
    total_before = count_parameters(model)[1]
    wrap_lora(model, cfg.peft, seed=0)
    names = trainable_names(model)
    assert names and all("lora_" in n or n.startswith("heads.") for n in names)
    assert any(".q.lora_A" in n for n in names) and not any(".k.lora_" in n for n in names)
    assert not any(n.startswith(("kinematics.", "occupancy.", "camera.")) for n in names)
    trainable, total = count_parameters(model)
    assert trainable < 0.3 * total and total > total_before
    # LoRA's B starts at zero: the wrapped model computes what the pretrained one did
    after = model(*x)
    assert all(torch.allclose(before[t], after[t], atol=1e-6) for t in before)


def test_trainable_state_round_trip():
    cfg = LearningConfig(model=ModelConfig(d_model=32, layers=1, heads=2))
    model = wrap_lora(build_model(cfg), cfg.peft, seed=0)
    state = trainable_state(model)
    assert list(state) == trainable_names(model)
    changed = {k: v + 1.0 for k, v in state.items()}
    load_trainable_state(model, changed)
    assert all(torch.equal(a, b) for a, b in zip(trainable_state(model).values(), changed.values()))
    assert not torch.equal(next(iter(state.values())), next(iter(changed.values())))  # a copy, not a view
    with pytest.raises(KeyError):
        load_trainable_state(model, {k: v for k, v in list(state.items())[1:]})


def test_lora_init_depends_on_seed():
    cfg = LearningConfig(model=ModelConfig(d_model=32, layers=1, heads=2))
    a = trainable_state(wrap_lora(build_model(cfg), cfg.peft, seed=0))
    b = trainable_state(wrap_lora(build_model(cfg), cfg.peft, seed=0))
    c = trainable_state(wrap_lora(build_model(cfg), cfg.peft, seed=1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_tensor_data_views_numpy(tiny_bundle, tiny_learning):
    data = to_tensors(tiny_bundle.pool, tiny_learning.tasks)
    assert len(data) == len(tiny_bundle.pool) and data.camera.dtype == torch.uint8
    sub = data.subset(torch.tensor([3, 1]))
    assert torch.equal(sub.kinematics[0], torch.from_numpy(tiny_bundle.pool.kinematics[3]))
