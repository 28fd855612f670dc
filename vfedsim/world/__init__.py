"""The world: where vehicles are and how well they can talk to RSUs (numpy only; no simpy, no torch).

``mobility``: trips and positions [m, s, m/s]; ``channel``: path loss, noise, SNR, rate, shadowing [dB,
bit/s]; ``radio``: RSU placement, association, coverage timing; ``compute``: FLOPs to seconds and joules.
Everything is a pure, vectorised function of arrays or a thin holder of them (DESIGN.md, principle 1).
"""
from .channel import Shadowing, coverage_radius_m, link_budget, median_snr_db, noise_power_dbm, path_loss_db
from .compute import assign_device_classes, compute_energy_j, compute_time_s, transmit_energy_j
from .mobility import MOBILITY, HighwayMobility, MobilityModel, MobilityState, TripMobility, Trips
from .radio import Radio, rsu_positions

__all__ = [
    "Shadowing", "coverage_radius_m", "link_budget", "median_snr_db", "noise_power_dbm", "path_loss_db",
    "assign_device_classes", "compute_energy_j", "compute_time_s", "transmit_energy_j",
    "MOBILITY", "HighwayMobility", "MobilityModel", "MobilityState", "TripMobility", "Trips",
    "Radio", "rsu_positions",
]
