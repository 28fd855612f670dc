"""highway-env traffic scenes turned into multi-modal, multi-task samples (numpy and highway-env only).

A *scene group* (`SceneGroup`: highway | merge | roundabout, a density and a vehicle count) is simulated with
highway-env's own road networks and its NPC drivers (IDM longitudinal + MOBIL lane changes, Treiber et al.
2000; Kesting et al. 2007). Every driver is an NPC: the env's controlled vehicle is replaced by an IDM one.
At each policy step (``POLICY_HZ``) a few *observers* are drawn among the vehicles on the road, and each
observer gives one sample, seen from its own perspective:

``kinematics`` float32 (V=5, F=7)
    Row 0 is the observer in its lane frame: [1, 0, offset from the lane centre / 2 m, (longitudinal speed
    - 20 m/s) / 10 m/s, lateral speed / 2 m/s, cos, sin of the heading relative to the lane]. Rows 1..4 are
    the 4 nearest other vehicles within ``PERCEPTION_M``, nearest first, in the observer's frame (x forward,
    y right): [1, x / 50 m, y / 12 m, relative vx / 10 m/s, relative vy / 2 m/s, cos, sin of the relative
    heading]; absent vehicles are zero rows. Everything is clipped to [-1, 1].
``occupancy`` float32 (3, 11, 11)
    presence, relative vx / 10 m/s, relative vy / 2 m/s on a 5 m grid of +-27.5 m in the observer's frame;
    ``occupancy[c, i, j]``: i along the observer's forward axis, j along its right axis. The observer itself
    fills the centre cell (as highway-env's OccupancyGridObservation does).
``camera`` uint8 (1, H, W), H = W = ``image_size_px``
    highway-env's top-down render (EnvViewer, offscreen) centred on the observer, ``CAMERA_VIEW_M`` metres
    wide, converted to grayscale with the ITU-R BT.601 weights that highway-env's GrayscaleObservation uses.

Labels come from the simulator's ground truth (`TASK_CLASSES`):

``maneuver``      keep | left | right: the observer's lateral position relative to the centre of the lane
                  MOBIL has it steer to (``target_lane_index``) is beyond ``LANE_CHANGE_OFFSET_M``: it is in
                  the middle of a lane change, towards that side.
``longitudinal``  brake | cruise | accelerate: the IDM acceleration command [m/s^2] of this instant against
                  ``BRAKE_BELOW_MPS2`` and ``ACCELERATE_ABOVE_MPS2``.
``leader``        free | following | closing: no leader in the same lane within a gap of ``LEADER_RANGE_M``
                  and a time headway of ``LEADER_HEADWAY_S``; a leader there; a leader there that the
                  observer closes on with a time-to-collision below ``CLOSING_TTC_S``.

The classes are imbalanced (most vehicles keep their lane). `vfedsim.learn.data` schedules episodes, caches
the samples and cuts them into vehicle shards.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..scenario import SceneGroup

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")  # before pygame is imported; "dummy" renders black
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

__all__ = ["TASK_CLASSES", "KINEMATIC_FEATURES", "NEIGHBOURS", "GRID_CELLS", "EPISODE_SAMPLES", "make_env",
           "episode", "Sample"]

TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "maneuver": ("keep", "left", "right"),
    "longitudinal": ("brake", "cruise", "accelerate"),
    "leader": ("free", "following", "closing"),
}
KINEMATIC_FEATURES = ("presence", "x", "y", "vx", "vy", "cos_h", "sin_h")
NEIGHBOURS = 4                 # other vehicles in the kinematics modality (V = NEIGHBOURS + 1)
PERCEPTION_M = 50.0            # [m] range of the kinematics modality
GRID_CELLS = 11                # occupancy grid side [cells]
GRID_STEP_M = 5.0              # [m] cell side: the grid spans +-27.5 m
CAMERA_VIEW_M = 32.0           # [m] width of the camera's view
SUPERSAMPLE = 2                # render at 2x the image side, then average 2x2 pixels (anti-aliasing)
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140])   # ITU-R BT.601 luma, as highway-env's GrayscaleObservation

SIMULATION_HZ = 5              # [Hz] highway-env's "fast" setting (highway-fast-v0)
POLICY_HZ = 1                  # [Hz] one sampling step per simulated second
WARMUP_STEPS = 3               # [steps] let IDM/MOBIL settle before sampling
EPISODE_STEPS = 20             # [steps] sampling steps per episode
OBSERVERS_PER_STEP = 8         # samples per sampling step (fewer when fewer vehicles are on the road)
EPISODE_SAMPLES = EPISODE_STEPS * OBSERVERS_PER_STEP

LANE_CHANGE_OFFSET_M = 0.5     # [m] lateral distance to the target lane centre that counts as changing lane
BRAKE_BELOW_MPS2 = -0.5        # [m/s^2]
ACCELERATE_ABOVE_MPS2 = 0.3    # [m/s^2]
LEADER_RANGE_M = 50.0          # [m] gap (bumper to bumper) within which a same-lane vehicle is a leader ...
LEADER_HEADWAY_S = 2.0         # [s] ... and time headway (gap / own speed)
CLOSING_TTC_S = 12.0           # [s] time-to-collision below which the observer is closing on its leader

# Feature scales: each feature divided by its typical range, so that inputs have comparable spread.
_X_NORM_M, _Y_NORM_M = 50.0, 12.0             # [m] relative position
_VX_NORM_MPS, _VY_NORM_MPS = 10.0, 2.0        # [m/s] relative (and ego lateral) velocity
_EGO_V_MID_MPS, _EGO_V_NORM_MPS = 20.0, 10.0  # [m/s] ego speed -> (v - 20) / 10
_LAT_NORM_M = 2.0                             # [m] ego offset from its lane centre (half a lane)

Sample = tuple  # (kinematics, occupancy, camera, maneuver, longitudinal, leader) of one observer


# ------------------------------------------------------------------------------------------ scenes
class _Scene:
    """How one scene kind is built from highway-env, and how traffic enters and leaves it."""

    neighbour_connected = False
    target_speed_mps: tuple[float, float] | None = None   # desired speeds drawn per driver [m/s]

    def make(self, config: dict):
        """The highway-env environment of this scene, configured."""
        raise NotImplementedError

    def env_config(self, group: SceneGroup) -> dict:
        return {"vehicles_count": group.vehicles}

    def start(self, env) -> dict:
        """Per-episode state of the scene's traffic flow, after the env's reset."""
        return {}

    def flow(self, env, group: SceneGroup, rng: np.random.Generator, state: dict) -> None:
        """Remove vehicles that left the scene and let new ones in (once per policy step)."""


class _Highway(_Scene):
    """highway-v0's straight 3-lane road, ``density`` is its ``vehicles_density`` (1 / spacing factor).

    The stretch that the initial vehicles occupy is made periodic (a ring road, the usual closed boundary
    of traffic simulation): a vehicle that drives past its end re-enters at its start, unless that spot is
    taken. The density stays as configured instead of the platoon spreading out.
    """

    target_speed_mps = (18.0, 32.0)

    def env_config(self, group: SceneGroup) -> dict:
        return {"lanes_count": 3, "vehicles_count": group.vehicles, "vehicles_density": group.density}

    def make(self, config: dict):
        from highway_env.envs.highway_env import HighwayEnv
        return HighwayEnv(config=config)

    def start(self, env) -> dict:
        xs = np.array([v.position[0] for v in env.road.vehicles])
        gap = (xs.max() - xs.min()) / max(len(xs) - 1, 1)
        return {"x0": float(xs.min()) - 0.5 * gap, "length": float(xs.max() - xs.min()) + gap}

    def flow(self, env, group: SceneGroup, rng: np.random.Generator, state: dict) -> None:
        x0, length = state["x0"], state["length"]
        for v in env.road.vehicles:
            if v.position[0] < x0 + length:
                continue
            back = v.position - np.array([length, 0.0])
            if all(np.linalg.norm(o.position - back) > 15.0 for o in env.road.vehicles if o is not v):
                v.position = back
                v.on_state_update()


class _Merge(_Scene):
    """merge-generic-v0: 2 lanes and an on-ramp; arrivals at the road start and the ramp, per policy step,
    with probability 0.25 x density per lane (0.2 x density on the ramp), while fewer than 1.5 x ``vehicles``."""

    neighbour_connected = True
    target_speed_mps = (18.0, 32.0)

    def env_config(self, group: SceneGroup) -> dict:
        return {"lanes_count": 2, "vehicles_count": group.vehicles}

    def make(self, config: dict):
        from highway_env.envs.merge_env import MergeGenericEnv
        return MergeGenericEnv(config=config)

    def flow(self, env, group: SceneGroup, rng: np.random.Generator, state: dict) -> None:
        road = env.road
        road_end = sum(env.config[k] for k in ("before_merge_length", "converge_merge_length",
                                               "parallel_merge_length", "after_merge_length"))
        road.vehicles = [v for v in road.vehicles if v.position[0] < road_end - 5.0]
        entries = [(("a", "b", i), 0.25, 25.0) for i in range(env.config["lanes_count"])]
        entries.append((("j", "k", 0), 0.2, 20.0))
        _arrivals(road, entries, group, rng, self, destination=None)


class _Roundabout(_Scene):
    """roundabout-generic-v0 (2-lane ring): arrivals at its four entries with probability 0.2 x density per
    entry and policy step, while fewer than 1.5 x ``vehicles``; vehicles leave at the end of their exit."""

    neighbour_connected = True
    DESTINATIONS = ("exr", "sxr", "nxr", "wxr")

    def make(self, config: dict):
        from highway_env.envs.roundabout_env import RoundaboutGenericEnv
        return RoundaboutGenericEnv(config=config)

    def flow(self, env, group: SceneGroup, rng: np.random.Generator, state: dict) -> None:
        road = env.road
        keep = []
        for v in road.vehicles:
            lane_to = v.lane_index[1] if v.lane_index else ""
            if lane_to.endswith("xr") and v.lane.local_coordinates(v.position)[0] > v.lane.length - 10.0:
                continue
            keep.append(v)
        road.vehicles = keep
        entries = [((a, b, 0), 0.2, 14.0) for a, b in (("ser", "ses"), ("eer", "ees"), ("ner", "nes"),
                                                        ("wer", "wes"))]
        _arrivals(road, entries, group, rng, self, destination=self.DESTINATIONS)


def _arrivals(road, entries, group: SceneGroup, rng: np.random.Generator, scene: _Scene,
              destination: Sequence[str] | None) -> None:
    from highway_env.vehicle.behavior import IDMVehicle

    for lane_index, rate, speed in entries:
        chance = rng.random()
        spawn_speed = speed + 2.0 * rng.standard_normal()
        route_pick = int(rng.integers(0, len(destination))) if destination else 0
        if len(road.vehicles) >= 1.5 * group.vehicles or chance >= min(0.95, rate * group.density):
            continue
        lane = road.network.get_lane(lane_index)
        if any(np.linalg.norm(v.position - lane.position(5.0, 0.0)) < 20.0 for v in road.vehicles):
            continue
        v = IDMVehicle.make_on_lane(road, lane_index, longitudinal=5.0, speed=float(spawn_speed))
        if destination:
            v.plan_route_to(destination[route_pick])
        v.randomize_behavior()
        _driver(v, scene, rng)
        road.vehicles.append(v)


_SCENES: dict[str, _Scene] = {"highway": _Highway(), "merge": _Merge(), "roundabout": _Roundabout()}


# ------------------------------------------------------------------------------------------ one episode
def make_env(group: SceneGroup, image_px: int):
    """A highway-env environment of ``group``'s scene and an offscreen viewer that renders ``image_px``-side
    camera images (reused across episodes: `episode` resets it)."""
    from highway_env.envs.common.graphics import EnvViewer

    scene = _SCENES[group.scene]
    config = {
        "simulation_frequency": SIMULATION_HZ, "policy_frequency": POLICY_HZ,
        "observation": {"type": "Kinematics"}, "offscreen_rendering": True,
        "screen_width": image_px * SUPERSAMPLE, "screen_height": image_px * SUPERSAMPLE,
        "scaling": image_px * SUPERSAMPLE / CAMERA_VIEW_M, "centering_position": [0.5, 0.5],
        "neighbour_vehicles_connected_lanes": scene.neighbour_connected,
        **scene.env_config(group),
    }
    env = scene.make(config)
    viewer = EnvViewer(env, config=env.config)
    viewer.enabled = True  # highway-env skips drawing under SDL's "dummy" driver; offscreen surfaces still work
    return env, viewer


def _npc_only(env, scene: _Scene, rng: np.random.Generator) -> None:
    """Make every driver an NPC: the env's controlled vehicle becomes an IDM one; draw desired speeds where
    the scene has heterogeneous drivers (so that faster ones catch up, follow, brake and overtake); switch
    off collision checks (as highway-fast-v0 does for NPCs: IDM keeps safe gaps, this only saves time)."""
    from highway_env.vehicle.behavior import IDMVehicle

    road = env.road
    for i, v in enumerate(road.vehicles):
        if not isinstance(v, IDMVehicle):
            npc = IDMVehicle.create_from(v)
            npc.randomize_behavior()
            road.vehicles[i] = npc
    for v in road.vehicles:
        _driver(v, scene, rng)


def _driver(v, scene: _Scene, rng: np.random.Generator) -> None:
    desired = rng.uniform(*scene.target_speed_mps) if scene.target_speed_mps else None
    if desired is not None:
        v.target_speed = float(desired)
    v.check_collisions = False


def _labels(v, road) -> tuple[int, int, int]:
    target = road.network.get_lane(v.target_lane_index)
    lateral = target.local_coordinates(v.position)[1]   # > 0: right of the target lane -> moving left
    maneuver = 1 if lateral > LANE_CHANGE_OFFSET_M else 2 if lateral < -LANE_CHANGE_OFFSET_M else 0
    accel = float(v.action.get("acceleration", 0.0)) if v.action else 0.0
    longitudinal = 0 if accel < BRAKE_BELOW_MPS2 else 2 if accel > ACCELERATE_ABOVE_MPS2 else 1
    front, _ = road.neighbour_vehicles(v, v.lane_index)
    leader = 0
    if front is not None:
        gap = v.lane_distance_to(front) - 0.5 * (v.LENGTH + getattr(front, "LENGTH", v.LENGTH))
        if gap < min(LEADER_RANGE_M, LEADER_HEADWAY_S * max(v.speed, 1.0)):
            closing = v.speed - getattr(front, "speed", 0.0)
            leader = 2 if closing > 0 and gap / closing < CLOSING_TTC_S else 1
    return maneuver, longitudinal, leader


def _rotation(heading: float) -> np.ndarray:
    c, s = np.cos(heading), np.sin(heading)
    return np.array([[c, s], [-s, c]])  # world -> frame rotated by `heading`


def _features(obs: int, pos: np.ndarray, vel: np.ndarray, heading: np.ndarray, v) -> tuple[np.ndarray, ...]:
    """Kinematics (V, F) and occupancy (3, G, G) of vehicle index ``obs`` among all (vectorised over N)."""
    rot = _rotation(heading[obs])
    rel = (pos - pos[obs]) @ rot.T
    rel_v = (vel - vel[obs]) @ rot.T
    rel_h = heading - heading[obs]

    kin = np.zeros((NEIGHBOURS + 1, len(KINEMATIC_FEATURES)), dtype=np.float32)
    lane = v.lane
    s, lateral = lane.local_coordinates(v.position)
    dh = v.heading - lane.heading_at(s)
    kin[0] = [1.0, 0.0, lateral / _LAT_NORM_M, (v.speed * np.cos(dh) - _EGO_V_MID_MPS) / _EGO_V_NORM_MPS,
              v.speed * np.sin(dh) / _VY_NORM_MPS, np.cos(dh), np.sin(dh)]
    dist = np.hypot(rel[:, 0], rel[:, 1])
    dist[obs] = np.inf
    near = np.argsort(dist, kind="stable")[:NEIGHBOURS]
    near = near[dist[near] < PERCEPTION_M]
    k = len(near)
    kin[1:k + 1, 0] = 1.0
    kin[1:k + 1, 1] = rel[near, 0] / _X_NORM_M
    kin[1:k + 1, 2] = rel[near, 1] / _Y_NORM_M
    kin[1:k + 1, 3] = rel_v[near, 0] / _VX_NORM_MPS
    kin[1:k + 1, 4] = rel_v[near, 1] / _VY_NORM_MPS
    kin[1:k + 1, 5] = np.cos(rel_h[near])
    kin[1:k + 1, 6] = np.sin(rel_h[near])
    np.clip(kin, -1.0, 1.0, out=kin)

    occ = np.zeros((3, GRID_CELLS, GRID_CELLS), dtype=np.float32)
    half = GRID_CELLS * GRID_STEP_M / 2
    cell = np.floor((rel + half) / GRID_STEP_M).astype(np.int64)
    inside = np.all((cell >= 0) & (cell < GRID_CELLS), axis=1)
    # nearest last, so that it wins a shared cell
    order = np.argsort(-np.where(inside, np.hypot(rel[:, 0], rel[:, 1]), -1.0), kind="stable")
    order = order[inside[order]]
    i, j = cell[order, 0], cell[order, 1]
    occ[0, i, j] = 1.0
    occ[1, i, j] = np.clip(rel_v[order, 0] / _VX_NORM_MPS, -1, 1)
    occ[2, i, j] = np.clip(rel_v[order, 1] / _VY_NORM_MPS, -1, 1)
    return kin, occ


def _render(viewer, v) -> np.ndarray:
    viewer.observer_vehicle = v
    viewer.display()
    rgb = viewer.get_image()  # (H, W, 3)
    gray = rgb[..., :3] @ GRAY_WEIGHTS
    px = gray.shape[0] // SUPERSAMPLE
    gray = gray.reshape(px, SUPERSAMPLE, px, SUPERSAMPLE).mean(axis=(1, 3))
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)[None]


def episode(env, viewer, group: SceneGroup, seed: int, rng: np.random.Generator, limit: int) -> list[Sample]:
    """Simulate one episode of ``group`` on ``env`` (from `make_env`), reset with ``seed``; ``rng`` draws
    observers, desired speeds and arrivals. Returns up to ``limit`` samples, in time order."""
    scene = _SCENES[group.scene]
    env.reset(seed=seed)
    _npc_only(env, scene, rng)
    state = scene.start(env)
    road = env.road
    frames = SIMULATION_HZ // POLICY_HZ
    dt = 1.0 / SIMULATION_HZ
    out: list[Sample] = []
    for step in range(WARMUP_STEPS + EPISODE_STEPS):
        scene.flow(env, group, rng, state)
        for frame in range(frames):
            road.act()
            if frame == 0 and step >= WARMUP_STEPS and len(out) < limit:
                out.extend(_observe(road, viewer, rng, limit - len(out)))
            road.step(dt)
        if len(out) >= limit:
            break
    return out


def _observe(road, viewer, rng: np.random.Generator, limit: int) -> list[Sample]:
    """Samples of a few observers at this instant (after road.act(): the IDM commands are current)."""
    vehicles = road.vehicles
    candidates = [i for i, v in enumerate(vehicles) if v.lane is not None and v.on_road]
    take = min(OBSERVERS_PER_STEP, len(candidates), limit)
    if take == 0:
        return []
    chosen = rng.choice(np.array(candidates), size=take, replace=False)
    pos = np.array([v.position for v in vehicles], dtype=np.float64)
    heading = np.array([v.heading for v in vehicles], dtype=np.float64)
    speed = np.array([v.speed for v in vehicles], dtype=np.float64)
    vel = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    out = []
    for obs in np.sort(chosen):
        v = vehicles[obs]
        kin, occ = _features(int(obs), pos, vel, heading, v)
        out.append((kin, occ, _render(viewer, v), *_labels(v, road)))
    return out
