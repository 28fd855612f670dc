"""highway-env traffic scenes turned into multi-modal, multi-task samples (numpy and highway-env only).

A *scene group* (`SceneGroup`: highway | merge | roundabout | intersection, a density and a vehicle count) is
simulated with highway-env's own road networks and its NPC drivers (IDM longitudinal + MOBIL lane changes,
Treiber et al. 2000; Kesting et al. 2007). Every driver is an NPC: the env's controlled vehicle is replaced
by an IDM one. At each policy step (``POLICY_HZ``) a few *observers* are drawn among the vehicles on the
road, and each observer gives one sample, seen from its own perspective (`MODALITIES`):

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
``lidar`` float32 (2, LIDAR_BEAMS)
    ``LIDAR_BEAMS`` beams evenly spaced over 360 degrees, beam 0 along the observer's heading, then
    counter-clockwise seen from above (beam 8 of 32 points to the observer's left, beam 24 to its right).
    Channel 0: distance to the nearest other vehicle's outline (a LENGTH x WIDTH rectangle) along the beam
    / ``LIDAR_RANGE_M`` (1.0: nothing within range); channel 1: closing speed along the beam [m/s]
    (positive: that vehicle approaches) / 10 m/s, clipped to [-1, 1], 0 where nothing is hit. Modelled on
    highway-env's ``LidarObservation.trace`` (exact ray/rectangle intersection, ``utils.distance_to_rect``,
    same default range of 60 m), computed for all beams and vehicles at once; its extra centre-beam shortcut
    (centre distance - half width) is not reproduced, and its beams are fixed in the world frame while ours
    turn with the observer (as a vehicle-mounted sensor does). See `lidar_scan`.

Labels come from the simulator's ground truth (`TASKS`, in this order):

``maneuver``      keep | left | right: the observer's lateral position relative to the centre of the lane
                  MOBIL has it steer to (``target_lane_index``) is beyond ``LANE_CHANGE_OFFSET_M``: it is in
                  the middle of a lane change, towards that side. At the intersection (one lane per road)
                  the observer is *turning* left or right: it drives on a left- or right-turn connector.
``longitudinal``  brake | cruise | accelerate: the IDM acceleration command [m/s^2] of this instant against
                  ``BRAKE_BELOW_MPS2`` and ``ACCELERATE_ABOVE_MPS2``.
``leader``        free | following | closing: no leader in the same lane within a gap of ``LEADER_RANGE_M``
                  and a time headway of ``LEADER_HEADWAY_S``; a leader there; a leader there that the
                  observer closes on with a time-to-collision below ``CLOSING_TTC_S``.
``ttc``           float [s]: time-to-collision with the same-lane leader (bumper-to-bumper gap / closing
                  speed), clipped to [0, ``TTC_MAX_S``]; ``TTC_MAX_S`` when there is no closing leader.
``trajectory``    float (TRAJ_STEPS=3, 2) [m]: the observer's displacement at +1, +2, +3 s in its own frame at
                  the sampling instant (x forward, y right, as the kinematics rows). A vehicle that leaves
                  the scene (merge road end, roundabout or intersection exit) before +3 s is extrapolated
                  at its last velocity; on the periodic highway the wrap-around is undone.
``neighbours``    0 | 1 | 2 | 3+: other vehicles whose centre is within ``NEIGHBOUR_RADIUS_M``.

The classes are imbalanced (most vehicles keep their lane). `vfedsim.learn.data` schedules episodes, caches
the samples and cuts them into vehicle shards.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..scenario import SceneGroup

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")  # before pygame is imported; "dummy" renders black
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

__all__ = ["MODALITIES", "TaskSpec", "TASKS", "TASK_CLASSES", "CLASSIFICATION_TASKS", "REGRESSION_TASKS",
           "LIDAR_BEAMS", "LIDAR_RANGE_M", "TTC_MAX_S", "TRAJ_STEPS", "KINEMATIC_FEATURES", "NEIGHBOURS",
           "GRID_CELLS", "EPISODE_SAMPLES", "SCENES", "make_env", "episode", "lidar_scan", "ego_row",
           "relative_features", "leader_class", "longitudinal_class", "Sample"]

MODALITIES = ("kinematics", "occupancy", "camera", "lidar")


@dataclass(frozen=True)
class TaskSpec:
    """What one task's label is: ``kind`` "classification" (int64 index into ``classes``) or "regression"
    (float32 array of ``shape`` per sample, in ``unit``)."""

    kind: str                       # "classification" | "regression"
    classes: tuple[str, ...] = ()
    shape: tuple[int, ...] = ()
    unit: str = ""
    description: str = ""


LIDAR_BEAMS = 32               # beams over 360 degrees
LIDAR_RANGE_M = 60.0           # [m] highway-env LidarObservation's default maximum_range
LIDAR_SPEED_NORM_MPS = 10.0    # [m/s] closing-speed scale of lidar channel 1
TTC_MAX_S = 10.0               # [s] ttc label ceiling (no closing leader)
TRAJ_STEPS = 3                 # trajectory label: displacement at +1 .. +TRAJ_STEPS seconds
TRAJ_DT_S = 1.0                # [s] between trajectory points
NEIGHBOUR_RADIUS_M = 30.0      # [m] neighbours label: centre distance

TASKS: dict[str, TaskSpec] = {
    "maneuver": TaskSpec("classification", ("keep", "left", "right"),
                         description="lateral manoeuvre: lane change (or turn at an intersection) in progress"),
    "longitudinal": TaskSpec("classification", ("brake", "cruise", "accelerate"),
                             description="IDM acceleration command of this instant"),
    "leader": TaskSpec("classification", ("free", "following", "closing"),
                       description="same-lane leader within range and headway, and whether closing on it"),
    "ttc": TaskSpec("regression", shape=(), unit="s",
                    description=f"time-to-collision with the same-lane leader, clipped to [0, {TTC_MAX_S:g}]"),
    "trajectory": TaskSpec("regression", shape=(TRAJ_STEPS, 2), unit="m",
                           description="future displacement at +1, +2, +3 s, own frame (x forward, y right)"),
    "neighbours": TaskSpec("classification", ("0", "1", "2", "3+"),
                           description=f"other vehicles within {NEIGHBOUR_RADIUS_M:g} m"),
}
TASK_CLASSES: dict[str, tuple[str, ...]] = {t: s.classes for t, s in TASKS.items() if s.kind == "classification"}
CLASSIFICATION_TASKS = tuple(TASK_CLASSES)
REGRESSION_TASKS = tuple(t for t, s in TASKS.items() if s.kind == "regression")

KINEMATIC_FEATURES = ("presence", "x", "y", "vx", "vy", "cos_h", "sin_h")
NEIGHBOURS = 4                 # other vehicles in the kinematics modality (V = NEIGHBOURS + 1)
PERCEPTION_M = 50.0            # [m] range of the kinematics modality
GRID_CELLS = 11                # occupancy grid side [cells]
GRID_STEP_M = 5.0              # [m] cell side: the grid spans +-27.5 m
CAMERA_VIEW_M = 32.0           # [m] width of the camera's view
SUPERSAMPLE = 2                # render at 2x the image side, then average 2x2 pixels (anti-aliasing)
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140])   # ITU-R BT.601 luma, as highway-env's GrayscaleObservation

SIMULATION_HZ = 5              # [Hz] highway-env's "fast" setting (highway-fast-v0)
POLICY_HZ = 1                  # [Hz] one sampling step per simulated second (= 1 / TRAJ_DT_S)
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

Sample = tuple  # (kinematics, occupancy, camera, lidar, labels: dict task -> int | ndarray) of one observer


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

    def position(self, v, state: dict) -> np.ndarray:
        """``v``'s position [m] with any wrap-around of the scene undone (for trajectories)."""
        return np.array(v.position, dtype=np.float64)

    def maneuver(self, v, road) -> int:
        """keep 0 | left 1 | right 2: a lane change in progress (see the module docstring)."""
        target = road.network.get_lane(v.target_lane_index)
        lateral = target.local_coordinates(v.position)[1]   # > 0: right of the target lane -> moving left
        return 1 if lateral > LANE_CHANGE_OFFSET_M else 2 if lateral < -LANE_CHANGE_OFFSET_M else 0

    @contextmanager
    def episode_globals(self):
        """Class-level settings an env changes for its episode, restored afterwards."""
        yield


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
        return {"x0": float(xs.min()) - 0.5 * gap, "length": float(xs.max() - xs.min()) + gap, "shift": {}}

    def flow(self, env, group: SceneGroup, rng: np.random.Generator, state: dict) -> None:
        x0, length = state["x0"], state["length"]
        for v in env.road.vehicles:
            if v.position[0] < x0 + length:
                continue
            back = v.position - np.array([length, 0.0])
            if all(np.linalg.norm(o.position - back) > 15.0 for o in env.road.vehicles if o is not v):
                v.position = back
                v.on_state_update()
                state["shift"][id(v)] = state["shift"].get(id(v), 0.0) + length

    def position(self, v, state: dict) -> np.ndarray:
        return np.array(v.position, dtype=np.float64) + np.array([state["shift"].get(id(v), 0.0), 0.0])


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
        entries = [(("a", "b", i), 0.25, 25.0, ()) for i in range(env.config["lanes_count"])]
        entries.append((("j", "k", 0), 0.2, 20.0, ()))
        _arrivals(road, entries, group, rng, self)


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
        entries = [((a, b, 0), 0.2, 14.0, self.DESTINATIONS)
                   for a, b in (("ser", "ses"), ("eer", "ees"), ("ner", "nes"), ("wer", "wes"))]
        _arrivals(road, entries, group, rng, self)


class _Intersection(_Scene):
    """intersection-v0: a 4-way crossing of single-lane roads with right of way (highway-env's
    RegulatedRoad; the horizontal road has priority). Its initial vehicles (``initial_vehicle_count`` =
    ``vehicles``, spread along the approaches as the env places them), then arrivals at the four approaches
    with probability 0.2 x density per approach and policy step, while fewer than 1.5 x ``vehicles``, each
    bound for one of the three other exits; vehicles leave near the end of their exit (as the env's
    ``_clear_vehicles``). The env's own spawning (``spawn_probability``) runs only in ``env.step``, which
    is not called. For its episodes the IDM parameters the env sets on the IDMVehicle class (jam distance
    7 m, comfort accelerations 6 / -3 m/s^2) apply; they are restored afterwards, so that other scenes in
    the same process are unaffected."""

    neighbour_connected = True
    _IDM_GLOBALS = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN")

    def env_config(self, group: SceneGroup) -> dict:
        return {"initial_vehicle_count": group.vehicles, "spawn_probability": 0.0, "duration": 1e9}

    def make(self, config: dict):
        from highway_env.envs.intersection_env import IntersectionEnv
        return IntersectionEnv(config=config)

    @contextmanager
    def episode_globals(self):
        from highway_env.vehicle.behavior import IDMVehicle

        saved = {k: IDMVehicle.__dict__[k] for k in self._IDM_GLOBALS if k in IDMVehicle.__dict__}
        try:
            yield
        finally:
            for k, value in saved.items():
                setattr(IDMVehicle, k, value)

    def flow(self, env, group: SceneGroup, rng: np.random.Generator, state: dict) -> None:
        road = env.road

        def leaving(v) -> bool:
            a, b = v.lane_index[:2] if v.lane_index else ("", "")
            return v.route is None or (a.startswith("il") and b.startswith("o")
                                       and v.lane.local_coordinates(v.position)[0] >= v.lane.length - 4 * v.LENGTH)
        road.vehicles = [v for v in road.vehicles if not leaving(v)]
        entries = [((f"o{c}", f"ir{c}", 0), 0.2, 8.0, tuple(f"o{d}" for d in range(4) if d != c))
                   for c in range(4)]
        _arrivals(road, entries, group, rng, self)

    def maneuver(self, v, road) -> int:
        a, b = v.lane_index[:2]
        if a.startswith("ir") and b.startswith("il"):
            c, d = int(a[2:]), int(b[2:])
            return {(c + 1) % 4: 1, (c - 1) % 4: 2}.get(d, 0)   # left turn -> il(c+1), right -> il(c-1)
        return 0


def _arrivals(road, entries, group: SceneGroup, rng: np.random.Generator, scene: _Scene) -> None:
    """``entries``: (lane index, arrival probability per policy step and unit density, speed [m/s],
    destinations to draw a route from, or () to follow the road)."""
    from highway_env.vehicle.behavior import IDMVehicle

    for lane_index, rate, speed, destinations in entries:
        chance = rng.random()
        spawn_speed = speed + 2.0 * rng.standard_normal()
        route_pick = int(rng.integers(0, len(destinations))) if destinations else 0
        if len(road.vehicles) >= 1.5 * group.vehicles or chance >= min(0.95, rate * group.density):
            continue
        lane = road.network.get_lane(lane_index)
        if any(np.linalg.norm(v.position - lane.position(5.0, 0.0)) < 20.0 for v in road.vehicles):
            continue
        v = IDMVehicle.make_on_lane(road, lane_index, longitudinal=5.0, speed=float(max(spawn_speed, 0.0)))
        if destinations:
            v.plan_route_to(destinations[route_pick])
        v.randomize_behavior()
        _driver(v, scene, rng)
        road.vehicles.append(v)


SCENES: dict[str, _Scene] = {"highway": _Highway(), "merge": _Merge(), "roundabout": _Roundabout(),
                             "intersection": _Intersection()}
_SCENES = SCENES


# ------------------------------------------------------------------------------------------ one episode
def make_env(group: SceneGroup, image_px: int):
    """A highway-env environment of ``group``'s scene and an offscreen viewer that renders ``image_px``-side
    camera images (reused across episodes: `episode` resets it)."""
    from highway_env.envs.common.graphics import EnvViewer

    scene = SCENES[group.scene]
    config = {
        "simulation_frequency": SIMULATION_HZ, "policy_frequency": POLICY_HZ,
        "observation": {"type": "Kinematics"}, "offscreen_rendering": True,
        "screen_width": image_px * SUPERSAMPLE, "screen_height": image_px * SUPERSAMPLE,
        "scaling": image_px * SUPERSAMPLE / CAMERA_VIEW_M, "centering_position": [0.5, 0.5],
        "neighbour_vehicles_connected_lanes": scene.neighbour_connected,
        **scene.env_config(group),
    }
    with scene.episode_globals():
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


def leader_class(gap_m: float | None, closing_mps: float, speed_mps: float) -> tuple[int, float]:
    """(leader class, ttc [s]) from the bumper-to-bumper gap [m] to the same-lane leader (None: none), the
    speed [m/s] the observer closes on it with and its own speed (see the module docstring)."""
    leader, ttc = 0, TTC_MAX_S
    if gap_m is not None:
        if closing_mps > 0:
            ttc = float(np.clip(gap_m / closing_mps, 0.0, TTC_MAX_S))
        if gap_m < min(LEADER_RANGE_M, LEADER_HEADWAY_S * max(speed_mps, 1.0)):
            leader = 2 if closing_mps > 0 and gap_m / closing_mps < CLOSING_TTC_S else 1
    return leader, ttc


def longitudinal_class(accel_mps2: float) -> int:
    """brake 0 | cruise 1 | accelerate 2 from an acceleration [m/s^2]."""
    return 0 if accel_mps2 < BRAKE_BELOW_MPS2 else 2 if accel_mps2 > ACCELERATE_ABOVE_MPS2 else 1


def _leader_labels(v, road) -> tuple[int, float]:
    """(leader class, ttc [s]) from the same-lane leader (see the module docstring)."""
    front, _ = road.neighbour_vehicles(v, v.lane_index)
    if front is None:
        return leader_class(None, 0.0, v.speed)
    gap = v.lane_distance_to(front) - 0.5 * (v.LENGTH + getattr(front, "LENGTH", v.LENGTH))
    return leader_class(gap, v.speed - getattr(front, "speed", 0.0), v.speed)


def _rotation(heading: float) -> np.ndarray:
    c, s = np.cos(heading), np.sin(heading)
    return np.array([[c, s], [-s, c]])  # world -> frame rotated by `heading`


def lidar_scan(origin: np.ndarray, heading: float, velocity: np.ndarray, pos: np.ndarray, headings: np.ndarray,
               vel: np.ndarray, length: np.ndarray, width: np.ndarray, *, beams: int = LIDAR_BEAMS,
               range_m: float = LIDAR_RANGE_M) -> np.ndarray:
    """Lidar-like ranges of an observer at ``origin`` [m] with ``heading`` [rad] and ``velocity`` [m/s] among
    rectangles (centres ``pos`` (N, 2) [m], ``headings`` (N,), velocities ``vel`` (N, 2) [m/s], sides
    ``length``, ``width`` (N,) [m]; leave the observer out). Returns float32 (2, beams): distance / range
    (1 where nothing is hit) and closing speed / 10 m/s in [-1, 1] (see the module docstring).

    Beam k points at ``heading - 2 pi k / beams`` in highway-env's world frame, whose y axis points to the
    right of a vehicle driving along +x (the screen's y axis points down): counter-clockwise seen from above.
    Each beam is intersected with every rectangle by the slab method (Kay & Kajiya 1986), the same result as
    highway-env's ``utils.distance_to_rect``; a beam that starts inside a rectangle has distance 0.
    """
    out = np.zeros((2, beams), dtype=np.float32)
    out[0] = 1.0
    if len(pos) == 0:
        return out
    angle = heading - 2 * np.pi * np.arange(beams) / beams
    u = np.stack([np.cos(angle), np.sin(angle)], axis=1)                 # (B, 2) world beam directions
    c, s = np.cos(headings), np.sin(headings)
    d = np.asarray(origin, np.float64) - pos                              # (N, 2) origin rel. to centres
    o_x, o_y = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]      # in each rectangle's frame
    u_x = c[:, None] * u[None, :, 0] + s[:, None] * u[None, :, 1]         # (N, B)
    u_y = -s[:, None] * u[None, :, 0] + c[:, None] * u[None, :, 1]
    hx, hy = (0.5 * np.asarray(length))[:, None], (0.5 * np.asarray(width))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.stack([(-hx - o_x[:, None]) / u_x, (hx - o_x[:, None]) / u_x])
        ty = np.stack([(-hy - o_y[:, None]) / u_y, (hy - o_y[:, None]) / u_y])
    # entry and exit of each slab; a beam parallel to a slab: inside it -> (-inf, inf), outside -> empty
    inside_x = np.abs(o_x)[:, None] <= hx
    inside_y = np.abs(o_y)[:, None] <= hy
    x_in = np.where(u_x == 0, np.where(inside_x, -np.inf, np.inf), tx.min(axis=0))
    x_out = np.where(u_x == 0, np.where(inside_x, np.inf, -np.inf), tx.max(axis=0))
    y_in = np.where(u_y == 0, np.where(inside_y, -np.inf, np.inf), ty.min(axis=0))
    y_out = np.where(u_y == 0, np.where(inside_y, np.inf, -np.inf), ty.max(axis=0))
    t_near = np.maximum(x_in, y_in)
    t_far = np.minimum(x_out, y_out)
    hit = (t_far >= np.maximum(t_near, 0.0)) & (t_near <= range_m)
    dist = np.where(hit, np.maximum(t_near, 0.0), np.inf)                 # (N, B) [m]
    nearest = np.argmin(dist, axis=0)
    best = dist[nearest, np.arange(beams)]
    got = np.isfinite(best)
    closing = -np.einsum("bk,bk->b", vel[nearest] - np.asarray(velocity), u)   # [m/s], > 0: approaching
    out[0] = np.where(got, best / range_m, 1.0)
    out[1] = np.where(got, np.clip(closing / LIDAR_SPEED_NORM_MPS, -1.0, 1.0), 0.0)
    return out


def _features(obs: int, pos: np.ndarray, vel: np.ndarray, heading: np.ndarray, v) -> tuple[np.ndarray, ...]:
    """Kinematics (V, F), occupancy (3, G, G) of vehicle index ``obs`` among all (vectorised over N), and
    the centre distances [m] to all (inf for itself)."""
    rot = _rotation(heading[obs])
    rel = (pos - pos[obs]) @ rot.T
    rel_v = (vel - vel[obs]) @ rot.T
    rel_h = heading - heading[obs]
    lane = v.lane
    s, lateral = lane.local_coordinates(v.position)
    dh = v.heading - lane.heading_at(s)
    ego = ego_row(lateral, v.speed * np.cos(dh), v.speed * np.sin(dh), dh)
    others = np.arange(len(pos)) != obs
    kin, occ = relative_features(ego, rel[others], rel_v[others], rel_h[others])
    # the observer itself fills the centre cell (as highway-env's OccupancyGridObservation does)
    c = GRID_CELLS // 2
    occ[:, c, c] = (1.0, 0.0, 0.0)
    dist = np.hypot(rel[:, 0], rel[:, 1])
    dist[obs] = np.inf
    return kin, occ, dist


def ego_row(lateral_m: float, v_long_mps: float, v_lat_mps: float, heading_rad: float) -> np.ndarray:
    """Row 0 of the kinematics modality: the observer's offset from its lane centre [m], speed along and
    across its lane [m/s] and heading relative to the lane [rad], normalised (see the module docstring)."""
    row = np.array([1.0, 0.0, lateral_m / _LAT_NORM_M, (v_long_mps - _EGO_V_MID_MPS) / _EGO_V_NORM_MPS,
                    v_lat_mps / _VY_NORM_MPS, np.cos(heading_rad), np.sin(heading_rad)])
    return np.clip(row, -1.0, 1.0).astype(np.float32)


def relative_features(ego: np.ndarray, rel: np.ndarray, rel_v: np.ndarray,
                      rel_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kinematics (V, F) and occupancy (3, G, G) from the other objects' positions ``rel`` (M, 2) [m],
    velocities ``rel_v`` (M, 2) [m/s] and headings ``rel_h`` (M,) [rad] relative to the observer, in its
    frame (x forward, y right); ``ego`` is row 0 (`ego_row`). Vectorised over the M objects; the observer
    is not among them and its centre cell stays empty (callers mark it)."""
    kin = np.zeros((NEIGHBOURS + 1, len(KINEMATIC_FEATURES)), dtype=np.float32)
    kin[0] = ego
    dist = np.hypot(rel[:, 0], rel[:, 1])
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
    order = np.argsort(-np.where(inside, dist, -1.0), kind="stable")
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


@dataclass
class _Track:
    """A sample whose trajectory label waits for the observer's future positions."""

    labels: dict
    vehicle: object
    origin: np.ndarray       # [m] unwrapped position at the sampling instant
    rotation: np.ndarray     # world -> observer frame at the sampling instant
    step: int                # policy step of the sampling instant
    last: np.ndarray         # [m] last known unwrapped position ...
    last_velocity: np.ndarray  # [m/s] ... and velocity
    last_step: int


def _follow(tracks: list[_Track], road, scene: _Scene, state: dict, step: int) -> list[_Track]:
    """Record the observers' positions at policy step ``step`` (after the scene's flow); returns the
    tracks still waiting. A vehicle no longer on the road moves on at its last velocity."""
    on_road = {id(v) for v in road.vehicles}
    waiting = []
    for tr in tracks:
        k = step - tr.step
        if id(tr.vehicle) in on_road:
            tr.last = scene.position(tr.vehicle, state)
            tr.last_velocity = np.array(tr.vehicle.velocity, dtype=np.float64)
            tr.last_step = step
            here = tr.last
        else:
            here = tr.last + tr.last_velocity * (step - tr.last_step) * TRAJ_DT_S
        tr.labels["trajectory"][k - 1] = (tr.rotation @ (here - tr.origin)).astype(np.float32)
        if k < TRAJ_STEPS:
            waiting.append(tr)
    return waiting


def episode(env, viewer, group: SceneGroup, seed: int, rng: np.random.Generator, limit: int) -> list[Sample]:
    """Simulate one episode of ``group`` on ``env`` (from `make_env`), reset with ``seed``; ``rng`` draws
    observers, desired speeds and arrivals. Returns up to ``limit`` samples, in time order. After the last
    sampling step the simulation runs ``TRAJ_STEPS`` more policy steps to complete the trajectory labels."""
    scene = SCENES[group.scene]
    with scene.episode_globals():
        env.reset(seed=seed)
        _npc_only(env, scene, rng)
        state = scene.start(env)
        road = env.road
        frames = SIMULATION_HZ // POLICY_HZ
        dt = 1.0 / SIMULATION_HZ
        out: list[Sample] = []
        tracks: list[_Track] = []
        step = 0
        while True:
            sampling = WARMUP_STEPS <= step < WARMUP_STEPS + EPISODE_STEPS and len(out) < limit
            if step >= WARMUP_STEPS and not sampling and not tracks:
                break
            scene.flow(env, group, rng, state)
            tracks = _follow(tracks, road, scene, state, step)
            for frame in range(frames):
                road.act()
                if frame == 0 and sampling:
                    new, new_tracks = _observe(road, viewer, scene, state, rng, limit - len(out), step)
                    out.extend(new)
                    tracks.extend(new_tracks)
                road.step(dt)
            step += 1
    return out


def _observe(road, viewer, scene: _Scene, state: dict, rng: np.random.Generator, limit: int,
             step: int) -> tuple[list[Sample], list[_Track]]:
    """Samples of a few observers at this instant (after road.act(): the IDM commands are current)."""
    vehicles = road.vehicles
    candidates = [i for i, v in enumerate(vehicles) if v.lane is not None and v.on_road]
    take = min(OBSERVERS_PER_STEP, len(candidates), limit)
    if take == 0:
        return [], []
    chosen = rng.choice(np.array(candidates), size=take, replace=False)
    pos = np.array([v.position for v in vehicles], dtype=np.float64)
    heading = np.array([v.heading for v in vehicles], dtype=np.float64)
    speed = np.array([v.speed for v in vehicles], dtype=np.float64)
    vel = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    length = np.array([v.LENGTH for v in vehicles], dtype=np.float64)
    width = np.array([v.WIDTH for v in vehicles], dtype=np.float64)
    out, tracks = [], []
    for obs in np.sort(chosen):
        v = vehicles[obs]
        kin, occ, dist = _features(int(obs), pos, vel, heading, v)
        others = np.arange(len(vehicles)) != obs
        lidar = lidar_scan(pos[obs], heading[obs], vel[obs], pos[others], heading[others], vel[others],
                           length[others], width[others])
        accel = float(v.action.get("acceleration", 0.0)) if v.action else 0.0
        leader, ttc = _leader_labels(v, road)
        labels = {
            "maneuver": scene.maneuver(v, road),
            "longitudinal": longitudinal_class(accel),
            "leader": leader,
            "ttc": ttc,
            "trajectory": np.zeros((TRAJ_STEPS, 2), np.float32),
            "neighbours": min(int(np.sum(dist < NEIGHBOUR_RADIUS_M)), len(TASKS["neighbours"].classes) - 1),
        }
        origin = scene.position(v, state)
        tracks.append(_Track(labels, v, origin, _rotation(heading[obs]), step, origin, vel[obs].copy(), step))
        out.append((kin, occ, _render(viewer, v), lidar, labels))
    return out, tracks
