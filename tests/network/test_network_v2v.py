"""V2V relaying for vehicles out of coverage, pinned to hand-computed rates and tick times."""
from __future__ import annotations

import math

import numpy as np
import pytest
from networld import MB, PROFILE, rate_at, run, world

from vfedsim.world.channel import median_snr_db, rate_from_snr_bps

R = world([(0.0, 0.0, 0.0, 0.0, math.inf)])[2].coverage_radius_m


def v2v_rate(d, bw=PROFILE.bandwidth_hz):
    snr = float(median_snr_db(PROFILE, d, uplink=True, bandwidth_hz=bw, distance_2d_m=d))
    return float(rate_from_snr_bps(PROFILE, bw, snr)) if snr >= PROFILE.min_snr_db else 0.0


def relay_world(vehicles, **v2v):
    seen = []
    env, net, radio, mob = world(vehicles, v2v={"enabled": True, "max_hops": 2, "range_m": 300.0, **v2v},
                                 on_event=lambda kind, **kw: seen.append((kind, kw)))
    return env, net, radio, mob, seen


def test_one_relay_at_the_bottleneck_rate():
    env, net, radio, mob, seen = relay_world([(R + 100.0, 0.0, 0.0, 0.0, math.inf),
                                              (R - 50.0, 0.0, 0.0, 0.0, math.inf)])
    assert net.time_to_coverage_s(0) == 0.0 and net.serving_rsu(0) == -1
    rate = min(v2v_rate(150.0), rate_at(radio, mob, 1, 0.0))
    assert rate > 0
    (res,) = run(env, net.transfer(0, MB, "up"))
    assert res.ok and res.hops == 2 and res.rsu == 0
    assert res.end_s == pytest.approx(8 * MB / rate, rel=1e-12)
    assert seen == [("relay", {"time_s": 0.0, "vehicle": 0, "rsu": 0, "nbytes": MB, "cause": "hops=2"})]


def test_max_hops_limits_the_path():
    chain = [(R + 380.0, 0.0, 0.0, 0.0, math.inf), (R + 150.0, 0.0, 0.0, 0.0, math.inf),
             (R - 50.0, 0.0, 0.0, 0.0, math.inf)]
    env, net, *_ , seen = relay_world(chain, max_hops=1)
    (res,) = run(env, net.transfer(0, MB, "up"))
    assert res.cause == "no_coverage" and res.hops == 0 and not seen
    env, net, radio, mob, seen = relay_world(chain, max_hops=2)
    (res,) = run(env, net.transfer(0, MB, "up"))
    rate = min(v2v_rate(230.0), v2v_rate(200.0), rate_at(radio, mob, 2, 0.0))
    assert res.ok and res.hops == 3 and res.end_s == pytest.approx(8 * MB / rate, rel=1e-12)


def test_disabled_means_no_coverage():
    env, net, radio, mob = world([(R + 100.0, 0.0, 0.0, 0.0, math.inf), (R - 50.0, 0.0, 0.0, 0.0, math.inf)])
    (res,) = run(env, net.transfer(0, MB, "up"))
    assert res.cause == "no_coverage" and net.time_to_coverage_s(0) == math.inf


def test_leaving_coverage_continues_through_a_relay_at_the_exact_exit():
    # vehicle 0 drives out of the disc at 25 m/s; vehicle 1 stands inside near the edge
    env, net, radio, mob, seen = relay_world([(R - 100.0, 0.0, 25.0, 0.0, math.inf),
                                              (R - 20.0, 0.0, 0.0, 0.0, math.inf)])
    t_exit = 100.0 / 25.0
    ev = net.transfer(0, 10**12, "up")
    env.run(until=t_exit + 0.2)
    net.cancel(0, "deadline")
    res = ev.value
    assert [(k, kw["time_s"], kw["cause"]) for k, kw in seen] == [("relay", pytest.approx(t_exit), "hops=2")]
    assert res.hops == 2 and res.cause == "deadline"


def test_the_path_is_checked_at_ticks_and_fails_when_lost():
    # the relay drives away from the stationary vehicle: the path holds until the first tick at which
    # they are more than 300 m apart
    env, net, radio, mob, seen = relay_world([(R + 100.0, 0.0, 0.0, 0.0, math.inf),
                                              (R - 50.0, 0.0, -20.0, 0.0, math.inf)])
    (res,) = run(env, net.transfer(0, 10**12, "up"))
    lost = next(t for t in np.arange(0.5, 100.0, 0.5) if 150.0 + 20.0 * t > 300.0)
    assert res.cause == "left_coverage" and res.end_s == pytest.approx(lost)


def test_entering_coverage_goes_direct_at_the_next_tick():
    env, net, radio, mob, seen = relay_world([(R + 60.0, 0.0, -25.0, 0.0, math.inf),
                                              (R - 50.0, 0.0, 0.0, 0.0, math.inf)])
    entry = 60.0 / 25.0
    tick = math.ceil(entry / 0.5) * 0.5
    ev = net.transfer(0, 10**12, "up")
    env.run(until=tick + 1.0)
    net.cancel(0, "deadline")
    assert [(kw["time_s"], kw["cause"]) for _, kw in seen] == [(0.0, "hops=2"), (pytest.approx(tick), "hops=1")]
    assert ev.value.hops == 1


def test_relay_runs_are_deterministic():
    def once():
        vehicles = [(x, y, v, 0.0, math.inf) for x, y, v in
                    ((R + 100.0, 0.0, 10.0), (R - 50.0, 3.0, 5.0), (R + 250.0, -3.0, -8.0), (-R - 120.0, 0.0, 0.0),
                     (-R + 30.0, 0.0, -12.0))]
        env, net, radio, mob, seen = relay_world(vehicles)
        out = run(env, *[net.transfer(v, 30 * MB, "up") for v in range(5)])
        return out, seen

    a, b = once(), once()
    assert a == b and any(r.hops > 1 for r in a[0])


def test_v2v_edges_match_all_pairs():
    from vfedsim.network.relay import v2v_edges

    rng = np.random.default_rng(5)
    pos = np.column_stack([rng.uniform(0, 3000, 200), rng.uniform(-12, 12, 200)])
    i, j, d = v2v_edges(pos, 150.0)
    found = {(min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist())}
    full = np.hypot(pos[:, None, 0] - pos[None, :, 0], pos[:, None, 1] - pos[None, :, 1])
    expected = {(a, b) for a, b in zip(*np.nonzero(np.triu(full <= 150.0, k=1)))}
    assert found == expected and len(found) == i.size
    np.testing.assert_allclose(d, full[i, j])


def test_v2v_rate_is_the_median_link_budget_between_vehicles():
    from vfedsim.network.relay import v2v_rate_bps

    assert float(v2v_rate_bps(PROFILE, 150.0, 10e6, PROFILE.min_snr_db)) == v2v_rate(150.0)
    assert float(v2v_rate_bps(PROFILE, 5000.0, 10e6, PROFILE.min_snr_db)) == 0.0
