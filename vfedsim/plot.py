"""Figures drawn from finished run and sweep directories (DESIGN.md, principle 8).

This module reads files only: a run directory's ``rounds.csv`` (and ``config.yaml`` for the title), a sweep
directory's ``results.csv``, ``rounds.csv`` and ``experiment.yaml`` (and, for `summary_table`, each run's
``summary.json``). It never imports the engine, so any
finished run can be redrawn (``vfedsim plot DIR``). Figures are drawn on matplotlib `Figure` objects with
the Agg canvas (no pyplot, no global backend change) and written atomically (temporary file, then rename).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
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
from .record import FLOAT_FORMAT, atomic_write_text

__all__ = ["plot_run", "plot_sweep", "plot_directory", "plot_link_budget", "summary_table", "format_summary",
           "METRICS", "CURVE_AXES"]

METRICS = ("accuracy", "macro_f1", "balanced_accuracy", "loss")
"""Per-task metric columns in rounds.csv are named ``<task>.<metric>``."""
METRIC_LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "balanced_accuracy": "balanced accuracy",
                 "loss": "loss"}
DEFAULT_X = "world.channel.bandwidth_hz"
DEFAULT_HUE = "strategy.selection.name"
DPI = 130
DEFAULT_TARGET_GAIN = 0.03
"""`summary_table`'s default target: each run's pretrained (round 0) mean accuracy plus this."""

CURVE_AXES: dict[str, tuple[str, str, float]] = {  # rounds.csv column -> (file name part, axis label, scale)
    "sim_time_s": ("time", "simulated time [s]", 1.0),
    "cum_bytes_up": ("uplink_bytes", "cumulative uplink traffic [MB]", 1e-6),
    "cum_bytes_down": ("downlink_bytes", "cumulative downlink traffic [MB]", 1e-6),
    "round": ("round", "round (row of rounds.csv)", 1.0),
}
"""rounds.csv columns that `plot_sweep` accepts as ``x`` (non-decreasing within a run): metric curves."""
MAX_BANDS = 4
"""Curves: more lines than this are drawn without their min-max bands (overlapping bands hide the lines)."""

# Unit suffixes of scenario keys (see vfedsim/scenario.py): how to show them on an axis.
_UNITS: dict[str, tuple[str, float]] = {  # suffix -> (unit label, scale applied to the values)
    "_hz": ("MHz", 1e-6), "_m": ("m", 1.0), "_s": ("s", 1.0), "_kmh": ("km/h", 1.0), "_dbm": ("dBm", 1.0),
    "_dbi": ("dBi", 1.0), "_db": ("dB", 1.0), "_w": ("W", 1.0), "_px": ("px", 1.0),
    "_per_s": ("1/s", 1.0), "flops_per_s": ("FLOP/s", 1.0),
}


# ------------------------------------------------------------------------------------------- helpers
def tasks_in(columns: Sequence[str], metric: str = "accuracy") -> list[str]:
    """Task names that have a ``<task>.<metric>`` column, in column order (the per-sensor-suite columns
    ``suite.<suite>.<task>.<metric>`` are not tasks: see `suites_in`)."""
    suffix = "." + metric
    return [c[: -len(suffix)] for c in columns
            if isinstance(c, str) and c.endswith(suffix) and not c.startswith("suite.")]


def suites_in(columns: Sequence[str], metric: str = "accuracy") -> list[str]:
    """Sensor suites evaluated on their own (``suite.<suite>.mean.<metric>`` columns), in column order."""
    head, tail = "suite.", ".mean." + metric
    return [c[len(head): -len(tail)] for c in columns
            if isinstance(c, str) and c.startswith(head) and c.endswith(tail)]


def _panels(tasks: Sequence[str]) -> list[str]:
    """Subplot order for sweeps: the ``mean`` over tasks (the recorder's ``mean.*`` columns) first."""
    return sorted(tasks, key=lambda t: t != "mean")


def _panel_title(task: str) -> str:
    return "mean over tasks" if task == "mean" else task


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


def _styled(function: Any) -> Any:
    """Draw inside `figstyle.styled` (paper font sizes): matplotlib reads the style as artists are made."""
    import functools

    from .figstyle import styled

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with styled():
            return function(*args, **kwargs)

    return wrapper


_FORMAT: ContextVar[str] = ContextVar("vfedsim_figure_format", default="png")
"""The figure format that the current `plot_run` / `plot_sweep` / `plot_directory` call writes (``fmt``)."""


def _use_format(fmt: str) -> None:
    from .figstyle import check_format

    _FORMAT.set(check_format(fmt))


def _save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` (format from the suffix, PNG by default; a ``.png`` name takes the current call's
    ``fmt``) through a temporary file and a rename."""
    if path.suffix == ".png" and _FORMAT.get() != "png":
        path = path.with_suffix("." + _FORMAT.get())
    from .figstyle import DPI as PAPER_DPI, captured

    _paper_ready(fig)
    if captured(fig, path):  # drawn for the HTML report, in memory
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas = FigureCanvasAgg(fig)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in canvas.get_supported_filetypes():
        fmt = "png"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format=fmt, dpi=PAPER_DPI if fmt == "png" else DPI)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _paper_ready(fig: Figure) -> None:
    """Fit ``fig`` to a paper's column (one panel: `figstyle.SINGLE_COLUMN_IN`, more: `DOUBLE_COLUMN_IN`) and
    move any legend drawn inside an axes outside the data, below the panels."""
    from .figstyle import DOUBLE_COLUMN_IN, SINGLE_COLUMN_IN

    axes = [ax for ax in fig.axes if ax.get_visible()]
    if not axes:
        return
    w, h = fig.get_size_inches()
    width = SINGLE_COLUMN_IN if len(axes) == 1 else DOUBLE_COLUMN_IN
    height = 3.2 if len(axes) == 1 else min(max(h * width / w, 2.6), 6.5)
    fig.set_size_inches(width, height)
    for ax in axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
        title = legend.get_title().get_text() or None
        legend.remove()
        fig.legend(handles, labels, title=title, loc="outside lower center",
                   ncols=min(len(handles), 2 if len(axes) == 1 else 4))


def _task_colour(index: int) -> str:
    from .figstyle import colour_of

    return colour_of(index)


def _line_style(split: Sequence[str], key: tuple[Any, ...], hue: str | None,
                groups: Sequence[tuple[Any, Any]]) -> tuple[str, Any]:
    """``(colour, line style)`` of one line: colour by the ``hue`` value (the policy), line style by the
    values of the other keys that split the lines (`figstyle.colour_of`, `figstyle.linestyle_of`)."""
    from .figstyle import colour_of, linestyle_of

    keys = [k if isinstance(k, tuple) else (k,) for k, _ in groups]
    at = split.index(hue) if hue in split else None
    hue_values = list(dict.fromkeys(k[at] for k in keys)) if at is not None else []
    rest = list(dict.fromkeys(tuple(v for j, v in enumerate(k) if j != at) for k in keys))
    own_rest = tuple(v for j, v in enumerate(key) if j != at)
    if at is None:  # no policy key: colour by the other keys
        return colour_of(rest.index(own_rest)), "-"
    return colour_of(hue_values.index(key[at])), linestyle_of(rest.index(own_rest))


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
@_styled
def plot_run(run_dir: str | Path, *, fmt: str = "png") -> list[Path]:
    """Draw a run's figures into ``run_dir/plots`` as ``fmt`` (png, pdf or svg); returns the files written.

    ``accuracy_vs_time.png``: each task's accuracy (solid) and macro-F1 (dashed) against simulated time [s];
    ``accuracy_vs_uplink_bytes.png``: the same against cumulative uplink traffic [MB]. Round 0 (the
    pretrained model, before any aggregation) is marked with a star. With per-sensor-suite metrics (a fleet
    whose suites lack some modality), ``accuracy_by_suite.png``: the mean over classification tasks against
    simulated time, with every modality and as each suite's vehicles run the model. Then the network
    figures of `vfedsim.netfigures.plot_network` (timeline, road map, drops by cause, air traffic), for a
    finished run with events.
    """
    _use_format(fmt)
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
    out = [
        _save(_metric_figure(rounds, tasks, x="sim_time_s", scale=1.0, xlabel="simulated time [s]",
                             title=f"{title}: accuracy vs simulated time"), plots / "accuracy_vs_time.png"),
        _save(_metric_figure(rounds, tasks, x="cum_bytes_up", scale=1e-6,
                             xlabel="cumulative uplink traffic [MB]",
                             title=f"{title}: accuracy vs uplink traffic"), plots / "accuracy_vs_uplink_bytes.png"),
    ]
    suites = suites_in(rounds.columns)
    if suites and "mean.accuracy" in rounds.columns:
        lines = {"mean": "every modality", **{f"suite.{s}.mean": f"suite {s}" for s in suites}}
        out.append(_save(_metric_figure(rounds, list(lines), x="sim_time_s", scale=1.0,
                                        xlabel="simulated time [s]", labels=lines,
                                        title=f"{title}: mean accuracy by sensor suite"),
                         plots / "accuracy_by_suite.png"))
    from .netfigures import plot_network  # the network: timeline, road map, drops by cause, air traffic

    out += plot_network(run_dir, missing_ok=True, fmt=fmt)
    return out


def _metric_figure(rounds: pd.DataFrame, tasks: Sequence[str], *, x: str, scale: float, xlabel: str,
                   title: str, labels: Mapping[str, str] | None = None) -> Figure:
    """One line per ``tasks`` entry (its ``<task>.accuracy`` solid, ``.macro_f1`` dashed), legend
    ``labels[task]`` (default the task name)."""
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
        color = _task_colour(i)
        acc = rounds[f"{task}.accuracy"].to_numpy(dtype=float)
        ax.plot(xs, acc, color=color, marker="o", markersize=3.5, linewidth=1.6, drawstyle="steps-post")
        if f"{task}.macro_f1" in rounds.columns:
            has_f1 = True
            ax.plot(xs, rounds[f"{task}.macro_f1"].to_numpy(dtype=float), color=color, linestyle="--",
                    linewidth=1.3, alpha=0.9, drawstyle="steps-post")
            ax.plot(xs[first], rounds[f"{task}.macro_f1"].to_numpy(dtype=float)[first], linestyle="none",
                    marker="*", markersize=11, color=color, markeredgecolor="black", zorder=3)
        if first.any():
            ax.axhline(acc[first][0], color=color, linestyle=":", linewidth=0.8, alpha=0.6)
        ax.plot(xs[first], acc[first], linestyle="none", marker="*", markersize=13, color=color,
                markeredgecolor="black", zorder=3)
        handles.append(Line2D([], [], color=color, linewidth=2, label=(labels or {}).get(task, task)))
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


def _grid_keys(results: pd.DataFrame, experiment: Mapping[str, Any]) -> list[str]:
    """The sweep's grid keys that are columns of results.csv (from experiment.yaml, else from the columns)."""
    grid = experiment.get("grid")
    if isinstance(grid, Mapping):
        return [k for k in grid if k in results.columns]
    columns = list(results.columns)  # no experiment.yaml: the grid columns sit between point_id and seed
    return [c for c in columns[: columns.index("seed")] if c != "point_id"] if "seed" in columns else []


def _resolve_hue(hue: str | None, grid_keys: Sequence[str], x: str) -> str | None:
    if hue is not None and hue not in grid_keys:
        if hue != DEFAULT_HUE:
            raise ScenarioError("hue", f"{hue!r} is not a grid key of this sweep", allowed=grid_keys, value=hue)
        hue = None
    return None if hue == x else hue


def _split_keys(table: pd.DataFrame, grid_keys: Sequence[str], hue: str | None, x: str | None) -> list[str]:
    """Keys whose values make one line (or table row): ``hue``, then the other grid keys that vary."""
    others = [k for k in grid_keys if k not in (x, hue) and k in table.columns and table[k].nunique() > 1]
    return ([hue] if hue else []) + others


@_styled
def plot_sweep(sweep_dir: str | Path, *, x: str = DEFAULT_X, hue: str | None = DEFAULT_HUE,
               metric: str = "accuracy", fmt: str = "png") -> list[Path]:
    """Draw every task's ``metric`` against ``x``, one line per ``hue`` value; returns the files written.

    ``x`` a grid key: the *final* metric of each run against the key's values. One subplot per task; each
    line is the mean over seeds with a min-max band (for a key with names as values: markers with min-max
    bars, not joined). Bandwidths ([Hz] keys) are shown in MHz on a log axis.
    Writes ``plots/<metric>_vs_<x short name>.png`` (``accuracy_vs_bandwidth.png``).

    ``x`` a rounds.csv column of `CURVE_AXES` (``sim_time_s``, ``cum_bytes_up``, ...) that is not a grid key:
    the metric *curve* of each run against it, from the sweep's rounds.csv. Each run is a step function of
    its evaluated rows (rows with an empty metric cell, such as hierarchical edge rounds, are skipped): the
    value of its last evaluation at or before x, held after its last row (its model no longer changes). A
    line is the mean of its runs' step functions on the union of their x values, the band their min-max
    (left out above `MAX_BANDS` lines, where the bands would hide the lines).
    Writes ``plots/<metric>_vs_time.png``, ``<metric>_vs_uplink_bytes.png``, ...

    Other grid keys that vary split the lines further (their values join the legend label). When ``hue`` is
    the default and not a grid key, the lines are split by the other grid keys only. The pretrained (round 0)
    value is a dotted grey line where the sweep's rounds.csv has it.
    """
    _use_format(fmt)
    sweep_dir = Path(sweep_dir)
    results = _read_csv(sweep_dir / "results.csv", "sweep")
    experiment = _read_yaml(sweep_dir / "experiment.yaml")
    grid_keys = _grid_keys(results, experiment)
    if metric not in METRICS:
        raise ScenarioError("metric", f"unknown metric {metric!r}", allowed=METRICS, value=metric)
    if x in CURVE_AXES and x not in grid_keys:
        return [_plot_sweep_curves(sweep_dir, experiment, grid_keys, x=x, hue=_resolve_hue(hue, grid_keys, x),
                                   metric=metric)]
    if x not in grid_keys:
        raise ScenarioError("x", f"{x!r} is neither a grid key of this sweep nor a rounds.csv column to plot "
                                 "against", allowed=[*grid_keys, *CURVE_AXES], value=x)
    hue = _resolve_hue(hue, grid_keys, x)
    tasks = _panels(tasks_in(results.columns, metric))
    if not tasks:
        raise VfedsimError(f"{str(sweep_dir / 'results.csv')!r} has no <task>.{metric} columns")
    split = _split_keys(results, grid_keys, hue, x)
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
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]  # own y range: tasks sit at very different levels
    groups = list(results.groupby(split, sort=False, dropna=False)) if split else [((), results)]
    for ax, task in zip(axes, tasks):
        column = f"{task}.{metric}"
        for i, (key, rows) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            xs_raw = rows[x] if numeric_x else rows[x].astype(str)
            stats = rows.assign(_x=xs_raw.map(positions)).groupby("_x")[column].agg(["mean", "min", "max"])
            stats = stats.sort_index()
            color, dash = _line_style(split, key, hue, groups)
            if not numeric_x:  # unordered categories: markers with min-max bars, side by side, no lines
                shift = (i - (len(groups) - 1) / 2) * min(0.6 / len(groups), 0.15)
                ax.errorbar(stats.index + shift, stats["mean"],
                            yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]] if seeds > 1 else None,
                            color=color, marker="o", linestyle="none", capsize=3, elinewidth=1.2,
                            label=_group_label(split, key, hue))
                continue
            ax.plot(stats.index, stats["mean"], color=color, marker="o", linewidth=1.8, linestyle=dash,
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
            if len(positions) > 4 or max(len(str(v)) for v in positions) > 8:  # long names would overlap
                ax.tick_params(axis="x", labelrotation=35)
                for tick in ax.get_xticklabels():
                    tick.set_horizontalalignment("right")
                    tick.set_rotation_mode("anchor")
        ax.set_title(_panel_title(task))
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"final {label}")
    handles, labels = axes[-1].get_legend_handles_labels()
    if handles:
        legend_title = " / ".join(_key_label(k)[1] for k in split) if split else None
        axes[-1].legend(handles, labels, title=legend_title, fontsize="small", title_fontsize="small",
                        loc="best", framealpha=0.85)
    name = experiment.get("name") or sweep_dir.name
    band = (f"mean over {seeds} seeds, {'band' if numeric_x else 'bars'}: min-max" if seeds > 1 else "one seed")
    fig.suptitle(f"{name}: final {label} vs {xlabel} ({band})")
    return [_save(fig, sweep_dir / "plots" / f"{metric}_vs_{short}.png")]


def _step_band(runs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                          np.ndarray]:
    """``(grid, mean, min, max)`` of step functions given as ``(x, y)`` pairs of one run each.

    The grid is the union of all x. A run's value at g is its y at the last x <= g (at equal x the last row
    counts), held after its last x, NaN before its first; the statistics ignore a run's NaN cells.
    """
    pairs = [(np.asarray(x, dtype=float), np.asarray(y, dtype=float)) for x, y in runs]
    pairs = [(x[np.isfinite(y)], y[np.isfinite(y)]) for x, y in pairs]
    pairs = [(x, y) for x, y in pairs if len(x)]
    if not pairs:
        empty = np.empty(0)
        return empty, empty, empty, empty
    grid = np.unique(np.concatenate([x for x, _ in pairs]))
    values = np.full((len(pairs), len(grid)), np.nan)
    for j, (x, y) in enumerate(pairs):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        idx = np.searchsorted(x, grid, side="right") - 1
        ok = idx >= 0
        values[j, ok] = y[idx[ok]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return grid, np.nanmean(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)


def _plot_sweep_curves(sweep_dir: Path, experiment: Mapping[str, Any], grid_keys: Sequence[str], *, x: str,
                       hue: str | None, metric: str) -> Path:
    rounds = _read_csv(sweep_dir / "rounds.csv", "sweep")
    if x not in rounds.columns:
        raise VfedsimError(f"{str(sweep_dir / 'rounds.csv')!r} has no {x!r} column")
    tasks = _panels(tasks_in(rounds.columns, metric))
    if not tasks:
        raise VfedsimError(f"{str(sweep_dir / 'rounds.csv')!r} has no <task>.{metric} columns")
    split = _split_keys(rounds, grid_keys, hue, None)
    run_keys = [k for k in ("point_id", *grid_keys, "seed") if k in rounds.columns]
    short, xlabel, scale = CURVE_AXES[x]
    pretrained = _pretrained(sweep_dir, tasks, metric)
    seeds = rounds["seed"].nunique() if "seed" in rounds.columns else 1
    label = METRIC_LABELS[metric]

    ncols = len(tasks) if len(tasks) <= 3 else math.ceil(len(tasks) / 2)
    nrows = math.ceil(len(tasks) / ncols)
    fig = Figure(figsize=(4.6 * ncols + 0.6, 3.9 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    groups = list(rounds.groupby(split, sort=False, dropna=False)) if split else [((), rounds)]
    for ax, task in zip(axes, tasks):
        column = f"{task}.{metric}"
        for i, (key, rows) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            runs = [(r[x].to_numpy(), r[column].to_numpy())
                    for _, r in (rows.groupby(run_keys, sort=False, dropna=False) if run_keys else [((), rows)])]
            xs, mean, lo, hi = _step_band(runs)
            if not len(xs):
                continue
            color, dash = _line_style(split, key, hue, groups)
            ax.plot(xs * scale, mean, color=color, drawstyle="steps-post", linewidth=1.8, linestyle=dash,
                    label=_group_label(split, key, hue))
            if len(runs) > 1 and len(groups) <= MAX_BANDS:
                ax.fill_between(xs * scale, lo, hi, step="post", color=color, alpha=0.15, linewidth=0)
        if task in pretrained:
            ax.axhline(pretrained[task], color="0.45", linestyle=":", linewidth=1.2, label="pretrained (round 0)")
        ax.set_xlim(left=0)
        ax.set_title(_panel_title(task))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # below the panels: step curves fill the axes, any spot inside hides some
        legend_title = " / ".join(_key_label(k)[1] for k in split) if split else None
        fig.legend(handles, labels, title=legend_title, fontsize="small", title_fontsize="small",
                   loc="outside lower center", ncols=min(len(handles), 5))
    name = experiment.get("name") or sweep_dir.name
    band = "one seed" if seeds <= 1 else f"mean over {seeds} seeds, " + (
        "band: min-max" if len(groups) <= MAX_BANDS else f"no min-max bands with more than {MAX_BANDS} lines")
    fig.suptitle(f"{name}: {label} vs {xlabel} ({band})")
    return _save(fig, sweep_dir / "plots" / f"{metric}_vs_{short}.png")


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


# -------------------------------------------------------------------------------------------- tables
_SUMMARY_COLUMNS = {  # per-run quantity -> heading of the printed table
    "final_accuracy": "final acc", "final_macro_f1": "final F1", "time_to_target_s": "time to target [s]",
    "mb_up": "MB up", "clients_arrived": "arrived", "clients_selected": "selected",
    "jain_fairness": "Jain", "rounds": "rounds",
}


def _mean_metric(rounds: pd.DataFrame, metric: str) -> pd.Series:
    """The ``mean.<metric>`` column, else the mean over the tasks' ``<task>.<metric>`` columns."""
    if f"mean.{metric}" in rounds.columns:
        return rounds[f"mean.{metric}"].astype(float)
    cols = [f"{t}.{metric}" for t in tasks_in(rounds.columns, metric) if t != "mean"]
    if not cols:
        return pd.Series(np.nan, index=rounds.index)
    return rounds[cols].astype(float).mean(axis=1, skipna=False)


def _last(values: pd.Series) -> float:
    """The last non-NaN value (the last evaluated row), NaN when there is none."""
    values = values[values.notna()]
    return float(values.iloc[-1]) if len(values) else float("nan")


def _run_row(rounds: pd.DataFrame, summary: Mapping[str, Any], *, target: float | None,
             target_gain: float) -> dict[str, Any]:
    """One run's quantities for `summary_table` from its rounds.csv and summary.json (may be empty)."""
    acc, f1 = _mean_metric(rounds, "accuracy"), _mean_metric(rounds, "macro_f1")
    evaluated = acc.notna()
    first = rounds["round"].eq(0) & evaluated if "round" in rounds.columns else evaluated & (rounds.index == 0)
    pretrained = float(acc[first].iloc[0]) if first.any() else float("nan")
    goal = float(target) if target is not None else pretrained + target_gain
    reached = evaluated & (acc >= goal - 1e-12)
    drops = summary.get("drops_by_cause")

    def total(key: str, column: str, scale: float = 1.0) -> float:
        if summary.get(key) is not None:
            return float(summary[key]) * scale
        return float(rounds[column].sum()) * scale if column in rounds.columns else float("nan")

    row: dict[str, Any] = {
        "pretrained_accuracy": pretrained,
        "final_accuracy": _last(acc),
        "final_macro_f1": _last(f1),
        "target_accuracy": goal,
        "time_to_target_s": float(rounds.loc[reached, "sim_time_s"].iloc[0]) if reached.any() else float("nan"),
        "mb_up": total("bytes_up_total", "bytes_up", 1e-6),
        "clients_arrived": total("clients_arrived_total", "clients_arrived"),
        "clients_selected": total("clients_selected_total", "clients_selected"),
        "jain_fairness": float(summary["jain_fairness_selected"])
        if summary.get("jain_fairness_selected") is not None else float("nan"),
        "rounds": float(rounds["round"].iloc[-1]) if "round" in rounds.columns and len(rounds) else float("nan"),
    }
    for suite in suites_in(rounds.columns):  # as each partial sensor suite's vehicles run the model
        row[f"suite_accuracy.{suite}"] = _last(rounds[f"suite.{suite}.mean.accuracy"].astype(float))
    if isinstance(drops, Mapping):
        row.update({f"drops.{cause}": float(n) for cause, n in drops.items()})
    row["_has_drops"] = isinstance(drops, Mapping)
    return row


def summary_table(sweep_dir: str | Path, *, by: str | None = DEFAULT_HUE, target: float | None = None,
                  target_gain: float = DEFAULT_TARGET_GAIN, write: bool = True) -> pd.DataFrame:
    """Per value of grid key ``by`` (and of any other grid key that varies): mean and std over its runs.

    Per run, from its directory's rounds.csv (else the sweep's rows of it) and summary.json: the final
    mean accuracy and mean macro-F1 over tasks (the ``mean.*`` columns, else the tasks' mean; last
    evaluated row); the simulated time [s] of the first evaluation whose mean accuracy reaches the target
    (``target``, or the run's own pretrained mean accuracy + ``target_gain``; NaN if never reached); MB sent
    up; clients arrived and selected; drops by cause (``drops_by_cause``, a cause absent from a run counts 0);
    Jain's fairness index of selection counts (``jain_fairness_selected``); the last round number; with
    partial sensor suites, ``suite_accuracy.<suite>``: the final mean accuracy as that suite's vehicles run
    the model (``suite.<suite>.mean.accuracy``).

    Returns one row per group (index: the grouping keys) with ``runs``, ``target_reached`` (runs that reached
    the target) and, per quantity ``q``, ``q`` (mean over runs; time to target: over the runs that reached
    it) and ``q_std`` (sample standard deviation, NaN for one run). With ``write``, also writes
    ``summary.csv`` (this table) and ``summary_runs.csv`` (one row per run) into ``sweep_dir``.
    """
    sweep_dir = Path(sweep_dir)
    results = _read_csv(sweep_dir / "results.csv", "sweep")
    experiment = _read_yaml(sweep_dir / "experiment.yaml")
    grid_keys = _grid_keys(results, experiment)
    if target_gain is None or not math.isfinite(target_gain):
        raise ScenarioError("target", f"the target gain must be a finite number, got {target_gain!r}")
    by = _resolve_hue(by, grid_keys, "")
    keys = _split_keys(results, grid_keys, by, None) or [k for k in grid_keys[:1]]
    sweep_rounds: pd.DataFrame | None = None
    rows = []
    for _, res in results.iterrows():
        run_dir = sweep_dir / str(res.get("run_dir", ""))
        if "run_dir" in res and (run_dir / "rounds.csv").is_file():
            rounds = pd.read_csv(run_dir / "rounds.csv")
        else:
            if sweep_rounds is None:
                sweep_rounds = _read_csv(sweep_dir / "rounds.csv", "sweep")
            match = [k for k in ("point_id", "seed") if k in sweep_rounds.columns and k in res]
            mask = np.logical_and.reduce([sweep_rounds[k].eq(res[k]) for k in match]) if match else True
            rounds = sweep_rounds[mask].reset_index(drop=True)
        summary = _read_json(run_dir / "summary.json") if "run_dir" in res else {}
        ident = {k: res[k] for k in ("point_id", *grid_keys, "seed") if k in res}
        rows.append({**ident, "run_dir": res.get("run_dir"),
                     **_run_row(rounds, summary, target=target, target_gain=target_gain)})
    runs = pd.DataFrame(rows)
    drop_cols = sorted(c for c in runs.columns if c.startswith("drops."))
    if drop_cols:  # a run with a summary.json lacks a cause only because it had no such drop
        runs.loc[runs["_has_drops"], drop_cols] = runs.loc[runs["_has_drops"], drop_cols].fillna(0.0)
    runs = runs.drop(columns="_has_drops")
    suite_cols = [c for c in runs.columns if c.startswith("suite_accuracy.")]
    quantities = ["final_accuracy", "final_macro_f1", *suite_cols, "time_to_target_s", "target_accuracy",
                  "mb_up", "clients_arrived", "clients_selected", *drop_cols, "jain_fairness", "rounds"]
    grouped = runs.groupby(keys, sort=False, dropna=False) if keys else runs.groupby(lambda _: "all runs")
    table = pd.DataFrame({"runs": grouped.size(),
                          "target_reached": grouped["time_to_target_s"].apply(lambda s: int(s.notna().sum()))})
    for q in quantities:
        table[q] = grouped[q].mean()
        table[f"{q}_std"] = grouped[q].std(ddof=1)
    if write:
        atomic_write_text(sweep_dir / "summary.csv", table.to_csv(float_format=FLOAT_FORMAT))
        atomic_write_text(sweep_dir / "summary_runs.csv", runs.to_csv(index=False, float_format=FLOAT_FORMAT))
    table.attrs["target"] = ("absolute", target) if target is not None else ("gain", target_gain)
    return table


def format_summary(table: pd.DataFrame) -> str:
    """`summary_table`'s result as text: ``mean ± std`` per quantity, drops by cause, reached ``k/n``."""
    def cell(mean: float, std: float, digits: int) -> str:
        if not math.isfinite(mean):
            return "-"
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")

    digits = {"final_accuracy": 3, "final_macro_f1": 3, "time_to_target_s": 0, "mb_up": 2,
              "clients_arrived": 1, "clients_selected": 1, "jain_fairness": 3, "rounds": 1}
    out = pd.DataFrame(index=table.index)
    out["runs"] = table["runs"]
    for q in ("final_accuracy", "final_macro_f1"):
        out[_SUMMARY_COLUMNS[q]] = [cell(m, s, digits[q]) for m, s in zip(table[q], table[f"{q}_std"])]
    for c in (c for c in table.columns if c.startswith("suite_accuracy.") and not c.endswith("_std")):
        out[c.replace("suite_accuracy.", "acc ")] = [cell(m, s, 3) for m, s in zip(table[c], table[f"{c}_std"])]
    out["reached"] = [f"{r}/{n}" for r, n in zip(table["target_reached"], table["runs"])]
    for q in ("time_to_target_s", "mb_up", "clients_arrived", "clients_selected"):
        out[_SUMMARY_COLUMNS[q]] = [cell(m, s, digits[q]) for m, s in zip(table[q], table[f"{q}_std"])]
    for c in (c for c in table.columns if c.startswith("drops.") and not c.endswith("_std")):
        out[c.replace("drops.", "drop ")] = [cell(m, s, 1) for m, s in zip(table[c], table[f"{c}_std"])]
    for q in ("jain_fairness", "rounds"):
        out[_SUMMARY_COLUMNS[q]] = [cell(m, s, digits[q]) for m, s in zip(table[q], table[f"{q}_std"])]
    kind, value = table.attrs.get("target", ("gain", DEFAULT_TARGET_GAIN))
    note = (f"target: mean accuracy >= {value:g}" if kind == "absolute"
            else f"target: each run's pretrained mean accuracy + {value:g}")
    if "target_accuracy" in table and kind != "absolute":
        note += f" (mean target {table['target_accuracy'].mean():.3f})"
    return (out.to_string() + f"\n{note}; time to target averages the runs that reached it; "
            "mean ± sample std over runs")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------------- any dir, channel
def plot_directory(path: str | Path, *, x: str | None = None, hue: str | None = None,
                   metric: str = "accuracy", fmt: str = "png") -> list[Path]:
    """A sweep directory (has results.csv) -> `plot_sweep`; a run directory (has rounds.csv) -> `plot_run`;
    figures as ``fmt`` (png, pdf or svg)."""
    path = Path(path)
    if (path / "results.csv").is_file():
        kwargs: dict[str, Any] = {"metric": metric, "fmt": fmt}
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
        return plot_run(path, fmt=fmt)
    raise ScenarioError("DIR", f"{str(path)!r} is neither a run directory (rounds.csv) "
                               "nor a sweep directory (results.csv)")


def _sweep_grid_keys(sweep_dir: Path) -> list[str]:
    grid = _read_yaml(sweep_dir / "experiment.yaml").get("grid")
    return list(grid) if isinstance(grid, Mapping) else []


def plot_link_budget(budget: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "",
                     min_snr_db: float | None = None) -> Path:
    """Median SNR [dB] and rate [Mbit/s] against distance [m] (a table from `world.channel.link_budget`).

    With a LOS model the NLOS median SNR is drawn too (dashed), and the distances the radio counts as covered
    (``covered``: its own rule, which may use the NLOS loss) are shaded, so that a profile whose coverage
    edge is set on the NLOS median is not read off the LOS curve.
    """
    d = np.asarray(budget["distance_m"], dtype=float)
    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    nlos = "nlos_snr_db" in budget
    ax.plot(d, np.asarray(budget["snr_db"], dtype=float), color="C0", marker="o", markersize=3,
            label="median SNR (LOS)" if nlos else "median SNR")
    if nlos:
        ax.plot(d, np.asarray(budget["nlos_snr_db"], dtype=float), color="C0", linestyle="--", marker="o",
                markersize=2, label="median SNR (NLOS)")
    if "covered" in budget:
        covered = np.asarray(budget["covered"], dtype=bool)
        if covered.any():
            ax.axvspan(float(d[covered].min()), float(d[covered].max()), color="C2", alpha=0.08,
                       label="covered (the radio's rule)")
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
    _use_format("png")  # the name's own suffix decides
    return _save(fig, Path(path))
