"""Ethos-N78 layer weight encoder/decoder: raw stream order, OFM->OG assignment and the DRAM blob.

Implements shared/docs/ethos-n-facts.md §1.5 on top of the single-stream core in `stream_codec.py`.

Policies and simplifications (an offline re-encoder has to fix what the compiler chooses per plan):
- Stripe policy: one full-depth stripe by default (stripe depth = #OFMs rounded up to #OGs for HWIO,
  to #SRAMs for HWIM). Parameters and palettes then carry over between all streams of an OG, which is
  the best case the hardware allows and makes the blob independent of the SRAM budget. Pass
  `stripe_depth` to model the compiler's streaming choice; compare `max_stripe_bytes` to SRAM yourself.
- One IFM iteration per OFM (no IFM-depth streaming), direct convolution only (no Winograd order).
- Fully connected layers: HWIO with H = W = 1. By default they are encoded as a 1x1 convolution;
  `fully_connected=True` applies the driver's 1024-channel brick reorder (IFM padded to 1024).
- The decoder parses chunks in plain Python (~0.3-0.6 M weights/s): it is meant for verification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .bitstream import scatter_bits
from .stream_codec import (
    INITIAL_PARAMS,
    MAX_SYMBOL,
    DecodedStream,
    OfmHeader,
    StreamParams,
    decode_stream,
    encode_stream,
    plan_stream,
    stream_items,
    to_symbols,
)
from .variants import N78Variant

__all__ = [
    "DecodedLayer",
    "EncodedLayer",
    "OfmHeader",
    "OfmRequant",
    "StreamParams",
    "decode_layer",
    "decode_layer_full",
    "decode_stream",
    "encode_layer",
    "encode_stream",
    "fc_raw_order",
    "hwim_raw_order",
    "hwio_raw_order",
]

Layout = Literal["HWIO", "HWIM"]
DMA_ALIGN = 16  # the weight DMA moves 16-byte words; streams are padded and interleaved in them
MAX_DIRECT_KERNEL = 7  # larger direct kernels are split into 3x3 / 1x3 / 3x1 sub-kernels
WIDE_SUBKERNEL = 3
FC_BRICK = 1024  # fully connected IFMs are reordered inside 1024-channel bricks
FC_PATCH = 16


@dataclass(frozen=True, eq=False)
class OfmRequant:
    """Per-OFM requantisation fields for the weight headers (TFLite output-channel order)."""

    multiplier: np.ndarray  # uint16 quantised multipliers
    shift: np.ndarray  # 0..63
    zero_point: np.ndarray  # output zero point, -128..255
    per_channel: bool = False  # per-channel weight scales force a reload on every OFM


@dataclass(frozen=True)
class EncodedLayer:
    """Result for one layer: the DRAM blob plus per-stream sizes and parameters (OFM order)."""

    data: bytes
    # Per stream, in encoder OFM order (= output channel for HWIO; m*I + i for HWIM):
    stream_bits: tuple[int, ...]  # bits of each OFM stream (headers + chunks), before padding
    max_stripe_bytes: int  # largest stripe: the SRAM slot the compiler must reserve
    params: tuple[StreamParams, ...]
    stripe_metadata: tuple[tuple[int, int], ...] = field(default=())  # (offset, size) per stripe


@dataclass(frozen=True)
class DecodedLayer:
    """Everything recovered from a blob: weights as stored, bias, requant fields and stream params."""

    weights: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    ofm_zero_point: np.ndarray
    params: tuple[StreamParams, ...]  # encoder OFM order, like EncodedLayer.params


# ----------------------------------------------------------------------------- raw order


def _submaps(kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Stride sub-map filters (offset y, offset x, height, width), ordered by the padded phase."""
    (sy, sx), (pt, pl) = stride, padding
    out = []
    for y in range(sy):
        oy = (y + pt) % sy
        for x in range(sx):
            ox = (x + pl) % sx
            out.append((oy, ox, max(0, -(-(kh - oy) // sy)), max(0, -(-(kw - ox) // sx))))
    return out


def hwio_raw_order(kh: int, kw: int, cin: int, n: int, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Per-OFM raw order as indices into the flattened (H, W, I) filter; -1 marks zero-point padding.

    Loops: wide sub-kernel -> slice of N IFMs -> stride sub-map -> kernel row-major -> N channels.
    """
    wide = kh > MAX_DIRECT_KERNEL or kw > MAX_DIRECT_KERNEL
    if wide and stride != (1, 1):
        raise ValueError("kernels larger than 7 need stride 1 (wide-kernel mode)")
    if wide:
        sky = 1 if kh == 1 else WIDE_SUBKERNEL
        skx = 1 if kw == 1 else WIDE_SUBKERNEL
        wides = [(h * sky, w * skx, sky, skx) for h in range(-(-kh // sky)) for w in range(-(-kw // skx))]
    else:
        wides = [(0, 0, kh, kw)]
    subs = _submaps(kh, kw, stride, padding)
    sy, sx = stride
    parts: list[np.ndarray] = []
    for woy, wox, wkh, wkw in wides:
        for start in range(0, cin, n):
            in_slice = min(n, cin - start)
            for k, (oy, ox, fh, fw) in enumerate(subs):
                # All but the last sub-map are padded to N channels; the last is tightly packed.
                chans = start + np.arange(in_slice if k == len(subs) - 1 else n)
                if fh == 0 or fw == 0:
                    # An empty sub-map still occupies a 1x1 filter of zero points.
                    parts.append(np.full(chans.size, -1, dtype=np.int64))
                    continue
                hh, ww = np.meshgrid(np.arange(wkh if wide else fh), np.arange(wkw if wide else fw), indexing="ij")
                y, x = hh.ravel() + woy, ww.ravel() + wox
                valid = (y < kh) & (x < kw)
                pos = ((y * sy + oy) * kw + (x * sx + ox))[:, None] * cin + chans[None, :]
                ok = valid[:, None] & (chans < cin)[None, :]
                parts.append(np.where(ok, pos, -1).ravel())
    return np.concatenate(parts)


def fc_raw_order(cin: int, num_srams: int) -> np.ndarray:
    """Fully connected order: IFMs in 1024-channel bricks of 16-channel patches spread over SRAMs."""
    e = np.arange(-(-cin // FC_BRICK) * FC_BRICK)
    brick, in_brick = e // FC_BRICK, e % FC_BRICK
    qsize = FC_PATCH * num_srams
    qb = in_brick // qsize
    qb = (qb % 4) * (16 // num_srams) + qb // 4
    in_q = in_brick % qsize
    raw = brick * FC_BRICK + qb * qsize + (in_q % num_srams) * FC_PATCH + in_q // num_srams
    return np.where(raw < cin, raw, -1)


def hwim_raw_order(kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Depthwise: only the OFM's own k*k weights per sub-map (the N78 inserts the zeros itself)."""
    sy, sx = stride
    parts = []
    for oy, ox, fh, fw in _submaps(kh, kw, stride, padding):
        hh, ww = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        parts.append(((hh.ravel() * sy + oy) * kw + (ww.ravel() * sx + ox)).astype(np.int64))
    return np.concatenate(parts)


# ----------------------------------------------------------------------------- layer geometry


@dataclass(frozen=True)
class _Geometry:
    num_ofms: int
    stripe_depth: int
    in_parallel: int  # streams loaded at once: one per OG (HWIO) or per SRAM (HWIM)
    num_stripes: int
    index: np.ndarray  # raw-order gather index, see hwio_raw_order / hwim_raw_order
    channel_of_ofm: np.ndarray  # TFLite output channel of each encoder OFM index

    def og_of(self, ofm: int) -> int:
        return (ofm % self.stripe_depth) % self.in_parallel


def _geometry(
    shape: tuple[int, ...],
    variant: N78Variant,
    layout: Layout,
    stride: tuple[int, int],
    padding: tuple[int, int],
    stripe_depth: int | None,
    fully_connected: bool,
) -> _Geometry:
    if len(shape) != 4 or min(shape) <= 0:
        raise ValueError(f"weights must be a non-empty 4-D {layout} tensor, got shape {shape}")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError("stride must be >= 1 and padding >= 0")
    kh, kw, cin, cout = (int(s) for s in shape)
    if layout == "HWIO":
        num_ofms, unit = cout, variant.num_ogs
        if fully_connected:
            if (kh, kw) != (1, 1) or stride != (1, 1):
                raise ValueError("fully connected weights must be 1x1xIxO with stride 1")
            index = fc_raw_order(cin, variant.num_srams)
        else:
            index = hwio_raw_order(kh, kw, cin, variant.ifm_parallel, stride, padding)
        channel = np.arange(num_ofms)
    elif layout == "HWIM":
        # Driver OFM order is multiplier-major (ofm = m*I + i); TFLite's channel is i*M + m.
        num_ofms, unit = cin * cout, variant.num_srams
        index = hwim_raw_order(kh, kw, stride, padding)
        ofm = np.arange(num_ofms)
        channel = (ofm % cin) * cout + ofm // cin
    else:
        raise ValueError(f"unknown layout {layout!r}")
    depth = -(-num_ofms // unit) * unit if stripe_depth is None else int(stripe_depth)
    if depth < 1:
        raise ValueError("stripe_depth must be >= 1")
    return _Geometry(num_ofms, depth, min(unit, depth), -(-num_ofms // depth), index, channel)


def _per_ofm(value: int | np.ndarray, count: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.int64)
    if arr.size == 1:
        return np.full(count, int(arr.ravel()[0]), dtype=np.int64)
    if arr.shape != (count,):
        raise ValueError(f"{name} must be a scalar or have {count} entries, got shape {arr.shape}")
    return arr


def _dtype_range(dtype: np.dtype) -> tuple[int, int]:
    if dtype == np.int8:
        return -128, 127
    if dtype == np.uint8:
        return 0, 255
    raise ValueError(f"weights must be int8 or uint8, got {dtype}")


def _raw_streams(weights: np.ndarray, zp: np.ndarray, geo: _Geometry, layout: Layout) -> np.ndarray:
    """(num_ofms, L) zero-point-corrected raw streams; padding positions hold 0 (= the zero point)."""
    kh, kw, cin, cout = weights.shape
    idx = geo.index
    valid = idx >= 0
    if layout == "HWIO":
        flat = weights.reshape(-1, cout).astype(np.int16)
        raw = flat[np.where(valid, idx, 0)].T  # (O, L), OFM == output channel
    else:
        flat = weights.reshape(kh * kw, cin * cout).astype(np.int16)
        raw = flat[np.where(valid, idx, 0)][:, geo.channel_of_ofm].T
    corrected = raw - zp[geo.channel_of_ofm][:, None].astype(np.int16)
    return np.where(valid[None, :], corrected, 0)


# ----------------------------------------------------------------------------- encode


def encode_layer(
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
) -> EncodedLayer:
    """Encode int8/uint8 weights (HWIO conv/FC or HWIM depthwise) into the N78 DRAM weight blob.

    `zero_point` is the weight zero point, scalar or per output channel; `bias` is int32 per output
    channel; `padding` = (top, left) decides the stride sub-map order. See the module notes.
    """
    weights = np.asarray(weights)
    lo, hi = _dtype_range(weights.dtype)
    geo = _geometry(weights.shape, variant, layout, stride, padding, stripe_depth, fully_connected)
    channels = geo.num_ofms
    zp = _per_ofm(zero_point, channels, "zero_point")
    if zp.min() < lo or zp.max() > hi:
        raise ValueError(f"weight zero point outside [{lo}, {hi}]")
    bias_arr = _per_ofm(0 if bias is None else bias, channels, "bias")
    if bias_arr.min() < -(1 << 31) or bias_arr.max() >= 1 << 31:
        raise ValueError("bias must fit int32")
    if requant is None:
        requant = OfmRequant(np.zeros(1), np.zeros(1), np.zeros(1))
    mult = _per_ofm(requant.multiplier, channels, "multiplier")
    shift = _per_ofm(requant.shift, channels, "shift")
    ozp = _per_ofm(requant.zero_point, channels, "ofm zero point")
    per_channel = requant.per_channel or np.asarray(zero_point).size > 1
    sym = to_symbols(_raw_streams(weights, zp, geo, layout))
    # All per-stream symbol histograms in one bincount (row offset = ofm * 512).
    offsets = (np.arange(geo.num_ofms, dtype=np.int64) * (MAX_SYMBOL + 1))[:, None]
    hists = np.bincount((sym + offsets).ravel(), minlength=geo.num_ofms * (MAX_SYMBOL + 1))
    hists = hists.reshape(geo.num_ofms, MAX_SYMBOL + 1)
    n = variant.ifm_parallel

    # Stage 1: one stream per OFM; compression state is carried per OG (wdIdx in the driver).
    states: dict[int, tuple[StreamParams, bool, tuple[int, int, int]]] = {}
    sets_per_stripe = -(-geo.stripe_depth // geo.in_parallel)
    items, bits, params = [], [], []
    for ofm in range(geo.num_ofms):
        og = geo.og_of(ofm)
        prev, initial, prev_rq = states.get(og, (INITIAL_PARAMS, True, (-1, -1, -1)))
        if not initial and ofm % geo.stripe_depth == og and sets_per_stripe > 1:
            initial = True  # first OFM of the OG in a new stripe: the hardware restarts its state
        ch = int(geo.channel_of_ofm[ofm])
        rq = (int(mult[ch]), int(shift[ch]), int(ozp[ch]))
        reload = per_channel or ofm < geo.in_parallel or rq != prev_rq
        header = OfmHeader(int(bias_arr[ch]), *rq, reload=reload)
        plan = plan_stream(sym[ofm], hists[ofm], n, prev, initial)
        item = stream_items(header, plan, n)
        items.append(item)
        bits.append(item[3])
        params.append(plan.params)
        states[og] = (plan.params, False, rq)

    # Stage 2: concatenate per (stripe, OG) bit-contiguously, patch lengths, pad, interleave.
    entries: list[list[int]] = [[] for _ in range(geo.num_stripes * geo.in_parallel)]
    for ofm in range(geo.num_ofms):
        entries[(ofm // geo.stripe_depth) * geo.in_parallel + geo.og_of(ofm)].append(ofm)
    entry_bits = [sum(bits[o] for o in group) for group in entries]
    entry_len = -(-max(-(-b // 8) for b in entry_bits) // DMA_ALIGN) * DMA_ALIGN
    all_v, all_w, all_s = [], [], []
    for e, group in enumerate(entries):
        offset = 0
        for ofm in group:
            vals, wids, starts, total = items[ofm]
            # Length in 16-byte words spanned by the stream within the OG's concatenated stream.
            words = -(-(offset + total) // (DMA_ALIGN * 8)) - (offset // 8) // DMA_ALIGN
            if words > 0xFFFF:
                raise ValueError("weight stream longer than the 16-bit length field allows")
            vals = vals.copy()
            vals[0] = words
            all_v.append(vals)
            all_w.append(wids)
            all_s.append(starts + offset + e * entry_len * 8)
            offset += total
    packed = scatter_bits(
        np.concatenate(all_v), np.concatenate(all_w), np.concatenate(all_s), len(entries) * entry_len * 8
    ).reshape(len(entries), entry_len)
    data = _interleave(packed, variant.num_srams)
    stripe_size = geo.in_parallel * entry_len
    meta = tuple((s * stripe_size, stripe_size) for s in range(geo.num_stripes))
    return EncodedLayer(data, tuple(bits), stripe_size, tuple(params), meta)


def _bank_order(num_entries: int, num_srams: int) -> list[list[int]]:
    """Entries (stripe-major, OG-minor) assigned to SRAM banks round-robin, in order."""
    return [list(range(b, num_entries, num_srams)) for b in range(num_srams)]


def _interleave(entries: np.ndarray, num_srams: int) -> bytes:
    """Group entries per SRAM bank, then interleave 16-byte words across banks for the DMA."""
    num, length = entries.shape
    banks = _bank_order(num, num_srams)
    per_bank = max(len(b) for b in banks)
    words = np.zeros((per_bank * length // DMA_ALIGN, num_srams, DMA_ALIGN), dtype=np.uint8)
    for b, group in enumerate(banks):
        if group:
            stream = entries[group].reshape(-1, DMA_ALIGN)
            words[: stream.shape[0], b, :] = stream
    return words.tobytes()


# ----------------------------------------------------------------------------- decode


def decode_layer_full(
    encoded: EncodedLayer | bytes,
    *,
    shape: tuple[int, int, int, int],
    variant: N78Variant,
    layout: Layout,
    zero_point: int | np.ndarray,
    dtype: type[np.integer] | np.dtype = np.int8,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    stripe_depth: int | None = None,
    fully_connected: bool = False,
) -> DecodedLayer:
    """Parse the blob (banks, headers, chunks) back to weights, bias and requant fields.

    Only the layer geometry and policy used at encode time are needed; all coding parameters and
    stream boundaries are read from the bitstream itself.
    """
    data = encoded.data if isinstance(encoded, EncodedLayer) else bytes(encoded)
    dt = np.dtype(dtype)
    lo, hi = _dtype_range(dt)
    geo = _geometry(tuple(shape), variant, layout, stride, padding, stripe_depth, fully_connected)
    zp = _per_ofm(zero_point, geo.num_ofms, "zero_point")
    num_entries = geo.num_stripes * geo.in_parallel
    banks = _bank_order(num_entries, variant.num_srams)
    per_bank = max(len(b) for b in banks)
    unit = variant.num_srams * DMA_ALIGN * per_bank
    if not data or len(data) % unit:
        raise ValueError("blob size does not match the layer geometry")
    entry_len = len(data) // unit * DMA_ALIGN
    words = np.frombuffer(data, dtype=np.uint8).reshape(-1, variant.num_srams, DMA_ALIGN)
    entry_bytes: dict[int, bytes] = {}
    for b, group in enumerate(banks):
        stream = words[:, b, :].reshape(-1)
        for k, e in enumerate(group):
            entry_bytes[e] = stream[k * entry_len : (k + 1) * entry_len].tobytes()
    n = variant.ifm_parallel
    length = geo.index.size
    raw = np.zeros((geo.num_ofms, length), dtype=np.int64)
    heads: list[OfmHeader | None] = [None] * geo.num_ofms
    params: list[StreamParams | None] = [None] * geo.num_ofms
    states: dict[int, tuple[StreamParams, tuple[int, int, int]]] = {}
    positions = {e: 0 for e in range(num_entries)}
    for ofm in range(geo.num_ofms):
        og = geo.og_of(ofm)
        e = (ofm // geo.stripe_depth) * geo.in_parallel + og
        prev, prev_rq = states.get(og, (INITIAL_PARAMS, (0, 0, 0)))
        start = positions[e]
        ds: DecodedStream = decode_stream(entry_bytes[e], ifm_parallel=n, prev=prev, bit_offset=start)
        expected = -(-ds.end_bit // (DMA_ALIGN * 8)) - (start // 8) // DMA_ALIGN
        if ds.length_words != expected or ds.weights.size != length:
            raise ValueError(f"stream {ofm} is inconsistent with the layer geometry")
        hdr = ds.header
        rq = (hdr.multiplier, hdr.shift, hdr.zero_point) if hdr.reload else prev_rq
        raw[ofm] = ds.weights
        heads[ofm] = OfmHeader(hdr.bias, *rq, reload=hdr.reload)
        params[ofm] = ds.params
        states[og] = (ds.params, rq)
        positions[e] = ds.end_bit
    return _assemble(raw, heads, params, zp, geo, shape, layout, dt, (lo, hi))


def _assemble(
    raw: np.ndarray,
    heads: list[OfmHeader | None],
    params: list[StreamParams | None],
    zp: np.ndarray,
    geo: _Geometry,
    shape: tuple[int, int, int, int],
    layout: Layout,
    dt: np.dtype,
    bounds: tuple[int, int],
) -> DecodedLayer:
    """Scatter raw streams back into the tensor and collect header fields per output channel."""
    kh, kw, cin, cout = shape
    num = geo.num_ofms
    q = raw + zp[geo.channel_of_ofm][:, None]
    valid = geo.index >= 0
    if np.any(q[:, ~valid] != zp[geo.channel_of_ofm][:, None]):
        raise ValueError("padding weights differ from the zero point")
    if q.min() < bounds[0] or q.max() > bounds[1]:
        raise ValueError("decoded weights fall outside the weight data type")
    if layout == "HWIO":
        out = np.zeros((kh * kw * cin, cout), dtype=np.int64)
        out[geo.index[valid]] = q[:, valid].T
    else:
        out = np.zeros((kh * kw, cin * cout), dtype=np.int64)
        out[np.ix_(geo.index, geo.channel_of_ofm)] = q.T
    fields = np.zeros((4, num), dtype=np.int64)
    for ofm, hdr in enumerate(heads):
        assert hdr is not None
        fields[:, geo.channel_of_ofm[ofm]] = (hdr.bias, hdr.multiplier, hdr.shift, hdr.zero_point)
    return DecodedLayer(
        out.reshape(shape).astype(dt),
        fields[0],
        fields[1],
        fields[2],
        fields[3],
        tuple(p for p in params if p is not None),
    )


def decode_layer(
    encoded: EncodedLayer | bytes,
    *,
    shape: tuple[int, int, int, int],
    variant: N78Variant,
    layout: Layout,
    zero_point: int | np.ndarray,
    dtype: type[np.integer] | np.dtype = np.int8,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    stripe_depth: int | None = None,
    fully_connected: bool = False,
) -> np.ndarray:
    """Decode a blob back to the quantised weights (same layout and dtype as given to encode)."""
    return decode_layer_full(
        encoded,
        shape=shape,
        variant=variant,
        layout=layout,
        zero_point=zero_point,
        dtype=dtype,
        stride=stride,
        padding=padding,
        stripe_depth=stripe_depth,
        fully_connected=fully_connected,
    ).weights
