"""Handover decisions, as pure functions (docs/network.md, "Handover").

Two triggers move a flow to another RSU: leaving the serving RSU's coverage disc with another disc holding
the vehicle (``coverage-exit``, the radio's `vfedsim.world.radio.Radio.handover_target`), and with
``handover_trigger: a3`` event A3 of 3GPP TS 36.331 §5.5.4.4, checked at ticks: a covering RSU's received
power (`vfedsim.world.radio.Radio.rsrp_dbm`: path loss and shadowing, no fading) exceeds the serving one's
by more than the hysteresis [dB] for at least the time-to-trigger [s] (rounded up to ticks).
What a handover then does to a flow (``continue``, ``restart``, ``drop``) is the event loop's
(`vfedsim.network.fluid`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["a3_candidates", "a3_decisions", "TTT_SLACK_S"]

TTT_SLACK_S = 1e-9
"""[s] a condition held for the time-to-trigger less this counts as held (ticks are sums of floats)."""


def a3_candidates(cover: np.ndarray, serving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (vehicle index, RSU) pairs an A3 check compares: every RSU whose disc holds the vehicle
    (``cover`` (k, R) bool) other than its serving one (``serving`` (k,))."""
    cover = cover.copy()
    cover[np.arange(serving.size), serving] = False
    return np.nonzero(cover)


def a3_decisions(vehicles: np.ndarray, vi: np.ndarray, cand: np.ndarray, rx_dbm: np.ndarray,
                 rx_serving_dbm: np.ndarray, held: dict[int, tuple[int, float]], t: float, *,
                 hysteresis_db: float, time_to_trigger_s: float
                 ) -> tuple[list[tuple[int, int]], dict[int, tuple[int, float]]]:
    """A3 handovers at tick ``t``: ``vehicles`` (k,), candidate pairs (``vi`` indices into them, ``cand``
    RSUs, ``rx_dbm`` their received powers [dBm]) and each vehicle's serving power ``rx_serving_dbm`` (k,).

    Per vehicle the strongest candidate (the lowest id on a tie) is its target; it triggers when its power
    exceeds the serving one's by more than ``hysteresis_db`` and has done so, for the same target, since
    ``held[vehicle] = (target, since)`` at least ``time_to_trigger_s`` (less `TTT_SLACK_S`). Returns the
    moves ``[(vehicle, target)]`` in vehicle order and the new ``held`` (conditions holding, not yet
    triggered); a vehicle whose condition lapses is forgotten.
    """
    state: dict[int, tuple[int, float]] = {}
    moves: list[tuple[int, int]] = []
    if vi.size == 0:
        return moves, state
    order = np.lexsort((cand, -rx_dbm, vi))  # per vehicle: strongest candidate first (lowest id on a tie)
    vi, cand, rx_dbm = vi[order], cand[order], rx_dbm[order]
    head = np.ones(vi.size, dtype=bool)
    head[1:] = vi[1:] != vi[:-1]
    for k, target, power in zip(vi[head].tolist(), cand[head].tolist(), rx_dbm[head].tolist()):
        if not power > rx_serving_dbm[k] + hysteresis_db:
            continue
        vehicle = int(vehicles[k])
        prev = held.get(vehicle)
        since = prev[1] if prev is not None and prev[0] == target else t
        if t - since >= time_to_trigger_s - TTT_SLACK_S:
            moves.append((vehicle, target))
        else:
            state[vehicle] = (target, since)
    return moves, state
