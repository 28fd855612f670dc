"""Do two implementations of the fluid network give the same transfers? Run both, record every transfer.

The driver is the stress case of `benchmarks/network.py` (vehicles on a highway with 20 RSUs every 1 km,
each uploading ``--upload-bytes`` again ``--pause`` seconds after its last upload ended, waiting for
coverage when it has none), over one network configuration at a time. For each configuration it runs the
driver once with this checkout's `vfedsim` and once with the `vfedsim` of ``--ref`` (another checkout or
an unpacked ``git archive`` of it), each in its own process, records every `TransferResult` in completion
order and every ``on_event`` call, and compares them: the same number of transfers, the same outcomes,
causes, RSUs, handover and hop counts, and the largest differences of the end times [s], carried and
resent bytes; the same network events.

    python benchmarks/network_compare.py --ref /tmp/main-tree [--vehicles 300] [--duration 600] [--only a3]

The configurations (`CONFIGS`) are the six the earlier speed work was checked with, plus one on the urban
grid (turns, LOS states and fading, A3, handover interruption, downloads with broadcast).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS: dict[str, dict] = {
    "log-distance": {"profile": "log-distance", "network": {}},
    "3gpp-highway": {"profile": "3gpp-highway", "network": {}},
    "a3": {"profile": "3gpp-highway", "network": {"handover_trigger": "a3", "handover_hysteresis_db": 3.0,
                                                  "time_to_trigger_s": 0.32}},
    "nr-v2x-chunks": {"profile": "nr-v2x-highway", "network": {"chunk_bytes": 1500}},
    "backhaul": {"profile": "log-distance", "network": {"backhaul_capacity_bps": 2e7, "backhaul_latency_s": 0.02}},
    "v2v": {"profile": "log-distance", "network": {"v2v": {"enabled": True, "max_hops": 2, "range_m": 300.0}}},
    "urban-mixed": {"profile": "urban-grid", "road": "urban", "downloads": True,
                    "network": {"handover_trigger": "a3", "handover_interruption_s": 0.05,
                                "downlink_mode": "broadcast"}},
}


def record(name: str, n_vehicles: int, duration_s: float, upload_bytes: int, pause_s: float) -> dict:
    """Run configuration ``name`` with the `vfedsim` on ``sys.path``; its transfers and events."""
    import numpy as np
    import simpy

    from vfedsim.engine import build_mobility
    from vfedsim.scenario import parse_scenario
    from vfedsim.world.radio import Radio
    try:
        from vfedsim.network import FluidNetwork
    except ImportError:  # before the network had its own package
        from vfedsim.strategies.fluid import FluidNetwork

    cfg = CONFIGS[name]
    if cfg.get("road") == "urban":
        world = {"road": {"name": "urban-grid", "rows": 4, "cols": 6},
                 "traffic": {"initial_vehicles": n_vehicles, "arrival_rate_per_s": n_vehicles / 200.0},
                 "rsus": {"every_nth_intersection": 1}}
    else:
        length, speed = 20_000.0, 100 / 3.6
        world = {"road": {"length_m": length, "lanes_per_direction": 3},
                 "traffic": {"initial_vehicles": n_vehicles, "arrival_rate_per_s": n_vehicles * speed / length,
                             "speed": {"mean_kmh": 100, "std_kmh": 15, "min_kmh": 60, "max_kmh": 140},
                             "trip_length": {"min_m": length, "max_m": 2 * length}},
                 "rsus": {"spacing_m": 1000.0, "first_at_m": 500.0}}
    world["channel"] = {"profile": cfg["profile"], "bandwidth_hz": 10e6}
    world["network"] = cfg["network"]
    scenario = parse_scenario({"duration_s": duration_s, "world": world})
    mobility = build_mobility(scenario)
    w = scenario.world
    radio = Radio(profile=w.channel, rsu_xy=mobility.rsu_sites(w.rsus), rsu_height_m=w.rsus.height_m,
                  seed=scenario.seed)
    env = simpy.Environment()
    events: list = []

    def on_event(kind: str, **kw: object) -> None:
        events.append([kind, kw["time_s"], kw["vehicle"], kw["rsu"], kw.get("nbytes"), kw.get("cause")])

    net = FluidNetwork(env, mobility=mobility, radio=radio, config=w.network, uplink_hz=w.channel.bandwidth_hz,
                       downlink_hz=w.channel.downlink_hz, on_event=on_event)
    trips = mobility.trips
    out: list = []

    def client(v: int):
        yield env.timeout(float(trips.t_enter_s[v]))
        k = 0
        while env.now < min(float(trips.t_exit_s[v]), duration_s):
            wait = net.time_to_coverage_s(v)
            if not np.isfinite(wait):
                return
            if wait > 0:
                yield env.timeout(wait)
                continue
            down = cfg.get("downloads") and k % 2 == 0
            # downloads start on a 5 s grid, so that several are asked of one RSU at one instant (broadcast)
            if down and env.now % 5.0:
                yield env.timeout(5.0 - env.now % 5.0)
                continue
            r = yield net.transfer(v, upload_bytes, "down" if down else "up")
            out.append([r.vehicle, r.direction, r.nbytes, r.ok, r.cause, r.start_s, r.end_s, r.bytes_done, r.rsu,
                        r.handovers, r.hops, r.bytes_resent])
            k += 1
            if pause_s > 0:
                yield env.timeout(pause_s)

    for v in range(trips.n):
        if trips.t_enter_s[v] < duration_s:
            env.process(client(v))
    t0 = time.process_time()
    env.run(until=duration_s)
    return {"transfers": out, "events": events, "cpu_s": time.process_time() - t0}


def compare(a: dict, b: dict) -> dict:
    """Differences between two recordings (`record`): counts, mismatched fields, largest deviations."""
    ta, tb = a["transfers"], b["transfers"]
    rep = {"transfers": (len(ta), len(tb)), "ok": sum(r[3] for r in tb),
           "failed": {c: sum(r[4] == c for r in tb) for c in sorted({r[4] for r in tb if r[4]})}}
    if len(ta) != len(tb):
        rep["first_difference"] = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x[:5] != y[:5]), None)
        return rep
    exact = [0, 1, 2, 3, 4, 8, 9, 10]  # vehicle, direction, nbytes, ok, cause, rsu, handovers, hops
    rep["mismatched"] = sum(any(x[k] != y[k] for k in exact) for x, y in zip(ta, tb))
    for k, label in ((5, "start_s"), (6, "end_s"), (7, "bytes_done"), (11, "bytes_resent")):
        rep[f"max_diff_{label}"] = max((abs(x[k] - y[k]) for x, y in zip(ta, tb)), default=0.0)
    rep["identical_bits"] = sum(x == y for x, y in zip(ta, tb))
    ea, eb = a["events"], b["events"]
    rep["events"] = (len(ea), len(eb))
    rep["events_mismatched"] = (sum(x[0] != y[0] or x[2:] != y[2:] or abs(x[1] - y[1]) > 1e-9
                                    for x, y in zip(ea, eb)) if len(ea) == len(eb) else None)
    return rep


def _run_in(tree: Path | None, name: str, args: argparse.Namespace, out: Path) -> None:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--record", name, "--vehicles", str(args.vehicles), "--duration",
           str(args.duration), "--upload-bytes", str(args.upload_bytes), "--pause", str(args.pause),
           "--out", str(out)]
    subprocess.run(cmd, check=True, env=env, cwd=tree or Path(__file__).resolve().parent.parent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", type=Path, help="the reference checkout (its vfedsim package is imported)")
    ap.add_argument("--vehicles", type=int, default=300)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--upload-bytes", type=int, default=200_000)
    ap.add_argument("--pause", type=float, default=5.0)
    ap.add_argument("--only", default=",".join(CONFIGS), help="comma-separated configuration names")
    ap.add_argument("--record", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.record:
        rec = record(args.record, args.vehicles, args.duration, args.upload_bytes, args.pause)
        args.out.write_text(json.dumps(rec))
        return
    if args.ref is None:
        ap.error("--ref is required")
    print(f"{args.vehicles} vehicles, {args.duration:g} s, {args.upload_bytes} B transfers, {args.pause:g} s pauses")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            ref, new = Path(tmp) / f"{name}.ref.json", Path(tmp) / f"{name}.new.json"
            _run_in(args.ref, name, args, ref)
            _run_in(None, name, args, new)
            a, b = json.loads(ref.read_text()), json.loads(new.read_text())
            rep = compare(a, b)
            rep["cpu_s"] = (round(a["cpu_s"], 2), round(b["cpu_s"], 2))
            print(f"{name}: {json.dumps(rep, default=lambda x: x if not isinstance(x, float) or math.isfinite(x) else str(x))}",
                  flush=True)


if __name__ == "__main__":
    main()
