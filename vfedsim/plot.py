"""Figures drawn from finished run and sweep directories (DESIGN.md, principle 8).

This module reads files only: a run directory's ``rounds.csv`` (and ``config.yaml`` for the title), a sweep
directory's ``results.csv``, ``rounds.csv`` and ``experiment.yaml``. It never imports the engine, so any
finished run can be redrawn (``vfedsim plot DIR``). Figures are drawn on matplotlib `Figure` objects with
the Agg canvas (no pyplot, no global backend change) and written atomically (temporary file, then rename).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from .errors import ScenarioError, VfedsimError

__all__ = ["plot_run", "plot_sweep", "plot_directory", "plot_link_budget", "METRICS"]

METRICS = ("accuracy", "macro_f1", "balanced_accuracy", "loss")
"""Per-task metric columns in rounds.csv are named ``<task>.<metric>``."""
METRIC_LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "balanced_accuracy": "balanced accuracy",
                 "loss": "loss"}
DEFAULT_X = "world.channel.bandwidth_hz"
DEFAULT_HUE = "strategy.selection.name"
DPI = 130

# Unit suffixes of scenario keys (see vfedsim/scenario.py): how to show them on an axis.
_UNITS: dict[str, tuple[str, float]] = {  # suffix -> (unit label, scale applied to the values)
    "_hz": ("MHz", 1e-6), "_m": ("m", 1.0), "_s": ("s", 1.0), "_kmh": ("km/h", 1.0), "_dbm": ("dBm", 1.0),
    "_dbi": ("dBi", 1.0), "_db": ("dB", 1.0), "_w": ("W", 1.0), "_px": ("px", 1.0),
    "_per_s": ("1/s", 1.0), "flops_per_s": ("FLOP/s", 1.0),
}


# ------------------------------------------------------------------------------------------- helpers
def tasks_in(columns: Sequence[str], metric: str = "accuracy") -> list[str]:
    """Task names that have a ``<task>.<metric>`` column, in column order."""
    suffix = "." + metric
    return [c[: -len(suffix)] for c in columns if isinstance(c, str) and c.endswith(suffix)]


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise ScenarioError("DIR", f"{str(path.parent)!r} is not a {what} directory (no {path.name})")
    return pd.read_csv(path)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` (format from the suffix, PNG by default) through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas = FigureCanvasAgg(fig)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in canvas.get_supported_filetypes():
        fmt = "png"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format=fmt, dpi=DPI)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _key_label(key: str) -> tuple[str, str, float]:
    """``(short name, axis label, scale)`` for a dotted scenario key: bandwidth_hz -> ("bandwidth", ...MHz)."""
    parts = key.split(".")
    last = parts[-1]
    if last in ("name", "model", "profile") and len(parts) > 1:
        return parts[-2], parts[-2].replace("_", " "), 1.0
    for suffix, (unit, scale) in sorted(_UNITS.items(), key=lambda kv: -len(kv[0])):
        if last.endswith(suffix) and len(last) > len(suffix):
            short = last[: -len(suffix)]
            return short, f"{short.replace('_', ' ')} [{unit}]", scale
    return last, last.replace("_", " "), 1.0


# ---------------------------------------------------------------------------------------------- runs
def plot_run(run_dir: str | Path) -> list[Path]:
    """Draw a run's figures into ``run_dir/plots``; returns the files written.

    ``accuracy_vs_time.png``: each task's accuracy (solid) and macro-F1 (dashed) against simulated time [s];
    ``accuracy_vs_uplink_bytes.png``: the same against cumulative uplink traffic [MB]. Round 0 (the
    pretrained model, before any aggregation) is marked with a star.
    """
    run_dir = Path(run_dir)
    rounds = _read_csv(run_dir / "rounds.csv", "run")
    tasks = tasks_in(rounds.columns)
    if not tasks:
        raise VfedsimError(f"{str(run_dir / 'rounds.csv')!r} has no <task>.accuracy columns to plot")
    config = _read_yaml(run_dir / "config.yaml")
    title = str(config.get("name") or run_dir.name)
    if "seed" in config:
        title += f" (seed {config['seed']})"
    plots = run_dir / "plots"
    return [
        _save(_metric_figure(rounds, tasks, x="sim_time_s", scale=1.0, xlabel="simulated time [s]",
                             title=f"{title}: accuracy vs simulated time"), plots / "accuracy_vs_time.png"),
        _save(_metric_figure(rounds, tasks, x="cum_bytes_up", scale=1e-6,
                             xlabel="cumulative uplink traffic [MB]",
                             title=f"{title}: accuracy vs uplink traffic"), plots / "accuracy_vs_uplink_bytes.png"),
    ]


def _metric_figure(rounds: pd.DataFrame, tasks: Sequence[str], *, x: str, scale: float, xlabel: str,
                   title: str) -> Figure:
    if x not in rounds.columns:
        raise VfedsimError(f"rounds.csv has no {x!r} column")
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    # rounds that were not evaluated (eval_every > 1, hierarchical edge rounds) have empty metric cells
    evaluated = [f"{t}.accuracy" for t in tasks if f"{t}.accuracy" in rounds.columns]
    rounds = rounds.dropna(subset=evaluated, how="all").reset_index(drop=True)
    xs = rounds[x].to_numpy(dtype=float) * scale
    first = (rounds["round"] == 0).to_numpy() if "round" in rounds.columns else np.arange(len(rounds)) == 0
    handles = []
    has_f1 = False
    for i, task in enumerate(tasks):
        color = f"C{i % 10}"
        acc = rounds[f"{task}.accuracy"].to_numpy(dtype=float)
        ax.plot(xs, acc, color=color, marker="o", markersize=3.5, linewidth=1.6)
        if f"{task}.macro_f1" in rounds.columns:
            has_f1 = True
            ax.plot(xs, rounds[f"{task}.macro_f1"].to_numpy(dtype=float), color=color, linestyle="--",
                    linewidth=1.3, alpha=0.9)
            ax.plot(xs[first], rounds[f"{task}.macro_f1"].to_numpy(dtype=float)[first], linestyle="none",
                    marker="*", markersize=11, color=color, markeredgecolor="black", zorder=3)
        if first.any():
            ax.axhline(acc[first][0], color=color, linestyle=":", linewidth=0.8, alpha=0.6)
        ax.plot(xs[first], acc[first], linestyle="none", marker="*", markersize=13, color=color,
                markeredgecolor="black", zorder=3)
        handles.append(Line2D([], [], color=color, linewidth=2, label=task))
    handles.append(Line2D([], [], color="0.2", linestyle="-", label="accuracy"))
    if has_f1:
        handles.append(Line2D([], [], color="0.2", linestyle="--", label="macro-F1"))
    handles.append(Line2D([], [], color="0.5", linestyle="none", marker="*", markersize=11,
                          markeredgecolor="black", label="pretrained (round 0)"))
    ax.legend(handles=handles, fontsize="small", loc="best", framealpha=0.85)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy / macro-F1" if has_f1 else "accuracy")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return fig


# -------------------------------------------------------------------------------------------- sweeps
def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def plot_sweep(sweep_dir: str | Path, *, x: str = DEFAULT_X, hue: str | None = DEFAULT_HUE,
               metric: str = "accuracy") -> list[Path]:
    """Draw the final ``metric`` of every task against grid key ``x``, one line per ``hue`` value.

    One subplot per task; each line is the mean over seeds with a min-max band. Other grid keys that vary
    split the lines further (their values join the legend label). Bandwidths ([Hz] keys) are shown in MHz on a
    log axis. The pretrained (round 0) value is a dotted grey line where the sweep's rounds.csv has it. When
    ``hue`` is the default and not a grid key, the lines are split by the other grid keys only. Writes
    ``sweep_dir/plots/<metric>_vs_<x short name>.png`` (``accuracy_vs_bandwidth.png``); returns the files.
    """
    sweep_dir = Path(sweep_dir)
    results = _read_csv(sweep_dir / "results.csv", "sweep")
    experiment = _read_yaml(sweep_dir / "experiment.yaml")
    grid = experiment.get("grid")
    if isinstance(grid, Mapping):
        grid_keys = [k for k in grid if k in results.columns]
    else:  # no experiment.yaml: the grid columns sit between point_id and seed
        columns = list(results.columns)
        grid_keys = [c for c in columns[: columns.index("seed")] if c != "point_id"] if "seed" in columns else []
    if metric not in METRICS:
        raise ScenarioError("metric", f"unknown metric {metric!r}", allowed=METRICS, value=metric)
    if x not in grid_keys:
        raise ScenarioError("x", f"{x!r} is not a grid key of this sweep", allowed=grid_keys, value=x)
    if hue is not None and hue not in grid_keys:
        if hue != DEFAULT_HUE:
            raise ScenarioError("hue", f"{hue!r} is not a grid key of this sweep", allowed=grid_keys, value=hue)
        hue = None
    if hue == x:
        hue = None
    tasks = tasks_in(results.columns, metric)
    if not tasks:
        raise VfedsimError(f"{str(sweep_dir / 'results.csv')!r} has no <task>.{metric} columns")
    split = ([hue] if hue else []) + [k for k in grid_keys if k not in (x, hue) and results[k].nunique() > 1]
    short, xlabel, scale = _key_label(x)
    numeric_x = _is_numeric(results[x])
    if numeric_x:
        xvals = sorted(results[x].unique())
        positions = {v: float(v) * scale for v in xvals}
        log_x = all(v > 0 for v in xvals) and (x.endswith("_hz") or max(xvals) / min(xvals) >= 20)
    else:
        xvals = list(dict.fromkeys(results[x].astype(str)))
        positions = {v: float(i) for i, v in enumerate(xvals)}
        log_x = False
    pretrained = _pretrained(sweep_dir, tasks, metric)
    seeds = results["seed"].nunique() if "seed" in results.columns else 1
    label = METRIC_LABELS[metric]

    fig = Figure(figsize=(4.2 * len(tasks) + 0.8, 4.4), layout="constrained")
    axes = fig.subplots(1, len(tasks), sharey=True, squeeze=False)[0]
    groups = list(results.groupby(split, sort=False, dropna=False)) if split else [((), results)]
    for ax, task in zip(axes, tasks):
        column = f"{task}.{metric}"
        for i, (key, rows) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            xs_raw = rows[x] if numeric_x else rows[x].astype(str)
            stats = rows.assign(_x=xs_raw.map(positions)).groupby("_x")[column].agg(["mean", "min", "max"])
            stats = stats.sort_index()
            color = f"C{i % 10}"
            ax.plot(stats.index, stats["mean"], color=color, marker="o", linewidth=1.8,
                    label=_group_label(split, key, hue))
            if seeds > 1:
                ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.18, linewidth=0)
        if task in pretrained:
            ax.axhline(pretrained[task], color="0.45", linestyle=":", linewidth=1.2, label="pretrained (round 0)")
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        if log_x or not numeric_x:  # tick exactly the grid values, in plain numbers (0.05, 1, 5 MHz)
            ax.set_xticks(list(positions.values()),
                          [f"{p:g}" for p in positions.values()] if numeric_x else list(positions))
        if not numeric_x:
            ax.set_xlim(-0.5, len(positions) - 0.5)
        ax.set_title(task)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"final {label}")
    handles, labels = axes[-1].get_legend_handles_labels()
    if handles:
        legend_title = " / ".join(_key_label(k)[1] for k in split) if split else None
        axes[-1].legend(handles, labels, title=legend_title, fontsize="small", title_fontsize="small",
                        loc="best", framealpha=0.85)
    name = experiment.get("name") or sweep_dir.name
    band = f"mean over {seeds} seeds, band: min-max" if seeds > 1 else "one seed"
    fig.suptitle(f"{name}: final {label} vs {xlabel} ({band})")
    return [_save(fig, sweep_dir / "plots" / f"{metric}_vs_{short}.png")]


def _group_label(split: Sequence[str], key: tuple[Any, ...], hue: str | None) -> str:
    if not split:
        return "all runs"
    parts = []
    for k, v in zip(split, key):
        short, _, scale = _key_label(k)
        text = f"{float(v) * scale:g}" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) \
            else str(v)
        parts.append(text if k == hue else f"{short}={text}")
    return ", ".join(parts)


def _pretrained(sweep_dir: Path, tasks: Sequence[str], metric: str) -> dict[str, float]:
    """Mean round-0 value per task over the sweep's runs (from its rounds.csv), where present."""
    path = sweep_dir / "rounds.csv"
    if not path.is_file():
        return {}
    rounds = pd.read_csv(path)
    if "round" not in rounds.columns:
        return {}
    first = rounds[rounds["round"] == 0]
    return {t: float(first[f"{t}.{metric}"].mean()) for t in tasks
            if f"{t}.{metric}" in first.columns and len(first)}


# ---------------------------------------------------------------------------------- any dir, channel
def plot_directory(path: str | Path, *, x: str | None = None, hue: str | None = None,
                   metric: str = "accuracy") -> list[Path]:
    """A sweep directory (has results.csv) -> `plot_sweep`; a run directory (has rounds.csv) -> `plot_run`."""
    path = Path(path)
    if (path / "results.csv").is_file():
        kwargs: dict[str, Any] = {"metric": metric}
        if x is not None:
            kwargs["x"] = x
        elif DEFAULT_X not in _sweep_grid_keys(path):
            keys = _sweep_grid_keys(path)
            if not keys:
                raise ScenarioError("--x", "this sweep has no grid keys to plot against")
            kwargs["x"] = keys[0]
        if hue is not None:
            kwargs["hue"] = hue
        return plot_sweep(path, **kwargs)
    if (path / "rounds.csv").is_file():
        if x is not None or hue is not None:
            raise ScenarioError("--x", "--x and --hue apply to sweep directories only")
        return plot_run(path)
    raise ScenarioError("DIR", f"{str(path)!r} is neither a run directory (rounds.csv) "
                               "nor a sweep directory (results.csv)")


def _sweep_grid_keys(sweep_dir: Path) -> list[str]:
    grid = _read_yaml(sweep_dir / "experiment.yaml").get("grid")
    return list(grid) if isinstance(grid, Mapping) else []


def plot_link_budget(budget: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "",
                     min_snr_db: float | None = None) -> Path:
    """Median SNR [dB] and rate [Mbit/s] against distance [m] (a table from `world.channel.link_budget`)."""
    d = np.asarray(budget["distance_m"], dtype=float)
    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(d, np.asarray(budget["snr_db"], dtype=float), color="C0", marker="o", markersize=3,
            label="median SNR")
    if min_snr_db is not None:
        ax.axhline(min_snr_db, color="C0", linestyle=":", linewidth=1, label=f"coverage edge ({min_snr_db:g} dB)")
    ax.set_xlabel("distance [m]")
    ax.set_ylabel("SNR [dB]", color="C0")
    ax.grid(True, alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(d, np.asarray(budget["rate_bps"], dtype=float) / 1e6, color="C1", marker="s", markersize=3,
             label="rate")
    ax2.set_ylabel("rate [Mbit/s]", color="C1")
    ax2.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize="small", loc="upper right")
    ax.set_title(title or "median link budget")
    return _save(fig, Path(path))
