"""Fleet queries: one attachment per instant shared by the fleet-wide answers, a frozen link view, and the
selection snapshot's deferred link fields."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from networld import MB, world

from vfedsim.policies.selection import Deferred, WorldSnapshot

MOVING = [(x, 3.0, 20.0, 0.0, math.inf) for x in np.linspace(-800.0, 800.0, 80)]


def test_fleet_queries_equal_one_vehicle_queries_and_views_are_frozen():
    env, net, radio, mob = world(MOVING, rsu_xs=(0.0, 600.0))
    ids = np.arange(len(MOVING))
    net.transfer(5, 10 * MB, "up")  # a vehicle in flight keeps its flows' RSU
    fleet = (net.serving_rsus(ids), net.dwell_times_s(ids), net.link_rates_bps(ids, "up"),
             net.link_snrs_db(ids, "down"))
    one = ([net.serving_rsu(v) for v in ids], [net.dwell_time_s(v) for v in ids],
           [net.link_rate_bps(v, "up") for v in ids])
    for a, b in zip(fleet, one):
        np.testing.assert_array_equal(a, b)
    assert (fleet[0] >= 0).any() and (fleet[0] < 0).any()
    view = net.link_view(ids)
    env.run(until=3.0)  # everyone moved; the view still answers for t = 0
    np.testing.assert_array_equal(view.rates_bps("up"), fleet[2])
    np.testing.assert_array_equal(view.snrs_db("down"), fleet[3])
    np.testing.assert_array_equal(view.dwell_times_s(), fleet[1])
    assert not np.array_equal(net.link_rates_bps(ids, "up"), fleet[2])


def test_deferred_snapshot_fields_are_computed_once_on_first_read():
    calls = []

    def rates():
        calls.append(1)
        return np.array([1e6, 2e6])

    snap = WorldSnapshot(time_s=0.0, round=1, deadline_s=30.0, download_bytes=10, upload_bytes=10,
                         vehicle_ids=np.array([3, 4]), position_m=np.zeros((2, 2)), speed_mps=np.zeros(2),
                         serving_rsu=np.zeros(2, dtype=int), rate_up_bps=Deferred(rates),
                         rate_down_bps=np.ones(2), dwell_time_s=np.ones(2), trip_remaining_s=np.ones(2),
                         compute_time_s=np.ones(2), device_class=("a", "a"), participation_count=np.zeros(2),
                         last_loss=np.zeros(2))
    assert calls == []
    np.testing.assert_array_equal(snap.rate_up_bps, [1e6, 2e6])
    np.testing.assert_array_equal(snap.predicted_time_s, 8 * 10 / np.array([1.0, 1.0]) + 1 + 8 * 10 / np.array([1e6, 2e6]))
    copy = dataclasses.replace(snap, round=2)
    assert calls == [1] and copy.round == 2 and copy.rate_up_bps is snap.rate_up_bps
