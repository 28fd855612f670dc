"""How fast is the network model alone (no training)?

A two-way highway with 20 RSUs every 1 km; vehicles enter and leave so that about N are on the road; every
vehicle on the road repeatedly uploads 200 kB (waiting for coverage when it has none) with 5 s pauses, so
hundreds of fluid flows share the RSUs at any time. Simulates one hour (``--duration``) per fleet size and
prints the simulated seconds per wall second, one line per size, then ``real-time factor: N`` for the
reference size (1,000 vehicles).

    python benchmarks/network.py [--vehicles 100,1000,3000] [--duration 3600]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import simpy

from vfedsim.scenario import parse_scenario
from vfedsim.strategies.transfer import FluidNetwork
from vfedsim.world.mobility import HighwayMobility
from vfedsim.world.radio import Radio, rsu_positions

UPLOAD_BYTES = 200_000
PAUSE_S = 5.0


def simulate(n_vehicles: int, duration_s: float, *, rsus: int = 20, spacing_m: float = 1000.0) -> dict:
    length = rsus * spacing_m
    speed_mps = 100 / 3.6
    scenario = parse_scenario({
        "duration_s": duration_s,
        "world": {
            "road": {"length_m": length, "lanes_per_direction": 3},
            "traffic": {"initial_vehicles": n_vehicles,
                        # keep about n on the road: arrivals = n / (time to drive the road)
                        "arrival_rate_per_s": n_vehicles * speed_mps / length,
                        "speed": {"mean_kmh": 100, "std_kmh": 15, "min_kmh": 60, "max_kmh": 140},
                        "trip_length": {"min_m": length, "max_m": 2 * length}},
            "rsus": {"spacing_m": spacing_m, "first_at_m": spacing_m / 2},
            "channel": {"profile": "log-distance", "bandwidth_hz": 10e6},
        }})
    world = scenario.world
    mobility = HighwayMobility(world.road, world.traffic, seed=scenario.seed, duration_s=duration_s)
    radio = Radio(profile=world.channel, rsu_xy=rsu_positions(world.road, world.rsus),
                  rsu_height_m=world.rsus.height_m, seed=scenario.seed)
    env = simpy.Environment()
    net = FluidNetwork(env, mobility=mobility, radio=radio, config=world.network,
                       uplink_hz=world.channel.bandwidth_hz, downlink_hz=world.channel.downlink_hz)
    trips = mobility.trips
    stats = {"done": 0, "failed": 0, "bytes": 0.0}

    def uploader(v: int):
        yield env.timeout(float(trips.t_enter_s[v]))
        while env.now < min(float(trips.t_exit_s[v]), duration_s):
            wait = net.time_to_coverage_s(v)
            if not np.isfinite(wait):
                return
            if wait > 0:
                yield env.timeout(wait)
                continue
            res = yield net.transfer(v, UPLOAD_BYTES, "up")
            stats["bytes"] += res.bytes_done
            stats["done" if res.ok else "failed"] += 1
            yield env.timeout(PAUSE_S)

    for v in range(trips.n):
        if trips.t_enter_s[v] < duration_s:
            env.process(uploader(v))
    t0 = time.perf_counter()
    env.run(until=duration_s)
    wall = time.perf_counter() - t0
    return {"vehicles_total": trips.n, "wall_s": wall, "rtf": duration_s / wall, **stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", default="100,1000,3000", help="comma-separated fleet sizes on the road")
    ap.add_argument("--duration", type=float, default=3600.0, help="simulated seconds per size")
    args = ap.parse_args()
    sizes = [int(s) for s in args.vehicles.split(",")]
    reference = None
    print(f"{'on road':>8} {'vehicles':>9} {'uploads':>8} {'failed':>7} {'GB up':>7} {'wall s':>8} {'sim s / wall s':>15}")
    for n in sizes:
        r = simulate(n, args.duration)
        print(f"{n:>8} {r['vehicles_total']:>9} {r['done']:>8} {r['failed']:>7} {r['bytes'] / 1e9:>7.2f} "
              f"{r['wall_s']:>8.2f} {r['rtf']:>15.0f}")
        if n == 1000 or reference is None:
            reference = (n, r["rtf"])
    print(f"real-time factor: {reference[1]:.0f} (at {reference[0]} vehicles, 20 RSUs, {args.duration:.0f} s simulated)")


if __name__ == "__main__":
    main()
