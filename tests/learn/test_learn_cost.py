"""Per-vehicle costs: FLOPs of the job a vehicle really runs (its modalities, tasks and round) and the size of
the download it really needs (the module groups its job reads); a full vehicle's costs are the full model's."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from vfedsim.learn.jobs import TrainJob
from vfedsim.learn.model import MODALITIES

CAMERA, ONE = ("camera",), ("maneuver",)


@pytest.fixture
def hetero_learner(tiny_learning, tiny_bundle, tiny_pretrained):
    from vfedsim.learn.train import Learner

    cfg = tiny_learning.model_copy(update={"peft": tiny_learning.peft.model_copy(
        update={"adapters": "per-modality+shared"})})
    return Learner(cfg, bundle=tiny_bundle, seed=0)


def _onboarding_learner(tiny_learning, tiny_bundle):
    from vfedsim.learn.train import Learner

    cfg = type(tiny_learning).model_validate({**tiny_learning.model_dump(), "onboarding": [
        {"task": "leader", "round": 2, "freeze": ["shared"]}]})
    return Learner(cfg, bundle=tiny_bundle, seed=0)


# ------------------------------------------------------------------------------------------------ FLOPs
def test_a_camera_only_single_task_vehicle_counts_fewer_flops(hetero_learner):
    learner, n = hetero_learner, 24
    full = learner.train_flops(n)
    assert full == learner.train_flops(n, MODALITIES, learner.cfg.tasks, 3)  # the same job, named in full
    assert learner.train_flops(n, tuple(reversed(MODALITIES)), None, None) == full  # order is no key
    camera = learner.train_flops(n, CAMERA, None, 1)
    one_task = learner.train_flops(n, None, ONE, 1)
    both = learner.train_flops(n, CAMERA, ONE, 1)
    assert 0 < both < camera < full and both < one_task < full
    assert learner.train_flops(2 * learner.cfg.local.batch_size, CAMERA, ONE, 1) == \
        2 * learner.train_flops(learner.cfg.local.batch_size, CAMERA, ONE, 1)


def test_train_flops_are_the_flops_the_job_runs(hetero_learner):
    learner = hetero_learner
    for mods, tasks in ((None, None), (CAMERA, ONE), (("kinematics", "lidar"), ("leader", "longitudinal"))):
        job = TrainJob(vehicle=1, round=1, base_version=0, indices=np.arange(13), seed=3,
                       modalities=mods, tasks=tasks)
        with FlopCounterMode(display=False) as counter:
            learner.run_jobs([job])
        assert learner.train_flops(13, mods, tasks, 1) == counter.get_total_flops(), (mods, tasks)


def test_counting_changes_no_state_and_is_cached(hetero_learner):
    learner = hetero_learner
    before = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
    rng = torch.random.get_rng_state()
    learner.train_flops(20, CAMERA, ONE, 1)
    assert torch.equal(rng, torch.random.get_rng_state())
    assert all(torch.equal(p, before[n]) and p.grad is None for n, p in learner.model.named_parameters())
    assert all(p.requires_grad for p in learner.trainable_parameters())
    cached = len(learner._flops)
    learner.train_flops(20, ("camera",), ["maneuver"], 2)
    assert len(learner._flops) == cached  # same (batch, modalities, tasks, groups): counted once


def test_onboarding_rounds_count_only_existing_tasks(tiny_learning, tiny_bundle, tiny_pretrained):
    learner = _onboarding_learner(tiny_learning, tiny_bundle)
    before, after = learner.train_flops(16, None, None, 1), learner.train_flops(16, None, None, 2)
    assert 0 < before < learner.train_flops(16)
    assert after != learner.train_flops(16)  # the frozen shared adapter gets no gradient at round 2
    assert learner.train_flops(16, None, ("leader",), 1) == 0  # nothing to train before its task arrives
    assert learner.train_flops(16, None, ("leader",), 2) > 0


# ---------------------------------------------------------------------------------------- download size
def test_full_download_is_the_old_payload(hetero_learner, learner):
    from vfedsim.learn.train import serialize_state

    for lrn in (learner, hetero_learner):
        buffer = io.BytesIO()
        torch.save(dict(lrn.global_state(0)), buffer)  # the old download: the whole state's file
        assert lrn.download_bytes() == lrn.payload_bytes() == len(serialize_state(lrn.global_state(0)))
        assert lrn.download_bytes(MODALITIES, lrn.cfg.tasks, 4) == lrn.payload_bytes()
        assert abs(lrn.download_bytes() - len(buffer.getvalue())) < 64


def test_download_bytes_differ_per_suite(hetero_learner):
    learner = hetero_learner
    full = learner.download_bytes()
    camera, camera_one = learner.download_bytes(CAMERA, None, 1), learner.download_bytes(CAMERA, ONE, 1)
    assert 0 < camera_one < camera < full
    assert learner.download_bytes(("lidar",), None, 1) < full
    assert learner.download_bytes(CAMERA, ONE, 1) >= learner.upload_bytes(CAMERA, ONE, 1)
    assert set(learner.read_groups(CAMERA, ONE, 1)) == {"trunk.lora", "encoder.camera", "heads.maneuver"}


def test_download_carries_frozen_groups_the_job_reads(tiny_learning, tiny_bundle, tiny_pretrained):
    learner = _onboarding_learner(tiny_learning, tiny_bundle)
    assert "trunk.lora" in learner.read_groups(None, None, 2)
    assert "trunk.lora" not in learner.job_groups(None, None, 2)  # frozen: read, not trained
    assert learner.download_bytes(None, None, 2) == learner.payload_bytes()
    assert learner.download_bytes(None, None, 1) < learner.payload_bytes()  # no leader head yet
    assert learner.download_bytes(None, ("leader",), 1) == 0


# ------------------------------------------------------------------------------------------------- a run
@pytest.mark.slow
def test_run_charges_each_vehicle_its_own_compute_and_download(tiny_path, tmp_path):
    from vfedsim.engine import load_scenario, run
    from vfedsim.fleet import build_fleet

    raw = yaml.safe_load(tiny_path.read_text())
    raw["fleet"]["sensor_suites"] = [{"name": "camera-only", "modalities": ["camera"], "share": 1},
                                     {"name": "full", "modalities": list(MODALITIES), "share": 1}]
    raw["fleet"]["task_sets"] = [{"name": "one", "tasks": ["maneuver"], "share": 1},
                                 {"name": "all", "tasks": ["maneuver", "longitudinal", "leader"], "share": 1}]
    raw["learning"]["peft"]["adapters"] = "per-modality+shared"
    raw["strategy"].update(rounds=4, clients_per_round=6)
    path = tmp_path / "hetero.yaml"
    path.write_text(yaml.safe_dump(raw))
    scenario = load_scenario(path)
    result = run(scenario, out_dir=tmp_path / "run", progress=False)
    events = pd.read_csv(result.out_dir / "events.csv")
    vehicles = pd.read_csv(result.out_dir / "vehicles.csv").set_index("vehicle")
    fleet = build_fleet(scenario, int(vehicles.index.max()) + 1)
    kind = {v: (fleet.suite_of(v).name, fleet.task_set_name(v)) for v in vehicles.index}

    done = events[(events["kind"] == "compute_end") & events["cause"].isna()]
    seconds = {}
    for v, d in zip(done["vehicle"], done["duration_s"]):
        seconds.setdefault((kind[v], vehicles.loc[v, "device_class"]), set()).add(round(d, 9))
    assert all(len(s) == 1 for s in seconds.values())  # one compute time per (suite, task set, device)
    small, big = (("camera-only", "one"), "embedded"), (("full", "all"), "embedded")
    assert small in seconds and big in seconds
    assert max(seconds[small]) < min(seconds[big])

    downloads = events[events["kind"] == "download_start"]
    size = {}
    for v, b in zip(downloads["vehicle"], downloads["bytes"]):
        size.setdefault(kind[v], set()).add(int(b))
    assert all(len(s) == 1 for s in size.values()) and len(set().union(*size.values())) == len(size)
    from vfedsim.learn.train import Learner

    learner = Learner(scenario.learning, seed=scenario.seed)
    assert size[("full", "all")] == {learner.payload_bytes()}
    assert size[("camera-only", "one")] == {learner.download_bytes(CAMERA, ONE, 1)}
