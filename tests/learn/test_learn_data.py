import os
import subprocess
import sys
import time

import numpy as np

from vfedsim.learn import data as D
from vfedsim.learn.data import TASK_CLASSES, TASKS, Dataset, cache_dir, data_key, load_data, shard_indices
from vfedsim.rng import stream
from vfedsim.scenario import DataConfig, LabelSkew, SceneGroup

SPLITS = ("pool", "test", "source")


def test_sizes_shapes_and_dtypes(tiny_learning, tiny_bundle):
    cfg = tiny_learning.data
    px = cfg.image_size_px
    sizes = {"pool": cfg.samples_per_group * len(cfg.groups), "test": cfg.test_samples,
             "source": cfg.pretrain_samples}
    for split in SPLITS:
        ds: Dataset = getattr(tiny_bundle, split)
        n = sizes[split]
        assert len(ds) == n
        assert ds.kinematics.shape == (n, D.NEIGHBOURS + 1, len(D.KINEMATIC_FEATURES))
        assert ds.kinematics.dtype == np.float32
        assert ds.occupancy.shape == (n, 3, D.GRID_CELLS, D.GRID_CELLS) and ds.occupancy.dtype == np.float32
        assert ds.camera.shape == (n, 1, px, px) and ds.camera.dtype == np.uint8
        assert ds.lidar.shape == (n, 2, D.LIDAR_BEAMS) and ds.lidar.dtype == np.float32
        assert list(ds.labels) == list(TASKS)
        for task, y in ds.labels.items():
            if TASKS[task].kind == "classification":
                assert y.shape == (n,) and y.dtype == np.int64
                assert y.min() >= 0 and y.max() < len(TASK_CLASSES[task])
            else:
                assert y.shape == (n, *TASKS[task].shape) and y.dtype == np.float32 and np.isfinite(y).all()
        assert ds.group.shape == (n,)
        assert np.isfinite(ds.kinematics).all() and np.isfinite(ds.occupancy).all()
        assert np.abs(ds.kinematics).max() <= 1.0 and np.abs(ds.occupancy).max() <= 1.0
        assert np.abs(ds.lidar).max() <= 1.0 and ds.lidar[:, 0].min() >= 0.0
    assert np.bincount(tiny_bundle.pool.group).tolist() == [cfg.samples_per_group] * len(cfg.groups)
    assert set(np.unique(tiny_bundle.test.group)) == set(range(len(cfg.groups)))
    assert set(np.unique(tiny_bundle.source.group)) == set(range(len(cfg.source_groups)))


def test_features_describe_the_observer(tiny_bundle):
    kin = tiny_bundle.pool.kinematics
    assert (kin[:, 0, 0] == 1).all() and (kin[:, 0, 1] == 0).all()   # the observer is row 0
    assert (kin[:, 1, 0] == 1).mean() > 0.9                            # almost always a neighbour
    occ = tiny_bundle.pool.occupancy
    c = D.GRID_CELLS // 2
    assert (occ[:, 0, c, c] == 1).all()                                # the observer fills the centre cell
    assert occ[:, 0].sum(axis=(1, 2)).mean() > 1.5                     # and others are on the grid


def test_camera_images_are_not_blank(tiny_bundle):
    cam = tiny_bundle.pool.camera.astype(np.float64)
    per_image_std = cam.reshape(len(cam), -1).std(axis=1)
    assert (per_image_std > 5).all()                # road markings, vehicles: never a flat image
    assert cam.mean() > 20                           # not black (the "dummy" SDL driver renders black)
    assert len({img.tobytes() for img in tiny_bundle.pool.camera}) > 0.9 * len(cam)   # images differ


def test_every_task_has_several_classes(tiny_bundle):
    for split in SPLITS:
        for task, y in getattr(tiny_bundle, split).labels.items():
            assert len(np.unique(y)) > 1, (split, task)
    for task in ("maneuver", "longitudinal", "leader"):
        y = tiny_bundle.pool.labels[task]
        assert len(np.unique(y)) == len(TASK_CLASSES[task]), task   # every class occurs in the pool


def test_cache_hit_returns_identical_arrays(tiny_learning, tiny_bundle):
    path = cache_dir(tiny_learning.data) / f"data-{data_key(tiny_learning.data)}.npz"
    assert path.is_file()
    started = time.perf_counter()
    again = load_data(tiny_learning.data)
    assert time.perf_counter() - started < 1.0
    for split in SPLITS:
        a, b = getattr(tiny_bundle, split), getattr(again, split)
        for name in ("kinematics", "occupancy", "camera", "lidar", "group"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
        for task in TASKS:
            assert np.array_equal(a.labels[task], b.labels[task])


def test_cache_key_follows_the_data_settings(tmp_path):
    base = DataConfig()
    key = data_key(base)
    changed = [
        base.model_copy(update={"samples_per_group": 601}),
        base.model_copy(update={"seed": 1}),
        base.model_copy(update={"image_size_px": 24}),
        base.model_copy(update={"groups": (SceneGroup(scene="roundabout"),)}),
        base.model_copy(update={"source_groups": (SceneGroup(scene="highway", density=1.1),)}),
        base.model_copy(update={"test_samples": 10}),
    ]
    keys = {data_key(c) for c in changed}
    assert key not in keys and len(keys) == len(changed)
    # settings that only shape the shards, and where the cache lives, do not change the samples
    for same in (base.model_copy(update={"cache_dir": str(tmp_path)}),
                 base.model_copy(update={"home_fraction": 0.3}),
                 base.model_copy(update={"samples_per_vehicle": 5}),
                 base.model_copy(update={"label_skew": LabelSkew(alpha=0.1)})):
        assert data_key(same) == key


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("VFEDSIM_CACHE", str(tmp_path / "env"))
    assert cache_dir(DataConfig()) == tmp_path / "env"
    assert cache_dir(DataConfig(cache_dir=str(tmp_path / "cfg"))) == tmp_path / "cfg"
    monkeypatch.delenv("VFEDSIM_CACHE")
    assert cache_dir(DataConfig()).name == "vfedsim"


def test_generation_is_deterministic_and_independent_of_workers(monkeypatch):
    groups = (SceneGroup(scene="merge", density=1.5, vehicles=10),)
    runs = []
    for workers in ("1", "2"):
        monkeypatch.setenv("VFEDSIM_DATA_WORKERS", workers)
        runs.append(D.generate_splits([("a", groups, [40]), ("b", groups, [30])], seed=3, image_px=16))
    for x, y in zip(*runs):
        assert np.array_equal(x.kinematics, y.kinematics) and np.array_equal(x.camera, y.camera)
        assert np.array_equal(x.lidar, y.lidar)
        assert all(np.array_equal(x.labels[t], y.labels[t]) for t in TASKS)
    assert not np.array_equal(runs[0][0].kinematics[:30], runs[0][1].kinematics)  # splits: other episodes


def test_roundabout_scene():
    ds = D.generate_split([SceneGroup(scene="roundabout", density=1.0, vehicles=10)], [60], seed=0,
                          split="x", image_px=16)
    assert len(ds) == 60 and ds.camera.std() > 5
    assert len(np.unique(ds.labels["longitudinal"])) > 1


def test_shards_are_non_iid(tiny_bundle):
    pool = tiny_bundle.pool
    for home in (0, 1):
        idx = shard_indices(pool, home_group=home, n_samples=40, home_fraction=0.8, rng=stream(0, "shard", home))
        assert idx.dtype == np.int64 and len(idx) == 40
        assert np.all(np.diff(idx) > 0)                      # sorted, no repeats
        assert (pool.group[idx] == home).sum() == 32
    iid = shard_indices(pool, home_group=0, n_samples=40, home_fraction=0.5, rng=stream(0, "shard", 9))
    assert (pool.group[iid] == 0).sum() == 20
    again = shard_indices(pool, home_group=1, n_samples=40, home_fraction=0.8, rng=stream(0, "shard", 1))
    assert np.array_equal(again, shard_indices(pool, home_group=1, n_samples=40, home_fraction=0.8,
                                               rng=stream(0, "shard", 1)))


def test_data_module_does_not_import_torch():
    code = "import sys, vfedsim.learn.data, vfedsim.learn.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_corrupt_cache_is_regenerated(tmp_path):
    cfg = DataConfig(groups=(SceneGroup(scene="highway", vehicles=8),), source_groups=(SceneGroup(vehicles=8),),
                     samples_per_group=8, pretrain_samples=8, test_samples=8, image_size_px=16,
                     cache_dir=str(tmp_path))
    first = load_data(cfg)
    path = tmp_path / f"data-{data_key(cfg)}.npz"
    path.write_bytes(b"not a zip file")
    again = load_data(cfg)
    assert np.array_equal(first.pool.camera, again.pool.camera)
    assert np.load(path)["pool.camera"].shape == (8, 1, 16, 16)
    assert not list(tmp_path.glob("*.tmp"))


def test_images_render_under_the_dummy_video_driver():
    code = ("from vfedsim.scenario import SceneGroup; from vfedsim.learn import data as D; "
            "ds = D.generate_split([SceneGroup(vehicles=6)], [4], seed=0, split='x', image_px=16); "
            "assert ds.camera.std() > 5, ds.camera.std()")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "SDL_VIDEODRIVER": "dummy"})


def test_label_skew_follows_a_dirichlet_draw_per_vehicle(tiny_bundle):
    pool = tiny_bundle.pool
    skew = LabelSkew(task="longitudinal", alpha=0.1)
    mixes = []
    for v in range(8):
        idx = shard_indices(pool, home_group=v % 2, n_samples=40, home_fraction=0.8,
                            rng=stream(0, "shard", v), label_skew=skew)
        assert len(idx) == 40 and idx.dtype == np.int64
        assert (pool.group[idx] == v % 2).sum() == 32                # the home fraction still holds
        mixes.append(np.bincount(pool.labels["longitudinal"][idx], minlength=3) / 40)
        again = shard_indices(pool, home_group=v % 2, n_samples=40, home_fraction=0.8,
                              rng=stream(0, "shard", v), label_skew=skew)
        assert np.array_equal(idx, again)
    mixes = np.array(mixes)
    assert mixes.max(axis=1).mean() > 0.8                            # alpha 0.1: mostly one class each
    assert len(set(mixes.argmax(axis=1).tolist())) > 1               # ... not the same one for everybody
    flat = [np.bincount(pool.labels["longitudinal"][shard_indices(
        pool, home_group=0, n_samples=40, home_fraction=0.8, rng=stream(0, "shard", v),
        label_skew=LabelSkew(task="longitudinal", alpha=1e4))], minlength=3) / 40 for v in range(8)]
    prior = np.bincount(pool.labels["longitudinal"], minlength=3) / len(pool)
    assert np.abs(np.mean(flat, axis=0) - prior).max() < 0.1         # large alpha: the pool's own mix
