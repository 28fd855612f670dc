"""Median path loss [dB] of every model a channel profile can name, vectorised over distances.

Pure functions of numpy arrays (DESIGN.md, principle 1). Distances are in metres, carriers in hertz; the
standards' formulas take fc in GHz, which is written ``fc`` below. Every formula names its source:

* 3GPP TR 37.885 V15.3.0 (2019), "Study on evaluation methodology of new V2X use cases for LTE and NR",
  Table 6.2.1-1 (V2V path loss: highway LOS, urban LOS / NLOS, NLOSv) and §6.2.1 (vehicle blockage loss).
* 3GPP TR 38.901 V17.0.0 (2022), "Study on channel model for frequencies from 0.5 to 100 GHz",
  Table 7.4.1-1 (UMi-Street Canyon and UMa, LOS / NLOS, breakpoint in note 1).
* WINNER+ D5.3 V1.0 (2010), "WINNER+ Final Channel Models", Table 4-1, scenario B1 (urban micro-cell).

Conventions. ``distance_m`` is the 3D distance between the antennas; distances below 1 m are clamped to
1 m in every model (the far-field formulas do not hold closer, and the clamp keeps the loss finite at
d = 0). Models with antenna heights (38.901, WINNER+) also use the horizontal distance d_2D: pass it as
``distance_2d_m``, or it is derived from the 3D distance and the model's own heights as
sqrt(d_3D^2 - (h_BS - h_UT)^2). Formulas are evaluated outside the standards' validity ranges too (e.g.
d_2D < 10 m): a simulation needs a number everywhere, and the value there is the formula's extrapolation.

NLOSv (TR 37.885): the median loss returned here is the LOS loss plus the blockage loss's mean; its random
part (a normal deviate with ``blockage_std_db``, drawn per link and LOS slot) is added by the radio, see
`nlosv_blockage_db`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..scenario import (
    FreeSpacePathLoss, HighwayLosPathLoss, LogDistancePathLoss, NlosvPathLoss, UmaPathLoss, UmiPathLoss,
    UrbanLosPathLoss, UrbanNlosPathLoss, WinnerB1PathLoss,
)

__all__ = [
    "SPEED_OF_LIGHT_MPS", "MIN_DISTANCE_M", "path_loss_db", "free_space_path_loss_db", "breakpoint_distance_m",
    "nlosv_blockage_mean_db", "nlosv_blockage_db", "is_nlosv",
]

SPEED_OF_LIGHT_MPS = 299_792_458.0  # [m/s]
MIN_DISTANCE_M = 1.0  # [m] distances below this are clamped (see the module docstring)
EFFECTIVE_ENVIRONMENT_HEIGHT_M = 1.0  # [m] h_E of TR 38.901 Table 7.4.1-1 note 1 (UMi; UMa's LOS default)


def _fc_ghz(carrier_hz: float) -> float:
    return float(carrier_hz) / 1e9


def free_space_path_loss_db(distance_m: ArrayLike, carrier_hz: float) -> np.ndarray:
    """Friis free-space path loss [dB]: 20 log10(4 pi d f / c) (Friis 1946; ITU-R P.525 eq. 4)."""
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), MIN_DISTANCE_M)
    return 20.0 * np.log10(4.0 * math.pi * d * float(carrier_hz) / SPEED_OF_LIGHT_MPS)


def breakpoint_distance_m(bs_height_m: float, ut_height_m: float, carrier_hz: float,
                          environment_height_m: float = EFFECTIVE_ENVIRONMENT_HEIGHT_M) -> float:
    """[m] d'_BP = 4 h'_BS h'_UT fc / c with h' = h - h_E (TR 38.901 Table 7.4.1-1 note 1; fc in Hz)."""
    return (4.0 * (bs_height_m - environment_height_m) * (ut_height_m - environment_height_m)
            * float(carrier_hz) / SPEED_OF_LIGHT_MPS)


def _d2d(model: Any, d3: np.ndarray, distance_2d_m: ArrayLike | None) -> np.ndarray:
    if distance_2d_m is not None:
        return np.broadcast_to(np.asarray(distance_2d_m, dtype=np.float64), d3.shape)
    dh = model.bs_height_m - _ut_height(model)
    return np.sqrt(np.maximum(d3 * d3 - dh * dh, 0.0))


def _ut_height(model: Any) -> float:
    return model.ms_height_m if isinstance(model, WinnerB1PathLoss) else model.ut_height_m


# --------------------------------------------------------------------------------- TR 37.885 (V2V)
def _highway_los_db(d: np.ndarray, fc: float) -> np.ndarray:
    # TR 37.885 Table 6.2.1-1, highway LOS: PL = 32.4 + 20 log10(d) + 20 log10(fc)
    return 32.4 + 20.0 * np.log10(d) + 20.0 * math.log10(fc)


def _urban_los_db(d: np.ndarray, fc: float) -> np.ndarray:
    # TR 37.885 Table 6.2.1-1, urban LOS: PL = 38.77 + 16.7 log10(d) + 18.2 log10(fc)
    return 38.77 + 16.7 * np.log10(d) + 18.2 * math.log10(fc)


def _urban_nlos_db(d: np.ndarray, fc: float) -> np.ndarray:
    # TR 37.885 Table 6.2.1-1, urban NLOS: PL = 36.85 + 30 log10(d) + 18.9 log10(fc)
    return 36.85 + 30.0 * np.log10(d) + 18.9 * math.log10(fc)


def nlosv_blockage_mean_db(model: NlosvPathLoss, distance_m: ArrayLike) -> np.ndarray:
    """[dB] mean vehicle-blockage loss: mu = ``blockage_mean_db`` + max(0, 15 log10(d) - 41) (TR 37.885
    §6.2.1, NLOSv; the distance term grows beyond d = 10^(41/15) ~ 543 m)."""
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), MIN_DISTANCE_M)
    return model.blockage_mean_db + np.maximum(0.0, 15.0 * np.log10(d) - 41.0)


def nlosv_blockage_db(model: NlosvPathLoss, distance_m: ArrayLike, z: ArrayLike) -> np.ndarray:
    """[dB] a vehicle-blockage loss max(0, mu + sigma z) for standard normal deviates ``z`` (TR 37.885
    §6.2.1: a log-normal loss, i.e. normal in dB, with mean mu and standard deviation sigma =
    ``blockage_std_db``, floored at 0 dB)."""
    return np.maximum(0.0, nlosv_blockage_mean_db(model, distance_m)
                      + model.blockage_std_db * np.asarray(z, dtype=np.float64))


def _nlosv_los_db(model: NlosvPathLoss, d: np.ndarray, fc: float) -> np.ndarray:
    return _highway_los_db(d, fc) if model.los == "highway" else _urban_los_db(d, fc)


def is_nlosv(model: Any) -> bool:
    """Whether ``model`` has a random part (the NLOSv blockage loss) on top of its median."""
    return isinstance(model, NlosvPathLoss) and model.blockage_std_db > 0.0


# ------------------------------------------------------------------------------------- TR 38.901
def _umi_db(model: UmiPathLoss, d3: np.ndarray, d2: np.ndarray, carrier_hz: float) -> np.ndarray:
    # TR 38.901 Table 7.4.1-1, UMi-Street Canyon
    fc, hbs, hut = _fc_ghz(carrier_hz), model.bs_height_m, model.ut_height_m
    dbp = breakpoint_distance_m(hbs, hut, carrier_hz)
    pl1 = 32.4 + 21.0 * np.log10(d3) + 20.0 * math.log10(fc)
    pl2 = 32.4 + 40.0 * np.log10(d3) + 20.0 * math.log10(fc) - 9.5 * math.log10(dbp * dbp + (hbs - hut) ** 2)
    los = np.where(d2 <= dbp, pl1, pl2)
    if model.condition == "los":
        return los
    nlos = 35.3 * np.log10(d3) + 22.4 + 21.3 * math.log10(fc) - 0.3 * (hut - 1.5)
    return np.maximum(los, nlos)


def _uma_db(model: UmaPathLoss, d3: np.ndarray, d2: np.ndarray, carrier_hz: float) -> np.ndarray:
    # TR 38.901 Table 7.4.1-1, UMa (h_E = 1 m: the LOS case of note 1 for h_UT <= 13 m)
    fc, hbs, hut = _fc_ghz(carrier_hz), model.bs_height_m, model.ut_height_m
    dbp = breakpoint_distance_m(hbs, hut, carrier_hz)
    pl1 = 28.0 + 22.0 * np.log10(d3) + 20.0 * math.log10(fc)
    pl2 = 28.0 + 40.0 * np.log10(d3) + 20.0 * math.log10(fc) - 9.0 * math.log10(dbp * dbp + (hbs - hut) ** 2)
    los = np.where(d2 <= dbp, pl1, pl2)
    if model.condition == "los":
        return los
    nlos = 13.54 + 39.08 * np.log10(d3) + 20.0 * math.log10(fc) - 0.6 * (hut - 1.5)
    return np.maximum(los, nlos)


# ------------------------------------------------------------------------------------ WINNER+ B1
def _winner_b1_db(model: WinnerB1PathLoss, d3: np.ndarray, d2: np.ndarray, carrier_hz: float) -> np.ndarray:
    # WINNER+ D5.3 Table 4-1, B1 (urban micro-cell), fc in GHz
    fc, hbs, hms = _fc_ghz(carrier_hz), model.bs_height_m, model.ms_height_m
    if model.condition == "los":
        dbp = breakpoint_distance_m(hbs, hms, carrier_hz)
        near = 22.7 * np.log10(d3) + 27.0 + 20.0 * math.log10(fc)
        far = (40.0 * np.log10(d3) + 7.56 - 17.3 * math.log10(hbs - 1.0) - 17.3 * math.log10(hms - 1.0)
               + 2.7 * math.log10(fc))
        return np.where(d2 <= dbp, near, far)
    # NLOS, hexagonal cell layout: (44.9 - 6.55 log10 hBS) log10 d + 5.83 log10 hBS + A + B log10 fc,
    # (A, B) = (16.33, 26.16) below 1.5 GHz, (14.78, 34.97) for 1.5-2 GHz, (18.38, 23.0) for 2-6 GHz
    a, b = (16.33, 26.16) if fc < 1.5 else (14.78, 34.97) if fc < 2.0 else (18.38, 23.0)
    return (44.9 - 6.55 * math.log10(hbs)) * np.log10(d3) + 5.83 * math.log10(hbs) + a + b * math.log10(fc)


# ---------------------------------------------------------------------------------------- dispatch
def path_loss_db(model: Any, distance_m: ArrayLike, carrier_hz: float, *,
                 distance_2d_m: ArrayLike | None = None) -> np.ndarray:
    """Median path loss [dB] at 3D ``distance_m`` [m] and carrier ``carrier_hz`` [Hz].

    ``model`` is one of the scenario's path-loss configs (``scenario.PathLoss``):

    * ``free-space``: Friis, 20 log10(4 pi d f / c) (ITU-R P.525).
    * ``log-distance``: PL(d0) + 10 n log10(d / d0), with PL(d0) the free-space loss at d0 unless
      ``reference_loss_db`` is given (Rappaport, Wireless Communications, 2nd ed., eq. 4.68).
    * ``3gpp-highway-los``: 32.4 + 20 log10 d + 20 log10 fc (TR 37.885 Table 6.2.1-1).
    * ``3gpp-urban-los``: 38.77 + 16.7 log10 d + 18.2 log10 fc (TR 37.885 Table 6.2.1-1).
    * ``3gpp-urban-nlos``: 36.85 + 30 log10 d + 18.9 log10 fc (TR 37.885 Table 6.2.1-1).
    * ``3gpp-nlosv``: the highway or urban LOS loss + the mean blockage loss `nlosv_blockage_mean_db`.
    * ``38901-umi``: LOS PL1 = 32.4 + 21 log10 d3D + 20 log10 fc for d2D <= d'BP, else PL2 = 32.4 +
      40 log10 d3D + 20 log10 fc - 9.5 log10(d'BP^2 + (hBS - hUT)^2); NLOS max(LOS, 35.3 log10 d3D + 22.4
      + 21.3 log10 fc - 0.3 (hUT - 1.5)) (TR 38.901 Table 7.4.1-1).
    * ``38901-uma``: LOS PL1 = 28 + 22 log10 d3D + 20 log10 fc, PL2 = 28 + 40 log10 d3D + 20 log10 fc -
      9 log10(d'BP^2 + (hBS - hUT)^2); NLOS max(LOS, 13.54 + 39.08 log10 d3D + 20 log10 fc - 0.6 (hUT - 1.5))
      (TR 38.901 Table 7.4.1-1).
    * ``winner-b1``: LOS 22.7 log10 d + 27 + 20 log10 fc up to d'BP, then 40 log10 d + 7.56 - 17.3 log10 h'BS
      - 17.3 log10 h'MS + 2.7 log10 fc; NLOS (hexagonal layout) (44.9 - 6.55 log10 hBS) log10 d + 5.83 log10
      hBS + 18.38 + 23 log10 fc at 2-6 GHz (WINNER+ D5.3 Table 4-1).

    d'BP = `breakpoint_distance_m`. Distances below 1 m are clamped to 1 m.
    """
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), MIN_DISTANCE_M)
    fc = _fc_ghz(carrier_hz)
    if isinstance(model, FreeSpacePathLoss):
        return free_space_path_loss_db(d, carrier_hz)
    if isinstance(model, LogDistancePathLoss):
        d0 = model.reference_distance_m
        ref = (model.reference_loss_db if model.reference_loss_db is not None
               else 20.0 * float(np.log10(4.0 * math.pi * max(d0, MIN_DISTANCE_M) * float(carrier_hz)
                                          / SPEED_OF_LIGHT_MPS)))
        return ref + 10.0 * model.exponent * np.log10(d / d0)
    if isinstance(model, HighwayLosPathLoss):
        return _highway_los_db(d, fc)
    if isinstance(model, UrbanLosPathLoss):
        return _urban_los_db(d, fc)
    if isinstance(model, UrbanNlosPathLoss):
        return _urban_nlos_db(d, fc)
    if isinstance(model, NlosvPathLoss):
        return _nlosv_los_db(model, d, fc) + nlosv_blockage_mean_db(model, d)
    if isinstance(model, UmiPathLoss):
        return _umi_db(model, d, _d2d(model, d, distance_2d_m), carrier_hz)
    if isinstance(model, UmaPathLoss):
        return _uma_db(model, d, _d2d(model, d, distance_2d_m), carrier_hz)
    if isinstance(model, WinnerB1PathLoss):
        return _winner_b1_db(model, d, _d2d(model, d, distance_2d_m), carrier_hz)
    raise TypeError(f"unknown path-loss model {type(model).__name__}")


def nlosv_los_loss_db(model: NlosvPathLoss, distance_m: ArrayLike, carrier_hz: float) -> np.ndarray:
    """[dB] the LOS part of an NLOSv loss (the loss without any blockage)."""
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), MIN_DISTANCE_M)
    return _nlosv_los_db(model, d, _fc_ghz(carrier_hz))
