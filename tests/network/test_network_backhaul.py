"""Backhaul capacity and latency, pinned to hand-computed times (model: docs/network.md)."""
from __future__ import annotations

import math

import pytest
from networld import MB, at, rate_at, run, world

import vfedsim.network as network_package
from vfedsim.network import interface
from vfedsim.network.fluid import FluidNetwork

STILL = [(100.0, 0.0, 0.0, 0.0, math.inf), (-100.0, 0.0, 0.0, 0.0, math.inf)]


def test_the_package_exports_the_interface_and_the_fluid_network():
    assert network_package.FluidNetwork is FluidNetwork
    for name in ("Network", "TransferResult", "FAIL_CAUSES", "DIRECTIONS", "IdealNetwork", "OnEvent"):
        assert getattr(network_package, name) is getattr(interface, name)
    assert set(network_package.__all__) == {"Network", "TransferResult", "FAIL_CAUSES", "DIRECTIONS",
                                            "IdealNetwork", "OnEvent", "FluidNetwork"}


def test_capacity_caps_a_lone_transfer():
    env, net, radio, mob = world(STILL[:1], backhaul_capacity_bps=1.0)  # probe the radio rate first
    R = rate_at(radio, mob, 0, 0.0)
    env, net, radio, mob = world(STILL[:1], backhaul_capacity_bps=R / 4)
    (res,) = run(env, net.transfer(0, MB, "up"))
    assert res.ok and res.end_s == pytest.approx(8 * MB / (R / 4), rel=1e-12)


def test_capacity_is_shared_equally_per_rsu_and_direction():
    env, net, radio, mob = world(STILL)
    R = rate_at(radio, mob, 0, 0.0)
    C = R / 2
    env, net, radio, mob = world(STILL, backhaul_capacity_bps=C)
    a, b, d = run(env, net.transfer(0, MB, "up"), net.transfer(1, MB, "up"), net.transfer(1, MB, "down"))
    # two uploads: min(R, C) / 2 each; the download has the other direction's backhaul to itself
    assert a.end_s == pytest.approx(16 * MB / C, rel=1e-12) and b.end_s == pytest.approx(16 * MB / C, rel=1e-12)
    R_down = rate_at(radio, mob, 1, 0.0, uplink=False)
    assert d.end_s == pytest.approx(8 * MB / min(R_down, C), rel=1e-12)


def test_capacity_above_the_radio_rate_changes_nothing():
    env, net, radio, mob = world(STILL)
    R = rate_at(radio, mob, 0, 0.0)
    env, net, *_ = world(STILL, backhaul_capacity_bps=10 * R)
    a, b = run(env, net.transfer(0, MB, "up"), net.transfer(1, MB, "up"))
    assert a.end_s == pytest.approx(16 * MB / R, rel=1e-12)


def test_latency_is_added_once_per_transfer():
    env, net, radio, mob = world(STILL, backhaul_latency_s=0.25)
    R = rate_at(radio, mob, 0, 0.0)
    S = 20 * MB
    assert 8 * S / R > 1.0
    a = net.transfer(0, S, "up")
    later = at(env, 1.0, lambda: net.transfer(1, S, "up"))
    env.run()
    # A alone from 0.25 s until B joins at 1.25 s, then both at R / 2
    left = S - R * 1.0 / 8
    assert a.value.end_s == pytest.approx(1.25 + 16 * left / R, rel=1e-12)
    b = later["value"]
    assert b.end_s == pytest.approx(1.25 + 16 * left / R + 8 * (S - left) / R, rel=1e-12)
    assert b.start_s == 1.0 and b.ok


def test_a_transfer_can_fail_during_its_latency():
    env, net, *_ = world([(0.0, 0.0, 20.0, 0.0, 0.5)], backhaul_latency_s=1.0)
    (res,) = run(env, net.transfer(0, MB, "down"))
    assert res.cause == "trip_ended" and res.end_s == pytest.approx(0.5) and res.bytes_done == 0.0


def test_latency_and_handover_interruption_overlap():
    # at 25 m/s from x = 0 through overlapping discs (RSUs at 0 and 1.5 R): the flow starts at t0 = R / 50 s
    # with a latency of 0.6 R / 25 s, so a coverage-exit handover at t_h = R / 25 s (interruption 0.5 s)
    # falls inside it; it stays paused until the later end, t0 + latency, and carries nothing before
    R = world(STILL)[2].coverage_radius_m
    t0, latency, t_h = 0.5 * R / 25.0, 0.6 * R / 25.0, R / 25.0
    assert t0 + latency > t_h + 0.5

    def once(cancel_at):
        env, net, radio, mob = world([(0.0, 0.0, 25.0, 0.0, math.inf)], rsu_xs=(0.0, 1.5 * R),
                                     backhaul_latency_s=latency, handover_interruption_s=0.5)
        ev = at(env, t0, lambda: net.transfer(0, 10**13, "up"))
        env.run(until=cancel_at)
        net.cancel(0, "deadline")
        return ev["event"].value

    res = once(t0 + latency - 1e-6)
    assert res.handovers == 1 and res.rsu == 1 and res.bytes_done == 0.0
    res = once(t0 + latency + 0.5)
    assert res.handovers == 1 and res.bytes_done > 0.0
