"""Waymo Open Dataset v2 (perception, Parquet components) mapped onto vfedsim's modalities and tasks.

Layout read (WOD v2.0 / v2.0.1 perception dataset, one split directory such as ``training/``; column names as
defined by ``waymo_open_dataset/v2/perception/{base,box,camera_image,pose}.py`` and ``v2/column_types.py`` of
github.com/waymo-research/waymo-open-dataset, which flatten nested fields as ``[Component].field.sub``)::

    <waymo_dir>/vehicle_pose/<segment>.parquet   key.segment_context_name, key.frame_timestamp_micros,
                                                 [VehiclePoseComponent].world_from_vehicle.transform
                                                 (16 float64, row-major 4x4, vehicle -> world)
    <waymo_dir>/lidar_box/<segment>.parquet      + key.laser_object_id, [LiDARBoxComponent].box.center.{x,y,z},
                                                 .box.size.{x,y,z} (length, width, height [m]), .box.heading
                                                 [rad], .type (1 vehicle, 2 pedestrian, 3 sign, 4 cyclist),
                                                 .speed.{x,y,z} [m/s]: all in the frame's vehicle frame
    <waymo_dir>/camera_image/<segment>.parquet   + key.camera_name (1 = FRONT), [CameraImageComponent].image (JPEG)

(``camera_box/`` and ``lidar/``, the range images, may be there; they are not read: the lidar modality is
computed from the 3D boxes.) The vehicle frame is x forward, y left, z up; the world frame is a fixed
east-north-up frame of the segment.

One sample per frame of the data-collecting vehicle (the *ego*) that has ``TRAJ_STEPS`` seconds of future
poses, seen from the ego exactly as a highway-env observer (`vfedsim.learn.scenes`), y turned to point right:

``kinematics``  row 0: ego speed along / across its heading (finite differences of the pose track); no lane
                geometry, so lane offset 0 and heading 1, 0. Rows 1..4: the 4 nearest boxes of road users
                (vehicle, pedestrian, cyclist) within 50 m: position, velocity relative to the ego, heading.
``occupancy``   the same boxes on the 11 x 11, 5 m grid.
``camera``      the FRONT camera JPEG decoded with Pillow, converted to luma (ITU-R 601-2, Pillow's "L"),
                centre-cropped to a square and resized to ``image_size_px``.
``lidar``       `vfedsim.learn.scenes.lidar_scan` against the boxes' footprints (LIDAR_BEAMS beams, 60 m).
Labels:
``maneuver``    left | right when the ego's lateral displacement over the next ``MANEUVER_HORIZON_S`` in its
                current frame exceeds ``MANEUVER_LATERAL_M`` (a lane change or turn), else keep.
``longitudinal`` the ego's acceleration along its heading (central differences of speed) against the same
                thresholds as highway-env's IDM commands.
``leader``, ``ttc``  the nearest box ahead whose centre lies within ``LANE_HALF_WIDTH_M`` of the ego's axis;
                gap = its x - (ego length + its length) / 2, closing speed = ego speed - its speed along x.
``trajectory``  the ego's displacement at +1, +2, +3 s (pose track linearly interpolated), in its frame.
``neighbours``  road-user boxes within 30 m.

Segments are dealt deterministically (sha256 of the seed and the segment name) into test, source and pool
segments in proportion to ``test_samples``, ``pretrain_samples`` and ``samples_per_group`` x groups (each
split gets at least one segment while there are three or more; with fewer, ``source`` reuses the pool's
segments); pool segments are dealt round-robin to ``groups`` (test likewise), source segments to
``source_groups`` (with fewer segments than groups, contiguous stretches of their frames instead). Each
group keeps at most ``samples_per_group`` frames (test at most ``test_samples``, source at most
``pretrain_samples`` in all), evenly spaced in time. Needs pyarrow (``pip install vfedsim[parquet]``) and
Pillow (a matplotlib dependency, so already installed).
"""
from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ScenarioError, VfedsimError
from ..scenario import DataConfig
from .scenes import (LIDAR_BEAMS, NEIGHBOUR_RADIUS_M, TASKS, TRAJ_DT_S, TRAJ_STEPS, ego_row, leader_class,
                     lidar_scan, longitudinal_class, relative_features)

__all__ = ["segments", "ego_track", "segment_samples", "load_waymo", "split_segments", "fingerprint",
           "COMPONENTS"]

COMPONENTS = ("vehicle_pose", "lidar_box", "camera_image")
FRONT_CAMERA = 1                 # CameraName.FRONT (camera_image.py)
ROAD_USER_TYPES = (1, 2, 4)      # BoxType: vehicle, pedestrian, cyclist (box.py)
EGO_LENGTH_M = 4.7               # [m] the WOD vehicle (Jaguar I-PACE: 4.68 m)
EGO_WIDTH_M = 1.9                # [m]
LANE_HALF_WIDTH_M = 1.8          # [m] half of a 3.6 m lane: boxes within it are in the ego's lane
MANEUVER_HORIZON_S = 2.0         # [s]
MANEUVER_LATERAL_M = 1.0         # [m]

_KEY_SEGMENT = "key.segment_context_name"
_KEY_TIME = "key.frame_timestamp_micros"
_POSE = "[VehiclePoseComponent].world_from_vehicle.transform"
_BOX = "[LiDARBoxComponent]."
_IMAGE = "[CameraImageComponent].image"
_CAMERA = "key.camera_name"


def _parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:   # pragma: no cover - depends on the environment
        raise VfedsimError("the waymo-v2 data source needs pyarrow: pip install vfedsim[parquet]") from None
    return pq


def _root(waymo_dir: str | Path | None) -> Path:
    if not waymo_dir:
        raise ScenarioError("learning.data.waymo_dir", "required when source is 'waymo-v2'")
    root = Path(waymo_dir).expanduser()
    if not (root / "vehicle_pose").is_dir():
        raise ScenarioError("learning.data.waymo_dir",
                            f"{str(root)!r} holds no vehicle_pose/ folder of WOD v2 Parquet files; it needs "
                            + ", ".join(f"{c}/" for c in COMPONENTS))
    for component in COMPONENTS[1:]:
        if not (root / component).is_dir():
            raise ScenarioError("learning.data.waymo_dir", f"{str(root)!r} has no {component}/ folder")
    return root


def segments(waymo_dir: str | Path) -> list[str]:
    """The segment (context) names under ``waymo_dir``: stems of ``vehicle_pose/*.parquet``, sorted."""
    return sorted(p.stem for p in _root(waymo_dir).joinpath("vehicle_pose").glob("*.parquet"))


def _read(root: Path, component: str, segment: str, columns: Sequence[str]):
    path = root / component / f"{segment}.parquet"
    if not path.is_file():
        raise ScenarioError("learning.data.waymo_dir", f"missing {component}/{segment}.parquet")
    return _parquet().read_table(path, columns=list(columns))


def _poses(root: Path, segment: str) -> tuple[np.ndarray, np.ndarray]:
    """Frame times [us] (sorted) and world_from_vehicle transforms (n, 4, 4)."""
    table = _read(root, "vehicle_pose", segment, [_KEY_TIME, _POSE])
    times = table.column(_KEY_TIME).to_numpy()
    poses = np.array(table.column(_POSE).to_pylist(), dtype=np.float64).reshape(-1, 4, 4)
    order = np.argsort(times, kind="stable")
    return times[order].astype(np.int64), poses[order]


def _track(times_us: np.ndarray, poses: np.ndarray) -> dict[str, np.ndarray]:
    t = (times_us - times_us[0]) / 1e6
    xy = poses[:, :2, 3]
    yaw = np.unwrap(np.arctan2(poses[:, 1, 0], poses[:, 0, 0]))
    if len(t) > 1:
        vel = np.stack([np.gradient(xy[:, 0], t), np.gradient(xy[:, 1], t)], axis=1)
    else:
        vel = np.zeros_like(xy)
    v_long = vel[:, 0] * np.cos(yaw) + vel[:, 1] * np.sin(yaw)      # [m/s] along the heading
    v_left = -vel[:, 0] * np.sin(yaw) + vel[:, 1] * np.cos(yaw)      # [m/s] towards the left
    accel = np.gradient(v_long, t) if len(t) > 1 else np.zeros_like(t)
    return {"time_s": t, "xy": xy, "yaw": yaw, "vel": vel, "v_long": v_long, "v_left": v_left, "accel": accel}


def ego_track(waymo_dir: str | Path, segment: str):
    """The ego pose per frame of ``segment``, for a mobility model that replays it: a pandas DataFrame with
    ``time_s`` (from the first frame), ``x_m``, ``y_m`` (world frame), ``speed_mps`` (finite differences of the
    positions) and ``heading_rad`` (yaw, counter-clockwise from the world x axis)."""
    import pandas as pd

    track = _track(*_poses(_root(waymo_dir), segment))
    return pd.DataFrame({"time_s": track["time_s"], "x_m": track["xy"][:, 0], "y_m": track["xy"][:, 1],
                         "speed_mps": np.hypot(track["vel"][:, 0], track["vel"][:, 1]),
                         "heading_rad": track["yaw"]})


def _interp_xy(track: dict, t: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(t, track["time_s"], track["xy"][:, 0]),
                     np.interp(t, track["time_s"], track["xy"][:, 1])], axis=-1)


def _to_ego(track: dict, i: np.ndarray, world_xy: np.ndarray) -> np.ndarray:
    """World points (n, k, 2) into the ego frames of frames ``i`` (n,), as (x forward, y right) [m]."""
    d = world_xy - track["xy"][i][:, None, :]
    c, s = np.cos(track["yaw"][i])[:, None], np.sin(track["yaw"][i])[:, None]
    return np.stack([c * d[..., 0] + s * d[..., 1], s * d[..., 0] - c * d[..., 1]], axis=-1)


def _decode(jpeg: bytes, image_px: int) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:   # pragma: no cover - depends on the environment
        raise VfedsimError("the waymo-v2 data source needs Pillow: pip install pillow") from None
    img = Image.open(io.BytesIO(jpeg))
    img.draft("L", (image_px * 4, image_px * 4))     # JPEG DCT scaling: decode near the size we need
    img = img.convert("L")
    w, h = img.size
    side = min(w, h)
    img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    img = img.resize((image_px, image_px), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)[None]


def segment_samples(waymo_dir: str | Path, segment: str, *, image_px: int) -> list[tuple]:
    """Samples of every frame of ``segment`` with a full ``TRAJ_STEPS`` s future, in time order, as rows
    (kinematics, occupancy, camera, lidar, labels) like `vfedsim.learn.scenes.episode` (see the module
    docstring for the mapping)."""
    root = _root(waymo_dir)
    times, poses = _poses(root, segment)
    track = _track(times, poses)
    t = track["time_s"]
    horizon = TRAJ_STEPS * TRAJ_DT_S
    frames = np.flatnonzero(t <= t[-1] - horizon + 1e-6)
    if len(frames) == 0:
        return []

    future = t[frames][:, None] + TRAJ_DT_S * np.arange(1, TRAJ_STEPS + 1)[None, :]
    trajectory = _to_ego(track, frames, _interp_xy(track, future)).astype(np.float32)        # (n, S, 2)
    ahead = _to_ego(track, frames, _interp_xy(track, t[frames] + MANEUVER_HORIZON_S)[:, None, :])[:, 0]
    maneuver = np.where(ahead[:, 1] < -MANEUVER_LATERAL_M, 1, np.where(ahead[:, 1] > MANEUVER_LATERAL_M, 2, 0))

    box_cols = [_KEY_TIME] + [_BOX + c for c in ("box.center.x", "box.center.y", "box.size.x", "box.size.y",
                                                   "box.heading", "type", "speed.x", "speed.y")]
    boxes = _read(root, "lidar_box", segment, box_cols).to_pydict()
    box_time = np.asarray(boxes[_KEY_TIME], dtype=np.int64)
    b = {name[len(_BOX):]: np.asarray(boxes[name], dtype=np.float64) for name in box_cols[1:]}
    road_user = np.isin(b["type"].astype(np.int64), ROAD_USER_TYPES)

    cams = _read(root, "camera_image", segment, [_KEY_TIME, _CAMERA, _IMAGE]).to_pydict()
    front = {int(ts): img for ts, cam, img in zip(cams[_KEY_TIME], cams[_CAMERA], cams[_IMAGE])
             if int(cam) == FRONT_CAMERA}

    out = []
    for k, i in enumerate(frames):
        sel = road_user & (box_time == times[i])
        # WOD vehicle frame (x forward, y left) -> vfedsim observer frame (x forward, y right)
        rel = np.stack([b["box.center.x"][sel], -b["box.center.y"][sel]], axis=1)
        vel_abs = np.stack([b["speed.x"][sel], -b["speed.y"][sel]], axis=1)
        ego_v = np.array([track["v_long"][i], -track["v_left"][i]])
        rel_v = vel_abs - ego_v
        rel_h = -b["box.heading"][sel]
        kin, occ = relative_features(ego_row(0.0, ego_v[0], ego_v[1], 0.0), rel, rel_v, rel_h)
        c = occ.shape[1] // 2
        occ[:, c, c] = (1.0, 0.0, 0.0)
        lidar = lidar_scan(np.zeros(2), 0.0, ego_v, rel, rel_h, vel_abs, b["box.size.x"][sel],
                           b["box.size.y"][sel], beams=LIDAR_BEAMS)
        in_lane = (rel[:, 0] > 0) & (np.abs(rel[:, 1]) < LANE_HALF_WIDTH_M)
        if in_lane.any():
            j = np.flatnonzero(in_lane)[np.argmin(rel[in_lane, 0])]
            gap = rel[j, 0] - 0.5 * (EGO_LENGTH_M + b["box.size.x"][sel][j])
            leader, ttc = leader_class(gap, ego_v[0] - vel_abs[j, 0], ego_v[0])
        else:
            leader, ttc = leader_class(None, 0.0, ego_v[0])
        jpeg = front.get(int(times[i]))
        if jpeg is None:
            raise VfedsimError(f"waymo segment {segment!r}: no FRONT camera image at {int(times[i])} us")
        labels = {
            "maneuver": int(maneuver[k]),
            "longitudinal": longitudinal_class(float(track["accel"][i])),
            "leader": leader,
            "ttc": ttc,
            "trajectory": trajectory[k],
            "neighbours": min(int(np.sum(np.hypot(rel[:, 0], rel[:, 1]) < NEIGHBOUR_RADIUS_M)),
                              len(TASKS["neighbours"].classes) - 1),
        }
        out.append((kin, occ, _decode(jpeg, image_px), lidar, labels))
    return out


def split_segments(names: Sequence[str], cfg: DataConfig) -> dict[str, list[str]]:
    """Segments of the pool, test and source splits (see the module docstring); deterministic in
    ``cfg.seed`` and the names, independent of their order."""
    ranked = sorted(names, key=lambda s: hashlib.sha256(f"{cfg.seed}:{s}".encode()).hexdigest())
    n = len(ranked)
    pool_w = cfg.samples_per_group * len(cfg.groups)
    total = pool_w + cfg.test_samples + cfg.pretrain_samples
    if n >= 3:
        n_test = min(max(1, round(n * cfg.test_samples / total)), n - 2)
        n_source = min(max(1, round(n * cfg.pretrain_samples / total)), n - 1 - n_test)
    else:
        n_test, n_source = (1 if n == 2 else 0), 0
    test, source, pool = ranked[:n_test], ranked[n_test:n_test + n_source], ranked[n_test + n_source:]
    return {"pool": pool, "test": test or pool, "source": source or pool}


def _evenly(rows: list, limit: int) -> list:
    if len(rows) <= limit:
        return rows
    return [rows[i] for i in np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)]


def load_waymo(cfg: DataConfig, *, progress: bool = False):
    """The (pool, test, source) datasets of ``cfg.waymo_dir`` (see the module docstring)."""
    from .data import Dataset, _empty, _stack

    root = _root(cfg.waymo_dir)
    names = segments(root)
    if not names:
        raise ScenarioError("learning.data.waymo_dir", f"{str(root)!r} holds no vehicle_pose/*.parquet segment")
    split = split_segments(names, cfg)
    cache: dict[str, list[tuple]] = {}

    def rows(segment: str) -> list[tuple]:
        if segment not in cache:
            cache[segment] = segment_samples(root, segment, image_px=cfg.image_size_px)
        return cache[segment]

    def build(name: str, n_groups: int, per_group: Sequence[int]) -> Dataset:
        names_here = split[name]
        if len(names_here) >= n_groups:   # segments dealt round-robin to the groups
            per = [[r for s in names_here[g::n_groups] for r in rows(s)] for g in range(n_groups)]
        else:                             # too few segments: contiguous stretches of their frames
            every = [r for s in names_here for r in rows(s)]
            cuts = np.linspace(0, len(every), n_groups + 1).round().astype(np.int64)
            per = [every[cuts[g]:cuts[g + 1]] for g in range(n_groups)]
        parts = []
        for g in range(n_groups):
            have = _evenly(per[g], per_group[g])
            if progress:
                print(f"  data: {name} group {g} (waymo): {len(have)} samples", file=sys.stderr, flush=True)
            if have:
                parts.append(_stack(have, g))
        return Dataset.concatenate(parts) if parts else _empty(cfg.image_size_px)

    from .data import _near_split

    pool = build("pool", len(cfg.groups), [cfg.samples_per_group] * len(cfg.groups))
    test = build("test", len(cfg.groups), _near_split(cfg.test_samples, len(cfg.groups)))
    source = build("source", len(cfg.source_groups), _near_split(cfg.pretrain_samples, len(cfg.source_groups)))
    return pool, test, source


def fingerprint(waymo_dir: str | Path | None) -> list:
    """(component/file, size [bytes]) of the Parquet files read, for the data cache key; [] when missing."""
    if not waymo_dir:
        return []
    root = Path(waymo_dir).expanduser()
    return sorted([f"{c}/{p.name}", p.stat().st_size] for c in COMPONENTS for p in (root / c).glob("*.parquet"))
