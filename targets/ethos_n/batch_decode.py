"""Ethos-N78 layer weight decoder in numpy: many streams parsed together (`batch_parse.py`).

The bitstream of one group is sequential (a stream starts where the previous one ended). Given
the encoder's stream lengths, every stream of a run of stripes is parsed at once from its claimed
start, parameters it does not reload are forward-filled along its OG, and each parse must end
exactly where the next stream of its group was claimed to start, which is the check a sequential
parse makes. Given only the blob, the lanes are the OG chains, which are independent because the
decoder state restarts for the first stream of every OG in a stripe (and at IFM iteration 0).
Weights only: `weight_decode.decode_layer_full`, the reference, also returns bias and requantisation.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .batch_parse import SLACK, Bits, Header, Params, Reader, payload, read_header
from .layout import DMA_ALIGN, Geometry, sram_layout
from .stream_params import MAX_PALETTE, WDIV_UNCOMPRESSED, ZDIV_RLE_OFF
from .variants import N78Variant

#: Streams parsed together when the encoder's stream lengths are given (whole stripes, at least one).
#: The chunk steps of a batch cost per step (numpy calls) and per stream (array sizes): long streams
#: take up to 512 K weights, short ones (depthwise) up to 32 K streams.
HINTED_BATCH, HINTED_STREAMS = 1 << 19, 1 << 15


def group_bytes(data: bytes, geo: Geometry, variant: N78Variant, slack: int = 0) -> tuple[np.ndarray, int]:
    """Undo the 16-byte bank interleave: all (stripe, group) entries back to back (then `slack` zero
    bytes), and their length."""
    banks = sram_layout(geo.num_entries, geo.num_iterations, variant)
    per_bank = max(len(b) for b in banks)
    unit = variant.num_srams * DMA_ALIGN * per_bank
    if not data or len(data) % unit:
        raise ValueError("blob size does not match the layer geometry")
    entry_len = len(data) // unit * DMA_ALIGN
    words = np.frombuffer(data, dtype=np.uint8).reshape(-1, variant.num_srams, DMA_ALIGN)
    flat = np.zeros(geo.num_entries * entry_len + slack, dtype=np.uint8)
    out = flat[: geo.num_entries * entry_len].reshape(geo.num_entries, entry_len)
    for b, group in enumerate(banks):
        if group:
            out[group] = words[:, b, :].reshape(-1)[: len(group) * entry_len].reshape(len(group), entry_len)
    return flat, entry_len


def _lanes(geo: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Streams (encoder order) of every lane, lane-major, and the number per lane."""
    iters, depth, par = geo.num_iterations, geo.stripe_depth, geo.in_parallel
    s = np.arange(geo.num_ofms * iters)
    ofm = s // iters
    og = (ofm % depth) % par
    restart = iters > 1 or -(-depth // par) > 1
    lane = (ofm // depth) * par + og if restart else og
    order = np.argsort(lane, kind="stable")
    return order, np.bincount(lane, minlength=int(lane.max(initial=0)) + 1)


class _Entries:
    """The interleaved blob read back a run of (stripe, group) entries at a time (a batch of
    stripes needs its own entries only, not a de-interleaved copy of the whole blob)."""

    def __init__(self, data: bytes, geo: Geometry, variant: N78Variant) -> None:
        banks = sram_layout(geo.num_entries, geo.num_iterations, variant)
        per_bank = max(len(b) for b in banks)
        unit = variant.num_srams * DMA_ALIGN * per_bank
        if not data or len(data) % unit:
            raise ValueError("blob size does not match the layer geometry")
        self.entry_len = len(data) // unit * DMA_ALIGN
        self._words = np.frombuffer(data, dtype=np.uint8).reshape(-1, variant.num_srams, DMA_ALIGN)
        self._bank = np.zeros(geo.num_entries, dtype=np.int64)
        self._slot = np.zeros(geo.num_entries, dtype=np.int64)
        for b, group in enumerate(banks):
            self._bank[group] = b
            self._slot[group] = np.arange(len(group))

    def read(self, first: int, last: int) -> Bits:
        """Entries first..last back to back (bit 0 is entry `first`'s first bit)."""
        unit = self.entry_len // DMA_ALIGN
        e = np.arange(first, last)
        out = np.zeros((last - first) * self.entry_len + SLACK, dtype=np.uint8)
        rows = self._slot[e][:, None] * unit + np.arange(unit)[None, :]
        out[: (last - first) * self.entry_len].reshape(last - first, unit, DMA_ALIGN)[...] = \
            self._words[rows, self._bank[e][:, None], :]
        return Bits(out, SLACK)


def decode_batches(data: bytes, geo: Geometry, variant: N78Variant,
                   stream_bits: np.ndarray | None = None) -> Iterator[tuple[int, int, list[np.ndarray]]]:
    """Zero-point-corrected weights of the streams of OFMs lo..hi (whole stripes), per IFM iteration
    as (hi - lo, length) arrays, batch after batch as (lo, hi, arrays).

    With `stream_bits` (the encoder's claimed length of every stream) every stream of a run of
    stripes is parsed at once from its claimed start, and each parse must end exactly where the
    next stream of its group was claimed to start: the same check as a sequential parse, in far
    fewer steps, reading only the run's own entries of the blob. Without it the independent OG
    chains are the lanes, and the whole layer is one batch."""
    if stream_bits is None:
        flat, entry_len = group_bytes(data, geo, variant, SLACK)
        raws = [np.zeros((geo.num_ofms, o.size), dtype=np.int16) for o in geo.orders]  # values in [-255, 255]
        _decode_lanes(Bits(flat, SLACK), entry_len, geo, variant.ifm_parallel, raws)
        yield 0, geo.num_ofms, raws
        return
    claimed = np.asarray(stream_bits)  # widened a batch at a time (uint16 for most layers)
    if claimed.shape != (geo.num_ofms * geo.num_iterations,) or np.any(claimed <= 0):
        raise ValueError("stream lengths do not match the layer geometry")
    entries = _Entries(data, geo, variant)
    held = _State(geo.in_parallel)
    per_stripe = geo.stripe_depth * sum(o.size for o in geo.orders)
    streams = geo.stripe_depth * geo.num_iterations
    step = max(1, min(HINTED_BATCH // max(per_stripe, 1), HINTED_STREAMS // streams)) * geo.stripe_depth
    gps = geo.groups_per_stripe
    for lo in range(0, geo.num_ofms, step):
        hi = min(lo + step, geo.num_ofms)
        first, last = (lo // geo.stripe_depth) * gps, -(-hi // geo.stripe_depth) * gps
        raws = [np.zeros((hi - lo, o.size), dtype=np.int16) for o in geo.orders]
        _decode_hinted(entries.read(first, last), entries.entry_len, geo, variant.ifm_parallel, raws, claimed,
                       held, (lo, hi, first))
        yield lo, hi, raws


def _stream_layout(geo: Geometry, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stream ids of OFMs lo..hi, their OFM, IFM iteration and group."""
    iters = geo.num_iterations
    s = np.arange(lo * iters, hi * iters)
    ofm, it = s // iters, s % iters
    stripe = ofm // geo.stripe_depth
    entry = stripe * geo.groups_per_stripe + ((ofm - stripe * geo.stripe_depth) * iters + it) % geo.groups_per_stripe
    return s, ofm, it, entry


def _store(raws: list[np.ndarray], w: np.ndarray, ofm: np.ndarray, it: np.ndarray) -> None:
    if np.any(np.abs(w) > 255):
        raise ValueError("decoded weights fall outside the weight data type")
    for k, raw in enumerate(raws):
        sel = it == k
        raw[ofm[sel]] = w[sel, : raw.shape[1]]


def _check_length(length: np.ndarray, start: np.ndarray, end: np.ndarray, entry: np.ndarray, entry_len: int) -> None:
    """The 16-bit length field: 16-byte words the stream spans within its group."""
    group_start = entry * entry_len * 8
    spanned = -(-(end - group_start) // (DMA_ALIGN * 8)) - ((start - group_start) // 8) // DMA_ALIGN
    if np.any(length != spanned):
        raise ValueError("a stream's length field is inconsistent with the layer geometry")


def _decode_lanes(bits: Bits, entry_len: int, geo: Geometry, n: int, raws: list[np.ndarray]) -> None:
    """Every OG chain a lane; the k-th streams of all lanes are parsed together."""
    _, ofm_all, it_all, entry = _stream_layout(geo, 0, geo.num_ofms)
    gpos = np.arange(geo.num_entries, dtype=np.int64) * entry_len * 8  # where each group's next stream starts
    order, per_lane = _lanes(geo)
    first = np.cumsum(per_lane) - per_lane
    lengths = np.array([o.size for o in geo.orders], dtype=np.int64)
    state = _State(per_lane.size)
    for k in range(int(per_lane.max(initial=0))):
        live = np.flatnonzero(per_lane > k)
        s = order[first[live] + k]
        start = gpos[entry[s]]
        rd = Reader(bits, start)
        hdr = read_header(rd)
        state.update(live, hdr)
        w = payload(rd, hdr.n_w, state.take(live), lengths[it_all[s]], n)
        _check_length(hdr.length, start, rd.p, entry[s], entry_len)
        gpos[entry[s]] = rd.p
        _store(raws, w, ofm_all[s], it_all[s])


def _decode_hinted(bits: Bits, entry_len: int, geo: Geometry, n: int, raws: list[np.ndarray], claimed: np.ndarray,
                   held: _State, batch: tuple[int, int, int]) -> None:
    """Streams of OFMs lo..hi (whole stripes) parsed at once from their claimed starts; `bits` holds
    the batch's entries from entry `first` on, `raws` its OFMs from `lo` on."""
    lo, hi, first = batch
    s, ofm, it, entry = _stream_layout(geo, lo, hi)
    entry = entry - first
    b = claimed[s].astype(np.int64)
    order = np.argsort(entry, kind="stable")
    c = np.cumsum(b[order]) - b[order]
    grp_first = np.searchsorted(entry[order], entry[order], side="left")
    offset = np.empty_like(b)
    offset[order] = c - c[grp_first]
    if np.any(offset + b > entry_len * 8):
        raise ValueError("stream lengths do not fit the groups")
    start = entry * entry_len * 8 + offset
    rd = Reader(bits, start)
    hdr = read_header(rd)
    # Parameters not reloaded come from the OG's latest stream that sent them (or what it held before).
    og = (ofm % geo.stripe_depth) % geo.in_parallel
    params = _resolve(hdr, og, held)
    lengths = np.array([o.size for o in geo.orders], dtype=np.int64)
    w = payload(rd, hdr.n_w, params, lengths[it], n)
    if np.any(rd.p != start + b):
        raise ValueError("a stream does not end where the next one starts")
    _check_length(hdr.length, start, rd.p, entry, entry_len)
    _store(raws, w, ofm - lo, it)


def _resolve(hdr: Header, og: np.ndarray, held: _State) -> Params:
    """Forward-fill reloaded parameters along each OG's streams (encoder order), starting from `held`;
    `held` is then updated with what every OG holds after these streams."""
    order = np.argsort(og, kind="stable")
    pos = np.arange(og.size)
    starts = np.ones(og.size, dtype=bool)
    starts[1:] = og[order[1:]] != og[order[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, pos, 0))

    def source(own: np.ndarray) -> np.ndarray:
        last = np.maximum.accumulate(np.where(own[order], pos, -1))
        out = np.empty(og.size, dtype=np.int64)
        out[order] = np.where(last >= group_start, order[np.maximum(last, 0)], -1)
        return out

    sp, spal = source(hdr.rp), source(hdr.rpal)

    def fill(src: np.ndarray, mine: np.ndarray, before: np.ndarray) -> np.ndarray:
        k = np.maximum(src, 0)
        if mine.ndim == 2:
            return np.where((src >= 0)[:, None], mine[k], before[og])
        return np.where(src >= 0, mine[k], before[og])

    p = Params(fill(sp, hdr.zdiv, held.zdiv), fill(sp, hdr.wdiv, held.wdiv), fill(sp, hdr.trunc, held.trunc),
                fill(sp, hdr.dirofs, held.dirofs), fill(spal, hdr.palette, held.pal),
                fill(spal, hdr.pal_len, held.pal_len), fill(spal, hdr.pbits, held.pbits))
    last = np.full(held.zdiv.size, -1, dtype=np.int64)
    last[og] = pos  # the last stream per OG wins
    has = last >= 0
    k = np.maximum(last, 0)
    for name, mine in (("zdiv", p.zdiv), ("wdiv", p.wdiv), ("trunc", p.trunc), ("dirofs", p.dirofs),
                       ("pal", p.pal), ("pal_len", p.pal_len), ("pbits", p.pbits)):
        before = getattr(held, name)
        mask = has[:, None] if before.ndim == 2 else has
        setattr(held, name, np.where(mask, mine[k], before))
    return p


class _State:
    """Compression parameters each lane's OG holds (the decoder's reset values to start with)."""

    def __init__(self, lanes: int) -> None:
        self.zdiv = np.full(lanes, ZDIV_RLE_OFF, dtype=np.int64)
        self.wdiv = np.full(lanes, WDIV_UNCOMPRESSED, dtype=np.int64)
        self.trunc = np.zeros(lanes, dtype=bool)
        self.dirofs = np.zeros(lanes, dtype=np.int64)
        self.pal = np.zeros((lanes, MAX_PALETTE), dtype=np.int64)
        self.pal_len = np.zeros(lanes, dtype=np.int64)
        self.pbits = np.full(lanes, 7, dtype=np.int64)

    def update(self, live: np.ndarray, hdr: Header) -> None:
        """Take what the lanes `live` reloaded."""
        rp, rpal = hdr.rp, hdr.rpal
        self.zdiv[live] = np.where(rp, hdr.zdiv, self.zdiv[live])
        self.wdiv[live] = np.where(rp, hdr.wdiv, self.wdiv[live])
        self.trunc[live] = np.where(rp, hdr.trunc, self.trunc[live])
        self.dirofs[live] = np.where(rp, hdr.dirofs, self.dirofs[live])
        self.pal[live] = np.where(rpal[:, None], hdr.palette, self.pal[live])
        self.pal_len[live] = np.where(rpal, hdr.pal_len, self.pal_len[live])
        self.pbits[live] = np.where(rpal, hdr.pbits, self.pbits[live])

    def take(self, live: np.ndarray) -> Params:
        return Params(self.zdiv[live], self.wdiv[live], self.trunc[live], self.dirofs[live], self.pal[live],
                       self.pal_len[live], self.pbits[live])


