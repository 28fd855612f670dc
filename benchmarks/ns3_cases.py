"""The ns-3 side of `validate_ns3.py`: the case grid, and each case run in ns-3 3.44 (``pip install 'vfedsim[ns3]'``).

Every case is one RSU (node 0) and N vehicles on one IEEE 802.11p channel (5.9 GHz, 10 MHz: channel 178,
ad hoc DCF, ``WIFI_STANDARD_80211p``: slot 13 us, SIFS 32 us, CW 15 / 1023), a fixed MCS for data and
control frames (``ConstantRateWifiManager``), tx power, antenna gains, noise figure and carrier from the vfedsim
channel profile, and its path loss: ``ThreeGppV2vHighwayPropagationLossModel`` with an always-LOS channel
condition and no shadowing (the profile's ``3gpp-highway-los``), or ``LogDistancePropagationLossModel``.

Kinds of case:

* ``static``: N vehicles standing at 50-400 m from the RSU, each uploading ``payload`` bytes over TCP
  (``BulkSendApplication``, ``MaxBytes``) from t = 0; the completion time of each is taken at the RSU's
  ``PacketSink`` when its last byte arrives.
* ``driveby``: one vehicle starts 300 m before the RSU (also: 1000 m; or two vehicles 30 m apart), inside
  its range, and drives past it at a constant speed, uploading without end; the bytes that reach the sink
  before the link is lost are the result.
* ``udp``: N vehicles on a circle of 100 m around the RSU (all at one distance: no capture) saturate the
  channel with UDP (1472-byte datagrams, offered load twice the PHY rate); the sink's throughput over
  [1, 6] s is compared with Bianchi's model.

Bytes are counted at the sink in a small C++ callback compiled through cppyy (not per packet in Python).

ns-3 defaults that would distort the comparison, and what is done with each:

* **Preamble detection threshold** (``ThresholdPreambleDetectionModel::MinimumRssi`` -82 dBm): it cuts the
  range off at a received power, whatever the MCS, where the SNR is still about 13 dB with this profile.
  Lowered to -101 dBm (the PHY's ``RxSensitivity``) so that, as in the fluid model, the SNR and the MCS decide
  the range (its 4 dB SNR threshold stays, below both MCS's range).
* **Wi-Fi queue maximum delay** (``WifiMacQueue::MaxDelay`` 500 ms): under contention it drops frames that
  waited too long, which TCP then retransmits after a time-out, scattering completion times. Raised to 100 s:
  the fluid model never drops bytes because they queued.
* **TCP connection retries** (SYN at 0, 3, 9, 21 s): they delay the first byte of a transfer that starts out
  of range, where the fluid model fails it at once (``no_coverage``). Every transfer here starts in range, so
  they never fire; a study whose transfers start out of range must expect that difference.
* **Co-located nodes** crash ns-3's propagation models: vehicles are at least 1 m apart (18 m and more here).
* **ARP** (not in the issue): 20 vehicles' ARP requests at t = 0 collide and a lost one stalls a TCP
  connection for seconds; the neighbour caches are filled before the run (``NeighborCacheHelper``).
* **TCP segment size** (536 B by default): 1448 B, the payload of a 1500-byte IP packet.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["Case", "grid", "run_case", "run_cases", "static_positions", "NS3_MODES", "RSU_HEIGHT_M", "LANE_Y_M", "DRIVEBY_START_M"]

RSU_HEIGHT_M = 5.0  # [m] RSU antenna above the vehicles' (vfedsim world.rsus.height_m)
LANE_Y_M = -6.0  # [m] vehicles' lateral offset from the RSU
DRIVEBY_START_M = -300.0  # [m] x where a drive-by starts (the RSU is at x = 0)
UDP_PAYLOAD_BYTES = 1472
NS3_MODES = {3e6: "OfdmRate3MbpsBW10MHz", 4.5e6: "OfdmRate4_5MbpsBW10MHz", 6e6: "OfdmRate6MbpsBW10MHz",
             9e6: "OfdmRate9MbpsBW10MHz", 12e6: "OfdmRate12MbpsBW10MHz", 18e6: "OfdmRate18MbpsBW10MHz",
             24e6: "OfdmRate24MbpsBW10MHz", 27e6: "OfdmRate27MbpsBW10MHz"}


@dataclass(frozen=True)
class Case:
    """One ns-3 / vfedsim case. Positions [m] relative to the RSU at x = 0; speeds [m/s]; bytes [B]."""

    case: str
    kind: str  # static | driveby | udp
    rate_bps: float  # the fixed MCS's data rate
    x_m: tuple[float, ...]  # each vehicle's x at t = 0
    payload: int = 0  # [B] per vehicle (0: unlimited)
    speed_mps: float = 0.0
    stop_s: float = 0.0  # [s] when ns-3 stops (0: when every transfer has completed, at most 900 s)
    y_m: tuple[float, ...] = ()  # each vehicle's y (default: all on the lane at LANE_Y_M)

    @property
    def n(self) -> int:
        return len(self.x_m)


def static_positions(n: int) -> tuple[float, ...]:
    """x [m] of n vehicles spread evenly over 50-400 m (one vehicle: 225 m)."""
    if n == 1:
        return (225.0,)
    return tuple(float(x) for x in np.round(np.linspace(50.0, 400.0, n), 3))


def grid(*, edge_m: dict[float, float]) -> list[Case]:
    """The case grid of issue 14: static N in {1, 2, 5, 10, 20} x payload {100 kB, 1 MB, 5 MB} x MCS {6, 12}
    Mbit/s; drive-bys at 20, 25, 30, 35 m/s per MCS (until ``edge_m[rate]`` [m] past the RSU, beyond the
    link's reach); UDP saturation with N in {1, 2, 5, 10, 20} per MCS; and static N in {1, 5} x 1 MB at 3, 9,
    18 and 27 Mbit/s (the MCS whose efficiency is interpolated, not fitted)."""
    cases = []
    for rate in (6e6, 12e6):
        mbps = int(rate / 1e6)
        for n in (1, 2, 5, 10, 20):
            for payload in (100_000, 1_000_000, 5_000_000):
                cases.append(Case(case=f"static-{mbps}M-n{n}-{payload // 1000}k", kind="static", rate_bps=rate,
                                  x_m=static_positions(n), payload=payload))
        for speed in (20.0, 25.0, 30.0, 35.0):
            cases.append(Case(case=f"driveby-{mbps}M-{speed:g}mps", kind="driveby", rate_bps=rate,
                              x_m=(DRIVEBY_START_M,), speed_mps=speed,
                              stop_s=(edge_m[rate] - DRIVEBY_START_M) / speed))
        # beyond the grid: a longer approach, and two vehicles 30 m apart sharing the RSU
        cases.append(Case(case=f"driveby-{mbps}M-25mps-from1000m", kind="driveby", rate_bps=rate, x_m=(-1000.0,),
                          speed_mps=25.0, stop_s=(edge_m[rate] + 1000.0) / 25.0))
        cases.append(Case(case=f"driveby-{mbps}M-30mps-2veh", kind="driveby", rate_bps=rate,
                          x_m=(DRIVEBY_START_M, DRIVEBY_START_M - 30.0), speed_mps=30.0,
                          stop_s=(edge_m[rate] - DRIVEBY_START_M + 30.0) / 30.0))
        for n in (1, 2, 5, 10, 20):
            x, y = circle_positions(n)
            cases.append(Case(case=f"udp-{mbps}M-n{n}", kind="udp", rate_bps=rate, x_m=x, y_m=y, stop_s=6.0))
    for rate in (3e6, 9e6, 18e6, 27e6):  # the other MCS, beyond the grid
        for n, payload in ((1, 1_000_000), (5, 1_000_000), (5, 5_000_000)):
            cases.append(Case(case=f"static-{rate / 1e6:g}M-n{n}-{payload // 1000}k", kind="static", rate_bps=rate,
                              x_m=static_positions(n), payload=payload))
    return cases


def circle_positions(n: int, radius_m: float = 100.0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(x, y) [m] of n vehicles evenly on a circle around the RSU: every one at the same distance, so that no
    frame survives a collision by being stronger (Bianchi's model has no capture)."""
    angle = 2.0 * np.pi * np.arange(n) / n
    return (tuple(float(v) for v in np.round(radius_m * np.cos(angle), 6)),
            tuple(float(v) for v in np.round(radius_m * np.sin(angle), 6)))


_CPP = r"""
#include <map>
namespace vfedsim_ns3 {
using namespace ns3;
// bytes received at the sink per source IPv4 address, and when each source's target was reached
struct Counter {
  std::map<uint32_t, uint64_t> bytes;
  std::map<uint32_t, uint64_t> target;
  std::map<uint32_t, double> done;
  std::map<uint32_t, double> last;
  double count_from = 0.0;  // [s] bytes before this time are not counted (UDP warm-up)
  void Reset() { bytes.clear(); target.clear(); done.clear(); last.clear(); count_from = 0.0; }
};
Counter counter;
void SinkRx(Ptr<const Packet> p, const Address& from) {
  double now = Simulator::Now().GetSeconds();
  if (now < counter.count_from) return;
  uint32_t ip = InetSocketAddress::ConvertFrom(from).GetIpv4().Get();
  uint64_t b = (counter.bytes[ip] += p->GetSize());
  counter.last[ip] = now;
  auto t = counter.target.find(ip);
  if (t != counter.target.end() && t->second > 0 && b >= t->second && counter.done.count(ip) == 0) {
    counter.done[ip] = now;
    bool all = true;  // stop as soon as every target is reached
    for (auto& kv : counter.target) { if (kv.second == 0 || counter.done.count(kv.first) == 0) { all = false; } }
    if (all) Simulator::Stop();
  }
}
Callback<void, Ptr<const Packet>, const Address&> SinkRxCallback() { return MakeCallback(&SinkRx); }
}
"""


def _ns():
    from ns import ns  # noqa: PLC0415 (about 15 s: imported only when ns-3 runs)

    if not hasattr(ns.cppyy.gbl, "vfedsim_ns3"):
        ns.cppyy.cppdef(_CPP)
    return ns


def _loss_model(ns, profile):
    """The ns-3 propagation loss model equal to the profile's LOS median path loss."""
    pl = profile.path_loss
    if pl.model == "3gpp-highway-los":
        cond = ns.CreateObject[ns.AlwaysLosChannelConditionModel]()
        loss = ns.CreateObject[ns.ThreeGppV2vHighwayPropagationLossModel]()
        loss.SetAttribute("Frequency", ns.DoubleValue(profile.carrier_hz))
        loss.SetAttribute("ShadowingEnabled", ns.BooleanValue(False))
        loss.SetChannelConditionModel(cond)
        return loss
    if pl.model == "log-distance":
        ref = pl.reference_loss_db
        if ref is None:  # free space at d0 (vfedsim.world.pathloss)
            ref = 20.0 * math.log10(4.0 * math.pi * pl.reference_distance_m * profile.carrier_hz / 299_792_458.0)
        loss = ns.CreateObject[ns.LogDistancePropagationLossModel]()
        loss.SetAttribute("Exponent", ns.DoubleValue(pl.exponent))
        loss.SetAttribute("ReferenceDistance", ns.DoubleValue(pl.reference_distance_m))
        loss.SetAttribute("ReferenceLoss", ns.DoubleValue(ref))
        return loss
    raise ValueError(f"path loss {pl.model!r} has no ns-3 counterpart here (3gpp-highway-los, log-distance)")


def _defaults(ns) -> None:
    ns.Config.SetDefault("ns3::TcpSocket::SegmentSize", ns.UintegerValue(1448))
    ns.Config.SetDefault("ns3::WifiMacQueue::MaxDelay", ns.TimeValue(ns.Seconds(100.0)))
    ns.Config.SetDefault("ns3::ThresholdPreambleDetectionModel::MinimumRssi", ns.DoubleValue(-101.0))


def run_case(case: Case, profile, *, seed: int = 1) -> list[dict]:
    """Run one case in ns-3; one row per vehicle: ``bytes_rx`` [B], ``end_s`` (completion at the sink, nan if
    not reached), ``last_rx_s``, ``wall_s`` (the ns-3 run's own wall time, set-up included)."""
    ns = _ns()
    cpp = ns.cppyy.gbl.vfedsim_ns3
    wall0 = time.perf_counter()
    _defaults(ns)
    ns.RngSeedManager.SetSeed(seed)
    ns.RngSeedManager.SetRun(1)
    cpp.counter.Reset()
    nodes = ns.NodeContainer()
    nodes.Create(case.n + 1)
    wifi = ns.WifiHelper()
    wifi.SetStandard(ns.WIFI_STANDARD_80211p)
    mode = NS3_MODES[case.rate_bps]
    wifi.SetRemoteStationManager("ns3::ConstantRateWifiManager", "DataMode", ns.StringValue(mode),
                                 "ControlMode", ns.StringValue(mode))
    phy = ns.YansWifiPhyHelper()
    phy.Set("ChannelSettings", ns.StringValue("{178, 10, BAND_5GHZ, 0}"))
    phy.Set("TxPowerStart", ns.DoubleValue(profile.vehicle_tx_power_dbm))
    phy.Set("TxPowerEnd", ns.DoubleValue(profile.vehicle_tx_power_dbm))
    phy.Set("TxGain", ns.DoubleValue(profile.antenna_gain_dbi))
    phy.Set("RxGain", ns.DoubleValue(profile.antenna_gain_dbi))
    phy.Set("RxNoiseFigure", ns.DoubleValue(profile.noise_figure_db))
    channel = ns.CreateObject[ns.YansWifiChannel]()
    channel.SetPropagationLossModel(_loss_model(ns, profile))
    channel.SetPropagationDelayModel(ns.CreateObject[ns.ConstantSpeedPropagationDelayModel]())
    phy.SetChannel(channel)
    mac = ns.WifiMacHelper()
    mac.SetType("ns3::AdhocWifiMac")
    devices = wifi.Install(phy, mac, nodes)
    # the RSU's tx power (its TCP ACKs) as the profile has it
    rsu_phy = devices.Get(0).GetObject[ns.WifiNetDevice]().GetPhy()
    rsu_phy.SetTxPowerStart(profile.rsu_tx_power_dbm)
    rsu_phy.SetTxPowerEnd(profile.rsu_tx_power_dbm)

    mobility = ns.MobilityHelper()
    mobility.SetMobilityModel("ns3::ConstantVelocityMobilityModel")
    mobility.Install(nodes)
    for i in range(case.n + 1):
        m = nodes.Get(i).GetObject[ns.MobilityModel]()
        if i == 0:
            m.SetPosition(ns.Vector(0.0, 0.0, RSU_HEIGHT_M))
        else:
            y = case.y_m[i - 1] if case.y_m else LANE_Y_M
            m.SetPosition(ns.Vector(case.x_m[i - 1], y, 0.0))
            nodes.Get(i).GetObject[ns.ConstantVelocityMobilityModel]().SetVelocity(ns.Vector(case.speed_mps, 0, 0))
    ns.InternetStackHelper().Install(nodes)
    addresses = ns.Ipv4AddressHelper()
    addresses.SetBase(ns.Ipv4Address("10.1.0.0"), ns.Ipv4Mask("255.255.0.0"))
    ifaces = addresses.Assign(devices)
    ns.NeighborCacheHelper().PopulateNeighborCache()
    udp = case.kind == "udp"
    factory = "ns3::UdpSocketFactory" if udp else "ns3::TcpSocketFactory"
    port = 9
    sink = ns.PacketSinkHelper(factory, ns.InetSocketAddress(ns.Ipv4Address.GetAny(), port).ConvertTo())
    sink_app = sink.Install(nodes.Get(0))
    sink_app.Start(ns.Seconds(0.0))
    sink_app.Get(0).TraceConnectWithoutContext("Rx", cpp.SinkRxCallback())
    remote = ns.InetSocketAddress(ifaces.GetAddress(0), port).ConvertTo()
    for i in range(case.n):
        if udp:
            app = ns.OnOffHelper(factory, remote)
            app.SetAttribute("DataRate", ns.DataRateValue(ns.DataRate(int(2 * case.rate_bps))))
            app.SetAttribute("PacketSize", ns.UintegerValue(UDP_PAYLOAD_BYTES))
            app.SetAttribute("OnTime", ns.StringValue("ns3::ConstantRandomVariable[Constant=1000]"))
            app.SetAttribute("OffTime", ns.StringValue("ns3::ConstantRandomVariable[Constant=0]"))
            start = 0.01 * i / max(case.n, 1)
        else:
            app = ns.BulkSendHelper(factory, remote)
            app.SetAttribute("MaxBytes", ns.UintegerValue(case.payload))
            start = 0.0
        apps = app.Install(nodes.Get(i + 1))
        apps.Start(ns.Seconds(start))
        cpp.counter.target[ifaces.GetAddress(i + 1).Get()] = case.payload
    if udp:
        cpp.counter.count_from = 1.0
    ns.Simulator.Stop(ns.Seconds(case.stop_s if case.stop_s > 0 else 900.0))
    ns.Simulator.Run()
    wall = time.perf_counter() - wall0
    rows = []
    for i in range(case.n):
        ip = ifaces.GetAddress(i + 1).Get()
        got = int(cpp.counter.bytes[ip]) if cpp.counter.bytes.count(ip) else 0
        done = float(cpp.counter.done[ip]) if cpp.counter.done.count(ip) else math.nan
        last = float(cpp.counter.last[ip]) if cpp.counter.last.count(ip) else math.nan
        rows.append({"case": case.case, "kind": case.kind, "rate_bps": case.rate_bps, "n": case.n,
                     "vehicle": i, "x_m": case.x_m[i], "y_m": case.y_m[i] if case.y_m else LANE_Y_M,
                     "speed_mps": case.speed_mps, "payload": case.payload,
                     "stop_s": case.stop_s, "bytes_rx": got, "end_s": done, "last_rx_s": last,
                     "ns3_wall_s": round(wall, 4)})
    ns.Simulator.Destroy()
    return rows


def run_cases(cases: list[Case], profile, *, seed: int = 1, progress: bool = True) -> list[dict]:
    rows = []
    for case in cases:
        t0 = time.perf_counter()
        rows += run_case(case, profile, seed=seed)
        if progress:
            print(f"  ns-3 {case.case}: {time.perf_counter() - t0:.2f} s", flush=True)
    return rows
