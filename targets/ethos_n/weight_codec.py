"""Ethos-N78 layer weight encoder: streams per OFM and IFM iteration, stripes, SRAM banks, DRAM blob.

Implements the N78 layout (shared facts §1.5), bit-exact with Arm's support library for a given
request (stripe depth, iteration size, algorithm). The streams of a run of whole stripes are coded
together in numpy (`layer_chunks.py` cuts the layer where the decoder state restarts; `batch_plan.py`
chooses the parameters, `batch_pack.py` places the bits; the one-stream codec in `stream_codec.py`
is their reference), so a layer costs a fixed number of array passes per chunk rather than a Python
step per stream (a depthwise layer has a stream per 9 weights), in bounded memory:
- one stream per (OFM, IFM iteration), each with its OFM header (bias, requantisation, zero point);
- streams of a stripe are shared round-robin among num_ofm_in_parallel x iterations groups, joined
  bit-contiguously, their length fields patched, and every group padded to one 16-byte multiple;
- groups go to SRAM banks ((group / iterations) mod banks) and the banks are interleaved 16 bytes
  at a time for the DMA.
Which stripe depth, iteration size and algorithm to ask for is the compiler's choice: see `policy.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .batch_plan import ParamTable
from .layer_chunks import LayerFields, chunks_entry_len, encode_chunks
from .layout import (
    Algorithm,
    Geometry,
    dtype_range,
    fc_padded,
    geometry,
    per_ofm,
    sram_layout,
)
from .stream_codec import StreamParams
from .variants import N78Variant

__all__ = [
    "Algorithm",
    "EncodedLayer",
    "EncodedSize",
    "OfmRequant",
    "encode_layer",
    "encoded_size",
    "quantized_multiplier",
    "quantized_multipliers",
    "requant_from_scales",
]

Layout = Literal["HWIO", "HWIM"]


@dataclass(frozen=True, eq=False)
class OfmRequant:
    """Per-OFM requantisation fields for the weight headers (TFLite output-channel order)."""

    multiplier: np.ndarray  # uint16 quantised multipliers
    shift: np.ndarray  # 0..63
    zero_point: np.ndarray  # output zero point, -128..255
    per_channel: bool = False  # per-channel weight scales force a reload on every OFM


def quantized_multiplier(scale: float) -> tuple[int, int]:
    """(16-bit multiplier, shift) with scale ~= multiplier / 2**shift, as the N78 MCE requantises."""
    if scale <= 0.0:
        return 0, 0
    exp = math.frexp(scale)[1] - 1  # ilogb
    shift = min((-exp - 1 + 16) & 0xFFFFFFFF, 47)
    mult = math.floor(math.ldexp(scale, shift) + 0.5)  # lround of a positive value
    if mult == 1 << 16:
        if shift > 0:
            mult, shift = mult // 2, shift - 1
        else:
            mult -= 1
    return int(mult), int(shift)


def quantized_multipliers(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`quantized_multiplier` of every scale in numpy (the same float64 steps, so the same pairs),
    as int64 arrays; with a scale of 2**16 or more (a multiplier beyond 16 bits) scale by scale."""
    s = np.asarray(scales, dtype=np.float64)
    if np.any(s >= 2.0**16):
        pairs = [quantized_multiplier(float(v)) for v in s]
        return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)
    pos = s > 0.0
    safe = np.where(pos, s, 1.0)
    exp = np.frexp(safe)[1].astype(np.int64) - 1  # ilogb
    shift = np.minimum((-exp - 1 + 16) & 0xFFFFFFFF, 47)
    mult = np.floor(np.ldexp(safe, shift) + 0.5).astype(np.int64)  # lround of a positive value
    top = mult == 1 << 16
    halve = top & (shift > 0)
    mult = np.where(halve, mult // 2, np.where(top, mult - 1, mult))
    shift = np.where(halve, shift - 1, shift)
    return np.where(pos, mult, 0), np.where(pos, shift, 0)


def requant_from_scales(
    input_scale: float,
    weight_scales: np.ndarray | list[float],
    output_scale: float,
    output_zero_point: int,
    num_ofms: int,
) -> OfmRequant:
    """Header requantisation per OFM from the tensors' scales (computed in float32 like the driver).
    Per-tensor scales give read-only broadcast views (a depthwise layer has an OFM per 9 weights)."""
    ws = np.asarray(weight_scales, dtype=np.float32).ravel()
    if ws.size not in (1, num_ofms):
        raise ValueError(f"weight scales must be 1 or {num_ofms} values, got {ws.size}")
    overall = (np.float32(input_scale) * ws) / np.float32(output_scale)
    mult, shift = quantized_multipliers(overall)

    def full(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, (num_ofms,)) if a.size == 1 else a

    return OfmRequant(full(mult), full(shift), full(np.array([int(output_zero_point)], dtype=np.int64)),
                      per_channel=ws.size > 1)


@dataclass(frozen=True)
class EncodedSize:
    """Sizes of an encoding without its bytes (what the estimator needs)."""

    total_bytes: int
    max_stripe_bytes: int
    num_stripes: int  # metadata entries: stripes x IFM iterations


@dataclass(frozen=True)
class EncodedLayer:
    """Result for one layer: the DRAM blob plus per-stream sizes and parameters (stream order)."""

    data: bytes
    # Per stream, in encoder order (OFM-major, then IFM iteration; OFM = output channel for HWIO):
    stream_bits: np.ndarray  # bits of each stream (headers + chunks), before padding (uint16 or int32)
    max_stripe_bytes: int  # largest stripe: the SRAM slot the compiler must reserve
    params: Sequence[StreamParams]  # built on access: a layer can hold millions of streams
    stripe_metadata: tuple[tuple[int, int], ...] = field(default=())  # (offset, size) per stripe x iteration


def encode_layer(weights: np.ndarray, **kwargs: Any) -> EncodedLayer:
    """Encode int8/uint8 weights (HWIO conv/FC or HWIM depthwise) into the N78 DRAM weight blob.

    Keyword arguments: `zero_point` (the weight zero point, scalar or per output channel),
    `variant`, `layout` ("HWIO" or "HWIM"), `bias` (int32 per output channel), `stride`,
    `padding` = (top, left) (orders the stride sub-maps), `requant` (OfmRequant), `stripe_depth`
    (default all OFMs, rounded up to the OG or bank count), `fully_connected` (weights are padded
    with the zero point to a multiple of 1024 input channels), `iteration_size` (default the
    whole IFM depth), `algorithm` (Direct or Winograd).
    """
    out = _encode(weights, **kwargs)
    assert isinstance(out, EncodedLayer)
    return out


def encoded_size(weights: np.ndarray, **kwargs: Any) -> EncodedSize:
    """`encode_layer`'s sizes (total, largest stripe, stripes) without building the bytes."""
    out = _encode(weights, size_only=True, **kwargs)
    assert isinstance(out, EncodedSize)
    return out


def _encode(
    weights: np.ndarray,
    *,
    zero_point: int | np.ndarray,
    variant: N78Variant,
    layout: Layout,
    bias: np.ndarray | None = None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    requant: OfmRequant | None = None,
    stripe_depth: int | None = None,
    fully_connected: bool = False,
    iteration_size: int | None = None,
    algorithm: Algorithm | str = Algorithm.DIRECT,
    size_only: bool = False,
) -> EncodedLayer | EncodedSize:
    """Encode int8/uint8 weights (HWIO conv/FC or HWIM depthwise) into the N78 DRAM weight blob.

    `zero_point` is the weight zero point (scalar or per output channel); `bias` int32 per output
    channel; `padding` = (top, left) orders the stride sub-maps. `stripe_depth` defaults to all OFMs
    (rounded up to the OG or bank count), `iteration_size` to the whole IFM depth. Fully connected
    weights are padded with the zero point to a multiple of 1024 input channels first.
    """
    weights = np.asarray(weights)
    lo, hi = dtype_range(weights.dtype)
    zp0 = int(np.asarray(zero_point).ravel()[0]) if np.asarray(zero_point).size else 0
    if fully_connected:
        weights = fc_padded(weights, zp0)
    geo = geometry(weights.shape, variant, layout, stride, padding, stripe_depth, fully_connected,
                   iteration_size, Algorithm(algorithm))
    channels = geo.num_ofms
    zp = per_ofm(zero_point, channels, "zero_point")
    if zp.min() < lo or zp.max() > hi:
        raise ValueError(f"weight zero point outside [{lo}, {hi}]")
    bias_arr = per_ofm(0 if bias is None else bias, channels, "bias")
    if bias_arr.min() < -(1 << 31) or bias_arr.max() >= 1 << 31:
        raise ValueError("bias must fit int32")
    if requant is None:
        requant = OfmRequant(np.zeros(1), np.zeros(1), np.zeros(1))
    mult = per_ofm(requant.multiplier, channels, "multiplier")
    shift = per_ofm(requant.shift, channels, "shift")
    ozp = per_ofm(requant.zero_point, channels, "ofm zero point")
    per_channel = requant.per_channel or np.asarray(zero_point).size > 1
    fields = LayerFields(zp, bias_arr, (mult, shift, ozp), per_channel)
    if size_only:
        return _sizes(chunks_entry_len(weights, fields, geo, variant), geo, variant)
    blob = encode_chunks(weights, fields, geo, variant)
    stripe_size = geo.in_parallel * blob.entry_len
    meta = tuple((k * stripe_size, stripe_size) for k in range(geo.num_entries // geo.in_parallel))
    return EncodedLayer(blob.data, blob.stream_bits, stripe_size, ParamTable(blob.params), meta)


def _sizes(entry_len: int, geo: Geometry, variant: N78Variant) -> EncodedSize:
    """Blob size, SRAM slot of a stripe and metadata entries from the common group length."""
    banks = sram_layout(geo.num_entries, geo.num_iterations, variant)
    per_bank = max(len(b) for b in banks)
    stripes = geo.num_entries // geo.in_parallel
    return EncodedSize(per_bank * entry_len * variant.num_srams, geo.in_parallel * entry_len, stripes)
