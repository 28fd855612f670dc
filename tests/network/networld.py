"""Small worlds for the network tests: vehicles from (x0, y, vx, t_enter, t_exit) tuples, RSUs on y = 0."""
from __future__ import annotations

import numpy as np
import simpy

from vfedsim.scenario import ChannelProfile, HighwayLosPathLoss, NetworkConfig
from vfedsim.network.fluid import FluidNetwork
from vfedsim.world.mobility import TripMobility, Trips
from vfedsim.world.radio import Radio

PROFILE = ChannelProfile(path_loss=HighwayLosPathLoss(), min_snr_db=25.0, shadowing_std_db=0.0,
                         bandwidth_hz=10e6)
MB = 1_000_000


def trips(*vehicles):
    a = np.array(vehicles, dtype=np.float64).reshape(-1, 5)
    return Trips(t_enter_s=a[:, 3], t_exit_s=a[:, 4], x_enter_m=a[:, 0],
                 direction=np.where(a[:, 2] < 0, -1, 1).astype(np.int8), lane=np.zeros(len(a), dtype=np.int64),
                 y_m=a[:, 1], speed_mps=np.abs(a[:, 2]))


def world(vehicles, rsu_xs=(0.0,), *, profile=PROFILE, mobility=None, on_event=None, **cfg):
    env = simpy.Environment()
    mob = mobility if mobility is not None else TripMobility(trips(*vehicles))
    radio = Radio(profile=profile, rsu_xy=np.array([[x, 0.0] for x in rsu_xs]), rsu_height_m=5.0, seed=0)
    net = FluidNetwork(env, mobility=mob, radio=radio, config=NetworkConfig(**cfg), on_event=on_event)
    return env, net, radio, mob


def rate_at(radio, mob, v, t, uplink=True, rsu=None):
    pos, _ = mob.positions_of([v], t)
    rsu = radio.serving(pos) if rsu is None else np.array([rsu])
    return float(radio.rate_bps([v], pos, rsu, mob.travelled_m([v], t), uplink=uplink)[0])


def run(env, *events):
    env.run()
    return [e.value for e in events]


def at(env, t, fn):
    """Call ``fn()`` at simulated time ``t``; returns a dict whose "value" is what it returned (an event's
    value once the run is over)."""
    out = {}

    def proc():
        yield env.timeout(t)
        out["event"] = fn()
        out["value"] = yield out["event"]

    env.process(proc())
    return out

