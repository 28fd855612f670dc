"""Generic modalities and tasks, per-vehicle sensors and tasks, per-modality adapters, module-aware
aggregation, task onboarding, CAGrad and the fleet's draws: small models, synthetic data, few steps."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vfedsim.errors import ScenarioError
from vfedsim.learn.aggregate import module_aware, weighted_average
from vfedsim.learn.jobs import TrainJob
from vfedsim.learn.metrics import ade, fde, mae
from vfedsim.learn.model import MODALITIES, build_model
from vfedsim.learn.mtl import REGRESSION_SCALE, cagrad, task_loss
from vfedsim.policies import make_aggregator
from vfedsim.scenario import parse_scenario

ALL_TASKS = ("maneuver", "longitudinal", "leader", "ttc", "trajectory")


def _inputs(b: int = 4, px: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 5, 7, generator=g), torch.randn(b, 3, 11, 11, generator=g),
            torch.randint(0, 255, (b, 1, px, px), generator=g, dtype=torch.uint8), torch.rand(b, 2, 32, generator=g))


def _learning(**changes):
    raw = {"tasks": list(ALL_TASKS), "model": {"d_model": 16, "layers": 1, "heads": 2},
           "peft": {"rank": 2, "alpha": 4}}
    raw.update(changes)
    return parse_scenario({"learning": raw}).learning


# ------------------------------------------------------------------------------ model, losses, metrics
def test_heads_follow_the_task_specs_and_missing_modalities_are_left_out():
    model = build_model(_learning())
    out = model(*_inputs())
    assert out["maneuver"].shape == (4, 3) and out["ttc"].shape == (4,) and out["trajectory"].shape == (4, 3, 2)
    camera_only = model(*_inputs(), modalities=("camera",), tasks=("leader", "ttc"))
    assert set(camera_only) == {"leader", "ttc"}
    assert not torch.allclose(camera_only["leader"], out["leader"])  # other modalities' tokens were dropped
    lidar_only = model(*_inputs(), modalities=("lidar",))
    assert torch.isfinite(lidar_only["trajectory"]).all()
    # a camera-only output does not depend on the other inputs
    x = list(_inputs())
    y = list(_inputs(seed=1))
    y[2] = x[2]
    assert torch.equal(model(*x, modalities=("camera",))["leader"], model(*y, modalities=("camera",))["leader"])


def test_regression_loss_is_smooth_l1_on_scaled_targets():
    pred = torch.tensor([0.5, 0.0])
    target = torch.tensor([5.0, 10.0])  # [s]; / 10 s -> 0.5, 1.0
    # |0| -> 0; |1.0| -> 1.0 - 0.5 = 0.5 (beta 1); mean 0.25
    assert REGRESSION_SCALE["ttc"] == 10.0
    assert task_loss("ttc", pred, target).item() == pytest.approx(0.25)
    assert task_loss("leader", torch.zeros(1, 3), torch.tensor([1])).item() == pytest.approx(math.log(3))


def test_regression_metrics_by_hand():
    assert mae(np.array([1.0, 3.0]), np.array([2.0, 1.0])) == pytest.approx(1.5)
    truth = np.zeros((1, 3, 2))
    pred = np.array([[[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]]])  # distances 5, 0, 10
    assert ade(truth, pred) == pytest.approx(5.0)
    assert fde(truth, pred) == pytest.approx(10.0)


# ------------------------------------------------------------------------------------------ adapters
def test_per_modality_adapters_start_as_identity_and_have_their_own_groups():
    from vfedsim.learn.adapters import module_group, wrap_peft

    cfg = _learning(peft={"rank": 2, "alpha": 4, "adapters": "per-modality+shared"})
    model = build_model(cfg)
    before = {t: z.detach() for t, z in model(*_inputs()).items()}
    wrap_peft(model, cfg.peft, seed=0)
    after = model(*_inputs())
    for t in before:
        assert torch.allclose(before[t], after[t], atol=1e-6)
    groups = {module_group(n) for n, p in model.named_parameters() if p.requires_grad}
    assert {f"encoder.{m}" for m in MODALITIES} | {"trunk.lora"} <= groups
    assert not any(p.requires_grad for n, p in model.named_parameters()
                   if n.startswith("encoders.") and "lora_" not in n)  # the encoders stay frozen
    only = build_model(cfg.model_copy(update={"peft": cfg.peft.model_copy(update={"adapters": "per-modality"})}))
    wrap_peft(only, cfg.peft.model_copy(update={"adapters": "per-modality"}), seed=0)
    assert not any("trunk." in n for n, p in only.named_parameters() if p.requires_grad)


# ------------------------------------------------------------------------------- module-aware averages
def _update(state, n):
    from types import SimpleNamespace

    return SimpleNamespace(state=state, num_samples=n, vehicle=0, train_loss=0.0, base_version=0)


def test_fedavg_averages_each_module_over_its_senders_only():
    glob = {"a": torch.tensor([0.0]), "b": torch.tensor([10.0]), "c": torch.tensor([-1.0])}
    ups = [_update({"a": torch.tensor([1.0]), "b": torch.tensor([2.0])}, 1),
           _update({"a": torch.tensor([4.0])}, 2)]
    out = make_aggregator("fedavg", {}).aggregate(glob, ups)
    assert list(out) == ["a", "b", "c"]
    assert out["a"].item() == pytest.approx(3.0)  # (1 x 1 + 2 x 4) / 3
    assert out["b"].item() == 2.0                 # only the first vehicle sent b
    assert out["c"].item() == -1.0                # nobody sent c: the global value
    full = [_update({k: v + i for k, v in glob.items()}, i + 1) for i in range(2)]
    assert all(torch.equal(module_aware(glob, [u.state for u in full], [1, 2], weighted_average)[k],
                           weighted_average([u.state for u in full], [1, 2])[k]) for k in glob)


def test_fedadam_leaves_modules_nobody_sent_and_their_moments_alone():
    glob = {"a": torch.tensor([0.0]), "b": torch.tensor([5.0])}
    agg = make_aggregator("fedadam", {"eta": 0.1})
    out = agg.aggregate(glob, [_update({"a": torch.tensor([1.0])}, 1)])
    assert out["b"].item() == 5.0 and out["a"].item() > 0
    assert agg.m["b"].item() == 0.0
    again = agg.aggregate(out, [_update({"a": torch.tensor([1.0])}, 1)])
    assert again["b"].item() == 5.0


@pytest.mark.parametrize("name", ["median", "trimmed_mean", "krum", "multi_krum", "lora_product"])
def test_robust_and_lora_aggregators_are_module_aware(name):
    glob = {"x": torch.zeros(2), "y": torch.ones(2)}
    ups = [_update({"x": torch.full((2,), float(i))}, 1) for i in range(3)]
    out = make_aggregator(name, {}).aggregate(glob, ups)
    assert torch.equal(out["y"], glob["y"]) and out["x"].shape == (2,)


# ------------------------------------------------------------------------------------------ CAGrad
def test_cagrad_orthogonal_equal_gradients_by_hand():
    # g1 = (1, 0), g2 = (0, 1): by symmetry w = (1/2, 1/2), g_w = g0 = (1/2, 1/2), so
    # d = g0 + c |g0| g_w / |g_w| = (1 + c) g0 = (0.75, 0.75) for c = 0.5; K d / (1 + c^2) = 2 x 0.75 / 1.25
    out = cagrad(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 0.5)
    assert torch.allclose(out, torch.tensor([1.2, 1.2]), atol=1e-4)
    g = torch.tensor([[1.0, 0.0], [-0.5, 1.0]])
    assert torch.equal(cagrad(g, 0.0), g.sum(0))  # c = 0: the plain sum


def test_cagrad_conflicting_pair_matches_a_brute_force_search():
    g = torch.tensor([[1.0, 0.0], [-0.8, 0.6]], dtype=torch.float64)
    c = 0.5
    g0 = g.mean(0)
    radius = c * g0.norm()
    ts = torch.linspace(0, 1, 100001, dtype=torch.float64)
    gw = ts[:, None] * g[0] + (1 - ts[:, None]) * g[1]
    t = ts[torch.argmin(gw @ g0 + radius * gw.norm(dim=1))]
    best = t * g[0] + (1 - t) * g[1]
    expected = 2 * (g0 + radius / best.norm() * best) / (1 + c * c)
    out = cagrad(g, c)
    assert torch.allclose(out, expected, atol=1e-4)
    # the worst task improves at least as much as with the plain average
    assert min(float(out @ g[0]), float(out @ g[1])) > min(float(g0 @ g[0]), float(g0 @ g[1]))


def test_cagrad_objective_trains(tiny_learning):
    from vfedsim.learn.mtl import MultiTaskObjective
    from vfedsim.scenario import MtlConfig

    w = torch.zeros(3, requires_grad=True)
    logits = {"maneuver": w[None, :].expand(2, 3), "leader": -w[None, :].expand(2, 3)}
    labels = {"maneuver": torch.tensor([0, 1]), "leader": torch.tensor([2, 2])}
    MultiTaskObjective(MtlConfig(gradient="cagrad", cagrad_c=0.4), ("maneuver", "leader")).backward(
        logits, labels, [w])
    assert w.grad is not None and torch.isfinite(w.grad).all()


# --------------------------------------------------------------------------- learner: jobs and bytes
@pytest.fixture
def hetero_learner(tiny_learning, tiny_bundle, tiny_pretrained):
    from vfedsim.learn.train import Learner

    cfg = tiny_learning.model_copy(update={"peft": tiny_learning.peft.model_copy(
        update={"adapters": "per-modality+shared"})})
    return Learner(cfg, bundle=tiny_bundle, seed=0)


def test_a_vehicle_uploads_only_its_modules(hetero_learner):
    learner = hetero_learner
    job = TrainJob(vehicle=3, round=1, base_version=0, indices=np.arange(12), seed=7,
                   modalities=("camera",), tasks=("leader",))
    up = learner.run_jobs([job])[0]
    groups = {learner._group[n] for n in up.state}
    assert groups == {"trunk.lora", "encoder.camera", "heads.leader"}
    again = learner.run_jobs([job])[0]
    assert all(torch.equal(up.state[k], again.state[k]) for k in up.state)
    small = learner.upload_bytes(("camera",), ("leader",), 1)
    assert 0 < small < learner.upload_bytes() == learner.payload_bytes()
    parts = learner.upload_breakdown(("camera",), ("leader",), 1)
    assert sum(parts.values()) == small and "encoder.camera" in parts and "encoder.lidar" not in parts
    # module-aware FedAvg keeps what nobody sent
    agg = make_aggregator("fedavg", {}).aggregate(learner.global_state(), [up])
    g0 = learner.global_state()
    assert torch.equal(agg[next(n for n in g0 if learner._group[n] == "encoder.lidar")],
                       g0[next(n for n in g0 if learner._group[n] == "encoder.lidar")])
    learner.commit(agg)


def test_evaluation_as_a_sensor_suite_sees_only_its_modalities(hetero_learner):
    learner = hetero_learner
    full = learner.evaluate()
    assert learner.evaluate(modalities=tuple(MODALITIES)) == full
    camera = learner.evaluate(modalities=("camera",))
    assert camera.keys() == full.keys() and camera != full
    # the same numbers as running the model on the camera tokens alone
    learner._load(learner.global_state())
    with torch.inference_mode():
        logits = learner.model(*learner.test.inputs(torch.arange(len(learner.test))), modalities=("camera",))
    pred = logits["maneuver"].argmax(dim=1).numpy()
    assert camera["maneuver.accuracy"] == pytest.approx(float((pred == learner.test.labels["maneuver"].numpy()).mean()))


def test_onboarding_adds_a_task_and_freezes(tiny_learning, tiny_bundle):
    from vfedsim.learn.train import Learner

    cfg = tiny_learning.model_copy(update={"onboarding": ()})
    cfg = type(cfg).model_validate({**cfg.model_dump(), "onboarding": [
        {"task": "leader", "round": 2, "freeze": ["shared"]}]})
    learner = Learner(cfg, bundle=tiny_bundle, seed=0)
    before = learner.evaluate_at(1)
    assert math.isnan(before["leader.accuracy"]) and not math.isnan(before["maneuver.accuracy"])
    assert learner.job_groups(None, None, 1) == ("trunk.lora", "heads.maneuver", "heads.longitudinal")
    assert learner.job_groups(None, None, 2) == ("heads.maneuver", "heads.longitudinal", "heads.leader")
    assert learner.job_groups(None, ("leader",), 1) == ()   # nothing to train before its task arrives
    job = TrainJob(vehicle=0, round=1, base_version=0, indices=np.arange(8), seed=1, tasks=("leader",))
    assert learner.run_jobs([job])[0].state == {}
    after = learner.evaluate_at(2)
    assert not math.isnan(after["leader.accuracy"])


# -------------------------------------------------------------------------------------- fleet, schema
def test_suites_and_task_sets_are_drawn_without_changing_other_draws():
    from vfedsim.fleet import build_fleet

    base = parse_scenario({})
    hetero = parse_scenario({"fleet": {
        "sensor_suites": [{"name": "camera-only", "modalities": ["camera"], "share": 1},
                          {"name": "full", "modalities": list(MODALITIES), "share": 1}],
        "task_sets": [{"name": "a", "tasks": ["maneuver"]}, {"name": "b", "tasks": ["leader", "maneuver"]}]}})
    f0, f1 = build_fleet(base, 40), build_fleet(hetero, 40)
    assert np.array_equal(f0.home_group, f1.home_group) and np.array_equal(f0.device, f1.device)
    assert f0.modalities(5) == tuple(MODALITIES) and f0.tasks(5) is None
    assert {f1.modalities(v) for v in range(40)} == {("camera",), tuple(MODALITIES)}
    assert {f1.tasks(v) for v in range(40)} == {("maneuver",), ("leader", "maneuver")}
    assert np.array_equal(build_fleet(hetero, 20).suite, f1.suite[:20])  # per-vehicle streams


def test_schema_errors_name_the_key():
    from vfedsim.engine import check_scenario

    with pytest.raises(ScenarioError, match="fleet.task_sets.0.tasks"):
        check_scenario(parse_scenario({"fleet": {"task_sets": [{"name": "x", "tasks": ["ttc"]}]}}))
    with pytest.raises(ScenarioError, match="learning"):
        parse_scenario({"learning": {"onboarding": [{"task": "ttc", "round": 2}]}})
    with pytest.raises(ScenarioError, match="allowed"):
        parse_scenario({"learning": {"peft": {"adapters": "everywhere"}}})
    with pytest.raises(ScenarioError, match="fleet.sensor_suites"):
        parse_scenario({"fleet": {"sensor_suites": [{"name": "x", "modalities": ["radar"]}]}})
