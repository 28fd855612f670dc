"""Replay of SUMO floating-car data (``sumo --fcd-output``) as a mobility model.

Input (https://sumo.dlr.de/docs/Simulation/Output/FCDOutput.html): ``fcd-export/timestep[@time]/vehicle``
elements with ``id``, ``x``, ``y`` [m] (also ``speed``, ``angle``, ``lane``, which are not needed), read as a
stream (`xml.etree.ElementTree.iterparse`) from ``.xml`` or ``.xml.gz``; or a ``.parquet`` table with the
columns ``time, id, x, y`` (others ignored; needs ``pip install vfedsim[parquet]``). Other elements
(persons, containers) are ignored.

Kinematics: a vehicle is on the road from its first to its last timestep (t_enter <= t < t_exit); between
two of its timesteps it moves in a straight line at the constant velocity (displacement / dt), so positions
equal the trace's at every timestep and are linear in between (`vfedsim.world.mobility.PathMobility`). A
vehicle seen at one timestep only is never on the road. Gaps (a vehicle missing from some timesteps, e.g. a
teleport) are bridged by the same straight line. Vehicle ids are 0, 1, ... in order of first appearance,
ties broken by the id string, so the same trace always maps the same way (whatever its row order).

Time: trace time ``road.start_s`` (default: the first timestep) is simulated t = 0. ``road.max_vehicles``
keeps the trace's first vehicles. ``road.loop``: copy k = 0, 1, ... of the trace is shifted by k x (span +
timestep) [s], for every copy that starts before ``duration_s``. Vehicles (of any copy) whose last timestep
is before t = 0 are left out; those already driving then enter at t_enter < 0. Ids follow copy by copy,
each in the trace's order.
"""
from __future__ import annotations

import functools
import gzip
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..errors import ScenarioError
from ..scenario import RSUConfig, SumoFcdRoad, TrafficConfig
from .mobility import MOBILITY, PathMobility, explicit_rsu_sites

__all__ = ["FcdMobility", "read_fcd", "tracks", "KEY"]

KEY = "world.road.trace"


def read_fcd(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of an FCD file: time [s], vehicle id (str), x [m], y [m], in file order.

    A missing or malformed file is a `ScenarioError` on ``world.road.trace`` (one line, with the line and
    column of an XML error); a ``.parquet`` file without pyarrow says which ``pip install`` to run.
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(KEY, f"trace file not found: {str(path)!r}")
    stat = path.stat()
    return _read_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`read_fcd` of one version of a file (keyed by its modification time and size), parsed once: validating
    a scenario, running it and planning a sweep's points all build the mobility model. Read-only arrays."""
    rows = _read_parquet(Path(path)) if path.lower().endswith(".parquet") else _read_xml(Path(path))
    for a in rows:
        a.setflags(write=False)
    return rows


def _read_xml(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    times: list[float] = []
    ids: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    root = None
    try:
        with opener(path, "rb") as f:
            for event, elem in ET.iterparse(f, events=("start", "end")):
                if root is None:
                    root = elem
                    if elem.tag != "fcd-export":
                        raise ScenarioError(KEY, f"{str(path)!r} is not a SUMO FCD file: its root element is "
                                                 f"<{elem.tag}>, expected <fcd-export>")
                if event != "end" or elem.tag != "timestep":
                    continue
                t = _number(path, elem, "time")
                for v in elem.iter("vehicle"):
                    vid = v.get("id")
                    if vid is None:
                        raise ScenarioError(KEY, f"{str(path)!r}: a vehicle at time {t:g} has no 'id'")
                    times.append(t)
                    ids.append(vid)
                    xs.append(_number(path, v, "x"))
                    ys.append(_number(path, v, "y"))
                root.clear()  # stream: drop the timesteps already read
    except ET.ParseError as exc:
        line, col = exc.position
        message = str(exc).split(":")[0]
        raise ScenarioError(KEY, f"malformed FCD XML in {str(path)!r} at line {line}, column {col + 1}: "
                                 f"{message}") from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ScenarioError(KEY, f"cannot read {str(path)!r}: {exc}") from None
    return (np.asarray(times, dtype=np.float64), np.asarray(ids, dtype=object),
            np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))


def _number(path: Path, elem: ET.Element, name: str) -> float:
    text = elem.get(name)
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        what = f"<{elem.tag} id={elem.get('id')!r}>" if elem.get("id") is not None else f"<{elem.tag}>"
        raise ScenarioError(KEY, f"{str(path)!r}: {what} has no numeric {name!r} (got {text!r})") from None
    if not math.isfinite(value):
        raise ScenarioError(KEY, f"{str(path)!r}: <{elem.tag}> has a non-finite {name!r} ({text!r})")
    return value


def _read_parquet(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    try:
        table = pd.read_parquet(path)
    except ImportError:
        raise ScenarioError(KEY, "reading a .parquet trace needs pyarrow: pip install 'vfedsim[parquet]'") from None
    except Exception as exc:  # noqa: BLE001 (pyarrow's errors have no common base we can import lazily)
        raise ScenarioError(KEY, f"cannot read {str(path)!r} as parquet: {type(exc).__name__}: {exc}") from None
    missing = [c for c in ("time", "id", "x", "y") if c not in table.columns]
    if missing:
        raise ScenarioError(KEY, f"{str(path)!r} lacks the columns {missing}; needs time, id, x, y")
    try:
        cols = [table[c].to_numpy(dtype=np.float64) for c in ("time", "x", "y")]
    except (TypeError, ValueError) as exc:
        raise ScenarioError(KEY, f"{str(path)!r}: time, x and y must be numeric ({exc})") from None
    if not all(np.isfinite(c).all() for c in cols):
        raise ScenarioError(KEY, f"{str(path)!r}: time, x and y must be finite")
    return cols[0], table["id"].astype(str).to_numpy(dtype=object), cols[1], cols[2]


def tracks(time_s: np.ndarray, ids: np.ndarray, x_m: np.ndarray, y_m: np.ndarray, *,
           max_vehicles: int | None = None) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Per-vehicle (names, times [s], points (K, 2) [m]) of FCD rows, vehicles ordered by first appearance,
    then id string; the first ``max_vehicles`` only."""
    if time_s.size == 0:
        return [], [], []
    names, code = np.unique(ids.astype(str), return_inverse=True)
    first = np.full(names.size, np.inf)
    np.minimum.at(first, code, time_s)
    order = np.lexsort((names, first))  # by first appearance, then id string
    if max_vehicles is not None:
        order = order[:max_vehicles]
    new_id = np.full(names.size, -1, dtype=np.int64)
    new_id[order] = np.arange(order.size)
    rows = np.flatnonzero(new_id[code] >= 0)
    rows = rows[np.lexsort((time_s[rows], new_id[code[rows]]))]
    vid, t = new_id[code[rows]], time_s[rows]
    same = (np.diff(vid) == 0) & (np.diff(t) == 0)
    if same.any():
        k = int(np.flatnonzero(same)[0])
        raise ScenarioError(KEY, f"vehicle {names[code[rows[k]]]!r} appears twice at time {t[k]:g}")
    cuts = np.searchsorted(vid, np.arange(1, order.size))
    times = np.split(t, cuts)
    points = np.split(np.stack([x_m[rows], y_m[rows]], axis=1), cuts)
    return [str(names[c]) for c in order], times, points


@MOBILITY.register("sumo-fcd")
class FcdMobility(PathMobility):
    """Vehicles replayed from the FCD trace of a `SumoFcdRoad` (see the module docstring); ``traffic`` is
    not used. ``names[i]`` is vehicle i's SUMO id (copy k of a looped trace repeats them)."""

    def __init__(self, road: SumoFcdRoad, traffic: TrafficConfig | None = None, *, seed: int = 0,
                 duration_s: float = math.inf) -> None:
        self.road = road
        time_s, ids, x_m, y_m = read_fcd(road.trace)
        if time_s.size == 0:
            raise ScenarioError(KEY, f"{road.trace!r} holds no vehicle positions")
        t0, t1 = float(time_s.min()), float(time_s.max())
        start = t0 if road.start_s is None else float(road.start_s)
        names, times, points = tracks(time_s, ids, x_m, y_m, max_vehicles=road.max_vehicles)
        every = np.unique(time_s)
        self.timestep_s = float(np.diff(every).min()) if every.size > 1 else 1.0  # [s]
        self.period_s = t1 - t0 + self.timestep_s  # [s] one replay of the trace, when looped
        self.bbox_m = np.array([[x_m.min(), y_m.min()], [x_m.max(), y_m.max()]])  # [m] lower-left, upper-right
        copies = 1
        if road.loop and math.isfinite(duration_s):
            copies = max(1, int(math.ceil((float(duration_s) - (t0 - start)) / self.period_s)))
        kept = [(k, i) for k in range(copies) for i in range(len(names))
                if times[i][-1] - start + k * self.period_s >= 0.0]
        if not kept:
            raise ScenarioError("world.road.start_s", f"no vehicle of the trace is left after trace time "
                                                      f"{start:g} s (the trace ends at {t1:g} s)")
        self.names = [names[i] for _, i in kept]
        self.copy = np.array([k for k, _ in kept], dtype=np.int64)  # which replay each vehicle belongs to
        times = [times[i] - start + k * self.period_s for k, i in kept]
        points = [points[i] for _, i in kept]
        super().__init__(PathMobility.trips_from(times, points), times, points)

    def rsu_sites(self, rsus: RSUConfig) -> np.ndarray:
        """(R, 2) RSU positions [m]: ``rsus.positions_m`` if given, else a square lattice of pitch
        ``spacing_m`` over the trace's bounding box, from ``first_at_m`` past its lower-left corner in x and
        y (row by row, x fastest)."""
        sites = explicit_rsu_sites(rsus)
        if sites is not None:
            return sites
        (x0, y0), (x1, y1) = self.bbox_m
        xs = np.arange(x0 + rsus.first_at_m, x1 + 1e-9, rsus.spacing_m)
        ys = np.arange(y0 + rsus.first_at_m, y1 + 1e-9, rsus.spacing_m)
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1)
