"""Ethos-N78 layer weight encoder: streams per OFM and IFM iteration, stripes, SRAM banks, DRAM blob.

Implements the N78 layout (shared facts §1.5), bit-exact with Arm's support library for a given
request (stripe depth, iteration size, algorithm). All streams of a layer are coded together in
numpy (`batch_plan.py` chooses the parameters, `batch_pack.py` places the bits; the one-stream
codec in `stream_codec.py` is their reference), so a layer costs a fixed number of array passes
rather than a Python step per stream (a depthwise layer has a stream per 9 weights):
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

from .batch_pack import layer_items, stream_bit_counts
from .batch_plan import LayerPlan, ParamTable, plan_layer_streams, prev_index
from .bitstream import scatter_bits
from .layout import (
    DMA_ALIGN,
    Algorithm,
    Geometry,
    dtype_range,
    fc_padded,
    geometry,
    per_ofm,
    sram_layout,
)
from .stream_codec import StreamParams, to_symbols
from .variants import N78Variant

__all__ = [
    "Algorithm",
    "EncodedLayer",
    "EncodedSize",
    "OfmRequant",
    "encode_layer",
    "encoded_size",
    "quantized_multiplier",
    "requant_from_scales",
]

Layout = Literal["HWIO", "HWIM"]

SEARCH_BLOCK = 1 << 18  # weights per parameter-search slice


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


def requant_from_scales(
    input_scale: float,
    weight_scales: np.ndarray | list[float],
    output_scale: float,
    output_zero_point: int,
    num_ofms: int,
) -> OfmRequant:
    """Header requantisation per OFM from the tensors' scales (computed in float32 like the driver)."""
    ws = np.asarray(weight_scales, dtype=np.float32).ravel()
    if ws.size not in (1, num_ofms):
        raise ValueError(f"weight scales must be 1 or {num_ofms} values, got {ws.size}")
    overall = (np.float32(input_scale) * ws) / np.float32(output_scale)
    pairs = [quantized_multiplier(float(s)) for s in np.broadcast_to(overall, (num_ofms,))]
    return OfmRequant(
        np.array([p[0] for p in pairs], dtype=np.int64),
        np.array([p[1] for p in pairs], dtype=np.int64),
        np.full(num_ofms, int(output_zero_point), dtype=np.int64),
        per_channel=ws.size > 1,
    )


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
    stream_bits: tuple[int, ...]  # bits of each stream (headers + chunks), before padding
    max_stripe_bytes: int  # largest stripe: the SRAM slot the compiler must reserve
    params: Sequence[StreamParams]  # built on access: a layer can hold millions of streams
    stripe_metadata: tuple[tuple[int, int], ...] = field(default=())  # (offset, size) per stripe x iteration


def _raw_streams(weights: np.ndarray, zp: np.ndarray, geo: Geometry, order: np.ndarray) -> np.ndarray:
    """(num_ofms, L) zero-point-corrected raw streams of one iteration; padding holds 0 (= zero point)."""
    kh, kw, cin, cout = weights.shape
    valid = order >= 0
    idx = np.where(valid, order, 0)
    if geo.layout == "HWIO":
        raw = weights.reshape(-1, cout).astype(np.int16)[idx].T  # (O, L), OFM == output channel
    else:
        raw = weights.reshape(kh * kw, cin * cout).astype(np.int16)[idx][:, geo.channel_of_ofm].T
    corrected = raw - zp[geo.channel_of_ofm][:, None].astype(np.int16)
    return np.where(valid[None, :], corrected, 0)


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
    plan, header = _stage1(weights, zp, geo, variant, bias_arr, (mult, shift, ozp), per_channel)
    if size_only:
        return _sizes(stream_bit_counts(plan, header, variant.ifm_parallel), geo, variant)
    data, bits, meta = _stage2(plan, header, geo, variant)
    return EncodedLayer(data, tuple(bits.tolist()), max(size for _, size in meta), ParamTable(plan), meta)


def _stage1(
    weights: np.ndarray,
    zp: np.ndarray,
    geo: Geometry,
    variant: N78Variant,
    bias_arr: np.ndarray,
    requant: tuple[np.ndarray, np.ndarray, np.ndarray],
    per_channel: bool,
) -> tuple[LayerPlan, tuple[np.ndarray, ...]]:
    """Parameters of every (OFM, iteration) stream, chosen together, and their header fields."""
    channels, iters = geo.num_ofms, geo.num_iterations
    s = np.arange(channels * iters)
    ofm, it = s // iters, s % iters
    og = (ofm % geo.stripe_depth) % geo.in_parallel
    prev = prev_index(og)
    sets_per_stripe = -(-geo.stripe_depth // geo.in_parallel)
    # The hardware restarts its decoder state at iteration 0 and for the OG's first OFM of a stripe.
    initial = (prev < 0) | ((iters > 1) & (it == 0)) | ((ofm % geo.stripe_depth == og) & (sets_per_stripe > 1))
    blocks = []
    rows = []
    for k, order in enumerate(geo.orders):
        sym = to_symbols(_raw_streams(weights, zp, geo, order))
        # The search runs on slices of about SEARCH_BLOCK weights: on a whole 32 M-weight layer its
        # temporaries would leave the cache and the search would be memory-bound.
        step = max(1, SEARCH_BLOCK // max(sym.shape[1], 1))
        for first in range(0, channels, step):
            blocks.append(sym[first : first + step])
            rows.append(np.arange(first, min(first + step, channels)) * iters + k)
    plan = plan_layer_streams(blocks, rows, og, initial, variant.ifm_parallel)
    ch = geo.channel_of_ofm[ofm]
    rq = np.stack([r[ch] for r in requant], axis=1)
    prev_rq = np.where((prev >= 0)[:, None], rq[np.maximum(prev, 0)], 0)
    reload = per_channel | (ofm < geo.in_parallel) | (rq != prev_rq).any(axis=1)
    return plan, (bias_arr[ch], reload, rq[:, 0], rq[:, 1], rq[:, 2])


def _entry_len(bits: np.ndarray, geo: Geometry) -> tuple[np.ndarray, int]:
    """Group of every stream and the common 16-byte-padded group length."""
    entries = geo.entry_of_stream()
    entry_bits = np.bincount(entries, weights=bits.astype(np.float64), minlength=geo.num_entries)
    return entries, -(-int(-(-int(entry_bits.max()) // 8)) // DMA_ALIGN) * DMA_ALIGN


def _sizes(bits: np.ndarray, geo: Geometry, variant: N78Variant) -> EncodedSize:
    _, entry_len = _entry_len(bits, geo)
    banks = sram_layout(geo.num_entries, geo.num_iterations, variant)
    per_bank = max(len(b) for b in banks)
    stripes = geo.num_entries // geo.in_parallel
    return EncodedSize(per_bank * entry_len * variant.num_srams, geo.in_parallel * entry_len, stripes)


def _stage2(
    plan: LayerPlan,
    header: tuple[np.ndarray, ...],
    geo: Geometry,
    variant: N78Variant,
) -> tuple[bytes, np.ndarray, tuple[tuple[int, int], ...]]:
    """Join streams per (stripe, group) bit-contiguously, patch lengths, pad to 16 bytes, interleave."""
    num_entries = geo.num_entries
    found: dict[str, Any] = {}

    def place(bits: np.ndarray) -> np.ndarray:
        """Start bit of every stream: its group's slot plus the bits of the group's earlier streams."""
        entries, entry_len = _entry_len(bits, geo)
        order = np.argsort(entries, kind="stable")
        c = np.cumsum(bits[order]) - bits[order]
        grp_first = np.searchsorted(entries[order], entries[order], side="left")
        offset = np.empty_like(bits)
        offset[order] = c - c[grp_first]
        # Length in 16-byte words spanned by the stream within its group's concatenated stream.
        words = -(-(offset + bits) // (DMA_ALIGN * 8)) - (offset // 8) // DMA_ALIGN
        if words.size and int(words.max()) > 0xFFFF:
            raise ValueError("weight stream longer than the 16-bit length field allows")
        found.update(words=words, entry_len=entry_len)
        return offset + entries * entry_len * 8

    vals, wids, starts, bits, length_item = layer_items(plan, header, variant.ifm_parallel, place)
    vals[length_item] = found["words"]
    entry_len = int(found["entry_len"])
    packed = scatter_bits(vals, wids, starts, num_entries * entry_len * 8).reshape(num_entries, entry_len)
    stripe_size = geo.in_parallel * entry_len
    meta = tuple((k * stripe_size, stripe_size) for k in range(num_entries // geo.in_parallel))
    layout = sram_layout(num_entries, geo.num_iterations, variant)
    return interleave(packed, layout), bits, meta


def interleave(entries: np.ndarray, banks: list[list[int]]) -> bytes:
    """Concatenate each bank's entries, then interleave 16-byte words across banks for the DMA."""
    _num, length = entries.shape
    per_bank = max(len(b) for b in banks)
    words = np.zeros((per_bank * length // DMA_ALIGN, len(banks), DMA_ALIGN), dtype=np.uint8)
    for b, group in enumerate(banks):
        if group:
            stream = entries[group].reshape(-1, DMA_ALIGN)
            words[: stream.shape[0], b, :] = stream
    return words.tobytes()
