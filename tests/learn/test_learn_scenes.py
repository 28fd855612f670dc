"""highway-env scenes: the task/modality contract, the lidar against highway-env's LidarObservation, every
scene kind (intersection included), and the trajectory bookkeeping."""
from __future__ import annotations

import numpy as np
import pytest

from vfedsim.learn import data as D
from vfedsim.learn import scenes as S
from vfedsim.rng import stream
from vfedsim.scenario import SceneGroup


def test_task_and_modality_contract():
    assert S.MODALITIES == ("kinematics", "occupancy", "camera", "lidar")
    assert list(S.TASKS)[:5] == ["maneuver", "longitudinal", "leader", "ttc", "trajectory"]
    assert S.TASKS["ttc"] == S.TaskSpec("regression", shape=(), unit="s", description=S.TASKS["ttc"].description)
    assert S.TASKS["trajectory"].shape == (S.TRAJ_STEPS, 2) == (3, 2) and S.TASKS["trajectory"].unit == "m"
    assert S.TASK_CLASSES == {t: s.classes for t, s in S.TASKS.items() if s.kind == "classification"}
    assert S.TASK_CLASSES["maneuver"] == ("keep", "left", "right")
    assert all(s.kind in ("classification", "regression") for s in S.TASKS.values())
    assert S.LIDAR_BEAMS == 32 and S.TTC_MAX_S == 10.0
    with pytest.raises(Exception):
        S.TASKS["ttc"].unit = "m"   # frozen


@pytest.mark.parametrize("scene", ["highway", "roundabout"])
def test_lidar_matches_highway_envs_lidar_observation(scene):
    from highway_env.envs.common.observation import LidarObservation

    env, _ = S.make_env(SceneGroup(scene=scene, density=2.0, vehicles=12), 16)
    env.reset(seed=3)
    for _ in range(10):   # let the roundabout's vehicles spread over the ring (headings of all directions)
        env.road.act()
        env.road.step(0.2)
    vehicles = env.road.vehicles
    pos = np.array([v.position for v in vehicles])
    heading = np.array([v.heading for v in vehicles])
    vel = np.array([v.velocity for v in vehicles])
    length = np.array([v.LENGTH for v in vehicles])
    width = np.array([v.WIDTH for v in vehicles])
    compared = 0
    for obs in range(len(vehicles)):
        lidar = LidarObservation(env, cells=S.LIDAR_BEAMS, maximum_range=S.LIDAR_RANGE_M, normalize=False)
        lidar.observer_vehicle = vehicles[obs]
        theirs = lidar.trace(pos[obs], vel[obs])                    # (beams, 2) world-aligned, beam j at +j*da
        # they skip vehicles whose centre is beyond the range (even if their outline is within): so do we here
        others = (np.arange(len(vehicles)) != obs) & (np.hypot(*(pos - pos[obs]).T) <= S.LIDAR_RANGE_M)
        # heading 0: our beam k points at -k*da in the world frame, i.e. their beam -k
        ours = S.lidar_scan(pos[obs], 0.0, vel[obs], pos[others], heading[others], vel[others], length[others],
                            width[others])
        theirs = theirs[(-np.arange(S.LIDAR_BEAMS)) % S.LIDAR_BEAMS]
        ours_m = ours[0] * S.LIDAR_RANGE_M
        # their centre-beam shortcut (centre distance - width / 2) can only shorten a beam
        assert np.all(theirs[:, 0] <= ours_m + 1e-4)
        same = np.isclose(theirs[:, 0], ours_m, atol=1e-4)
        assert same.mean() > 0.8
        hit = same & (ours_m < S.LIDAR_RANGE_M)
        # their speed channel is the separation speed; ours is the closing speed / 10 m/s
        assert np.allclose(ours[1, hit], np.clip(-theirs[hit, 1] / 10, -1, 1), atol=1e-5)
        compared += hit.sum()
    assert compared > 10


def test_lidar_geometry_and_turning_with_the_observer():
    # one 4 m x 2 m box 10 m ahead of an observer heading along +y (highway-env world, y to the right)
    box = dict(pos=np.array([[0.0, 10.0]]), headings=np.array([np.pi / 2]), vel=np.array([[0.0, 3.0]]),
               length=np.array([4.0]), width=np.array([2.0]))
    scan = S.lidar_scan(np.zeros(2), np.pi / 2, np.array([0.0, 8.0]), **box)
    assert np.isclose(scan[0, 0] * S.LIDAR_RANGE_M, 8.0)           # beam 0: the box's rear, 10 - 2 m
    assert np.isclose(scan[1, 0], 0.5)                             # closing at 8 - 3 = 5 m/s
    assert np.all(scan[0, 4:29] == 1.0) and np.all(scan[1, 4:29] == 0.0)   # nothing to the sides or behind
    inside = S.lidar_scan(np.array([0.0, 10.5]), 0.0, np.zeros(2), **box)
    assert np.all(inside[0] == 0.0)                                # an observer inside a box sees it at 0
    # counter-clockwise seen from above: beam 8 (of 32) to the observer's left, i.e. world -y for heading 0
    left = S.lidar_scan(np.zeros(2), 0.0, np.zeros(2), np.array([[0.0, -10.0]]), np.zeros(1), np.zeros((1, 2)),
                        np.array([4.0]), np.array([2.0]))
    assert left[0, 8] < 1.0 and left[0, 24] == 1.0


@pytest.fixture(scope="module")
def per_scene(monkeypatch_module):
    monkeypatch_module.setenv("VFEDSIM_DATA_WORKERS", "1")
    out = {}
    for scene in ("highway", "merge", "roundabout", "intersection"):
        out[scene] = D.generate_split([SceneGroup(scene=scene, density=1.5, vehicles=12)], [40], seed=1,
                                      split="t", image_px=16)
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.parametrize("scene", ["highway", "merge", "roundabout", "intersection"])
def test_every_scene_yields_all_modalities_and_labels(per_scene, scene):
    ds = per_scene[scene]
    n = len(ds)
    assert n == 40
    assert ds.lidar.shape == (n, 2, S.LIDAR_BEAMS) and (ds.lidar[:, 0] < 1).any()
    assert ds.camera.std() > 5 and (ds.kinematics[:, 1, 0] == 1).mean() > 0.5
    assert list(ds.labels) == list(S.TASKS)
    for task in ("longitudinal", "neighbours"):
        assert len(np.unique(ds.labels[task])) > 1, task
    ttc = ds.labels["ttc"]
    assert ttc.dtype == np.float32 and ttc.min() >= 0 and ttc.max() <= S.TTC_MAX_S
    traj = ds.labels["trajectory"]
    assert traj.shape == (n, 3, 2) and np.isfinite(traj).all()
    step = np.linalg.norm(np.diff(np.concatenate([np.zeros((n, 1, 2)), traj], axis=1), axis=1), axis=2)
    assert np.all(step < 45.0)                                    # no jumps (highway wrap-around undone)
    assert np.mean(traj[:, 0, 0] > 0) > 0.9                       # vehicles move forward in their own frame


def test_trajectory_starts_along_the_observed_speed(per_scene):
    ds = per_scene["highway"]
    speed_mps = ds.kinematics[:, 0, 3] * 10 + 20                  # row 0: (v_long - 20) / 10
    ok = np.abs(ds.kinematics[:, 0, 3]) < 1                       # not clipped
    # +1 s displacement forward ~ speed x 1 s (IDM accelerations change it by a few metres at most)
    assert np.median(np.abs(ds.labels["trajectory"][ok, 0, 0] - speed_mps[ok])) < 1.5


def test_intersection_turns_are_manoeuvres_and_its_idm_settings_do_not_leak():
    from highway_env.vehicle.behavior import IDMVehicle

    before = (IDMVehicle.DISTANCE_WANTED, IDMVehicle.COMFORT_ACC_MAX, IDMVehicle.COMFORT_ACC_MIN)
    group = SceneGroup(scene="intersection", density=2.0, vehicles=15)
    env, viewer = S.make_env(group, 16)
    rows = S.episode(env, viewer, group, 5, stream(0, "t"), 80)
    assert (IDMVehicle.DISTANCE_WANTED, IDMVehicle.COMFORT_ACC_MAX, IDMVehicle.COMFORT_ACC_MIN) == before
    maneuver = np.array([r[4]["maneuver"] for r in rows])
    assert {1, 2} & set(maneuver.tolist())                        # some turn
    traj = np.array([r[4]["trajectory"] for r in rows])
    # a left turn (counter-clockwise seen from above) ends to the observer's left: y < 0
    left = maneuver == 1
    if left.any():
        assert np.mean(traj[left, 2, 1] < 0) > 0.5


def test_scenes_in_one_process_do_not_affect_each_other(monkeypatch):
    # with one worker the highway episodes run after the intersection's in the same process; with two,
    # apart: the intersection's class-level IDM settings must not leak into the highway samples
    groups = (SceneGroup(scene="intersection", vehicles=10), SceneGroup(scene="highway", vehicles=10))
    runs = []
    for workers in ("1", "2"):
        monkeypatch.setenv("VFEDSIM_DATA_WORKERS", workers)
        runs.append(D.generate_split(groups, [12, 12], seed=2, split="iso", image_px=16))
    a, b = runs
    assert np.array_equal(a.kinematics, b.kinematics) and np.array_equal(a.lidar, b.lidar)
    assert all(np.array_equal(a.labels[t], b.labels[t]) for t in S.TASKS)


def test_schema_names_match_the_simulator() -> None:
    """scenario.py cannot import the learning package (it must stay light); these lists mirror it."""
    import typing

    from vfedsim import scenario
    from vfedsim.learn import scenes

    assert scenario.TASK_NAMES == tuple(scenes.TASKS)
    assert scenario.MODALITY_NAMES == scenes.MODALITIES
    assert set(typing.get_args(scenario.TaskName)) == set(scenes.TASKS)
    assert set(typing.get_args(scenario.SensorModality)) == set(scenes.MODALITIES)
    assert set(typing.get_args(scenario.SceneGroup.model_fields["scene"].annotation)) == set(scenario.SCENE_NAMES)
