"""Channel math against its formulas: TR 37.885 path loss, Friis, log-distance, noise, Shannon, coverage,
Gudmundson shadowing (determinism, marginal std, autocorrelation) and the IEEE 802.11p MCS mapping."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vfedsim.scenario import ChannelProfile, FreeSpacePathLoss, HighwayLosPathLoss, LogDistancePathLoss
from vfedsim.world.channel import (
    MCS_TABLES, Shadowing, coverage_radius_m, free_space_path_loss_db, link_budget, mcs_index, mcs_rate_bps,
    median_snr_db, noise_power_dbm, packet_error_rate, path_loss_db, rate_from_snr_bps, shannon_rate_bps,
    usable_snr_db,
)

C = 299_792_458.0


@pytest.mark.parametrize("fc", [2.0e9, 5.9e9, 28e9])
@pytest.mark.parametrize("d", [1.0, 10.0, 123.4, 2000.0])
def test_highway_los_matches_tr37885(d, fc):
    expected = 32.4 + 20 * math.log10(d) + 20 * math.log10(fc / 1e9)
    assert path_loss_db(HighwayLosPathLoss(), d, fc) == pytest.approx(expected, abs=1e-9)


def test_tr37885_known_value():
    # 100 m at 5.9 GHz: 32.4 + 40 + 15.417 = 87.817 dB
    assert float(path_loss_db(HighwayLosPathLoss(), 100.0, 5.9e9)) == pytest.approx(87.8178, abs=1e-3)


def test_free_space_is_friis():
    d = np.array([1.0, 50.0, 1000.0])
    fc = 5.9e9
    expected = 20 * np.log10(4 * np.pi * d * fc / C)
    np.testing.assert_allclose(path_loss_db(FreeSpacePathLoss(), d, fc), expected, atol=1e-9)
    # a classic number: 1 km at 2.4 GHz ~ 100.05 dB
    assert float(free_space_path_loss_db(1000.0, 2.4e9)) == pytest.approx(100.05, abs=0.01)


def test_log_distance_reference_and_exponent():
    fc = 5.9e9
    model = LogDistancePathLoss(exponent=3.0, reference_distance_m=1.0)
    fspl1 = 20 * math.log10(4 * math.pi * fc / C)
    assert float(path_loss_db(model, 1.0, fc)) == pytest.approx(fspl1)
    assert float(path_loss_db(model, 100.0, fc)) == pytest.approx(fspl1 + 60.0)
    given = LogDistancePathLoss(exponent=2.5, reference_distance_m=10.0, reference_loss_db=70.0)
    assert float(path_loss_db(given, 10.0, fc)) == pytest.approx(70.0)
    assert float(path_loss_db(given, 1000.0, fc)) == pytest.approx(70.0 + 50.0)


def test_distance_clamped_below_one_metre():
    for model in (FreeSpacePathLoss(), HighwayLosPathLoss(), LogDistancePathLoss()):
        pl = path_loss_db(model, [0.0, 0.5, 1.0], 5.9e9)
        assert np.all(np.isfinite(pl)) and pl[0] == pl[1] == pl[2]


def test_noise_power():
    assert float(noise_power_dbm(10e6, 9.0)) == pytest.approx(-95.0, abs=0.1)
    assert float(noise_power_dbm(1.0, 0.0)) == pytest.approx(-174.0)


def test_shannon_rate():
    # SNR 0 dB -> log2(2) = 1 bit/s/Hz
    assert float(shannon_rate_bps(10e6, 0.0, 1.0, 10.0)) == pytest.approx(10e6)
    assert float(shannon_rate_bps(10e6, 10 * math.log10(15), 0.6, 10.0)) == pytest.approx(0.6 * 4 * 10e6)
    # capped spectral efficiency
    assert float(shannon_rate_bps(1e6, 60.0, 0.6, 6.0)) == pytest.approx(6e6)


def test_median_snr_link_budget():
    p = ChannelProfile(path_loss=HighwayLosPathLoss(), carrier_hz=5.9e9, bandwidth_hz=10e6, vehicle_tx_power_dbm=23,
                       rsu_tx_power_dbm=30, antenna_gain_dbi=3, noise_figure_db=9, downlink_bandwidth_hz=20e6)
    pl = 32.4 + 20 * math.log10(200) + 20 * math.log10(5.9)
    up = 23 + 6 - pl - (-174 + 70 + 9)
    down = 30 + 6 - pl - (-174 + 10 * math.log10(20e6) + 9)
    assert float(median_snr_db(p, 200.0, uplink=True)) == pytest.approx(up)
    assert float(median_snr_db(p, 200.0, uplink=False)) == pytest.approx(down)


@pytest.mark.parametrize("model", [HighwayLosPathLoss(), LogDistancePathLoss(), FreeSpacePathLoss()])
@pytest.mark.parametrize("height", [0.0, 5.0, 25.0])
def test_coverage_radius_inverts_the_snr(model, height):
    p = ChannelProfile(path_loss=model, min_snr_db=10.0, rsu_tx_power_dbm=20.0)  # downlink is the weaker side
    r = coverage_radius_m(p, height_m=height)
    d3 = math.hypot(r, height)
    weaker = min(float(median_snr_db(p, d3, uplink=True)), float(median_snr_db(p, d3, uplink=False)))
    assert weaker == pytest.approx(10.0, abs=1e-8)
    assert float(median_snr_db(p, d3, uplink=False)) == pytest.approx(10.0, abs=1e-8)


def test_coverage_radius_zero_when_never_covered():
    p = ChannelProfile(min_snr_db=200.0)
    assert coverage_radius_m(p, height_m=5.0) == 0.0


def test_link_budget_keys_and_outage():
    p = ChannelProfile(min_snr_db=0.0)
    lb = link_budget(p, [10.0, 100.0, 1e5])
    assert set(lb) == {"distance_m", "path_loss_db", "snr_db", "rate_bps"}
    assert lb["rate_bps"][0] > lb["rate_bps"][1] > 0 and lb["rate_bps"][2] == 0.0


# ---------------------------------------------------------------------------------------------- shadowing
def test_shadowing_is_pure_regardless_of_query_order_and_batching():
    rng = np.random.default_rng(1)
    v = rng.integers(0, 5, 300)
    r = rng.integers(0, 3, 300)
    d = rng.uniform(0, 3000, 300)
    a = Shadowing(seed=7, std_db=4.0, decorrelation_m=25.0).value_db(v, r, d)
    s = Shadowing(seed=7, std_db=4.0, decorrelation_m=25.0)
    b = np.array([s.value_db(v[i], r[i], d[i]) for i in reversed(range(300))])[::-1]
    np.testing.assert_array_equal(a, b)
    s._clear()
    np.testing.assert_array_equal(a[::3], s.value_db(v[::3], r[::3], d[::3]))
    other = Shadowing(seed=8, std_db=4.0, decorrelation_m=25.0).value_db(v, r, d)
    assert not np.allclose(a, other)


def test_shadowing_zero_std_is_zero():
    s = Shadowing(seed=0, std_db=0.0, decorrelation_m=25.0)
    np.testing.assert_array_equal(s.value_db([0, 1], [0, 0], [10.0, 20.0]), 0.0)


def test_shadowing_is_continuous_in_distance():
    s = Shadowing(seed=3, std_db=3.0, decorrelation_m=25.0)
    d = np.linspace(0, 600, 24001)  # across several blocks (250 m each)
    x = s.value_db(np.zeros_like(d, dtype=int), np.zeros_like(d, dtype=int), d)
    assert np.max(np.abs(np.diff(x))) < 0.5


def test_shadowing_marginal_std_and_gudmundson_autocorrelation():
    sigma, dc = 4.0, 25.0
    s = Shadowing(seed=11, std_db=sigma, decorrelation_m=dc)
    links = 4000
    v = np.arange(links)
    r = np.zeros(links, dtype=int)
    rng = np.random.default_rng(0)
    d0 = rng.uniform(0, 1000, links)  # includes off-grid points and block boundaries
    x0 = s.value_db(v, r, d0)
    x1 = s.value_db(v, r, d0 + dc)
    x_far = s.value_db(v, r, d0 + 10 * dc)
    assert np.std(x0) == pytest.approx(sigma, rel=0.05)
    assert abs(np.mean(x0)) < 0.2
    corr = np.corrcoef(x0, x1)[0, 1]
    assert corr == pytest.approx(math.exp(-1.0), abs=0.05)
    assert abs(np.corrcoef(x0, x_far)[0, 1]) < 0.06


# ------------------------------------------------------------------------------------ MCS rate mapping
def test_ieee80211p_table_from_the_standards_sensitivities():
    t = MCS_TABLES["ieee80211p"]
    sensitivity_dbm = [-85, -84, -82, -80, -77, -73, -69, -68]  # IEEE 802.11-2020 Table 17-18, 10 MHz
    noise_dbm = -174 + 10 * math.log10(10e6) + 10  # the standard's assumed noise figure: 10 dB
    np.testing.assert_allclose(t.min_snr_db, np.array(sensitivity_dbm) - noise_dbm)
    assert t.rates_bps == (3e6, 4.5e6, 6e6, 9e6, 12e6, 18e6, 24e6, 27e6)


def test_mcs_index_and_per_curve():
    t = MCS_TABLES["ieee80211p"]
    np.testing.assert_array_equal(mcs_index(t, [5.0, 9.0, 9.5, 13.9, 14.0, 25.9, 26.0, 40.0]),
                                  [-1, 0, 0, 2, 3, 6, 7, 7])
    # PER is 10 % at each MCS's minimum SNR and 1/2 at min - ln 9 / slope
    m = np.arange(8)
    np.testing.assert_allclose(packet_error_rate(t, m, t.min_snr_db), 0.1)
    np.testing.assert_allclose(packet_error_rate(t, m, np.array(t.min_snr_db) - math.log(9) / 1.5), 0.5)
    s = 12.0 + 1.0  # MCS 2 (6 Mbit/s), 1 dB above its minimum: 1 / (1 + 9 e^1.5)
    assert float(packet_error_rate(t, 2, s)) == pytest.approx(1 / (1 + 9 * math.exp(1.5)))
    assert float(packet_error_rate(t, -1, 50.0)) == 1.0


def test_mcs_goodput_values_and_bandwidth_scaling():
    t = MCS_TABLES["ieee80211p"]
    per = 1 / (1 + 9 * math.exp(1.5))
    assert float(mcs_rate_bps(t, 10e6, 13.0)) == pytest.approx(6e6 * (1 - per))
    assert float(mcs_rate_bps(t, 20e6, 13.0)) == pytest.approx(12e6 * (1 - per))  # rate x B / 10 MHz
    assert float(mcs_rate_bps(t, 10e6, 9.0)) == pytest.approx(3e6 * 0.9)
    assert float(mcs_rate_bps(t, 10e6, 60.0)) == pytest.approx(27e6, rel=1e-12)
    assert float(mcs_rate_bps(t, 10e6, 8.99)) == 0.0
    p = ChannelProfile(rate_mapping="mcs", min_snr_db=0.0)
    assert usable_snr_db(p) == 9.0 and usable_snr_db(ChannelProfile(min_snr_db=3.0)) == 3.0
    np.testing.assert_allclose(rate_from_snr_bps(p, 10e6, [13.0, 60.0]), [6e6 * (1 - per), 27e6])
    shannon = ChannelProfile()
    assert float(rate_from_snr_bps(shannon, 10e6, 10.0)) == float(shannon_rate_bps(10e6, 10.0, 0.6, 6.0))
    lb = link_budget(p.model_copy(update={"min_snr_db": 9.0}), [10.0, 100.0, 1000.0])
    np.testing.assert_allclose(lb["rate_bps"], mcs_rate_bps(t, 10e6, lb["snr_db"]))
