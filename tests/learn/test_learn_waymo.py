"""The Waymo Open Dataset v2 loader on a tiny fixture written here in the v2 Parquet schema.

Two segments of 10 frames, 1 s apart (real segments are 10 Hz; the loader only needs timestamps), with
synthetic JPEGs and a few boxes whose ground truth is known: segment "straight" accelerates along a road at
30 degrees to the world x axis behind a slower leader; segment "lanechange" drifts to its left.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
Image = pytest.importorskip("PIL.Image")

from vfedsim.errors import ScenarioError  # noqa: E402
from vfedsim.learn import waymo as W  # noqa: E402
from vfedsim.learn.data import TASKS, data_key, load_data  # noqa: E402
from vfedsim.learn.scenes import LIDAR_BEAMS, LIDAR_RANGE_M, TTC_MAX_S  # noqa: E402
from vfedsim.scenario import DataConfig, SceneGroup  # noqa: E402

FRAMES = 10
T0_US = 1_550_000_000_000_000
YAW = np.radians(30.0)
V0_MPS, A_MPS2 = 10.0, 1.0            # "straight": speed and acceleration
LEADER_X_M, LEADER_V_MPS = 20.0, 6.0   # leader box: 20 m ahead (centre), 6 m/s


def _jpeg(level: int) -> bytes:
    ramp = np.linspace(0, 255, 96, dtype=np.float64)[None, :].repeat(64, axis=0)   # 96 x 64, landscape
    rgb = np.clip(np.stack([ramp, ramp * 0 + level, 255 - ramp], axis=-1), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _pose(x: float, y: float, yaw: float) -> list[float]:
    c, s = np.cos(yaw), np.sin(yaw)
    return [c, -s, 0.0, x, s, c, 0.0, y, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def _ego(segment: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """World positions (n, 2) and yaw of the fixture's ego."""
    if segment == "straight":
        along = V0_MPS * t + 0.5 * A_MPS2 * t ** 2
        return np.stack([along * np.cos(YAW), along * np.sin(YAW)], axis=1), along, YAW
    return np.stack([V0_MPS * t, 1.0 * t], axis=1), V0_MPS * t, 0.0    # 1 m/s to the left (world +y)


def write_fixture(root) -> None:
    for component in ("vehicle_pose", "lidar_box", "camera_image", "camera_box"):
        (root / component).mkdir(parents=True, exist_ok=True)
    for segment in ("straight", "lanechange"):
        t = np.arange(FRAMES, dtype=np.float64)
        ts = (T0_US + t * 1e6).astype(np.int64)
        xy, _, yaw = _ego(segment, t)
        pq.write_table(pa.table({
            "key.segment_context_name": [segment] * FRAMES,
            "key.frame_timestamp_micros": ts,
            "[VehiclePoseComponent].world_from_vehicle.transform":
                pa.array([_pose(x, y, yaw) for x, y in xy], type=pa.list_(pa.float64(), 16)),
        }), root / "vehicle_pose" / f"{segment}.parquet")
        # boxes (vehicle frame: x forward, y left): a leader ahead, a car on the left, a pedestrian, a sign
        rows = []
        for k in range(FRAMES):
            for oid, (x, y, length, width, heading, typ, vx) in {
                "leader": (LEADER_X_M, 0.0, 4.0, 2.0, 0.0, 1, LEADER_V_MPS),
                "left": (-3.0, 3.5, 4.5, 2.0, 0.1, 1, 10.0),
                "walker": (12.0, -8.0, 0.8, 0.8, 1.5, 2, 0.0),
                "sign": (2.0, -1.0, 0.5, 0.5, 0.0, 3, 0.0),
            }.items():
                rows.append({"key.segment_context_name": segment, "key.frame_timestamp_micros": int(ts[k]),
                             "key.laser_object_id": oid,
                             "[LiDARBoxComponent].box.center.x": x, "[LiDARBoxComponent].box.center.y": y,
                             "[LiDARBoxComponent].box.center.z": 1.0,
                             "[LiDARBoxComponent].box.size.x": length, "[LiDARBoxComponent].box.size.y": width,
                             "[LiDARBoxComponent].box.size.z": 1.6, "[LiDARBoxComponent].box.heading": heading,
                             "[LiDARBoxComponent].type": typ,
                             "[LiDARBoxComponent].speed.x": vx, "[LiDARBoxComponent].speed.y": 0.0,
                             "[LiDARBoxComponent].speed.z": 0.0})
        pq.write_table(pa.Table.from_pylist(rows), root / "lidar_box" / f"{segment}.parquet")
        cams = [{"key.segment_context_name": segment, "key.frame_timestamp_micros": int(ts[k]),
                 "key.camera_name": cam, "[CameraImageComponent].image": _jpeg(40 * cam + k)}
                for k in range(FRAMES) for cam in (1, 2)]
        pq.write_table(pa.Table.from_pylist(cams), root / "camera_image" / f"{segment}.parquet")
        pq.write_table(pa.table({"key.segment_context_name": [segment], "key.frame_timestamp_micros": [int(ts[0])],
                                 "key.camera_name": [1], "key.camera_object_id": ["x"],
                                 "[CameraBoxComponent].box.center.x": [10.0]}),
                       root / "camera_box" / f"{segment}.parquet")


@pytest.fixture(scope="module")
def waymo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("waymo") / "training"
    write_fixture(root)
    return root


def test_ego_track(waymo_dir):
    track = W.ego_track(waymo_dir, "straight")
    assert list(track.columns)[:4] == ["time_s", "x_m", "y_m", "speed_mps"]
    assert np.allclose(track["time_s"], np.arange(FRAMES))
    xy, _, _ = _ego("straight", np.arange(FRAMES, dtype=float))
    assert np.allclose(track[["x_m", "y_m"]].to_numpy(), xy)
    inner = track["speed_mps"].to_numpy()[1:-1]                 # central differences are exact inside
    assert np.allclose(inner, V0_MPS + A_MPS2 * np.arange(1, FRAMES - 1))
    assert W.segments(waymo_dir) == ["lanechange", "straight"]


def test_samples_map_boxes_poses_and_images(waymo_dir):
    rows = W.segment_samples(waymo_dir, "straight", image_px=16)
    assert len(rows) == FRAMES - 3                               # frames with +3 s of future poses
    for k, (kin, occ, cam, lidar, labels) in enumerate(rows):
        speed = V0_MPS + A_MPS2 * k
        assert kin.shape == (5, 7) and kin.dtype == np.float32
        assert np.isclose(kin[0, 3], np.clip((speed - 20) / 10, -1, 1), atol=0.06)   # ego speed (k=0: edge)
        # nearest road users first: the car on the left (y right = -3.5), then the pedestrian, the leader
        assert np.allclose(kin[1, :3], [1, -3 / 50, -3.5 / 12])
        assert np.allclose(kin[3, :3], [1, LEADER_X_M / 50, 0.0]) and kin[4, 0] == 0  # the sign is ignored
        assert occ.shape == (3, 11, 11) and occ[0, 5, 5] == 1 and occ[0].sum() == 4
        assert cam.shape == (1, 16, 16) and cam.dtype == np.uint8 and cam.std() > 5
        assert lidar.shape == (2, LIDAR_BEAMS)
        assert np.isclose(lidar[0, 0], (LEADER_X_M - 2.0) / LIDAR_RANGE_M, atol=1e-6)   # beam 0: leader's rear
        closing = speed - LEADER_V_MPS
        assert np.isclose(lidar[1, 0], min(closing / 10, 1.0), atol=0.06)
        assert labels["leader"] == 2                             # closing on the leader
        gap = LEADER_X_M - 0.5 * (W.EGO_LENGTH_M + 4.0)
        if 0 < k:                                                # frame 0: one-sided differences
            assert np.isclose(labels["ttc"], min(gap / closing, TTC_MAX_S), rtol=1e-6)
            assert labels["longitudinal"] == 2                   # 1 m/s^2 > 0.3: accelerating
        assert labels["maneuver"] == 0 and labels["neighbours"] == 3
        future = np.arange(1, 4)
        expected_x = (V0_MPS + A_MPS2 * k) * future + 0.5 * A_MPS2 * future ** 2
        assert np.allclose(labels["trajectory"][:, 0], expected_x, atol=0.6)   # linear interpolation
        assert np.allclose(labels["trajectory"][:, 1], 0.0, atol=1e-6)         # in the ego frame, not world


def test_lateral_motion_is_a_left_maneuver(waymo_dir):
    rows = W.segment_samples(waymo_dir, "lanechange", image_px=16)
    labels = [r[4] for r in rows]
    assert all(y["maneuver"] == 1 for y in labels)               # 2 m to the left within 2 s
    assert all(np.allclose(y["trajectory"][:, 1], -np.arange(1, 4)) for y in labels)   # y points right
    assert all(y["longitudinal"] == 1 for y in labels)           # constant speed: cruise


def _cfg(waymo_dir, cache, **kw) -> DataConfig:
    return DataConfig(source="waymo-v2", waymo_dir=str(waymo_dir), cache_dir=str(cache), image_size_px=16,
                      samples_per_group=6, test_samples=6, pretrain_samples=6, **kw)


def test_load_data_reads_the_copy_into_the_usual_bundle(waymo_dir, tmp_path):
    cfg = _cfg(waymo_dir, tmp_path)
    bundle = load_data(cfg)
    split = W.split_segments(W.segments(waymo_dir), cfg)
    assert len(split["pool"]) == 1 and len(split["test"]) == 1 and split["pool"] != split["test"]
    for ds in (bundle.pool, bundle.test, bundle.source):
        assert len(ds) > 0 and ds.camera.shape[1:] == (1, 16, 16) and ds.lidar.shape[1:] == (2, LIDAR_BEAMS)
        assert list(ds.labels) == list(TASKS)
        assert ds.labels["trajectory"].dtype == np.float32 and ds.labels["leader"].dtype == np.int64
    assert sorted(np.unique(bundle.pool.group).tolist()) == [0, 1]   # one segment cut into the 2 groups
    assert len(bundle.pool) == 7 and len(bundle.test) == 6           # test capped at test_samples
    again = load_data(cfg)                                           # from the cache
    assert (tmp_path / f"data-{data_key(cfg)}.npz").is_file()
    assert np.array_equal(again.pool.camera, bundle.pool.camera)
    assert np.array_equal(again.test.labels["trajectory"], bundle.test.labels["trajectory"])
    two = _cfg(waymo_dir, tmp_path, groups=(SceneGroup(),))
    assert data_key(two) != data_key(cfg)


def test_a_missing_waymo_dir_names_the_key(tmp_path):
    with pytest.raises(ScenarioError, match=r"learning\.data\.waymo_dir"):
        load_data(DataConfig(source="waymo-v2", waymo_dir=str(tmp_path / "nowhere"), cache_dir=str(tmp_path)))
    with pytest.raises(ScenarioError, match=r"learning\.data\.waymo_dir"):
        from vfedsim.scenario import _validate  # the schema refuses waymo-v2 without a directory
        from vfedsim.scenario import DataConfig as C
        _validate(C, {"source": "waymo-v2"}, ("learning", "data"))
