"""The 802.11 DCF MAC at saturation: Bianchi's model, with OFDM frame timing (pure numpy, no simpy, no torch).

Bianchi's model (G. Bianchi, "Performance analysis of the IEEE 802.11 distributed coordination function",
IEEE JSAC 18(3), 2000) gives the throughput of n stations that always have a frame to send (saturation),
sharing one collision domain with binary exponential backoff:

* eq. (7): a station transmits in a random slot with probability
  tau = 2 (1 - 2p) / ((1 - 2p)(W + 1) + p W (1 - (2p)^m)), W = CW_min + 1, m = log2((CW_max + 1) / W);
  written here in the equivalent form tau = 2 / (1 + W + p W sum_{k<m} (2p)^k), which has no 0/0 at p = 1/2;
* eq. (9): a transmission collides with probability p = 1 - (1 - tau)^(n - 1);
* eq. (13): S = P_s P_tr E[P] / ((1 - P_tr) sigma + P_tr P_s T_s + P_tr (1 - P_s) T_c), with
  P_tr = 1 - (1 - tau)^n, P_s = n tau (1 - tau)^(n-1) / P_tr, sigma the slot time;
* eq. (17), basic access: T_s = DATA + SIFS + delta + ACK + DIFS + delta, T_c = DATA + DIFS + delta (with
  ``collision="eifs"``: T_c = DATA + EIFS + delta, EIFS = SIFS + ACK at the lowest rate + DIFS, IEEE Std
  802.11-2020 §10.3.2.3.7, the deferral a station applies after a frame it could not decode).

The frame durations are the OFDM PHY's (IEEE Std 802.11-2020 §17.4.3, eq. 17-29): preamble + SIGNAL +
ceil((16 + 8 L + 6) / N_DBPS) symbols, with N_DBPS = rate x symbol time. `OFDM_10MHZ` is the half-clocked
OFDM PHY of IEEE 802.11p (Table 17-21: slot 13 us, SIFS 32 us, preamble 32 us, SIGNAL 8 us, symbol 8 us;
CW 15 / 1023, §10.3.2.3); `OFDM_20MHZ` is 802.11a's (slot 9 us, SIFS 16 us, preamble 16 us, SIGNAL 4 us,
symbol 4 us). DIFS = SIFS + 2 slots (AIFSN 2, the DCF's and ns-3's non-QoS default).

`saturation_efficiency` is S over the data rate for an application payload: the share of the PHY rate that
reaches the application when n stations saturate the channel. vfedsim's channel profiles take a calibrated
``mac_efficiency`` per MCS (`vfedsim.world.channel`); this model is its analytic reference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["DcfTiming", "OFDM_10MHZ", "OFDM_20MHZ", "ofdm_duration_s", "bianchi_tau", "bianchi_throughput_bps",
           "saturation_efficiency", "MAC_OVERHEAD_BYTES", "ACK_BYTES"]

MAC_OVERHEAD_BYTES = 36
"""[B] per data frame above the IP packet: 24 MAC header (non-QoS data) + 4 FCS + 8 LLC/SNAP
(IEEE Std 802.11-2020 §9.3.2.1; RFC 1042)."""
ACK_BYTES = 14
"""[B] an ACK frame: frame control, duration, receiver address, FCS (§9.3.1.3)."""


@dataclass(frozen=True)
class DcfTiming:
    """DCF and OFDM PHY timing [s]. ``cw_min``/``cw_max`` are contention windows (slots, 2^k - 1)."""

    slot_s: float
    sifs_s: float
    preamble_s: float  # PLCP preamble
    signal_s: float  # the SIGNAL field (PLCP header), one symbol
    symbol_s: float
    cw_min: int = 15
    cw_max: int = 1023
    aifsn: int = 2  # DIFS = SIFS + aifsn slots
    propagation_s: float = 1e-6  # delta: the propagation delay Bianchi adds per frame

    @property
    def difs_s(self) -> float:
        return self.sifs_s + self.aifsn * self.slot_s

    @property
    def backoff_stages(self) -> int:
        """m: CW doubles m times from W = cw_min + 1 to cw_max + 1."""
        return int(round(math.log2((self.cw_max + 1) / (self.cw_min + 1))))


OFDM_10MHZ = DcfTiming(slot_s=13e-6, sifs_s=32e-6, preamble_s=32e-6, signal_s=8e-6, symbol_s=8e-6)
"""IEEE 802.11p (OFDM, 10 MHz channel spacing), IEEE Std 802.11-2020 Table 17-21."""
OFDM_20MHZ = DcfTiming(slot_s=9e-6, sifs_s=16e-6, preamble_s=16e-6, signal_s=4e-6, symbol_s=4e-6)
"""IEEE 802.11a (OFDM, 20 MHz), IEEE Std 802.11-2020 Table 17-21."""


def ofdm_duration_s(nbytes: ArrayLike, rate_bps: ArrayLike, timing: DcfTiming) -> np.ndarray:
    """[s] airtime of a PSDU of ``nbytes`` at ``rate_bps``: preamble + SIGNAL + ceil((16 + 8 L + 6) / N_DBPS)
    symbols, N_DBPS = rate x symbol time (IEEE Std 802.11-2020 eq. 17-29; SERVICE 16 bits, tail 6 bits)."""
    ndbps = np.round(np.asarray(rate_bps, dtype=np.float64) * timing.symbol_s)
    symbols = np.ceil((16.0 + 8.0 * np.asarray(nbytes, dtype=np.float64) + 6.0) / ndbps)
    return timing.preamble_s + timing.signal_s + symbols * timing.symbol_s


def bianchi_tau(n: ArrayLike, *, w: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(tau, p) of n saturated stations: the fixed point of Bianchi's eqs. (7) and (9), W = ``w`` (CW_min +
    1), ``m`` backoff stages. Solved by bisection on p in [0, 1) (the map is monotone), to 1e-15."""
    n = np.asarray(n, dtype=np.float64)
    if np.any(n < 1):
        raise ValueError("n must be >= 1 station")

    def tau_of(p: np.ndarray) -> np.ndarray:
        series = sum((2.0 * p) ** k for k in range(m))  # sum_{k<m} (2p)^k
        return 2.0 / (1.0 + w + p * w * series)

    lo, hi = np.zeros(n.shape), np.ones(n.shape)
    for _ in range(60):  # g(p) = 1 - (1 - tau(p))^(n-1) - p falls from >= 0 at p = 0 to < 0 at p = 1
        mid = 0.5 * (lo + hi)
        g = 1.0 - (1.0 - tau_of(mid)) ** (n - 1.0) - mid
        lo, hi = np.where(g > 0, mid, lo), np.where(g > 0, hi, mid)
    p = 0.5 * (lo + hi)
    return tau_of(p), p


def bianchi_throughput_bps(n: ArrayLike, *, payload_bytes: float, rate_bps: float, timing: DcfTiming = OFDM_10MHZ,
                           ack_rate_bps: float | None = None, overhead_bytes: int = MAC_OVERHEAD_BYTES,
                           collision: str = "difs", lowest_rate_bps: float | None = None) -> np.ndarray:
    """[bit/s] Bianchi's saturation throughput (eq. 13, basic access) of ``n`` stations, counting
    ``payload_bytes`` per successful frame of ``payload_bytes + overhead_bytes`` sent at ``rate_bps``.

    ACKs go at ``ack_rate_bps`` (default: the data rate). ``collision``: ``difs`` (Bianchi's T_c, eq. 17)
    or ``eifs`` (T_c ends with EIFS, whose ACK is at ``lowest_rate_bps``, default the ACK rate).
    """
    if collision not in ("difs", "eifs"):
        raise ValueError(f"collision must be 'difs' or 'eifs', got {collision!r}")
    ack_rate = rate_bps if ack_rate_bps is None else ack_rate_bps
    data = float(ofdm_duration_s(payload_bytes + overhead_bytes, rate_bps, timing))
    ack = float(ofdm_duration_s(ACK_BYTES, ack_rate, timing))
    delta = timing.propagation_s
    t_s = data + timing.sifs_s + delta + ack + timing.difs_s + delta
    if collision == "difs":
        t_c = data + timing.difs_s + delta
    else:
        low = float(ofdm_duration_s(ACK_BYTES, ack_rate if lowest_rate_bps is None else lowest_rate_bps, timing))
        t_c = data + timing.sifs_s + low + timing.difs_s + delta
    tau, _ = bianchi_tau(n, w=timing.cw_min + 1, m=timing.backoff_stages)
    n = np.asarray(n, dtype=np.float64)
    p_tr = 1.0 - (1.0 - tau) ** n
    p_s = n * tau * (1.0 - tau) ** (n - 1.0) / p_tr
    slot = (1.0 - p_tr) * timing.slot_s + p_tr * p_s * t_s + p_tr * (1.0 - p_s) * t_c
    return p_s * p_tr * 8.0 * payload_bytes / slot


def saturation_efficiency(n: ArrayLike, *, payload_bytes: float, rate_bps: float,
                          timing: DcfTiming = OFDM_10MHZ, **kwargs) -> np.ndarray:
    """[1] `bianchi_throughput_bps` / ``rate_bps``: the share of the PHY rate that ``payload_bytes`` per frame
    get at saturation with n stations."""
    return bianchi_throughput_bps(n, payload_bytes=payload_bytes, rate_bps=rate_bps, timing=timing, **kwargs) / rate_bps
