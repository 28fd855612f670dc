"""What travels over the air: the trainable state in ``float32``, ``float16`` or ``int8``, and its size.

Two encodings of one state, with the same values:

- the *wire* format (`pack_tensors` / `unpack_state`): the tensors flattened and concatenated in the
  trainable parameters' order, whose names and shapes both ends know. ``int8`` puts one float32 scale per
  tensor first, then the int8 values.
- the *file* format (`serialize_state` / `deserialize_state`): a self-describing ``torch.save`` file (names,
  shapes and all). Its size is the payload size the network carries (`Learner.payload_bytes`).

``int8`` is per-tensor symmetric quantisation: s = max|x| / 127 (float32), q = round(x / s) in [-127, 127],
received as q * s, so each value is off by at most s / 2 (s = 0 for an all-zero tensor, sent as zeros).
The values are really rounded on the way, both ways (broadcast and upload): training and aggregation see
what a receiver would. `breakdown` splits the payload by module group and dtype.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import torch

__all__ = ["DTYPES", "VALUE_BYTES", "SCALE_BYTES", "SCALES_KEY", "quantize_int8", "dequantize_int8",
           "pack_tensors", "unpack_state", "serialize_state", "deserialize_state", "breakdown"]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "int8": torch.int8}
VALUE_BYTES = {"float32": 4, "float16": 2, "int8": 1}
SCALE_BYTES = 4
"""int8: one float32 scale per tensor."""
SCALES_KEY = "__int8_scales__"
"""The file format's entry holding the int8 scales (never a parameter name: those contain dots)."""


def quantize_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q int8, s float32 scalar): symmetric per-tensor quantisation, s = max|x| / 127, q = round(x / s)."""
    x = x.detach().to(torch.float32)
    scale = x.abs().max() / 127.0 if x.numel() else torch.zeros(())
    if not scale > 0:
        return torch.zeros(x.shape, dtype=torch.int8), torch.zeros((), dtype=torch.float32)
    return torch.round(x / scale).clamp_(-127, 127).to(torch.int8), scale.to(torch.float32)


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q * s as float32."""
    return q.to(torch.float32) * scale


def pack_tensors(tensors: Sequence[torch.Tensor], dtype: str = "float32") -> bytes:
    """The wire format of the tensors in ``dtype`` (see the module docstring)."""
    if dtype == "int8":
        pairs = [quantize_int8(t) for t in tensors]
        scales = torch.stack([s for _, s in pairs]) if pairs else torch.zeros(0)
        values = torch.cat([q.reshape(-1) for q, _ in pairs]) if pairs else torch.zeros(0, dtype=torch.int8)
        return scales.numpy().tobytes() + values.numpy().tobytes()
    flat = torch.cat([t.detach().reshape(-1) for t in tensors]).to(DTYPES[dtype])
    return flat.numpy().tobytes()


def unpack_state(payload: bytes, template: Mapping[str, torch.Tensor],
                 dtype: str = "float32") -> dict[str, torch.Tensor]:
    """`pack_tensors` read back into float32 tensors named and shaped like ``template``."""
    buffer = bytearray(payload)
    if dtype == "int8":
        n = len(template)
        scales = torch.frombuffer(buffer, dtype=torch.float32, count=n) if n else torch.zeros(0)
        flat = torch.frombuffer(buffer, dtype=torch.int8, offset=n * SCALE_BYTES)
    else:
        flat = torch.frombuffer(buffer, dtype=DTYPES[dtype]).to(torch.float32)
    out, start = {}, 0
    for i, (name, t) in enumerate(template.items()):
        values = flat[start:start + t.numel()].view(t.shape)
        out[name] = dequantize_int8(values, scales[i]) if dtype == "int8" else values
        start += t.numel()
    if start != flat.numel():
        raise ValueError(f"payload holds {flat.numel()} values, the template {start}")
    return out


def serialize_state(state: Mapping[str, torch.Tensor], dtype: str = "float32") -> bytes:
    """The file format: ``torch.save`` of the state in ``dtype`` (int8: plus one tensor of the scales)."""
    if dtype == "int8":
        pairs = {k: quantize_int8(v) for k, v in state.items()}
        obj = {k: q.contiguous() for k, (q, _) in pairs.items()}
        obj[SCALES_KEY] = torch.stack([s for _, s in pairs.values()]) if pairs else torch.zeros(0)
    else:
        obj = {k: v.detach().to(DTYPES[dtype]).contiguous() for k, v in state.items()}
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def deserialize_state(payload: bytes) -> dict[str, torch.Tensor]:
    """The state in a `serialize_state` payload, as float32 tensors."""
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    scales = state.pop(SCALES_KEY, None)
    if scales is not None:
        return {k: dequantize_int8(v, scales[i]) for i, (k, v) in enumerate(state.items())}
    return {k: v.to(torch.float32) for k, v in state.items()}


def breakdown(state: Mapping[str, torch.Tensor], dtype: str, group: Callable[[str], str], *,
              total: int | None = None) -> dict[str, int]:
    """Bytes of the payload by module group: each group's values in ``dtype`` (int8: plus 4 bytes of scale per
    tensor), in order of first appearance; with ``total`` (the file's size), ``container`` is the rest (names,
    shapes, zip records and alignment), so the groups add up to ``total``."""
    out: dict[str, int] = {}
    for name, t in state.items():
        g = group(name)
        out[g] = out.get(g, 0) + t.numel() * VALUE_BYTES[dtype] + (SCALE_BYTES if dtype == "int8" else 0)
    if total is not None:
        out["container"] = total - sum(out.values())
    return out
