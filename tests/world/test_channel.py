"""Channel math against its formulas: TR 37.885 path loss, Friis, log-distance, noise, Shannon, coverage,
Gudmundson shadowing (determinism, marginal std, autocorrelation), the IEEE 802.11p, NR (TS 38.214) and
LTE-V2X (TS 36.213) MCS mappings, and co-channel interference (SINR) terms."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vfedsim.scenario import (
    ChannelProfile, FreeSpacePathLoss, HighwayLosPathLoss, LogDistancePathLoss, UrbanLosPathLoss, UrbanNlosPathLoss,
)
from vfedsim.world.channel import (
    LTE_CQI_TABLE_QM_R1024, MCS_SNR_GAP_DB, MCS_TABLES, NR_MCS_TABLE1_QM_R1024, Shadowing, coverage_radius_m,
    dbm_to_mw, free_space_path_loss_db, gap_min_snr_db, link_budget, mcs_index, mcs_phy_rate_bps, mcs_rate_bps,
    mean_received_power_dbm, median_snr_db, noise_power_dbm, packet_error_rate, path_loss_db, per_from_snr,
    rate_from_snr_bps, rsu_channels, shannon_rate_bps, sinr_db, usable_snr_db,
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
    assert set(lb) == {"distance_m", "path_loss_db", "snr_db", "rate_bps", "covered"}
    assert lb["rate_bps"][0] > lb["rate_bps"][1] > 0 and lb["rate_bps"][2] == 0.0
    np.testing.assert_array_equal(lb["covered"], [True, True, False])


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


# ---------------------------------------------------------------------- golden path loss across carriers
@pytest.mark.parametrize("fc", [0.8e9, 2.0e9, 5.9e9, 28e9])
@pytest.mark.parametrize("d", [1.0, 35.0, 400.0, 5000.0])
def test_free_space_and_log_distance_across_carriers(d, fc):
    fspl = 20 * math.log10(4 * math.pi * d * fc / C)
    assert float(path_loss_db(FreeSpacePathLoss(), d, fc)) == pytest.approx(fspl, abs=1e-9)
    # log-distance with d0 = 1 m: FSPL(1 m) + 10 n log10(d)
    ref = 20 * math.log10(4 * math.pi * fc / C)
    assert float(path_loss_db(LogDistancePathLoss(exponent=3.7), d, fc)) == pytest.approx(ref + 37 * math.log10(d))


# ------------------------------------------------------------------------------- NR / LTE-V2X MCS tables
# TS 38.214 Table 5.1.3.1-1, column "Spectral efficiency", MCS 0-28 (as printed, 4 decimals)
TS38214_TABLE1_SE = [0.2344, 0.3066, 0.3770, 0.4902, 0.6016, 0.7402, 0.8770, 1.0273, 1.1758, 1.3262, 1.3281,
                     1.4766, 1.6953, 1.9141, 2.1602, 2.4063, 2.5703, 2.5664, 2.7305, 3.0293, 3.3223, 3.6094,
                     3.9023, 4.2129, 4.5234, 4.8164, 5.1152, 5.3320, 5.5547]
# TS 36.213 Table 7.2.3-1, column "efficiency", CQI 1-15
TS36213_CQI_SE = [0.1523, 0.2344, 0.3770, 0.6016, 0.8770, 1.1758, 1.4766, 1.9141, 2.4063, 2.7305, 3.3223, 3.9023,
                  4.5234, 5.1152, 5.5547]


def test_nr_table_efficiencies_are_ts38214():
    t = MCS_TABLES["nr-v2x"]
    np.testing.assert_allclose(t.efficiency_bps_per_hz(), TS38214_TABLE1_SE, atol=5e-5)
    assert [qm for qm, _ in NR_MCS_TABLE1_QM_R1024] == [2] * 10 + [4] * 7 + [6] * 12


def test_nr_peak_rate_is_ts38306_max_data_rate():
    # TS 38.306 §4.1.2: 1 layer, Q_m 6, R 948/1024, 52 PRB x 12 at 15 kHz (T_s = 1e-3 / 14 s), OH 0.14
    ts38306 = 6 * 948 / 1024 * 52 * 12 / (1e-3 / 14) * (1 - 0.14)
    assert ts38306 == pytest.approx(41.73e6, rel=1e-4)
    t = MCS_TABLES["nr-v2x"]
    assert t.rates_bps[28] == pytest.approx(ts38306, rel=1e-12)
    assert float(mcs_phy_rate_bps(t, 10e6, 40.0)) == pytest.approx(ts38306, rel=1e-12)
    assert float(mcs_phy_rate_bps(t, 20e6, 40.0)) == pytest.approx(2 * ts38306, rel=1e-12)  # x B / 10 MHz
    # another overhead: SE x B x (1 - o)
    assert float(mcs_phy_rate_bps(t, 20e6, 40.0, overhead=0.5)) == pytest.approx(6 * 948 / 1024 * 20e6 * 0.5)
    assert float(mcs_phy_rate_bps(t, 10e6, -20.0)) == 0.0


def test_lte_v2x_table_from_the_cqi_table():
    t = MCS_TABLES["lte-v2x"]
    np.testing.assert_allclose(t.efficiency_bps_per_hz(), TS36213_CQI_SE, atol=5e-5)
    # 50 PRB of 180 kHz in 10 MHz, cyclic prefix 14/15, 9 of 14 symbols carry PSSCH data
    assert t.rates_bps[-1] == pytest.approx(6 * 948 / 1024 * 10e6 * 0.9 * 14 / 15 * 9 / 14)
    assert len(LTE_CQI_TABLE_QM_R1024) == 15


@pytest.mark.parametrize("name", ["nr-v2x", "lte-v2x"])
def test_gap_thresholds_and_per_curves(name):
    t = MCS_TABLES[name]
    se = t.efficiency_bps_per_hz()
    np.testing.assert_allclose(t.min_snr_db, 10 * np.log10(2.0 ** se - 1) + 3.0)
    assert float(gap_min_snr_db(1.0)) == pytest.approx(3.0) and MCS_SNR_GAP_DB == 3.0  # 2^1 - 1 = 1: 0 dB + gap
    m = np.arange(len(t.min_snr_db))
    np.testing.assert_allclose(packet_error_rate(t, m, t.min_snr_db), 0.1)
    # slope 2 per dB: 1 dB above the minimum, PER = 1 / (1 + 9 e^2)
    np.testing.assert_allclose(packet_error_rate(t, m, np.array(t.min_snr_db) + 1), 1 / (1 + 9 * math.exp(2.0)))


def test_nr_link_adaptation_takes_the_best_rate_met():
    t = MCS_TABLES["nr-v2x"]
    s = np.array(t.min_snr_db)
    assert s[17] < s[16]  # 64QAM 438/1024 is below 16QAM 658/1024
    np.testing.assert_array_equal(mcs_index(t, s), np.arange(29))
    snr = np.linspace(-10, 30, 4001)
    m = mcs_index(t, snr)
    phy = mcs_phy_rate_bps(t, 10e6, snr)
    assert np.all(np.diff(phy) >= 0)  # more SNR never picks a slower MCS
    met = snr[:, None] >= s[None, :]
    best = np.where(met, np.asarray(t.rates_bps)[None, :], -1).max(axis=1)
    np.testing.assert_array_equal(np.where(m >= 0, np.asarray(t.rates_bps)[np.maximum(m, 0)], -1), best)
    np.testing.assert_array_equal(mcs_index(t, [s[16] - 1e-6, s[17] - 1e-6]), [17, 15])


def test_goodput_per_and_profile_mapping():
    nr = ChannelProfile(rate_mapping="mcs", mcs_table="nr-v2x", min_snr_db=-10.0)
    t = MCS_TABLES["nr-v2x"]
    snr = np.array([-6.0, 0.0, 7.3, 25.0])
    phy = rate_from_snr_bps(nr, 10e6, snr, goodput=False)
    per = per_from_snr(nr, snr)
    np.testing.assert_allclose(phy, mcs_phy_rate_bps(t, 10e6, snr))
    np.testing.assert_allclose(rate_from_snr_bps(nr, 10e6, snr), phy * (1 - per))
    assert per[0] == 1.0 and phy[0] == 0.0 and 0 < per[2] < 0.1
    assert usable_snr_db(nr) == pytest.approx(t.min_snr_db[0])
    custom = nr.model_copy(update={"mcs_overhead": 0.3})
    np.testing.assert_allclose(rate_from_snr_bps(custom, 10e6, 25.0, goodput=False), 5.5547 * 10e6 * 0.7, rtol=1e-4)
    shannon = ChannelProfile()
    np.testing.assert_array_equal(per_from_snr(shannon, snr), 0.0)
    np.testing.assert_array_equal(rate_from_snr_bps(shannon, 10e6, snr, goodput=False),
                                  rate_from_snr_bps(shannon, 10e6, snr))


# ------------------------------------------------------------------------------------------ interference
def test_mean_received_power_without_and_with_a_los_model():
    p = ChannelProfile(path_loss=HighwayLosPathLoss())
    d = np.array([50.0, 400.0])
    np.testing.assert_allclose(mean_received_power_dbm(p, 23.0, d), 29 - path_loss_db(HighwayLosPathLoss(), d, 5.9e9))
    urban = ChannelProfile(path_loss=UrbanLosPathLoss(), los_model="3gpp-urban", nlos_path_loss=UrbanNlosPathLoss())
    pl_los = 38.77 + 16.7 * np.log10(d) + 18.2 * math.log10(5.9)
    pl_nlos = 36.85 + 30 * np.log10(d) + 18.9 * math.log10(5.9)
    p_los = np.minimum(1, 1.05 * np.exp(-0.0114 * d))
    gain = p_los * 10 ** (-pl_los / 10) + (1 - p_los) * 10 ** (-pl_nlos / 10)
    np.testing.assert_allclose(mean_received_power_dbm(urban, 23.0, d), 29 + 10 * np.log10(gain))


def test_sinr_and_reuse_channels():
    # S = -70 dBm, N = -95 dBm, I = -80 dBm: SINR = -70 - 10 log10(10^-9.5 + 10^-8) [dBm]
    s, n, i = -70.0, -95.0, -80.0
    expected = s - 10 * math.log10(10 ** (n / 10) + 10 ** (i / 10))
    assert float(sinr_db(s - n, dbm_to_mw(i) / dbm_to_mw(n))) == pytest.approx(expected)
    assert float(sinr_db(12.0, 0.0)) == 12.0
    np.testing.assert_array_equal(rsu_channels(5, 2), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(rsu_channels(3, 1), [0, 0, 0])


def test_link_budget_coverage_uses_the_coverage_state():
    urban = ChannelProfile(path_loss=UrbanLosPathLoss(), los_model="3gpp-urban", nlos_path_loss=UrbanNlosPathLoss(),
                           coverage_state="nlos", min_snr_db=0.0)
    lb = link_budget(urban, [100.0, 300.0])
    assert np.all(lb["snr_db"] > 25)  # LOS: far above the edge at both
    np.testing.assert_array_equal(lb["covered"], lb["nlos_snr_db"] >= 0.0)
    np.testing.assert_array_equal(lb["covered"], [True, False])
    r = coverage_radius_m(urban, height_m=0.0)
    np.testing.assert_array_equal(link_budget(urban, [r * 0.999, r * 1.001])["covered"], [True, False])
