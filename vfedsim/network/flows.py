"""The flow table and the processor-sharing math: pure numpy, no SimPy (docs/network.md, "The core").

`FlowTable` holds the flows in flight, one row each and one column per field, as a typed dataclass of
arrays. The float columns are the rows of one (NF, capacity) matrix and the int columns those of one
(NI, capacity) matrix, so that appending a flow or removing one touches two arrays, not thirty; the five
due-time columns (`DUE`) are consecutive rows of the float matrix, so `FlowTable.due_minima` is one call.
Rows [0, n) are live, in no particular order (a removed row is refilled with the last one).

`Resources` holds the processor-sharing state of every resource (one per RSU and direction: resource
``2 rsu + up``). A resource with n live flows runs a virtual clock V that grows at 1/n per second (V is
each live flow's airtime on the full band so far); a flow that joins at V0 with A seconds of full-band
airtime left (``8 (nbytes - done) / rate``) completes when V reaches ``fin = V0 + A``. A start or an end
therefore touches only its own resource, and a resource's next completion is ``t + (min fin - V) n``.
A broadcast (docs/network.md) counts once in n however many members it has.

The functions at the bottom are the vectorised steps of a network instant: the bytes every flow has
carried (`bytes_now`), the flows that complete (`completing`), the resources rebuilt from the rates of a
tick (`rebuild`, with `np.bincount` and `np.minimum.at`) and the next instant (`next_instant`, one
argmin over the resources' next completions and the due times).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

__all__ = ["FlowTable", "Resources", "DUE", "FLOAT_COLUMNS", "INT_COLUMNS", "SLACK", "bytes_now", "completing", "rebuild", "next_instant",
           "carried_bytes"]

DUE = ("t_trip", "t_exit", "t_outage", "t_resume", "t_turn")
"""The due-time columns [s], in the order simultaneous events are resolved after completions: trip end,
coverage exit, outage, pause end, velocity change."""
SLACK = 1e-12
"""Relative slack when deciding that a flow has completed at an instant (floating-point rounding)."""

_INF = math.inf


@dataclass(eq=False)
class FlowTable:
    """The flows in flight: row i of every column is flow i (rows [0, n) live). Times [s], sizes [B],
    rates [bit/s]. Build with `FlowTable.empty`; columns are views of `floats` / `ints` (see the module)."""

    # float columns (rows of `floats`), with their defaults in `FLOAT_DEFAULTS`
    nbytes: np.ndarray  # [B] requested
    start: np.ndarray  # [s] when it was requested
    done: np.ndarray  # [B] payload carried up to the last time it left or joined its resource
    rate: np.ndarray  # [bit/s] payload rate on the full band (backhaul-capped; 0: outage or paused)
    loss: np.ndarray  # [B/B] bytes resent per payload byte since the last evaluation (chunk losses)
    resent: np.ndarray  # [B] resent so far, up to when `done` was last brought up to date
    fin: np.ndarray  # live flow: its resource's virtual time at completion; inf otherwise
    outage_since: np.ndarray  # [s] when the current outage began (nan: none)
    vx: np.ndarray  # [m/s] the velocity its t_exit was computed for
    vy: np.ndarray
    link: np.ndarray  # [bit/s] a broadcast member's own payload rate at its last evaluation
    bandwidth_hz: np.ndarray  # [Hz] of its resource
    px: np.ndarray  # [m] its vehicle's position when it was asked for (its first rate is evaluated there)
    py: np.ndarray
    travelled: np.ndarray  # [m] its vehicle's distance travelled then
    t_trip: np.ndarray  # [s] its vehicle's trip end
    t_exit: np.ndarray  # [s] its vehicle's exact exit from the serving disc (inf when relayed)
    t_outage: np.ndarray  # [s] when its current outage times out
    t_resume: np.ndarray  # [s] end of a pause (handover interruption, backhaul latency)
    t_turn: np.ndarray  # [s] its vehicle's next velocity change
    # int columns (rows of `ints`)
    fid: np.ndarray  # flow id: the order transfers were asked for
    vehicle: np.ndarray
    rsu: np.ndarray  # the RSU that carries it
    up: np.ndarray  # 1 uplink, 0 downlink
    grp: np.ndarray  # its resource: 2 rsu + up
    handovers: np.ndarray
    bc: np.ndarray  # broadcast group (-1: unicast)
    relay: np.ndarray  # the covered vehicle that forwards it over V2V hops (-1: direct)
    hops: np.ndarray  # wireless hops to its RSU (1: direct)
    floats: np.ndarray = field(repr=False)  # (NF, capacity)
    ints: np.ndarray = field(repr=False)  # (NI, capacity)
    n: int = 0

    @classmethod
    def empty(cls, capacity: int = 16) -> "FlowTable":
        f = np.repeat(np.array(FLOAT_DEFAULTS)[:, None], capacity, axis=1)
        i = np.repeat(np.array(INT_DEFAULTS, dtype=np.int64)[:, None], capacity, axis=1)
        return cls(*f, *i, floats=f, ints=i)

    @property
    def capacity(self) -> int:
        return self.floats.shape[1]

    def append(self, floats: tuple, ints: tuple) -> int:
        """Add a flow given all its float and int columns in `FLOAT_COLUMNS` / `INT_COLUMNS` order; its row."""
        n = self.n
        if n == self.capacity:
            self._grow()
        self.floats[:, n] = floats
        self.ints[:, n] = ints
        self.n = n + 1
        return n

    def _grow(self) -> None:
        f = np.repeat(np.array(FLOAT_DEFAULTS)[:, None], 2 * self.capacity, axis=1)
        i = np.repeat(np.array(INT_DEFAULTS, dtype=np.int64)[:, None], 2 * self.capacity, axis=1)
        f[:, :self.n], i[:, :self.n] = self.floats[:, :self.n], self.ints[:, :self.n]
        for k, name in enumerate(FLOAT_COLUMNS):
            setattr(self, name, f[k])
        for k, name in enumerate(INT_COLUMNS):
            setattr(self, name, i[k])
        self.floats, self.ints = f, i

    def remove(self, rows: np.ndarray, tracked: list[int] = ()) -> list[int]:
        """Drop flow ``rows``; the last rows move into the freed ones (row numbers of the others change).
        Returns where the ``tracked`` rows (none of them dropped) are now."""
        n, f, i = self.n, self.floats, self.ints
        tracked = list(tracked)
        if rows.size <= 2:
            for r in sorted(rows.tolist(), reverse=True):
                n -= 1
                if r != n:
                    f[:, r] = f[:, n]
                    i[:, r] = i[:, n]
                    if tracked:
                        tracked = [r if x == n else x for x in tracked]
        else:
            keep = np.ones(n, dtype=bool)
            keep[rows] = False
            k = int(np.count_nonzero(keep))
            f[:, :k] = f[:, :n][:, keep]
            i[:, :k] = i[:, :n][:, keep]
            if tracked:
                tracked = (np.cumsum(keep) - 1)[tracked].tolist()
            n = k
        self.n = n
        return tracked

    def due_minima(self) -> list[float]:
        """The smallest value of each `DUE` column over the live rows."""
        if self.n == 0:
            return [_INF] * len(DUE)
        return self.floats[_DUE_SLICE, :self.n].min(axis=1).tolist()


FLOAT_COLUMNS = ("nbytes", "start", "done", "rate", "loss", "resent", "fin", "outage_since", "vx", "vy", "link",
                 "bandwidth_hz", "px", "py", "travelled", "t_trip", "t_exit", "t_outage", "t_resume", "t_turn")
INT_COLUMNS = ("fid", "vehicle", "rsu", "up", "grp", "handovers", "bc", "relay", "hops")
FLOAT_DEFAULTS = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, _INF, math.nan, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, _INF, _INF, _INF, _INF,
                  _INF)
INT_DEFAULTS = (0, 0, 0, 0, 0, 0, -1, -1, 1)
_DUE_SLICE = slice(FLOAT_COLUMNS.index(DUE[0]), FLOAT_COLUMNS.index(DUE[-1]) + 1)
assert FLOAT_COLUMNS + INT_COLUMNS == tuple(f.name for f in fields(FlowTable))[:-3]
assert FLOAT_COLUMNS[_DUE_SLICE] == DUE and len(FLOAT_DEFAULTS) == len(FLOAT_COLUMNS)
assert len(INT_DEFAULTS) == len(INT_COLUMNS)


@dataclass(eq=False)
class Resources:
    """Processor-sharing state of every resource (resource ``2 rsu + up``); see the module docstring."""

    count: np.ndarray  # (G,) int64: live flows (a broadcast counts once)
    virtual: np.ndarray  # (G,) [s] virtual time V at `updated`
    updated: np.ndarray  # (G,) [s] when V was last brought up to date
    first: np.ndarray  # (G,) the smallest ``fin`` of its live flows (inf: none)
    next_s: np.ndarray  # (G,) [s] its next completion, ``updated + (first - virtual) count`` (inf: none)

    @classmethod
    def empty(cls, size: int) -> "Resources":
        return cls(np.zeros(size, dtype=np.int64), np.zeros(size), np.zeros(size), np.full(size, _INF),
                   np.full(size, _INF))

    def advance(self, g: int, t: float) -> float:
        """Bring resource ``g``'s virtual time up to ``t``; returns it."""
        n = self.count[g]
        if n:
            self.virtual[g] += (t - self.updated[g]) / n
        self.updated[g] = t
        return float(self.virtual[g])

    def joined(self, g: int, fin: float) -> None:
        """A live flow with ``fin`` joined resource ``g`` (its count already raised)."""
        if fin < self.first[g]:
            self.first[g] = fin

    def left(self, g: int, fin: float, table: FlowTable) -> None:
        """A live flow with ``fin`` left resource ``g`` (its row's ``fin`` already inf)."""
        if fin <= self.first[g]:
            k = table.n
            self.first[g] = table.fin[:k].min(where=table.grp[:k] == g, initial=_INF)

    def plan(self, g: int) -> None:
        """Recompute resource ``g``'s next completion."""
        n = self.count[g]
        self.next_s[g] = self.updated[g] + (self.first[g] - self.virtual[g]) * n if n else _INF


def carried_bytes(nbytes: float, before: float, fin: float, virtual: float, rate: float) -> float:
    """[B] payload a live flow has carried when it leaves its resource at virtual time ``virtual``: ``nbytes``
    less what its remaining airtime ``fin - virtual`` would carry at ``rate``, within [before, nbytes]."""
    remaining = (fin - virtual) * rate / 8.0
    return min(max(nbytes - remaining, before), nbytes)


def virtual_now(res: Resources, t: float) -> np.ndarray:
    """(G,) every resource's virtual time at ``t``."""
    return res.virtual + (t - res.updated) / np.maximum(res.count, 1)


def bytes_now(table: FlowTable, res: Resources, t: float) -> np.ndarray:
    """(n,) payload bytes carried by every flow at ``t``."""
    n = table.n
    fin, grp = table.fin[:n], table.grp[:n]
    live = fin < _INF
    v = virtual_now(res, t)
    carried = table.nbytes[:n] - (np.where(live, fin, 0.0) - v[grp]) * table.rate[:n] / 8.0
    return np.where(live, np.clip(carried, table.done[:n], table.nbytes[:n]), table.done[:n])


def completing(table: FlowTable, res: Resources, t: float, due: np.ndarray | None = None) -> np.ndarray:
    """Rows of the flows that complete at ``t``: on each resource due by ``t`` (``due``, if known), those
    whose ``fin`` the virtual time has reached (within `SLACK`), and at least its first finisher whatever
    the rounding."""
    if due is None:
        due = np.flatnonzero(res.next_s <= t)
    if due.size == 0:
        return due
    n = table.n
    grp, fin = table.grp[:n], table.fin[:n]
    out = []
    for g in due.tolist():
        members = np.flatnonzero(grp == g)
        f = fin[members]
        v = res.virtual[g] + (t - res.updated[g]) / max(int(res.count[g]), 1)
        hit = members[f <= v * (1.0 + SLACK) + SLACK]
        out.append(hit if hit.size else members[np.argmin(f)][None])
    return out[0] if len(out) == 1 else np.concatenate(out)


def rebuild(res: Resources, table: FlowTable, live: np.ndarray, t: float) -> dict[int, int]:
    """Rebuild every resource at ``t`` from the table's ``fin`` (set by the caller for every row: inf where
    not ``live``): counts by `np.bincount` (a broadcast's members once), V = 0, next completions by
    `np.minimum.at`. Returns the live members per broadcast group."""
    n = table.n
    grp, bc, fin = table.grp[:n], table.bc[:n], table.fin[:n]
    size = res.count.size
    member = live & (bc >= 0)
    res.count[:] = np.bincount(grp[live & (bc < 0)], minlength=size)
    bc_live: dict[int, int] = {}
    if member.any():
        groups, first_row, count = np.unique(bc[member], return_index=True, return_counts=True)
        res.count += np.bincount(grp[np.flatnonzero(member)[first_row]], minlength=size)
        bc_live = dict(zip(groups.tolist(), count.tolist()))
    res.virtual[:] = 0.0
    res.updated[:] = t
    first = res.first
    first[:] = _INF
    np.minimum.at(first, grp[live], fin[live])
    busy = res.count > 0
    res.next_s[:] = np.where(busy, t + np.where(busy, first, 0.0) * res.count, _INF)
    return bc_live


def next_instant(res: Resources, due_minima: list[float], tick_at: float) -> float:
    """[s] the next network instant: the earliest resource completion, due time or tick (one argmin)."""
    candidates = np.concatenate((res.next_s, due_minima, (tick_at,)))
    return float(candidates[np.argmin(candidates)])
