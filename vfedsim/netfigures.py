"""Network figures of a run, drawn from its files alone (events.csv, rounds.csv, tracks.csv, world.json).

`plot_network` writes four figures into ``<run>/plots`` (``vfedsim plot RUN`` redraws them):

- ``timeline.<fmt>``: a per-vehicle Gantt chart (selected -> download -> local training -> waiting for
  coverage -> upload -> arrived or dropped), coloured by phase, each drop marked with its cause, aggregations
  as vertical lines; below it, how many vehicles are in each phase over time (all of them).
- ``road_map.<fmt>``: the road (lanes, streets, or a SUMO trace's own geometry), the RSU sites with their
  coverage radius (the channel profile's, `vfedsim.world.channel.coverage_radius_m`), and the tracks of the
  vehicles in tracks.csv coloured by phase; on a highway also a time-space diagram (position along the road
  against simulated time), where the tracks do not overlap.
- ``drops_by_cause.<fmt>``: per round, the updates that arrived and the drops by cause (stacked bars).
- ``air_traffic.<fmt>``: bytes on the air per RSU over time, uplink and downlink, handovers marked (a heat
  map beyond `MAX_RSU_LINES` RSUs).

Readable at hundreds of vehicles: the Gantt chart shows at most `MAX_GANTT_ROWS` vehicles, evenly sampled
by first selection (its title says how many of how many), while the phase counts below it, the map, the drops
and the air traffic aggregate every vehicle. Bytes on the air are a transfer's bytes spread evenly over its
duration and split at its handovers in proportion to the time spent at each RSU (events.csv records a
transfer's total, not the bytes carried between handovers): exact per transfer, approximate within one.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch

from .figstyle import (CAUSE_COLOURS, DOUBLE_COLUMN_IN, PHASE_COLOURS, PHASE_LABELS, check_format, colour_of,
                       legend_outside, save, styled)
from .results import RunResult, is_run_dir, load_run

__all__ = ["plot_network", "network_figures", "phase_intervals", "outcomes", "transfer_segments",
           "sample_vehicles", "timeline_figure", "road_map_figure", "drops_figure", "air_traffic_figure",
           "MAX_GANTT_ROWS", "MAX_RSU_LINES", "PHASES"]

PHASES = ("selected", "download", "compute", "wait_coverage", "upload")
"""A selected client's phases, in order (events.csv kinds ``<phase>_start`` / ``<phase>_end``, and
``wait_coverage`` with its ``duration_s``)."""
MAX_GANTT_ROWS = 40
"""Vehicles shown in the Gantt chart; more are sampled evenly by first selection (the title says so)."""
MAX_RSU_LINES = 8
"""RSUs drawn as lines in the air-traffic figure; more are drawn as a heat map (RSU x time)."""
_TIME_BINS = 150


# ------------------------------------------------------------------------------------------- tables
def phase_intervals(events: pd.DataFrame, *, end_s: float | None = None) -> pd.DataFrame:
    """One row per phase a selected vehicle went through: ``vehicle, round, phase, start_s, end_s``.

    A phase still open at the end (the run stopped) ends at ``end_s`` (default: the last event's time); a
    phase cut by a drop ends at the drop. ``wait_coverage`` lasts its event's ``duration_s``.
    """
    columns = ["vehicle", "round", "phase", "start_s", "end_s"]
    if events is None or events.empty:
        return pd.DataFrame(columns=columns)
    stop = float(events["time_s"].max()) if end_s is None else float(end_s)
    ev = events[events["vehicle"] >= 0]
    rows: list[tuple[int, int, str, float, float]] = []
    for v, group in ev.groupby("vehicle", sort=True):
        open_: dict[str, tuple[float, int]] = {}

        def close(phase: str, t: float) -> None:
            start, rnd = open_.pop(phase)
            rows.append((int(v), rnd, phase, start, max(t, start)))

        for t, rnd, kind, dur in zip(group["time_s"].to_numpy(float), group["round"].to_numpy(np.int64),
                                     group["kind"].astype(str), group["duration_s"].to_numpy(float)):
            t, rnd = float(t), int(rnd)
            if kind == "selected":
                for phase in list(open_):
                    close(phase, t)
                open_["selected"] = (t, rnd)
            elif kind.endswith("_start") and kind[:-6] in PHASES:
                if "selected" in open_:
                    close("selected", t)
                open_[kind[:-6]] = (t, rnd)
            elif kind.endswith("_end") and kind[:-4] in open_:
                close(kind[:-4], t)
            elif kind == "wait_coverage":
                open_["wait_coverage"] = (t, rnd)
                rows.append((int(v), rnd, "wait_coverage", t, t + float(dur)))
                open_.pop("wait_coverage")
            elif kind in ("arrived", "dropped"):
                for phase in list(open_):
                    close(phase, t)
        for phase in list(open_):
            close(phase, stop)
    out = pd.DataFrame(rows, columns=columns)
    # a drop cuts a coverage wait short
    drops = ev[ev["kind"] == "dropped"]
    if len(out) and len(drops):
        waits = out.index[out["phase"] == "wait_coverage"]
        for i in waits:
            later = drops[(drops["vehicle"] == out.at[i, "vehicle"]) & (drops["time_s"] >= out.at[i, "start_s"])]
            if len(later):
                out.at[i, "end_s"] = min(out.at[i, "end_s"], float(later["time_s"].iloc[0]))
    return out.sort_values(["vehicle", "start_s"], kind="stable").reset_index(drop=True)


def outcomes(events: pd.DataFrame) -> pd.DataFrame:
    """Each selected update's end: ``time_s, round, vehicle, outcome`` (arrived | dropped) and ``cause``."""
    ev = events[events["kind"].isin(("arrived", "dropped"))]
    return pd.DataFrame({"time_s": ev["time_s"].to_numpy(float), "round": ev["round"].to_numpy(np.int64),
                         "vehicle": ev["vehicle"].to_numpy(np.int64), "outcome": ev["kind"].astype(str).to_numpy(),
                         "cause": ev["cause"].fillna("").astype(str).to_numpy()})


def transfer_segments(events: pd.DataFrame) -> pd.DataFrame:
    """Each transfer's stretches at one RSU: ``vehicle, direction (up|down), rsu, start_s, end_s, bytes,
    handover`` (true when the stretch begins with a handover to ``rsu``).

    A transfer runs from its ``*_start`` to its ``*_end`` event (same vehicle); its ``handover`` events in
    between split it. Its carried bytes (the end event's ``bytes``) are spread evenly over its duration.
    A zero-length transfer keeps its bytes in one segment.
    """
    ev = events[events["vehicle"] >= 0]
    ev = ev[ev["kind"].isin(("download_start", "download_end", "upload_start", "upload_end", "handover"))]
    rows: list[tuple[int, str, int, float, float, float, bool]] = []
    for v, group in ev.groupby("vehicle", sort=True):
        current: dict[str, Any] | None = None
        for t, kind, rsu, nbytes in zip(group["time_s"].to_numpy(float), group["kind"].astype(str),
                                        group["rsu"].to_numpy(np.int64), group["bytes"].to_numpy(float)):
            t = float(t)
            if kind.endswith("_start"):
                current = {"dir": "down" if kind.startswith("download") else "up", "cuts": [(t, int(rsu))]}
            elif kind == "handover" and current is not None:
                current["cuts"].append((t, int(rsu)))
            elif kind.endswith("_end") and current is not None:
                cuts, total = current["cuts"], float(nbytes)
                start = cuts[0][0]
                span = t - start
                for k, (t0, r) in enumerate(cuts):
                    t1 = cuts[k + 1][0] if k + 1 < len(cuts) else t
                    share = (t1 - t0) / span if span > 0 else (1.0 if k == len(cuts) - 1 else 0.0)
                    if r >= 0 and (t1 > t0 or span <= 0 or k > 0):
                        rows.append((int(v), current["dir"], r, t0, t1, total * share, k > 0))
                current = None
    return pd.DataFrame(rows, columns=["vehicle", "direction", "rsu", "start_s", "end_s", "bytes", "handover"])


def sample_vehicles(intervals: pd.DataFrame, max_rows: int = MAX_GANTT_ROWS) -> tuple[list[int], int]:
    """``(shown, total)``: the vehicles that were selected, ordered by first selection, evenly thinned to
    at most ``max_rows``."""
    if intervals.empty:
        return [], 0
    first = intervals.groupby("vehicle")["start_s"].min().sort_values(kind="stable")
    ids = first.index.to_numpy(np.int64)
    if ids.size <= max_rows:
        return ids.tolist(), int(ids.size)
    pick = np.unique(np.round(np.linspace(0, ids.size - 1, max_rows)).astype(np.int64))
    return ids[pick].tolist(), int(ids.size)


def _end_s(run: RunResult) -> float:
    ends = [float(run.rounds["sim_time_s"].max())] if "sim_time_s" in run.rounds else []
    if run.events is not None and len(run.events):
        ends.append(float(run.events["time_s"].max()))
    return max(ends) if ends else 0.0


def _round_times(run: RunResult) -> np.ndarray:
    r = run.rounds
    if "round" not in r or "sim_time_s" not in r:
        return np.zeros(0)
    return r.loc[r["round"] > 0, "sim_time_s"].to_numpy(float)


def _title(run: RunResult, what: str) -> str:
    config = run.config or {}
    name = str(config.get("name") or Path(run.out_dir).name)
    seed = f" (seed {config['seed']})" if "seed" in config else ""
    return f"{name}{seed}: {what}"


def _phase_handles(phases: Sequence[str]) -> list[Patch]:
    return [Patch(color=PHASE_COLOURS[p], label=PHASE_LABELS[p]) for p in phases]


def _cause_colour(cause: str) -> str:
    return CAUSE_COLOURS.get(cause, "#636363")


# ----------------------------------------------------------------------------------------- figures
@styled()
def timeline_figure(run: RunResult, *, max_rows: int = MAX_GANTT_ROWS) -> Figure:
    """The per-vehicle Gantt chart over the phase counts of every vehicle (see the module docstring)."""
    end = _end_s(run)
    intervals = phase_intervals(run.events, end_s=end)
    shown, total = sample_vehicles(intervals, max_rows)
    rows = len(shown)
    fig = Figure(figsize=(DOUBLE_COLUMN_IN, 1.6 + 0.09 * max(rows, 8) + 1.3), layout="constrained")
    gs = fig.add_gridspec(2, 1, height_ratios=[max(rows, 8) * 0.09 + 0.6, 1.3])
    ax = fig.add_subplot(gs[0])
    ax2 = fig.add_subplot(gs[1], sharex=ax)
    y_of = {v: i for i, v in enumerate(shown)}
    sub = intervals[intervals["vehicle"].isin(shown)]
    for phase in PHASES:
        part = sub[sub["phase"] == phase]
        if part.empty:
            continue
        ys = part["vehicle"].map(y_of).to_numpy(float)
        x0, x1 = part["start_s"].to_numpy(float), part["end_s"].to_numpy(float)
        verts = [[(a, y - 0.38), (a, y + 0.38), (b, y + 0.38), (b, y - 0.38)] for a, b, y in zip(x0, x1, ys)]
        ax.add_collection(PolyCollection(verts, facecolors=PHASE_COLOURS[phase], edgecolors=PHASE_COLOURS[phase],
                                         linewidths=0.4))
    ends = outcomes(run.events)
    ends = ends[ends["vehicle"].isin(shown)]
    arrived = ends[ends["outcome"] == "arrived"]
    ax.plot(arrived["time_s"], arrived["vehicle"].map(y_of), linestyle="none", marker="o", markersize=3,
            markerfacecolor="white", markeredgecolor="black", markeredgewidth=0.7, zorder=4)
    dropped = ends[ends["outcome"] == "dropped"]
    causes = sorted(dropped["cause"].unique())
    for cause in causes:
        d = dropped[dropped["cause"] == cause]
        ax.plot(d["time_s"], d["vehicle"].map(y_of), linestyle="none", marker="X", markersize=5,
                color=_cause_colour(cause), markeredgecolor="black", markeredgewidth=0.3, zorder=5)
    for t in _round_times(run):
        ax.axvline(t, color="0.35", linewidth=0.5, linestyle="--", zorder=0)
        ax2.axvline(t, color="0.35", linewidth=0.5, linestyle="--", zorder=0)
    ax.set_ylim(-0.7, max(rows, 1) - 0.3)
    ax.invert_yaxis()
    ax.set_xlim(0.0, end if end > 0 else 1.0)
    if rows <= 20:
        ax.set_yticks(range(rows), [str(v) for v in shown])
    else:
        step = int(np.ceil(rows / 20))
        ax.set_yticks(range(0, rows, step), [str(v) for v in shown[::step]])
    ax.set_ylabel("vehicle")
    ax.grid(axis="y", visible=False)
    ax.tick_params(labelbottom=False)
    sampled = f"all {total} selected vehicles" if rows == total else (
        f"{rows} of {total} selected vehicles, evenly sampled by first selection")
    ax.set_title(_title(run, "client timeline") + f"\n{sampled}", loc="left")
    # every vehicle: how many are in each phase over time (aggregate, not sampled)
    grid = np.linspace(0.0, end if end > 0 else 1.0, 400)
    stacks = []
    used = []
    for phase in PHASES[1:]:
        part = intervals[intervals["phase"] == phase]
        if part.empty:
            continue
        s = np.sort(part["start_s"].to_numpy(float))
        e = np.sort(part["end_s"].to_numpy(float))
        stacks.append(np.searchsorted(s, grid, side="right") - np.searchsorted(e, grid, side="right"))
        used.append(phase)
    if stacks:
        ax2.stackplot(grid, np.vstack(stacks), colors=[PHASE_COLOURS[p] for p in used], step="post",
                      linewidth=0)
    ax2.set_xlabel("simulated time [s]")
    ax2.set_ylabel("vehicles")
    ax2.set_title(f"vehicles in each phase (all {total})", loc="left")
    lasting = intervals[intervals["end_s"] > intervals["start_s"]]
    handles: list[Any] = _phase_handles([p for p in PHASES if p in set(lasting["phase"])])
    handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="white", markeredgecolor="black",
                          label="arrived"))
    handles += [Line2D([], [], linestyle="none", marker="X", color=_cause_colour(c), markeredgecolor="black",
                       markeredgewidth=0.3, label=f"dropped: {c}") for c in causes]
    handles.append(Line2D([], [], color="0.35", linestyle="--", linewidth=0.5, label="aggregation"))
    legend_outside(fig, handles)
    return fig


def _track_phases(tracks: pd.DataFrame, intervals: pd.DataFrame) -> np.ndarray:
    """The phase of each tracks.csv row (``idle`` outside every phase)."""
    phase = np.full(len(tracks), "idle", dtype=object)
    if tracks.empty or intervals.empty:
        return phase
    t = tracks["time_s"].to_numpy(float)
    v = tracks["vehicle"].to_numpy(np.int64)
    for p in PHASES[1:]:
        part = intervals[intervals["phase"] == p]
        for vehicle, group in part.groupby("vehicle"):
            rows = np.flatnonzero(v == vehicle)
            if not rows.size:
                continue
            s, e = group["start_s"].to_numpy(float), group["end_s"].to_numpy(float)
            inside = ((t[rows, None] >= s[None, :]) & (t[rows, None] < e[None, :])).any(axis=1)
            phase[rows[inside]] = p
    return phase


def _track_segments(tracks: pd.DataFrame, phase: np.ndarray, x: np.ndarray, y: np.ndarray
                    ) -> dict[str, list[np.ndarray]]:
    """Line segments between consecutive samples of one vehicle, grouped by the phase at their start."""
    v = tracks["vehicle"].to_numpy(np.int64)
    same = v[1:] == v[:-1]
    a = np.flatnonzero(same)
    segs: dict[str, list[np.ndarray]] = {}
    for p in ("idle", *PHASES[1:]):
        k = a[phase[a] == p]
        if k.size:
            segs[p] = np.stack([np.stack([x[k], y[k]], axis=1), np.stack([x[k + 1], y[k + 1]], axis=1)], axis=1)
    return segs


@styled()
def road_map_figure(run: RunResult) -> Figure:
    """The road, the RSUs and their coverage, the tracks by phase; a time-space panel on a highway."""
    world = run.world or {}
    road = world.get("road") or {}
    rsus = world.get("rsus") or {}
    tracks = run.tracks if run.tracks is not None else pd.DataFrame(columns=["time_s", "vehicle", "x_m", "y_m"])
    tracks = tracks.sort_values(["vehicle", "time_s"], kind="stable").reset_index(drop=True)
    intervals = phase_intervals(run.events, end_s=_end_s(run))
    phase = _track_phases(tracks, intervals)
    highway = road.get("name") == "highway"
    xs = np.asarray(rsus.get("x_m") or [], dtype=float)
    ys = np.asarray(rsus.get("y_m") or [], dtype=float)
    radius = rsus.get("coverage_radius_m")
    lines = [np.asarray(p, dtype=float) for p in road.get("polylines") or []]
    pts = np.concatenate([*lines, np.stack([xs, ys], axis=1).reshape(-1, 2),
                          tracks[["x_m", "y_m"]].to_numpy(float).reshape(-1, 2)]) if (lines or len(xs) or len(tracks)) \
        else np.zeros((1, 2))
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    pad = max(float(radius or 0.0) * 0.15, 0.03 * max(x1 - x0, y1 - y0, 1.0))
    if highway:
        fig = Figure(figsize=(DOUBLE_COLUMN_IN, 5.2), layout="constrained")
        gs = fig.add_gridspec(2, 1, height_ratios=[1.6, 2.2])
        ax = fig.add_subplot(gs[0])
        ts = fig.add_subplot(gs[1])
    else:
        width = x1 - x0 + 2 * pad
        height = y1 - y0 + 2 * pad
        fig = Figure(figsize=(DOUBLE_COLUMN_IN, min(max(DOUBLE_COLUMN_IN * 0.75 * height / max(width, 1.0), 2.4), 6.5)),
                     layout="constrained")
        ax, ts = fig.add_subplot(), None
    if lines:
        ax.add_collection(LineCollection(lines, colors="0.55", linewidths=0.8 if road.get("kind") != "trace" else 0.5,
                                         zorder=1))
    if radius:
        for x, y in zip(xs, ys):
            ax.add_patch(Circle((x, y), float(radius), facecolor="#fdd49e", alpha=0.18, edgecolor="#d94801",
                                linewidth=0.6, linestyle="--", zorder=0))
    x = tracks["x_m"].to_numpy(float)
    y = tracks["y_m"].to_numpy(float)
    segs = _track_segments(tracks, phase, x, y)
    for p, s in segs.items():
        ax.add_collection(LineCollection(s, colors=PHASE_COLOURS[p], linewidths=0.5 if p == "idle" else 1.4,
                                         alpha=0.6 if p == "idle" else 0.95, zorder=2 if p == "idle" else 3,
                                         capstyle="round"))
    ax.plot(xs, ys, linestyle="none", marker="^", markersize=6, color="black", zorder=6)
    for i, (x_, y_) in enumerate(zip(xs, ys)):
        if len(xs) <= 30:
            ax.annotate(str(i), (x_, y_), xytext=(3, 3), textcoords="offset points", fontsize=6, zorder=6)
    ax.set_aspect("equal", adjustable="box")
    if highway and radius:
        ax.set_ylim(min(y0, float(ys.min()) - float(radius)) - pad if len(ys) else y0 - pad,
                    max(y1, float(ys.max()) + float(radius)) + pad if len(ys) else y1 + pad)
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    vehicles = int(tracks["vehicle"].nunique()) if len(tracks) else 0
    note = "ideal network: always connected" if world.get("network") == "ideal" else (
        f"coverage radius {float(radius):.0f} m" if radius else "no coverage radius recorded")
    source = {"trace": "SUMO trace geometry", "streets": "street grid", "lanes": "lane centres",
              "paths": "vehicle paths"}.get(
        str(road.get("kind")), "road")
    ax.set_title(_title(run, "road map") + f"\n{source}, {len(xs)} RSUs, {note},\ntracks of {vehicles} vehicles",
                 loc="left")
    if ts is not None:
        t = tracks["time_s"].to_numpy(float)
        for p, s in _track_segments(tracks, phase, t, x).items():
            ts.add_collection(LineCollection(s, colors=PHASE_COLOURS[p], linewidths=0.5 if p == "idle" else 1.3,
                                             alpha=0.6 if p == "idle" else 0.95, zorder=2 if p == "idle" else 3))
        if radius:
            for x_, y_ in zip(xs, ys):
                half = float(np.sqrt(max(float(radius) ** 2 - float(y_) ** 2, 0.0)))
                ts.axhspan(x_ - half, x_ + half, color="#fdd49e", alpha=0.25, linewidth=0, zorder=0)
                ts.axhline(x_, color="black", linewidth=0.5, linestyle=":", zorder=1)
        for tr in _round_times(run):
            ts.axvline(tr, color="0.35", linewidth=0.5, linestyle="--", zorder=1)
        ts.set_xlim(0.0, max(_end_s(run), 1e-9))
        ts.set_ylim(x0 - pad, x1 + pad)
        ts.set_xlabel("simulated time [s]")
        ts.set_ylabel("position along the road x [m]")
        ts.set_title("time-space diagram (shaded: RSU coverage along the road; dashed: aggregations)", loc="left")
    used = [p for p in ("idle", *PHASES[1:]) if p in segs]
    handles: list[Any] = _phase_handles(used)
    handles.append(Line2D([], [], linestyle="none", marker="^", color="black", label="RSU"))
    if radius:
        handles.append(Patch(facecolor="#fdd49e", edgecolor="#d94801", linestyle="--", label="coverage"))
    legend_outside(fig, handles)
    return fig


@styled()
def drops_figure(run: RunResult) -> Figure:
    """Per round (events' ``round``), the updates that arrived and the drops by cause, stacked."""
    ends = outcomes(run.events)
    fig = Figure(figsize=(DOUBLE_COLUMN_IN, 2.4), layout="constrained")
    ax = fig.add_subplot()
    rounds = np.sort(ends["round"].unique()) if len(ends) else np.zeros(0, dtype=np.int64)
    bottom = np.zeros(rounds.size)
    handles: list[Any] = []
    arrived = ends[ends["outcome"] == "arrived"].groupby("round").size().reindex(rounds, fill_value=0).to_numpy()
    width = 0.8
    if arrived.any():
        ax.bar(rounds, arrived, width=width, color="#c7e9c0", edgecolor="#31a354", linewidth=0.5, bottom=bottom)
        handles.append(Patch(facecolor="#c7e9c0", edgecolor="#31a354", label="arrived"))
        bottom = bottom + arrived
    dropped = ends[ends["outcome"] == "dropped"]
    for cause in sorted(dropped["cause"].unique()):
        n = dropped[dropped["cause"] == cause].groupby("round").size().reindex(rounds, fill_value=0).to_numpy()
        ax.bar(rounds, n, width=width, bottom=bottom, color=_cause_colour(cause), linewidth=0)
        handles.append(Patch(color=_cause_colour(cause), label=f"dropped: {cause}"))
        bottom = bottom + n
    ax.set_xlabel("round")
    ax.set_ylabel("selected updates")
    if rounds.size and rounds.size <= 30:
        ax.set_xticks(rounds)
    total = int(len(dropped))
    ax.set_title(_title(run, "selected updates per round") + f"\n{int(arrived.sum())} arrived, {total} dropped",
                 loc="left")
    ax.grid(axis="x", visible=False)
    if handles:
        legend_outside(fig, handles)
    return fig


def _bins(end: float) -> np.ndarray:
    """About `_TIME_BINS` bins of a round width (1, 2, 5 x 10^k s) over [0, end]."""
    raw = max(end, 1e-9) / _TIME_BINS
    k = 10.0 ** np.floor(np.log10(raw))
    width = next(m * k for m in (1, 2, 5, 10) if m * k >= raw)
    return np.arange(0.0, end + width, width)


def _binned_bytes(segs: pd.DataFrame, edges: np.ndarray) -> np.ndarray:
    """Bytes of ``segs`` falling into each bin (each segment's bytes spread evenly over its time)."""
    out = np.zeros(edges.size - 1)
    for t0, t1, b in zip(segs["start_s"].to_numpy(float), segs["end_s"].to_numpy(float), segs["bytes"].to_numpy(float)):
        if t1 <= t0:
            out[min(max(np.searchsorted(edges, t0, side="right") - 1, 0), out.size - 1)] += b
            continue
        overlap = np.clip(np.minimum(edges[1:], t1) - np.maximum(edges[:-1], t0), 0.0, None)
        out += b * overlap / (t1 - t0)
    return out


@styled()
def air_traffic_figure(run: RunResult) -> Figure:
    """Bytes on the air per RSU over time, uplink and downlink panels, handovers marked."""
    segs = transfer_segments(run.events)
    end = _end_s(run)
    edges = _bins(end)
    width = float(edges[1] - edges[0]) if edges.size > 1 else 1.0
    n_rsus = len((run.world or {}).get("rsus", {}).get("x_m") or []) or (int(segs["rsu"].max()) + 1 if len(segs) else 0)
    heat = n_rsus > MAX_RSU_LINES
    fig = Figure(figsize=(DOUBLE_COLUMN_IN, 3.6), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    image = None
    n_handovers = 0
    for ax, direction, label in zip(axes, ("up", "down"), ("uplink", "downlink")):
        part = segs[segs["direction"] == direction]
        rates = np.stack([_binned_bytes(part[part["rsu"] == r], edges) for r in range(n_rsus)]) * 8e-3 / width \
            if n_rsus else np.zeros((0, edges.size - 1))
        if heat:
            image = ax.imshow(rates, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
                              extent=(edges[0], edges[-1], -0.5, n_rsus - 0.5))
            ax.set_ylabel(f"{label}\nRSU")
            ax.grid(False)
        else:
            for r in range(n_rsus):
                ax.stairs(rates[r], edges, color=colour_of(r), linewidth=1.0, label=f"RSU {r}")
            ax.set_ylabel(f"{label} [kbit/s]")
            ax.set_ylim(bottom=0)
        ho = part[part["handover"]]
        n_handovers += len(ho)
        if len(ho):
            low, high = ax.get_ylim()
            ax.plot(ho["start_s"], np.full(len(ho), low + 0.03 * (high - low)) if not heat else ho["rsu"],
                    linestyle="none", marker="|", markersize=7, color="black" if not heat else "white",
                    alpha=0.8, zorder=4)
    axes[-1].set_xlabel("simulated time [s]")
    axes[-1].set_xlim(0.0, edges[-1] if edges.size else 1.0)
    how = "heat map, colour: kbit/s" if heat else "mean rate per bin"
    axes[0].set_title(_title(run, "bytes on the air per RSU") + f"\n{how}, {width:g} s bins; {n_handovers} "
                      "handovers during transfers (|)", loc="left")
    if heat and image is not None:
        fig.colorbar(image, ax=list(axes), label="kbit/s", shrink=0.8)
    elif n_rsus:
        handles = [Line2D([], [], color=colour_of(r), label=f"RSU {r}") for r in range(n_rsus)]
        handles.append(Line2D([], [], linestyle="none", marker="|", markersize=7, color="black",
                              label="handover (time)"))
        legend_outside(fig, handles)
    return fig


# ------------------------------------------------------------------------------------------- files
FIGURES = {"timeline": timeline_figure, "road_map": road_map_figure, "drops_by_cause": drops_figure,
           "air_traffic": air_traffic_figure}
"""File stem -> figure builder (each takes a `RunResult`)."""


def network_figures(run: RunResult) -> dict[str, Figure]:
    """Every network figure of ``run`` that its files allow (the road map needs world.json), by file stem."""
    if run.events is None:
        return {}
    out = {}
    for stem, build in FIGURES.items():
        if stem == "road_map" and not run.world:
            continue
        out[stem] = build(run)
    return out


def plot_network(run_dir: str | Path, *, fmt: str = "png", out_dir: str | Path | None = None,
                 run: RunResult | None = None, missing_ok: bool = False) -> list[Path]:
    """Draw the network figures of a finished run into ``out_dir`` (default ``<run_dir>/plots``) as
    ``<stem>.<fmt>`` (``png``, ``pdf`` or ``svg``); returns the files written. With ``missing_ok``, a
    directory that is not a finished run with events draws nothing (instead of a `ScenarioError`)."""
    fmt = check_format(fmt)
    if run is None:
        if missing_ok and not (is_run_dir(run_dir) and any((Path(run_dir) / f"events.{x}").is_file()
                                                           for x in ("csv", "parquet"))):
            return []
        run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    return [save(fig, out / f"{stem}.{fmt}") for stem, fig in network_figures(run).items()]
