"""Chunk losses (``chunk_bytes`` with an MCS rate mapping), as pure functions (docs/network.md, "Chunk
losses").

A flow carries its payload in chunks of L bytes at the PHY rate of its link's MCS; each chunk is lost with
the MCS's packet error rate p and sent again. At each rate evaluation of a flow with m = ceil(remaining /
L) chunks left, the number of resends k ~ NegativeBinomial(m, 1 - p) is drawn from the flow's own stream
(``stream(seed, "chunk-loss", vehicle, k-th transfer of that vehicle)``), and until the next evaluation the
payload moves at PHY rate x m / (m + k), with k L / m bytes resent per payload byte.
"""
from __future__ import annotations

import numpy as np

__all__ = ["draw_resends", "lossy_rates"]


def draw_resends(streams: list[np.random.Generator], chunks: np.ndarray, per: np.ndarray) -> np.ndarray:
    """(k,) resends before ``chunks`` successes at packet error rate ``per``, one draw from each flow's
    stream where both are positive (no draw otherwise)."""
    out = np.zeros(per.shape)
    for k, (rng, m, p) in enumerate(zip(streams, chunks.tolist(), per.tolist())):
        if m > 0 and p > 0.0:
            out[k] = float(rng.negative_binomial(m, max(1.0 - p, 1e-12)))
    return out


def lossy_rates(phy_bps: np.ndarray, per: np.ndarray, remaining_bytes: np.ndarray, chunk_bytes: float,
                streams: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
    """(payload rate [bit/s], resent bytes per payload byte) of flows with ``remaining_bytes`` to send over
    links at ``phy_bps`` with packet error rate ``per``, the resends drawn from ``streams`` (module doc)."""
    per = np.where(phy_bps > 0.0, per, 0.0)  # no chunk moves in an outage
    chunks = np.ceil(np.maximum(remaining_bytes, 0.0) / chunk_bytes)
    resends = draw_resends(streams, chunks, per)
    m = np.maximum(chunks, 1.0)
    return phy_bps * m / (m + resends), resends * chunk_bytes / np.maximum(chunks * chunk_bytes, 1.0)
