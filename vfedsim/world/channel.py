"""Link budget: path loss, noise, median SNR, Shannon rate, coverage radius and log-normal shadowing.

Pure, vectorised functions over numpy arrays (DESIGN.md, principle 1); no SimPy, no torch. Units are in
the names: ``_m`` metres, ``_hz`` hertz, ``_db``/``_dbm`` decibels, ``_bps`` bit/s. Every formula names
its source. Distances below 1 m are clamped to 1 m in every path-loss model: the far-field formulas do not
hold closer than that, and the clamp keeps the loss finite at d = 0.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..rng import stream
from ..scenario import ChannelProfile, FreeSpacePathLoss, HighwayLosPathLoss, LogDistancePathLoss

__all__ = [
    "SPEED_OF_LIGHT_MPS", "THERMAL_NOISE_DBM_PER_HZ", "path_loss_db", "free_space_path_loss_db",
    "noise_power_dbm", "direction_bandwidth_hz", "median_snr_db", "shannon_rate_bps", "coverage_radius_m",
    "link_budget", "Shadowing",
]

SPEED_OF_LIGHT_MPS = 299_792_458.0  # [m/s]
THERMAL_NOISE_DBM_PER_HZ = -174.0  # [dBm/Hz] kT at 290 K
MIN_DISTANCE_M = 1.0  # [m] distances below this are clamped (see the module docstring)


def free_space_path_loss_db(distance_m: ArrayLike, carrier_hz: float) -> np.ndarray:
    """Friis free-space path loss [dB]: 20 log10(4 pi d f / c) (Friis 1946; ITU-R P.525 eq. 4)."""
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), MIN_DISTANCE_M)
    return 20.0 * np.log10(4.0 * math.pi * d * float(carrier_hz) / SPEED_OF_LIGHT_MPS)


def _log_distance_db(model: LogDistancePathLoss, d: np.ndarray, carrier_hz: float) -> np.ndarray:
    # PL(d) = PL(d0) + 10 n log10(d / d0) (Rappaport, Wireless Communications, 2nd ed., eq. 4.68)
    d0 = model.reference_distance_m
    ref = (model.reference_loss_db if model.reference_loss_db is not None
           else float(free_space_path_loss_db(d0, carrier_hz)))
    return ref + 10.0 * model.exponent * np.log10(d / d0)


def _highway_los_db(d: np.ndarray, carrier_hz: float) -> np.ndarray:
    # 3GPP TR 37.885 V15.3.0 Table 6.2.1-1, highway LOS: PL = 32.4 + 20 log10(d) + 20 log10(fc / 1 GHz)
    return 32.4 + 20.0 * np.log10(d) + 20.0 * math.log10(float(carrier_hz) / 1e9)


def path_loss_db(model: Any, distance_m: ArrayLike, carrier_hz: float) -> np.ndarray:
    """Median path loss [dB] at ``distance_m`` [m] (3D) and carrier ``carrier_hz`` [Hz].

    ``model`` is one of the scenario's path-loss configs (``scenario.PathLoss``):

    * ``free-space``: Friis, 20 log10(4 pi d f / c).
    * ``log-distance``: PL(d0) + 10 n log10(d / d0), with PL(d0) the free-space loss at d0 unless
      ``reference_loss_db`` is given (Rappaport eq. 4.68).
    * ``3gpp-highway-los``: 32.4 + 20 log10(d) + 20 log10(fc / GHz) (3GPP TR 37.885 Table 6.2.1-1).

    Distances below 1 m are clamped to 1 m.
    """
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), MIN_DISTANCE_M)
    if isinstance(model, FreeSpacePathLoss):
        return free_space_path_loss_db(d, carrier_hz)
    if isinstance(model, LogDistancePathLoss):
        return _log_distance_db(model, d, carrier_hz)
    if isinstance(model, HighwayLosPathLoss):
        return _highway_los_db(d, carrier_hz)
    raise TypeError(f"unknown path-loss model {type(model).__name__}")


def noise_power_dbm(bandwidth_hz: ArrayLike, noise_figure_db: float) -> np.ndarray:
    """Receiver noise power [dBm]: -174 dBm/Hz + 10 log10(B / Hz) + NF (thermal noise at 290 K)."""
    return THERMAL_NOISE_DBM_PER_HZ + 10.0 * np.log10(np.asarray(bandwidth_hz, dtype=np.float64)) + noise_figure_db


def direction_bandwidth_hz(profile: ChannelProfile, uplink: bool | ArrayLike) -> np.ndarray:
    """[Hz] the profile's bandwidth of each direction: ``bandwidth_hz`` uplink, ``downlink_hz`` downlink."""
    return np.where(np.asarray(uplink, dtype=bool), profile.bandwidth_hz, profile.downlink_hz)


def median_snr_db(profile: ChannelProfile, distance_m: ArrayLike, *, uplink: bool | ArrayLike,
                  bandwidth_hz: ArrayLike | None = None) -> np.ndarray:
    """Median SNR [dB] (no shadowing) at 3D ``distance_m`` [m].

    SNR = P_tx + 2 G - PL(d) - N, with P_tx the vehicle's power (uplink) or the RSU's (downlink), G the
    antenna gain at each end and N = `noise_power_dbm` over the direction's bandwidth: ``bandwidth_hz``
    when given, else `direction_bandwidth_hz`. ``uplink`` may be an array (one flag per distance).
    """
    up = np.asarray(uplink, dtype=bool)
    if bandwidth_hz is None:
        bandwidth_hz = direction_bandwidth_hz(profile, up)
    tx = np.where(up, profile.vehicle_tx_power_dbm, profile.rsu_tx_power_dbm)
    pl = path_loss_db(profile.path_loss, distance_m, profile.carrier_hz)
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


def coverage_radius_m(profile: ChannelProfile, *, height_m: float, uplink_hz: float | None = None,
                      downlink_hz: float | None = None) -> float:
    """Horizontal coverage radius [m] of an RSU mounted ``height_m`` above the vehicle antennas.

    The horizontal distance r at which the weaker of the uplink and downlink median SNRs, at the 3D
    distance sqrt(r^2 + h^2), equals ``profile.min_snr_db``. Solved by bisection on r (the SNR falls
    monotonically with distance in every model), to about 1e-12 relative. 0 when even r = 0 is below the
    threshold; ``math.inf`` when the threshold is still met at 1e9 m. ``uplink_hz``/``downlink_hz``
    override the bandwidths as in `median_snr_db`.
    """
    h = float(height_m)

    def margin(r: float) -> float:
        d = math.hypot(r, h)
        up = float(median_snr_db(profile, d, uplink=True, bandwidth_hz=uplink_hz))
        down = float(median_snr_db(profile, d, uplink=False, bandwidth_hz=downlink_hz))
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

    Keys: ``distance_m``; ``path_loss_db``; ``snr_db`` (median, no shadowing); ``rate_bps``: the full-band
    median rate, 0 where the median SNR is below ``min_snr_db`` (outside coverage).
    """
    d = np.atleast_1d(np.asarray(distances_m, dtype=np.float64))
    pl = path_loss_db(profile.path_loss, d, profile.carrier_hz)
    snr = median_snr_db(profile, d, uplink=True)
    rate = shannon_rate_bps(profile.bandwidth_hz, snr, profile.efficiency, profile.max_spectral_efficiency)
    return {"distance_m": d, "path_loss_db": pl, "snr_db": snr,
            "rate_bps": np.where(snr >= profile.min_snr_db, rate, 0.0)}


class Shadowing:
    """Log-normal shadowing [dB] of each (vehicle, RSU) link, correlated along the distance travelled.

    Gudmundson's model (Electronics Letters 27(23), 1991): a zero-mean Gaussian process in dB with standard
    deviation ``std_db`` and autocorrelation exp(-|delta d| / ``decorrelation_m``), i.e. an AR(1) sequence
    on a grid of step ``decorrelation_m / 10``. Between grid points values are interpolated linearly and
    rescaled to keep the marginal standard deviation exactly ``std_db``.

    The value is a pure function of (seed, vehicle, rsu, travelled distance): it does not depend on when,
    in which order or in which batches it is queried. To allow random access, the grid is cut into blocks of
    100 points (10 decorrelation distances); block b's values are the AR(1) filter started at 0 and run over
    the white noise of grid blocks b-1 and b only, the noise of grid block j being drawn from
    ``stream(seed, "shadowing", vehicle, rsu, j + 1)``. The truncation changes variances and correlations by
    at most exp(-10) (4.5e-5) relative. Computed blocks are cached (bounded; clearing it changes nothing).
    """

    STEPS_PER_DECORRELATION = 10
    BLOCK = 100
    _CACHE_LIMIT = 100_000  # cached blocks (800 B each) before the cache is cleared

    def __init__(self, *, seed: int, std_db: float, decorrelation_m: float) -> None:
        self.seed = int(seed)
        self.std_db = float(std_db)
        self.decorrelation_m = float(decorrelation_m)
        self.step_m = self.decorrelation_m / self.STEPS_PER_DECORRELATION
        self.rho = math.exp(-1.0 / self.STEPS_PER_DECORRELATION)  # correlation of neighbouring grid points
        k = np.arange(2 * self.BLOCK, dtype=np.float64)
        self._rho_k = self.rho ** k  # rho^k and rho^-k turn the AR(1) recursion into one cumsum
        self._rho_neg_k = self.rho ** (-k)
        self._gain = math.sqrt(1.0 - self.rho ** 2)
        self._clear()

    def _clear(self) -> None:
        self._index: dict[int, int] = {}  # (vehicle, rsu, block) key -> row of _table
        self._table = np.empty((64, self.BLOCK))
        self._noise_cache: dict[tuple[int, int, int], np.ndarray] = {}

    def _noise(self, vehicle: int, rsu: int, block: int) -> np.ndarray:
        # noise block j drives grid indices (j-1)*BLOCK ... j*BLOCK-1 (block 0 only warms block 0 up)
        key = (vehicle, rsu, block)
        w = self._noise_cache.pop(key, None)  # each noise block serves two value blocks: keep it for the next
        if w is None:
            w = stream(self.seed, "shadowing", vehicle, rsu, block).standard_normal(self.BLOCK)
            if len(self._noise_cache) > 4096:
                self._noise_cache.clear()
            self._noise_cache[key] = w
        return w

    def _block(self, vehicle: int, rsu: int, block: int) -> np.ndarray:
        """Unit-variance values at grid indices block*BLOCK ... (block+1)*BLOCK-1 of one link."""
        w = np.concatenate([self._noise(vehicle, rsu, block), self._noise(vehicle, rsu, block + 1)])
        # x_k = rho x_{k-1} + sqrt(1 - rho^2) w_k from x = 0: x_k = g rho^k sum_{j<=k} rho^-j w_j
        return (self._gain * self._rho_k * np.cumsum(self._rho_neg_k * w))[self.BLOCK:]

    def _rows(self, keys: np.ndarray, v: np.ndarray, r: np.ndarray, block: np.ndarray) -> np.ndarray:
        get = self._index.get
        rows = [get(key, -1) for key in keys.tolist()]
        if -1 in rows:
            for i, key in enumerate(keys.tolist()):
                if rows[i] < 0:
                    row = get(key, -1)
                    if row < 0:
                        row = len(self._index)
                        if row == self._table.shape[0]:
                            self._table = np.concatenate([self._table, np.empty_like(self._table)])
                        self._table[row] = self._block(int(v[i]), int(r[i]), int(block[i]))
                        self._index[key] = row
                    rows[i] = row
        return np.array(rows, dtype=np.int64)

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
        u = np.maximum(t.ravel(), 0.0) / self.step_m
        k = u.astype(np.int64)  # floor, as u >= 0
        f = u - k
        kk = np.concatenate((k, k + 1))  # the grid points either side
        block = kk // self.BLOCK
        vv, rr = np.concatenate((v.ravel(), v.ravel())), np.concatenate((r.ravel(), r.ravel()))
        # key: rsu < 4096, block < 2^20 (10^4 km at 1 m decorrelation)
        rows = self._rows((vv << 32) | (rr << 20) | block, vv, rr, block)  # may grow the table: index it after
        ab = self._table[rows, kk - block * self.BLOCK]
        a, b = ab[:k.size], ab[k.size:]
        g = 1.0 - f
        return (self.std_db * (g * a + f * b) / np.sqrt(g * g + f * f + 2.0 * self.rho * f * g)).reshape(shape)
