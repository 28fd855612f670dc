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

Calibration part: the static 1 MB cases (every N) fit the MAC efficiency of each MCS they use (3, 6, 9, 12, 18
and 27 Mbit/s; 4.5 and 24 Mbit/s are interpolated), and the drive-bys at 20 and 30 m/s fit
``mcs_snr_offset_db`` of 6 and 12 Mbit/s (`spread_offsets` gives the other MCS theirs). Hold-out: the static 100 kB and
5 MB cases; the drive-bys at 25 and 35 m/s, one that starts 1000 m before the RSU and one of two vehicles.
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
DRIVEBY_BYTES = 10 ** 12  # [B] "without end": more than any drive-by carries


def comparison_profile(rate_bps: float, **overrides) -> dict:
    """The ``world.channel`` mapping of a case: the ieee80211p profile with the median LOS path loss, no
    shadowing or fading, and ``rate_bps``'s MCS fixed (its minimum SNR is the coverage edge)."""
    from vfedsim.scenario import load_channel_profile
    from vfedsim.world.channel import MCS_TABLES, profile_mcs_table

    mcs = MCS_TABLES["ieee80211p"].rates_bps.index(rate_bps)
    base = {"profile": PROFILE, "los_model": "none", "shadowing_std_db": 0.0, "fading": {"model": "none"},
            "mcs_fixed": mcs, **overrides}
    profile = load_channel_profile(PROFILE, {k: v for k, v in base.items() if k != "profile"})
    base["min_snr_db"] = profile_mcs_table(profile).min_snr_db[mcs]
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
        cases = [c for c in cases if any(part in c.case for part in args.only.split(","))]
    print(f"{len(cases)} ns-3 cases", flush=True)
    t0 = time.perf_counter()
    rows = run_cases(cases, ns3_profile(), seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    table = pd.DataFrame(rows)
    if args.merge and out.is_file():  # replace the re-run cases' rows, keep the others
        old = pd.read_csv(out)
        table = pd.concat([old[~old["case"].isin(table["case"])], table], ignore_index=True)
        order = {c.case: k for k, c in enumerate(grid(edge_m=edge_m()))}
        table = table.sort_values(["case", "vehicle"], key=lambda s: s.map(order) if s.name == "case" else s,
                                  kind="stable")
    table.to_csv(tmp, index=False)
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
        return "calibration" if case.payload == CALIBRATION_PAYLOAD else "hold-out"
    single = case.n == 1 and case.x_m[0] == DRIVEBY_START_M
    return "calibration" if single and case.speed_mps in CALIBRATION_SPEEDS else "hold-out"


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Median, 90th percentile and maximum of |relative error| per part and kind, and per payload."""
    t = table.assign(abs_err=table["rel_err"].abs(),
                     what=np.where(table["kind"] == "static", "static " + (table["payload"] // 1000).astype(str) + " kB",
                                   "drive-by"))
    agg = dict(transfers="size", median=lambda e: e.median(), p90=lambda e: e.quantile(0.9), max="max")
    static = t[t["kind"] == "static"].groupby("part")["abs_err"].agg(**agg)
    static.index = pd.MultiIndex.from_tuples([(p, "static (all)") for p in static.index])
    by_what = t.groupby(["part", "what"])["abs_err"].agg(**agg)
    return pd.concat([static, by_what]).sort_index()


def case_aggregates(table: pd.DataFrame) -> pd.DataFrame:
    """Per static case with several vehicles: the error of the mean completion time and of the last one."""
    multi = table[(table["kind"] == "static") & (table["n"] > 1)]
    g = multi.groupby(["part", "case", "payload"], sort=False)
    out = pd.DataFrame({"mean_err": g["fluid"].mean() / g["ns3"].mean() - 1,
                        "last_err": g["fluid"].max() / g["ns3"].max() - 1}).reset_index()
    return out.groupby(["part", "payload"]).agg(
        cases=("case", "size"), mean_err_median=("mean_err", lambda e: e.abs().median()),
        mean_err_max=("mean_err", lambda e: e.abs().max()), last_err_median=("last_err", lambda e: e.abs().median()),
        last_err_max=("last_err", lambda e: e.abs().max()))


def fit_efficiency(table: pd.DataFrame, eff: np.ndarray) -> dict[float, float]:
    """Per MCS with calibration cases: the efficiency that zeroes the median log ratio fluid / ns-3 of its
    calibration static transfers (a static transfer's fluid time is inversely proportional to it)."""
    from vfedsim.world.channel import MCS_TABLES

    rates = MCS_TABLES["ieee80211p"].rates_bps
    cal = table[(table["part"] == "calibration") & (table["kind"] == "static")]
    out = {}
    for rate_mbps, sub in cal.groupby("rate_mbps"):
        rate = rate_mbps * 1e6
        out[rate] = float(eff[rates.index(rate)] * np.exp(np.median(np.log(sub["fluid"] / sub["ns3"]))))
    return out


def interpolate_efficiency(fitted: dict[float, float]) -> np.ndarray:
    """Efficiency of every ieee80211p MCS: the fitted ones, and between them 1/eta - 1 (the overhead's airtime
    per payload airtime) interpolated linearly in the rate."""
    from vfedsim.world.channel import MCS_TABLES

    r = np.array(sorted(fitted))
    y = np.array([1.0 / fitted[k] - 1.0 for k in r])
    rates = np.asarray(MCS_TABLES["ieee80211p"].rates_bps)
    return 1.0 / (1.0 + np.interp(rates, r, y))


def fit_offsets(ns3: pd.DataFrame, eff: np.ndarray, grid_db: np.ndarray) -> np.ndarray:
    """``mcs_snr_offset_db`` per MCS: for each MCS with calibration drive-bys, the offset (on ``grid_db``) whose
    median |error| of bytes delivered is smallest; the other MCS from `spread_offsets`."""
    from vfedsim.world.channel import MCS_TABLES

    rates = MCS_TABLES["ieee80211p"].rates_bps
    drive = ns3[(ns3["kind"] == "driveby") & (ns3["n"] == 1) & (ns3["x_m"] == DRIVEBY_START_M)
                & ns3["speed_mps"].isin(CALIBRATION_SPEEDS)]
    fitted = {}
    for rate, sub in drive.groupby("rate_bps"):
        errors = []
        for off in grid_db:
            ch = {rate: comparison_profile(rate, mac_efficiency=[float(e) for e in eff],
                                           mcs_snr_offset_db=float(off))}
            errors.append(compare_rows(sub, ch)["rel_err"].abs().median())
        fitted[rates.index(rate)] = float(grid_db[int(np.argmin(errors))])
        print(f"  {rate / 1e6:g} Mbit/s: offset {fitted[rates.index(rate)]:+g} dB, median drive-by error "
              f"{min(errors):.3f} on the calibration part")
    return spread_offsets(fitted)


def spread_offsets(fitted: dict[int, float]) -> np.ndarray:
    """Offsets of every MCS from those fitted (by MCS index): between two fitted MCS the shifted minimum SNR
    is interpolated linearly in the rate (so link adaptation's thresholds stay in rate order); beyond them,
    the nearest fitted MCS's offset."""
    from vfedsim.world.channel import MCS_TABLES

    table = MCS_TABLES["ieee80211p"]
    rates, base = np.asarray(table.rates_bps), np.asarray(table.min_snr_db)
    k = np.array(sorted(fitted))
    off = np.array([fitted[i] for i in k])
    shifted = np.interp(rates, rates[k], base[k] + off)
    offsets = shifted - base
    offsets[rates < rates[k[0]]] = off[0]
    offsets[rates > rates[k[-1]]] = off[-1]
    return np.round(offsets, 3)


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
        eff = interpolate_efficiency(fit_efficiency(table, eff))
        print(f"fitted mac_efficiency: [{', '.join(f'{e:.3f}' for e in eff)}]")
        eff = np.round(eff, 3)
        offsets = fit_offsets(ns3, eff, np.arange(args.offset_range[0], args.offset_range[1] + 1e-9, 0.25))
        print(f"fitted mcs_snr_offset_db: [{', '.join(f'{o:g}' for o in offsets)}]; min_snr_db (3 Mbit/s): "
              f"{9.0 + offsets[0]:g}")
        channels = {r: comparison_profile(r, mac_efficiency=[float(e) for e in eff],
                                          mcs_snr_offset_db=[float(o) for o in offsets])
                    for r in ns3["rate_bps"].unique()}
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
    print("\nstatic cases with several vehicles: |relative error| of their mean and of their last completion time")
    print(case_aggregates(table).to_string(float_format=lambda v: f"{v:.3f}"))
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
    warm = Case(case="warm-up", kind="static", rate_bps=6e6, x_m=static_positions(2), payload=10_000)
    run_cases([warm], ns3_profile(), progress=False)  # ns-3's first run compiles templates: not counted
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
    p.add_argument("--only", help="run only the cases whose name contains one of these (comma-separated)")
    p.add_argument("--merge", action="store_true", help="replace those cases' rows in --out, keep the others")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(handler=cmd_ns3)
    p = sub.add_parser("compare", help="the same cases in vfedsim: error tables and Bianchi vs ns-3")
    p.add_argument("--ns3", default=str(DEFAULT_CSV))
    p.add_argument("--fit", action="store_true", help="fit the efficiencies and SNR offset on the calibration part")
    p.add_argument("--offset-range", nargs=2, type=float, default=(-10.0, 0.0), metavar=("LO", "HI"))
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
