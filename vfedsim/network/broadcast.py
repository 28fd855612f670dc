"""Downlink broadcast (``downlink_mode: broadcast``), as pure functions (docs/network.md, "Broadcast").

Downloads of the same size that one RSU is asked for at the same instant, by vehicles not in a handover
interruption and not relayed, form one broadcast group: one transmission, counted once on the RSU's
downlink (`vfedsim.network.flows.Resources`), at the lowest of its members' link rates. A member whose
link goes out (rate 0) leaves the group for good.
"""
from __future__ import annotations

import numpy as np

__all__ = ["BroadcastGroups", "weakest_rates"]


class BroadcastGroups:
    """Numbers the broadcast groups: `group` gives the open group of (RSU, size) at an instant, a new one
    for the first request of that (RSU, size) at that instant."""

    def __init__(self) -> None:
        self._open: dict[tuple[int, int], tuple[float, int]] = {}  # (rsu, nbytes) -> (formed at, group)
        self._next = 0

    def group(self, rsu: int, nbytes: int, now: float) -> int:
        opened = self._open.get((rsu, nbytes))
        if opened is None or opened[0] != now:
            opened = self._open[(rsu, nbytes)] = (now, self._next)
            self._next += 1
        return opened[1]


def weakest_rates(bc: np.ndarray, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rates [bit/s] for flows in broadcast groups ``bc`` (-1: unicast) whose own link rates are ``rate``:
    each group's members go at their group's lowest rate, once members with rate 0 (outage) have left.
    Returns (the rates, ``bc`` with the leavers set to -1)."""
    bc = np.where((bc >= 0) & (rate <= 0.0), -1, bc)
    out = rate.copy()
    for b in np.unique(bc[bc >= 0]).tolist():
        mine = bc == b
        out[mine] = rate[mine].min()
    return out, bc
