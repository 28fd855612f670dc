"""The network alone: a table of transfers over a scenario's world, without any learning (no torch).

`simulate_transfers` builds the scenario's mobility model, radio and network exactly as a run does
(`vfedsim.engine`), starts each transfer of the table at its ``start_s`` and returns how each ended. It serves
users who study or calibrate the network on its own (``vfedsim net``), and the ns-3 comparison in
``benchmarks/validate_ns3.py``.

Input columns: ``vehicle`` (an id of the scenario's mobility model: 0 .. N-1), ``start_s`` [s] (>= 0),
``direction`` (``up`` or ``down``), ``bytes`` [B] (an integer >= 0). Other columns are kept as they are.
Output: the input's columns and rows, in order, plus ``end_s`` [s], ``ok``, ``cause`` (empty when ok, else
one of `vfedsim.network.FAIL_CAUSES`), ``bytes_done`` [B], ``rsu`` (-1: none), ``handovers``,
``hops``. Transfers run concurrently where they overlap and share their RSU as in a run. A transfer that
starts where its vehicle has no RSU fails at once (``no_coverage``); a transfer still going at the
scenario's ``duration_s`` ends with ``trip_ended`` if its vehicle's trip ends then, else runs to its end.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .errors import ScenarioError
from .scenario import Scenario

__all__ = ["simulate_transfers", "check_transfers", "TRANSFER_COLUMNS", "RESULT_COLUMNS"]

TRANSFER_COLUMNS = ("vehicle", "start_s", "direction", "bytes")
RESULT_COLUMNS = ("end_s", "ok", "cause", "bytes_done", "rsu", "handovers", "hops")
_DIRECTIONS = ("up", "down")


def _bad(source: str, row: int, column: str, problem: str) -> ScenarioError:
    return ScenarioError(f"{source} row {row}, column {column!r}", problem)


def check_transfers(transfers: pd.DataFrame, n_vehicles: int, *, source: str = "transfers") -> pd.DataFrame:
    """The transfer table with typed columns, or a `ScenarioError` naming the first bad row and column.

    Rows are numbered from 1 (the first data row; in a CSV file, the line after the header). ``source`` names
    the table in messages (the CLI gives the file name)."""
    missing = [c for c in TRANSFER_COLUMNS if c not in transfers.columns]
    if missing:
        raise ScenarioError(f"{source} column {missing[0]!r}", "required column is missing",
                            allowed=TRANSFER_COLUMNS)
    out = transfers.copy()
    for i, (vehicle, start, direction, nbytes) in enumerate(
            zip(*(transfers[c].tolist() for c in TRANSFER_COLUMNS)), start=1):
        v = _number(vehicle)
        if v is None or v != math.floor(v) or not 0 <= v < n_vehicles:
            raise _bad(source, i, "vehicle", f"unknown vehicle {vehicle!r}: the scenario has vehicles 0 .. "
                                             f"{n_vehicles - 1}")
        s = _number(start)
        if s is None or not s >= 0.0 or not math.isfinite(s):
            raise _bad(source, i, "start_s", f"must be a finite number of seconds >= 0, got {start!r}")
        if direction not in _DIRECTIONS:
            raise ScenarioError(f"{source} row {i}, column 'direction'", f"invalid value {direction!r}",
                                allowed=_DIRECTIONS, value=direction)
        b = _number(nbytes)
        if b is None or b != math.floor(b) or not 0 <= b < 2 ** 62:
            raise _bad(source, i, "bytes", f"must be a whole number of bytes >= 0, got {nbytes!r}")
    out["vehicle"] = transfers["vehicle"].astype(np.float64).astype(np.int64)
    out["start_s"] = transfers["start_s"].astype(np.float64)
    out["bytes"] = transfers["bytes"].astype(np.float64).astype(np.int64)
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def simulate_transfers(scenario: Scenario, transfers: pd.DataFrame, *, source: str = "transfers") -> pd.DataFrame:
    """Run the transfer table over the scenario's network; the table with the result columns added (see the
    module docstring). Raises `ScenarioError` on a bad table, naming ``source``, its row and column (nothing
    is simulated). Deterministic: the same scenario (seed included) and table give the same result."""
    import simpy

    from .engine import _network, build_mobility, check_scenario

    mobility = build_mobility(scenario)
    check_scenario(scenario, mobility=mobility)
    table = check_transfers(transfers, mobility.trips.n, source=source)
    env = simpy.Environment()
    network = _network(env, scenario, mobility, _NoRecorder())
    results: list[Any] = [None] * len(table)

    def one(k: int, vehicle: int, start: float, direction: str, nbytes: int):
        if start > env.now:
            yield env.timeout(start - env.now)
        results[k] = yield network.transfer(vehicle, nbytes, direction)

    rows = zip(table["vehicle"].tolist(), table["start_s"].tolist(), table["direction"].tolist(),
               table["bytes"].tolist())
    order = sorted(range(len(table)), key=lambda k: table["start_s"].iat[k])  # starts at one instant: row order
    starts = list(rows)
    for k in order:
        env.process(one(k, *starts[k]))
    env.run()
    out = table.copy()
    out["end_s"] = [r.end_s for r in results]
    out["ok"] = [bool(r.ok) for r in results]
    out["cause"] = [r.cause or "" for r in results]
    out["bytes_done"] = [float(r.bytes_done) for r in results]
    out["rsu"] = [int(r.rsu) for r in results]
    out["handovers"] = [int(r.handovers) for r in results]
    out["hops"] = [int(r.hops) for r in results]
    return out


class _NoRecorder:
    """Where `vfedsim.engine` sends network events in a run; nothing listens here."""

    network_event = None
