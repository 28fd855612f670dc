"""Fluid transfers pinned to hand-computed cases: constant rate, sharing, coverage exit, trip end, cancel,
handover (coverage exit and A3 with hysteresis and time-to-trigger; continue, restart, drop; interruption),
outage, idleness and determinism; and the ideal network."""
from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from vfedsim.scenario import (
    ChannelProfile, HighwayLosPathLoss, HighwayRoad, NakagamiFading, NetworkConfig, NlosvPathLoss, RicianFading,
    RSUConfig, TrafficConfig,
)
from vfedsim.network import FAIL_CAUSES, FluidNetwork, IdealNetwork, TransferResult
from vfedsim.world.channel import path_loss_db
from vfedsim.world.mobility import HighwayMobility, TripMobility
from vfedsim.world.radio import Radio, rsu_positions

from networld import MB, PROFILE, trips  # the shared small worlds (tests/strategies/networld.py)


def world(vehicles, rsu_xs=(0.0,), *, handover="continue", profile=PROFILE, period=0.5, on_event=None,
          radio_cls=Radio, **net):
    env = simpy.Environment()
    mob = TripMobility(trips(*vehicles))
    radio = radio_cls(profile=profile, rsu_xy=np.array([[x, 0.0] for x in rsu_xs]), rsu_height_m=5.0, seed=0)
    cfg = NetworkConfig(update_period_s=period, handover=handover)
    return env, FluidNetwork(env, mobility=mob, radio=radio, config=cfg, on_event=on_event, **net), radio, mob


def rate_at(radio, mob, v, t, uplink=True):
    pos, _ = mob.positions_of([v], t)
    rsu = radio.serving(pos)
    return float(radio.rate_bps([v], pos, rsu, mob.travelled_m([v], t), uplink=uplink)[0])


def run(env, *events):
    env.run()
    return [e.value for e in events]


# --------------------------------------------------------------------------------------- (a) constant
def test_constant_rate_takes_8S_over_R():
    env, net, radio, mob = world([(100.0, 0.0, 0.0, 0.0, math.inf)])
    R = rate_at(radio, mob, 0, 0.0)
    assert R > 0 and net.link_rate_bps(0, "up") == R
    (res,) = run(env, net.transfer(0, 3 * MB, "up"))
    assert isinstance(res, TransferResult)
    assert res.ok and res.cause is None and res.rsu == 0 and res.handovers == 0
    assert res.bytes_done == 3 * MB and res.start_s == 0.0
    assert res.end_s == pytest.approx(8 * 3 * MB / R, rel=1e-12)


def test_uplink_and_downlink_are_separate_resources():
    prof = PROFILE.model_copy(update={"rsu_tx_power_dbm": 30.0, "downlink_bandwidth_hz": 20e6})
    env, net, radio, mob = world([(150.0, 0.0, 0.0, 0.0, math.inf)], profile=prof)
    up, down = rate_at(radio, mob, 0, 0.0, True), rate_at(radio, mob, 0, 0.0, False)
    a, b = run(env, net.transfer(0, MB, "up"), net.transfer(0, MB, "down"))
    assert a.end_s == pytest.approx(8 * MB / up, rel=1e-12)
    assert b.end_s == pytest.approx(8 * MB / down, rel=1e-12)


def test_bandwidth_override():
    env, net, radio, mob = world([(100.0, 0.0, 0.0, 0.0, math.inf)], uplink_hz=5e6)
    pos, _ = mob.positions_of([0], 0.0)
    expected = radio.rate_bps([0], pos, [0], [0.0], uplink=True, bandwidth_hz=5e6)[0]
    assert net.link_rate_bps(0, "up") == expected
    (res,) = run(env, net.transfer(0, MB, "up"))
    assert res.end_s == pytest.approx(8 * MB / expected, rel=1e-12)


# ----------------------------------------------------------------------------------------- (b) sharing
def test_two_equal_transfers_share_one_rsu():
    env, net, radio, mob = world([(100.0, 0.0, 0.0, 0.0, math.inf), (-100.0, 0.0, 0.0, 0.0, math.inf)])
    R = rate_at(radio, mob, 0, 0.0)
    assert rate_at(radio, mob, 1, 0.0) == pytest.approx(R)
    a, b = run(env, net.transfer(0, MB, "up"), net.transfer(1, MB, "up"))
    assert a.end_s == pytest.approx(16 * MB / R, rel=1e-12) and b.end_s == pytest.approx(16 * MB / R, rel=1e-12)


def test_staggered_sharing_hand_computed():
    env, net, radio, mob = world([(100.0, 0.0, 0.0, 0.0, math.inf), (-100.0, 0.0, 0.0, 0.0, math.inf)])
    R = rate_at(radio, mob, 0, 0.0)
    S = 2 * MB
    t1 = 0.3 * 8 * S / R
    out = {}

    def later():
        yield env.timeout(t1)
        out["b"] = yield net.transfer(1, S, "up")

    a = net.transfer(0, S, "up")
    env.process(later())
    env.run()
    # A alone until t1, then both at R/2: A ends at 16S/R - t1, B at 16S/R
    assert a.value.end_s == pytest.approx(16 * S / R - t1, rel=1e-12)
    assert out["b"].end_s == pytest.approx(16 * S / R, rel=1e-12)
    assert out["b"].start_s == pytest.approx(t1)


def test_different_rsus_do_not_share():
    env, net, radio, mob = world([(100.0, 0.0, 0.0, 0.0, math.inf), (5100.0, 0.0, 0.0, 0.0, math.inf)],
                                 rsu_xs=(0.0, 5000.0))
    R = rate_at(radio, mob, 0, 0.0)
    a, b = run(env, net.transfer(0, MB, "up"), net.transfer(1, MB, "up"))
    assert (a.rsu, b.rsu) == (0, 1)
    assert a.end_s == pytest.approx(8 * MB / R, rel=1e-12) and b.end_s == pytest.approx(8 * MB / R, rel=1e-12)


# --------------------------------------------------------------------------------- (c) leaving coverage
def test_leaving_coverage_fails_at_the_exact_exit_time():
    env, net, radio, mob = world([(-100.0, 12.0, 30.0, 0.0, math.inf)])
    R = radio.coverage_radius_m
    t_exit = (math.sqrt(R**2 - 12.0**2) + 100.0) / 30.0
    assert net.dwell_time_s(0) == pytest.approx(t_exit, rel=1e-12)
    (res,) = run(env, net.transfer(0, 10**12, "up"))
    assert not res.ok and res.cause == "left_coverage" and res.rsu == 0
    assert res.end_s == pytest.approx(t_exit, rel=1e-9)
    # bytes: the rate is piecewise constant, re-evaluated every 0.5 s
    ticks = np.append(np.arange(0.0, t_exit, 0.5), t_exit)
    expected = sum(rate_at(radio, mob, 0, t) * (t2 - t) / 8 for t, t2 in zip(ticks[:-1], ticks[1:]))
    assert res.bytes_done == pytest.approx(expected, rel=1e-9)
    assert env.peek() == math.inf


# -------------------------------------------------------------------------------------- (d) trip ended
def test_trip_end_fails_the_transfer():
    env, net, radio, mob = world([(0.0, 0.0, 20.0, 0.0, 5.25)])
    (res,) = run(env, net.transfer(0, 10**12, "down"))
    assert not res.ok and res.cause == "trip_ended" and res.end_s == pytest.approx(5.25)
    assert 0 < res.bytes_done < 10**12


def test_requests_that_cannot_start():
    env, net, radio, mob = world([(0.0, 0.0, 20.0, 0.0, 5.0), (0.0, 0.0, 20.0, 50.0, 90.0),
                                  (10_000.0, 0.0, 0.0, 0.0, math.inf)])
    out = {}

    def proc():
        yield env.timeout(10.0)
        out["ended"] = yield net.transfer(0, MB, "up")
        out["not_yet"] = yield net.transfer(1, MB, "up")
        out["far"] = yield net.transfer(2, MB, "up")
        out["empty"] = yield net.transfer(1, 0, "up")

    env.process(proc())
    env.run()
    assert (out["ended"].cause, out["not_yet"].cause, out["far"].cause) == ("trip_ended", "no_coverage", "no_coverage")
    assert all(out[k].end_s == out[k].start_s == 10.0 and out[k].rsu == -1 for k in ("ended", "not_yet", "far"))
    assert out["empty"].cause == "no_coverage"  # not on the road yet, even for 0 bytes
    assert net.serving_rsu(2) == -1 and net.dwell_time_s(2) == 0.0 and net.link_rate_bps(2, "up") == 0.0


def test_time_to_coverage():
    env, net, radio, mob = world([(-5000.0, 0.0, 25.0, 0.0, math.inf), (-5000.0, 0.0, 25.0, 0.0, 10.0),
                                  (-5000.0, 0.0, 25.0, 40.0, math.inf)])
    R = radio.coverage_radius_m
    assert net.time_to_coverage_s(0) == pytest.approx((5000.0 - R) / 25.0)
    assert net.time_to_coverage_s(1) == math.inf  # trip ends first
    assert net.time_to_coverage_s(2) == pytest.approx(40.0 + (5000.0 - R) / 25.0)
    out = {}

    def proc():
        yield env.timeout(net.time_to_coverage_s(0))
        assert net.serving_rsu(0) == 0 and net.time_to_coverage_s(0) == 0.0
        out["r"] = yield net.transfer(0, 1000, "up")

    env.process(proc())
    env.run()
    assert out["r"].ok


# ----------------------------------------------------------------------------------------- (e) cancel
def test_cancel_yields_deadline_with_bytes_done():
    env, net, radio, mob = world([(100.0, 0.0, 0.0, 0.0, math.inf), (-100.0, 0.0, 0.0, 0.0, math.inf)])
    R = rate_at(radio, mob, 0, 0.0)
    S = 4 * MB
    t_cancel = 0.25 * 16 * S / R
    a, b = net.transfer(0, S, "up"), net.transfer(1, S, "up")

    def deadline():
        yield env.timeout(t_cancel)
        net.cancel(0, "deadline")
        assert a.triggered  # the result is there before cancel returns
        net.cancel(0, "deadline")  # nothing in flight: a no-op

    env.process(deadline())
    env.run()
    assert not a.value.ok and a.value.cause == "deadline" and a.value.end_s == pytest.approx(t_cancel)
    assert a.value.bytes_done == pytest.approx(R / 2 * t_cancel / 8, rel=1e-12)
    # b: R/2 until t_cancel, then R alone
    assert b.value.end_s == pytest.approx(t_cancel + 8 * (S - R / 2 * t_cancel / 8) / R, rel=1e-12)


def test_cancel_cause_is_checked():
    env, net, *_ = world([(100.0, 0.0, 0.0, 0.0, math.inf)])
    with pytest.raises(ValueError, match="cause"):
        net.cancel(0, "bored")
    with pytest.raises(ValueError, match="direction"):
        net.transfer(0, 10, "sideways")
    assert "deadline" in FAIL_CAUSES


# --------------------------------------------------------------------------------------- (f) handover
@pytest.mark.parametrize("mode", ["continue", "drop"])
def test_handover_continue_vs_drop(mode):
    seen = []
    env, net, radio, mob = world([(0.0, 0.0, 25.0, 0.0, math.inf)], rsu_xs=(0.0, 0.0),
                                 handover=mode, on_event=lambda kind, **kw: seen.append((kind, kw)))
    R = radio.coverage_radius_m
    radio.rsu_xy[1, 0] = 1.5 * R  # overlapping discs
    (res,) = run(env, net.transfer(0, 10**13, "up"))
    assert res.cause == "left_coverage"
    if mode == "continue":
        assert res.handovers == 1 and res.rsu == 1
        assert res.end_s == pytest.approx(2.5 * R / 25.0, rel=1e-9)
        assert len(seen) == 1 and seen[0][0] == "handover"
        assert seen[0][1]["rsu"] == 1 and seen[0][1]["vehicle"] == 0
        assert seen[0][1]["time_s"] == pytest.approx(R / 25.0, rel=1e-9)
    else:
        assert res.handovers == 0 and res.rsu == 0 and not seen
        assert res.end_s == pytest.approx(R / 25.0, rel=1e-9)


def test_handover_then_complete():
    env, net, radio, mob = world([(0.0, 0.0, 25.0, 0.0, math.inf)], rsu_xs=(0.0, 0.0))
    R = radio.coverage_radius_m
    radio.rsu_xy[1, 0] = 1.5 * R
    t_handover = R / 25.0
    nbytes = int(rate_at(radio, mob, 0, 0.0) * (t_handover + 3.0) / 8)  # roughly 3 s past the handover
    (res,) = run(env, net.transfer(0, nbytes, "up"))
    assert res.ok and res.handovers == 1 and res.rsu == 1 and res.end_s > t_handover


# ----------------------------------------------------------------------------------------- outage
class OutageRadio(Radio):
    """Real geometry; vehicle 0's link is in outage (rate 0) until t = 1 s."""

    clock = None

    def rate_bps(self, vehicle_ids, position_m, rsu_ids, travelled_m, *, uplink, bandwidth_hz=None):
        rate = super().rate_bps(vehicle_ids, position_m, rsu_ids, travelled_m, uplink=uplink,
                                bandwidth_hz=bandwidth_hz)
        if self.clock is None or self.clock() < 1.0:
            rate = np.where(np.asarray(vehicle_ids) == 0, 0.0, rate)
        return rate


def test_outage_times_out_and_does_not_take_a_share():
    env, net, radio, mob = world([(100.0, 0.0, 0.0, 0.0, math.inf), (-100.0, 0.0, 0.0, 0.0, math.inf)],
                                 radio_cls=OutageRadio)
    R = rate_at(Radio(profile=PROFILE, rsu_xy=radio.rsu_xy, rsu_height_m=5.0, seed=0), mob, 1, 0.0)
    a, b = run(env, net.transfer(0, 10**12, "up"), net.transfer(1, MB, "up"))
    assert a.cause == "link_outage" and a.end_s == pytest.approx(2.0) and a.bytes_done == 0.0
    assert b.ok and b.end_s == pytest.approx(8 * MB / R, rel=1e-12)  # vehicle 0 never took a share


def test_outage_recovers():
    env, net, radio, mob = world([(100.0, 0.0, 30.0, 0.0, math.inf)], radio_cls=OutageRadio)
    radio.clock = lambda: env.now
    (res,) = run(env, net.transfer(0, MB, "up"))
    assert res.ok and res.end_s > 1.0


# ----------------------------------------------------------------------------------------- (g) idle
def test_nothing_runs_when_idle():
    env, net, radio, mob = world([(-300.0, 0.0, 25.0, 0.0, math.inf), (100.0, 0.0, 0.0, 0.0, math.inf)])
    assert env.peek() == math.inf  # building the network schedules nothing
    a, b = net.transfer(0, MB, "up"), net.transfer(1, 2 * MB, "down")
    env.run()
    assert a.value.ok and b.value.ok
    assert env.peek() == math.inf and net.active_transfers == 0
    end = env.now
    assert end == pytest.approx(max(a.value.end_s, b.value.end_s))
    # and again later: a fresh process starts and stops
    out = {}

    def later():
        yield env.timeout(100.0)
        out["r"] = yield net.transfer(1, MB, "up")

    env.process(later())
    env.run()
    assert out["r"].ok and env.peek() == math.inf and net.active_transfers == 0


def test_few_wakeups_for_a_stationary_transfer():
    env, net, *_ = world([(100.0, 0.0, 0.0, 0.0, math.inf)])
    steps = 0
    ev = net.transfer(0, 50 * MB, "up")
    while env.peek() < math.inf:
        env.step()
        steps += 1
    assert ev.value.ok and steps <= 6  # no ticks while nothing moves


# ----------------------------------------------------------------------------------------- determinism
def _highway_run(seed):
    road = HighwayRoad(length_m=2000.0, lanes_per_direction=2)
    mob = HighwayMobility(road, TrafficConfig(initial_vehicles=30, arrival_rate_per_s=0.1), seed=seed,
                          duration_s=200.0)
    prof = PROFILE.model_copy(update={"shadowing_std_db": 6.0, "min_snr_db": 28.0})
    radio = Radio(profile=prof, rsu_xy=rsu_positions(road, RSUConfig(spacing_m=400.0, first_at_m=200.0)),
                  rsu_height_m=5.0, seed=seed)
    env = simpy.Environment()
    hand = []
    net = FluidNetwork(env, mobility=mob, radio=radio, config=NetworkConfig(outage_timeout_s=1.0),
                       on_event=lambda kind, **kw: hand.append(kw["time_s"]))
    results = []

    def client(v, start, nbytes, direction):
        yield env.timeout(start)
        res = yield net.transfer(v, nbytes, direction)
        results.append(res)

    rng = np.random.default_rng(seed)
    for v in range(mob.trips.n):
        start = float(mob.trips.t_enter_s[v] + rng.uniform(0, 20))
        env.process(client(v, start, int(rng.integers(1, 200)) * MB, "up" if v % 2 else "down"))
    env.run()
    return results, hand


def test_same_inputs_same_results():
    a, ha = _highway_run(3)
    b, hb = _highway_run(3)
    assert a == b and ha == hb
    causes = {r.cause for r in a}
    assert None in causes and len(causes) >= 3 and len(a) > 30 and ha  # a mix, handovers included


# ----------------------------------------------------------------------------------------- ideal
def test_ideal_network():
    env = simpy.Environment()
    net = IdealNetwork(env, rate_bps=8e6, latency_s=0.5)
    a, b = net.transfer(0, MB, "up"), net.transfer(1, 2 * MB, "down")
    out = {}

    def cancel():
        yield env.timeout(1.0)
        net.cancel(1, "deadline")
        out["b"] = b.value

    env.process(cancel())
    env.run()
    assert a.value.ok and a.value.end_s == pytest.approx(1.5) and a.value.rsu == 0
    assert out["b"].cause == "deadline" and out["b"].bytes_done == pytest.approx(0.5 * 1e6)
    assert net.serving_rsu(5) == 0 and net.time_to_coverage_s(5) == 0.0 and net.dwell_time_s(5) == math.inf
    assert net.link_rate_bps(5, "up") == 8e6


# ----------------------------------------------------------------------------------------- batched queries
def test_batched_queries_match_the_scalar_ones():
    env, net, radio, mob = world([(-5000.0, 0.0, 25.0, 0.0, math.inf), (100.0, 0.0, 20.0, 0.0, 6.0),
                                  (0.0, 3.0, -30.0, 0.0, math.inf), (0.0, 0.0, 25.0, 30.0, 900.0),
                                  (0.0, 0.0, 25.0, 0.0, 1.0)], rsu_xs=(0.0, 3000.0))
    out = {}

    def proc():
        net.transfer(2, 10**12, "up")
        yield env.timeout(2.0)
        ids = np.arange(5)
        out["batched"] = (net.serving_rsus(ids), net.times_to_coverage_s(ids), net.dwell_times_s(ids),
                          net.link_rates_bps(ids, "up"), net.link_rates_bps(ids, "down"))
        out["scalar"] = tuple(np.array([fn(int(v)) for v in ids]) for fn in (
            net.serving_rsu, net.time_to_coverage_s, net.dwell_time_s, lambda v: net.link_rate_bps(v, "up"),
            lambda v: net.link_rate_bps(v, "down")))
        net.cancel(2, "cancelled")

    env.process(proc())
    env.run()
    for a, b in zip(out["batched"], out["scalar"]):
        np.testing.assert_array_equal(a, b)
    rsu, wait, dwell, up, _ = out["batched"]
    np.testing.assert_array_equal(rsu, [-1, 0, 0, -1, -1])
    assert wait[0] > 0 and wait[3] == pytest.approx(28.0) and wait[4] == math.inf  # 3 enters covered at 30 s
    assert dwell[1] == pytest.approx(4.0) and up[4] == 0.0  # its trip ends before it leaves coverage
    assert dwell[2] == pytest.approx((math.sqrt(radio.coverage_radius_m**2 - 9.0) - 60.0) / 30.0)


def test_ideal_batched_queries():
    net = IdealNetwork(simpy.Environment(), rate_bps=5e6)
    np.testing.assert_array_equal(net.serving_rsus([3, 4]), [0, 0])
    np.testing.assert_array_equal(net.link_rates_bps([3, 4], "down"), [5e6, 5e6])
    assert np.all(net.dwell_times_s([1]) == math.inf) and np.all(net.times_to_coverage_s([1]) == 0.0)


# ------------------------------------------------------------------ A3 handover, TTT, restart, interruption
def a3_world(*, hysteresis, ttt, mode="continue", pause=0.0, profile=PROFILE, trigger="a3", xs=(0.0, 500.0)):
    seen = []
    env = simpy.Environment()
    mob = TripMobility(trips((0.0, 0.0, 25.0, 0.0, math.inf)))
    radio = Radio(profile=profile, rsu_xy=np.array([[x, 0.0] for x in xs]), rsu_height_m=5.0, seed=0)
    cfg = NetworkConfig(handover=mode, handover_trigger=trigger, handover_hysteresis_db=hysteresis,
                        time_to_trigger_s=ttt, handover_interruption_s=pause)
    net = FluidNetwork(env, mobility=mob, radio=radio, config=cfg,
                       on_event=lambda kind, **kw: seen.append(kw["time_s"]))
    return env, net, radio, mob, seen


def expected_a3_tick(radio, hysteresis, ttt, period=0.5, speed=25.0, other=500.0):
    """The tick at which a vehicle leaving x = 0 at ``speed`` hands over from RSU 0 to RSU 1 (no shadowing)."""
    first = None
    for k in range(1, 10_000):
        t = k * period
        x = speed * t
        pl0 = float(path_loss_db(PROFILE.path_loss, math.hypot(x, 5.0), PROFILE.carrier_hz))
        pl1 = float(path_loss_db(PROFILE.path_loss, math.hypot(other - x, 5.0), PROFILE.carrier_hz))
        covered = abs(other - x) <= radio.coverage_radius_m
        if covered and pl0 - pl1 > hysteresis:
            first = t if first is None else first
            if t - first >= ttt - 1e-9:
                return t
        else:
            first = None
    raise AssertionError("no handover")


@pytest.mark.parametrize("hysteresis, ttt", [(0.0, 0.0), (3.0, 0.0), (3.0, 0.32), (6.0, 0.5)])
def test_a3_hands_over_after_hysteresis_and_time_to_trigger(hysteresis, ttt):
    env, net, radio, mob, seen = a3_world(hysteresis=hysteresis, ttt=ttt)
    (res,) = run(env, net.transfer(0, 10**13, "up"))
    assert res.handovers == 1 and res.rsu == 1 and res.cause == "left_coverage"
    assert seen == [pytest.approx(expected_a3_tick(radio, hysteresis, ttt))]
    assert seen[0] < radio.coverage_radius_m / 25.0  # before the coverage exit would have forced it


def test_a3_drop_fails_with_handover_failed():
    env, net, radio, mob, seen = a3_world(hysteresis=3.0, ttt=0.0, mode="drop")
    (res,) = run(env, net.transfer(0, 10**13, "up"))
    assert res.cause == "handover_failed" and res.handovers == 0 and res.rsu == 0 and not seen
    assert res.end_s == pytest.approx(expected_a3_tick(radio, 3.0, 0.0))
    assert "handover_failed" in FAIL_CAUSES


def _cancel_at(env, net, t, out):
    def proc():
        yield env.timeout(t)
        net.cancel(0, "deadline")
    out["ev"] = net.transfer(0, 10**13, "up")
    env.process(proc())
    env.run()
    return out["ev"].value


@pytest.mark.parametrize("pause", [0.0, 1.5])
def test_restart_and_interruption_bytes(pause):
    # coverage-exit handover at R / 25 s (RSUs at 0 and 1.5 R)
    base = a3_world(hysteresis=0.0, ttt=0.0, mode="drop", trigger="coverage-exit", xs=(0.0, 0.0))
    env, net, radio, mob, _ = base
    R = radio.coverage_radius_m
    radio.rsu_xy[1, 0] = 1.5 * R
    t_h = R / 25.0
    (at_handover,) = run(env, net.transfer(0, 10**13, "up"))
    assert at_handover.cause == "left_coverage" and at_handover.end_s == pytest.approx(t_h)
    results = {}
    for mode in ("continue", "restart"):
        env, net, radio, mob, seen = a3_world(hysteresis=0.0, ttt=0.0, mode=mode, trigger="coverage-exit",
                                              xs=(0.0, 1.5 * R), pause=pause)
        results[mode] = _cancel_at(env, net, t_h + 1.0 if pause == 0 else t_h + pause / 2, {})
        assert results[mode].handovers == 1 and seen == [pytest.approx(t_h)]
    if pause:  # nothing flows during the interruption
        assert results["continue"].bytes_done == pytest.approx(at_handover.bytes_done, rel=1e-9)
        assert results["restart"].bytes_done == 0.0
    else:  # restart carries exactly the bytes since the handover
        assert 0 < results["restart"].bytes_done < results["continue"].bytes_done
        assert results["continue"].bytes_done - results["restart"].bytes_done == pytest.approx(
            at_handover.bytes_done, rel=1e-9)


def test_interruption_delays_completion_by_its_length_when_rates_are_flat():
    flat = PROFILE.model_copy(update={"max_spectral_efficiency": 1.0})  # capped: 10 Mbit/s all over the disc
    ends = {}
    for pause in (0.0, 2.0):
        env, net, radio, mob, seen = a3_world(hysteresis=0.0, ttt=0.0, trigger="coverage-exit", pause=pause,
                                              profile=flat, xs=(0.0, 0.0))
        R = radio.coverage_radius_m
        radio.rsu_xy[1, 0] = 1.5 * R
        rate = rate_at(radio, mob, 0, 0.0)
        nbytes = int(rate * (R / 25.0 + 3.0) / 8)
        (res,) = run(env, net.transfer(0, nbytes, "up"))
        assert res.ok and res.handovers == 1
        ends[pause] = res.end_s
    assert ends[2.0] - ends[0.0] == pytest.approx(2.0, rel=1e-6)


def _handover_count(scenario_overrides, scenario="scenarios/tiny.yaml"):
    """Handovers on a shipped scenario's road and channel in 300 s, every vehicle uploading back to back."""
    from vfedsim.engine import build_mobility
    from vfedsim.scenario import load_scenario_file

    s = load_scenario_file(scenario, overrides=[*scenario_overrides, "duration_s=300"])
    w = s.world
    mob = build_mobility(s)
    radio = Radio(profile=w.channel, rsu_xy=mob.rsu_sites(w.rsus), rsu_height_m=w.rsus.height_m, seed=s.seed)
    env = simpy.Environment()
    count = []
    net = FluidNetwork(env, mobility=mob, radio=radio, config=w.network,
                       on_event=lambda kind, **kw: count.append(kw["vehicle"]) if kind == "handover" else None)

    def client(v):
        yield env.timeout(max(float(mob.trips.t_enter_s[v]), 0.0))
        while env.now < min(mob.trips.t_exit_s[v], 300.0):
            wait = net.time_to_coverage_s(v)
            if not math.isfinite(wait):
                return
            if wait > 0:
                yield env.timeout(wait)
                continue
            yield net.transfer(v, 20 * MB, "up")

    for v in range(mob.trips.n):
        env.process(client(v))
    env.run(until=300.0)
    return len(count)


@pytest.mark.parametrize("scenario", ["scenarios/tiny.yaml", "scenarios/urban.yaml"])
def test_hysteresis_and_time_to_trigger_cut_handovers_on_the_shipped_scenarios(scenario):
    a3 = ["world.network.handover_trigger=a3"]
    eager = _handover_count(a3 + ["world.network.handover_hysteresis_db=0", "world.network.time_to_trigger_s=0"],
                            scenario)
    damped = _handover_count(a3 + ["world.network.handover_hysteresis_db=3", "world.network.time_to_trigger_s=0.32"],
                             scenario)
    exit_only = _handover_count([], scenario)
    print(f"{scenario}: handovers A3 0 dB / 0 s {eager}, 3 dB / 0.32 s {damped}, coverage exit {exit_only}")
    assert eager > 1.5 * damped > 0 and exit_only > 0  # tiny: 70 vs 33 when written
    assert eager > exit_only


def test_time_varying_channel_ticks_for_a_stationary_vehicle():
    prof = PROFILE.model_copy(update={"fading": RicianFading(k_db=10.0), "fading_period_s": 0.5, "min_snr_db": 0.0})
    env, net, radio, mob = world([(330.0, 0.0, 0.0, 0.0, math.inf)], profile=prof)  # below the rate cap
    assert radio.time_varying
    out = {}

    def proc():
        yield env.timeout(0.2)
        ev = net.transfer(0, 10**12, "up")
        yield env.timeout(3.1)
        net.cancel(0, "deadline")
        out["r"] = ev.value

    env.process(proc())
    env.run()
    pos, _ = mob.positions_of([0], 0.0)

    def rate(t):
        return float(radio.rate_bps([0], pos, [0], [0.0], uplink=True, time_s=t)[0])

    edges = [0.2, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.3]
    expected = sum(rate(a) * (b - a) / 8 for a, b in zip(edges[:-1], edges[1:]))
    assert out["r"].bytes_done == pytest.approx(expected, rel=1e-9)
    assert len({rate(t) for t in edges[:-1]}) > 3  # the gain really changes every slot


def test_same_results_with_los_states_and_fading():
    prof = ChannelProfile(path_loss=HighwayLosPathLoss(), nlos_path_loss=NlosvPathLoss(), los_model="3gpp-highway",
                          fading=NakagamiFading(m=1.5, m_far=0.75), shadowing_std_db=3.0, min_snr_db=20.0)

    def once():
        road = HighwayRoad(length_m=2000.0, lanes_per_direction=2)
        mob = HighwayMobility(road, TrafficConfig(initial_vehicles=20, arrival_rate_per_s=0.1), seed=1,
                              duration_s=120.0)
        radio = Radio(profile=prof, rsu_xy=rsu_positions(road, RSUConfig(spacing_m=400.0, first_at_m=200.0)),
                      rsu_height_m=5.0, seed=1)
        env = simpy.Environment()
        net = FluidNetwork(env, mobility=mob, radio=radio,
                           config=NetworkConfig(handover_trigger="a3", handover_interruption_s=0.05))
        results = []

        def client(v):
            yield env.timeout(float(mob.trips.t_enter_s[v]) + 1.0)
            results.append((yield net.transfer(v, 30 * MB, "up")))

        for v in range(mob.trips.n):
            env.process(client(v))
        env.run(until=200.0)
        return results

    a, b = once(), once()
    assert a == b and len({r.cause for r in a}) >= 2


def test_a_vehicle_leaving_a_disc_on_its_edge_is_not_covered_by_it():
    env, net, radio, mob = world([(0.0, 0.0, 25.0, 0.0, math.inf)], rsu_xs=(0.0, 3000.0))
    R = radio.coverage_radius_m
    out = []

    def proc():
        yield env.timeout(R / 25.0)  # exactly on RSU 0's edge, driving out
        out.append((net.serving_rsu(0), net.time_to_coverage_s(0), net.dwell_time_s(0)))
        out.append((yield net.transfer(0, MB, "up")).cause)

    env.process(proc())
    env.run()
    rsu, wait, dwell = out[0]
    assert rsu == -1 and dwell == 0.0 and out[1] == "no_coverage"
    assert wait == pytest.approx((3000.0 - R - R) / 25.0)  # until RSU 1's disc, not 0
