"""Evaluating flows' link rates over the world (`LinkRates`, a part of `vfedsim.network.fluid.FluidNetwork`):
full-band payload rates from the radio, with chunk losses (`chunks`), relay paths (`relay`) and the backhaul
cap (`backhaul`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..world.channel import per_from_snr, profile_mcs_table, rate_from_snr_bps
from .backhaul import capped
from .chunks import lossy_rates
from .relay import hop_bottleneck_bps, near_any, relay_paths

__all__ = ["LinkRates", "peak_rate_bps"]


def peak_rate_bps(profile: Any, bandwidth_hz: float) -> float:
    """[bit/s] the most any link of ``profile`` carries over ``bandwidth_hz``: the largest PHY rate of its
    SNR-to-rate mapping (MAC efficiency included) at any SNR. The mapping only changes at its MCS
    thresholds (Shannon: it grows with the SNR), so those, a fine grid and +inf are enough."""
    snr = [np.linspace(-50.0, 100.0, 1501), [np.inf]]
    thresholds = getattr(profile_mcs_table(profile), "min_snr_db", None) if profile.rate_mapping == "mcs" else None
    if thresholds is not None:
        snr.append(np.asarray(thresholds, dtype=np.float64))
    return float(np.max(rate_from_snr_bps(profile, bandwidth_hz, np.concatenate(snr), goodput=False)))


class LinkRates:
    """The rate evaluations of `FluidNetwork` (one radio call per evaluation)."""

    def _rates(self, rows: np.ndarray, t: float | np.ndarray, first: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Payload rates [bit/s] of flow ``rows`` at ``t`` (full band, backhaul-capped), the velocities of the
        vehicles of ``rows[first:]`` and the resent bytes per payload byte (chunk losses). ``rows[:first]``
        get their first rates: at their starts (``t`` is then an array of them, or the first rows' are
        taken from the table), where they were then."""
        flows, mob, radio = self.flows, self.mobility, self.radio
        v = flows.vehicle[rows]
        early = rows[:first]
        pos, travelled = np.stack((flows.px[early], flows.py[early]), axis=1), flows.travelled[early]
        vel = np.zeros((0, 2))
        time: float | np.ndarray = t
        if first < rows.size:
            later = v[first:]
            now_pos, vel = mob.positions_of(later, t)
            pos, travelled = np.concatenate((pos, now_pos)), np.concatenate((travelled, mob.travelled_m(later, t)))
            if first:
                time = np.concatenate((flows.start[early], np.full(later.size, t)))
        elif np.ndim(t) == 0:
            time = flows.start[early]
        extra = {"time_s": time} if self._time_varying else {}
        rsu, up, bw = flows.rsu[rows], flows.up[rows].astype(bool), flows.bandwidth_hz[rows]
        if self._chunk is None:
            rate = radio.rate_bps(v, pos, rsu, travelled, uplink=up, bandwidth_hz=bw, **extra)
            loss = np.zeros(rate.shape)
        else:
            if hasattr(radio, "rate_and_per"):  # the PHY rate of the link's MCS and its packet error rate
                phy, per = radio.rate_and_per(v, pos, rsu, travelled, uplink=up, bandwidth_hz=bw, goodput=False,
                                              **extra)
            else:
                snr = radio.snr_db(v, pos, rsu, travelled, uplink=up, bandwidth_hz=bw, **extra)
                usable = snr >= radio.min_usable_snr_db
                safe = np.where(usable, snr, radio.profile.min_snr_db)
                phy = np.where(usable, rate_from_snr_bps(radio.profile, bw, safe, goodput=False), 0.0)
                per = per_from_snr(radio.profile, safe)
            rate, loss = lossy_rates(phy, per, flows.nbytes[rows] - flows.done[rows], self._chunk,
                                     [self._streams[f] for f in flows.fid[rows].tolist()])
            member = flows.bc[rows] >= 0
            if member.any():  # a broadcast has no per-receiver resends: its members use the goodput
                rate[member] = radio.rate_bps(v[member], pos[member], rsu[member], travelled[member],
                                              uplink=up[member], bandwidth_hz=bw[member], **extra)
                loss[member] = 0.0
        relayed = flows.relay[rows] >= 0
        if relayed.any():  # the path's bottleneck: its V2V hops and the relay's own RSU link (a relayed start
            # is evaluated at its own instant, so t is now)
            now = self.env.now
            rate = np.array(rate, dtype=np.float64)
            rate[relayed] = self._path_rates(rows[relayed], now, {"time_s": now} if self._time_varying else {})
            loss[relayed] = 0.0
        return capped(rate, self._cap), vel, loss

    def _path_rates(self, rows: np.ndarray, t: float, extra: dict) -> np.ndarray:
        """[bit/s] the rates of relayed flow ``rows`` at ``t``: the minimum of their paths' V2V hops and
        their relays' RSU links (one flow on the relay's RSU resource; V2V hops share nothing)."""
        flows, mob, radio = self.flows, self.mobility, self.radio
        out = np.zeros(rows.size)
        for k, i in enumerate(rows.tolist()):
            path = np.array(self._paths[int(flows.vehicle[i])])
            pos, _ = mob.positions_of(path, t)
            bw = float(flows.bandwidth_hz[i])
            hop = hop_bottleneck_bps(radio.profile, pos, bw, radio.min_usable_snr_db)
            relay = path[-1:]
            direct = float(radio.rate_bps(relay, pos[-1:], flows.rsu[i:i + 1], mob.travelled_m(relay, t),
                                          uplink=bool(flows.up[i]), bandwidth_hz=bw, **extra)[0])
            out[k] = min(hop, direct)
        return out

    def _find_paths(self, vehicles: Any, t: float) -> dict[int, tuple[tuple[int, ...], int]]:
        """Relay paths at ``t`` of the (uncovered, on-road) ``vehicles`` (`vfedsim.network.relay.relay_paths`
        over the uplink band): a vehicle relays to the RSU it would attach to (`vfedsim.world.radio.Radio.attach`)
        or that its own flows use; a relayed vehicle relays no one."""
        wanted = [int(v) for v in np.asarray(vehicles, dtype=np.int64).reshape(-1)]
        if not wanted:
            return {}
        trips, cfg = self.mobility.trips, self._v2v
        ids = np.flatnonzero((trips.t_enter_s <= t) & (t < trips.t_exit_s))
        pos, vel = self.mobility.positions_of(ids, t)
        # only vehicles within max_hops x range of a wanted one can be on its paths
        near = near_any(pos, pos[np.isin(ids, wanted)], cfg.max_hops * cfg.range_m)
        ids, pos, vel = ids[near], pos[near], vel[near]
        rsu = self.radio.attach(pos, vel) if ids.size else np.zeros(0, dtype=np.int64)
        for k, v in enumerate(ids.tolist()):
            state = self._vehicles.get(v)
            if state is not None:
                rsu[k] = state[0] if v not in self._paths else -1
        return relay_paths(ids, pos, rsu, wanted, profile=self.radio.profile, bandwidth_hz=self.uplink_hz,
                           min_usable_snr_db=self.radio.min_usable_snr_db, range_m=cfg.range_m,
                           max_hops=cfg.max_hops)
