"""Ethos-N78 layer encoding in bounded chunks of whole stripes.

Groups never span stripes, and the streams of a run of whole stripes depend on the rest of the
layer only through what each OG holds when the run starts (the decoder keeps its parameters and
palette per OG; it restarts them for the first stream of every OG in a stripe when a stripe holds
more than one OFM per OG, and at IFM iteration 0) and the requantisation of the OG's previous OFM.
Carrying those, a large layer is encoded a few hundred thousand weights at a time and its
temporaries stay bounded however large it is; only the 16-byte-padded group length is common to
the whole layer, so each chunk is packed to its own length and placed in the blob at once
(`blob.py` re-spaces the groups when a later chunk is longer and interleaves the banks at the end).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .batch_pack import layer_items, stream_bit_counts
from .batch_params import stable_order
from .batch_plan import Held, LayerPlan, ParamArrays, plan_layer_streams, prev_index
from .bitstream import scatter_bits
from .blob import BlobBuilder
from .layout import DMA_ALIGN, Geometry
from .stream_codec import to_symbols
from .variants import N78Variant

#: Weights per chunk (whole stripes, at least one): big enough that numpy's per-call cost is
#: amortised, small enough that a chunk's temporaries stay in the caches and in bounded memory.
CHUNK_WEIGHTS = 1 << 18
#: Weights per parameter-search slice inside a chunk (the search's temporaries are the widest).
SEARCH_BLOCK = 1 << 17

#: Per-layer header fields of every stream: bias, requant reload, multiplier, shift, OFM zero point.
Header = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class LayerFields:
    """What every chunk needs besides the weights: per-OFM zero point, bias and requantisation."""

    zp: np.ndarray  # weight zero point per TFLite output channel
    bias: np.ndarray  # per TFLite output channel
    requant: tuple[np.ndarray, np.ndarray, np.ndarray]  # multiplier, shift, OFM zero point per channel
    per_channel: bool  # per-channel scales: the header reloads the requantisation on every OFM


@dataclass(frozen=True)
class PackedChunk:
    """One chunk's groups (stripe-major, each zero-padded to the chunk's longest) and its streams."""

    first_entry: int
    entries: np.ndarray  # (groups, bytes) uint8
    bits: np.ndarray  # per stream (uint16 where they fit, else int32)
    params: ParamArrays


def chunk_bounds(geo: Geometry, limit: int | None = None) -> list[tuple[int, int]]:
    """OFM ranges of whole stripes, about `limit` weights each (what each OG holds is carried from
    one to the next, so a cut needs no restart of the decoder state)."""
    per_stripe = geo.stripe_depth * sum(order.size for order in geo.orders)
    limit = CHUNK_WEIGHTS if limit is None else limit
    step = max(1, limit // max(per_stripe, 1)) * geo.stripe_depth
    return [(lo, min(lo + step, geo.num_ofms)) for lo in range(0, geo.num_ofms, step)]


def _raw_streams(weights: np.ndarray, geo: Geometry, order: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """(hi - lo, L) raw streams of OFMs lo..hi for one iteration (int16, zero point not yet removed)."""
    kh, kw, cin, cout = weights.shape
    idx = np.where(order >= 0, order, 0)
    if geo.layout == "HWIO":  # OFM == output channel
        return weights.reshape(-1, cout)[:, lo:hi][idx].T.astype(np.int16)
    cols = weights.reshape(kh * kw, cin * cout)[:, geo.channel_of_ofm[lo:hi]]
    return cols[idx].T.astype(np.int16)


def plan_chunk(weights: np.ndarray, fields: LayerFields, geo: Geometry, variant: N78Variant,
               lo: int, hi: int, held: Held) -> tuple[LayerPlan, Header, Held]:
    """Parameters of the (OFM, iteration) streams of OFMs lo..hi, chosen together, their headers,
    and what the OGs hold afterwards (`held`: what they hold before)."""
    iters, depth, par = geo.num_iterations, geo.stripe_depth, geo.in_parallel
    s = np.arange(lo * iters, hi * iters)
    ofm, it = s // iters, s % iters
    og = (ofm % depth) % par
    prev = prev_index(og)
    sets_per_stripe = -(-depth // par)
    # The hardware restarts its decoder state for an OG's first stream of the layer, at iteration 0,
    # and for the OG's first OFM of a stripe (every OG has a stream in each earlier stripe).
    initial = ((prev < 0) & (lo == 0)) | ((iters > 1) & (it == 0)) | ((ofm % depth == og) & (sets_per_stripe > 1))
    blocks, rows = [], []
    zp = fields.zp[geo.channel_of_ofm[lo:hi], None].astype(np.int16)
    for k, order in enumerate(geo.orders):
        corrected = _raw_streams(weights, geo, order, lo, hi) - zp
        sym = to_symbols(np.where(order[None, :] >= 0, corrected, 0))
        step = max(1, SEARCH_BLOCK // max(sym.shape[1], 1))
        for first in range(0, hi - lo, step):
            blocks.append(sym[first : first + step])
            rows.append(np.arange(first, min(first + step, hi - lo)) * iters + k)
    plan = plan_layer_streams(blocks, rows, og, initial, variant.ifm_parallel, held)
    # The requantisation is resent when it differs from the OG's previous stream, which for the
    # first stream of an OG in the chunk is in the previous stripe (its last OFM on that OG).
    last_in_prev = og + ((depth - 1 - og) // par) * par
    prev_ofm = np.where(prev >= 0, ofm[np.maximum(prev, 0)], np.where(lo > 0, lo - depth + last_in_prev, -1))
    ch, prev_ch = geo.channel_of_ofm[ofm], geo.channel_of_ofm[np.maximum(prev_ofm, 0)]
    rq = np.stack([r[ch] for r in fields.requant], axis=1)
    prev_rq = np.where((prev_ofm >= 0)[:, None], np.stack([r[prev_ch] for r in fields.requant], axis=1), 0)
    reload = fields.per_channel | (ofm < par) | (rq != prev_rq).any(axis=1)
    header = (fields.bias[geo.channel_of_ofm[ofm]], reload, rq[:, 0], rq[:, 1], rq[:, 2])
    return plan, header, held.after(plan, og)


def chunks_entry_len(weights: np.ndarray, fields: LayerFields, geo: Geometry, variant: N78Variant) -> int:
    """The layer's group length (the longest group, 16-byte padded) without packing any bits."""
    held = Held.initial(geo.in_parallel)
    entry_len = 0
    for lo, hi in chunk_bounds(geo):
        plan, header, held = plan_chunk(weights, fields, geo, variant, lo, hi, held)
        entry_len = max(entry_len, chunk_sizes(plan, header, geo, variant, lo, hi))
    return entry_len


@dataclass(frozen=True)
class LayerBlob:
    """A whole layer: the DRAM blob, its group length, and per stream its bits and parameters."""

    data: bytes
    entry_len: int
    stream_bits: np.ndarray  # uint16 where every stream fits, else int32
    params: list[ParamArrays]  # per chunk


def encode_chunks(weights: np.ndarray, fields: LayerFields, geo: Geometry, variant: N78Variant) -> LayerBlob:
    """Every chunk of the layer in order, its groups placed in the blob as soon as it is packed."""
    held = Held.initial(geo.in_parallel)
    blob = BlobBuilder(geo, variant)
    bits: list[np.ndarray] = []
    params: list[ParamArrays] = []
    for lo, hi in chunk_bounds(geo):
        plan, header, held = plan_chunk(weights, fields, geo, variant, lo, hi, held)
        chunk = pack_chunk(plan, header, geo, variant, lo, hi)
        del plan, header
        blob.add(chunk.first_entry, chunk.entries)
        bits.append(chunk.bits)
        params.append(chunk.params)
    stream_bits = np.concatenate(bits)
    del bits
    return LayerBlob(blob.finish(), blob.entry_len, stream_bits, params)


def _entries(geo: Geometry, lo: int, hi: int) -> tuple[np.ndarray, int, int]:
    """Group of every stream of OFMs lo..hi relative to the chunk's first group; first group; groups."""
    iters, depth, gps = geo.num_iterations, geo.stripe_depth, geo.groups_per_stripe
    s = np.arange(lo * iters, hi * iters)
    ofm, it = s // iters, s % iters
    stripe = ofm // depth
    entry = stripe * gps + ((ofm - stripe * depth) * iters + it) % gps
    first = (lo // depth) * gps
    return entry - first, first, (-(-hi // depth)) * gps - first


def entry_bytes(bits: np.ndarray, entries: np.ndarray, count: int) -> int:
    """Bytes of the longest group, padded to the 16-byte DMA word."""
    longest = int(np.bincount(entries, weights=bits.astype(np.float64), minlength=count).max(initial=0))
    nbytes = -(-longest // 8)
    return -(-nbytes // DMA_ALIGN) * DMA_ALIGN


def chunk_sizes(plan: LayerPlan, header: Header, geo: Geometry, variant: N78Variant, lo: int, hi: int) -> int:
    """The longest group of a chunk in bytes (16-byte padded), without packing its bits."""
    entries, _, count = _entries(geo, lo, hi)
    return entry_bytes(stream_bit_counts(plan, header, variant.ifm_parallel), entries, count)


def pack_chunk(plan: LayerPlan, header: Header, geo: Geometry, variant: N78Variant, lo: int, hi: int) -> PackedChunk:
    """Join a chunk's streams per (stripe, group) bit-contiguously, patch lengths, pad to 16 bytes."""
    entries, first_entry, count = _entries(geo, lo, hi)
    found: dict[str, np.ndarray | int] = {}

    def place(bits: np.ndarray) -> np.ndarray:
        """Start bit of every stream: its group's slot plus the bits of the group's earlier streams."""
        entry_len = entry_bytes(bits, entries, count)
        order = stable_order(entries)
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
    entry_len = int(found["entry_len"])  # type: ignore[call-overload]
    packed = scatter_bits(vals, wids, starts, count * entry_len * 8).reshape(count, entry_len)
    small = bits.size == 0 or int(bits.max()) <= np.iinfo(np.uint16).max  # 2 bytes a stream when it fits
    return PackedChunk(first_entry, packed, bits.astype(np.uint16 if small else np.int32), ParamArrays.of(plan))
