"""The radio network as a strategy sees it: the `Network` interface, its results, and an ideal stand-in.

A strategy reaches the network only through `Network` (STYLE.md, 5). `vfedsim.network.fluid.FluidNetwork`
implements it over the world's mobility and radio models; `IdealNetwork` is the always-connected,
constant-rate stand-in for tests, baselines and overhead benchmarks (httpx's ``MockTransport``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np
import simpy
from numpy.typing import ArrayLike

__all__ = ["FAIL_CAUSES", "DIRECTIONS", "TransferResult", "Network", "IdealNetwork", "OnEvent"]

FAIL_CAUSES = ("left_coverage", "trip_ended", "deadline", "link_outage", "no_coverage", "cancelled",
               "handover_failed")
"""Why a transfer failed. The network itself ends a transfer with ``no_coverage`` (no serving RSU when it was
requested), ``trip_ended``, ``left_coverage`` (out of every RSU's reach, relays included), ``link_outage``
(SNR below the usable one for the outage timeout) or ``handover_failed`` (an A3 handover with ``handover:
drop``); ``deadline`` and ``cancelled`` come from a strategy's `Network.cancel`."""
DIRECTIONS = ("up", "down")

OnEvent = Callable[..., None]
"""Observer hook ``on_event(kind, *, time_s, vehicle, rsu, nbytes=None, cause=None)`` (the recorder's
``network_event``). Kinds: ``handover`` (one call per flow moved); ``relay`` (a flow starts on or changes
its V2V relay path; ``cause`` is ``"hops=H"``, H wireless hops to the RSU, 1 when it is direct again);
``resent`` (at a flow's end, when chunks were lost: ``nbytes`` is the bytes resent)."""


@dataclass(frozen=True)
class TransferResult:
    """How a transfer ended. Times [s] are simulated; bytes [B]."""

    ok: bool  # all ``nbytes`` arrived
    cause: str | None  # None when ok, else one of FAIL_CAUSES
    vehicle: int
    direction: str  # "up" (vehicle -> RSU -> cloud) or "down" (cloud -> RSU -> vehicle)
    nbytes: int  # requested
    bytes_done: float  # carried before the end (== nbytes when ok)
    start_s: float  # when it was requested
    end_s: float  # when it completed or failed
    rsu: int  # the RSU that carried it last (-1 when there was none)
    handovers: int  # how many times it moved to another RSU
    hops: int = 1  # wireless hops to the RSU on the path it used last (1: direct; 0: never started)
    bytes_resent: float = 0.0  # [B] sent again after chunk losses (not counted in bytes_done)


class Network(Protocol):
    """The radio network as a strategy sees it: the one interface injected into strategies.

    All times are simulated seconds at ``env.now``; sizes are bytes [B]; rates bit/s; RSUs are indices
    0..R-1 and -1 means none. Vehicle ids are those of `vfedsim.world.mobility.Trips`. The plural queries take
    an array of vehicle ids and answer for all of them at once (use them for whole-fleet snapshots).

    Failure is a value, never an exception: every transfer's event *succeeds* with a `TransferResult`, whose
    ``ok`` is False and ``cause`` one of `FAIL_CAUSES` when the bytes did not all arrive. A transfer that cannot
    start (no coverage, trip over) succeeds at once with ``ok=False``. Queries never schedule anything.
    """

    def transfer(self, vehicle: int, nbytes: int, direction: str) -> simpy.Event:
        """Start moving ``nbytes`` in ``direction`` ("up" or "down") over the vehicle's serving RSU."""
        ...

    def cancel(self, vehicle: int, cause: str) -> None:
        """End that vehicle's in-flight transfers now with ``ok=False`` and ``cause`` (one of `FAIL_CAUSES`,
        typically "deadline"); their events are triggered before this returns. No-op when none is in flight."""
        ...

    def serving_rsu(self, vehicle: int) -> int:
        """The RSU serving the vehicle now (its in-flight transfer's RSU, else the nearest covering one);
        -1 when it is out of coverage or not on the road."""
        ...

    def time_to_coverage_s(self, vehicle: int) -> float:
        """[s] until the vehicle is covered: 0 if covered now; inf if not before its trip ends."""
        ...

    def dwell_time_s(self, vehicle: int) -> float:
        """[s] predicted time left in the current RSU's coverage (capped at its trip end); 0 if none."""
        ...

    def link_rate_bps(self, vehicle: int, direction: str) -> float:
        """[bit/s] current full-band rate to the serving RSU, without sharing; 0 if none or in outage."""
        ...

    def serving_rsus(self, vehicles: ArrayLike) -> np.ndarray: ...
    def times_to_coverage_s(self, vehicles: ArrayLike) -> np.ndarray: ...
    def dwell_times_s(self, vehicles: ArrayLike) -> np.ndarray: ...
    def link_rates_bps(self, vehicles: ArrayLike, direction: str) -> np.ndarray: ...
    def link_snrs_db(self, vehicles: ArrayLike, direction: str) -> np.ndarray:
        """(k,) [dB] instantaneous SNR (SINR with interference) of each vehicle's link to its serving RSU;
        -inf without one. Optional: strategies fall back to no SNR (an empty array) when it is missing."""
        ...


def check_request(nbytes: int, direction: str) -> int:
    """``nbytes`` as an int after checking it and ``direction`` (ValueError naming the allowed values)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if int(nbytes) < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    return int(nbytes)


def check_cause(cause: str) -> str:
    if cause not in FAIL_CAUSES:
        raise ValueError(f"cause must be one of {FAIL_CAUSES}, got {cause!r}")
    return cause


def as_ids(vehicles: ArrayLike) -> np.ndarray:
    return np.asarray(vehicles, dtype=np.int64).reshape(-1)


class IdealNetwork:
    """`Network` where every vehicle is always covered by RSU 0 at a constant ``rate_bps`` [bit/s].

    A transfer of S bytes takes ``latency_s + 8 S / rate_bps`` seconds whatever else is in flight (no
    sharing) and never fails unless cancelled. For tests, upper-bound baselines and overhead benchmarks. A
    cancelled transfer's timer still fires, as a no-op, at its would-be end.
    """

    def __init__(self, env: simpy.Environment, *, rate_bps: float = 1e9, latency_s: float = 0.0,
                 on_event: OnEvent | None = None) -> None:
        if rate_bps <= 0 or latency_s < 0:
            raise ValueError("rate_bps must be > 0 and latency_s >= 0")
        self.env = env
        self.rate_bps = float(rate_bps)
        self.latency_s = float(latency_s)
        self.on_event = on_event  # never called: there are no handovers
        self._in_flight: dict[int, list[tuple[simpy.Event, str, int, float]]] = {}

    def transfer(self, vehicle: int, nbytes: int, direction: str) -> simpy.Event:
        nbytes = check_request(nbytes, direction)
        vehicle, event = int(vehicle), self.env.event()
        flight = (event, direction, nbytes, self.env.now)
        self._in_flight.setdefault(vehicle, []).append(flight)
        timer = self.env.timeout(self.latency_s + 8.0 * nbytes / self.rate_bps)
        timer.callbacks.append(partial(self._complete, vehicle, flight))
        return event

    def _complete(self, vehicle: int, flight: tuple[simpy.Event, str, int, float], _: simpy.Event) -> None:
        event, direction, nbytes, start = flight
        if event.triggered:  # cancelled earlier
            return
        self._in_flight[vehicle].remove(flight)
        event.succeed(TransferResult(ok=True, cause=None, vehicle=vehicle, direction=direction, nbytes=nbytes,
                                     bytes_done=float(nbytes), start_s=start, end_s=self.env.now, rsu=0,
                                     handovers=0))

    def cancel(self, vehicle: int, cause: str) -> None:
        check_cause(cause)
        now = self.env.now
        for event, direction, nbytes, start in self._in_flight.pop(int(vehicle), []):
            done = min(max(now - start - self.latency_s, 0.0) * self.rate_bps / 8.0, float(nbytes))
            event.succeed(TransferResult(ok=False, cause=cause, vehicle=int(vehicle), direction=direction,
                                         nbytes=nbytes, bytes_done=done, start_s=start, end_s=now, rsu=0,
                                         handovers=0))

    def serving_rsu(self, vehicle: int) -> int:
        return 0

    def time_to_coverage_s(self, vehicle: int) -> float:
        return 0.0

    def dwell_time_s(self, vehicle: int) -> float:
        return math.inf

    def link_rate_bps(self, vehicle: int, direction: str) -> float:
        check_request(0, direction)
        return self.rate_bps

    def serving_rsus(self, vehicles: ArrayLike) -> np.ndarray:
        return np.zeros(as_ids(vehicles).shape, dtype=np.int64)

    def times_to_coverage_s(self, vehicles: ArrayLike) -> np.ndarray:
        return np.zeros(as_ids(vehicles).shape)

    def dwell_times_s(self, vehicles: ArrayLike) -> np.ndarray:
        return np.full(as_ids(vehicles).shape, math.inf)

    def link_rates_bps(self, vehicles: ArrayLike, direction: str) -> np.ndarray:
        check_request(0, direction)
        return np.full(as_ids(vehicles).shape, self.rate_bps)

    def link_snrs_db(self, vehicles: ArrayLike, direction: str) -> np.ndarray:
        """An ideal link has no noise: +inf for everyone."""
        check_request(0, direction)
        return np.full(as_ids(vehicles).shape, np.inf)
