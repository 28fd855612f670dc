"""The fluid network against a packet-level simulator (ns-3 3.44) and against Bianchi's model.

The same geometry and transfers run in ns-3 (`ns3_cases`: IEEE 802.11p, fixed MCS, TCP bulk uploads to one
RSU, completion at the sink) and in vfedsim's fluid network (`vfedsim.simulate_transfers`, a ``static`` road),
with the channel profile ``channels/ieee80211p.yaml`` (median LOS path loss, no shadowing, no fading, one fixed
MCS: the ns-3 set-up). Three steps, each a subcommand:

    # 1. ns-3 (pip install 'vfedsim[ns3]'; about 10 minutes on 2 cores): every case of the grid -> a CSV
    /work/bin/heavy python benchmarks/validate_ns3.py ns3 --out benchmarks/data/ns3_80211p.csv
    # 2. the same cases in vfedsim; the error tables, calibration and hold-out, and Bianchi vs ns-3's UDP.
    #    --fit prints the MAC efficiencies and SNR offset fitted on the calibration part (the profile holds them)
    python benchmarks/validate_ns3.py compare [--fit]
    # 3. wall time of ns-3 and of vfedsim on the same few cases, side by side
    /work/bin/timed python benchmarks/validate_ns3.py timing

Calibration part: the static 1 MB cases (every N, both MCS) fit the MAC efficiency of 6 and 12 Mbit/s, and
the drive-bys at 20 and 30 m/s fit ``mcs_snr_offset_db``. Hold-out: the static 100 kB and 5 MB cases, the
drive-bys at 25 and 35 m/s, and the 1 MB cases at 3, 9, 18 and 27 Mbit/s, whose efficiency is interpolated
(the airtime model 1/eta - 1 = alpha R + beta through the two fitted MCS), not fitted.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ns3_cases import (  # noqa: E402
    DRIVEBY_START_M, LANE_Y_M, RSU_HEIGHT_M, UDP_PAYLOAD_BYTES, Case, grid, run_cases, static_positions,
)

HERE = Path(__file__).resolve().parent
DEFAULT_CSV = HERE / "data" / "ns3_80211p.csv"
PROFILE = "ieee80211p"
TCP_SEGMENT_BYTES = 1448
CALIBRATION_PAYLOAD = 1_000_000
CALIBRATION_SPEEDS = (20.0, 30.0)
FITTED_RATES = (6e6, 12e6)
DRIVEBY_BYTES = 10 ** 12  # [B] "without end": more than any drive-by carries


def comparison_profile(rate_bps: float, **overrides) -> dict:
    """The ``world.channel`` mapping of a case: the ieee80211p profile with the median LOS path loss, no
    shadowing or fading, and ``rate_bps``'s MCS fixed (its minimum SNR is the coverage edge)."""
    from vfedsim.scenario import load_channel_profile
    from vfedsim.world.channel import MCS_TABLES

    rates = MCS_TABLES["ieee80211p"].rates_bps
    mcs = rates.index(rate_bps)
    base = {"profile": PROFILE, "los_model": "none", "shadowing_std_db": 0.0, "fading": {"model": "none"},
            "mcs_fixed": mcs, **overrides}
    offset = load_channel_profile(PROFILE, {k: v for k, v in base.items() if k != "profile"}).mcs_snr_offset_db
    base["min_snr_db"] = MCS_TABLES["ieee80211p"].min_snr_db[mcs] + offset
    return base


def ns3_profile():
    """The profile ns-3 is configured from (powers, gains, noise figure, carrier, path loss)."""
    from vfedsim.scenario import load_channel_profile

    return load_channel_profile(PROFILE, {"los_model": "none", "shadowing_std_db": 0.0})


def edge_m() -> dict[float, float]:
    """[m] per MCS: where the median SNR is 0 dB, well beyond where ns-3's link is lost (drive-bys stop there)."""
    from vfedsim.world.channel import coverage_radius_m

    radius = coverage_radius_m(ns3_profile().model_copy(update={"min_snr_db": 0.0}), height_m=RSU_HEIGHT_M)
    return {r: round(radius, 1) for r in (6e6, 12e6)}


# ------------------------------------------------------------------------------------------------ ns-3
def cmd_ns3(args: argparse.Namespace) -> int:
    cases = grid(edge_m=edge_m())
    if args.only:
        cases = [c for c in cases if args.only in c.case]
    print(f"{len(cases)} ns-3 cases", flush=True)
    t0 = time.perf_counter()
    rows = run_cases(cases, ns3_profile(), seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    tmp.replace(out)
    print(f"wrote {out} ({len(rows)} rows) in {time.perf_counter() - t0:.0f} s")
    return 0


# ----------------------------------------------------------------------------------------------- fluid
def case_from_rows(rows: pd.DataFrame) -> Case:
    first = rows.iloc[0]
    return Case(case=str(first["case"]), kind=str(first["kind"]), rate_bps=float(first["rate_bps"]),
                x_m=tuple(float(x) for x in rows["x_m"]), payload=int(first["payload"]),
                speed_mps=float(first["speed_mps"]), stop_s=float(first["stop_s"]))


def fluid_case(case: Case, channel: dict) -> pd.DataFrame:
    """The case in vfedsim: a static road (drive-bys: constant velocities), one RSU at the origin."""
    import vfedsim
    from vfedsim.scenario import parse_scenario

    duration = case.stop_s if case.stop_s > 0 else 3600.0
    road = {"name": "static", "positions_m": [[x, LANE_Y_M] for x in case.x_m]}
    if case.speed_mps:
        road["velocities_mps"] = [[case.speed_mps, 0.0] for _ in case.x_m]
    scenario = parse_scenario({"duration_s": duration, "world": {
        "road": road, "rsus": {"positions_m": [[0.0, 0.0]], "height_m": RSU_HEIGHT_M}, "channel": channel}})
    nbytes = case.payload if case.payload > 0 else DRIVEBY_BYTES
    transfers = pd.DataFrame({"vehicle": range(case.n), "start_s": 0.0, "direction": "up", "bytes": nbytes})
    return vfedsim.simulate_transfers(scenario, transfers)


def compare_rows(ns3: pd.DataFrame, channels: dict[float, dict]) -> pd.DataFrame:
    """One row per transfer of the static and drive-by cases: ns-3's and the fluid model's completion time
    (static) or bytes delivered (drive-by), and the relative error of the fluid model."""
    out = []
    for _, rows in ns3[ns3["kind"].isin(["static", "driveby"])].groupby("case", sort=False):
        case = case_from_rows(rows)
        fluid = fluid_case(case, channels[case.rate_bps])
        for (_, r), (_, f) in zip(rows.iterrows(), fluid.iterrows()):
            if case.kind == "static":
                ref, got = float(r["end_s"]), float(f["end_s"]) if f["ok"] else math.nan
            else:
                ref, got = float(r["bytes_rx"]), float(f["bytes_done"])
            out.append({"case": case.case, "kind": case.kind, "rate_mbps": case.rate_bps / 1e6, "n": case.n,
                        "payload": case.payload, "speed_mps": case.speed_mps, "vehicle": int(r["vehicle"]),
                        "ns3": ref, "fluid": got, "rel_err": (got - ref) / ref, "part": part_of(case)})
    return pd.DataFrame(out)


def part_of(case: Case) -> str:
    if case.kind == "static":
        fitted = case.payload == CALIBRATION_PAYLOAD and case.rate_bps in FITTED_RATES
        return "calibration" if fitted else "hold-out"
    return "calibration" if case.speed_mps in CALIBRATION_SPEEDS else "hold-out"


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Median, 90th percentile and maximum of |relative error| per part and kind."""
    t = table.assign(abs_err=table["rel_err"].abs())
    return t.groupby(["part", "kind"])["abs_err"].agg(
        transfers="size", median=lambda e: e.median(), p90=lambda e: e.quantile(0.9), max="max")


def fit_efficiency(table: pd.DataFrame, eff: np.ndarray) -> dict[float, float]:
    """Per fitted MCS: the efficiency that zeroes the median log ratio fluid / ns-3 over the calibration static
    transfers (a static transfer's fluid time is inversely proportional to the efficiency)."""
    from vfedsim.world.channel import MCS_TABLES

    rates = MCS_TABLES["ieee80211p"].rates_bps
    cal = table[(table["part"] == "calibration") & (table["kind"] == "static")]
    out = {}
    for rate in FITTED_RATES:
        sub = cal[cal["rate_mbps"] == rate / 1e6]
        out[rate] = float(eff[rates.index(rate)] * np.exp(np.median(np.log(sub["fluid"] / sub["ns3"]))))
    return out


def interpolate_efficiency(fitted: dict[float, float]) -> np.ndarray:
    """Efficiency of every ieee80211p MCS from the two fitted: 1/eta - 1 = alpha R + beta, the airtime of a
    fixed time overhead (alpha = T / (8 P)) and of header bytes (beta = H / P) per P-byte segment."""
    from vfedsim.world.channel import MCS_TABLES

    (r1, e1), (r2, e2) = sorted(fitted.items())
    alpha = ((1 / e2 - 1) - (1 / e1 - 1)) / (r2 - r1)
    beta = (1 / e1 - 1) - alpha * r1
    rates = np.asarray(MCS_TABLES["ieee80211p"].rates_bps)
    print(f"airtime model: fixed {alpha * 8 * TCP_SEGMENT_BYTES * 1e6:.0f} us and {beta * TCP_SEGMENT_BYTES:.0f} B "
          f"of headers per {TCP_SEGMENT_BYTES}-byte segment")
    return 1.0 / (1.0 + alpha * rates + beta)


def bianchi_table(ns3: pd.DataFrame) -> pd.DataFrame:
    """ns-3's UDP saturation throughput beside Bianchi's (DIFS and EIFS variants), 802.11p timing."""
    from vfedsim.world.mac import OFDM_10MHZ, bianchi_throughput_bps

    udp = ns3[ns3["kind"] == "udp"]
    out = []
    for case, rows in udp.groupby("case", sort=False):
        rate, n = float(rows["rate_bps"].iloc[0]), int(rows["n"].iloc[0])
        measured = rows["bytes_rx"].sum() * 8.0 / (float(rows["stop_s"].iloc[0]) - 1.0)
        kw = dict(payload_bytes=UDP_PAYLOAD_BYTES, rate_bps=rate, timing=OFDM_10MHZ, overhead_bytes=36 + 28)
        difs = float(bianchi_throughput_bps(n, **kw))
        eifs = float(bianchi_throughput_bps(n, collision="eifs", lowest_rate_bps=3e6, **kw))
        out.append({"case": case, "rate_mbps": rate / 1e6, "n": n, "ns3_mbps": measured / 1e6,
                    "bianchi_difs_mbps": difs / 1e6, "bianchi_eifs_mbps": eifs / 1e6,
                    "err_difs": (difs - measured) / measured, "err_eifs": (eifs - measured) / measured})
    return pd.DataFrame(out)


def cmd_compare(args: argparse.Namespace) -> int:
    from vfedsim.scenario import load_channel_profile

    ns3 = pd.read_csv(args.ns3)
    profile = load_channel_profile(PROFILE)
    eff = np.asarray(profile.mac_efficiency, dtype=np.float64)
    channels = {r: comparison_profile(r) for r in ns3["rate_bps"].unique()}
    table = compare_rows(ns3, channels)
    if args.fit:
        fitted = fit_efficiency(table, eff)
        eff = interpolate_efficiency(fitted)
        offsets = np.arange(args.offset_range[0], args.offset_range[1] + 1e-9, 0.25)
        best = None
        drive = ns3[(ns3["kind"] == "driveby") & ns3["speed_mps"].isin(CALIBRATION_SPEEDS)]
        for off in offsets:
            ch = {r: comparison_profile(r, mac_efficiency=[float(e) for e in eff], mcs_snr_offset_db=float(off))
                  for r in drive["rate_bps"].unique()}
            err = compare_rows(drive, ch)["rel_err"].abs().median()
            if best is None or err < best[1]:
                best = (float(off), float(err))
        print(f"fitted mac_efficiency: [{', '.join(f'{e:.3f}' for e in eff)}]")
        print(f"fitted mcs_snr_offset_db: {best[0]:g} (median drive-by error {best[1]:.3f} on the calibration part)")
        channels = {r: comparison_profile(r, mac_efficiency=[round(float(e), 3) for e in eff],
                                          mcs_snr_offset_db=best[0]) for r in ns3["rate_bps"].unique()}
        table = compare_rows(ns3, channels)
    pd.set_option("display.width", 160)
    pd.set_option("display.max_rows", 400)
    if args.verbose:
        per_case = table.groupby(["part", "case"], sort=False).agg(
            transfers=("rel_err", "size"), ns3_mean=("ns3", "mean"), fluid_mean=("fluid", "mean"),
            err_median=("rel_err", "median"), err_min=("rel_err", "min"), err_max=("rel_err", "max"))
        print(per_case.to_string(float_format=lambda v: f"{v:.4g}"))
    print("\n|relative error| of the fluid model against ns-3 (static: completion time; drive-by: bytes delivered)")
    print(summarise(table).to_string(float_format=lambda v: f"{v:.3f}"))
    bianchi = bianchi_table(ns3)
    if not bianchi.empty:
        print("\nUDP saturation: ns-3 against Bianchi's model (802.11p OFDM 10 MHz timing), aggregate throughput")
        print(bianchi.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.table:
        table.to_csv(args.table, index=False)
    return 0


# ------------------------------------------------------------------------------------------------ timing
TIMING_CASES = ("static-6M-n1-1000k", "static-6M-n5-1000k", "static-6M-n20-1000k", "static-12M-n10-5000k",
                "driveby-12M-25mps")


def cmd_timing(args: argparse.Namespace) -> int:
    """ns-3's and vfedsim's wall time on the same cases, side by side (run it under /work/bin/timed)."""
    cases = {c.case: c for c in grid(edge_m=edge_m())}
    t0 = time.perf_counter()
    from ns3_cases import _ns

    _ns()
    print(f"ns-3 import and C++ callback compilation: {time.perf_counter() - t0:.1f} s (once per process)")
    print(f"{'case':<24} {'ns-3 [s]':>9} {'vfedsim [s]':>12} {'ratio':>8}")
    fluid_case(cases[TIMING_CASES[0]], comparison_profile(6e6))  # warm the vfedsim imports
    total_ns3 = total_fluid = 0.0
    for name in TIMING_CASES:
        case = cases[name]
        t0 = time.perf_counter()
        run_cases([case], ns3_profile(), progress=False)
        ns3_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            fluid_case(case, comparison_profile(case.rate_bps))
        fluid_s = (time.perf_counter() - t0) / args.repeat
        total_ns3, total_fluid = total_ns3 + ns3_s, total_fluid + fluid_s
        print(f"{name:<24} {ns3_s:>9.3f} {fluid_s:>12.4f} {ns3_s / fluid_s:>7.0f}x")
    print(f"{'total':<24} {total_ns3:>9.3f} {total_fluid:>12.4f} {total_ns3 / total_fluid:>7.0f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ns3", help="run the case grid in ns-3 and write its CSV")
    p.add_argument("--out", default=str(DEFAULT_CSV))
    p.add_argument("--only", help="run only the cases whose name contains this")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(handler=cmd_ns3)
    p = sub.add_parser("compare", help="the same cases in vfedsim: error tables and Bianchi vs ns-3")
    p.add_argument("--ns3", default=str(DEFAULT_CSV))
    p.add_argument("--fit", action="store_true", help="fit the efficiencies and SNR offset on the calibration part")
    p.add_argument("--offset-range", nargs=2, type=float, default=(-11.0, -4.0), metavar=("LO", "HI"))
    p.add_argument("--table", help="write the per-transfer comparison to this CSV")
    p.add_argument("--verbose", "-v", action="store_true", help="print one line per case")
    p.set_defaults(handler=cmd_compare)
    p = sub.add_parser("timing", help="wall time of ns-3 and vfedsim on the same cases")
    p.add_argument("--repeat", type=int, default=5, help="vfedsim runs per case (their mean is printed)")
    p.set_defaults(handler=cmd_timing)
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
