"""Per-link random state that changes over time: LOS / NLOS state, NLOSv blockage and small-scale fading.

Every value is a pure function of (seed, kind, vehicle, RSU, time slot), drawn from a counter-based
generator (`link_uniform`: SplitMix64 seeded by a hash of those keys), so it does not depend on when,
in which order or in which batches a link is evaluated, costs no state, and is vectorised over links
(DESIGN.md, principles 1 and 6). A time slot is ``floor(t / period)``: the LOS state is re-drawn every
``los_update_period_s`` and the fading gain every ``fading_period_s`` of the channel profile.

LOS state. In slot k a link draws u ~ U[0, 1) once; at any time in the slot it is LOS where
u < P_LOS(d_2D) at that time's horizontal distance (`los_probability`). The state therefore holds for a
slot while the distance barely changes, and the long-run fraction of LOS links at distance d is P_LOS(d).
How shadowing and the state interact is the radio's concern (`vfedsim.world.radio`): each state has its own
independently drawn, spatially correlated shadowing process, so a change of state draws a fresh value.

Fading. A power gain g with E[g] = 1 multiplies the SNR (`fading_gain`); one gain per link and slot, used
for both directions.
"""
from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from ..scenario import NakagamiFading, NoFading, RayleighFading, RicianFading

__all__ = [
    "LOS_MODELS", "los_probability", "link_uniform", "link_normal", "time_slot", "los_state",
    "fading_gain", "gamma_unit_mean",
]

LOS_MODELS = ("none", "3gpp-highway", "3gpp-urban", "38901-umi", "38901-uma")

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (Steele, Lea & Flood, OOPSLA 2014), on uint64 arrays (wrapping arithmetic)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


_SMALL = 8  # arrays up to this size are hashed on Python ints (the same wrapping arithmetic, fewer calls)
_MASK = (1 << 64) - 1
_M1I, _M2I, _GOLDENI = int(_M1), int(_M2), int(_GOLDEN)


def _mix_int(x: int) -> int:
    """`_mix` of one value on Python ints (mod 2**64)."""
    x = ((x ^ (x >> 30)) * _M1I) & _MASK
    x = ((x ^ (x >> 27)) * _M2I) & _MASK
    return x ^ (x >> 31)


@lru_cache(maxsize=1024)
def _kind_key(seed: int, kind: str) -> np.uint64:
    digest = hashlib.sha256(f"{int(seed)}/{kind}".encode()).digest()
    return np.uint64(int.from_bytes(digest[:8], "little"))


def _link_key(seed: int, kind: str, vehicle: ArrayLike, rsu: ArrayLike, slot: ArrayLike) -> np.ndarray:
    u64 = np.uint64
    v, r, s = np.asarray(vehicle, dtype=np.int64), np.asarray(rsu, dtype=np.int64), np.asarray(slot, dtype=np.int64)
    if v.size <= _SMALL and r.size <= _SMALL and s.size <= _SMALL:
        v, r, s = np.broadcast_arrays(v, r, s)
        kk = int(_kind_key(seed, kind))
        out = [_mix_int(_mix_int(_mix_int(((a & _MASK) * _GOLDENI & _MASK) ^ kk) ^ ((b + _GOLDENI) & _MASK))
                        ^ ((c & _MASK) * _M1I & _MASK))
               for a, b, c in zip(v.ravel().tolist(), r.ravel().tolist(), s.ravel().tolist())]
        return np.array(out, dtype=u64).reshape(v.shape)
    with np.errstate(over="ignore"):
        h = _mix(np.asarray(vehicle, dtype=np.int64).astype(u64) * _GOLDEN ^ _kind_key(seed, kind))
        h = _mix(h ^ (np.asarray(rsu, dtype=np.int64).astype(u64) + _GOLDEN))
        return _mix(h ^ (np.asarray(slot, dtype=np.int64).astype(u64) * _M1))


def _uniform(key: np.ndarray, draw: ArrayLike) -> np.ndarray:
    # SplitMix64 (Steele et al. 2014): output number `draw` of the stream seeded with `key`
    d = np.asarray(draw, dtype=np.int64)
    if key.size <= _SMALL and d.size <= _SMALL:
        key, d = np.broadcast_arrays(key, d)
        return np.array([float(_mix_int((k + ((j & _MASK) + 1) * _GOLDENI) & _MASK) >> 11) * (1.0 / 9007199254740992.0)
                         for k, j in zip(key.ravel().tolist(), d.ravel().tolist())],
                        dtype=np.float64).reshape(key.shape)
    with np.errstate(over="ignore"):
        h = _mix(key + (np.asarray(draw, dtype=np.int64).astype(np.uint64) + np.uint64(1)) * _GOLDEN)
    return (h >> _S11).astype(np.float64) * (1.0 / 9007199254740992.0)


def link_uniform(seed: int, kind: str, vehicle: ArrayLike, rsu: ArrayLike, slot: ArrayLike,
                 draw: ArrayLike = 0) -> np.ndarray:
    """Uniform deviates in [0, 1), a pure function of (seed, kind, vehicle, rsu, slot, draw): output ``draw``
    of a SplitMix64 stream whose seed hashes (seed, kind, vehicle, rsu, slot). The arrays broadcast; ids,
    slots and draws are non-negative integers. 53 random bits each."""
    return _uniform(_link_key(seed, kind, vehicle, rsu, slot), draw)


def link_normal(seed: int, kind: str, vehicle: ArrayLike, rsu: ArrayLike, slot: ArrayLike,
                draw: ArrayLike = 0) -> np.ndarray:
    """Standard normal deviates per link (Box-Muller on draws 2 draw and 2 draw + 1 of `link_uniform`)."""
    return _normal(_link_key(seed, kind, vehicle, rsu, slot), draw)


def _normal(key: np.ndarray, draw: ArrayLike) -> np.ndarray:
    d = 2 * np.asarray(draw, dtype=np.int64)
    u1, u2 = _uniform(key, d), _uniform(key, d + 1)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * math.pi * u2)


def time_slot(time_s: ArrayLike, period_s: float) -> np.ndarray:
    """int64 slot index floor(t / period) (t clamped at 0)."""
    return np.floor(np.maximum(np.asarray(time_s, dtype=np.float64), 0.0) / period_s).astype(np.int64)


def los_probability(model: str, distance_2d_m: ArrayLike, *, ut_height_m: float = 1.5) -> np.ndarray:
    """Probability that a link at horizontal distance ``distance_2d_m`` [m] is in line of sight.

    * ``3gpp-highway`` (TR 37.885 §6.2.1, V2V LOS probability, highway): min(1, 2.1013e-6 d^2 - 0.002 d +
      1.0193) for d <= 475 m, else max(0, 0.54 - 0.001 (d - 475)).
    * ``3gpp-urban`` (TR 37.885 §6.2.1, urban, for links not blocked by buildings):
      min(1, 1.05 exp(-0.0114 d)).
    * ``38901-umi`` (TR 38.901 Table 7.4.2-1, UMi-Street Canyon): 1 for d <= 18 m, else
      18/d + exp(-d/36) (1 - 18/d).
    * ``38901-uma`` (TR 38.901 Table 7.4.2-1, UMa): 1 for d <= 18 m, else [18/d + exp(-d/63) (1 - 18/d)]
      (1 + C'(h_UT) 5/4 (d/100)^3 exp(-d/150)), C'(h_UT) = 0 for h_UT <= 13 m, ((h_UT - 13)/10)^1.5 up to
      23 m.
    * ``none``: 1 everywhere.

    (The TR 37.885 table holding the V2V LOS probabilities is numbered differently across versions; ns-3's
    implementation cites it as "Table 6.2-1", and the values above are the ones used there.)
    """
    d = np.asarray(distance_2d_m, dtype=np.float64)
    if model == "none":
        return np.ones(d.shape)
    if model == "3gpp-highway":
        near = np.minimum(1.0, 2.1013e-6 * d * d - 0.002 * d + 1.0193)
        return np.where(d <= 475.0, near, np.maximum(0.0, 0.54 - 0.001 * (d - 475.0)))
    if model == "3gpp-urban":
        return np.minimum(1.0, 1.05 * np.exp(-0.0114 * d))
    safe = np.maximum(d, 18.0)
    if model == "38901-umi":
        return np.where(d <= 18.0, 1.0, 18.0 / safe + np.exp(-safe / 36.0) * (1.0 - 18.0 / safe))
    if model == "38901-uma":
        c = 0.0 if ut_height_m <= 13.0 else ((min(ut_height_m, 23.0) - 13.0) / 10.0) ** 1.5
        base = 18.0 / safe + np.exp(-safe / 63.0) * (1.0 - 18.0 / safe)
        return np.where(d <= 18.0, 1.0, base * (1.0 + c * 1.25 * (safe / 100.0) ** 3 * np.exp(-safe / 150.0)))
    raise ValueError(f"unknown LOS model {model!r}; allowed: {', '.join(LOS_MODELS)}")


def los_state(model: str, *, seed: int, vehicle: ArrayLike, rsu: ArrayLike, time_s: ArrayLike,
              distance_2d_m: ArrayLike, period_s: float) -> np.ndarray:
    """bool per link: in LOS at ``time_s`` (u < P_LOS(d_2D), u drawn per (link, slot); see the module)."""
    if model == "none":
        return np.ones(np.broadcast_shapes(np.shape(vehicle), np.shape(distance_2d_m)), dtype=bool)
    u = link_uniform(seed, "los", vehicle, rsu, time_slot(time_s, period_s))
    return u < los_probability(model, distance_2d_m)


def gamma_unit_mean(shape: ArrayLike, seed: int, kind: str, vehicle: ArrayLike, rsu: ArrayLike,
                    slot: ArrayLike) -> np.ndarray:
    """Gamma(shape, scale 1/shape) deviates (mean 1, variance 1/shape) per link, counter-based.

    Marsaglia & Tsang (ACM TOMS 26(3), 2000) for shape >= 1, with candidates k = 0, 1, ... taken from
    `link_normal` / `link_uniform` draw k until one is accepted; shape < 1 uses Gamma(a) = Gamma(a + 1) U^(1/a).
    """
    a = np.asarray(shape, dtype=np.float64)
    v_, r_, s_, a = np.broadcast_arrays(np.asarray(vehicle, dtype=np.int64), np.asarray(rsu, dtype=np.int64),
                                        np.asarray(slot, dtype=np.int64), a)
    boost = a < 1.0
    b = np.where(boost, a + 1.0, a)
    d = (b - 1.0 / 3.0).reshape(-1)
    c = 1.0 / np.sqrt(9.0 * d)
    out = np.full(d.shape, np.nan)
    k = 0
    normal_key = _link_key(seed, kind, v_, r_, s_).reshape(-1)  # the streams of every candidate (`link_normal`
    accept_key = _link_key(seed, kind + "/accept", v_, r_, s_).reshape(-1)  # and `link_uniform`), keyed once
    todo = np.arange(d.size)  # the links whose candidate k is drawn (those not yet accepted)
    while todo.size:
        dt = d[todo]
        z = _normal(normal_key[todo], k)
        u = _uniform(accept_key[todo], k)
        x = 1.0 + c[todo] * z
        v3 = x * x * x
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = (v3 > 0.0) & (np.log(np.maximum(u, 1e-300)) < 0.5 * z * z + dt - dt * v3 + dt * np.log(v3))
        out[todo[ok]] = (dt * v3)[ok]
        todo = todo[~ok]
        k += 1
    out = out.reshape(a.shape)
    if boost.any():
        u = link_uniform(seed, kind + "/boost", v_, r_, s_)
        out = np.where(boost, out * np.power(np.maximum(u, 1e-300), 1.0 / np.where(boost, a, 1.0)), out)
    return out / a


def fading_gain(model: object, *, seed: int, vehicle: ArrayLike, rsu: ArrayLike, time_s: ArrayLike,
                distance_m: ArrayLike, period_s: float) -> np.ndarray:
    """Small-scale fading power gain per link (mean 1), constant within a ``period_s`` slot.

    * ``none``: 1.
    * ``rayleigh``: exponential(1) (|h|^2 of h ~ CN(0, 1)); variance 1.
    * ``rician``: |sqrt(K/(K+1)) + sqrt(1/(K+1)) w|^2, w ~ CN(0, 1), K = 10^(k_db/10); variance
      (1 + 2K)/(1 + K)^2 (e.g. Goldsmith, Wireless Communications, 2005, §3.2.1).
    * ``nakagami``: Gamma(m, 1/m) (the power of a Nakagami-m amplitude; Nakagami 1960); variance 1/m. With
      ``m_far`` set, links at 3D distance >= ``far_distance_m`` use m_far (V2V measurements find m < 1 at
      long range: Cheng et al., IEEE JSAC 25(8), 2007).
    """
    if isinstance(model, NoFading):
        return np.ones(np.broadcast_shapes(np.shape(vehicle), np.shape(time_s)))
    slot = time_slot(time_s, period_s)
    if isinstance(model, RayleighFading):
        return -np.log1p(-link_uniform(seed, "fading", vehicle, rsu, slot))
    if isinstance(model, RicianFading):
        k = 10.0 ** (model.k_db / 10.0)
        s = math.sqrt(0.5 / (k + 1.0))
        re = math.sqrt(k / (k + 1.0)) + s * link_normal(seed, "fading", vehicle, rsu, slot, 0)
        im = s * link_normal(seed, "fading", vehicle, rsu, slot, 1)
        return re * re + im * im
    if isinstance(model, NakagamiFading):
        m = model.m if model.m_far is None else np.where(np.asarray(distance_m) >= model.far_distance_m,
                                                        model.m_far, model.m)
        return gamma_unit_mean(m, seed, "fading", vehicle, rsu, slot)
    raise TypeError(f"unknown fading model {type(model).__name__}")
