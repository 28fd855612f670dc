"""Fast paths give the numbers of the general ones: the disc index of `Radio.attach`, and link keys, uniforms
and shadowing of a few links on Python numbers (vfedsim/network's hot paths)."""
from __future__ import annotations

import numpy as np
import pytest

import vfedsim.world.linkstate as linkstate
from vfedsim.scenario import parse_scenario
from vfedsim.world.channel import Shadowing
from vfedsim.world.radio import _MIN_DWELL_S, Radio, _exit_time_s


@pytest.mark.parametrize("profile", ["log-distance", "urban-grid", "3gpp-highway"])
def test_attach_with_the_disc_index_equals_comparing_every_rsu(profile):
    rng = np.random.default_rng(1)
    channel = parse_scenario({"world": {"channel": {"profile": profile}}}).world.channel
    rsu = rng.uniform(0, 5000, (40, 2))
    radio = Radio(profile=channel, rsu_xy=rsu, rsu_height_m=5.0, seed=0)
    radius = radio.coverage_radius_m
    angle = rng.uniform(0, 2 * np.pi, 3000)
    on_edge = rsu[rng.integers(0, 40, 3000)] + radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    pos = np.concatenate([rng.uniform(-500, 5500, (6000, 2)), on_edge, rsu])
    vel = rng.normal(0.0, 10.0, pos.shape)
    vel[::5] = 0.0
    q = pos[:, None, :] - rsu[None]
    d2, cover = radio._covering(q)
    cover &= _exit_time_s(q, vel.reshape(-1, 1, 2), radius) > _MIN_DWELL_S
    brute = radio._nearest(d2, cover)
    assert (brute >= 0).any() and (brute < 0).any()
    np.testing.assert_array_equal(radio.attach(pos, vel), brute)
    one = [int(radio.attach(pos[i:i + 1], vel[i:i + 1])[0]) for i in range(0, pos.shape[0], 9)]
    np.testing.assert_array_equal(one, brute[::9])


@pytest.mark.parametrize("k", [1, 3, 8, 9, 40])
def test_link_keys_and_uniforms_of_few_links_equal_the_vectorised_ones(k, monkeypatch):
    rng = np.random.default_rng(k)
    v, r, s, d = (rng.integers(0, 10**6, k), rng.integers(0, 4000, k), rng.integers(0, 10**7, k),
                  rng.integers(0, 50, k))
    small = linkstate.link_uniform(3, "los", v, r, s, d), linkstate.link_normal(3, "fading", v, r, s, d)
    monkeypatch.setattr(linkstate, "_SMALL", -1)
    vectorised = linkstate.link_uniform(3, "los", v, r, s, d), linkstate.link_normal(3, "fading", v, r, s, d)
    for a, b in zip(small, vectorised):
        np.testing.assert_array_equal(a, b)


def test_shadowing_of_few_links_equals_the_vectorised_one():
    shadowing = Shadowing(seed=3, std_db=4.0, decorrelation_m=10.0)
    rng = np.random.default_rng(0)
    v, r, t = rng.integers(0, 1000, 40), rng.integers(0, 50, 40), rng.uniform(-5.0, 3000.0, 40)
    together = shadowing.value_db(v, r, t)  # 40 links: the vectorised path
    alone = np.concatenate([shadowing.value_db(v[i:i + 3], r[i:i + 3], t[i:i + 3]) for i in range(0, 40, 3)])
    np.testing.assert_array_equal(alone[:40], together)
