"""The world: where vehicles are and how well they can talk to RSUs (numpy only; no simpy, no torch).

``mobility``: trips and positions [m, s, m/s] (``urban``: Manhattan grid, ``fcd``: SUMO trace replay, ``static``: explicit positions); ``pathloss``: every path-loss model [dB]; ``linkstate``: LOS
state, NLOSv blockage and fading per link and time slot; ``channel``: noise, SNR, Shannon and MCS rates,
coverage, shadowing [dB, bit/s]; ``radio``: RSU placement, association, instantaneous SNR and rate, coverage
timing; ``compute``: FLOPs to seconds and joules.
Everything is a pure, vectorised function of arrays or a thin holder of them (DESIGN.md, principle 1).
"""
from .channel import (
    MCS_TABLES, Shadowing, coverage_radius_m, link_budget, mcs_rate_bps, median_snr_db, noise_power_dbm,
    path_loss_db, rate_from_snr_bps,
)
from .compute import assign_device_classes, compute_energy_j, compute_time_s, transmit_energy_j
from .linkstate import fading_gain, los_probability, los_state
from .mobility import MOBILITY, HighwayMobility, MobilityModel, MobilityState, PathMobility, TripMobility, Trips
from .radio import Radio, rsu_positions
from .urban import UrbanGridMobility  # registers "urban-grid"
from .fcd import FcdMobility  # registers "sumo-fcd"
from .static import StaticMobility  # registers "static"

__all__ = [
    "Shadowing", "coverage_radius_m", "link_budget", "median_snr_db", "noise_power_dbm", "path_loss_db",
    "MCS_TABLES", "mcs_rate_bps", "rate_from_snr_bps", "fading_gain", "los_probability", "los_state",
    "assign_device_classes", "compute_energy_j", "compute_time_s", "transmit_energy_j",
    "MOBILITY", "HighwayMobility", "MobilityModel", "MobilityState", "TripMobility", "Trips", "PathMobility",
    "UrbanGridMobility", "FcdMobility", "StaticMobility",
    "Radio", "rsu_positions",
]
