"""The one place that wires a Scenario into World, Fleet, Learning, Strategy and Recorder on one clock.

Read a run top to bottom: `load_scenario` (validation, registry names) -> `run` builds the mobility model,
the radio and the network, the fleet, the learner (data + pretrained foundation model + PEFT), the
selection policy, the aggregator and the strategy, runs the SimPy environment, and has the recorder write
the run directory.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ScenarioError
from .policies import make_aggregator, make_selector
from .record import Recorder
from .results import RunResult
from .rng import stream
from .scenario import Scenario, load_scenario_file
from .strategies.base import STRATEGIES, StrategyContext

__all__ = ["RunResult", "load_scenario", "check_scenario", "run"]


def check_scenario(scenario: Scenario, *, mobility: Any | None = None) -> None:
    """Resolve every registry name the scenario uses (raises `ScenarioError` listing the allowed names),
    and build the mobility model (unless given) to check its trace and RSU sites."""
    from . import strategies  # noqa: F401  (registers the built-in strategies)

    STRATEGIES.get(scenario.strategy.name)
    make_selector(scenario.strategy.selection.name, scenario.strategy.selection.options)
    make_aggregator(scenario.strategy.aggregation.name, scenario.strategy.aggregation.options)
    from .fleet import check_fleet

    check_fleet(scenario)  # fleet.task_sets name tasks of learning.tasks
    n_rsus = _count_rsus(scenario, mobility if mobility is not None else build_mobility(scenario))
    if n_rsus == 0 and scenario.world.road.name == "highway":
        raise ScenarioError("world.rsus.first_at_m", f"no RSU lies on the road (length "
                            f"{scenario.world.road.length_m:g} m): first_at_m must be <= length_m")
    if n_rsus == 0:
        raise ScenarioError("world.rsus", f"no RSU site on the {scenario.world.road.name!r} road: set "
                            "positions_m, or a smaller first_at_m / spacing_m")
    if scenario.strategy.clients_per_round > 10_000:
        raise ScenarioError("strategy.clients_per_round", "must be at most 10000")


def build_mobility(scenario: Scenario) -> Any:
    """The scenario's mobility model (`vfedsim.world.mobility.MobilityModel`), by ``world.road.name``."""
    from .world.mobility import MOBILITY

    return MOBILITY.get(scenario.world.road.name)(scenario.world.road, scenario.world.traffic,
                                                  seed=scenario.seed, duration_s=scenario.duration_s)


def _count_rsus(scenario: Scenario, mobility: Any) -> int:
    return int(mobility.rsu_sites(scenario.world.rsus).shape[0])


def load_scenario(path: str | Path, *, overrides: Iterable[str] = (), seed: int | None = None) -> Scenario:
    """Read and fully validate a scenario file (schema and registry names). Never imports torch."""
    scenario = load_scenario_file(path, overrides=overrides, seed=seed)
    check_scenario(scenario)
    return scenario


def _network(env: Any, scenario: Scenario, mobility: Any, recorder: Recorder) -> Any:
    from .network import FluidNetwork, IdealNetwork
    from .world.radio import Radio

    net = scenario.world.network
    if net.model == "ideal":
        return IdealNetwork(env, rate_bps=net.ideal_rate_bps, on_event=recorder.network_event)
    channel = scenario.world.channel
    radio = Radio(profile=channel, rsu_xy=mobility.rsu_sites(scenario.world.rsus),
                  rsu_height_m=scenario.world.rsus.height_m, seed=scenario.seed)
    return FluidNetwork(env, mobility=mobility, radio=radio, config=net, uplink_hz=channel.bandwidth_hz,
                        downlink_hz=channel.downlink_hz, on_event=recorder.network_event)


def check_out_dir(out_dir: str | Path, *, overwrite: bool = False, key: str = "out_dir") -> None:
    """Refuse to write into ``out_dir`` when it is a file, or a directory that is not empty (unless
    ``overwrite``): a `ScenarioError` on ``key``, before anything is written."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ScenarioError(key, f"{str(path)!r} exists and is not a directory")
    if not overwrite and path.is_dir() and any(path.iterdir()):
        raise ScenarioError(key, f"{str(path)!r} is not empty; choose a new directory, or pass overwrite=True "
                                 "to write over the files of the run it holds")


def run(scenario: Scenario, *, out_dir: str | Path, progress: bool = True,
        learner: Any | None = None, on_round: Callable[[dict], None] | None = None,
        overwrite: bool = False, tensorboard: str | Path | None = None) -> RunResult:
    """Simulate ``scenario`` and write its run directory to ``out_dir``.

    ``out_dir`` must not exist or be empty, as on the command line, unless ``overwrite`` is true: then the
    files of a run that it holds are written over. ``learner`` may be given to reuse an already built
    `vfedsim.learn.train.Learner` (benchmarks, tests); ``on_round`` is called with every rounds.csv row as it
    is recorded. ``tensorboard``: a folder to log this run to TensorBoard in (``<tensorboard>/<run dir
    name>``); ``output.tensorboard: true`` logs to ``<out_dir>/tensorboard`` (`vfedsim.tracking`).
    The returned `RunResult` holds every table of the run directory.
    """
    import simpy

    from .fleet import build_fleet
    from .learn.data import shard_indices

    mobility = build_mobility(scenario)
    check_scenario(scenario, mobility=mobility)
    check_out_dir(out_dir, overwrite=overwrite)
    wall_start = time.perf_counter()
    out_dir = Path(out_dir)
    board = None
    if tensorboard is not None or scenario.output.tensorboard:
        from .tracking import TensorBoardLogger

        board = TensorBoardLogger.for_run(out_dir, scenario, root=tensorboard)  # fails before the run if missing
    if learner is None:
        from .learn.train import Learner

        learner = Learner(scenario.learning, seed=scenario.seed, progress=progress)
    wall_setup = time.perf_counter() - wall_start

    env = simpy.Environment()
    bar = _progress_bar(scenario) if progress else None
    listeners = [lst for lst in (on_round, bar.update_row if bar else None, board.log_row if board else None)
                 if lst is not None]
    recorder = Recorder(now=lambda: env.now, listeners=listeners)
    trips = mobility.trips
    fleet = build_fleet(scenario, trips.n)
    network = _network(env, scenario, mobility, recorder)
    pool = learner.bundle.pool
    data_cfg = scenario.learning.data
    shard_cache: dict[int, np.ndarray] = {}

    def shards(v: int) -> np.ndarray:
        if v not in shard_cache:
            shard_cache[v] = shard_indices(pool, home_group=int(fleet.home_group[v]),
                                           n_samples=int(fleet.n_samples[v]), home_fraction=data_cfg.home_fraction,
                                           rng=stream(scenario.seed, "shard", v), label_skew=data_cfg.label_skew)
        return shard_cache[v]

    ctx = StrategyContext(env=env, scenario=scenario, network=network, mobility=mobility, fleet=fleet,
                          learner=learner,
                          selector=make_selector(scenario.strategy.selection.name, scenario.strategy.selection.options),
                          aggregator=make_aggregator(scenario.strategy.aggregation.name,
                                                     scenario.strategy.aggregation.options),
                          recorder=recorder, shards=shards)
    strategy = STRATEGIES.get(scenario.strategy.name)(ctx)
    done = env.process(strategy.run())
    try:
        env.run(until=done)
    finally:
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()

    vehicles = pd.DataFrame({
        "device_class": [fleet.device_name(v) for v in range(fleet.n)],
        "home_group": fleet.home_group,
        "samples": fleet.n_samples,
        **trips.columns(),
    })
    _write_world(out_dir, scenario, mobility, recorder.events(), end_s=float(env.now))
    summary = recorder.write(out_dir, config=scenario.to_dict(), vehicles_base=vehicles,
                             events_format=scenario.output.events_format,
                             summary_extra={"scenario": scenario.name, "seed": scenario.seed,
                                            "payload_bytes": learner.payload_bytes(),
                                            "wall_setup_s": round(wall_setup, 3),
                                            "wall_time_s": round(time.perf_counter() - wall_start, 3)})
    from .results import load_run

    return load_run(out_dir)


def _write_world(out_dir: Path, scenario: Scenario, mobility: Any, events: pd.DataFrame, *, end_s: float) -> None:
    """``world.json`` (road, RSUs, coverage radius) and ``tracks.csv`` (`vfedsim.world.layout`): what the
    network figures need besides the tables. Written before summary.json, which is written last."""
    import json

    from .record import FLOAT_FORMAT, atomic_write_text
    from .world.layout import sample_tracks, world_layout

    atomic_write_text(out_dir / "world.json", json.dumps(world_layout(scenario, mobility), separators=(",", ":")) + "\n")
    which = scenario.output.tracks
    if which == "none":
        return
    if which == "all":
        ids = np.arange(mobility.trips.n)
    else:
        ids = events.loc[events["kind"] == "selected", "vehicle"].to_numpy(dtype=np.int64)
    tracks = pd.DataFrame(sample_tracks(mobility, ids, end_s=end_s, period_s=scenario.output.track_period_s))
    atomic_write_text(out_dir / "tracks.csv", tracks.to_csv(index=False, float_format=FLOAT_FORMAT))


class _Progress:
    """A tqdm bar over rounds that shows simulated time and the first task's accuracy."""

    def __init__(self, scenario: Scenario) -> None:
        from tqdm.auto import tqdm

        self.task = scenario.learning.tasks[0]
        rows = scenario.strategy.rounds * getattr(scenario.strategy, "cloud_every", 1)  # hierarchical: edge rounds
        self.bar = tqdm(total=rows, desc=f"{scenario.name} rounds", unit="round",
                        dynamic_ncols=True, leave=True)

    def update_row(self, row: dict) -> None:
        acc = row.get(f"{self.task}.accuracy", float("nan"))
        self.bar.set_postfix_str(f"sim {row['sim_time_s']:.1f} s, {self.task}.acc {acc:.3f}, "
                                 f"arrived {row['clients_arrived']}/{row['clients_selected']}")
        if row["round"] > 0:
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _progress_bar(scenario: Scenario) -> _Progress:
    return _Progress(scenario)
