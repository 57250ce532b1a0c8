"""Ethos-N78 layer weight decoder: DRAM blob -> SRAM banks -> groups -> streams -> weights.

The inverse of `weight_codec.encode_layer`: only the layer geometry and the request (stripe depth,
iteration size, algorithm) are needed; coding parameters and stream boundaries are read from the
bitstream. Chunks are parsed in plain Python (~0.3-0.6 M weights/s): it is meant for verification.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .batch_decode import decode_batches, group_bytes
from .layout import DMA_ALIGN, Algorithm, Geometry, dtype_range, fc_padded, geometry, per_ofm
from .stream_codec import INITIAL_PARAMS, StreamParams, decode_stream
from .variants import N78Variant
from .weight_codec import EncodedLayer, Layout

__all__ = ["DecodedLayer", "decode_layer", "decode_layer_full", "decode_weights"]


@dataclass(frozen=True)
class DecodedLayer:
    """Everything recovered from a blob: weights as stored, bias, requant fields and stream params."""

    weights: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    ofm_zero_point: np.ndarray
    params: tuple[StreamParams, ...]  # stream order, like EncodedLayer.params


def _entries(data: bytes, geo: Geometry, variant: N78Variant) -> list[bytes]:
    """The padded byte stream of every (stripe, group) entry, the bank interleave undone by `group_bytes`."""
    flat, entry_len = group_bytes(data, geo, variant)
    return [flat[e * entry_len : (e + 1) * entry_len].tobytes() for e in range(geo.num_entries)]


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
    iteration_size: int | None = None,
    algorithm: Algorithm | str = Algorithm.DIRECT,
) -> DecodedLayer:
    """Parse the blob (banks, headers, chunks) back to weights, bias and requant fields."""
    data = encoded.data if isinstance(encoded, EncodedLayer) else bytes(encoded)
    dt = np.dtype(dtype)
    bounds = dtype_range(dt)
    full_shape = tuple(shape)
    if fully_connected:
        full_shape = (*fc_padded(np.zeros((1, 1, shape[2], 1), dtype=dt), 0).shape[:3], shape[3])
    geo = geometry(full_shape, variant, layout, stride, padding, stripe_depth, fully_connected,
                   iteration_size, Algorithm(algorithm))
    zp = per_ofm(zero_point, geo.num_ofms, "zero_point")
    entry_bytes = _entries(data, geo, variant)
    entry_of = geo.entry_of_stream()
    n = variant.ifm_parallel
    iters = geo.num_iterations
    raws = [np.zeros((geo.num_ofms, order.size), dtype=np.int64) for order in geo.orders]
    fields = np.zeros((4, geo.num_ofms), dtype=np.int64)
    params: list[StreamParams] = []
    states: dict[int, tuple[StreamParams, tuple[int, int, int]]] = {}
    positions = np.zeros(geo.num_entries, dtype=np.int64)
    for s in range(geo.num_ofms * iters):
        ofm, it = divmod(s, iters)
        og = geo.og_of(ofm)
        e = int(entry_of[s])
        prev, prev_rq = states.get(og, (INITIAL_PARAMS, (0, 0, 0)))
        start = int(positions[e])
        ds = decode_stream(entry_bytes[e], ifm_parallel=n, prev=prev, bit_offset=start)
        expected = -(-ds.end_bit // (DMA_ALIGN * 8)) - (start // 8) // DMA_ALIGN
        if ds.length_words != expected or ds.weights.size != raws[it].shape[1]:
            raise ValueError(f"stream {s} is inconsistent with the layer geometry")
        hdr = ds.header
        rq = (hdr.multiplier, hdr.shift, hdr.zero_point) if hdr.reload else prev_rq
        raws[it][ofm] = ds.weights
        fields[:, geo.channel_of_ofm[ofm]] = (hdr.bias, *rq)
        params.append(ds.params)
        states[og] = (ds.params, rq)
        positions[e] = ds.end_bit
    weights = _assemble([(0, geo.num_ofms, raws)], zp, geo, full_shape, bounds, dt)
    if fully_connected:
        if np.any(weights[:, :, shape[2]:, :] != zp[None, None, None, :]):
            raise ValueError("fully connected padding differs from the zero point")
        weights = weights[:, :, : shape[2], :]
    return DecodedLayer(weights.astype(dt), fields[0], fields[1], fields[2], fields[3], tuple(params))


#: OFM weights scattered back at a time (the checks' temporaries stay small beside the layer).
ASSEMBLE_BLOCK = 1 << 20


def _assemble(batches: Iterable[tuple[int, int, list[np.ndarray]]], zp: np.ndarray, geo: Geometry,
              shape: tuple[int, ...], bounds: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """Scatter raw streams back into the tensor of `dtype`, checking padding and value range, a
    block of OFMs at a time; `batches` are (lo, hi, raws of OFMs lo..hi) as the decoder gives them."""
    kh, kw, cin, cout = shape
    hwio = geo.layout == "HWIO"
    out = np.zeros((kh * kw * cin, cout) if hwio else (kh * kw, cin * cout), dtype=dtype)
    step = max(1, ASSEMBLE_BLOCK // max(sum(o.size for o in geo.orders), 1))
    for first, last, raws in batches:
        for lo in range(first, last, step):
            hi = min(lo + step, last)
            channels = geo.channel_of_ofm[lo:hi]
            zpo = zp[channels][:, None].astype(np.int16)  # weights and zero points fit 9 bits
            for raw, order in zip(raws, geo.orders, strict=True):
                q = raw[lo - first : hi - first] + zpo
                valid = order >= 0
                if np.any(q[:, ~valid] != np.broadcast_to(zpo, q.shape)[:, ~valid]):
                    raise ValueError("padding weights differ from the zero point")
                if q.size and (q.min() < bounds[0] or q.max() > bounds[1]):
                    raise ValueError("decoded weights fall outside the weight data type")
                if hwio:
                    out[order[valid], lo:hi] = q[:, valid].T
                else:
                    out[np.ix_(order, channels)] = q.T
    return out.reshape(shape)


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
    iteration_size: int | None = None,
    algorithm: Algorithm | str = Algorithm.DIRECT,
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
        iteration_size=iteration_size,
        algorithm=algorithm,
    ).weights


def decode_weights(
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
    iteration_size: int | None = None,
    algorithm: Algorithm | str = Algorithm.DIRECT,
) -> np.ndarray:
    """`decode_layer` in numpy (`batch_decode.py`): the same weights and checks, headers skipped.

    Given an `EncodedLayer`, its stream lengths say where each stream should start, so all streams
    are parsed at once (each must end exactly where the next begins); given bytes, the OG chains are."""
    data = encoded.data if isinstance(encoded, EncodedLayer) else bytes(encoded)
    claimed = encoded.stream_bits if isinstance(encoded, EncodedLayer) else None
    dt = np.dtype(dtype)
    full_shape = tuple(shape)
    if fully_connected:
        full_shape = (*fc_padded(np.zeros((1, 1, shape[2], 1), dtype=dt), 0).shape[:3], shape[3])
    geo = geometry(full_shape, variant, layout, stride, padding, stripe_depth, fully_connected,
                   iteration_size, Algorithm(algorithm))
    zp = per_ofm(zero_point, geo.num_ofms, "zero_point")
    # Batch after batch: the blob is read a run of stripes at a time and never held de-interleaved.
    weights = _assemble(decode_batches(data, geo, variant, claimed), zp, geo, full_shape, dtype_range(dt), dt)
    if fully_connected:
        if np.any(weights[:, :, shape[2]:, :] != zp[None, None, None, :]):
            raise ValueError("fully connected padding differs from the zero point")
        weights = weights[:, :, : shape[2], :]
    return np.ascontiguousarray(weights)  # already of dtype `dt`: no copy unless fully connected padding was cut
