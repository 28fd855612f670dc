"""Per-chunk losses and resends with an MCS rate mapping, against a hand-made draw from the flow's stream."""
from __future__ import annotations

import math

import numpy as np
import pytest
from networld import MB, PROFILE, run, world

from vfedsim.rng import stream
from vfedsim.world.channel import per_from_snr, rate_from_snr_bps

MCS = PROFILE.model_copy(update={"rate_mapping": "mcs", "mcs_table": "ieee80211p", "min_snr_db": 0.0})
CHUNK = 1500


def link(radio, x, uplink=True):
    snr = float(radio.snr_db([0], [[x, 0.0]], [0], [0.0], uplink=uplink)[0])
    phy = float(rate_from_snr_bps(MCS, MCS.bandwidth_hz, snr, goodput=False))
    return snr, phy, float(per_from_snr(MCS, snr))


def lossy_x(radio):
    """A distance [m] whose SNR sits just above an MCS threshold (a PER of a few per cent)."""
    for x in np.arange(20.0, radio.coverage_radius_m, 1.0):
        snr, phy, per = link(radio, x)
        if 0.02 < per < 0.2 and phy > 0:
            return float(x)
    raise AssertionError("no lossy distance")


def test_a_stationary_transfer_resends_the_drawn_chunks():
    env, net, radio, mob = world([(0.0, 0.0, 0.0, 0.0, math.inf)], profile=MCS)
    x = lossy_x(radio)
    seen = []
    env, net, radio, mob = world([(x, 0.0, 0.0, 0.0, math.inf)], profile=MCS, chunk_bytes=CHUNK,
                                 on_event=lambda kind, **kw: seen.append((kind, kw)))
    _, phy, per = link(radio, x)
    m = 200
    S = m * CHUNK
    (first,) = run(env, net.transfer(0, S, "up"))
    k = stream(net.seed, "chunk-loss", 0, 0).negative_binomial(m, 1.0 - per)
    assert k > 0  # the draw really resends something at this PER
    assert first.ok and first.bytes_resent == pytest.approx(k * CHUNK, rel=1e-12)
    assert first.end_s == pytest.approx(8 * (S + k * CHUNK) / phy, rel=1e-12)
    assert seen == [("resent", {"time_s": first.end_s, "vehicle": 0, "rsu": 0, "nbytes": k * CHUNK})]
    # the vehicle's second transfer draws from its own next stream
    out = {}

    def again():
        out["r"] = yield net.transfer(0, S, "up")

    env.process(again())
    env.run()
    k2 = stream(net.seed, "chunk-loss", 0, 1).negative_binomial(m, 1.0 - per)
    assert out["r"].bytes_resent == pytest.approx(k2 * CHUNK, rel=1e-12)


def test_without_chunks_the_goodput_is_used_and_nothing_is_resent():
    env, net, radio, mob = world([(0.0, 0.0, 0.0, 0.0, math.inf)], profile=MCS)
    x = lossy_x(radio)
    env, net, radio, mob = world([(x, 0.0, 0.0, 0.0, math.inf)], profile=MCS)
    _, phy, per = link(radio, x)
    (res,) = run(env, net.transfer(0, MB, "up"))
    assert res.ok and res.bytes_resent == 0.0
    assert res.end_s == pytest.approx(8 * MB / (phy * (1 - per)), rel=1e-9)


def test_shannon_has_no_chunk_losses():
    env, net, radio, mob = world([(100.0, 0.0, 0.0, 0.0, math.inf)], chunk_bytes=CHUNK)
    (res,) = run(env, net.transfer(0, MB, "up"))
    assert res.ok and res.bytes_resent == 0.0


def test_chunk_losses_are_deterministic_while_moving():
    def once():
        env, net, radio, mob = world([(-300.0, 0.0, 20.0, 0.0, math.inf), (-250.0, 0.0, 15.0, 0.0, math.inf)],
                                     profile=MCS, chunk_bytes=CHUNK)
        a, b = run(env, net.transfer(0, 30 * MB, "up"), net.transfer(1, 30 * MB, "down"))
        return a, b

    first, second = once(), once()
    assert first == second
    assert all(r.bytes_resent > 0 for r in first)
