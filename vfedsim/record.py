"""The recorder: listens to the simulation and writes tidy tables (DESIGN.md, principle 8).

It never changes the simulation: strategies and the network call its hooks, and at the end `write`
produces the run directory: ``rounds.csv`` (one row per aggregation; row 0 is the pretrained model),
``events.csv``/``.parquet`` (one row per event), ``vehicles.csv`` (one row per vehicle), ``config.yaml``
(the resolved scenario) and ``summary.json``. Every file is written to a temporary name, then renamed.

rounds.csv columns: the round's bytes and clients, ``bytes_up.<module>`` (the bytes of each module group
in the uploads that arrived since the previous row: ``trunk.<method>``, ``encoder.<modality>``,
``heads.<task>``, ``mtl``, ``container``; 0 where none; present once any upload carried it), a strategy's
extra columns, then the metrics of every task (empty on rows without evaluation, and for a task before it
is onboarded), and for each sensor suite that lacks a modality ``suite.<suite>.<metric>`` (the same
metrics, losses left out, of the model run on that suite's modalities). summary.json's ``best`` is the
smallest value of a loss or error (`LOWER_IS_BETTER`) over the rows, the largest of any other metric.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

__all__ = ["Recorder", "atomic_write_text", "atomic_write_bytes", "EVENT_COLUMNS", "FLOAT_FORMAT", "jain_index"]

LOWER_IS_BETTER = (".loss", ".mae", ".ade", ".fde")
"""Metric suffixes whose best value is the smallest (losses and errors); for the others the largest."""
EVENT_COLUMNS = ("time_s", "round", "vehicle", "kind", "rsu", "bytes", "cause", "duration_s", "energy_j")
FLOAT_FORMAT = "%.9g"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class Recorder:
    """Collects events and round rows while the simulation runs.

    ``now`` is a callable giving the simulated time (the SimPy environment's ``now``); ``listeners`` get
    each round row as it is recorded (the progress bar).
    """

    def __init__(self, *, now: Callable[[], float], listeners: Iterable[Callable[[dict], None]] = ()) -> None:
        self._now = now
        self._round = 0
        self._events: list[tuple] = []
        self._rounds: list[dict[str, Any]] = []
        self._listeners = list(listeners)
        self._cum_up = 0
        self._cum_down = 0
        self._energy = 0.0
        self._round_bytes = [0, 0]
        self._module_bytes: dict[str, int] = {}

    # ----------------------------------------------------------------------------------------- hooks
    def upload_modules(self, nbytes: dict[str, int]) -> None:
        """An upload arrived carrying ``nbytes`` [B] per module group (summed into this round's row)."""
        for group, n in nbytes.items():
            self._module_bytes[group] = self._module_bytes.get(group, 0) + int(n)

    def set_round(self, r: int) -> None:
        self._round = r

    def event(self, kind: str, *, vehicle: int = -1, rsu: int = -1, nbytes: int = 0, cause: str = "",
              duration_s: float = 0.0, energy_j: float = 0.0, direction: str | None = None) -> None:
        """One simulation event at the current simulated time."""
        self._events.append((float(self._now()), self._round, int(vehicle), kind, int(rsu), int(nbytes),
                             cause or "", float(duration_s), float(energy_j)))
        if direction == "up":
            self._round_bytes[0] += int(nbytes)
        elif direction == "down":
            self._round_bytes[1] += int(nbytes)
        self._energy += float(energy_j)

    def network_event(self, kind: str, *, time_s: float, vehicle: int, rsu: int, nbytes: int | None = None,
                      cause: str | None = None) -> None:
        """The network's hook (handovers)."""
        self._events.append((float(time_s), self._round, int(vehicle), kind, int(rsu), int(nbytes or 0),
                             cause or "", 0.0, 0.0))

    def round_row(self, *, round: int, sim_time_s: float, selected: int, arrived: int, dropped: int,
                  metrics: dict[str, float], train_loss: float, extra: dict[str, float] | None = None) -> None:
        """One aggregation (row 0: the pretrained model before any round). ``extra`` holds a strategy's
        own columns (placed after ``train_loss``; give them in row 0 too, NaN if need be)."""
        up, down = self._round_bytes
        self._cum_up += up
        self._cum_down += down
        row = {"round": round, "sim_time_s": float(sim_time_s), "bytes_up": up, "bytes_down": down,
               "cum_bytes_up": self._cum_up, "cum_bytes_down": self._cum_down,
               "clients_selected": selected, "clients_arrived": arrived, "clients_dropped": dropped,
               "energy_j": self._energy, "train_loss": float(train_loss)}
        row.update({f"bytes_up.{k}": v for k, v in self._module_bytes.items()})
        row.update({k: float(v) for k, v in (extra or {}).items()})
        row.update({k: float(v) for k, v in sorted(metrics.items())})
        self._round_bytes = [0, 0]
        self._module_bytes = {}
        self._energy = 0.0
        self._rounds.append(row)
        for listen in self._listeners:
            listen(row)

    # ---------------------------------------------------------------------------------------- tables
    def rounds(self) -> pd.DataFrame:
        """One row per round; module byte columns follow ``cum_bytes_down``... in order of first use, 0 where
        a round carried none of that module."""
        df = pd.DataFrame(self._rounds)
        modules = [c for c in df.columns if c.startswith("bytes_up.")]
        if modules:
            df[modules] = df[modules].fillna(0).astype(np.int64)
            rest = [c for c in df.columns if c not in modules]
            at = rest.index("train_loss") + 1
            df = df[rest[:at] + modules + rest[at:]]
        return df

    def events(self) -> pd.DataFrame:
        events = pd.DataFrame(self._events, columns=list(EVENT_COLUMNS))
        # stable order by time; ties keep the order in which they happened
        return events.sort_values("time_s", kind="stable").reset_index(drop=True)

    def vehicles(self, base: pd.DataFrame) -> pd.DataFrame:
        """Per-vehicle totals from the events, joined onto ``base`` (one row per vehicle, index = id)."""
        ev = self.events()
        ev = ev[ev["vehicle"] >= 0]
        out = base.copy()

        def count(kind: str) -> pd.Series:
            return ev[ev["kind"] == kind].groupby("vehicle").size()

        out["times_selected"] = count("selected")
        out["times_arrived"] = count("arrived")
        out["times_dropped"] = count("dropped")
        up = ev[ev["kind"] == "upload_end"].groupby("vehicle")
        down = ev[ev["kind"] == "download_end"].groupby("vehicle")
        out["bytes_up"] = up["bytes"].sum()
        out["bytes_down"] = down["bytes"].sum()
        out["compute_s"] = ev[ev["kind"] == "compute_end"].groupby("vehicle")["duration_s"].sum()
        out["energy_compute_j"] = ev[ev["kind"] == "compute_end"].groupby("vehicle")["energy_j"].sum()
        out["energy_tx_j"] = up["energy_j"].sum()
        out["handovers"] = count("handover")
        numeric = [c for c in out.columns if c not in base.columns]
        out[numeric] = out[numeric].fillna(0)
        for c in ("times_selected", "times_arrived", "times_dropped", "bytes_up", "bytes_down", "handovers"):
            out[c] = out[c].astype(np.int64)
        return out

    # ----------------------------------------------------------------------------------------- write
    def write(self, out_dir: Path, *, config: dict[str, Any], vehicles_base: pd.DataFrame,
              summary_extra: dict[str, Any], events_format: str = "csv") -> dict[str, Any]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        rounds = self.rounds()
        events = self.events()
        atomic_write_text(out_dir / "rounds.csv", rounds.to_csv(index=False, float_format=FLOAT_FORMAT))
        if events_format == "parquet":
            import io

            buf = io.BytesIO()
            events.to_parquet(buf, index=False)
            atomic_write_bytes(out_dir / "events.parquet", buf.getvalue())
        else:
            atomic_write_text(out_dir / "events.csv", events.to_csv(index=False, float_format=FLOAT_FORMAT))
        vehicles = self.vehicles(vehicles_base)
        atomic_write_text(out_dir / "vehicles.csv",
                          vehicles.to_csv(index=True, index_label="vehicle", float_format=FLOAT_FORMAT))
        atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        summary = self.summary(rounds, events, vehicles)
        summary.update(summary_extra)
        atomic_write_text(out_dir / "summary.json", json.dumps(_clean(summary), indent=2) + "\n")
        return summary

    @staticmethod
    def summary(rounds: pd.DataFrame, events: pd.DataFrame, vehicles: pd.DataFrame) -> dict[str, Any]:
        metric_cols = [c for c in rounds.columns if "." in c]
        drops = events[events["kind"] == "dropped"]["cause"].value_counts().sort_index()
        last = rounds.iloc[-1]
        selected = vehicles["times_selected"].to_numpy(dtype=float)
        present = _present(vehicles, float(last["sim_time_s"]))
        jain = jain_index(selected[present])
        return {
            "rounds": int(last["round"]),
            "sim_time_s": float(last["sim_time_s"]),
            "pretrained": {c: float(rounds.iloc[0][c]) for c in metric_cols},
            "final": {c: float(last[c]) for c in metric_cols},
            "best": {c: float(rounds[c].min()) if c.endswith(LOWER_IS_BETTER) else float(rounds[c].max())
                     for c in metric_cols},
            "bytes_up_total": int(rounds["bytes_up"].sum()),
            "bytes_down_total": int(rounds["bytes_down"].sum()),
            "clients_selected_total": int(rounds["clients_selected"].sum()),
            "clients_arrived_total": int(rounds["clients_arrived"].sum()),
            "drops_by_cause": {str(k): int(v) for k, v in drops.items()},
            "handovers": int((events["kind"] == "handover").sum()),
            "energy_compute_j": float(vehicles["energy_compute_j"].sum()),
            "energy_tx_j": float(vehicles["energy_tx_j"].sum()),
            "jain_fairness_selected": jain,
            "vehicles": int(len(vehicles)),
            "vehicles_present": int(present.sum()),
        }


def jain_index(x: np.ndarray) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2) of allocations ``x`` (Jain, Chiu and Hawe, DEC-TR-301,
    1984): 1 when all are equal, 1/n when one gets everything; NaN when nothing was allocated."""
    x = np.asarray(x, dtype=float)
    return float(x.sum() ** 2 / (len(x) * (x ** 2).sum())) if x.size and x.any() else float("nan")


def _present(vehicles: pd.DataFrame, end_s: float) -> np.ndarray:
    """Which vehicles were on the road at some time in [0, ``end_s``): those that could have been selected.
    Vehicles generated for arrivals after the run ended (or that left before it began) do not count towards
    fairness. Tables without trip times count every vehicle."""
    if "t_enter_s" not in vehicles or "t_exit_s" not in vehicles:
        return np.ones(len(vehicles), dtype=bool)
    enter = vehicles["t_enter_s"].to_numpy(dtype=float)
    leave = vehicles["t_exit_s"].to_numpy(dtype=float)
    return (enter < end_s) & (leave > 0.0)


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf become None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return _clean(float(obj))
    return obj
