"""The RSU-to-cloud backhaul, as pure functions (docs/network.md, "Backhaul").

Each RSU reaches the cloud over a full-duplex backhaul of ``backhaul_capacity_bps`` [bit/s] per direction,
shared equally by that RSU's live flows of the direction, like the radio: a flow's throughput is
min(r, C) / n for link rate r, capacity C and n live flows (an equal split, not max-min fair). The
latency ``backhaul_latency_s`` [s] pauses a transfer once, at its start (the request's round trip before
the first byte moves). The backhaul never fails a transfer.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["capped", "start_pause_until"]


def capped(rate_bps: np.ndarray, capacity_bps: float) -> np.ndarray:
    """[bit/s] full-band rates capped at the backhaul capacity (inf: no cap)."""
    return np.minimum(rate_bps, capacity_bps) if capacity_bps < math.inf else rate_bps


def start_pause_until(now: float, latency_s: float, interrupted_until: float) -> float:
    """[s] until when a transfer asked for at ``now`` carries nothing: the later of the backhaul latency's end
    and the vehicle's handover interruption (inf: no pause)."""
    if latency_s > 0.0:
        return max(now + latency_s, interrupted_until if interrupted_until < math.inf else now)
    return interrupted_until
