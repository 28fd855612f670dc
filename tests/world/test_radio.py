"""RSU placement, association, rates and exact coverage timing against hand computations; LOS states,
NLOSv blockage, fading and MCS rates in the instantaneous SNR and rate; co-channel interference (SINR) and the
packet error rate."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vfedsim.scenario import (
    ChannelProfile, HighwayLosPathLoss, HighwayRoad, NlosvPathLoss, NoFading, RayleighFading, RSUConfig,
    UrbanLosPathLoss, UrbanNlosPathLoss,
)
from vfedsim.world.channel import (
    MCS_TABLES, coverage_radius_m, mcs_index, mcs_phy_rate_bps, mcs_rate_bps, median_snr_db, noise_power_dbm,
    packet_error_rate, path_loss_db, shannon_rate_bps,
)
from vfedsim.world.linkstate import fading_gain, los_probability, los_state
from vfedsim.world.radio import Radio, rsu_positions

PROFILE = ChannelProfile(path_loss=HighwayLosPathLoss(), min_snr_db=25.0, shadowing_std_db=0.0)


def radio(xs=(0.0, 1000.0), y=0.0, height=5.0, profile=PROFILE):
    xy = np.array([[x, y] for x in xs])
    return Radio(profile=profile, rsu_xy=xy, rsu_height_m=height, seed=0)


def test_rsu_positions():
    road = HighwayRoad(length_m=1200.0, lanes_per_direction=2, lane_width_m=4.0)
    xy = rsu_positions(road, RSUConfig(spacing_m=400.0, first_at_m=200.0, side_offset_m=10.0))
    np.testing.assert_allclose(xy, [[200, 18], [600, 18], [1000, 18]])
    xy = rsu_positions(road, RSUConfig(spacing_m=400.0, first_at_m=400.0))
    np.testing.assert_allclose(xy[:, 0], [400, 800, 1200])  # the road end is included
    assert rsu_positions(road, RSUConfig(first_at_m=1300.0)).shape == (0, 2)
    one_way = HighwayRoad(length_m=1000.0, directions=1)
    assert rsu_positions(one_way, RSUConfig(side_offset_m=7.0))[0, 1] == 7.0


def test_coverage_radius_from_profile():
    r = radio()
    assert r.n_rsus == 2
    assert r.coverage_radius_m == pytest.approx(coverage_radius_m(PROFILE, height_m=5.0))
    assert 100 < r.coverage_radius_m < 1000


def test_serving_nearest_and_sticky():
    r = radio(xs=(0.0, 300.0))
    R = r.coverage_radius_m
    assert R > 300  # the discs overlap
    pos = np.array([[100.0, 0.0], [200.0, 0.0], [R + 301.0, 0.0], [-R + 1.0, 0.0]])
    np.testing.assert_array_equal(r.serving(pos), [0, 1, -1, 0])
    # keep the current RSU while it covers; switch when it does not
    np.testing.assert_array_equal(r.serving(pos, current=[1, 0, 0, 1]), [1, 0, -1, 0])
    np.testing.assert_array_equal(r.serving(pos, current=[-1, -1, -1, -1]), [0, 1, -1, 0])


def test_time_to_exit_exact():
    r = radio(xs=(0.0, 5000.0))
    R = r.coverage_radius_m
    pos = np.array([[-100.0, 12.0], [50.0, -8.0], [0.0, 0.0], [R + 5.0, 0.0], [10.0, 0.0]])
    vel = np.array([[30.0, 0.0], [-25.0, 0.0], [0.0, 0.0], [10.0, 0.0], [3.0, 4.0]])
    t = r.time_to_exit_s(pos, vel, np.array([0, 0, 0, 0, 0]))
    assert t[0] == pytest.approx((math.sqrt(R**2 - 12.0**2) + 100.0) / 30.0, rel=1e-12)
    assert t[1] == pytest.approx((math.sqrt(R**2 - 8.0**2) + 50.0) / 25.0, rel=1e-12)
    assert t[2] == math.inf  # stationary inside
    assert t[3] == 0.0  # outside
    # diagonal: |(10 + 3t, 4t)| = R  ->  25 t^2 + 60 t + 100 - R^2 = 0
    assert t[4] == pytest.approx((-60 + math.sqrt(3600 - 100 * (100 - R**2))) / 50, rel=1e-12)
    assert r.time_to_exit_s(pos[:1], vel[:1], np.array([-1]))[0] == 0.0


def test_time_to_coverage():
    r = radio(xs=(0.0, 3000.0))
    R = r.coverage_radius_m
    pos = np.array([[R + 100.0, 5.0], [100.0, 0.0], [R + 100.0, 0.0], [R + 100.0, 0.0]])
    vel = np.array([[-20.0, 0.0], [10.0, 0.0], [20.0, 0.0], [0.0, 0.0]])
    t = r.time_to_coverage_s(pos, vel)
    assert t[0] == pytest.approx((R + 100.0 - math.sqrt(R**2 - 25.0)) / 20.0, rel=1e-12)
    assert t[1] == 0.0
    assert t[2] == pytest.approx((3000.0 - R - (R + 100.0)) / 20.0, rel=1e-12)  # drives into RSU 1's disc
    assert t[3] == math.inf
    # after waiting exactly that long the vehicle is served (edge tolerance)
    later = pos[0] + vel[0] * t[0]
    assert r.serving(later[None, :])[0] == 0


def test_handover_target_ignores_current_and_leaving():
    r = radio(xs=(0.0, 400.0, 800.0))
    R = r.coverage_radius_m
    x = math.sqrt(R**2)  # on RSU 0's edge, driving +x: RSU 1 takes over
    np.testing.assert_array_equal(r.handover_target([[x, 0.0]], [[20.0, 0.0]], [0]), [1])
    # on RSU 2's far edge driving away: nobody
    np.testing.assert_array_equal(r.handover_target([[800 + R, 0.0]], [[20.0, 0.0]], [2]), [-1])


def test_rate_matches_shannon_and_outage():
    r = radio(xs=(0.0,), height=0.0)
    p = PROFILE
    d = np.array([10.0, 200.0, 10 * r.coverage_radius_m])
    pos = np.stack([d, np.zeros(3)], axis=-1)
    rate = r.rate_bps(np.arange(3), pos, np.zeros(3, dtype=int), np.zeros(3), uplink=True)
    snr = median_snr_db(p, d, uplink=True)
    expected = shannon_rate_bps(p.bandwidth_hz, snr, p.efficiency, p.max_spectral_efficiency)
    np.testing.assert_allclose(rate[:2], expected[:2])
    assert rate[2] == 0.0  # below min_snr_db
    assert r.rate_bps([0], [[10.0, 0.0]], [-1], [0.0], uplink=True)[0] == 0.0
    # a wider override bandwidth: more Hz, more noise
    wide = r.rate_bps([0], [[200.0, 0.0]], [0], [0.0], uplink=True, bandwidth_hz=20e6)[0]
    snr20 = float(median_snr_db(p, 200.0, uplink=True, bandwidth_hz=20e6))
    assert wide == pytest.approx(float(shannon_rate_bps(20e6, snr20, p.efficiency, p.max_spectral_efficiency)))


def test_shadowing_enters_the_snr():
    shadowed = ChannelProfile(path_loss=HighwayLosPathLoss(), min_snr_db=0.0, shadowing_std_db=6.0)
    r = radio(xs=(0.0,), profile=shadowed)
    flat = radio(xs=(0.0,), profile=shadowed.model_copy(update={"shadowing_std_db": 0.0}))
    args = ([3], [[100.0, 0.0]], [0], [40.0])
    diff = flat.snr_db(*args, uplink=True)[0] - r.snr_db(*args, uplink=True)[0]
    assert diff == pytest.approx(r.shadowing.value_db([3], [0], [40.0])[0])
    assert diff != 0.0


def test_no_rsus_and_no_vehicles():
    r = radio(xs=())
    assert r.n_rsus == 0
    np.testing.assert_array_equal(r.serving([[0.0, 0.0]], current=[-1]), [-1])
    assert r.time_to_coverage_s([[0.0, 0.0]], [[10.0, 0.0]])[0] == math.inf
    assert radio().serving(np.zeros((0, 2))).shape == (0,)


# ------------------------------------------------------------------------- LOS state, NLOSv, fading, MCS
def _state_radio(**update):
    prof = ChannelProfile(path_loss=UrbanLosPathLoss(), nlos_path_loss=UrbanNlosPathLoss(), los_model="3gpp-urban",
                          shadowing_std_db=3.0, nlos_shadowing_std_db=4.0, min_snr_db=-50.0,
                          los_update_period_s=1.0).model_copy(update=update)
    return Radio(profile=prof, rsu_xy=np.array([[0.0, 0.0]]), rsu_height_m=0.0, seed=4)


def test_default_profiles_do_not_vary_in_time():
    assert not radio().time_varying
    assert _state_radio().time_varying
    with pytest.raises(ValueError, match="time_s"):
        _state_radio().snr_db([0], [[50.0, 0.0]], [0], [0.0], uplink=True)


def test_los_state_picks_path_loss_and_shadowing_of_its_state():
    r = _state_radio()
    p = r.profile
    n = 4000
    v = np.arange(n)
    d = 120.0
    pos = np.stack([np.full(n, d), np.zeros(n)], axis=-1)
    travelled = np.full(n, 33.0)
    snr = r.snr_db(v, pos, np.zeros(n, dtype=int), travelled, uplink=True, time_s=7.4)
    los = los_state("3gpp-urban", seed=4, vehicle=v, rsu=0, time_s=7.4, distance_2d_m=d, period_s=1.0)
    base = 23 + 6 - float(noise_power_dbm(10e6, 9.0))
    expected = np.where(los, base - float(path_loss_db(UrbanLosPathLoss(), d, p.carrier_hz))
                        - r.shadowing.value_db(v, 0, travelled),
                        base - float(path_loss_db(UrbanNlosPathLoss(), d, p.carrier_hz))
                        - r.nlos_shadowing.value_db(v, 0, travelled))
    np.testing.assert_allclose(snr, expected)
    assert los.mean() == pytest.approx(float(los_probability("3gpp-urban", d)), abs=0.03)
    # the two states' shadowing processes are independent, with their own standard deviations
    a, b = r.shadowing.value_db(v, 0, travelled), r.nlos_shadowing.value_db(v, 0, travelled)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05
    assert a.std() == pytest.approx(3.0, rel=0.06) and b.std() == pytest.approx(4.0, rel=0.06)
    # the same time slot gives the same SNR (a stationary vehicle); batching and order do not matter
    again = np.array([r.snr_db([i], pos[:1], [0], [33.0], uplink=True, time_s=7.9)[0] for i in v[:20][::-1]])
    np.testing.assert_allclose(again[::-1], snr[:20])


def test_nlosv_adds_a_floored_random_blockage():
    nlosv = NlosvPathLoss(blockage_mean_db=5.0, blockage_std_db=4.0)
    r = _state_radio(los_model="3gpp-highway", path_loss=HighwayLosPathLoss(), nlos_path_loss=nlosv,
                     shadowing_std_db=0.0, nlos_shadowing_std_db=0.0)
    n = 20000
    v = np.arange(n)
    pos = np.tile([[300.0, 0.0]], (n, 1))
    snr = r.snr_db(v, pos, np.zeros(n, dtype=int), np.zeros(n), uplink=True, time_s=1.0)
    los_snr = float(r.snr_db([0], [[300.0, 0.0]], [0], [0.0], uplink=True, time_s=1.0)[0])
    loss = los_snr - snr  # the extra loss of blocked links
    blocked = loss > 1e-9
    p_los = float(los_probability("3gpp-highway", 300.0))
    assert np.mean(loss < 1e-9) == pytest.approx(p_los + (1 - p_los) * 0.5 * math.erfc(5 / 4 / math.sqrt(2)),
                                                 abs=0.02)
    assert np.mean(loss[blocked]) > 5.0  # a floored normal, mean 5 dB, has a larger conditional mean
    assert np.all(loss >= -1e-9)


def test_fading_enters_the_snr_and_mcs_the_rate():
    prof = ChannelProfile(path_loss=HighwayLosPathLoss(), shadowing_std_db=0.0, fading=RayleighFading(),
                          rate_mapping="mcs", min_snr_db=0.0, fading_period_s=0.5)
    r = Radio(profile=prof, rsu_xy=np.array([[0.0, 0.0]]), rsu_height_m=0.0, seed=2)
    flat = radio(xs=(0.0,), height=0.0, profile=prof.model_copy(update={"fading": NoFading()}))
    n = 50000
    v = np.arange(n)
    pos = np.tile([[400.0, 0.0]], (n, 1))
    args = (v, pos, np.zeros(n, dtype=int), np.zeros(n))
    g = fading_gain(RayleighFading(), seed=2, vehicle=v, rsu=0, time_s=3.2, distance_m=400.0, period_s=0.5)
    snr = r.snr_db(*args, uplink=True, time_s=3.2)
    np.testing.assert_allclose(snr, flat.snr_db(*args, uplink=True) + 10 * np.log10(g))
    rate = r.rate_bps(*args, uplink=True, time_s=3.2)
    np.testing.assert_allclose(rate, np.where(snr >= 9.0, mcs_rate_bps(MCS_TABLES["ieee80211p"], 10e6, snr), 0.0))
    assert 0 < np.mean(rate == 0.0) < 1  # deep fades are outages


def test_rsrp_has_no_fading_and_the_rsu_power():
    prof = PROFILE.model_copy(update={"rsu_tx_power_dbm": 30.0, "fading": RayleighFading()})
    r = radio(xs=(0.0, 500.0), profile=prof)
    rx = r.rsrp_dbm([1, 1], [[100.0, 0.0], [100.0, 0.0]], [0, 1], [0.0, 0.0], time_s=0.0)
    d = np.hypot([100.0, 400.0], 5.0)
    np.testing.assert_allclose(rx, 30 + 6 - path_loss_db(HighwayLosPathLoss(), d, 5.9e9))
    assert r.rsrp_dbm([1], [[0.0, 0.0]], [-1], [0.0], time_s=0.0)[0] == -np.inf


def test_one_link_exit_time_equals_the_vectorised_one():
    r = radio(xs=(0.0, 900.0))
    rng = np.random.default_rng(3)
    pos = rng.uniform(-700, 700, (400, 2))
    vel = rng.uniform(-40, 40, (400, 2))
    vel[::7] = 0.0
    rsu = rng.integers(-1, 2, 400)
    batch = r.time_to_exit_s(pos, vel, rsu)
    one = np.array([r.time_to_exit_s(pos[i:i + 1], vel[i:i + 1], rsu[i:i + 1])[0] for i in range(400)])
    np.testing.assert_array_equal(batch, one)
    assert (batch > 0).any() and (batch == 0).any() and np.isinf(batch).any()


def test_one_position_serving_equals_the_batched_one():
    r = Radio(profile=ChannelProfile(), rsu_xy=[[0.0, 10.0], [500.0, 10.0], [1000.0, 10.0]], rsu_height_m=5.0,
              seed=0)
    rng = np.random.default_rng(0)
    pos = np.concatenate([rng.uniform(-600, 1600, (500, 2)), [[250.0, 10.0], [750.0, 10.0]]])
    batch = r.serving(pos)
    np.testing.assert_array_equal(batch, [r.serving(pos[i:i + 1])[0] for i in range(pos.shape[0])])
    assert (batch == -1).any() and batch[-2] == 0 and batch[-1] == 1  # ties go to the lower index


def test_attach_skips_a_disc_the_vehicle_is_leaving():
    r = radio(xs=(0.0, 500.0))
    R = r.coverage_radius_m
    edge = [[-R, 0.0]]  # RSU 0's far edge: no other disc
    assert r.serving(edge)[0] == 0
    np.testing.assert_array_equal(r.attach(edge, [[-25.0, 0.0]]), [-1])  # driving out
    np.testing.assert_array_equal(r.attach(edge, [[25.0, 0.0]]), [0])  # driving in
    np.testing.assert_array_equal(r.attach(edge, [[0.0, 0.0]]), [0])  # parked
    assert r.time_to_coverage_s(edge, [[-25.0, 0.0]])[0] == math.inf
    assert r.time_to_coverage_s(edge, [[25.0, 0.0]])[0] == 0.0
    many = np.array([[-R, 0.0], [-R, 0.0], [100.0, 0.0], [0.0, 0.0]])
    vel = np.array([[-25.0, 0.0], [25.0, 0.0], [25.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(r.attach(many, vel), [r.attach(many[i:i + 1], vel[i:i + 1])[0] for i in range(4)])


# ---------------------------------------------------------------------------------- co-channel interference
def _mw(dbm):
    return 10 ** (np.asarray(dbm, dtype=float) / 10)


def test_co_channel_interference_by_hand():
    # three RSUs 500 m apart, 5 m up; highway LOS loss, no shadowing; reuse 1, activity 0.5
    prof = PROFILE.model_copy(update={"interference": "co-channel", "activity_factor": 0.5, "min_snr_db": -20.0})
    r = radio(xs=(0.0, 500.0, 1000.0), profile=prof)
    clean = radio(xs=(0.0, 500.0, 1000.0), profile=PROFILE.model_copy(update={"min_snr_db": -20.0}))
    pl = lambda d: 32.4 + 20 * np.log10(d) + 20 * math.log10(5.9)  # noqa: E731  TR 37.885 highway LOS
    noise = -174 + 70 + 9  # [dBm] 10 MHz, NF 9 dB
    # downlink to a vehicle at x = 100 m served by RSU 0: interferers at 400 m and 900 m
    s = 29 - pl(math.hypot(100, 5))
    i_down = 0.5 * (_mw(29 - pl(math.hypot(400, 5))) + _mw(29 - pl(math.hypot(900, 5))))
    expected = s - 10 * math.log10(_mw(noise) + i_down)
    args = ([7], [[100.0, 0.0]], [0], [0.0])
    assert r.snr_db(*args, uplink=False)[0] == pytest.approx(expected, abs=1e-9)
    assert r.interference_mw([[100.0, 0.0]], [0], uplink=False)[0] == pytest.approx(i_down, rel=1e-12)
    # uplink at RSU 0: a vehicle at the foot of RSU 1 (500 m) and of RSU 2 (1000 m)
    i_up = 0.5 * (_mw(29 - pl(math.hypot(500, 5))) + _mw(29 - pl(math.hypot(1000, 5))))
    assert r.snr_db(*args, uplink=True)[0] == pytest.approx(s - 10 * math.log10(_mw(noise) + i_up), abs=1e-9)
    assert r.snr_db(*args, uplink=True)[0] < clean.snr_db(*args, uplink=True)[0]
    # the middle RSU hears both neighbours at 500 m
    i_mid = 0.5 * 2 * _mw(29 - pl(math.hypot(500, 5)))
    assert r.interference_mw([[600.0, 0.0]], [1], uplink=True)[0] == pytest.approx(i_mid, rel=1e-12)
    # rate and RSRP: rate from the SINR, RSRP and coverage untouched
    sinr = r.snr_db(*args, uplink=False)
    np.testing.assert_allclose(r.rate_bps(*args, uplink=False), shannon_rate_bps(10e6, sinr, 0.6, 6.0))
    np.testing.assert_array_equal(r.rsrp_dbm(*args), clean.rsrp_dbm(*args))
    assert r.coverage_radius_m == clean.coverage_radius_m


def test_interference_reuse_activity_and_vectorised():
    base = PROFILE.model_copy(update={"interference": "co-channel", "min_snr_db": -20.0})
    xs = (0.0, 500.0, 1000.0)
    reuse2 = radio(xs=xs, profile=base.model_copy(update={"frequency_reuse": 2}))
    np.testing.assert_array_equal(reuse2.channel, [0, 1, 0])
    # RSU 1 is alone on channel 1; RSU 0 hears only RSU 2
    assert reuse2.interference_mw([[500.0, 0.0]], [1], uplink=False)[0] == 0.0
    pl = 32.4 + 20 * math.log10(math.hypot(900, 5)) + 20 * math.log10(5.9)
    assert reuse2.interference_mw([[100.0, 0.0]], [0], uplink=False)[0] == pytest.approx(_mw(29 - pl))
    silent = radio(xs=xs, profile=base.model_copy(update={"activity_factor": 0.0}))
    clean = radio(xs=xs, profile=PROFILE.model_copy(update={"min_snr_db": -20.0}))
    n = 40
    rng = np.random.default_rng(3)
    pos = np.stack([rng.uniform(0, 1000, n), rng.uniform(-10, 10, n)], axis=-1)
    rsu = rng.integers(-1, 3, n)
    up = rng.random(n) < 0.5
    args = (np.arange(n), pos, rsu, np.zeros(n))
    np.testing.assert_allclose(silent.snr_db(*args, uplink=up), clean.snr_db(*args, uplink=up))
    full = radio(xs=xs, profile=base)
    batch = full.snr_db(*args, uplink=up)
    one = np.array([full.snr_db([i], pos[i], [rsu[i]], [0.0], uplink=bool(up[i]))[0] for i in range(n)])
    np.testing.assert_array_equal(batch, one)
    assert np.all(batch[rsu < 0] == -np.inf)
    assert np.all(full.interference_mw(pos, rsu, uplink=up)[rsu < 0] == 0.0)
    # a share of the bandwidth: the same I/N, so the same SINR relative to the SNR
    ok = rsu >= 0
    sub = (np.arange(n)[ok], pos[ok], rsu[ok], np.zeros(ok.sum()))
    np.testing.assert_allclose(full.snr_db(*sub, uplink=up[ok], bandwidth_hz=2.5e6)
                               - clean.snr_db(*sub, uplink=up[ok], bandwidth_hz=2.5e6),
                               batch[ok] - clean.snr_db(*sub, uplink=up[ok]))
    assert not radio(xs=(0.0,), profile=base).interference  # one RSU: nobody to interfere


# ------------------------------------------------------------------------------------ packet error rate
def test_packet_error_rate_and_phy_rate():
    prof = ChannelProfile(path_loss=HighwayLosPathLoss(), shadowing_std_db=0.0, rate_mapping="mcs",
                          mcs_table="nr-v2x", min_snr_db=-10.0)
    r = radio(xs=(0.0, 5000.0), profile=prof)
    t = MCS_TABLES["nr-v2x"]
    x = np.array([100.0, 2500.0, 3900.0, 40000.0, 10.0])
    pos = np.stack([x, np.zeros_like(x)], axis=-1)
    rsu = np.array([0, 0, 0, 0, -1])
    args = (np.arange(5), pos, rsu, np.zeros(5))
    snr = r.snr_db(*args, uplink=True)
    per = r.packet_error_rate(*args, uplink=True)
    phy = r.rate_bps(*args, uplink=True, goodput=False)
    m = mcs_index(t, snr)
    usable = snr >= t.min_snr_db[0]
    np.testing.assert_allclose(per, np.where(usable, packet_error_rate(t, m, snr), 1.0))
    np.testing.assert_allclose(phy, np.where(usable, mcs_phy_rate_bps(t, 10e6, snr), 0.0))
    np.testing.assert_allclose(r.rate_bps(*args, uplink=True), phy * (1 - per))
    rate2, per2 = r.rate_and_per(*args, uplink=True)
    np.testing.assert_array_equal(rate2, phy)
    np.testing.assert_array_equal(per2, per)
    assert per[-1] == 1.0 and phy[-1] == 0.0  # RSU id -1
    assert 0.0 < per[1] < 0.1 and per[0] < 1e-6  # at 2.5 km between two MCS thresholds; 100 m: top MCS, clean
    assert per[3] == 1.0 and phy[3] == 0.0  # 40 km: below MCS 0's minimum, outage
    shannon = radio(xs=(0.0, 5000.0), profile=PROFILE)
    np.testing.assert_array_equal(shannon.packet_error_rate(*args, uplink=True)[:1], 0.0)
    np.testing.assert_array_equal(shannon.rate_bps(*args, uplink=True, goodput=False),
                                  shannon.rate_bps(*args, uplink=True))
