"""How fast is the network, with mobility and selection, and no training? Two loads in one run.

(a) A realistic federated load (`federated`): vehicles on an urban grid of 10 x 20 intersections (433 m x
250 m blocks, TR 37.885 urban) with an RSU at every other intersection (50 RSUs) and the ``urban-grid``
channel profile; Poisson arrivals keep about N vehicles on the road. The real `SyncStrategy` selects 100
clients per round (``random``, the FedAvg default) with a 30 s deadline, each downloads and uploads 1 MB,
and its local job costs its FLOP time (2e11 FLOP: 10 s on the default embedded class, 1 s on the GPU
class) and nothing else: the learner is a stub (`StubLearner`), updates are empty. One simulated hour per
fleet size, each size in its own process (so that its peak memory is its own). Prints one line per size
and ``real-time factor: N`` for 10,000 vehicles; mobility set-up (route generation) is timed apart.

(b) The stress case (`stress`): a two-way highway with 20 RSUs every 1 km and about 1,000 vehicles, every
vehicle on the road uploading 200 kB again 5 s after its last upload ended (waiting for coverage when it
has none), one simulated hour; and beside it, in the same run, the same driver and fleet over `IdealNetwork`
(each transfer one timeout as long as the fluid run's mean upload), the floor that SimPy and the driver
cost on their own. Prints ``floor ratio: X`` = fluid wall time / floor wall time.

    python benchmarks/network.py [--vehicles 1000,10000,100000] [--duration 3600] [--stress 1000]
        [--selection random] [--profile log-distance] [--a3] [--net KEY=VALUE] [--skip-federated] [--skip-stress]

``--profile``, ``--a3`` and ``--net KEY=VALUE`` (any `vfedsim.scenario.NetworkConfig` field, dots for
nested ones: ``--net v2v.enabled=true``) configure the stress case's network. Report wall times from an
otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import simpy
import yaml

from vfedsim.engine import build_mobility
from vfedsim.fleet import build_fleet
from vfedsim.network import FluidNetwork, IdealNetwork
from vfedsim.policies import make_selector
from vfedsim.record import Recorder
from vfedsim.scenario import parse_scenario
from vfedsim.strategies import STRATEGIES
from vfedsim.strategies.base import StrategyContext
from vfedsim.world.mobility import HighwayMobility
from vfedsim.world.radio import Radio, rsu_positions


class StubLearner:
    """A learner with no model: ``payload`` bytes each way, ``flops`` per local job, empty updates."""

    def __init__(self, payload: int, flops: float) -> None:
        self.version, self.payload, self.flops = 0, payload, flops

    def payload_bytes(self) -> int:
        return self.payload

    def train_flops(self, n_samples: int) -> float:
        return self.flops

    def run_jobs(self, jobs: list) -> list:
        return [SimpleNamespace(vehicle=j.vehicle, num_samples=len(j.indices), train_loss=1.0,
                                base_version=j.base_version, state={}) for j in jobs]

    def evaluate(self, state: object = None) -> dict:
        return {}

    def global_state(self, version: int | None = None) -> dict:
        return {}

    def commit(self, state: object) -> int:
        self.version += 1
        return self.version

    def release(self, version: int) -> None:
        pass


class KeepGlobal:
    """Aggregation that costs nothing (the stub's updates are empty)."""

    def aggregate(self, global_state: dict, updates: list) -> dict:
        return {}


def federated(n_vehicles: int, duration_s: float, *, selection: str = "random", clients: int = 100,
              payload: int = 1_000_000, flops: float = 2e11, deadline_s: float = 30.0) -> dict:
    """Load (a) for about ``n_vehicles`` on the road (see the module docstring)."""
    world = {"road": {"name": "urban-grid", "rows": 10, "cols": 20},
             "traffic": {"initial_vehicles": n_vehicles, "arrival_rate_per_s": 0.0},
             "rsus": {"every_nth_intersection": 2}, "channel": {"profile": "urban-grid"}}
    # arrivals that keep about n on the road: n / the mean time a full route takes (from 300 routes)
    pilot = build_mobility(parse_scenario({"duration_s": 1.0, "world": {
        **world, "traffic": {"initial_vehicles": 300, "arrival_rate_per_s": 0.0}}}))
    length = np.array([sum(pilot.graph.edges[a, b]["length_m"] for a, b in zip(r, r[1:])) for r in pilot.routes])
    world["traffic"]["arrival_rate_per_s"] = n_vehicles / float(np.mean(length / pilot.trips.speed_mps))
    scenario = parse_scenario({"seed": 0, "duration_s": duration_s, "world": world, "strategy": {
        "name": "sync", "rounds": 1_000_000, "clients_per_round": clients, "deadline_s": deadline_s,
        "selection": {"name": selection}, "lazy": True}})
    t0 = time.perf_counter()
    mobility = build_mobility(scenario)
    setup_s = time.perf_counter() - t0
    env = simpy.Environment()
    recorder = Recorder(now=lambda: env.now)
    w = scenario.world
    radio = Radio(profile=w.channel, rsu_xy=mobility.rsu_sites(w.rsus), rsu_height_m=w.rsus.height_m,
                  seed=scenario.seed)
    net = FluidNetwork(env, mobility=mobility, radio=radio, config=w.network, uplink_hz=w.channel.bandwidth_hz,
                       downlink_hz=w.channel.downlink_hz, on_event=recorder.network_event)
    fleet = build_fleet(scenario, mobility.trips.n)
    shard = np.zeros(scenario.learning.data.samples_per_vehicle, dtype=np.int64)
    ctx = StrategyContext(env=env, scenario=scenario, network=net, mobility=mobility, fleet=fleet,
                          learner=StubLearner(payload, flops), selector=make_selector(selection, {}),
                          aggregator=KeepGlobal(), recorder=recorder, shards=lambda v: shard)
    env.process(STRATEGIES.get("sync")(ctx).run())
    t1, c1 = time.perf_counter(), time.process_time()
    env.run(until=duration_s)
    wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    kinds = [e[3] for e in recorder._events]
    trips = mobility.trips
    return {"vehicles": n_vehicles, "on_road": int(np.count_nonzero((trips.t_enter_s <= duration_s / 2)
                                                                     & (duration_s / 2 < trips.t_exit_s))),
            "generated": trips.n, "rsus": radio.n_rsus, "rounds": len(recorder._rounds) - 1,
            "transfers": kinds.count("download_end") + kinds.count("upload_end"), "arrived": kinds.count("arrived"),
            "setup_s": setup_s, "wall_s": wall, "cpu_s": cpu, "rtf": duration_s / wall,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def stress(n_vehicles: int, duration_s: float, *, rsus: int = 20, spacing_m: float = 1000.0,
           upload_bytes: int = 200_000, pause_s: float = 5.0, profile: str = "log-distance",
           network: dict | None = None, ideal_s: float | None = None) -> dict:
    """Load (b) over `FluidNetwork`, or over `IdealNetwork` with every transfer lasting ``ideal_s``."""
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


def _network_options(args: argparse.Namespace) -> dict:
    network: dict = ({"handover_trigger": "a3", "handover_hysteresis_db": args.hysteresis,
                      "time_to_trigger_s": args.ttt} if args.a3 else {})
    for item in args.net:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = network
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", default="1000,10000,100000", help="(a) fleet sizes on the road, comma-separated")
    ap.add_argument("--duration", type=float, default=3600.0, help="simulated seconds, both loads")
    ap.add_argument("--selection", default="random", help="(a) selection policy")
    ap.add_argument("--stress", type=int, default=1000, help="(b) vehicles on the highway")
    ap.add_argument("--profile", default="log-distance", help="(b) channel profile")
    ap.add_argument("--a3", action="store_true", help="(b) A3 handovers (default: at coverage exit)")
    ap.add_argument("--hysteresis", type=float, default=3.0, help="(b) A3 hysteresis [dB]")
    ap.add_argument("--ttt", type=float, default=0.32, help="(b) A3 time-to-trigger [s]")
    ap.add_argument("--net", action="append", default=[], metavar="KEY=VALUE",
                    help="(b) a world.network field (dots for nested ones: v2v.enabled=true); repeatable")
    ap.add_argument("--skip-federated", action="store_true")
    ap.add_argument("--skip-stress", action="store_true")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one size of (a), as a JSON line
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(federated(args.one, args.duration, selection=args.selection)))
        return
    if not args.skip_federated:
        print(f"(a) federated load: urban grid 10 x 20, 50 RSUs, urban-grid profile, sync, 100 clients/round "
              f"({args.selection}), 1 MB each way, 30 s deadline, {args.duration:g} s simulated")
        print(f"{'on road':>8} {'generated':>9} {'rounds':>6} {'transfers':>9} {'arrived':>7} {'set-up s':>8} "
              f"{'wall s':>7} {'cpu s':>7} {'sim s / wall s':>14} {'peak MB':>8}", flush=True)
        reference = None
        for n in (int(s) for s in args.vehicles.split(",")):
            out = subprocess.run([sys.executable, __file__, "--one", str(n), "--duration", str(args.duration),
                                  "--selection", args.selection], check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['on_road']:>8} {r['generated']:>9} {r['rounds']:>6} {r['transfers']:>9} {r['arrived']:>7} "
                  f"{r['setup_s']:>8.1f} {r['wall_s']:>7.2f} {r['cpu_s']:>7.2f} {r['rtf']:>14.0f} "
                  f"{r['peak_mb']:>8.0f}", flush=True)
            if n == 10_000 or reference is None:
                reference = r
        print(f"real-time factor: {reference['rtf']:.0f} (at {reference['vehicles']} vehicles)", flush=True)
    if not args.skip_stress:
        network = _network_options(args)
        print(f"(b) stress: highway, 20 RSUs, {args.stress} vehicles each uploading 200 kB every 5 s, profile "
              f"{args.profile}" + (f", network {network}" if network else "") + f", {args.duration:g} s simulated")
        r = stress(args.stress, args.duration, profile=args.profile, network=network)
        floor = stress(args.stress, args.duration, profile=args.profile,
                       ideal_s=r["busy_s"] / max(r["done"] + r["failed"], 1))
        for name, x in (("fluid", r), ("floor (IdealNetwork)", floor)):
            uploads = x["done"] + x["failed"]
            print(f"{name:>21}: {uploads} uploads ({x['failed']} failed), {x['handovers']} handovers, wall "
                  f"{x['wall_s']:.2f} s, cpu {x['cpu_s']:.2f} s, {x['rtf']:.0f} sim s / wall s, "
                  f"{1e6 * x['cpu_s'] / max(uploads, 1):.1f} cpu us / upload")
        print(f"floor ratio: {r['wall_s'] / floor['wall_s']:.1f} (fluid wall time / floor wall time)")


if __name__ == "__main__":
    main()
