"""Every path-loss model against its standard's formula, hand-evaluated at several distances and carriers:
TR 37.885 urban LOS / NLOS / NLOSv, TR 38.901 UMi and UMa (with breakpoints), WINNER+ B1."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vfedsim.scenario import (
    HighwayLosPathLoss, NlosvPathLoss, UmaPathLoss, UmiPathLoss, UrbanLosPathLoss, UrbanNlosPathLoss,
    WinnerB1PathLoss,
)
from vfedsim.world.pathloss import (
    breakpoint_distance_m, nlosv_blockage_db, nlosv_blockage_mean_db, path_loss_db,
)

C = 299_792_458.0
log = math.log10
DISTANCES = [1.0, 10.0, 57.3, 100.0, 475.0, 2000.0]
CARRIERS = [2.0e9, 3.5e9, 5.9e9]


# ------------------------------------------------------------------------------------------ TR 37.885
@pytest.mark.parametrize("fc", CARRIERS + [28e9])
@pytest.mark.parametrize("d", DISTANCES)
def test_tr37885_urban_los_and_nlos(d, fc):
    f = fc / 1e9
    assert float(path_loss_db(UrbanLosPathLoss(), d, fc)) == pytest.approx(38.77 + 16.7 * log(d) + 18.2 * log(f))
    assert float(path_loss_db(UrbanNlosPathLoss(), d, fc)) == pytest.approx(36.85 + 30 * log(d) + 18.9 * log(f))


def test_tr37885_urban_known_values():
    # hand-evaluated at 100 m, 5.9 GHz (log10 5.9 = 0.770852)
    assert float(path_loss_db(UrbanLosPathLoss(), 100.0, 5.9e9)) == pytest.approx(86.1995, abs=1e-4)
    assert float(path_loss_db(UrbanNlosPathLoss(), 100.0, 5.9e9)) == pytest.approx(111.4191, abs=1e-4)


@pytest.mark.parametrize("d", DISTANCES)
def test_nlosv_median_is_los_plus_mean_blockage(d):
    fc = 5.9e9
    mu = 5.0 + max(0.0, 15 * log(d) - 41)
    highway = NlosvPathLoss()
    assert float(nlosv_blockage_mean_db(highway, d)) == pytest.approx(mu)
    assert float(path_loss_db(highway, d, fc)) == pytest.approx(float(path_loss_db(HighwayLosPathLoss(), d, fc)) + mu)
    urban = NlosvPathLoss(los="urban", blockage_mean_db=9.0, blockage_std_db=4.5)
    expected = 38.77 + 16.7 * log(d) + 18.2 * log(5.9) + 9.0 + max(0.0, 15 * log(d) - 41)
    assert float(path_loss_db(urban, d, fc)) == pytest.approx(expected)


def test_nlosv_blockage_is_floored_normal():
    m = NlosvPathLoss(blockage_mean_db=5.0, blockage_std_db=4.0)
    z = np.array([-3.0, -1.0, 0.0, 1.5])
    np.testing.assert_allclose(nlosv_blockage_db(m, 100.0, z), [0.0, 1.0, 5.0, 11.0])
    # beyond 10^(41/15) m the mean grows by 15 dB per decade
    assert float(nlosv_blockage_mean_db(m, 1000.0)) == pytest.approx(5.0 + 45.0 - 41.0)


# ------------------------------------------------------------------------------------------ TR 38.901
def _umi(d2, fc, hbs=10.0, hut=1.5, nlos=False):
    f = fc / 1e9
    d3 = math.hypot(d2, hbs - hut)
    dbp = 4 * (hbs - 1) * (hut - 1) * fc / C
    pl1 = 32.4 + 21 * log(d3) + 20 * log(f)
    pl2 = 32.4 + 40 * log(d3) + 20 * log(f) - 9.5 * log(dbp**2 + (hbs - hut) ** 2)
    los = pl1 if d2 <= dbp else pl2
    return max(los, 35.3 * log(d3) + 22.4 + 21.3 * log(f) - 0.3 * (hut - 1.5)) if nlos else los


def _uma(d2, fc, hbs=25.0, hut=1.5, nlos=False):
    f = fc / 1e9
    d3 = math.hypot(d2, hbs - hut)
    dbp = 4 * (hbs - 1) * (hut - 1) * fc / C
    pl1 = 28.0 + 22 * log(d3) + 20 * log(f)
    pl2 = 28.0 + 40 * log(d3) + 20 * log(f) - 9 * log(dbp**2 + (hbs - hut) ** 2)
    los = pl1 if d2 <= dbp else pl2
    return max(los, 13.54 + 39.08 * log(d3) + 20 * log(f) - 0.6 * (hut - 1.5)) if nlos else los


@pytest.mark.parametrize("fc", CARRIERS + [28e9])
@pytest.mark.parametrize("d2", [10.0, 35.0, 150.0, 400.0, 1200.0, 4000.0])
def test_tr38901_umi_and_uma(d2, fc):
    for hut in (1.5, 2.0):
        for cond in ("los", "nlos"):
            umi = UmiPathLoss(condition=cond, ut_height_m=hut)
            d3 = math.hypot(d2, 10.0 - hut)
            got = float(path_loss_db(umi, d3, fc, distance_2d_m=d2))
            assert got == pytest.approx(_umi(d2, fc, hut=hut, nlos=cond == "nlos"), abs=1e-9)
            # the 2D distance is derived from the 3D one and the model's heights when not given
            assert float(path_loss_db(umi, d3, fc)) == pytest.approx(got, abs=1e-9)
            uma = UmaPathLoss(condition=cond, ut_height_m=hut)
            d3 = math.hypot(d2, 25.0 - hut)
            assert float(path_loss_db(uma, d3, fc, distance_2d_m=d2)) == pytest.approx(
                _uma(d2, fc, hut=hut, nlos=cond == "nlos"), abs=1e-9)


def test_tr38901_known_values_and_breakpoints():
    # hand-evaluated: UMi at 3.5 GHz, hBS 10 m, hUT 1.5 m: d'BP = 4 * 9 * 0.5 * 3.5e9 / c = 210.145 m
    assert breakpoint_distance_m(10.0, 1.5, 3.5e9) == pytest.approx(210.1454, abs=1e-4)
    assert breakpoint_distance_m(25.0, 1.5, 3.5e9) == pytest.approx(560.3877, abs=1e-4)
    umi = UmiPathLoss()
    assert float(path_loss_db(umi, math.hypot(100, 8.5), 3.5e9)) == pytest.approx(85.3142, abs=1e-4)  # PL1
    assert float(path_loss_db(umi, math.hypot(500, 8.5), 3.5e9)) == pytest.approx(107.1080, abs=1e-4)  # PL2
    assert float(path_loss_db(UmiPathLoss(condition="nlos"), math.hypot(500, 8.5), 3.5e9)) == pytest.approx(
        129.2645, abs=1e-4)
    uma_d3 = math.hypot(200, 23.5)
    assert float(path_loss_db(UmaPathLoss(), uma_d3, 3.5e9)) == pytest.approx(89.5695, abs=1e-4)
    assert float(path_loss_db(UmaPathLoss(condition="nlos"), uma_d3, 3.5e9)) == pytest.approx(114.4620, abs=1e-4)


@pytest.mark.parametrize("model", [UmiPathLoss(), UmaPathLoss(), WinnerB1PathLoss()])
def test_los_breakpoint_is_continuous_and_monotonic(model):
    fc = 3.5e9
    hut = getattr(model, "ut_height_m", None) or model.ms_height_m
    dbp = breakpoint_distance_m(model.bs_height_m, hut, fc)
    dh = model.bs_height_m - hut
    below = float(path_loss_db(model, math.hypot(dbp * (1 - 1e-9), dh), fc, distance_2d_m=dbp * (1 - 1e-9)))
    above = float(path_loss_db(model, math.hypot(dbp * (1 + 1e-9), dh), fc, distance_2d_m=dbp * (1 + 1e-9)))
    assert above == pytest.approx(below, abs=0.05)  # the standards' two segments meet (to rounding)
    d2 = np.linspace(10.0, 5000.0, 2000)
    assert np.all(np.diff(path_loss_db(model, np.hypot(d2, dh), fc, distance_2d_m=d2)) > 0)


# --------------------------------------------------------------------------------------- WINNER+ B1
@pytest.mark.parametrize("fc", [0.8e9, 1.8e9, 2.5e9, 5.9e9])
@pytest.mark.parametrize("d", [10.0, 50.0, 300.0, 1500.0])
def test_winner_b1(d, fc):
    f, hbs, hms = fc / 1e9, 10.0, 1.5
    dbp = 4 * (hbs - 1) * (hms - 1) * fc / C
    d2 = math.sqrt(d * d - (hbs - hms) ** 2) if d > hbs - hms else 0.0
    los = (22.7 * log(d) + 27.0 + 20 * log(f) if d2 <= dbp
           else 40 * log(d) + 7.56 - 17.3 * log(hbs - 1) - 17.3 * log(hms - 1) + 2.7 * log(f))
    assert float(path_loss_db(WinnerB1PathLoss(), d, fc)) == pytest.approx(los, abs=1e-9)
    a, b = (16.33, 26.16) if f < 1.5 else (14.78, 34.97) if f < 2.0 else (18.38, 23.0)
    nlos = (44.9 - 6.55 * log(hbs)) * log(d) + 5.83 * log(hbs) + a + b * log(f)
    assert float(path_loss_db(WinnerB1PathLoss(condition="nlos"), d, fc)) == pytest.approx(nlos, abs=1e-9)


def test_winner_b1_known_value():
    # hand-evaluated: 22.7 log10(sqrt(50^2 + 8.5^2)) + 27 + 20 log10(2.5) at 2.5 GHz
    assert float(path_loss_db(WinnerB1PathLoss(), math.hypot(50, 8.5), 2.5e9)) == pytest.approx(73.6659, abs=1e-4)


def test_vectorised_and_clamped():
    for model in (UrbanLosPathLoss(), UrbanNlosPathLoss(), NlosvPathLoss(), UmiPathLoss(), UmaPathLoss(),
                  WinnerB1PathLoss(condition="nlos")):
        pl = path_loss_db(model, [0.0, 0.5, 1.0, 10.0], 5.9e9)
        assert pl.shape == (4,) and np.all(np.isfinite(pl)) and pl[0] == pl[1] == pl[2] < pl[3]
