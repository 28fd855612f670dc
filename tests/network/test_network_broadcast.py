"""Downlink broadcast: one transmission per RSU for the same download requested at the same instant."""
from __future__ import annotations

import math

import numpy as np
import pytest
from networld import MB, at, rate_at, run, world

TWO = [(100.0, 0.0, 0.0, 0.0, math.inf), (-320.0, 0.0, 0.0, 0.0, math.inf)]


def test_one_transmission_at_the_weakest_rate():
    env, net, radio, mob = world(TWO, downlink_mode="broadcast")
    r0, r1 = rate_at(radio, mob, 0, 0.0, uplink=False), rate_at(radio, mob, 1, 0.0, uplink=False)
    assert r1 < r0
    a, b = run(env, net.transfer(0, 10 * MB, "down"), net.transfer(1, 10 * MB, "down"))
    assert a.ok and b.ok
    assert a.end_s == b.end_s == pytest.approx(8 * 10 * MB / r1, rel=1e-12)


def test_unicast_shares_instead():
    env, net, radio, mob = world(TWO)
    r0 = rate_at(radio, mob, 0, 0.0, uplink=False)
    a, b = run(env, net.transfer(0, 10 * MB, "down"), net.transfer(1, 10 * MB, "down"))
    assert a.end_s == pytest.approx(16 * 10 * MB / r0, rel=1e-12)


def test_a_broadcast_takes_one_share_beside_unicast_flows():
    env, net, radio, mob = world(TWO + [(50.0, 3.0, 0.0, 0.0, math.inf)], downlink_mode="broadcast")
    r1, r2 = rate_at(radio, mob, 1, 0.0, uplink=False), rate_at(radio, mob, 2, 0.0, uplink=False)
    S, s = 10 * MB, MB
    a, b, u = run(env, net.transfer(0, S, "down"), net.transfer(1, S, "down"), net.transfer(2, s, "down"))
    t_u = 16 * s / r2  # the unicast flow (another size: not in the broadcast) has half the airtime
    assert u.end_s == pytest.approx(t_u, rel=1e-12) and t_u < 16 * S / r1
    assert a.end_s == b.end_s == pytest.approx(t_u + 8 * (S - r1 * t_u / 16) / r1, rel=1e-12)


def test_later_or_uplink_requests_do_not_join():
    env, net, radio, mob = world(TWO, downlink_mode="broadcast")
    r0 = rate_at(radio, mob, 0, 0.0, uplink=False)
    S = 10 * MB
    a = net.transfer(0, S, "down")
    late = at(env, 0.1, lambda: net.transfer(1, S, "down"))
    env.run()
    # A alone until 0.1 s, then two unicast-like transmissions sharing the airtime
    left = S - r0 * 0.1 / 8
    assert a.value.end_s == pytest.approx(0.1 + 16 * left / r0, rel=1e-12)
    assert late["value"].ok


def test_a_member_leaving_coverage_fails_alone_and_the_rest_speeds_up():
    env, net, radio, mob = world([(100.0, 0.0, 0.0, 0.0, math.inf), (300.0, 0.0, 25.0, 0.0, math.inf)],
                                 downlink_mode="broadcast")
    R = radio.coverage_radius_m
    t_exit = (R - 300.0) / 25.0
    ra = rate_at(radio, mob, 0, 0.0, uplink=False)
    S = 10**10
    a, b = run(env, net.transfer(0, S, "down"), net.transfer(1, S, "down"))
    assert b.cause == "left_coverage" and b.end_s == pytest.approx(t_exit, rel=1e-9)
    ticks = np.append(np.arange(0.0, t_exit, 0.5), t_exit)
    carried = sum(min(ra, rate_at(radio, mob, 1, t, uplink=False)) * (t2 - t) / 8
                  for t, t2 in zip(ticks[:-1], ticks[1:]))
    assert b.bytes_done == pytest.approx(carried, rel=1e-9)
    assert a.ok and a.end_s == pytest.approx(t_exit + 8 * (S - carried) / ra, rel=1e-9)


def test_broadcast_runs_are_deterministic():
    def once():
        env, net, radio, mob = world([(x, 0.0, v, 0.0, math.inf) for x, v in
                                      ((-300.0, 20.0), (-100.0, 0.0), (0.0, 30.0), (150.0, -10.0))],
                                     downlink_mode="broadcast", backhaul_latency_s=0.05)
        return run(env, *[net.transfer(v, 40 * MB, "down") for v in range(4)])

    first = once()
    assert first == once() and len({r.end_s for r in first if r.ok}) == 1
