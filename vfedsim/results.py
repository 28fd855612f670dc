"""Reading finished run and sweep directories back: `load_run` and `load_sweep`.

These read files only (no engine, no torch), so a run can be analysed anywhere its directory is copied::

    import vfedsim
    run = vfedsim.load_run("runs/quickstart-seed0-20250101-120000")
    run.rounds[["round", "sim_time_s", "mean.accuracy"]]     # rounds.csv
    run.events.query("kind == 'dropped'").cause.value_counts() # events.csv (or .parquet)
    sweep = vfedsim.load_sweep("sweeps/accuracy_vs_bandwidth-20250101-120000")
    sweep.results                                               # results.csv: one row per run
    sweep.runs["<point-id>-seed0"].events                       # any run's tables, read on first use

Every column and event kind is described in docs/outputs.md.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

from .errors import ScenarioError

__all__ = ["load_run", "load_sweep", "SweepResult", "RunResult", "is_run_dir", "is_sweep_dir"]


@dataclass(frozen=True)
class RunResult:
    """A run directory and the tables it holds: what `run` returns and `vfedsim.load_run` reads back.

    ``rounds`` (rounds.csv), ``summary`` (summary.json), ``events`` (events.csv or .parquet), ``vehicles``
    (vehicles.csv, index ``vehicle``), ``config`` (config.yaml: the resolved scenario as plain data),
    ``tracks`` (tracks.csv: sampled positions, or None when the run wrote none) and ``world`` (world.json: road
    geometry, RSU sites and coverage radius, or None). Columns: docs/outputs.md.
    """

    out_dir: Path
    rounds: pd.DataFrame
    summary: dict[str, Any]
    events: pd.DataFrame | None = None
    vehicles: pd.DataFrame | None = None
    config: dict[str, Any] | None = None
    tracks: pd.DataFrame | None = None
    world: dict[str, Any] | None = None


def is_run_dir(path: str | Path) -> bool:
    """A finished run directory: rounds.csv and summary.json (written last) are there."""
    path = Path(path)
    return (path / "rounds.csv").is_file() and (path / "summary.json").is_file()


def is_sweep_dir(path: str | Path) -> bool:
    """A finished sweep directory: results.csv (written last) is there."""
    return (Path(path) / "results.csv").is_file()


def _read_events(run_dir: Path) -> Any:
    import pandas as pd

    if (run_dir / "events.parquet").is_file():
        events = pd.read_parquet(run_dir / "events.parquet")
    elif (run_dir / "events.csv").is_file():
        events = pd.read_csv(run_dir / "events.csv")
    else:
        return None
    if "cause" in events.columns:  # an empty cause is "" (CSV reads it back as NaN)
        events["cause"] = events["cause"].astype(object).where(events["cause"].notna(), "").astype(str)
    return events


def load_run(run_dir: str | Path) -> RunResult:
    """Read a finished run directory (written by `vfedsim.run` or ``vfedsim run``) into a `RunResult`.

    ``rounds``, ``events``, ``vehicles`` (index ``vehicle``) and ``tracks`` are pandas DataFrames, ``summary``
    and ``world`` dicts, ``config`` the resolved scenario as plain data (``vfedsim.scenario.parse_scenario``
    turns it back into a `Scenario`). ``tracks`` and ``world`` are None for runs written before they existed
    or with ``output.tracks: none``. Raises `ScenarioError` (key ``run_dir``) when the directory is not a
    finished run (a run still writing, or stopped part-way, has no summary.json yet).
    """
    import pandas as pd
    import yaml

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ScenarioError("run_dir", f"not a directory: {str(run_dir)!r}")
    if not is_run_dir(run_dir):
        missing = "rounds.csv" if not (run_dir / "rounds.csv").is_file() else "summary.json"
        raise ScenarioError("run_dir", f"{str(run_dir)!r} is not a finished run directory (no {missing}; "
                                       "summary.json is written last)")
    vehicles = None
    if (run_dir / "vehicles.csv").is_file():
        vehicles = pd.read_csv(run_dir / "vehicles.csv", index_col="vehicle")
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else None
    tracks = pd.read_csv(run_dir / "tracks.csv") if (run_dir / "tracks.csv").is_file() else None
    world = json.loads((run_dir / "world.json").read_text()) if (run_dir / "world.json").is_file() else None
    return RunResult(out_dir=run_dir, rounds=pd.read_csv(run_dir / "rounds.csv"),
                     summary=json.loads((run_dir / "summary.json").read_text()), events=_read_events(run_dir),
                     vehicles=vehicles, config=config, tracks=tracks, world=world)


class _Runs(Mapping[str, RunResult]):
    """Run directory name -> `RunResult`, each read on first access."""

    def __init__(self, sweep_dir: Path, names: list[str]) -> None:
        self._dir, self._names, self._cache = sweep_dir, names, {}

    def __getitem__(self, name: str) -> RunResult:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._cache:
            self._cache[name] = load_run(self._dir / "runs" / name)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep directory: ``results`` (results.csv, one row per run: point_id, the grid keys,
    seed, run_dir, the last rounds.csv row), ``rounds`` (every run's rounds with point_id, grid keys and seed
    in front), ``experiment`` (experiment.yaml as data), ``grid_keys`` and ``runs`` (run directory name ->
    `RunResult`, read on first use)."""

    out_dir: Path
    results: Any
    rounds: Any
    experiment: dict[str, Any]
    grid_keys: list[str]
    runs: Mapping[str, RunResult] = field(repr=False)

    def run(self, index: int) -> RunResult:
        """The run of ``results`` row ``index``."""
        return self.runs[Path(str(self.results["run_dir"].iloc[index])).name]


def load_sweep(sweep_dir: str | Path) -> SweepResult:
    """Read a finished sweep directory (``vfedsim sweep``) into a `SweepResult`. Raises `ScenarioError` (key
    ``sweep_dir``) when it is not one (results.csv is written when every run has finished)."""
    import pandas as pd
    import yaml

    sweep_dir = Path(sweep_dir)
    if not is_sweep_dir(sweep_dir):
        hint = " (it is a run directory: use load_run)" if is_run_dir(sweep_dir) else ""
        raise ScenarioError("sweep_dir", f"{str(sweep_dir)!r} is not a finished sweep directory (no "
                                         f"results.csv){hint}")
    results = pd.read_csv(sweep_dir / "results.csv")
    rounds = pd.read_csv(sweep_dir / "rounds.csv") if (sweep_dir / "rounds.csv").is_file() else None
    experiment: dict[str, Any] = {}
    if (sweep_dir / "experiment.yaml").is_file():
        experiment = yaml.safe_load((sweep_dir / "experiment.yaml").read_text()) or {}
    grid = experiment.get("grid") or {}
    grid_keys = [k for k in grid if k in results.columns]
    names = [Path(str(p)).name for p in results["run_dir"]] if "run_dir" in results.columns else []
    return SweepResult(out_dir=sweep_dir, results=results, rounds=rounds, experiment=experiment,
                       grid_keys=grid_keys, runs=_Runs(sweep_dir, names))
