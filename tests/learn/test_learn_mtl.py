"""Multi-task loss weighting (sum, fixed, uncertainty), PCGrad, and FedProx's proximal term."""
import math

import numpy as np
import pytest
import torch

from vfedsim.errors import ScenarioError
from vfedsim.learn.aggregate import state_norm
from vfedsim.learn.data import shard_indices
from vfedsim.learn.model import multitask_loss
from vfedsim.learn.mtl import MultiTaskObjective, UncertaintyWeighting, fixed_weighting, pcgrad, task_losses
from vfedsim.learn.train import Learner, TrainJob
from vfedsim.rng import stream
from vfedsim.scenario import MtlConfig, parse_scenario


def _toy_losses():
    return {"maneuver": torch.tensor(2.0), "longitudinal": torch.tensor(0.5), "leader": torch.tensor(1.0)}


def test_fixed_weighting_formula():
    out = fixed_weighting({"maneuver": 0.5, "leader": 2.0})(_toy_losses())
    assert {t: float(v) for t, v in out.items()} == {"maneuver": 1.0, "longitudinal": 0.5, "leader": 2.0}


def test_uncertainty_weighting_formula_and_gradient():
    w = UncertaintyWeighting(("maneuver", "longitudinal", "leader"))
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.0, math.log(4.0), -1.0]))
    losses = _toy_losses()
    out = {t: v.detach() for t, v in w(losses).items()}
    s = [0.0, math.log(4.0), -1.0]
    for i, t in enumerate(w.tasks):    # Kendall et al. 2018, eq. 10: L / sigma^2 + log sigma, s = log sigma^2
        assert out[t].item() == pytest.approx(math.exp(-s[i]) * float(losses[t]) + s[i] / 2)
    sum(w(losses).values()).backward()
    # d/ds (exp(-s) L + s/2) = -exp(-s) L + 1/2: zero at s = log(2 L)
    expected = [-math.exp(-s[i]) * float(losses[t]) + 0.5 for i, t in enumerate(w.tasks)]
    assert w.log_vars.grad.tolist() == pytest.approx(expected)


def test_task_losses_sum_is_the_plain_multitask_loss():
    g = torch.Generator().manual_seed(0)
    logits = {"maneuver": torch.randn(5, 3, generator=g), "leader": torch.randn(5, 2, generator=g)}
    labels = {"maneuver": torch.tensor([0, 1, 2, 1, 0]), "leader": torch.tensor([1, 0, 1, 1, 0])}
    assert torch.equal(sum(task_losses(logits, labels).values()), multitask_loss(logits, labels))


def test_pcgrad_two_conflicting_tasks():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])      # g1 . g2 = -1 < 0
    out = pcgrad(g)
    # g1 - (g1.g2 / |g2|^2) g2 = [1, 0] + 0.5 [-1, 1] = [0.5, 0.5]; g2 - (g2.g1 / |g1|^2) g1 = [0, 1]
    assert torch.allclose(out, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    assert float(out[0] @ g[1]) >= -1e-7 and float(out[1] @ g[0]) >= -1e-7   # no conflict left
    assert torch.equal(g, torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))            # inputs untouched


def test_pcgrad_leaves_agreeing_gradients_alone_and_removes_conflicts():
    agree = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.0, 1.0], [1.0, 1.0, 1.0]])
    assert torch.equal(pcgrad(agree), agree)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        g = torch.randn(2, 10, generator=gen)
        out = pcgrad(g, torch.Generator().manual_seed(1))
        assert float(out[0] @ g[1]) >= -1e-5 and float(out[1] @ g[0]) >= -1e-5
        if float(g[0] @ g[1]) >= 0:
            assert torch.equal(out, g)


def test_pcgrad_order_comes_from_the_generator():
    g = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    a = pcgrad(g, torch.Generator().manual_seed(5))
    assert torch.equal(a, pcgrad(g, torch.Generator().manual_seed(5)))
    # each projected row has dropped only components along other rows: it moved by a combination of them
    for i in range(4):
        others = torch.cat([g[:i], g[i + 1:]]).T
        coef = torch.linalg.lstsq(others, (a[i] - g[i]).unsqueeze(1)).solution
        assert torch.allclose(others @ coef, (a[i] - g[i]).unsqueeze(1), atol=1e-5)


def test_objective_pcgrad_sets_the_sum_of_projected_task_gradients():
    w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    logits = {"a": w[None, :], "b": -w[None, :]}    # two tasks that pull w in opposite directions
    labels = {"a": torch.tensor([0]), "b": torch.tensor([0])}
    obj = MultiTaskObjective(MtlConfig(gradient="pcgrad"), ("a", "b"))
    obj.backward(logits, labels, [w])
    ga = torch.autograd.grad(torch.nn.functional.cross_entropy(w[None, :], labels["a"]), w)[0]
    gb = torch.autograd.grad(torch.nn.functional.cross_entropy(-w[None, :], labels["b"]), w)[0]
    assert torch.allclose(w.grad, pcgrad(torch.stack([ga, gb])).sum(0))


@pytest.mark.parametrize("raw, fragment", [
    ({"mtl": {"weighting": "fixed", "weights": {"lane": 1.0}}}, "not in learning.tasks"),
    ({"tasks": ["leader"], "mtl": {"weighting": "fixed", "weights": {"maneuver": 1.0}}}, "not in learning.tasks"),
    ({"mtl": {"weighting": "sum", "weights": {"leader": 1.0}}}, "apply to weighting 'fixed'"),
    ({"mtl": {"weighting": "fixed", "weights": {"leader": -1.0}}}, "greater than or equal to 0"),
    ({"tasks": ["leader"], "mtl": {"weighting": "fixed", "weights": {"leader": 0.0}}}, "zero for every task"),
    ({"mtl": {"gradient": "gradnorm"}}, "allowed: none, pcgrad, cagrad"),
    ({"mtl": {"cagrad_c": 0.2}}, "applies to gradient .cagrad."),
    ({"local": {"prox_mu": -0.1}}, "greater than or equal to 0"),
])
def test_mtl_and_prox_settings_are_validated(raw, fragment):
    with pytest.raises(ScenarioError, match=fragment):
        parse_scenario({"learning": raw})


# ------------------------------------------------------------------------------------------ in jobs
def _job(bundle, vehicle=0, seed=5):
    idx = shard_indices(bundle.pool, home_group=vehicle % 2, n_samples=24, home_fraction=0.8,
                        rng=stream(0, "shard", vehicle))
    return TrainJob(vehicle=vehicle, round=1, base_version=0, indices=idx, seed=seed)


def _learner(cfg, bundle, **update):
    parts = {k: v for k, v in update.items() if k not in ("prox_mu",)}
    if "prox_mu" in update:
        parts["local"] = cfg.local.model_copy(update={"prox_mu": update["prox_mu"]})
    return Learner(cfg.model_copy(update=parts), bundle=bundle, seed=0)


def _same(a, b):
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_default_job_is_the_plain_loop(tiny_learning, tiny_bundle, tiny_pretrained):
    """mu = 0, sum, no PCGrad: exactly the loop vfedsim ran before these options existed."""
    learner = Learner(tiny_learning, bundle=tiny_bundle, seed=0)
    job = _job(tiny_bundle)
    (u,) = learner.run_jobs([job])
    learner._load(learner.global_state(0))
    params = learner.trainable_parameters()
    gen = torch.Generator().manual_seed(job.seed)
    opt = torch.optim.Adam(params, lr=tiny_learning.local.lr)
    idx = torch.as_tensor(np.asarray(job.indices, dtype=np.int64))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(job.seed)
        learner.model.train()
        order = idx[torch.randperm(len(idx), generator=gen)]
        for start in range(0, len(idx), tiny_learning.local.batch_size):
            b = order[start:start + tiny_learning.local.batch_size]
            loss = multitask_loss(learner.model(*learner.pool.inputs(b)), learner.pool.targets(b))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    names = list(learner.global_state(0))
    assert all(torch.equal(u.state[n], p.detach()) for n, p in zip(names, params))


def test_prox_keeps_the_update_closer_to_the_base(tiny_learning, tiny_bundle, tiny_pretrained):
    job = _job(tiny_bundle)
    plain = _learner(tiny_learning, tiny_bundle)
    (u0,) = plain.run_jobs([job])
    (uz,) = _learner(tiny_learning, tiny_bundle, prox_mu=0.0).run_jobs([job])
    assert _same(u0.state, uz.state)                                   # mu = 0 is the plain job
    base = plain.global_state(0)

    def drift(state):
        return state_norm({k: state[k] - base[k] for k in base})

    # (with only a few noisy steps, a strong pull can undo the mini-batch gradients' cancellation: SGD gets 9)
    sgd = tiny_learning.local.model_copy(update={"optimizer": "sgd", "lr": 0.01, "epochs": 3})
    for local in (tiny_learning.local, sgd):
        cfg = tiny_learning.model_copy(update={"local": local})
        drifts = [drift(_learner(cfg, tiny_bundle, prox_mu=mu).run_jobs([job])[0].state) for mu in (0.0, 1.0, 10.0)]
        assert drifts[0] > drifts[1] > drifts[2] > 0, (local.optimizer, drifts)
    l1 = _learner(tiny_learning, tiny_bundle, prox_mu=1.0)
    assert _same(l1.run_jobs([job])[0].state, l1.run_jobs([job])[0].state)


def test_uncertainty_log_variances_train_and_travel(tiny_learning, tiny_bundle, tiny_pretrained):
    learner = _learner(tiny_learning, tiny_bundle, mtl=MtlConfig(weighting="uncertainty"))
    base = learner.global_state(0)
    assert list(base)[-1] == "mtl.log_vars" and torch.equal(base["mtl.log_vars"], torch.zeros(3))
    assert learner.payload_breakdown()["mtl"] == 3 * 4
    (u,) = learner.run_jobs([_job(tiny_bundle)])
    assert not torch.equal(u.state["mtl.log_vars"], base["mtl.log_vars"])
    # the reported loss is the unweighted sum of the task losses, as with `sum`
    (plain,) = _learner(tiny_learning, tiny_bundle).run_jobs([_job(tiny_bundle)])
    assert abs(u.train_loss - plain.train_loss) < 0.5
    assert set(learner.evaluate(u.state)) == set(learner.evaluate())


def test_fixed_weights_change_the_update(tiny_learning, tiny_bundle, tiny_pretrained):
    job = _job(tiny_bundle)
    (plain,) = _learner(tiny_learning, tiny_bundle).run_jobs([job])
    ones = MtlConfig(weighting="fixed", weights={"leader": 1.0})
    (same,) = _learner(tiny_learning, tiny_bundle, mtl=ones).run_jobs([job])
    assert all(torch.allclose(plain.state[k], same.state[k], atol=1e-6) for k in plain.state)
    off = MtlConfig(weighting="fixed", weights={"leader": 0.0})
    learner = _learner(tiny_learning, tiny_bundle, mtl=off)
    (u,) = learner.run_jobs([job])
    base = learner.global_state(0)
    assert all(torch.equal(u.state[k], base[k]) for k in base if k.startswith("heads.leader."))
    assert any(not torch.equal(u.state[k], base[k]) for k in base if k.startswith("heads.maneuver."))


def test_pcgrad_jobs_are_deterministic_and_differ_from_plain(tiny_learning, tiny_bundle, tiny_pretrained):
    mtl = MtlConfig(weighting="uncertainty", gradient="pcgrad")
    learner = _learner(tiny_learning, tiny_bundle, mtl=mtl)
    a, b = _job(tiny_bundle, 0, seed=5), _job(tiny_bundle, 1, seed=6)
    (first,) = learner.run_jobs([a])
    again = learner.run_jobs([b, a])
    assert _same(first.state, again[1].state) and first.train_loss == again[1].train_loss
    (plain,) = _learner(tiny_learning, tiny_bundle, mtl=MtlConfig(weighting="uncertainty")).run_jobs([a])
    assert not _same(first.state, plain.state)
    assert learner.train_flops(8) > _learner(tiny_learning, tiny_bundle).train_flops(8)  # one backward per task
