"""One self-contained HTML report per run or sweep directory (``report.html``): figures, summary, tables.

Everything is inside the one file: figures are PNG images embedded as ``data:`` URIs, the style sheet is
inline, there is no script and no link to the network, so the file opens offline, can be mailed or
attached to a lab notebook. Drawn from the directory's files alone, like every figure
(``vfedsim plot DIR`` rewrites it; ``vfedsim run`` and ``vfedsim sweep`` write it with their plots).

A run's report: the headline numbers (rounds, simulated time, bytes, arrived/selected, drops by cause,
handovers, energy, fairness), metrics pretrained / final / best, the accuracy and network figures
(`vfedsim.plot.plot_run`, `vfedsim.netfigures`), rounds.csv, events by kind and by cause, vehicles.csv (the
first `MAX_TABLE_ROWS` rows) and the resolved scenario. A sweep's: the experiment, the summary table per
policy (`vfedsim.plot.summary_table`), the sweep figures, results.csv, and links to each run's own report.
"""
from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import ScenarioError
from .record import atomic_write_text

__all__ = ["write_report", "run_report", "sweep_report", "MAX_TABLE_ROWS"]

MAX_TABLE_ROWS = 500
"""Rows of a long table (vehicles, rounds of an async run) shown in the report; the CSV has them all."""
_FIGURE_DPI = 110

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0 auto;max-width:1100px;
padding:0 1.2rem 3rem;color:#222;line-height:1.45}
h1{font-size:1.5rem;margin:1.2rem 0 .2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.sub{color:#666;margin:0 0 1rem}.cards{display:flex;flex-wrap:wrap;gap:.6rem}
.card{border:1px solid #ddd;border-radius:6px;padding:.45rem .7rem;min-width:8.5rem}
.card b{display:block;font-size:1.1rem}.card span{color:#666;font-size:.8rem}
table{border-collapse:collapse;font-size:.78rem;margin:.4rem 0}th,td{padding:.15rem .5rem;text-align:right;
border-bottom:1px solid #eee;white-space:nowrap}th{background:#f6f6f6;position:sticky;top:0}
td:first-child,th:first-child{text-align:left}.scroll{max-height:26rem;overflow:auto;border:1px solid #eee}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.85rem}pre{background:#f6f6f6;padding:.6rem;overflow:auto;font-size:.75rem}
details summary{cursor:pointer;color:#245}.note{color:#666;font-size:.85rem}
"""


# -------------------------------------------------------------------------------------------- pieces
def _esc(value: Any) -> str:
    return html.escape(str(value))


def _page(title: str, subtitle: str, body: Iterable[str]) -> str:
    from . import __version__

    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n<h1>{_esc(title)}</h1><p class=\"sub\">{subtitle}</p>\n"
            + "\n".join(body)
            + f"\n<p class=\"note\">Written by vfedsim {__version__} from the directory's files; self-contained "
              "(no network access needed).</p></body></html>\n")


def _cards(items: Sequence[tuple[str, str]]) -> str:
    return "<div class=\"cards\">" + "".join(f"<div class=\"card\"><b>{_esc(v)}</b><span>{_esc(k)}</span></div>"
                                             for k, v in items) + "</div>"


def _table(df: Any, *, index: bool = False, max_rows: int = MAX_TABLE_ROWS, what: str = "rows") -> str:
    """A pandas frame as an HTML table (numbers at 4 significant digits), the first ``max_rows`` rows."""
    note = ""
    if len(df) > max_rows:
        note = f"<p class=\"note\">First {max_rows} of {len(df)} {what}; the CSV file has all of them.</p>"
        df = df.head(max_rows)

    body = df.to_html(index=index, border=0, na_rep="", float_format=lambda v: f"{v:.4g}", escape=True)
    return note + f"<div class=\"scroll\">{body}</div>"


def _figure(name: str, fig: Any, caption: str = "") -> str:
    from .figstyle import render

    data = base64.b64encode(render(fig, "png", dpi=_FIGURE_DPI)).decode("ascii")
    return (f"<figure><img alt=\"{_esc(name)}\" src=\"data:image/png;base64,{data}\">"
            + (f"<figcaption>{_esc(caption)}</figcaption>" if caption else "") + "</figure>")


def _bytes(n: Any) -> str:
    try:
        n = float(n)
    except (TypeError, ValueError):
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


_CAPTIONS = {
    "accuracy_vs_time": "Each task's accuracy (solid) and macro-F1 (dashed) against simulated time; the star is "
                        "the pretrained model (round 0).",
    "accuracy_vs_uplink_bytes": "The same against cumulative uplink traffic.",
    "accuracy_by_suite": "Mean accuracy as each partial sensor suite's vehicles run the global model.",
    "timeline": "Per selected vehicle: its phases, arrivals (o) and drops (x, coloured by cause); dashed lines "
                "are aggregations. Below: how many vehicles are in each phase, all of them.",
    "road_map": "RSUs with their coverage radius, and the tracks of the vehicles in tracks.csv coloured by "
                "phase (grey: not engaged).",
    "drops_by_cause": "Per round, the selected updates that arrived and those dropped, by cause.",
    "air_traffic": "Bytes on the air per RSU (a transfer's bytes spread over its duration, split at "
                   "handovers), uplink and downlink.",
}


# ----------------------------------------------------------------------------------------------- run
def run_report(run_dir: str | Path) -> str:
    """The HTML text of a finished run directory's report (see the module docstring)."""
    import pandas as pd
    import yaml

    from .figstyle import capture
    from .netfigures import network_figures
    from .plot import plot_run
    from .results import load_run

    run = load_run(run_dir)
    s = run.summary
    config = run.config or {}
    title = f"{config.get('name') or Path(run.out_dir).name} (seed {config.get('seed', '?')})"
    drops = s.get("drops_by_cause") or {}
    cards = [("rounds", str(s.get("rounds", "-"))), ("simulated time", f"{float(s.get('sim_time_s') or 0):.1f} s"),
             ("updates arrived / selected", f"{s.get('clients_arrived_total', '-')} / {s.get('clients_selected_total', '-')}"),
             ("uplink", _bytes(s.get("bytes_up_total"))), ("downlink", _bytes(s.get("bytes_down_total"))),
             ("dropped", str(sum(drops.values())) if drops else "0"), ("handovers", str(s.get("handovers", "-"))),
             ("energy (compute + radio)",
              f"{float(s.get('energy_compute_j') or 0) + float(s.get('energy_tx_j') or 0):.1f} J"),
             ("Jain fairness of selection", f"{s['jain_fairness_selected']:.3f}"
              if isinstance(s.get("jain_fairness_selected"), (int, float)) else "-"),
             ("vehicles present", str(s.get("vehicles_present", "-")))]
    body = ["<h2>Summary</h2>", _cards(cards)]
    if drops:
        body.append("<p>Drops by cause: " + ", ".join(f"{_esc(k)} {v}" for k, v in drops.items()) + "</p>")
    final, pre, best = s.get("final") or {}, s.get("pretrained") or {}, s.get("best") or {}
    final = {k: v for k, v in final.items() if not k.startswith("bytes_up.")}  # traffic, not a metric
    if final:
        metrics = pd.DataFrame({"pretrained": pd.Series(pre, dtype=float), "final": pd.Series(final, dtype=float),
                                "best": pd.Series(best, dtype=float)}).loc[list(final)]
        metrics["change"] = metrics["final"] - metrics["pretrained"]
        metrics.index.name = "metric"
        body += ["<h2>Metrics</h2>", _table(metrics.reset_index())]
    body.append("<h2>Figures</h2>")
    with capture() as figures:
        try:
            plot_run(run.out_dir)
        except ScenarioError:
            pass
    drawn = {Path(name).stem: fig for name, fig in figures}
    drawn.update(network_figures(run))
    for stem, fig in drawn.items():
        body.append(_figure(stem, fig, _CAPTIONS.get(stem, "")))
    body += ["<h2>Rounds</h2><p class=\"note\">rounds.csv: one row per aggregation (row 0: the pretrained "
             "model).</p>", _table(run.rounds, what="rounds")]
    if run.events is not None and len(run.events):
        ev = run.events
        kinds = ev.groupby("kind").size().rename("events").reset_index()
        body += ["<h2>Events</h2>", f"<p>{len(ev)} events in events.csv, by kind:</p>", _table(kinds)]
        causes = ev[ev["cause"] != ""].groupby(["kind", "cause"]).size().rename("events").reset_index()
        if len(causes):
            body += ["<p>Failed transfers, cut training and drops, by cause:</p>", _table(causes)]
    if run.vehicles is not None:
        body += ["<h2>Vehicles</h2>", _table(run.vehicles.reset_index(), what="vehicles")]
    if config:
        body.append("<h2>Scenario</h2><details><summary>config.yaml (the resolved scenario)</summary><pre>"
                    + _esc(yaml.safe_dump(config, sort_keys=False)) + "</pre></details>")
    extra = {k: s[k] for k in ("payload_bytes", "wall_setup_s", "wall_time_s") if k in s}
    if extra:
        body.append("<details><summary>summary.json (other fields)</summary><pre>"
                    + _esc(json.dumps(extra, indent=1)) + "</pre></details>")
    sub = f"Run directory <code>{_esc(Path(run.out_dir).name)}</code>"
    return _page(f"vfedsim run: {title}", sub, body)


# --------------------------------------------------------------------------------------------- sweep
def sweep_report(sweep_dir: str | Path) -> str:
    """The HTML text of a finished sweep directory's report (see the module docstring)."""
    import yaml

    from .figstyle import capture
    from .plot import CURVE_AXES, DEFAULT_HUE, format_summary, plot_directory, plot_sweep, summary_table
    from .results import load_sweep

    sweep = load_sweep(sweep_dir)
    exp = sweep.experiment
    name = exp.get("name") or Path(sweep.out_dir).name
    res = sweep.results
    seeds = res["seed"].nunique() if "seed" in res.columns else 1
    body = ["<h2>Summary</h2>", _cards([("runs", str(len(res))), ("grid points", str(res["point_id"].nunique())
                                                                     if "point_id" in res else "-"),
                                        ("seeds", str(seeds)), ("grid keys", ", ".join(sweep.grid_keys) or "-")])]
    try:
        table = summary_table(sweep.out_dir, by=DEFAULT_HUE, write=False)
        body += ["<p>Per value of the grid's policy key (or the grid keys that vary): mean ± sample std over "
                 "runs.</p>", f"<pre>{_esc(format_summary(table))}</pre>"]
    except (ScenarioError, KeyError, ValueError):
        pass
    body.append("<h2>Figures</h2>")
    with capture() as figures:
        for call in (lambda: plot_directory(sweep.out_dir),
                     lambda: plot_sweep(sweep.out_dir, x="sim_time_s", hue=DEFAULT_HUE)
                     if sweep.rounds is not None and "sim_time_s" in sweep.rounds.columns
                     and "sim_time_s" not in sweep.grid_keys and "sim_time_s" in CURVE_AXES else None):
            try:
                call()
            except ScenarioError:
                continue
    for fname, fig in figures:
        body.append(_figure(Path(fname).stem, fig, Path(fname).stem.replace("_", " ")))
    cols = [c for c in res.columns if c in ("point_id", *sweep.grid_keys, "seed", "run_dir")
            or (isinstance(c, str) and c.endswith((".accuracy", ".macro_f1")) and not c.startswith("suite."))]
    body += ["<h2>Runs</h2><p class=\"note\">results.csv (final metrics; every column is in the file).</p>",
             _table(res[cols], what="runs")]
    links = []
    for run_dir in res.get("run_dir", []):
        report = Path(sweep.out_dir) / str(run_dir) / "report.html"
        if report.is_file():
            links.append(f"<li><a href=\"{_esc(Path(str(run_dir)) / 'report.html')}\">{_esc(Path(str(run_dir)).name)}"
                         "</a></li>")
    if links:
        body.append("<h2>Run reports</h2><ul>" + "".join(links) + "</ul>")
    body.append("<h2>Experiment</h2><pre>" + _esc(yaml.safe_dump(exp, sort_keys=False)) + "</pre>")
    return _page(f"vfedsim sweep: {name}", f"Sweep directory <code>{_esc(Path(sweep.out_dir).name)}</code>",
                 body)


def write_report(directory: str | Path) -> Path:
    """Write ``report.html`` into a finished run or sweep directory; returns its path."""
    from .results import is_run_dir, is_sweep_dir

    directory = Path(directory)
    if is_sweep_dir(directory):
        text = sweep_report(directory)
    elif is_run_dir(directory):
        text = run_report(directory)
    else:
        raise ScenarioError("DIR", f"{str(directory)!r} is neither a finished run directory (rounds.csv and "
                                   "summary.json) nor a sweep directory (results.csv)")
    path = directory / "report.html"
    atomic_write_text(path, text)
    return path
