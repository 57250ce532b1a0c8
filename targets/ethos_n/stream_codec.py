"""Ethos-N78 single-stream weight codec ("weight compression version 1"): headers plus chunks.

A stream is a weight header (bias, requantisation), a payload header (compression parameters,
palette) and the GRC-coded chunks of `stream_chunks.py`, with parameters from `stream_params.py`.
This is the one-stream codec (and the decoder); `weight_codec.py` encodes whole layers with the
batched `batch_*` modules, which give the same bits for all streams at once. Pure numpy functions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .bitstream import BitReader, scatter_bits
from .stream_chunks import Items, chunk_bits, decode_chunks, pack_chunks
from .stream_params import (
    BIAS_BITS,
    INITIAL_PARAMS,
    LENGTH_PLACEHOLDER,
    MAX_PLDLEN,
    MAX_SYMBOL,
    WDIV_UNCOMPRESSED,
    ZDIV_RLE_OFF,
    OfmHeader,
    StreamParams,
    StreamPlan,
    choose_params,
    from_symbols,
    plan_stream,
    to_symbols,
)

__all__ = [
    "INITIAL_PARAMS",
    "MAX_SYMBOL",
    "DecodedStream",
    "EncodedStream",
    "OfmHeader",
    "StreamParams",
    "StreamPlan",
    "choose_params",
    "decode_stream",
    "encode_stream",
    "from_symbols",
    "header_fields",
    "pack_chunks",
    "plan_stream",
    "stream_bits",
    "stream_items",
    "to_symbols",
]

@dataclass(frozen=True)
class EncodedStream:
    """One encoded stream: LSB-first bytes (length field still 0xFFFF) and its exact bit length."""

    data: bytes
    num_bits: int
    params: StreamParams


@dataclass(frozen=True)
class DecodedStream:
    """Result of parsing one stream: zero-point-corrected weights and the header/params it carried."""

    weights: np.ndarray
    header: OfmHeader
    params: StreamParams
    length_words: int
    end_bit: int
def header_fields(header: OfmHeader, params: StreamParams, pldlen: int) -> list[tuple[int, int]]:
    """(value, width) fields of the weight header and payload header, in bitstream order."""
    fields = [(LENGTH_PLACEHOLDER, 16), (header.bias & 0xFFFFFFFF, BIAS_BITS), (int(header.reload), 1)]
    if header.reload:
        fields += [(header.multiplier, 16), (header.shift, 6), (header.zero_point & 0xFF, 8)]
    fields += [(pldlen, 17), (int(params.reload_params), 1)]
    if params.reload_params:
        fields += [
            (params.zdiv, 3),
            (params.wdiv, 3),
            (int(params.truncation), 1),
            (params.weight_offset, 5),
            (int(params.reload_palette), 1),
        ]
        if params.reload_palette:
            width = params.palette_bits + 2
            fields += [(max(len(params.palette) - 1, 0), 5), (params.palette_bits, 3)]
            # Sign-magnitude entries: magnitude, sign in the top bit of the entry.
            fields += [(abs(v) | (int(v < 0) << (width - 1)), width) for v in params.palette]
    return fields


def stream_items(header: OfmHeader, plan: StreamPlan, n: int) -> Items:
    """All bit items of one stream (headers + chunks) with starts relative to the stream start."""
    if plan.f.size > MAX_PLDLEN:
        raise ValueError(f"stream has {plan.f.size} coded weights; PLDLEN is limited to {MAX_PLDLEN}")
    hdr = header_fields(header, plan.params, plan.f.size)
    hv = np.array([v for v, _ in hdr], dtype=np.int64)
    hw = np.array([b for _, b in hdr], dtype=np.int64)
    hs = np.cumsum(hw) - hw
    head_bits = int(hw.sum())
    cv, cw, cs, ctotal = pack_chunks(plan.f, plan.z, plan.params, n)
    return (
        np.concatenate([hv, cv]),
        np.concatenate([hw, cw]),
        np.concatenate([hs, cs + head_bits]),
        head_bits + ctotal,
    )


def stream_bits(header: OfmHeader, plan: StreamPlan, n: int) -> int:
    """Bit length of `stream_items(header, plan, n)` (headers + chunks) without building them."""
    if plan.f.size > MAX_PLDLEN:
        raise ValueError(f"stream has {plan.f.size} coded weights; PLDLEN is limited to {MAX_PLDLEN}")
    head = sum(b for _, b in header_fields(header, plan.params, plan.f.size))
    return head + chunk_bits(plan.f, plan.z, plan.params, n)


def encode_stream(
    w: np.ndarray,
    *,
    ifm_parallel: int,
    header: OfmHeader | None = None,
    prev: StreamParams = INITIAL_PARAMS,
    initial: bool = True,
) -> EncodedStream:
    """Encode one stream of zero-point-corrected weights w = q - zp (each in [-255, 255]).

    `prev`/`initial` model the parameters the OG already holds, so reused parameters are not resent.
    """
    w = np.asarray(w, dtype=np.int64).ravel()
    ifm_parallel = int(ifm_parallel)
    if w.size and (w.min() < -255 or w.max() > 255):
        raise ValueError("zero-point-corrected weights must lie in [-255, 255]")
    if ifm_parallel not in (8, 16):
        raise ValueError("ifm_parallel must be 8 or 16")
    plan = choose_params(w, ifm_parallel, prev, initial)
    vals, wids, starts, total = stream_items(header or OfmHeader(), plan, ifm_parallel)
    return EncodedStream(scatter_bits(vals, wids, starts, total).tobytes(), total, plan.params)


def _read_params(r: BitReader, prev: StreamParams) -> StreamParams:
    """Parse the payload header's compression-parameter part (after PLDLEN)."""
    if not r.read(1):
        return replace(prev, reload_params=False, reload_palette=False)
    zdiv, wdiv, trunc, dirofs, pal_reload = r.read(3), r.read(3), bool(r.read(1)), r.read(5), r.read(1)
    if zdiv not in (0, 1, 2, 3, ZDIV_RLE_OFF) or wdiv not in (0, 1, 2, 3, 4, 5, WDIV_UNCOMPRESSED):
        raise ValueError(f"invalid ZDIV/WDIV {zdiv}/{wdiv}")
    palette, pbits = prev.palette, prev.palette_bits
    if pal_reload:
        size_m1, pbits = r.read(5), r.read(3)
        width = pbits + 2
        entries = [r.read(width) for _ in range(size_m1 + 1 if size_m1 else 0)]
        mag_mask = (1 << (width - 1)) - 1
        palette = tuple(-(e & mag_mask) if e >> (width - 1) else e & mag_mask for e in entries)
    return StreamParams(zdiv, wdiv, trunc, dirofs, palette, pbits, True, bool(pal_reload))


def _symbols_to_weights(f: np.ndarray, p: StreamParams) -> np.ndarray:
    """Undo palette/direct mapping: index < P -> palette value, else zig-zag symbol f - P + DIROFS."""
    size = len(p.palette)
    if f.size == 0:
        return f
    if size:
        pal = np.array(p.palette, dtype=np.int64)
        direct = from_symbols(np.maximum(f - size + p.weight_offset, 0))
        return np.where(f < size, pal[np.minimum(f, size - 1)], direct)
    return from_symbols(f + p.weight_offset)


def decode_stream(
    data: bytes,
    *,
    ifm_parallel: int,
    prev: StreamParams = INITIAL_PARAMS,
    bit_offset: int = 0,
    bit_limit: int | None = None,
) -> DecodedStream:
    """Parse one stream starting at `bit_offset`; `prev` is the OG's parameter state before it."""
    ifm_parallel = int(ifm_parallel)
    if ifm_parallel not in (8, 16):
        raise ValueError("ifm_parallel must be 8 or 16")
    r = BitReader(data, bit_offset, bit_limit)
    length = r.read(16)
    bias = r.read_signed(BIAS_BITS)
    reload = bool(r.read(1))
    mult = shift = zp = 0
    if reload:
        mult, shift, zp = r.read(16), r.read(6), r.read_signed(8)
    header = OfmHeader(bias, mult, shift, zp, reload)
    n_w = r.read(17)
    params = _read_params(r, prev)
    f, zruns = decode_chunks(r, n_w, params, ifm_parallel)
    w = _symbols_to_weights(f, params)
    if params.rle:
        out = np.zeros(n_w + int(zruns.sum()), dtype=np.int64)
        out[np.cumsum(zruns[:-1]) + np.arange(n_w)] = w
        w = out
    return DecodedStream(w, header, params, length, r.pos)
