"""Every network feature at once on a small highway: the same inputs give the same results, byte for byte."""
from __future__ import annotations

import numpy as np
import simpy
from networld import MB, PROFILE

from vfedsim.scenario import HighwayRoad, NetworkConfig, RSUConfig, TrafficConfig
from vfedsim.network.fluid import FluidNetwork
from vfedsim.world.mobility import HighwayMobility
from vfedsim.world.radio import Radio, rsu_positions

MCS = PROFILE.model_copy(update={"rate_mapping": "mcs", "mcs_table": "ieee80211p", "min_snr_db": 20.0,
                                 "shadowing_std_db": 4.0})


def _run(seed, **cfg):
    road = HighwayRoad(length_m=4000.0, lanes_per_direction=2)
    mob = HighwayMobility(road, TrafficConfig(initial_vehicles=40, arrival_rate_per_s=0.2), seed=seed,
                          duration_s=150.0)
    radio = Radio(profile=MCS, rsu_xy=rsu_positions(road, RSUConfig(spacing_m=1500.0, first_at_m=500.0)),
                  rsu_height_m=5.0, seed=seed)
    env = simpy.Environment()
    events = []
    net = FluidNetwork(env, mobility=mob, radio=radio, config=NetworkConfig(**cfg),
                       on_event=lambda kind, **kw: events.append((kind, kw["vehicle"], kw["time_s"])))
    results = []

    def client(v, start, nbytes, direction):
        yield env.timeout(start)
        results.append((yield net.transfer(v, nbytes, direction)))

    rng = np.random.default_rng(seed)
    for v in range(mob.trips.n):
        start = float(mob.trips.t_enter_s[v] + rng.choice([0.0, 5.0, 10.0]))
        env.process(client(v, start, int(rng.choice([2, 8])) * MB, "down" if v % 3 else "up"))
    env.run(until=300.0)
    return results, events


FEATURES = dict(backhaul_capacity_bps=8e6, backhaul_latency_s=0.02, downlink_mode="broadcast", chunk_bytes=1500,
                handover_trigger="a3", handover_interruption_s=0.05, outage_timeout_s=1.0,
                v2v={"enabled": True, "max_hops": 2, "range_m": 250.0})


def test_all_features_together_are_deterministic():
    a, b = _run(2, **FEATURES), _run(2, **FEATURES)
    assert a == b
    results, events = a
    kinds = {k for k, *_ in events}
    assert {"relay", "resent"} <= kinds
    assert any(r.hops > 1 for r in results) and any(r.bytes_resent > 0 for r in results)
    assert len({r.cause for r in results}) >= 3
    for r in results:
        assert 0.0 <= r.bytes_done <= r.nbytes and r.end_s >= r.start_s
        assert r.ok == (r.cause is None) and (not r.ok or r.bytes_done == r.nbytes)


def test_restart_and_drop_with_every_feature():
    for mode in ("restart", "drop"):
        results, _ = _run(4, handover=mode, **FEATURES)
        assert results and all(0.0 <= r.bytes_done <= r.nbytes for r in results)
