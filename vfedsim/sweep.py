"""Sweeps: an experiment grid x seeds -> one run directory per point and seed, plus tidy result tables.

An experiment file (YAML) names a base scenario and the keys to vary::

    name: accuracy_vs_bandwidth
    base: ../scenarios/tiny.yaml          # the scenario every point starts from (relative to this file)
    set: ["strategy.rounds=4"]             # fixed --set overrides applied to every point (optional)
    grid:                                  # cartesian product of dotted keys -> lists of values
      world.channel.bandwidth_hz: [2.0e5, 1.0e6, 5.0e6]
      strategy.selection.name: [random, coverage]
    seeds: [0, 1]                          # scenario seeds; every point runs once per seed (optional:
                                           # without it each point runs once with the base file's seed)

A sweep directory holds::

    experiment.yaml              the resolved experiment (absolute base path); `vfedsim sweep` reruns it
    runs/<point-id>-seed<k>/     one run directory per point and seed (see `vfedsim.engine.run`)
    results.csv                  one row per run: point_id, the grid keys, seed, run_dir, and the final
                                 (last-row) value of every rounds.csv column
    rounds.csv                   every round of every run, with point_id, the grid keys and seed in front
    plots/                       drawn by `vfedsim.plot.plot_sweep`

Every point is validated (`vfedsim.engine.load_scenario`) before any runs, so a bad point fails before
anything is written. The result tables are built from the run directories alone, which makes *how* runs are
executed a seam: an `Executor` receives the planned `RunTask`s and yields them as they finish. Local processes
are built in (`execute_local`); `execute_ray` runs them as Ray tasks, on a local Ray instance or a cluster
(``vfedsim sweep --executor ray [--ray-address ADDR]``, extra ``vfedsim[ray]``). ``resume=True``
(``vfedsim sweep --resume --out DIR``) continues a half-finished sweep: complete run directories are kept and
only the others run.
Results do not depend on the executor or on the number of jobs: each run is fully determined by its scenario
and seed, and the tables are ordered by the plan, not by completion.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ScenarioError, VfedsimError
from .record import FLOAT_FORMAT, atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .scenario import Scenario

__all__ = [
    "Experiment", "Point", "RunTask", "Executor", "load_experiment", "expand_grid", "plan_runs", "run_sweep",
    "execute_local", "execute_ray", "connect_ray", "execute_run", "collect_results", "is_finished",
]

_DOTTED_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*$")


# ------------------------------------------------------------------------------------------ experiment
class Experiment(BaseModel):
    """A validated experiment: a base scenario, fixed overrides, a grid of dotted keys and seeds."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str
    base: Path
    overrides: tuple[str, ...] = Field(default=(), alias="set")
    grid: dict[str, tuple[Any, ...]] = Field(default_factory=dict)
    seeds: tuple[Annotated[int, Field(ge=0)], ...] | None = Field(default=None, min_length=1)

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_lists(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            raise ValueError("must map dotted keys to lists of values")
        for key, values in v.items():
            if not isinstance(key, str) or not _DOTTED_KEY.match(key):
                raise ValueError(f"{key!r} is not a dotted key such as world.channel.bandwidth_hz")
            if key == "seed":
                raise ValueError("vary the seed with the top-level `seeds` list, not in the grid")
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"{key}: needs a non-empty list of values, got {values!r}")
            canon = [_canonical(x) for x in values]
            if len(set(canon)) != len(canon):
                raise ValueError(f"{key}: values must be distinct, got {list(values)}")
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {list(v)}")
        return v

    @property
    def points(self) -> list["Point"]:
        return expand_grid(self.grid)

    def to_dict(self) -> dict[str, Any]:
        """The experiment as plain data, as written to ``experiment.yaml`` (base as an absolute path)."""
        return {"name": self.name, "base": str(self.base), "set": list(self.overrides),
                "grid": {k: list(v) for k, v in self.grid.items()},
                "seeds": list(self.seeds) if self.seeds is not None else None}


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats: ``5e4`` is a number (PyYAML's YAML 1.1 resolver reads it as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment YAML file. ``base`` is resolved relative to the file.

    Every failure is a `ScenarioError` with the key path (``grid.world.channel.bandwidth_hz``, ``seeds``).
    The points themselves are validated against the scenario schema by `plan_runs`.
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioError("experiment", f"file not found: {str(path)!r}")
    try:
        raw = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError("experiment", f"malformed YAML in {str(path)!r}{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ScenarioError("experiment", f"{str(path)!r} must be a mapping with keys name, base, set, grid, seeds")
    raw = dict(raw)
    raw.setdefault("name", path.stem)
    if "base" not in raw:
        raise ScenarioError("base", "required key is missing (the scenario file every point starts from)")
    if isinstance(raw["base"], str):
        base = Path(raw["base"]).expanduser()
        base = base if base.is_absolute() else path.resolve().parent / base
        if not base.is_file():
            raise ScenarioError("base", f"scenario file not found: {str(base)!r}")
        raw["base"] = base.resolve()
    if isinstance(raw.get("set"), str):
        raw["set"] = [raw["set"]]
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        raise _experiment_error(exc) from None


def _experiment_error(exc: ValidationError) -> ScenarioError:
    err = exc.errors(include_url=False)[0]
    key_path = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return ScenarioError(key_path, "unknown key", allowed=["name", "base", "set", "grid", "seeds"],
                             value=err["loc"][-1])
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    else:
        message += f" (got {err.get('input')!r})"
    return ScenarioError(key_path, message[:1].lower() + message[1:])


# ---------------------------------------------------------------------------------------------- points
def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _yaml_value(value: Any) -> str:
    """``value`` as the one-line YAML text that ``--set key=TEXT`` parses back to ``value``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31 - 1).strip()
    return text[:-3].strip() if text.endswith("\n...") or text.endswith("...") else text


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):  # the shorter of 250000 and 2.5e5
        plain = f"{value:g}"
        mantissa, exponent = f"{value:.6e}".split("e")
        sci = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return sci if len(sci) < len(plain) else plain
    if isinstance(value, str):
        return value
    return _canonical(value)


@dataclass(frozen=True)
class Point:
    """One point of the grid: dotted keys and their values, in the experiment's key order."""

    values: tuple[tuple[str, Any], ...]

    @property
    def overrides(self) -> tuple[str, ...]:
        """``key=value`` strings for `load_scenario(overrides=...)`."""
        return tuple(f"{key}={_yaml_value(value)}" for key, value in self.values)

    @property
    def point_id(self) -> str:
        """A short readable slug plus a stable hash of the values: ``bandwidth_hz-1e6_selection-random-1a2b3c4d``.

        The hash is over the sorted (key, value) pairs, so it does not change with key order or between
        Python processes. A grid with no keys has the single point ``base-<hash>``.
        """
        digest = hashlib.sha1(_canonical(sorted(self.values, key=lambda kv: kv[0])).encode()).hexdigest()[:8]
        tokens = []
        for key, value in self.values:
            parts = key.split(".")
            label = parts[-2] if len(parts) > 1 and parts[-1] in ("name", "model", "profile") else parts[-1]
            tokens.append(f"{label}-{_short(value)}")
        slug = re.sub(r"[^A-Za-z0-9._+-]+", "_", "_".join(tokens)).strip("._-")[:60] or "base"
        return f"{slug}-{digest}"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[Point]:
    """The cartesian product of the grid, the last key varying fastest; ``{}`` gives one empty point."""
    keys = list(grid)
    return [Point(tuple(zip(keys, combo))) for combo in itertools.product(*(grid[k] for k in keys))]


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep: a validated scenario and the directory it writes (``runs/<point-id>-seed<k>``)."""

    index: int
    point: Point
    seed: int
    scenario: "Scenario"
    run_dir: Path

    @property
    def name(self) -> str:
        return self.run_dir.name


def plan_runs(experiment: Experiment, *, out_dir: str | Path) -> list[RunTask]:
    """Validate every point x seed against the scenario schema and registries; write nothing.

    Raises the first `ScenarioError`, with the point named in the message. Plugins that the base scenario
    or the grid names must already be loaded (`vfedsim.registry.load_plugins`).
    """
    from .engine import load_scenario

    out_dir = Path(out_dir)
    tasks: list[RunTask] = []
    seeds: Sequence[int | None] = experiment.seeds if experiment.seeds is not None else (None,)
    for point in experiment.points:
        for seed in seeds:
            try:
                scenario = load_scenario(experiment.base, overrides=(*experiment.overrides, *point.overrides),
                                         seed=seed)
            except ScenarioError as exc:
                where = f" (sweep point {point.point_id}" + (f", seed {seed})" if seed is not None else ")")
                raise ScenarioError(exc.key_path, exc.problem + where, allowed=exc.allowed,
                                    value=point.as_dict().get(exc.key_path)) from None
            run_dir = out_dir / "runs" / f"{point.point_id}-seed{scenario.seed}"
            tasks.append(RunTask(index=len(tasks), point=point, seed=scenario.seed, scenario=scenario,
                                 run_dir=run_dir))
    return tasks


# ------------------------------------------------------------------------------------------- executors
Executor = Callable[..., Iterator[RunTask]]
"""``executor(tasks, *, jobs, progress, plugins) -> iterator of tasks as they finish``.

An executor runs each task with `execute_run` (or anything that leaves the same run directory) and yields the
task once its run directory is complete, in any order. A failure is raised as `VfedsimError` naming the run.
``plugins`` are the plugin files to load in any fresh process before running. Resuming is not the executor's
business: `run_sweep` hands it only the unfinished tasks.
"""


def execute_run(task: RunTask, progress: bool = False) -> Path:
    """Run one task in this process: `vfedsim.engine.run`, then its plots and report.html if ``output.plots``
    is true."""
    from .engine import run

    # the sweep owns its run directories: one left half-written by a stopped sweep is written over (resume)
    stale = task.run_dir.is_dir() and any(task.run_dir.iterdir())
    run(task.scenario, out_dir=task.run_dir, progress=progress, **({"overwrite": True} if stale else {}))
    if task.scenario.output.plots:
        from .plot import plot_run
        from .report import write_report

        plot_run(task.run_dir)
        write_report(task.run_dir)
    return task.run_dir


_WORKER_PLUGINS_LOADED = False


def _init_worker(plugins: tuple[str, ...]) -> None:
    global _WORKER_PLUGINS_LOADED
    if plugins and not _WORKER_PLUGINS_LOADED:
        from .registry import load_plugins

        load_plugins(plugins)
    _WORKER_PLUGINS_LOADED = True


def _warm_caches(tasks: Sequence[RunTask], *, progress: bool) -> None:
    """Build each distinct data set and pretrained model once, here, before processes start using them.

    Otherwise parallel workers would all generate the same cache entry at once.
    """
    from .learn.pretrain import ensure_pretrained

    seen: set[str] = set()
    for task in tasks:
        key = task.scenario.learning.model_dump_json()
        if key not in seen:
            seen.add(key)
            ensure_pretrained(task.scenario.learning, progress=progress)


def _mp_context() -> multiprocessing.context.BaseContext:
    """forkserver where the platform has it, spawn elsewhere: never fork a process that may hold torch threads."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def execute_local(tasks: Sequence[RunTask], *, jobs: int = 1, progress: bool = True,
                  plugins: Sequence[str | Path] = ()) -> Iterator[RunTask]:
    """Run tasks in this process (``jobs == 1``) or in ``jobs`` fresh local processes."""
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            try:
                execute_run(task, progress=progress)
            except (VfedsimError, KeyboardInterrupt):
                raise
            except Exception as exc:
                raise VfedsimError(f"run {task.name} failed: {type(exc).__name__}: {exc}") from exc
            yield task
        return
    _warm_caches(tasks, progress=progress)
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=_mp_context(),
                             initializer=_init_worker, initargs=(tuple(str(p) for p in plugins),)) as pool:
        pending = {pool.submit(execute_run, task): task for task in tasks}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    task = pending.pop(future)
                    exc = future.exception()
                    if exc is not None:
                        if isinstance(exc, VfedsimError):
                            raise VfedsimError(f"run {task.name} failed: {exc}") from exc
                        raise VfedsimError(f"run {task.name} failed: {type(exc).__name__}: {exc}") from exc
                    yield task
        finally:
            for future in pending:
                future.cancel()


def _run_elsewhere(task: RunTask, plugins: tuple[str, ...]) -> dict[str, bytes]:
    """Run ``task`` in a temporary directory (on whatever machine this is) and return its run directory's
    files, by path relative to it. A run directory holds no absolute paths, so it can be written anywhere."""
    _init_worker(plugins)
    with tempfile.TemporaryDirectory(prefix="vfedsim-run-") as tmp:
        run_dir = Path(tmp) / task.name
        execute_run(replace(task, run_dir=run_dir))
        return {p.relative_to(run_dir).as_posix(): p.read_bytes()
                for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _write_run(run_dir: Path, files: Mapping[str, bytes]) -> None:
    """Write a run directory's files (each atomically), ``summary.json`` last: `is_finished` relies on it."""
    for rel in sorted(files, key=lambda name: name == "summary.json"):
        atomic_write_bytes(run_dir / rel, files[rel])


def connect_ray(address: str | None = None, *, jobs: int = 1, progress: bool = True) -> bool:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``; "auto": one running on this machine; a
    ``HOST:PORT`` head or ``ray://HOST:PORT`` client server), else start a local Ray instance with ``jobs``
    CPUs. True when this call initialised Ray (the caller shuts it down), False when it already was.

    A head that does not answer within 5 s is an error at once, rather than Ray's minutes of retries. Raises
    `ScenarioError` on ``--ray-address`` (nothing is run or written), `VfedsimError` without Ray installed.
    """
    try:
        import ray
    except ImportError:
        raise VfedsimError("the ray executor needs Ray: pip install 'vfedsim[ray]'") from None
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    allowed = ["auto", "HOST:PORT (a running Ray head)", "ray://HOST:PORT (a Ray client server)"]
    if address not in (None, "auto"):
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            import socket

            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5.0).close()
        except (OSError, ValueError) as exc:
            raise ScenarioError("--ray-address", f"no Ray cluster answers at {address!r} ({exc})",
                                allowed=allowed, value=address) from None
    local = {} if address else {"num_cpus": max(1, int(jobs)), "include_dashboard": False}
    try:
        ray.init(address=address, log_to_driver=progress, configure_logging=False, **local)
    except ConnectionError as exc:
        raise ScenarioError("--ray-address", f"{str(exc).splitlines()[0]}", allowed=allowed,
                            value=address) from None
    return True


def execute_ray(tasks: Sequence[RunTask], *, jobs: int = 1, progress: bool = True,
                plugins: Sequence[str | Path] = (), address: str | None = None) -> Iterator[RunTask]:
    """Run tasks as Ray tasks (one CPU each): on the cluster at ``address`` (or ``RAY_ADDRESS``; "auto" finds
    a running one), else on a local Ray instance with ``jobs`` CPUs that is shut down afterwards.

    Each run happens in a fresh worker process, in a temporary directory; its files come back to this
    process, which writes the run directory (summary.json last), so the nodes need no shared file system.
    Every node needs the same vfedsim installed, and what a scenario reads (an FCD trace, plugin files) at
    the same path. Data sets and pretrained models are built here first (`_warm_caches`); another node builds
    its own copy on first use (the same bytes: they depend only on the scenario). The results are those of
    `execute_local`.
    """
    tasks = list(tasks)
    if not tasks:
        return
    started = connect_ray(address, jobs=jobs, progress=progress)
    import ray

    _warm_caches(tasks, progress=progress)
    # a fresh worker process per run (max_calls=1), as a run gets locally: plugins and module state never
    # leak from one run or sweep into the next
    remote = ray.remote(num_cpus=1, max_retries=0, max_calls=1)(_run_elsewhere)
    plugin_paths = tuple(str(Path(p).resolve()) for p in plugins)
    pending = {remote.remote(task, plugin_paths): task for task in tasks}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    files = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    if isinstance(cause, VfedsimError):
                        raise VfedsimError(f"run {task.name} failed: {cause}") from cause
                    raise VfedsimError(f"run {task.name} failed: {type(cause).__name__}: {cause}") from cause
                _write_run(task.run_dir, files)
                yield task
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------- tables
def _dig(data: Any, key: str) -> Any:
    node = data
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(key)
    return node


def _grid_values(task: RunTask) -> dict[str, Any]:
    """The grid values as the validated scenario holds them (``5e4`` -> 50000.0), else as written."""
    resolved = task.scenario.to_dict()
    out = {}
    for key, value in task.point.values:
        try:
            out[key] = _dig(resolved, key)
        except KeyError:
            out[key] = value
    return out


def collect_results(tasks: Sequence[RunTask], *, out_dir: str | Path,
                    grid_keys: Sequence[str]) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """``(results, rounds)`` built from the finished run directories, ordered by task index."""
    import pandas as pd

    out_dir = Path(out_dir)
    result_rows, round_tables = [], []
    for task in sorted(tasks, key=lambda t: t.index):
        rounds = pd.read_csv(task.run_dir / "rounds.csv")
        ident = {"point_id": task.point.point_id, **_grid_values(task), "seed": task.seed}
        run_dir = os.path.relpath(task.run_dir, out_dir)
        final = rounds.iloc[-1].to_dict() if len(rounds) else {}
        result_rows.append({**ident, "run_dir": run_dir, **final})
        front = pd.DataFrame({k: [v] * len(rounds) for k, v in ident.items()}, index=rounds.index)
        round_tables.append(pd.concat([front, rounds], axis=1))
    ident_cols = ["point_id", *grid_keys, "seed"]
    results = pd.DataFrame(result_rows)
    rounds_all = pd.concat(round_tables, ignore_index=True) if round_tables else pd.DataFrame(columns=ident_cols)
    return results, rounds_all


# ---------------------------------------------------------------------------------------------- sweep
def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ScenarioError("out_dir", f"{str(out_dir)!r} exists and is not an empty directory; "
                                       "choose another one (a sweep never overwrites)")


def _experiment_text(experiment: Experiment) -> str:
    return yaml.safe_dump(experiment.to_dict(), sort_keys=False)


def _check_resumable(out_dir: Path, experiment: Experiment) -> None:
    """A sweep directory can be resumed only by the experiment that wrote it (same base, set, grid, seeds)."""
    written = out_dir / "experiment.yaml"
    if not written.is_file():
        if out_dir.exists() and any(out_dir.iterdir()):
            raise ScenarioError("out_dir", f"{str(out_dir)!r} is not a sweep directory (no experiment.yaml); "
                                           "--resume continues a sweep that `vfedsim sweep --out` started")
        return
    body = "".join(line for line in written.read_text().splitlines(keepends=True) if not line.startswith("#"))
    if yaml.safe_load(body) != yaml.safe_load(_experiment_text(experiment)):
        raise ScenarioError("out_dir", f"{str(out_dir)!r} holds a different experiment (base, set, grid or "
                                       "seeds differ); resume it with the experiment that started it, or "
                                       "choose another directory")


def is_finished(task: RunTask) -> bool:
    """Whether ``task``'s run directory is complete: ``summary.json`` (written last, atomically) is there and
    ``config.yaml`` is the task's scenario (plots too, where the scenario asks for them)."""
    run_dir = task.run_dir
    if not (run_dir / "summary.json").is_file() or not (run_dir / "config.yaml").is_file():
        return False
    if yaml.safe_load((run_dir / "config.yaml").read_text()) != yaml.safe_load(
            yaml.safe_dump(task.scenario.to_dict(), sort_keys=False)):
        return False
    return not task.scenario.output.plots or (run_dir / "plots").is_dir()


def run_sweep(experiment: Experiment, *, out_dir: str | Path, jobs: int = 1, progress: bool = True,
              plugins: Iterable[str | Path] = (), executor: Executor | None = None,
              resume: bool = False, tensorboard: str | Path | None = None) -> "pd.DataFrame":
    """Validate every point, run every point x seed, and write the sweep directory; returns ``results``.

    ``out_dir`` must not exist or be empty, unless ``resume``: then it may hold a sweep of the same
    experiment that stopped part-way (interrupted, a failed run, a lost machine), and only the runs whose
    directory is not complete (`is_finished`) run again; the results are those of an uninterrupted sweep,
    since each run depends only on its scenario. ``jobs`` > 1 runs that many local processes
    (forkserver/spawn); the results do not depend on it. ``plugins`` are the plugin files already loaded in
    this process (they are needed to validate the points): worker processes load them again. ``executor``
    defaults to `execute_local`. ``tensorboard``: a folder where each run is logged as it finishes
    (``<tensorboard>/<point-id>-seed<k>``, `vfedsim.tracking.log_run_dir`). With ``progress``, one bar over
    the runs with an ETA (the runs' own bars are off). Raises `ScenarioError` before writing anything if a
    point is invalid,
    `VfedsimError` if a run fails (finished run directories stay in place, ready for ``resume``).
    """
    out_dir = Path(out_dir)
    plugins = tuple(str(p) for p in plugins)
    tasks = plan_runs(experiment, out_dir=out_dir)
    if resume:
        _check_resumable(out_dir, experiment)
    else:
        _check_out_dir(out_dir)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    header = (f"# Resolved by `vfedsim sweep` on {time.strftime('%Y-%m-%d %H:%M:%S')}: "
              f"{len(experiment.points)} points x {len(experiment.seeds or (None,))} seeds = {len(tasks)} runs.\n")
    if not (resume and (out_dir / "experiment.yaml").is_file()):
        atomic_write_text(out_dir / "experiment.yaml", header + _experiment_text(experiment))
    todo = [t for t in tasks if not (resume and is_finished(t))]
    jobs = max(1, int(jobs))
    if progress:
        skipped = f" ({len(tasks) - len(todo)} already finished)" if resume else ""
        print(f"sweep {experiment.name}: {len(experiment.points)} points x {len(experiment.seeds or (None,))} "
              f"seeds = {len(tasks)} runs{skipped}, {min(jobs, max(len(todo), 1))} at a time -> {out_dir}",
              file=sys.stderr)
    run_all = executor or execute_local
    if tensorboard is not None:
        from .tracking import require_tensorboard

        require_tensorboard()  # before any run, when the package is missing
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"sweep {experiment.name}", unit="run", dynamic_ncols=True,
                   file=sys.stderr)
    finished: list[RunTask] = []
    try:
        for task in (run_all(todo, jobs=jobs, progress=False, plugins=plugins) if todo else ()):
            finished.append(task)
            if tensorboard is not None:
                from .tracking import log_run_dir

                log_run_dir(task.run_dir, tensorboard)
            if bar is not None:
                bar.set_postfix_str(f"last: {task.name}", refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    results, rounds = collect_results(tasks, out_dir=out_dir, grid_keys=list(experiment.grid))
    atomic_write_text(out_dir / "rounds.csv", rounds.to_csv(index=False, float_format=FLOAT_FORMAT))
    atomic_write_text(out_dir / "results.csv", results.to_csv(index=False, float_format=FLOAT_FORMAT))
    return results
