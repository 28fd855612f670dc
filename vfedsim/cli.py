"""The ``vfedsim`` command: an adapter that parses arguments, calls the library and reports (STYLE.md, 14).

Exit status: 0 success; 2 bad input (a `ScenarioError`: one line naming the key path and the allowed values,
and nothing written); 1 a failure while running (one line; set ``VFEDSIM_DEBUG=1`` for the traceback);
130 interrupted. Heavy modules (torch, the engine, pandas, matplotlib) are imported only by the subcommands
that need them: ``vfedsim --help`` and ``vfedsim validate`` never import torch.
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import sys
import traceback
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ScenarioError, VfedsimError

__all__ = ["main", "build_parser", "default_run_dir", "describe_scenario"]

PROG = "vfedsim"
FIGURE_FORMATS = ("png", "pdf", "svg")
DEFAULT_DISTANCES_M = (10, 25, 50, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000)

# Optional extras (setup.cfg [options.extras_require]) by the module that is missing.
_EXTRAS = {"pyarrow": "parquet", "fastparquet": "parquet", "ray": "ray", "traci": "sumo", "sumolib": "sumo",
           "sumo": "sumo", "tensorboard": "tensorboard"}
_REQUIRED = {"torch", "peft", "simpy", "networkx", "numpy", "pandas", "matplotlib", "pydantic", "yaml", "tqdm",
             "highway_env", "gymnasium", "pygame"}


# --------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Network-in-the-loop co-simulation of federated LoRA fine-tuning over vehicular networks: "
                    "vehicles move past road-side units, their model updates travel over simulated radio "
                    "links, and only the updates that arrive in time are trained and aggregated.",
        epilog="Exit status: 0 ok, 2 invalid input (nothing written), 1 run failure. "
               "Set VFEDSIM_DEBUG=1 to see full tracebacks. Run 'vfedsim COMMAND --help' for details.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    def add_set(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one scenario key (dotted path; value parsed as YAML), e.g. "
                            "--set world.channel.bandwidth_hz=1e6 --set strategy.selection.name=coverage; "
                            "repeatable, applied in order")

    def add_format(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", dest="fmt", default="png", choices=FIGURE_FORMATS,
                       help="figure file format (default png; pdf and svg are vector graphics for papers)")

    def add_tensorboard(p: argparse.ArgumentParser, help_: str) -> None:
        p.add_argument("--tensorboard", metavar="DIR", type=Path, help=help_)

    def add_plugins(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plugins", action="append", default=[], metavar="FILE",
                       help="a Python file whose @register decorators add selection policies, aggregators, "
                            "... that the scenario can then name; repeatable")

    p = command("run", "run one scenario and write its run directory",
                "Validate SCENARIO (before anything is written), run it, and write a run directory:\n"
                "  rounds.csv     one row per aggregation (row 0: the pretrained model)\n"
                "  events.csv     one row per transfer/training event (or events.parquet)\n"
                "  vehicles.csv   one row per vehicle\n"
                "  config.yaml    the fully resolved scenario\n"
                "  tracks.csv     vehicles' positions over time (output.tracks), for the road map\n"
                "  world.json     road geometry, RSU sites, coverage radius\n"
                "  summary.json   final and pretrained metrics, drops by cause (written last)\n"
                "  plots/         accuracy vs simulated time and uplink traffic; the network: per-vehicle\n"
                "                 timeline, road map, drops by cause, bytes on the air per RSU\n"
                "  report.html    all of it in one self-contained page (opens offline)\n"
                "Prints the run directory and the final metrics against the pretrained model.")
    p.add_argument("scenario", metavar="SCENARIO.yaml", help="scenario file (see scenarios/)")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="run directory to create; must not exist or be empty "
                        "(default: runs/<name>-seed<seed>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--seed", type=int, metavar="N", help="scenario seed (overrides the file's `seed`)")
    add_set(p)
    add_plugins(p)
    p.add_argument("--no-plots", action="store_true", help="do not draw plots (also: output.plots: false)")
    add_format(p)
    add_tensorboard(p, "log every rounds.csv scalar per round and the config to TensorBoard in DIR/<run "
                       "directory name> (output.tensorboard: true logs into <run>/tensorboard); needs "
                       "pip install 'vfedsim[tensorboard]'")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bars and no summary; print only the run directory")
    p.set_defaults(handler=cmd_run)

    p = command("validate", "check scenario or experiment files without running anything",
                "Load and validate each SCENARIO with its overrides: schema, channel profile and the names\n"
                "of selection policies and aggregators. Prints 'ok: <name> (...)' per file. Fast: it never\n"
                "imports torch and writes nothing. An experiment file (one with `base:` and `grid:`) is\n"
                "recognised and every point x seed of it is validated, as `vfedsim sweep EXP --dry-run` does\n"
                "(which also lists the runs).")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO.yaml", help="scenario or experiment file(s)")
    p.add_argument("--seed", type=int, metavar="N", help="scenario seed (overrides the file's `seed`)")
    add_set(p)
    add_plugins(p)
    p.set_defaults(handler=cmd_validate)

    p = command("sweep", "run an experiment grid (keys x values x seeds)",
                "Run every point of EXPERIMENT's grid for every seed and write a sweep directory:\n"
                "  experiment.yaml              the resolved experiment\n"
                "  runs/<point-id>-seed<k>/     one run directory per point and seed\n"
                "  results.csv                  one row per run: grid keys, seed, final metrics\n"
                "  rounds.csv                   all rounds of all runs, with grid keys and seed\n"
                "  plots/                       final accuracy vs the grid's first key (or bandwidth)\n"
                "Every point is validated before any runs. Results do not depend on --jobs or --executor.\n"
                "Experiment file:\n"
                "  name: accuracy_vs_bandwidth\n"
                "  base: ../scenarios/tiny.yaml        # relative to the experiment file\n"
                "  set: [\"strategy.rounds=4\"]          # fixed overrides (optional)\n"
                "  grid:                               # cartesian product\n"
                "    world.channel.bandwidth_hz: [2.0e5, 1.0e6, 5.0e6]\n"
                "    strategy.selection.name: [random, coverage]\n"
                "  seeds: [0, 1]")
    p.add_argument("experiment", metavar="EXPERIMENT.yaml", help="experiment file (see experiments/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one scenario key for every point (after the experiment's own `set`; not a "
                        "grid key), e.g. --set strategy.rounds=2; repeatable")
    p.add_argument("--seeds", metavar="LIST",
                   help="seeds to run every point with, replacing the experiment's `seeds`: 0,1,2 or 0-4")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="sweep directory to create; must not exist or be empty "
                        "(default: sweeps/<name>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="run N points at a time in separate local processes (default 1: in this process); "
                        "with --executor ray and no cluster: the local Ray instance's CPUs")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local processes (default), or Ray tasks (pip install 'vfedsim[ray]'): a local Ray "
                        "instance, or the cluster at --ray-address / RAY_ADDRESS; nodes need no shared disk")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="Ray cluster to run on (e.g. auto, ray://head:10001); implies --executor ray")
    add_plugins(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out DIR (same experiment): run only the runs that did not "
                        "finish; the results equal an uninterrupted sweep's")
    p.add_argument("--dry-run", action="store_true", help="validate every point and list the runs; run nothing")
    p.add_argument("--no-plots", action="store_true", help="do not draw plots")
    add_format(p)
    add_tensorboard(p, "log each run to TensorBoard as DIR/<point-id>-seed<k> as it finishes (one TensorBoard "
                       "run per sweep run); needs pip install 'vfedsim[tensorboard]'")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress; print only the sweep directory (otherwise: one progress bar over the "
                        "runs, with an ETA)")
    p.set_defaults(handler=cmd_sweep)

    p = command("plot", "redraw the plots and report.html of a run or sweep directory",
                "Redraw figures from a finished directory's tables (no simulation), and write report.html\n"
                "(one self-contained file: figures, summary and tables; opens offline):\n"
                "  run directory (has rounds.csv):    plots/accuracy_vs_time.png, accuracy_vs_uplink_bytes.png,\n"
                "                                     and the network: timeline.png (per-vehicle phases),\n"
                "                                     road_map.png (RSUs, coverage, tracks by phase),\n"
                "                                     drops_by_cause.png, air_traffic.png (bytes per RSU)\n"
                "  sweep directory (has results.csv): plots/<metric>_vs_<x>.png, one subplot per task,\n"
                "                                     mean over seeds with a min-max band:\n"
                "    --x GRID_KEY    final metric against the key's values (default: bandwidth)\n"
                "    --x sim_time_s  metric curves against simulated time (accuracy_vs_time.png);\n"
                "                    also cum_bytes_up (_vs_uplink_bytes.png), cum_bytes_down, round\n"
                "    --table         no figure: print and write summary.csv (per --hue value: final\n"
                "                    accuracy and macro-F1, time to --target, MB up, drops by cause,\n"
                "                    Jain fairness, clients arrived/selected) and summary_runs.csv")
    p.add_argument("directory", metavar="DIR", type=Path, help="a run directory or a sweep directory")
    p.add_argument("--x", metavar="KEY",
                   help="sweeps: a grid key on the x axis (default world.channel.bandwidth_hz, else the first "
                        "grid key), or a rounds.csv column for curves: sim_time_s, cum_bytes_up, "
                        "cum_bytes_down, round")
    p.add_argument("--hue", metavar="KEY",
                   help="sweeps: grid key with one line (table: one row) per value (default "
                        "strategy.selection.name if it is in the grid)")
    p.add_argument("--metric", default="accuracy", choices=("accuracy", "macro_f1", "balanced_accuracy", "loss"),
                   help="sweeps: which metric to plot (default accuracy)")
    p.add_argument("--table", action="store_true",
                   help="sweeps: print and write summary.csv instead of drawing")
    add_format(p)
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--target", metavar="ACC",
                   help="with --table: mean accuracy to reach, absolute (0.8) or above each run's pretrained "
                        "model (+0.05; default +0.03)")
    p.set_defaults(handler=cmd_plot)

    p = command("pretrain", "build the data set and pretrained model a scenario needs",
                "Generate (or find cached) the scenario's data and centrally pretrained model, and print\n"
                "the cache path. `run` does this on demand; doing it once up front lets parallel sweeps\n"
                "share the cache. The cache is keyed by the learning settings only (not the seed);\n"
                "it lives in $VFEDSIM_CACHE (default ~/.cache/vfedsim) unless learning.data.cache_dir is set.")
    p.add_argument("scenario", metavar="SCENARIO.yaml", help="scenario file")
    add_set(p)
    add_plugins(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_pretrain)

    p = command("channel", "print a channel profile's median link budget by distance",
                "Print path loss, median SNR (no shadowing or fading) and link rate against distance for\n"
                "a channel PROFILE (a name from channels/ or a path to a profile .yaml):\n"
                "  vfedsim channel log-distance --set world.channel.bandwidth_hz=1e6 --distances 50,100,200,400\n"
                "Columns distance_m, path_loss_db, snr_db, rate_bps are the uplink LOS median (the profile's\n"
                "path_loss; with a LOS model also nlos_* columns and los_probability). 'covered' is the\n"
                "radio's coverage rule: the weaker direction's median SNR with the path loss of the profile's\n"
                "coverage_state (LOS, or NLOS for e.g. urban-grid and umi-rsu) is at least min_snr_db, the\n"
                "distance taken as the 3D one. Rates are for one transfer alone on the link (no sharing,\n"
                "no interference); concurrent transfers share it.")
    p.add_argument("profile", metavar="PROFILE", help="profile name (e.g. log-distance, 3gpp-highway) or file")
    p.add_argument("--distances", metavar="D1,D2,...",
                   help="comma-separated vehicle-RSU distances [m] "
                        f"(default {','.join(str(d) for d in DEFAULT_DISTANCES_M)})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile field by its scenario path, as run and sweep take it, e.g. "
                        "--set world.channel.bandwidth_hz=1e6 --set world.channel.path_loss.exponent=3.5 (the "
                        "bare field, bandwidth_hz=1e6, is accepted too); repeatable")
    p.add_argument("--csv", action="store_true", help="print CSV (exact values) instead of a table")
    p.add_argument("--plot", metavar="FILE", type=Path, help="also draw SNR and rate vs distance into FILE (.png)")
    p.set_defaults(handler=cmd_channel)

    p = command("net", "run a table of transfers over a scenario's network alone (no learning)",
                "Simulate only the network: start each transfer of T.csv at its time over SCENARIO's world\n"
                "(mobility, RSUs, channel, world.network) and report how it ended. Nothing of the learning is\n"
                "built and torch is not imported. T.csv columns (others are kept):\n"
                "  vehicle     a vehicle id of the scenario's mobility model (0 .. N-1)\n"
                "  start_s     when the transfer is requested [s], >= 0\n"
                "  direction   up (vehicle -> RSU) or down (RSU -> vehicle)\n"
                "  bytes       payload [B], a whole number >= 0\n"
                "R.csv (--out, else standard output) adds: end_s, ok, cause (empty when ok), bytes_done,\n"
                "rsu (-1: none), handovers, hops. A road 'static' puts vehicles at explicit positions:\n"
                "  world: {road: {name: static, positions_m: [[50, -6], [120, -6]]},\n"
                "          rsus: {positions_m: [[0, 0]]}}\n"
                "A bad table exits with status 2, naming its row (1 = first data row) and column; nothing\n"
                "is written.")
    p.add_argument("scenario", metavar="SCENARIO.yaml", help="scenario file (its world section is used)")
    p.add_argument("--transfers", metavar="T.csv", type=Path, required=True, help="the transfers to simulate")
    p.add_argument("--out", metavar="R.csv", type=Path, help="write the results here (default: standard output)")
    p.add_argument("--seed", type=int, metavar="N", help="scenario seed (overrides the file's `seed`)")
    add_set(p)
    add_plugins(p)
    p.set_defaults(handler=cmd_net)

    p = command("trace", "make a SUMO FCD trace for the sumo-fcd road (needs vfedsim[sumo])",
                "Generate a network (netgenerate: a 4 x 3 Manhattan grid of 433 m x 250 m blocks, or a straight\n"
                "2 km two-way highway), random trips (randomTrips.py) and simulate them with SUMO, writing its\n"
                "floating-car data (--fcd-output) to --out; a scenario replays it with\n"
                "  world: {road: {name: sumo-fcd, trace: FILE}}\n"
                "Needs SUMO: pip install 'vfedsim[sumo]' (without it: exit status 1 and that line).\n"
                "The same arguments give the same file.")
    p.add_argument("--net", choices=("grid", "highway"), default="grid", help="road network (default grid)")
    p.add_argument("--out", metavar="FILE", type=Path, required=True, help="trace to write (.xml or .xml.gz)")
    p.add_argument("--vehicles", type=int, default=30, metavar="N", help="random trips (default 30)")
    p.add_argument("--duration", type=float, default=120.0, metavar="S",
                   help="simulated seconds, at 1 s steps (default 120)")
    p.add_argument("--seed", type=int, default=0, metavar="K", help="SUMO and randomTrips seed (default 0)")
    p.set_defaults(handler=cmd_trace)

    p = command("init", "copy the example scenarios, channels and experiments into a new folder",
                "Copy the packaged examples into DIR (created; must not exist or be empty), so that they can\n"
                "be run and edited without the source repository:\n"
                "  DIR/scenarios/      quickstart.yaml, tiny.yaml, urban.yaml, sumo-grid.yaml (+ traces/)\n"
                "  DIR/channels/       the channel profiles (runs in DIR find them by name)\n"
                "  DIR/experiments/    the sweep definitions\n"
                "  DIR/examples/       custom_figure.py: run tiny, load it with load_run, draw a figure\n"
                "Then: cd DIR && vfedsim run scenarios/quickstart.yaml")
    p.add_argument("directory", metavar="DIR", type=Path, help="folder to create")
    p.set_defaults(handler=cmd_init)

    p = command("completion", "print the shell code for tab completion of vfedsim",
                "Print the code that makes your shell complete vfedsim's commands, options, files, channel\n"
                "profile names and --set keys (through argcomplete). Add to ~/.bashrc (or ~/.zshrc):\n"
                "  eval \"$(vfedsim completion bash)\"\n"
                "fish: vfedsim completion fish > ~/.config/fish/completions/vfedsim.fish")
    p.add_argument("shell", choices=("bash", "zsh", "fish", "tcsh"), help="your shell")
    p.set_defaults(handler=cmd_completion)
    _add_completers(parser)
    return parser


# ----------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vfedsim`` console script and of ``python -m vfedsim``; returns the exit status."""
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (see `vfedsim completion`)
        try:
            import argcomplete
        except ImportError:
            return 1
        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ScenarioError as exc:
        return _fail(str(exc), 2)
    except ImportError as exc:
        return _fail(_missing_module_message(exc), 1)
    except VfedsimError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 (the CLI turns every failure into one line)
        hint = "" if _debug() else " (set VFEDSIM_DEBUG=1 for the traceback)"
        return _fail(f"{type(exc).__name__}: {exc}{hint}", 1)


def _debug() -> bool:
    return os.environ.get("VFEDSIM_DEBUG", "").strip() not in ("", "0", "false", "no")


def _fail(message: str, status: int) -> int:
    if _debug():
        traceback.print_exc()
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return status


def _missing_module_message(exc: ImportError) -> str:
    name = (exc.name or "").split(".")[0]
    text = str(exc)
    if not name:  # e.g. pandas: "Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'"
        name = next((m for m in _EXTRAS if m in text), "")
    if name in _EXTRAS:
        extra = _EXTRAS[name]
        return f"this needs the optional package {name!r}: pip install 'vfedsim[{extra}]'"
    if name in _REQUIRED:
        return f"required package {name!r} is missing or broken ({text}); reinstall: pip install vfedsim"
    return f"{type(exc).__name__}: {text}"


# -------------------------------------------------------------------------------------------- helpers
def _load_plugins(args: argparse.Namespace) -> None:
    if getattr(args, "plugins", None):
        from .registry import load_plugins

        load_plugins(args.plugins)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._") or "run"


def _timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _unique_dir(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``, ... whichever does not exist yet."""
    if not path.exists():
        return path
    for i in itertools.count(2):
        candidate = path.with_name(f"{path.name}-{i}")
        if not candidate.exists():
            return candidate
    raise AssertionError("unreachable")


def _check_out(path: Path) -> None:
    """Never overwrite: ``--out`` must not exist, or be an empty directory."""
    if not path.exists():
        return
    if not path.is_dir():
        raise ScenarioError("--out", f"{str(path)!r} exists and is not a directory")
    if any(path.iterdir()):
        raise ScenarioError("--out", f"{str(path)!r} is not empty; choose a new directory (nothing is overwritten)")


def default_run_dir(name: str, seed: int, *, root: Path = Path("runs")) -> Path:
    """``runs/<name>-seed<seed>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3`` appended if it exists."""
    return _unique_dir(root / f"{_slug(name)}-seed{seed}-{_timestamp()}")


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return str(value)


def _fmt_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


# ------------------------------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    from .engine import load_scenario, run

    _load_plugins(args)
    scenario = load_scenario(args.scenario, overrides=args.overrides, seed=args.seed)
    if args.out is not None:
        out_dir = args.out
        _check_out(out_dir)
    else:
        out_dir = default_run_dir(scenario.name, scenario.seed)
    board = {"tensorboard": args.tensorboard} if args.tensorboard is not None else {}
    result = run(scenario, out_dir=out_dir, progress=not args.quiet, **board)
    plots: list[Path] = []
    if scenario.output.plots and not args.no_plots:
        from .plot import plot_run
        from .report import write_report

        plots = plot_run(result.out_dir, fmt=args.fmt)
        plots.append(write_report(result.out_dir))
    if args.quiet:
        print(result.out_dir)
        return 0
    print(f"run directory: {result.out_dir}")
    _print_run_summary(result)
    if plots:
        print("plots: " + ", ".join(str(p) for p in plots))
    return 0


def _print_run_summary(result: Any) -> None:
    rounds, summary = result.rounds, result.summary or {}
    if rounds is not None and len(rounds):
        last = rounds.iloc[-1]
        parts = []
        if "round" in rounds.columns:
            parts.append(f"{int(last['round'])} rounds")
        if "sim_time_s" in rounds.columns:
            parts.append(f"{float(last['sim_time_s']):.1f} s simulated")
        if "cum_bytes_up" in rounds.columns:
            parts.append(f"uplink {_fmt_bytes(float(last['cum_bytes_up']))}")
        if "cum_bytes_down" in rounds.columns:
            parts.append(f"downlink {_fmt_bytes(float(last['cum_bytes_down']))}")
        if "clients_arrived" in rounds.columns and "clients_selected" in rounds.columns:
            parts.append(f"{int(rounds['clients_arrived'].sum())} of {int(rounds['clients_selected'].sum())} "
                         "selected updates arrived")
        if parts:
            print(", ".join(parts))
    drops = summary.get("drops_by_cause") or {}
    if drops:
        print("drops: " + ", ".join(f"{cause} {count}" for cause, count in drops.items()))
    final, pretrained = summary.get("final") or {}, summary.get("pretrained") or {}
    keys = [k for k in final if str(k).rsplit(".", 1)[-1] in ("accuracy", "macro_f1")] or list(final)
    if keys:
        width = max(len(str(k)) for k in keys)
        print(f"{'metric':<{width}}  {'pretrained':>10}  {'final':>8}  {'change':>8}")
        for key in keys:
            before, after = pretrained.get(key), final[key]
            try:
                change = f"{float(after) - float(before):+.4f}"
            except (TypeError, ValueError):
                change = ""
            print(f"{key:<{width}}  {_fmt(before) if before is not None else '':>10}  {_fmt(after):>8}  {change:>8}")


def cmd_validate(args: argparse.Namespace) -> int:
    from .engine import load_scenario

    _load_plugins(args)
    failed = 0
    for path in args.scenarios:
        try:
            if _is_experiment_file(path):
                print(_validate_experiment(path, args))
                continue
            scenario = load_scenario(path, overrides=args.overrides, seed=args.seed)
        except ScenarioError as exc:
            if len(args.scenarios) == 1:
                raise
            print(f"{PROG}: error: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"ok: {scenario.name} ({describe_scenario(scenario)})")
    return 2 if failed else 0


def _is_experiment_file(path: str | Path) -> bool:
    """An experiment (sweep) file: a mapping with ``base`` and none of a scenario's top-level sections."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False  # load_scenario reports it
    scenario_keys = {"world", "fleet", "learning", "strategy", "output", "duration_s"}
    return isinstance(raw, dict) and "base" in raw and not scenario_keys & set(raw)


def _experiment_with(experiment: Any, overrides: Sequence[str], seeds: Sequence[int] | None) -> Any:
    """``experiment`` with command-line ``--set`` overrides appended and ``--seeds`` in place of its seeds."""
    if overrides:
        keys = {o.split("=", 1)[0].strip() for o in overrides}
        clash = sorted(keys & set(experiment.grid))
        if clash:
            raise ScenarioError("--set", f"{clash[0]} is a grid key of this experiment; the grid sets it")
        for item in overrides:
            if "=" not in item:
                raise ScenarioError("--set", f"expected KEY=VALUE, got {item!r}")
    update: dict[str, Any] = {}
    if overrides:
        update["overrides"] = (*experiment.overrides, *overrides)
    if seeds is not None:
        update["seeds"] = tuple(seeds)
    return experiment.model_copy(update=update) if update else experiment


def _parse_seeds(text: str | None) -> list[int] | None:
    """``0,1,2`` or ``0-4`` (inclusive) or a mix: distinct non-negative seeds, in order."""
    if text is None:
        return None
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            lo, sep, hi = part.partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(part)]
    except ValueError:
        raise ScenarioError("--seeds", f"expected seeds such as 0,1,2 or 0-4, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ScenarioError("--seeds", f"expected distinct non-negative seeds such as 0,1,2 or 0-4, got {text!r}")
    return seeds


def _validate_experiment(path: str | Path, args: argparse.Namespace) -> str:
    from .sweep import load_experiment, plan_runs

    experiment = load_experiment(path)
    experiment = _experiment_with(experiment, args.overrides, [args.seed] if args.seed is not None else None)
    tasks = plan_runs(experiment, out_dir=Path("."))
    return (f"ok: experiment {experiment.name} ({len(experiment.points)} points x "
            f"{len(experiment.seeds or (None,))} seeds = {len(tasks)} runs, every one valid; list them with "
            f"`vfedsim sweep {path} --dry-run`)")


def describe_scenario(scenario: Any) -> str:
    """A one-line description: rounds, clients, strategy, policies, tasks, channel, duration."""
    strategy, learning = scenario.strategy, scenario.learning
    channel = scenario.world.channel
    parts = [f"{getattr(strategy, 'rounds', '?')} rounds"]
    if hasattr(strategy, "clients_per_round"):
        parts.append(f"{strategy.clients_per_round} clients/round")
    parts.append(f"{getattr(strategy, 'name', '?')} strategy")
    if hasattr(strategy, "selection"):
        parts.append(f"selection {strategy.selection.name}")
    if hasattr(strategy, "aggregation"):
        parts.append(f"aggregation {strategy.aggregation.name}")
    parts.append(f"tasks {'+'.join(learning.tasks)}")
    parts.append(f"channel {channel.profile} at {channel.bandwidth_hz / 1e6:g} MHz")
    parts.append(f"seed {scenario.seed}")
    parts.append(f"at most {scenario.duration_s:g} s")
    return ", ".join(parts)


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import load_experiment, plan_runs, run_sweep

    _load_plugins(args)
    experiment = _experiment_with(load_experiment(args.experiment), args.overrides, _parse_seeds(args.seeds))
    if args.resume and args.out is None:
        raise ScenarioError("--resume", "needs --out DIR, the sweep directory to continue")
    if args.out is not None:
        out_dir = args.out
        if not args.resume:
            _check_out(out_dir)
    else:
        out_dir = _unique_dir(Path("sweeps") / f"{_slug(experiment.name)}-{_timestamp()}")
    if args.jobs < 1:
        raise ScenarioError("--jobs", f"must be at least 1, got {args.jobs}")
    use_ray = args.executor == "ray" or bool(args.ray_address)
    if use_ray:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ScenarioError("--executor", "ray needs Ray installed: pip install 'vfedsim[ray]'; "
                                              "allowed without it: local")
    if args.dry_run:
        tasks = plan_runs(experiment, out_dir=out_dir)
        for task in tasks:
            print(f"{task.name}: {' '.join(task.point.overrides) or '(base scenario)'}")
        print(f"ok: {experiment.name} ({len(experiment.points)} points x "
              f"{len(experiment.seeds or (None,))} seeds = {len(tasks)} runs; nothing run)")
        return 0
    executor, started = None, False
    if use_ray:  # join or start Ray before anything is written: an unreachable cluster leaves no trace
        from .sweep import connect_ray, execute_ray

        plan_runs(experiment, out_dir=out_dir)  # a bad point fails first, without starting Ray
        started = connect_ray(args.ray_address, jobs=args.jobs, progress=not args.quiet)
        executor = execute_ray
    try:
        results = run_sweep(experiment, out_dir=out_dir, jobs=args.jobs, progress=not args.quiet,
                            plugins=args.plugins, resume=args.resume, executor=executor,
                            tensorboard=args.tensorboard)
    finally:
        if started:
            import ray

            ray.shutdown()
    plots: list[Path] = []
    if not args.no_plots and experiment.grid:
        from .plot import plot_directory
        from .report import write_report

        plots = plot_directory(out_dir, fmt=args.fmt)
        plots.append(write_report(out_dir))
    if args.quiet:
        print(out_dir)
        return 0
    print(f"sweep directory: {out_dir}")
    _print_sweep_summary(results, list(experiment.grid))
    if plots:
        print("plots: " + ", ".join(str(p) for p in plots))
    return 0


def _print_sweep_summary(results: Any, grid_keys: list[str]) -> None:
    metrics = [c for c in results.columns if isinstance(c, str) and c.endswith(".accuracy")]
    if not metrics or results.empty:
        return
    keys = [k for k in grid_keys if k in results.columns]
    table = results.groupby(keys, sort=False)[metrics].mean() if keys else results[metrics].mean().to_frame().T
    seeds = results["seed"].nunique() if "seed" in results.columns else 1
    print(f"final accuracy (mean over {seeds} seed{'s' if seeds != 1 else ''}):")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_directory

    if not args.directory.is_dir():
        raise ScenarioError("DIR", f"not a directory: {str(args.directory)!r}")
    if args.table:
        return _plot_table(args)
    if args.target is not None:
        raise ScenarioError("--target", "applies with --table only")
    for path in plot_directory(args.directory, x=args.x, hue=args.hue, metric=args.metric, fmt=args.fmt):
        print(path)
    if not args.no_report:
        from .report import write_report

        print(write_report(args.directory))
    return 0


def _plot_table(args: argparse.Namespace) -> int:
    from .plot import DEFAULT_HUE, DEFAULT_TARGET_GAIN, format_summary, summary_table

    if not (args.directory / "results.csv").is_file():
        raise ScenarioError("DIR", f"{str(args.directory)!r} is not a sweep directory (no results.csv); "
                                   "--table summarises sweeps")
    if args.x is not None:
        raise ScenarioError("--x", "does not apply with --table")
    target, gain = None, DEFAULT_TARGET_GAIN
    if args.target is not None:
        text = args.target.strip()
        try:
            value = float(text)
        except ValueError:
            raise ScenarioError("--target", f"expected an accuracy such as 0.8 or a gain such as +0.05, "
                                            f"got {args.target!r}") from None
        if not math.isfinite(value):
            raise ScenarioError("--target", f"must be finite, got {args.target!r}")
        if text.startswith("+"):
            gain = value
        else:
            target = value
    table = summary_table(args.directory, by=args.hue or DEFAULT_HUE, target=target, target_gain=gain)
    print(format_summary(table))
    print(args.directory / "summary.csv")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .engine import load_scenario

    _load_plugins(args)
    scenario = load_scenario(args.scenario, overrides=args.overrides)
    from .learn.pretrain import ensure_pretrained

    print(ensure_pretrained(scenario.learning, progress=not args.quiet))
    return 0


def _parse_distances(text: str | None) -> list[float]:
    if text is None:
        return [float(d) for d in DEFAULT_DISTANCES_M]
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ScenarioError("--distances", f"expected comma-separated numbers in metres, got {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise ScenarioError("--distances", f"expected positive distances in metres, got {text!r}")
    return values


def cmd_channel(args: argparse.Namespace) -> int:
    import numpy as np

    from .scenario import apply_overrides, load_channel_profile

    distances = _parse_distances(args.distances)
    overrides = apply_overrides({}, [_channel_field(o) for o in args.overrides])
    if "profile" in overrides:
        raise ScenarioError("--set", "name the profile as the PROFILE argument, not with --set profile=...")
    profile = load_channel_profile(args.profile, overrides, base_dir=Path.cwd())
    from .world.channel import link_budget

    budget = {k: np.asarray(v) for k, v in link_budget(profile, np.asarray(distances, dtype=float)).items()}
    columns = ["distance_m", "path_loss_db", "snr_db", "rate_bps"]
    columns += [k for k in budget if k not in columns]
    if args.csv:
        import pandas as pd

        pd.DataFrame({k: budget[k] for k in columns if k in budget}).to_csv(sys.stdout, index=False)
    else:
        bw = f"{profile.bandwidth_hz / 1e6:g} MHz"
        print(f"channel profile {profile.profile}: {profile.description or '(no description)'}")
        print(f"carrier {profile.carrier_hz / 1e9:g} GHz, bandwidth {bw}, vehicle tx {profile.vehicle_tx_power_dbm:g} "
              f"dBm, coverage edge at {profile.coverage_state.upper()} median SNR {profile.min_snr_db:g} dB")
        nlos = "nlos_snr_db" in budget  # a LOS model: show the NLOS median too (what coverage_state nlos uses)
        print(f"{'distance_m':>10}  {'path_loss_db':>12}  {'snr_db':>8}  {'rate_bps':>14}  {'rate_mbps':>9}  "
              + (f"{'nlos_snr_db':>11}  " if nlos else "") + "covered")
        for i in range(len(budget["distance_m"])):
            snr = float(budget["snr_db"][i])
            rate = float(budget["rate_bps"][i])
            print(f"{float(budget['distance_m'][i]):>10g}  {float(budget['path_loss_db'][i]):>12.1f}  "
                  f"{snr:>8.1f}  {rate:>14,.0f}  {rate / 1e6:>9.3f}  "
                  + (f"{float(budget['nlos_snr_db'][i]):>11.1f}  " if nlos else "")
                  + ("yes" if budget["covered"][i] else "no"))
    if args.plot is not None:
        from .plot import plot_link_budget

        path = plot_link_budget(budget, args.plot, min_snr_db=profile.min_snr_db,
                                title=f"{profile.profile}: median link budget at {profile.bandwidth_hz / 1e6:g} MHz")
        print(f"plot: {path}", file=sys.stderr if args.csv else sys.stdout)
    return 0


def _channel_field(override: str) -> str:
    """``world.channel.bandwidth_hz=1e6`` -> ``bandwidth_hz=1e6`` (the path every other command takes); a
    bare field passes as it is; another scenario section is an error."""
    key, sep, value = override.partition("=")
    key = key.strip()
    prefix = "world.channel."
    if key.startswith(prefix):
        return f"{key[len(prefix):]}{sep}{value}"
    if key.split(".")[0] in ("world", "fleet", "learning", "strategy", "output", "seed", "name", "duration_s"):
        raise ScenarioError("--set", f"{key!r} is not a channel field: channel takes world.channel.* keys "
                                     "(e.g. world.channel.bandwidth_hz=1e6)")
    return override


def cmd_net(args: argparse.Namespace) -> int:
    import pandas as pd

    from .engine import load_scenario
    from .nettool import simulate_transfers

    _load_plugins(args)
    scenario = load_scenario(args.scenario, overrides=args.overrides, seed=args.seed)
    source = args.transfers.name
    if not args.transfers.is_file():
        raise ScenarioError("--transfers", f"file not found: {str(args.transfers)!r}")
    if args.out is not None and args.out.is_dir():
        raise ScenarioError("--out", f"{str(args.out)!r} is a directory; give a .csv file")
    try:
        transfers = pd.read_csv(args.transfers, dtype={"direction": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ScenarioError("--transfers", f"cannot read {source!r} as CSV: {' '.join(str(exc).split())}") from None
    result = simulate_transfers(scenario, transfers, source=source)  # a bad table fails before anything runs
    if args.out is None:
        result.to_csv(sys.stdout, index=False)
        return 0
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    result.to_csv(tmp, index=False)
    tmp.replace(args.out)  # atomic: R.csv is complete or absent
    print(args.out)
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from .tools.sumo_trace import make_trace

    path = make_trace(args.out, net=args.net, vehicles=args.vehicles, duration_s=args.duration, seed=args.seed)
    print(f"trace: {path}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from .examples import copy_examples

    written = copy_examples(args.directory)
    print(f"examples in {args.directory}: " + ", ".join(sorted({p.relative_to(args.directory).parts[0]
                                                                  for p in written})))
    print(f"next: cd {args.directory} && vfedsim run scenarios/quickstart.yaml")
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    try:
        import argcomplete
    except ImportError:
        raise VfedsimError("shell completion needs argcomplete: pip install argcomplete") from None
    print(argcomplete.shellcode([PROG], shell=args.shell))
    return 0


# ----------------------------------------------------------------------------------------- completion
def _scenario_keys() -> list[str]:
    """Every dotted key of the scenario schema (what ``--set`` takes), for shell completion."""
    from pydantic import BaseModel

    from .scenario import Scenario, _model_classes

    keys: list[str] = []

    def walk(model: type[BaseModel], prefix: str, depth: int) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            subs = _model_classes(field.annotation)
            if subs and depth < 6:
                for sub in subs:
                    walk(sub, key + ".", depth + 1)
            else:
                keys.append(key)

    walk(Scenario, "", 0)
    return sorted(set(keys))


def _add_completers(parser: argparse.ArgumentParser) -> None:
    """Attach argcomplete completers (files by kind, profile names, --set keys) where argcomplete exists."""
    try:
        from argcomplete.completers import DirectoriesCompleter, FilesCompleter
    except ImportError:
        return

    def set_keys(prefix: str, **_: Any) -> list[str]:
        return [f"{k}=" for k in _scenario_keys() if k.startswith(prefix)]

    def profiles(prefix: str, **_: Any) -> list[str]:
        from .scenario import channel_profile_names

        return [n for n in channel_profile_names() if n.startswith(prefix)]

    yaml_files = FilesCompleter(("yaml", "yml"))
    for action in parser._subparsers._group_actions if parser._subparsers else ():  # noqa: SLF001
        for name, sub in action.choices.items():
            for a in sub._actions:  # noqa: SLF001
                if a.dest in ("scenario", "scenarios", "experiment"):
                    a.completer = yaml_files
                elif a.dest == "overrides" and name != "channel":
                    a.completer = set_keys
                elif a.dest == "profile":
                    a.completer = profiles
                elif a.dest in ("directory",) or (a.dest in ("out", "tensorboard") and name != "trace"):
                    a.completer = DirectoriesCompleter()
                elif a.dest == "plugins":
                    a.completer = FilesCompleter(("py",))
