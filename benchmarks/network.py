"""How fast is the network model alone (no training)?

A two-way highway with 20 RSUs every 1 km; vehicles enter and leave so that about N are on the road; every
vehicle on the road repeatedly uploads ``--upload-bytes`` (default 200 kB; waiting for coverage when it has
none) with ``--pause`` seconds between uploads (default 5), so hundreds of fluid flows share the RSUs at any
time. Simulates one hour (``--duration``) per fleet size and prints, one line per size, the uploads, bytes,
handovers, wall and CPU seconds and simulated seconds per wall second, then ``real-time factor: N`` for the
reference size (1,000 vehicles). ``--profile`` picks the channel profile (default log-distance) and ``--a3``
switches handovers to A3 with ``--hysteresis`` dB and ``--ttt`` s; ``--net KEY=VALUE`` (repeatable) sets any
other `vfedsim.scenario.NetworkConfig` field, e.g. ``--net backhaul_capacity_bps=1e8 --net v2v.enabled=true``.
Each vehicle's uploads are a SimPy process, as a strategy's client is; the network is one `FluidNetwork`.

Side by side, in the same run, the same driver and fleet are run over `IdealNetwork` (a network that does no
work: each transfer is one timeout, here as long as the fluid run's mean upload, so the upload counts
match): its columns are the floor that the engine and the driver alone cost, which no network model can
beat. ``--no-floor`` skips it.

    python benchmarks/network.py [--vehicles 100,1000,3000] [--duration 3600] [--profile 3gpp-highway] [--a3]
"""
from __future__ import annotations

import argparse
import time

import yaml

import numpy as np
import simpy

from vfedsim.scenario import parse_scenario
from vfedsim.network.fluid import FluidNetwork
from vfedsim.network import IdealNetwork
from vfedsim.world.mobility import HighwayMobility
from vfedsim.world.radio import Radio, rsu_positions


def simulate(n_vehicles: int, duration_s: float, *, rsus: int = 20, spacing_m: float = 1000.0,
             upload_bytes: int = 200_000, pause_s: float = 5.0, profile: str = "log-distance",
             network: dict | None = None, ideal_s: float | None = None) -> dict:
    """One fleet size over `FluidNetwork`, or over `IdealNetwork` with every transfer lasting ``ideal_s``."""
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
            "channel": {"profile": profile, "bandwidth_hz": 10e6},
            "network": network or {},
        }})
    world = scenario.world
    mobility = HighwayMobility(world.road, world.traffic, seed=scenario.seed, duration_s=duration_s)
    radio = Radio(profile=world.channel, rsu_xy=rsu_positions(world.road, world.rsus),
                  rsu_height_m=world.rsus.height_m, seed=scenario.seed)
    env = simpy.Environment()
    stats = {"done": 0, "failed": 0, "bytes": 0.0, "handovers": 0, "busy_s": 0.0}

    def count(kind: str, **_: object) -> None:
        stats["handovers"] += kind == "handover"

    if ideal_s is None:
        net = FluidNetwork(env, mobility=mobility, radio=radio, config=world.network,
                           uplink_hz=world.channel.bandwidth_hz, downlink_hz=world.channel.downlink_hz,
                           on_event=count)
    else:
        net = IdealNetwork(env, rate_bps=8.0 * upload_bytes / ideal_s)
    trips = mobility.trips

    def uploader(v: int):
        yield env.timeout(float(trips.t_enter_s[v]))
        while env.now < min(float(trips.t_exit_s[v]), duration_s):
            wait = net.time_to_coverage_s(v)
            if not np.isfinite(wait):
                return
            if wait > 0:
                yield env.timeout(wait)
                continue
            res = yield net.transfer(v, upload_bytes, "up")
            stats["bytes"] += res.bytes_done
            stats["busy_s"] += res.end_s - res.start_s
            stats["done" if res.ok else "failed"] += 1
            if pause_s > 0:
                yield env.timeout(pause_s)

    for v in range(trips.n):
        if trips.t_enter_s[v] < duration_s:
            env.process(uploader(v))
    t0, c0 = time.perf_counter(), time.process_time()
    env.run(until=duration_s)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"vehicles_total": trips.n, "wall_s": wall, "cpu_s": cpu, "rtf": duration_s / wall, **stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", default="100,1000,3000", help="comma-separated fleet sizes on the road")
    ap.add_argument("--duration", type=float, default=3600.0, help="simulated seconds per size")
    ap.add_argument("--upload-bytes", type=int, default=200_000, help="bytes per upload")
    ap.add_argument("--pause", type=float, default=5.0, help="seconds between a vehicle's uploads")
    ap.add_argument("--profile", default="log-distance", help="channel profile")
    ap.add_argument("--a3", action="store_true", help="A3 handovers (default: at coverage exit)")
    ap.add_argument("--hysteresis", type=float, default=3.0, help="A3 hysteresis [dB]")
    ap.add_argument("--ttt", type=float, default=0.32, help="A3 time-to-trigger [s]")
    ap.add_argument("--net", action="append", default=[], metavar="KEY=VALUE",
                    help="a world.network field (dots for nested ones: v2v.enabled=true); repeatable")
    ap.add_argument("--no-floor", action="store_true", help="skip the IdealNetwork run beside each size")
    args = ap.parse_args()
    network: dict = ({"handover_trigger": "a3", "handover_hysteresis_db": args.hysteresis,
                      "time_to_trigger_s": args.ttt} if args.a3 else {})
    for item in args.net:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = network
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    sizes = [int(s) for s in args.vehicles.split(",")]
    reference = None
    print(f"profile {args.profile}, {args.upload_bytes} B uploads, {args.pause:g} s pauses, "
          f"handover {'A3 %g dB / %g s' % (args.hysteresis, args.ttt) if args.a3 else 'at coverage exit'}"
          + (f", network {network}" if args.net else ""))
    print(f"{'on road':>8} {'vehicles':>9} {'uploads':>8} {'failed':>7} {'GB up':>7} {'handovers':>9} "
          f"{'wall s':>8} {'cpu s':>8} {'sim s / wall s':>15} {'cpu us / upload':>16}"
          + ("" if args.no_floor else f" | {'floor: uploads':>14} {'sim s / wall s':>15} {'cpu us / upload':>16}"))
    for n in sizes:
        r = simulate(n, args.duration, upload_bytes=args.upload_bytes, pause_s=args.pause, profile=args.profile,
                     network=network)
        line = (f"{n:>8} {r['vehicles_total']:>9} {r['done']:>8} {r['failed']:>7} {r['bytes'] / 1e9:>7.2f} "
                f"{r['handovers']:>9} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} {r['rtf']:>15.0f} "
                f"{1e6 * r['cpu_s'] / max(r['done'] + r['failed'], 1):>16.0f}")
        floor = None
        if not args.no_floor:  # the same driver and fleet over a network that does no work
            floor = simulate(n, args.duration, upload_bytes=args.upload_bytes, pause_s=args.pause,
                             profile=args.profile, ideal_s=r["busy_s"] / max(r["done"] + r["failed"], 1))
            line += (f" | {floor['done']:>14} {floor['rtf']:>15.0f} "
                     f"{1e6 * floor['cpu_s'] / max(floor['done'], 1):>16.1f}")
        print(line, flush=True)
        if n == 1000 or reference is None:
            reference = (n, r["rtf"], floor)
    n, rtf, floor = reference
    print(f"real-time factor: {rtf:.0f} (at {n} vehicles, 20 RSUs, {args.duration:.0f} s simulated)")
    if floor is not None:
        print(f"floor real-time factor: {floor['rtf']:.0f} (the same driver over IdealNetwork, which does no work)")


if __name__ == "__main__":
    main()
