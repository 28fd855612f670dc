import torch

from vfedsim.learn.data import shard_indices
from vfedsim.learn.model import build_model, multitask_loss, to_tensors
from vfedsim.learn.pretrain import ensure_pretrained, load_pretrained, pretrain_key, pretrained_path
from vfedsim.learn.train import Learner, TrainJob
from vfedsim.rng import stream
from vfedsim.scenario import PretrainConfig


def _loss(model, data):
    model.eval()
    with torch.no_grad():
        return float(multitask_loss(model(*data.inputs()), data.targets()))


def test_pretraining_beats_random_init(tiny_learning, tiny_bundle, tiny_pretrained):
    source = to_tensors(tiny_bundle.source, tiny_learning.tasks)
    random_init = _loss(build_model(tiny_learning), source)
    pretrained = _loss(load_pretrained(tiny_learning, tiny_bundle), source)
    assert pretrained < 0.7 * random_init


def test_pretrained_weights_are_cached(tiny_learning, tiny_bundle, tiny_pretrained):
    assert tiny_pretrained == pretrained_path(tiny_learning) and tiny_pretrained.is_file()
    stamp = tiny_pretrained.stat().st_mtime_ns
    assert ensure_pretrained(tiny_learning, tiny_bundle) == tiny_pretrained
    assert tiny_pretrained.stat().st_mtime_ns == stamp           # not trained again
    a = load_pretrained(tiny_learning, tiny_bundle).state_dict()
    b = load_pretrained(tiny_learning, tiny_bundle).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_key_follows_settings(tiny_learning):
    key = pretrain_key(tiny_learning)
    assert pretrain_key(tiny_learning.model_copy(update={"pretrain": PretrainConfig(epochs=3)})) != key
    assert pretrain_key(tiny_learning.model_copy(update={"tasks": ("leader",)})) != key
    data = tiny_learning.data.model_copy(update={"samples_per_group": 121})
    assert pretrain_key(tiny_learning.model_copy(update={"data": data})) != key
    assert pretrain_key(tiny_learning.model_copy(update={"payload_dtype": "float16"})) == key


def test_fine_tuning_improves_the_target_test_loss(tiny_learning, tiny_bundle, tiny_pretrained):
    cfg = tiny_learning.model_copy(update={"local": tiny_learning.local.model_copy(update={"epochs": 3})})
    learner = Learner(cfg, bundle=tiny_bundle)
    before = learner.evaluate()
    jobs = [TrainJob(v, 1, 0, shard_indices(tiny_bundle.pool, home_group=v % 2, n_samples=60, home_fraction=0.5,
                                            rng=stream(0, "ft", v)), seed=v) for v in range(2)]
    from vfedsim.learn.aggregate import weighted_average

    updates = learner.run_jobs(jobs)
    learner.commit(weighted_average([u.state for u in updates], [u.num_samples for u in updates]))
    after = learner.evaluate()
    assert after["mean.loss"] < before["mean.loss"] - 0.02


def test_pretrain_key_of_new_model_keys(tiny_learning):
    """Keys added later leave the m3t-tiny cache key alone at their defaults; a preset changes it."""
    import hashlib
    import json

    from vfedsim.learn.data import data_key
    from vfedsim.learn.pretrain import PRETRAIN_VERSION
    from vfedsim.scenario import MtlConfig

    model = tiny_learning.model.model_dump(mode="json")
    model.pop("trunk_init")
    model.pop("camera_encoder")
    old = json.dumps({"data": data_key(tiny_learning.data), "model": model,
                      "pretrain": tiny_learning.pretrain.model_dump(mode="json"), "tasks": list(tiny_learning.tasks),
                      "version": PRETRAIN_VERSION}, sort_keys=True)
    assert pretrain_key(tiny_learning) == hashlib.sha256(old.encode()).hexdigest()[:16]
    assert pretrain_key(tiny_learning.model_copy(update={"mtl": MtlConfig(weighting="uncertainty")})) == \
        pretrain_key(tiny_learning)                                     # fine-tuning options: same foundation model
    minilm = tiny_learning.model.model_copy(update={"preset": "minilm-l6", "trunk_init": "random"})
    assert pretrain_key(tiny_learning.model_copy(update={"model": minilm})) != pretrain_key(tiny_learning)
