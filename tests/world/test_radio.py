"""RSU placement, association, rates and exact coverage timing against hand computations."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vfedsim.scenario import ChannelProfile, HighwayLosPathLoss, HighwayRoad, RSUConfig
from vfedsim.world.channel import coverage_radius_m, median_snr_db, shannon_rate_bps
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
