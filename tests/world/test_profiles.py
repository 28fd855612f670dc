"""The shipped channel profiles: they load, their link budgets match hand-evaluated numbers, and the fields
added for LOS state, fading, MCS and coverage default to the old behaviour."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vfedsim.errors import ScenarioError
from vfedsim.scenario import ChannelProfile, channel_profile_names, load_channel_profile, parse_scenario
from vfedsim.world.channel import coverage_radius_m, link_budget, noise_power_dbm
from vfedsim.world.radio import Radio

SHIPPED = ("3gpp-highway", "urban-grid", "umi-rsu", "log-distance", "free-space", "nr-v2x-highway", "ieee80211p")


def test_all_profiles_ship_and_validate():
    assert set(SHIPPED) <= set(channel_profile_names())
    for name in SHIPPED:
        p = load_channel_profile(name)
        assert p.profile == name and p.description
        lb = link_budget(p, [10.0, 100.0, 1000.0])
        assert np.all(np.diff(lb["snr_db"]) < 0)


def test_3gpp_highway_link_budget_by_hand():
    # 23 dBm + 2 x 3 dBi, noise -174 + 70 + 9 = -95 dBm: the LOS median SNR is 10 dB at PL = 114 dB, i.e.
    # 32.4 + 20 log10(d) + 20 log10(5.9) = 114  ->  d = 10^((114 - 32.4 - 15.4170) / 20) = 2037.7 m
    p = load_channel_profile("3gpp-highway")
    assert float(noise_power_dbm(p.bandwidth_hz, p.noise_figure_db)) == pytest.approx(-95.0, abs=0.01)
    d_edge = 10 ** ((114.0 - 32.4 - 20 * math.log10(5.9)) / 20)
    assert d_edge == pytest.approx(2037.7, abs=0.1)
    assert coverage_radius_m(p, height_m=5.0) == pytest.approx(math.sqrt(d_edge**2 - 25.0), rel=1e-9)
    lb = link_budget(p, [100.0, 1000.0])
    np.testing.assert_allclose(lb["snr_db"], 29 + 95 - (32.4 + 20 * np.log10([100.0, 1000.0]) + 20 * math.log10(5.9)),
                               atol=0.01)
    assert p.los_model == "3gpp-highway" and p.nlos_path_loss.model == "3gpp-nlosv"
    np.testing.assert_allclose(lb["los_probability"], [0.840313, 0.015], atol=1e-6)


def test_urban_and_umi_coverage_by_hand():
    urban = load_channel_profile("urban-grid")
    # NLOS median SNR 0 dB: 36.85 + 30 log10(d) + 18.9 log10(5.9) = 124 dB
    d = 10 ** ((124.0 - 36.85 - 18.9 * math.log10(5.9)) / 30)
    assert coverage_radius_m(urban, height_m=5.0) == pytest.approx(math.sqrt(d**2 - 25.0), rel=1e-6)
    umi = load_channel_profile("umi-rsu")
    # 20 MHz noise: -174 + 73.01 + 9; NLOS median 5 dB: 35.3 log10(d3) + 22.4 + 21.3 log10(5.9) = 23 + 6 - N - 5
    budget = 29 - (-174 + 10 * math.log10(20e6) + 9) - 5
    d3 = 10 ** ((budget - 22.4 - 21.3 * math.log10(5.9)) / 35.3)
    r = coverage_radius_m(umi, height_m=8.5)
    assert r == pytest.approx(math.sqrt(d3**2 - 8.5**2), rel=1e-6) and 100 < r < 200


def test_new_fields_default_to_the_old_behaviour():
    p = ChannelProfile()
    assert (p.los_model, p.nlos_path_loss, p.fading.model, p.rate_mapping, p.coverage_state) == (
        "none", None, "none", "shannon", "los")
    for name in ("log-distance", "free-space"):
        prof = load_channel_profile(name)
        assert not Radio(profile=prof, rsu_xy=[[0.0, 0.0]], rsu_height_m=5.0, seed=0).time_varying
    # the quickstart's profile keeps its numbers: median SNR 0 dB near 345 m with RSUs 5 m up
    assert coverage_radius_m(load_channel_profile("log-distance"), height_m=5.0) == pytest.approx(344.98, abs=0.01)
    net = parse_scenario({}).world.network
    assert (net.handover, net.handover_trigger, net.handover_interruption_s) == ("continue", "coverage-exit", 0.0)


@pytest.mark.parametrize("channel, message", [
    ({"los_model": "3gpp-urban"}, r"^world\.channel: los_model '3gpp-urban' needs nlos_path_loss"),
    ({"coverage_state": "nlos"}, r"^world\.channel: coverage_state 'nlos' needs nlos_path_loss"),
    ({"los_model": "rural"}, r"^world\.channel\.los_model: invalid value 'rural'; allowed: none, 3gpp-highway"),
    ({"fading": {"model": "weibull"}}, r"^world\.channel\.fading\.model: unknown 'weibull'; allowed: none, rayleigh"),
    ({"fading": {"model": "nakagami", "m": 0.2}}, r"^world\.channel\.fading\.m: input should be greater"),
    ({"rate_mapping": "lte"}, r"^world\.channel\.rate_mapping: invalid value 'lte'; allowed: shannon, mcs"),
    ({"path_loss": {"model": "38901-umi", "bs_height_m": 1.0}}, r"^world\.channel\.path_loss\.bs_height_m"),
    ({"mcs_table": "wimax"}, r"^world\.channel\.mcs_table: invalid value 'wimax'; allowed: ieee80211p, nr-v2x, "
                             r"lte-v2x"),
    ({"interference": "adjacent"}, r"^world\.channel\.interference: invalid value 'adjacent'; allowed: none, "
                                   r"co-channel"),
    ({"activity_factor": 1.5}, r"^world\.channel\.activity_factor: input should be less than or equal to 1"),
    ({"frequency_reuse": 0}, r"^world\.channel\.frequency_reuse: input should be greater than or equal to 1"),
    ({"mcs_overhead": 1.0}, r"^world\.channel\.mcs_overhead"),
])
def test_bad_channel_fields_fail_with_the_key_path(channel, message):
    with pytest.raises(ScenarioError, match=message):
        parse_scenario({"world": {"channel": channel}})


def test_bad_network_fields_fail_with_the_key_path():
    with pytest.raises(ScenarioError, match=r"^world\.network\.handover: invalid value 'keep'; allowed: continue, "
                                            r"restart, drop"):
        parse_scenario({"world": {"network": {"handover": "keep"}}})
    with pytest.raises(ScenarioError, match=r"^world\.network\.time_to_trigger_s"):
        parse_scenario({"world": {"network": {"time_to_trigger_s": -1}}})


def test_nr_v2x_highway_by_hand():
    # 20 MHz: noise -174 + 73.01 + 9 = -91.99 dBm; budget 23 + 6 + 91.99 = 120.99 dB. Coverage by the NLOSv
    # median at 0 dB: 32.4 + 20 log10 d + 20 log10 5.9 + 5 + (15 log10 d - 41) = 120.99 (d > 543 m)
    p = load_channel_profile("nr-v2x-highway")
    budget = 29 - float(noise_power_dbm(20e6, 9.0))
    assert budget == pytest.approx(120.99, abs=0.01)
    d = 10 ** ((budget - 32.4 - 20 * math.log10(5.9) - 5 + 41) / 35)
    assert coverage_radius_m(p, height_m=5.0) == pytest.approx(math.sqrt(d**2 - 25.0), rel=1e-9)
    assert 1300 < d < 1330
    assert (p.rate_mapping, p.mcs_table, p.coverage_state, p.interference) == ("mcs", "nr-v2x", "nlos", "none")
    # the peak PHY rate: 64QAM 948/1024 x 20 MHz x 51 x 12 x 30 kHz / 20 MHz x 14/15 x 0.86 (TS 38.306 §4.1.2)
    peak = 6 * 948 / 1024 * 51 * 12 * 30e3 * 14 / 15 * 0.86
    assert p.mcs_overhead == pytest.approx(1 - 51 * 12 * 30e3 / 20e6 * 14 / 15 * 0.86, abs=1e-4)
    from vfedsim.world.channel import rate_from_snr_bps
    assert float(rate_from_snr_bps(p, 20e6, 40.0, goodput=False)) == pytest.approx(peak, rel=1e-4)
    lb = link_budget(p, [100.0, 1000.0, 1500.0])
    np.testing.assert_array_equal(lb["covered"], [True, True, False])
    assert lb["rate_bps"][0] == pytest.approx(peak, rel=1e-4)


def test_interference_on_a_shipped_profile():
    # the urban grid with co-channel RSUs at two intersections 250 m apart: downlink SINR < SNR
    p = load_channel_profile("urban-grid", {"interference": "co-channel", "activity_factor": 1.0})
    r = Radio(profile=p, rsu_xy=[[0.0, 0.0], [250.0, 0.0]], rsu_height_m=5.0, seed=0)
    clean = Radio(profile=p.model_copy(update={"interference": "none"}), rsu_xy=[[0.0, 0.0], [250.0, 0.0]],
                  rsu_height_m=5.0, seed=0)
    args = ([0, 1], [[50.0, 0.0], [120.0, 0.0]], [0, 0], [0.0, 0.0])
    sinr = r.snr_db(*args, uplink=False, time_s=1.0)
    snr = clean.snr_db(*args, uplink=False, time_s=1.0)
    assert np.all(sinr < snr) and (snr - sinr)[1] > (snr - sinr)[0]  # nearer the interferer, more loss


def test_ieee80211p_by_hand():
    # the 3gpp-highway link budget (LOS median SNR = 76.2 - 20 log10 d), an MCS table shifted by the offsets
    # calibrated against ns-3, and the coverage edge at the 3 Mbit/s MCS's shifted minimum: 9 - 2 = 7 dB
    p = load_channel_profile("ieee80211p")
    d_edge = 10 ** ((23 + 6 + 95 - 7.0 - 32.4 - 20 * math.log10(5.9)) / 20)
    assert d_edge == pytest.approx(2878.4, abs=0.1)
    assert coverage_radius_m(p, height_m=5.0) == pytest.approx(math.sqrt(d_edge**2 - 25.0), rel=1e-9)
    # 100 m: SNR 36.2 dB, 27 Mbit/s x its efficiency 0.49; 1500 m: SNR 12.7 dB: 12 Mbit/s x 0.605 (x (1 - PER))
    lb = link_budget(p, [100.0, 1500.0])
    assert lb["rate_bps"][0] == pytest.approx(27e6 * 0.490, rel=1e-6)
    assert lb["rate_bps"][1] == pytest.approx(12e6 * 0.605, rel=0.01)
