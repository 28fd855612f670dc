"""Link budget: noise, median SNR, SNR-to-rate mappings (Shannon, MCS table), coverage radius, shadowing.

Pure, vectorised functions over numpy arrays (DESIGN.md, principle 1); no SimPy, no torch. Units are in
the names: ``_m`` metres, ``_hz`` hertz, ``_db``/``_dbm`` decibels, ``_bps`` bit/s. Every formula names
its source. Path-loss models live in `vfedsim.world.pathloss` (re-exported here); per-link LOS state and
fading in `vfedsim.world.linkstate`.
"""
from __future__ import annotations

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
    "MCS_TABLES", "mcs_index", "packet_error_rate", "mcs_rate_bps", "rate_from_snr_bps", "usable_snr_db",
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
    """A modulation-and-coding table: per MCS a rate [bit/s] at ``bandwidth_hz`` and the minimum SNR [dB] at
    which its packet error rate is ``per_at_min`` (the standard's sensitivity criterion), with a logistic
    PER curve PER(s) = 1 / (1 + exp(``per_slope_per_db`` (s - s50))) through that point."""

    name: str
    bandwidth_hz: float
    rates_bps: tuple[float, ...]
    min_snr_db: tuple[float, ...]
    per_at_min: float
    per_slope_per_db: float
    source: str

    def snr50_db(self) -> np.ndarray:
        """[dB] per MCS, the SNR where the PER is 1/2: min SNR - ln((1 - p)/p) / slope."""
        p = self.per_at_min
        return np.asarray(self.min_snr_db) - math.log((1.0 - p) / p) / self.per_slope_per_db


# IEEE Std 802.11-2020 §17.3.10.2, Table 17-18 (receiver minimum input sensitivity, 10 MHz channels, the
# OFDM PHY of 802.11p): -85, -84, -82, -80, -77, -73, -69, -68 dBm for 3 ... 27 Mbit/s, at a PER of 10 %,
# "assuming a noise figure of 10 dB and 5 dB implementation margins". With 10 MHz the thermal noise there is
# -174 + 70 + 10 = -94 dBm, so the minimum SNR per MCS is sensitivity + 94 dB (implementation margin
# included). The PER slope (1.5 per dB: PER falls from 90 % to 10 % over 2.9 dB) is a modelling assumption
# of the shape of coded-OFDM AWGN PER curves, not a number from the standard.
MCS_TABLES: dict[str, McsTable] = {
    "ieee80211p": McsTable(
        name="ieee80211p", bandwidth_hz=10e6,
        rates_bps=(3e6, 4.5e6, 6e6, 9e6, 12e6, 18e6, 24e6, 27e6),
        min_snr_db=(9.0, 10.0, 12.0, 14.0, 17.0, 21.0, 25.0, 26.0),
        per_at_min=0.1, per_slope_per_db=1.5,
        source="IEEE Std 802.11-2020 Table 17-18 (10 MHz), minimum SNR = sensitivity + 94 dB"),
}


def mcs_index(table: McsTable, snr_db: ArrayLike) -> np.ndarray:
    """int per SNR: the highest MCS whose minimum SNR is met (link adaptation), -1 when none is."""
    return np.searchsorted(np.asarray(table.min_snr_db), np.asarray(snr_db, dtype=np.float64), side="right") - 1


def packet_error_rate(table: McsTable, mcs: ArrayLike, snr_db: ArrayLike) -> np.ndarray:
    """PER of MCS ``mcs`` at ``snr_db`` [dB] on the table's logistic curve (1 where mcs is -1)."""
    m = np.asarray(mcs, dtype=np.int64)
    s50 = table.snr50_db()[np.maximum(m, 0)]
    per = 1.0 / (1.0 + np.exp(np.clip(table.per_slope_per_db * (np.asarray(snr_db, dtype=np.float64) - s50),
                                      -700.0, 700.0)))
    return np.where(m >= 0, per, 1.0)


def mcs_rate_bps(table: McsTable, bandwidth_hz: ArrayLike, snr_db: ArrayLike) -> np.ndarray:
    """Goodput [bit/s] = rate(MCS) x B / B_table x (1 - PER(SNR)), MCS by `mcs_index`; 0 below every MCS."""
    m = mcs_index(table, snr_db)
    rate = np.asarray(table.rates_bps)[np.maximum(m, 0)] * (np.asarray(bandwidth_hz, dtype=np.float64)
                                                            / table.bandwidth_hz)
    return np.where(m >= 0, rate * (1.0 - packet_error_rate(table, m, snr_db)), 0.0)


def rate_from_snr_bps(profile: ChannelProfile, bandwidth_hz: ArrayLike, snr_db: ArrayLike) -> np.ndarray:
    """[bit/s] the profile's SNR-to-rate mapping (``rate_mapping``: Shannon or its MCS table), before the
    outage rule (that no data flows below ``min_snr_db`` is applied by the callers)."""
    if profile.rate_mapping == "mcs":
        return mcs_rate_bps(MCS_TABLES[profile.mcs_table], bandwidth_hz, snr_db)
    return shannon_rate_bps(bandwidth_hz, snr_db, profile.efficiency, profile.max_spectral_efficiency)


def usable_snr_db(profile: ChannelProfile) -> float:
    """[dB] the SNR below which a link carries nothing: ``min_snr_db``, and with an MCS table at least its
    lowest MCS's minimum."""
    if profile.rate_mapping == "mcs":
        return max(profile.min_snr_db, MCS_TABLES[profile.mcs_table].min_snr_db[0])
    return profile.min_snr_db


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
    and ``nlos_rate_bps``.
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
        self._clear()

    def _clear(self) -> None:
        self._index: dict[int, int] = {}  # (vehicle, rsu, block) key -> row of _table
        self._table = np.empty((64, self.BLOCK))
        self._noise_cache: dict[int, np.ndarray] = {}

    def _noise(self, key: int) -> np.ndarray:
        """The 100 normals of noise block ``key`` (packed like a value block's key)."""
        w = self._noise_cache.pop(key, None)  # each noise block serves two value blocks: keep it for the next
        if w is None:
            self._bits.state = {"bit_generator": "Philox", "state": {
                "counter": np.zeros(4, dtype=np.uint64), "key": np.array([self._key0, key], dtype=np.uint64)},
                "buffer": np.zeros(4, dtype=np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
            w = self._gen.standard_normal(self.BLOCK)
            if len(self._noise_cache) > 4096:
                self._noise_cache.clear()
            self._noise_cache[key] = w
        return w

    def _blocks(self, keys: list[int]) -> np.ndarray:
        """(m, BLOCK) unit-variance values of the value blocks named by ``keys``."""
        w = np.array([np.concatenate((self._noise(key), self._noise(key + 1))) for key in keys])
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
        if v.size == 1:  # one link: the same arithmetic on Python floats (bit-identical, fewer numpy calls)
            return np.full(shape, self._one(int(v.flat[0]), int(r.flat[0]), float(t.flat[0])))
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
