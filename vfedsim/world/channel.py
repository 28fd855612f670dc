"""Link budget: noise, median SNR, SNR-to-rate mappings (Shannon, MCS table), coverage radius, shadowing.

Pure, vectorised functions over numpy arrays (DESIGN.md, principle 1); no SimPy, no torch. Units are in
the names: ``_m`` metres, ``_hz`` hertz, ``_db``/``_dbm`` decibels, ``_bps`` bit/s. Every formula names
its source. Path-loss models live in `vfedsim.world.pathloss` (re-exported here); per-link LOS state and
fading in `vfedsim.world.linkstate`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..scenario import ChannelProfile
from .linkstate import los_probability
from .pathloss import MIN_DISTANCE_M, SPEED_OF_LIGHT_MPS, free_space_path_loss_db, path_loss_db

__all__ = [
    "SPEED_OF_LIGHT_MPS", "THERMAL_NOISE_DBM_PER_HZ", "path_loss_db", "free_space_path_loss_db",
    "noise_power_dbm", "direction_bandwidth_hz", "median_snr_db", "shannon_rate_bps", "McsTable",
    "MCS_TABLES", "mcs_index", "packet_error_rate", "mcs_phy_rate_bps", "mcs_rate_bps", "rate_from_snr_bps",
    "per_from_snr", "usable_snr_db", "profile_mcs_table", "mac_efficiency", "gap_min_snr_db", "MCS_SNR_GAP_DB", "NR_MCS_TABLE1_QM_R1024",
    "LTE_CQI_TABLE_QM_R1024", "mean_received_power_dbm", "dbm_to_mw", "sinr_db", "rsu_channels",
    "coverage_radius_m", "link_budget", "Shadowing", "MIN_DISTANCE_M",
]

THERMAL_NOISE_DBM_PER_HZ = -174.0  # [dBm/Hz] kT at 290 K


def noise_power_dbm(bandwidth_hz: ArrayLike, noise_figure_db: float) -> np.ndarray:
    """Receiver noise power [dBm]: -174 dBm/Hz + 10 log10(B / Hz) + NF (thermal noise at 290 K)."""
    return THERMAL_NOISE_DBM_PER_HZ + 10.0 * np.log10(np.asarray(bandwidth_hz, dtype=np.float64)) + noise_figure_db


def direction_bandwidth_hz(profile: ChannelProfile, uplink: bool | ArrayLike) -> np.ndarray:
    """[Hz] the profile's bandwidth of each direction: ``bandwidth_hz`` uplink, ``downlink_hz`` downlink."""
    return np.where(np.asarray(uplink, dtype=bool), profile.bandwidth_hz, profile.downlink_hz)


def median_snr_db(profile: ChannelProfile, distance_m: ArrayLike, *, uplink: bool | ArrayLike,
                  bandwidth_hz: ArrayLike | None = None, distance_2d_m: ArrayLike | None = None,
                  path_loss: Any = None) -> np.ndarray:
    """Median SNR [dB] (no shadowing, no fading) at 3D ``distance_m`` [m].

    SNR = P_tx + 2 G - PL(d) - N, with P_tx the vehicle's power (uplink) or the RSU's (downlink), G the
    antenna gain at each end, PL the ``path_loss`` model (default ``profile.path_loss``, the LOS one) and
    N = `noise_power_dbm` over the direction's bandwidth: ``bandwidth_hz`` when given, else
    `direction_bandwidth_hz`. ``uplink`` may be an array (one flag per distance). ``distance_2d_m`` [m] is the
    horizontal distance for models that use it (see `path_loss_db`).
    """
    up = np.asarray(uplink, dtype=bool)
    if bandwidth_hz is None:
        bandwidth_hz = direction_bandwidth_hz(profile, up)
    tx = np.where(up, profile.vehicle_tx_power_dbm, profile.rsu_tx_power_dbm)
    model = profile.path_loss if path_loss is None else path_loss
    pl = path_loss_db(model, distance_m, profile.carrier_hz, distance_2d_m=distance_2d_m)
    return tx + 2.0 * profile.antenna_gain_dbi - pl - noise_power_dbm(bandwidth_hz, profile.noise_figure_db)


def shannon_rate_bps(bandwidth_hz: ArrayLike, snr_db: ArrayLike, efficiency: float,
                     max_spectral_efficiency: float) -> np.ndarray:
    """Rate [bit/s] = B x min(eff x log2(1 + SNR), max_se) (Shannon capacity scaled by an efficiency,
    capped at ``max_spectral_efficiency`` [bit/s/Hz]).

    This is the rate of any SNR; that no data flows below ``min_snr_db`` (outage) is the caller's rule
    (`vfedsim.world.radio.Radio.rate_bps` applies it).
    """
    snr_lin = np.power(10.0, np.asarray(snr_db, dtype=np.float64) / 10.0)
    se = np.minimum(efficiency * np.log2(1.0 + snr_lin), max_spectral_efficiency)
    return np.asarray(bandwidth_hz, dtype=np.float64) * se


@dataclass(frozen=True)
class McsTable:
    """A modulation-and-coding table with link adaptation and a packet-error-rate (PER) curve per MCS.

    Per MCS: a PHY rate ``rates_bps`` [bit/s] at ``bandwidth_hz`` [Hz], i.e. spectral efficiency x
    ``bandwidth_hz`` x (1 - ``overhead``), and the minimum SNR [dB] at which its PER is ``per_at_min`` (the
    sensitivity / BLER-target criterion), with a logistic PER curve PER(s) = 1 / (1 + exp(``per_slope_per_db``
    (s - s50))) through that point. At another bandwidth B the rate scales as B / ``bandwidth_hz``; another
    overhead o scales it by (1 - o) / (1 - ``overhead``) (`mcs_phy_rate_bps`).
    """

    name: str
    bandwidth_hz: float
    rates_bps: tuple[float, ...]
    min_snr_db: tuple[float, ...]
    per_at_min: float
    per_slope_per_db: float
    source: str
    overhead: float = 0.0  # fraction of the PHY rate lost to overhead, already in rates_bps

    def __post_init__(self) -> None:
        # link adaptation: for thresholds sorted ascending, the highest-rate MCS among those up to each one
        # (TS 38.214's MCS 17, 64QAM, has a lower efficiency and minimum SNR than MCS 16, 16QAM)
        order = np.argsort(np.asarray(self.min_snr_db), kind="stable")
        rates = np.asarray(self.rates_bps)[order]
        best = np.array([order[int(np.argmax(rates[:k + 1]))] for k in range(len(order))], dtype=np.int64)
        object.__setattr__(self, "_sorted_min_snr_db", np.asarray(self.min_snr_db)[order])
        object.__setattr__(self, "_best_mcs", best)
        object.__setattr__(self, "_snr50_db", self._compute_snr50_db())

    def _compute_snr50_db(self) -> np.ndarray:
        p = self.per_at_min
        return np.asarray(self.min_snr_db) - math.log((1.0 - p) / p) / self.per_slope_per_db

    def snr50_db(self) -> np.ndarray:
        """[dB] per MCS, the SNR where the PER is 1/2: min SNR - ln((1 - p)/p) / slope."""
        return self._snr50_db.copy()

    def efficiency_bps_per_hz(self) -> np.ndarray:
        """[bit/s/Hz] per MCS, before overhead: rate / (bandwidth x (1 - overhead))."""
        return np.asarray(self.rates_bps) / (self.bandwidth_hz * (1.0 - self.overhead))


# IEEE Std 802.11-2020 §17.3.10.2, Table 17-18 (receiver minimum input sensitivity, 10 MHz channels, the
# OFDM PHY of 802.11p): -85, -84, -82, -80, -77, -73, -69, -68 dBm for 3 ... 27 Mbit/s, at a PER of 10 %,
# "assuming a noise figure of 10 dB and 5 dB implementation margins". With 10 MHz the thermal noise there is
# -174 + 70 + 10 = -94 dBm, so the minimum SNR per MCS is sensitivity + 94 dB (implementation margin
# included). The PER slope (1.5 per dB: PER falls from 90 % to 10 % over 2.9 dB) is a modelling assumption
# of the shape of coded-OFDM AWGN PER curves, not a number from the standard.
_IEEE80211P = McsTable(
    name="ieee80211p", bandwidth_hz=10e6,
    rates_bps=(3e6, 4.5e6, 6e6, 9e6, 12e6, 18e6, 24e6, 27e6),
    min_snr_db=(9.0, 10.0, 12.0, 14.0, 17.0, 21.0, 25.0, 26.0),
    per_at_min=0.1, per_slope_per_db=1.5,
    source="IEEE Std 802.11-2020 Table 17-18 (10 MHz), minimum SNR = sensitivity + 94 dB")

# 3GPP TS 38.214 V16 Table 5.1.3.1-1 (NR MCS index table 1 for PDSCH, up to 64QAM): (Q_m, R x 1024) of MCS 0-28;
# the spectral efficiency is Q_m R [bit/s/Hz] (the table's last column, rounded there to 4 decimals).
NR_MCS_TABLE1_QM_R1024 = (
    (2, 120), (2, 157), (2, 193), (2, 251), (2, 308), (2, 379), (2, 449), (2, 526), (2, 602), (2, 679),
    (4, 340), (4, 378), (4, 434), (4, 490), (4, 553), (4, 616), (4, 658),
    (6, 438), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666), (6, 719), (6, 772), (6, 822), (6, 873), (6, 910),
    (6, 948),
)
# 3GPP TS 36.213 V15 Table 7.2.3-1 (LTE 4-bit CQI table): (Q_m, R x 1024) of CQI 1-15. TS 36.213's MCS table
# 7.1.7.1-1 gives a modulation order and a TBS index per MCS, not a code rate: its efficiencies would need the
# TBS table 7.1.7.2.1-1 and a resource count. The CQI table lists the efficiencies directly (the usual link
# abstraction of system-level LTE simulators), so the LTE table here is one "MCS" per CQI.
LTE_CQI_TABLE_QM_R1024 = (
    (2, 78), (2, 120), (2, 193), (2, 308), (2, 449), (2, 602), (4, 378), (4, 490), (4, 616),
    (6, 466), (6, 567), (6, 666), (6, 772), (6, 873), (6, 948),
)
# ASSUMPTION (not from the standards): the minimum SNR of an MCS of spectral efficiency SE (its 10 % BLER
# point) is where a Shannon bound with an SNR gap reaches SE: SNR_min = 10 log10(2^SE - 1) + MCS_SNR_GAP_DB
# (the SNR-gap approximation, e.g. Goldsmith, Wireless Communications, 2005, §14.2; here for turbo/LDPC coded
# OFDM). A 3 dB gap puts the LTE CQI thresholds at -6.5 ... 19.6 dB, the range of the AWGN 10 %-BLER
# thresholds that link-level simulations of LTE report (about -7 dB for CQI 1 to 20 dB for CQI 15; e.g. the
# Vienna LTE simulators, Mehlfuehrer et al., EURASIP JWCN 2011). Replace them by link-level curves of your
# receiver for accurate numbers. The PER slope (2 per dB: 90 % to 10 % over 2.2 dB, steeper than 802.11p's
# convolutional code) is an assumption too.
MCS_SNR_GAP_DB = 3.0  # [dB]
_CODED_PER_SLOPE_PER_DB = 2.0  # [1/dB]
# Overheads [fraction of Q_m R x B]. NR at 10 MHz, 15 kHz subcarriers: 52 resource blocks of 12 subcarriers
# (TS 38.101-1 Table 5.3.2-1) fill 52 x 180 kHz / 10 MHz = 0.936 of the band; 14 OFDM symbols per 1 ms slot
# at 15 kHz carry 14/15 of the subcarrier rate (cyclic prefix, T_s = 1e-3 / 14 s in TS 38.306 §4.1.2); the
# control and reference-signal overhead OH is 0.14 (TS 38.306 §4.1.2, FR1 downlink; 0.08 uplink). So the rate
# at MCS 28 equals TS 38.306's maximum data rate for one layer: 41.7 Mbit/s at 10 MHz. LTE-V2X (PC5 sidelink)
# at 10 MHz: 50 resource blocks (TS 36.101 Table 5.6-1): 0.9 of the band; 14/15 for the cyclic prefix; of 14
# SC-FDMA symbols per subframe 4 carry DMRS and the last is a guard (TS 36.211 §9.8), leaving 9/14 (PSCCH's
# resource blocks are neglected). Other bandwidths or numerologies: set the profile's ``mcs_overhead``.
NR_OVERHEAD = 1.0 - (52 * 12 * 15e3 / 10e6) * (14.0 / 15.0) * (1.0 - 0.14)
LTE_V2X_OVERHEAD = 1.0 - (50 * 12 * 15e3 / 10e6) * (14.0 / 15.0) * (9.0 / 14.0)


def gap_min_snr_db(efficiency_bps_per_hz: ArrayLike, gap_db: float = MCS_SNR_GAP_DB) -> np.ndarray:
    """[dB] the SNR at which a Shannon bound with an SNR gap reaches the spectral efficiency [bit/s/Hz]:
    10 log10(2^SE - 1) + gap (the assumption behind the NR and LTE tables' minimum SNRs, see above)."""
    return 10.0 * np.log10(np.power(2.0, np.asarray(efficiency_bps_per_hz, dtype=np.float64)) - 1.0) + gap_db


def _efficiency_table(name: str, qm_r1024: tuple[tuple[int, int], ...], overhead: float, source: str) -> McsTable:
    se = np.array([qm * r / 1024.0 for qm, r in qm_r1024])
    return McsTable(name=name, bandwidth_hz=10e6, rates_bps=tuple(float(x) for x in se * 10e6 * (1.0 - overhead)),
                    min_snr_db=tuple(float(x) for x in gap_min_snr_db(se)), per_at_min=0.1,
                    per_slope_per_db=_CODED_PER_SLOPE_PER_DB, source=source, overhead=overhead)


MCS_TABLES: dict[str, McsTable] = {
    "ieee80211p": _IEEE80211P,
    "nr-v2x": _efficiency_table(
        "nr-v2x", NR_MCS_TABLE1_QM_R1024, NR_OVERHEAD,
        "3GPP TS 38.214 Table 5.1.3.1-1 (64QAM), overhead TS 38.306 §4.1.2 at 10 MHz / 15 kHz; minimum SNR: "
        "Shannon with a 3 dB gap (assumption)"),
    "lte-v2x": _efficiency_table(
        "lte-v2x", LTE_CQI_TABLE_QM_R1024, LTE_V2X_OVERHEAD,
        "3GPP TS 36.213 Table 7.2.3-1 (CQI efficiencies), PC5 overhead TS 36.211 §9.8 at 10 MHz; minimum SNR: "
        "Shannon with a 3 dB gap (assumption)"),
}


def mcs_index(table: McsTable, snr_db: ArrayLike) -> np.ndarray:
    """int per SNR: link adaptation, the MCS of highest rate among those whose minimum SNR is met (the highest
    index in a table sorted by both; the lowest index on a tie), -1 when none is."""
    k = np.searchsorted(table._sorted_min_snr_db, np.asarray(snr_db, dtype=np.float64), side="right") - 1
    return np.where(k >= 0, table._best_mcs[np.maximum(k, 0)], -1)


def packet_error_rate(table: McsTable, mcs: ArrayLike, snr_db: ArrayLike) -> np.ndarray:
    """PER of MCS ``mcs`` at ``snr_db`` [dB] on the table's logistic curve (1 where mcs is -1)."""
    m = np.asarray(mcs, dtype=np.int64)
    s50 = table._snr50_db[np.maximum(m, 0)]
    per = 1.0 / (1.0 + np.exp(np.clip(table.per_slope_per_db * (np.asarray(snr_db, dtype=np.float64) - s50),
                                      -700.0, 700.0)))
    return np.where(m >= 0, per, 1.0)


def mcs_phy_rate_bps(table: McsTable, bandwidth_hz: ArrayLike, snr_db: ArrayLike,
                     overhead: float | None = None) -> np.ndarray:
    """PHY rate [bit/s] of the MCS chosen at ``snr_db`` (`mcs_index`), no packet errors: efficiency x B x
    (1 - overhead) = rate(MCS) x B / B_table x (1 - overhead) / (1 - table overhead); 0 below every MCS.
    ``overhead`` None: the table's."""
    return _phy_rate_bps(table, mcs_index(table, snr_db), bandwidth_hz, overhead)


def _phy_rate_bps(table: McsTable, m: np.ndarray, bandwidth_hz: ArrayLike, overhead: float | None) -> np.ndarray:
    scale = np.asarray(bandwidth_hz, dtype=np.float64) / table.bandwidth_hz
    if overhead is not None and overhead != table.overhead:
        scale = scale * ((1.0 - overhead) / (1.0 - table.overhead))
    return np.where(m >= 0, np.asarray(table.rates_bps)[np.maximum(m, 0)] * scale, 0.0)


def mcs_rate_bps(table: McsTable, bandwidth_hz: ArrayLike, snr_db: ArrayLike,
                 overhead: float | None = None) -> np.ndarray:
    """Goodput [bit/s] = `mcs_phy_rate_bps` x (1 - PER(SNR)) of the chosen MCS; 0 below every MCS."""
    m = mcs_index(table, snr_db)
    return _phy_rate_bps(table, m, bandwidth_hz, overhead) * (1.0 - packet_error_rate(table, m, snr_db))


def profile_mcs_table(profile: ChannelProfile) -> McsTable:
    """The profile's ``mcs_table`` with ``mcs_snr_offset_db`` added to the minimum SNRs (the table itself when
    every offset is 0). Link adaptation then picks, at each SNR, the fastest MCS whose shifted minimum is met."""
    off = profile.mcs_snr_offset_db
    return _shifted_table(profile.mcs_table, tuple(off) if isinstance(off, tuple) else float(off))


@functools.lru_cache(maxsize=64)
def _shifted_table(name: str, offset_db: float | tuple[float, ...]) -> McsTable:
    table = MCS_TABLES[name]
    offsets = offset_db if isinstance(offset_db, tuple) else (offset_db,) * len(table.min_snr_db)
    if not any(offsets):
        return table
    return dataclasses.replace(table, min_snr_db=tuple(x + o for x, o in zip(table.min_snr_db, offsets)),
                               source=f"{table.source}, minimum SNRs shifted by {list(offsets)} dB")


def _mcs_of(profile: ChannelProfile, table: McsTable, snr_db: np.ndarray) -> np.ndarray:
    """Link adaptation (`mcs_index`), or the profile's ``mcs_fixed`` wherever its minimum SNR is met (-1
    elsewhere)."""
    if profile.mcs_fixed is None:
        return mcs_index(table, snr_db)
    return np.where(snr_db >= table.min_snr_db[profile.mcs_fixed], profile.mcs_fixed, -1)


def mac_efficiency(profile: ChannelProfile, mcs: ArrayLike | None = None) -> np.ndarray | float:
    """[1] the profile's ``mac_efficiency`` of each MCS index in ``mcs`` (-1: that of MCS 0, its rate is 0
    anyway); the one number when it is not per MCS."""
    eff = profile.mac_efficiency
    if not isinstance(eff, tuple):
        return float(eff)
    return np.asarray(eff, dtype=np.float64)[np.maximum(np.asarray(mcs, dtype=np.int64), 0)]


def rate_from_snr_bps(profile: ChannelProfile, bandwidth_hz: ArrayLike, snr_db: ArrayLike, *,
                      goodput: bool = True) -> np.ndarray:
    """[bit/s] the profile's SNR-to-rate mapping (``rate_mapping``: Shannon or its MCS table), times the
    profile's `mac_efficiency`, before the outage rule (that no data flows below ``min_snr_db`` is applied by
    the callers). With an MCS table (shifted by ``mcs_snr_offset_db``; ``mcs_fixed``: one MCS, no link
    adaptation), ``goodput`` True gives rate x (1 - PER), False the PHY rate (for callers that draw packet
    losses themselves with `per_from_snr`). Shannon has no packet errors: both are the same."""
    if profile.rate_mapping == "mcs":
        table = profile_mcs_table(profile)
        s = np.asarray(snr_db, dtype=np.float64)
        m = _mcs_of(profile, table, s)
        rate = _phy_rate_bps(table, m, bandwidth_hz, profile.mcs_overhead) * mac_efficiency(profile, m)
        return rate * (1.0 - packet_error_rate(table, m, s)) if goodput else rate
    rate = shannon_rate_bps(bandwidth_hz, snr_db, profile.efficiency, profile.max_spectral_efficiency)
    return rate * profile.mac_efficiency if profile.mac_efficiency != 1.0 else rate


def per_from_snr(profile: ChannelProfile, snr_db: ArrayLike) -> np.ndarray:
    """Packet error rate of the MCS the profile picks at ``snr_db`` [dB] (`mcs_index`, or ``mcs_fixed``;
    `packet_error_rate`); 1 below every MCS; 0 everywhere with ``rate_mapping: shannon`` (no packet errors)."""
    s = np.asarray(snr_db, dtype=np.float64)
    if profile.rate_mapping != "mcs":
        return np.zeros(s.shape)
    table = profile_mcs_table(profile)
    return packet_error_rate(table, _mcs_of(profile, table, s), s)


def usable_snr_db(profile: ChannelProfile) -> float:
    """[dB] the SNR below which a link carries nothing: ``min_snr_db``, and with an MCS table at least its
    lowest MCS's minimum (``mcs_fixed``: that MCS's), with ``mcs_snr_offset_db``."""
    if profile.rate_mapping == "mcs":
        table = profile_mcs_table(profile)
        lowest = table.min_snr_db[profile.mcs_fixed] if profile.mcs_fixed is not None else min(table.min_snr_db)
        return max(profile.min_snr_db, lowest)
    return profile.min_snr_db


# ---------------------------------------------------------------------------------- co-channel interference
def mean_received_power_dbm(profile: ChannelProfile, tx_power_dbm: ArrayLike, distance_m: ArrayLike, *,
                            distance_2d_m: ArrayLike | None = None) -> np.ndarray:
    """[dBm] the deterministic received power of an interferer at 3D ``distance_m`` [m]: P_tx + 2 G - PL_eff.

    Without a LOS model PL_eff is the median ``path_loss``. With one, the path gain is the LOS-probability
    weighted mean of both states' median gains, 10^(-PL_eff/10) = p 10^(-PL_LOS/10) + (1 - p)
    10^(-PL_NLOS/10), p = `los_probability` at ``distance_2d_m`` (default: ``distance_m``): the mean over the
    LOS state of the median power. No shadowing, no fading, no NLOSv randomness (its median, the mean
    blockage loss, is in PL_NLOS), so interference is a function of geometry alone and runs stay
    reproducible without extra random draws.
    """
    d3 = np.asarray(distance_m, dtype=np.float64)
    d2 = d3 if distance_2d_m is None else np.asarray(distance_2d_m, dtype=np.float64)
    fc = profile.carrier_hz
    gain_db = np.asarray(tx_power_dbm, dtype=np.float64) + 2.0 * profile.antenna_gain_dbi
    los_db = path_loss_db(profile.path_loss, d3, fc, distance_2d_m=d2)
    if profile.los_model == "none":
        return gain_db - los_db
    p = los_probability(profile.los_model, d2)
    nlos_db = path_loss_db(profile.nlos_path_loss, d3, fc, distance_2d_m=d2)
    mean_gain = p * np.power(10.0, -los_db / 10.0) + (1.0 - p) * np.power(10.0, -nlos_db / 10.0)
    return gain_db + 10.0 * np.log10(np.maximum(mean_gain, 1e-300))


def dbm_to_mw(power_dbm: ArrayLike) -> np.ndarray:
    """[mW] 10^(P / 10 dBm)."""
    return np.power(10.0, np.asarray(power_dbm, dtype=np.float64) / 10.0)


def sinr_db(snr_db: ArrayLike, interference_to_noise: ArrayLike) -> np.ndarray:
    """[dB] SINR = S / (N + I) from SNR = S / N [dB] and the linear ratio I / N: SNR - 10 log10(1 + I/N).

    Interference is treated as Gaussian noise (what the Shannon and MCS mappings assume of it)."""
    return np.asarray(snr_db, dtype=np.float64) - 10.0 * np.log10(1.0 + np.asarray(interference_to_noise,
                                                                                     dtype=np.float64))


def rsu_channels(n_rsus: int, frequency_reuse: int) -> np.ndarray:
    """(R,) int: RSU i's channel, i mod ``frequency_reuse`` (a reuse-k pattern along the RSUs' order)."""
    return np.arange(int(n_rsus), dtype=np.int64) % int(frequency_reuse)


def coverage_radius_m(profile: ChannelProfile, *, height_m: float, uplink_hz: float | None = None,
                      downlink_hz: float | None = None) -> float:
    """Horizontal coverage radius [m] of an RSU mounted ``height_m`` above the vehicle antennas.

    The horizontal distance r at which the weaker of the uplink and downlink median SNRs (with the path loss
    of ``profile.coverage_state``), at the 3D distance sqrt(r^2 + h^2), equals ``profile.min_snr_db``.
    Solved by bisection on r (the SNR falls monotonically with distance in every model), to about 1e-12
    relative. 0 when even r = 0 is below the
    threshold; ``math.inf`` when the threshold is still met at 1e9 m. ``uplink_hz``/``downlink_hz``
    override the bandwidths as in `median_snr_db`.
    """
    h = float(height_m)
    model = profile.nlos_path_loss if profile.coverage_state == "nlos" else profile.path_loss

    def margin(r: float) -> float:
        d = math.hypot(r, h)
        up = float(median_snr_db(profile, d, uplink=True, bandwidth_hz=uplink_hz, distance_2d_m=r, path_loss=model))
        down = float(median_snr_db(profile, d, uplink=False, bandwidth_hz=downlink_hz, distance_2d_m=r,
                                   path_loss=model))
        return min(up, down) - profile.min_snr_db

    if margin(0.0) < 0.0:
        return 0.0
    lo, hi = 0.0, 1.0
    while margin(hi) >= 0.0:
        lo, hi = hi, hi * 2.0
        if hi > 1e9:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if margin(mid) >= 0.0:
            lo = mid
        else:
            hi = mid
    return lo


def link_budget(profile: ChannelProfile, distances_m: ArrayLike) -> dict[str, np.ndarray]:
    """The uplink budget at each 3D distance [m], as printed by ``vfedsim channel``.

    Keys: ``distance_m``; ``path_loss_db`` (``path_loss``: the LOS loss when there is a LOS model);
    ``snr_db`` (median: no shadowing, no fading); ``rate_bps``: the full-band median rate by the profile's
    `rate_from_snr_bps`, 0 where the median SNR is below ``min_snr_db`` or the usable SNR. With a LOS model
    also ``los_probability`` (at the distance taken as horizontal), ``nlos_path_loss_db``, ``nlos_snr_db``
    and ``nlos_rate_bps``. ``covered`` (bool): the radio's coverage rule (`coverage_radius_m`) at that 3D
    distance: the weaker of the uplink and downlink median SNRs with the path loss of ``coverage_state``
    (``path_loss`` for los, ``nlos_path_loss`` for nlos) is at least ``min_snr_db``. No interference: a
    budget has no RSU layout.
    """
    d = np.atleast_1d(np.asarray(distances_m, dtype=np.float64))
    out = {"distance_m": d}
    states = [("", profile.path_loss)]
    if profile.nlos_path_loss is not None:
        states.append(("nlos_", profile.nlos_path_loss))
    for prefix, model in states:
        pl = path_loss_db(model, d, profile.carrier_hz)
        snr = median_snr_db(profile, d, uplink=True, path_loss=model)
        rate = rate_from_snr_bps(profile, profile.bandwidth_hz, snr)
        out[prefix + "path_loss_db"], out[prefix + "snr_db"] = pl, snr
        out[prefix + "rate_bps"] = np.where(snr >= usable_snr_db(profile), rate, 0.0)
    if profile.los_model != "none":
        out["los_probability"] = los_probability(profile.los_model, d)
    cover = profile.nlos_path_loss if profile.coverage_state == "nlos" else profile.path_loss
    weaker = np.minimum(median_snr_db(profile, d, uplink=True, path_loss=cover),
                        median_snr_db(profile, d, uplink=False, path_loss=cover))
    out["covered"] = weaker >= profile.min_snr_db
    return out


class Shadowing:
    """Log-normal shadowing [dB] of each (vehicle, RSU) link, correlated along the distance travelled.

    Gudmundson's model (Electronics Letters 27(23), 1991): a zero-mean Gaussian process in dB with standard
    deviation ``std_db`` and autocorrelation exp(-|delta d| / ``decorrelation_m``), i.e. an AR(1) sequence
    on a grid of step ``decorrelation_m / 10``. Between grid points values are interpolated linearly and
    rescaled to keep the marginal standard deviation exactly ``std_db``.

    The value is a pure function of (seed, vehicle, rsu, travelled distance): it does not depend on when,
    in which order or in which batches it is queried. To allow random access, the grid is cut into blocks of
    100 points (10 decorrelation distances); block b's values are the AR(1) filter started at 0 and run over
    the white noise of noise blocks b and b + 1 (the first warms the filter up), noise block j being 100
    standard normals from a Philox counter-based generator (Salmon et al., SC 2011) keyed by
    (hash(seed, ``kind``), vehicle, rsu, j) (``kind`` is "shadowing"; a second, independent process of a
    link, e.g. its NLOS shadowing, uses another kind). The truncation changes variances and correlations by
    at most exp(-10) (4.5e-5) relative. Computed blocks are cached (bounded; clearing it changes nothing).
    """

    STEPS_PER_DECORRELATION = 10
    BLOCK = 100
    _CACHE_LIMIT = 100_000  # cached blocks (800 B each) before the cache is cleared

    def __init__(self, *, seed: int, std_db: float, decorrelation_m: float, kind: str = "shadowing") -> None:
        self.seed = int(seed)
        self.kind = str(kind)
        self.std_db = float(std_db)
        self.decorrelation_m = float(decorrelation_m)
        self.step_m = self.decorrelation_m / self.STEPS_PER_DECORRELATION
        self.rho = math.exp(-1.0 / self.STEPS_PER_DECORRELATION)  # correlation of neighbouring grid points
        k = np.arange(2 * self.BLOCK, dtype=np.float64)
        self._rho_k = self.rho ** k  # rho^k and rho^-k turn the AR(1) recursion into one cumsum
        self._rho_neg_k = self.rho ** (-k)
        self._gain = math.sqrt(1.0 - self.rho ** 2)
        self._key0 = int.from_bytes(hashlib.sha256(f"{self.seed}/{self.kind}".encode()).digest()[:8], "little")
        self._bits = np.random.Philox(key=0)
        self._gen = np.random.Generator(self._bits)
        self._key = np.array([self._key0, 0], dtype=np.uint64)  # [1] is set per noise block
        self._state = {"bit_generator": "Philox",
                       "state": {"counter": np.zeros(4, dtype=np.uint64), "key": self._key},
                       "buffer": np.zeros(4, dtype=np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
        self._clear()

    def _clear(self) -> None:
        self._index: dict[int, int] = {}  # (vehicle, rsu, block) key -> row of _table
        self._table = np.empty((64, self.BLOCK))
        self._noise_cache: dict[int, np.ndarray] = {}

    def _noise(self, key: int) -> np.ndarray:
        """The 100 normals of noise block ``key`` (packed like a value block's key)."""
        w = self._noise_cache.pop(key, None)  # each noise block serves two value blocks: keep it for the next
        if w is None:
            self._key[1] = key  # the setter copies the state: one template serves every block
            self._bits.state = self._state
            w = self._gen.standard_normal(self.BLOCK)
            if len(self._noise_cache) > 4096:
                self._noise_cache.clear()
            self._noise_cache[key] = w
        return w

    def _blocks(self, keys: list[int]) -> np.ndarray:
        """(m, BLOCK) unit-variance values of the value blocks named by ``keys``."""
        w = np.empty((len(keys), 2 * self.BLOCK))  # each value block's noise: its two noise blocks
        for i, key in enumerate(keys):
            w[i, :self.BLOCK], w[i, self.BLOCK:] = self._noise(key), self._noise(key + 1)
        # x_k = rho x_{k-1} + sqrt(1 - rho^2) w_k from x = 0: x_k = g rho^k sum_{j<=k} rho^-j w_j
        return (self._gain * self._rho_k * np.cumsum(self._rho_neg_k * w, axis=1))[:, self.BLOCK:]

    def _rows(self, keys: list[int]) -> list[int]:
        get = self._index.get
        rows = [get(key, -1) for key in keys]
        if -1 in rows:
            missing = sorted({key for key, row in zip(keys, rows) if row < 0})
            start = len(self._index)
            while start + len(missing) > self._table.shape[0]:
                self._table = np.concatenate([self._table, np.empty_like(self._table)])
            self._table[start:start + len(missing)] = self._blocks(missing)
            for i, key in enumerate(missing):
                self._index[key] = start + i
            rows = [get(key) for key in keys]
        return rows

    def value_db(self, vehicle_ids: ArrayLike, rsu_ids: ArrayLike, travelled_m: ArrayLike) -> np.ndarray:
        """Shadowing [dB] of each link at the distance its vehicle has travelled [m] (negative -> 0).

        The three arguments broadcast against each other. All zeros when ``std_db`` is 0.
        """
        v, r, t = (np.asarray(vehicle_ids, dtype=np.int64), np.asarray(rsu_ids, dtype=np.int64),
                   np.asarray(travelled_m, dtype=np.float64))
        if not v.shape == r.shape == t.shape:
            v, r, t = np.broadcast_arrays(v, r, t)
        shape = v.shape
        if self.std_db == 0.0 or v.size == 0:
            return np.zeros(shape, dtype=np.float64)
        if len(self._index) > self._CACHE_LIMIT:
            self._clear()  # values are pure: recomputing them later gives the same numbers
        if v.size <= 4:  # a few links: the same arithmetic on Python floats (bit-identical, fewer numpy calls)
            return np.array([self._one(a, b, c) for a, b, c in zip(v.ravel().tolist(), r.ravel().tolist(),
                                                                      t.ravel().tolist())]).reshape(shape)
        u = np.maximum(t.ravel(), 0.0) / self.step_m
        k = u.astype(np.int64)  # floor, as u >= 0
        f = u - k
        kk = np.concatenate((k, k + 1))  # the grid points either side
        block = kk // self.BLOCK
        vv, rr = np.concatenate((v.ravel(), v.ravel())), np.concatenate((r.ravel(), r.ravel()))
        # key: rsu < 4096, block < 2^20 (10^4 km at 1 m decorrelation)
        rows = self._rows(((vv << 32) | (rr << 20) | block).tolist())  # may grow the table: index it after
        ab = self._table[rows, kk - block * self.BLOCK]
        a, b = ab[:k.size], ab[k.size:]
        g = 1.0 - f
        return (self.std_db * (g * a + f * b) / np.sqrt(g * g + f * f + 2.0 * self.rho * f * g)).reshape(shape)

    def _one(self, v: int, r: int, t: float) -> float:
        u = max(t, 0.0) / self.step_m
        k = int(u)
        f = u - k
        b0, b1 = k // self.BLOCK, (k + 1) // self.BLOCK
        rows = self._rows([(v << 32) | (r << 20) | b0, (v << 32) | (r << 20) | b1])
        a = float(self._table[rows[0], k - b0 * self.BLOCK])
        b = float(self._table[rows[1], k + 1 - b1 * self.BLOCK])
        g = 1.0 - f
        return self.std_db * (g * a + f * b) / math.sqrt(g * g + f * f + 2.0 * self.rho * f * g)
