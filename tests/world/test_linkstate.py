"""LOS probabilities against TR 37.885 / TR 38.901, empirical LOS fractions, small-scale fading statistics
(mean power 1, the right variance) and the counter-based per-link draws (pure, uniform, independent)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vfedsim.scenario import NakagamiFading, NoFading, RayleighFading, RicianFading
from vfedsim.world.linkstate import (
    fading_gain, gamma_unit_mean, link_normal, link_uniform, los_probability, los_state, time_slot,
)

N = 200_000


# ------------------------------------------------------------------------------------ LOS probability
def test_tr37885_highway_los_probability():
    d = np.array([0.0, 10.0, 100.0, 300.0, 475.0, 476.0, 600.0, 1015.0, 2000.0])
    near = np.minimum(1.0, 2.1013e-6 * d**2 - 0.002 * d + 1.0193)
    far = np.maximum(0.0, 0.54 - 0.001 * (d - 475.0))
    np.testing.assert_allclose(los_probability("3gpp-highway", d), np.where(d <= 475, near, far))
    # hand-evaluated: 100 m -> 2.1013e-2 - 0.2 + 1.0193 = 0.840313; 600 m -> 0.54 - 0.125 = 0.415
    assert los_probability("3gpp-highway", 100.0) == pytest.approx(0.840313)
    assert los_probability("3gpp-highway", 600.0) == pytest.approx(0.415)
    assert los_probability("3gpp-highway", 5.0) == 1.0 and los_probability("3gpp-highway", 1015.0) == 0.0


def test_tr37885_urban_los_probability():
    d = np.array([0.0, 4.0, 50.0, 200.0, 1000.0])
    np.testing.assert_allclose(los_probability("3gpp-urban", d), np.minimum(1.0, 1.05 * np.exp(-0.0114 * d)))
    assert los_probability("3gpp-urban", 100.0) == pytest.approx(1.05 * math.exp(-1.14))  # 0.335810
    assert los_probability("3gpp-urban", 100.0) == pytest.approx(0.335810, abs=1e-6)


def test_tr38901_umi_uma_los_probability():
    for d in (5.0, 18.0, 19.0, 50.0, 200.0, 1000.0):
        umi = 1.0 if d <= 18 else 18 / d + math.exp(-d / 36) * (1 - 18 / d)
        uma = 1.0 if d <= 18 else 18 / d + math.exp(-d / 63) * (1 - 18 / d)
        assert los_probability("38901-umi", d) == pytest.approx(umi)
        assert los_probability("38901-uma", d) == pytest.approx(uma)  # h_UT = 1.5 m: C'(h_UT) = 0
    # hand-evaluated: UMi at 100 m: 0.18 + exp(-2.7778) * 0.82 = 0.230985
    assert los_probability("38901-umi", 100.0) == pytest.approx(0.230985, abs=1e-6)
    # UMa with a high UT: (1 + C' 5/4 (d/100)^3 exp(-d/150)), C' = ((h - 13)/10)^1.5
    d, h = 120.0, 20.0
    base = 18 / d + math.exp(-d / 63) * (1 - 18 / d)
    c = ((h - 13) / 10) ** 1.5
    assert los_probability("38901-uma", d, ut_height_m=h) == pytest.approx(
        base * (1 + c * 1.25 * (d / 100) ** 3 * math.exp(-d / 150)))
    np.testing.assert_array_equal(los_probability("none", [1.0, 1e4]), [1.0, 1.0])
    with pytest.raises(ValueError, match="allowed"):
        los_probability("rural", 1.0)


@pytest.mark.parametrize("model", ["3gpp-highway", "3gpp-urban", "38901-umi", "38901-uma"])
@pytest.mark.parametrize("d", [30.0, 120.0, 400.0])
def test_empirical_los_fraction_matches_the_formula(model, d):
    links = 40_000
    v = np.arange(links)
    state = los_state(model, seed=5, vehicle=v, rsu=v % 7, time_s=12.3, distance_2d_m=np.full(links, d),
                      period_s=1.0)
    p = float(los_probability(model, d))
    assert state.mean() == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / links) + 1e-9)


def test_los_state_is_pure_and_redrawn_per_slot():
    v, r = np.arange(5000), np.zeros(5000, dtype=int)
    d = np.full(5000, 150.0)
    a = los_state("3gpp-urban", seed=1, vehicle=v, rsu=r, time_s=3.2, distance_2d_m=d, period_s=2.0)
    same_slot = los_state("3gpp-urban", seed=1, vehicle=v, rsu=r, time_s=3.9, distance_2d_m=d, period_s=2.0)
    np.testing.assert_array_equal(a, same_slot)
    # element by element, in reverse, gives the same answer
    one = [bool(los_state("3gpp-urban", seed=1, vehicle=int(i), rsu=0, time_s=3.2, distance_2d_m=150.0,
                          period_s=2.0)) for i in reversed(range(50))]
    np.testing.assert_array_equal(a[:50], one[::-1])
    nxt = los_state("3gpp-urban", seed=1, vehicle=v, rsu=r, time_s=4.0, distance_2d_m=d, period_s=2.0)
    p = float(los_probability("3gpp-urban", 150.0))
    # independent slots: P(change) = 2 p (1 - p)
    assert (a != nxt).mean() == pytest.approx(2 * p * (1 - p), abs=0.03)
    other_seed = los_state("3gpp-urban", seed=2, vehicle=v, rsu=r, time_s=3.2, distance_2d_m=d, period_s=2.0)
    assert (a != other_seed).any()


# ------------------------------------------------------------------------------ counter-based draws
def test_link_uniform_is_uniform_and_independent():
    v = np.arange(N)
    u = link_uniform(0, "test", v, 3, 7)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert u.mean() == pytest.approx(0.5, abs=0.005) and u.var() == pytest.approx(1 / 12, abs=0.002)
    hist = np.histogram(u, bins=20, range=(0, 1))[0]
    assert np.all(np.abs(hist / N - 0.05) < 0.003)
    # neighbours in every key are uncorrelated
    for w in (link_uniform(0, "test", v + 1, 3, 7), link_uniform(0, "test", v, 4, 7),
              link_uniform(0, "test", v, 3, 8), link_uniform(0, "test", v, 3, 7, draw=1),
              link_uniform(1, "test", v, 3, 7), link_uniform(0, "other", v, 3, 7)):
        assert abs(np.corrcoef(u, w)[0, 1]) < 0.01
    z = link_normal(0, "test", v, 3, 7)
    assert z.mean() == pytest.approx(0.0, abs=0.01) and z.std() == pytest.approx(1.0, abs=0.01)
    assert np.mean(np.abs(z) < 1.0) == pytest.approx(0.6827, abs=0.005)


def test_time_slot():
    np.testing.assert_array_equal(time_slot([0.0, 0.49, 0.5, 1.2, -1.0], 0.5), [0, 0, 1, 2, 0])


# ----------------------------------------------------------------------------------------- fading
def _gains(model, distance=50.0, t=3.0):
    v = np.arange(N)
    return fading_gain(model, seed=9, vehicle=v, rsu=v % 5, time_s=t, distance_m=distance, period_s=0.5)


@pytest.mark.parametrize("model, variance", [
    (RayleighFading(), 1.0),
    (RicianFading(k_db=0.0), (1 + 2 * 1.0) / (1 + 1.0) ** 2),
    (RicianFading(k_db=6.0), (1 + 2 * 10**0.6) / (1 + 10**0.6) ** 2),
    (RicianFading(k_db=-10.0), (1 + 2 * 0.1) / 1.1**2),
    (NakagamiFading(m=0.5), 2.0),
    (NakagamiFading(m=0.75), 1 / 0.75),
    (NakagamiFading(m=1.0), 1.0),
    (NakagamiFading(m=1.5), 1 / 1.5),
    (NakagamiFading(m=4.0), 0.25),
])
def test_fading_mean_power_one_and_variance(model, variance):
    g = _gains(model)
    assert np.all(g >= 0.0) and np.all(np.isfinite(g))
    se = math.sqrt(variance / N)
    assert g.mean() == pytest.approx(1.0, abs=5 * se)
    assert g.var() == pytest.approx(variance, rel=0.05)


def test_rayleigh_is_exponential():
    g = _gains(RayleighFading())
    assert np.mean(g > 1.0) == pytest.approx(math.exp(-1.0), abs=0.005)
    assert np.mean(g < 0.1) == pytest.approx(1 - math.exp(-0.1), abs=0.003)


def test_nakagami_near_and_far():
    model = NakagamiFading(m=1.5, m_far=0.75, far_distance_m=80.0)
    near, far = _gains(model, distance=79.9), _gains(model, distance=80.0)
    assert near.var() == pytest.approx(1 / 1.5, rel=0.05) and far.var() == pytest.approx(1 / 0.75, rel=0.05)
    np.testing.assert_array_equal(near, _gains(NakagamiFading(m=1.5), distance=79.9))


def test_gamma_sampler_vectorised_shapes():
    shape = np.array([0.6, 1.0, 2.5, 7.0] * 50_000)
    g = gamma_unit_mean(shape, 3, "g", np.arange(shape.size), 0, 0)
    for a in (0.6, 1.0, 2.5, 7.0):
        x = g[shape == a]
        assert x.mean() == pytest.approx(1.0, abs=0.02) and x.var() == pytest.approx(1 / a, rel=0.06)


def test_fading_constant_within_a_slot_and_pure():
    a, b, c = _gains(RayleighFading(), t=3.0), _gains(RayleighFading(), t=3.49), _gains(RayleighFading(), t=3.5)
    np.testing.assert_array_equal(a, b)
    assert abs(np.corrcoef(a, c)[0, 1]) < 0.01  # the next slot is a fresh draw
    np.testing.assert_array_equal(_gains(NoFading()), 1.0)
