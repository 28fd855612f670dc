"""Shared by the sweep tests: a fast fake of the engine's `run`, experiment files, and the grid they use.

The ``runs`` fixture (conftest.py) installs `fake_run` in place of `vfedsim.engine.run`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import yaml

import vfedsim.engine as engine

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "scenarios" / "tiny.yaml"
BW = "world.channel.bandwidth_hz"
SEL = "strategy.selection.name"


def fake_run(scenario, *, out_dir, progress=True, **options):
    """Writes a run directory like the engine's, with accuracy growing with rounds and bandwidth."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gain = min(1.0, scenario.world.channel.bandwidth_hz / 1e6)
    rows = []
    for r in range(scenario.strategy.rounds + 1):
        row = {"round": r, "sim_time_s": 12.5 * r, "bytes_up": 4000 * (r > 0), "bytes_down": 8000 * (r > 0),
               "cum_bytes_up": 4000 * r, "cum_bytes_down": 8000 * r, "clients_selected": 4 * (r > 0),
               "clients_arrived": 3 * (r > 0), "clients_dropped": 1 * (r > 0)}
        for i, task in enumerate(scenario.learning.tasks):
            acc = 0.5 + 0.01 * i + 0.03 * r * gain + 0.001 * scenario.seed
            row.update({f"{task}.accuracy": acc, f"{task}.macro_f1": acc - 0.1, f"{task}.loss": 1.0 - acc})
        rows.append(row)
    rounds = pd.DataFrame(rows)
    rounds.to_csv(out / "rounds.csv", index=False)
    metrics = [c for c in rounds.columns if "." in c]
    summary = {"final": {c: float(rounds[c].iloc[-1]) for c in metrics},
               "pretrained": {c: float(rounds[c].iloc[0]) for c in metrics}, "drops_by_cause": {"deadline": 3}}
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "config.yaml").write_text(yaml.safe_dump(scenario.to_dict(), sort_keys=False))
    return engine.RunResult(out_dir=out, rounds=rounds, summary=summary)


def write_experiment(tmp_path: Path, body: dict | str, name: str = "exp.yaml") -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir(exist_ok=True)
    path = folder / name
    if isinstance(body, dict):
        body = {"base": os.path.relpath(TINY, folder), **body}
        body = yaml.safe_dump(body, sort_keys=False)
    path.write_text(body)
    return path


GRID = {BW: [2.0e5, 1.0e6], SEL: ["random", "coverage"]}
