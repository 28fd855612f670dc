"""PEFT methods through peft: LoRA, IA3, LoHa, LoKr on the trunk; trainable = adapters + heads."""
import pytest
import torch

from vfedsim.errors import ScenarioError
from vfedsim.learn.adapters import ADAPTER_PREFIX, module_group, wrap_peft
from vfedsim.learn.data import shard_indices
from vfedsim.learn.model import build_model, count_parameters, trainable_names
from vfedsim.learn.payload import serialize_state
from vfedsim.learn.train import Learner, TrainJob
from vfedsim.rng import stream
from vfedsim.scenario import LearningConfig, ModelConfig, PeftConfig, parse_scenario

METHODS = {
    "lora": PeftConfig(method="lora", rank=4, alpha=8),
    "ia3": PeftConfig(method="ia3"),
    "loha": PeftConfig(method="loha", rank=4, alpha=8),
    "lokr": PeftConfig(method="lokr", rank=4, alpha=8),
}


def _inputs(n=6, px=24):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 5, 7, generator=g), torch.rand(n, 3, 11, 11, generator=g),
            torch.randint(0, 256, (n, 1, px, px), generator=g, dtype=torch.uint8))


def _same(a, b):
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", list(METHODS))
def test_wrapping_starts_as_identity_and_trains_only_adapters_and_heads(method):
    cfg = LearningConfig(model=ModelConfig(d_model=32, layers=1, heads=2), peft=METHODS[method])
    model = build_model(cfg)
    x = _inputs()
    before = {t: z.detach() for t, z in model(*x).items()}
    wrap_peft(model, cfg.peft, seed=0)
    names = trainable_names(model)
    adapters = [n for n in names if not n.startswith("heads.")]
    assert adapters and all(n.startswith("trunk.") and ADAPTER_PREFIX[method] in n for n in adapters)
    assert {module_group(n) for n in adapters} == {f"trunk.{method}"}
    trainable, total = count_parameters(model)
    assert trainable < 0.5 * total
    after = model(*x)
    assert all(torch.allclose(before[t], after[t], atol=1e-6) for t in before)


def test_ia3_scales_feedforward_inputs_and_other_outputs():
    cfg = LearningConfig(model=ModelConfig(d_model=32, layers=1, heads=2),
                         peft=PeftConfig(method="ia3", target_modules=("k", "v", "fc2")))
    assert cfg.peft.ia3_feedforward == ("fc2",)
    model = wrap_peft(build_model(cfg), cfg.peft, seed=0)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad and "ia3_" in n}
    assert shapes == {"trunk.blocks.0.attn.k.ia3_l.default": (32, 1), "trunk.blocks.0.attn.v.ia3_l.default": (32, 1),
                      "trunk.blocks.0.mlp.fc2.ia3_l.default": (1, 128)}   # fc2: a vector over its 128 inputs
    no_ff = PeftConfig(method="ia3", target_modules=("q", "v"))
    assert no_ff.ia3_feedforward == ()
    wrap_peft(build_model(cfg.model_copy(update={"peft": no_ff})), no_ff, seed=0)


@pytest.mark.parametrize("raw, fragment", [
    ({"method": "ia3", "target_modules": ["q", "v"], "feedforward_modules": ["fc2"]}, "must also be in target_modules"),
    ({"method": "lora", "feedforward_modules": ["fc2"]}, "option of ia3"),
    ({"method": "ia3", "dropout": 0.1}, "option of lora"),
    ({"method": "lora", "decompose_both": True}, "option of lokr"),
    ({"method": "loha", "decompose_factor": 4}, "option of lokr"),
    ({"method": "prefix"}, "allowed: lora, ia3, loha, lokr"),
])
def test_peft_options_are_validated(raw, fragment):
    with pytest.raises(ScenarioError, match=fragment) as err:
        parse_scenario({"learning": {"peft": raw}})
    assert str(err.value).startswith("learning.peft")


def test_options_of_the_chosen_method_pass():
    parse_scenario({"learning": {"peft": {"method": "lokr", "decompose_both": True, "decompose_factor": 4,
                                          "rank_dropout": 0.1}}})
    parse_scenario({"learning": {"peft": {"method": "ia3", "rank": 4}}})   # rank: not IA3's, but harmless


def _job(bundle, vehicle=0, seed=7):
    idx = shard_indices(bundle.pool, home_group=vehicle % 2, n_samples=24, home_fraction=0.8,
                        rng=stream(0, "shard", vehicle))
    return TrainJob(vehicle=vehicle, round=1, base_version=0, indices=idx, seed=seed)


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_trains_deterministically(method, tiny_learning, tiny_bundle, tiny_pretrained):
    cfg = tiny_learning.model_copy(update={"peft": METHODS[method]})
    learner = Learner(cfg, bundle=tiny_bundle, seed=0)
    frozen = {n: p.detach().clone() for n, p in learner.model.named_parameters() if not p.requires_grad}
    (u1,) = learner.run_jobs([_job(tiny_bundle)])
    base = learner.global_state(0)
    changed = {module_group(k) for k in base if not torch.equal(base[k], u1.state[k])}
    assert f"trunk.{method}" in changed and any(g.startswith("heads.") for g in changed)
    assert all(torch.equal(p, frozen[n]) for n, p in learner.model.named_parameters() if not p.requires_grad)
    (u2,) = Learner(cfg, bundle=tiny_bundle, seed=0).run_jobs([_job(tiny_bundle)])
    assert _same(u1.state, u2.state) and u1.train_loss == u2.train_loss
    # the payload is the serialised size of this method's state, and the groups add up to it
    assert learner.payload_bytes() == len(serialize_state(base))
    assert sum(learner.payload_breakdown().values()) == learner.payload_bytes()
    values = sum(v.numel() for k, v in base.items() if k.startswith("trunk."))
    assert learner.payload_breakdown()[f"trunk.{method}"] == 4 * values


def test_payload_size_depends_on_the_method(tiny_learning, tiny_bundle, tiny_pretrained):
    sizes = {m: Learner(tiny_learning.model_copy(update={"peft": c}), bundle=tiny_bundle).payload_breakdown()
             for m, c in METHODS.items()}
    adapters = {m: b[f"trunk.{m}"] for m, b in sizes.items()}
    assert adapters["ia3"] < adapters["lokr"] < adapters["lora"] < adapters["loha"]
    assert len({tuple(b[k] for k in b if k.startswith("heads.")) for b in sizes.values()}) == 1  # same heads
