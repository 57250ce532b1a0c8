"""Ethos-N78 layer weight decoder in numpy: every independent OG chain of a layer parsed in lockstep.

The bitstream of one group is sequential (a stream starts where the previous one ended), but the
decoder's compression state restarts for the first stream of every OG in a stripe (and at IFM
iteration 0), so the (stripe, OG) chains of a layer are independent. Each lane here is one chain:
all lanes read their k-th stream's headers together, then step the GRC chunks together (the same
balance rule as `stream_chunks.decode_chunks`, which stays the reference). Weights only: the
headers' bias and requantisation are skipped (`weight_decode.decode_layer_full` returns them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import DMA_ALIGN, Geometry, sram_layout
from .stream_params import BIAS_BITS, MAX_PALETTE, MAX_QUOTIENT, WDIV_UNCOMPRESSED, ZDIV_RLE_OFF
from .variants import N78Variant

#: Streams parsed together when the encoder's stream lengths are given (whole stripes, at least one).
HINTED_BATCH = 1 << 18


class _Bits:
    """LSB-first reads at per-lane absolute bit positions of one buffer (8 bytes of slack at the end)."""

    def __init__(self, data: np.ndarray) -> None:
        self._win = np.lib.stride_tricks.sliding_window_view(np.concatenate([data, np.zeros(8, dtype=np.uint8)]), 8)
        self._limit = data.size * 8

    def read(self, pos: np.ndarray, width: np.ndarray | int) -> np.ndarray:
        """Fields of `width` (<= 56) bits at bit positions `pos` (int64 arrays of one length)."""
        if pos.size and int((pos + width).max(initial=0)) > self._limit:
            raise ValueError("weight stream truncated")
        window = self._win[pos >> 3].view("<u8")[:, 0]  # the 8 bytes from each field's first byte
        value = window >> (pos & 7).astype(np.uint64)
        mask = (np.uint64(1) << np.asarray(width, dtype=np.uint64)) - np.uint64(1)
        return (value & mask).astype(np.int64)


def group_bytes(data: bytes, geo: Geometry, variant: N78Variant) -> tuple[np.ndarray, int]:
    """Undo the 16-byte bank interleave: all (stripe, group) entries back to back, and their length."""
    banks = sram_layout(geo.num_entries, geo.num_iterations, variant)
    per_bank = max(len(b) for b in banks)
    unit = variant.num_srams * DMA_ALIGN * per_bank
    if not data or len(data) % unit:
        raise ValueError("blob size does not match the layer geometry")
    entry_len = len(data) // unit * DMA_ALIGN
    words = np.frombuffer(data, dtype=np.uint8).reshape(-1, variant.num_srams, DMA_ALIGN)
    out = np.zeros((geo.num_entries, entry_len), dtype=np.uint8)
    for b, group in enumerate(banks):
        if group:
            out[group] = words[:, b, :].reshape(-1)[: len(group) * entry_len].reshape(len(group), entry_len)
    return out.reshape(-1), entry_len


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


def decode_streams(data: bytes, geo: Geometry, variant: N78Variant,
                   stream_bits: np.ndarray | None = None) -> list[np.ndarray]:
    """Zero-point-corrected weights of every stream, per IFM iteration as (OFMs, length) arrays.

    With `stream_bits` (the encoder's claimed length of every stream) every stream of a run of
    stripes is parsed at once from its claimed start, and each parse must end exactly where the
    next stream of its group was claimed to start: the same check as a sequential parse, in far
    fewer steps. Without it the independent OG chains are the lanes."""
    flat, entry_len = group_bytes(data, geo, variant)
    bits = _Bits(flat)
    raws = [np.zeros((geo.num_ofms, o.size), dtype=np.int16) for o in geo.orders]  # values in [-255, 255]
    if stream_bits is None:
        _decode_lanes(bits, entry_len, geo, variant.ifm_parallel, raws)
        return raws
    claimed = np.asarray(stream_bits, dtype=np.int64)
    if claimed.shape != (geo.num_ofms * geo.num_iterations,) or np.any(claimed <= 0):
        raise ValueError("stream lengths do not match the layer geometry")
    held = _State(geo.in_parallel)
    per_stripe = geo.stripe_depth * sum(o.size for o in geo.orders)
    step = max(1, HINTED_BATCH // max(per_stripe, 1)) * geo.stripe_depth
    for lo in range(0, geo.num_ofms, step):
        _decode_hinted(bits, entry_len, geo, variant.ifm_parallel, raws, claimed, held, lo,
                       min(lo + step, geo.num_ofms))
    return raws


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


def _decode_lanes(bits: _Bits, entry_len: int, geo: Geometry, n: int, raws: list[np.ndarray]) -> None:
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
        rd = _Reader(bits, start)
        hdr = _read_header(rd)
        state.update(live, hdr)
        w = _payload(rd, hdr.n_w, state.take(live), lengths[it_all[s]], n)
        _check_length(hdr.length, start, rd.p, entry[s], entry_len)
        gpos[entry[s]] = rd.p
        _store(raws, w, ofm_all[s], it_all[s])


def _decode_hinted(bits: _Bits, entry_len: int, geo: Geometry, n: int, raws: list[np.ndarray], claimed: np.ndarray,
                   held: _State, lo: int, hi: int) -> None:
    """Streams of OFMs lo..hi (whole stripes) parsed at once from their claimed starts."""
    s, ofm, it, entry = _stream_layout(geo, lo, hi)
    b = claimed[s]
    order = np.argsort(entry, kind="stable")
    c = np.cumsum(b[order]) - b[order]
    grp_first = np.searchsorted(entry[order], entry[order], side="left")
    offset = np.empty_like(b)
    offset[order] = c - c[grp_first]
    if np.any(offset + b > entry_len * 8):
        raise ValueError("stream lengths do not fit the groups")
    start = entry * entry_len * 8 + offset
    rd = _Reader(bits, start)
    hdr = _read_header(rd)
    # Parameters not reloaded come from the OG's latest stream that sent them (or what it held before).
    og = (ofm % geo.stripe_depth) % geo.in_parallel
    params = _resolve(hdr, og, held)
    lengths = np.array([o.size for o in geo.orders], dtype=np.int64)
    w = _payload(rd, hdr.n_w, params, lengths[it], n)
    if np.any(rd.p != start + b):
        raise ValueError("a stream does not end where the next one starts")
    _check_length(hdr.length, start, rd.p, entry, entry_len)
    _store(raws, w, ofm, it)


class _Reader:
    """Per-lane bit positions in one buffer; `take` reads a field per lane and moves on."""

    def __init__(self, bits: _Bits, start: np.ndarray) -> None:
        self.bits = bits
        self.p = start.astype(np.int64, copy=True)

    def take(self, width: np.ndarray | int, where: np.ndarray | None = None) -> np.ndarray:
        """Read a field per lane at its position (width 0 where `where` is False) and move on."""
        w = np.asarray(width, dtype=np.int64)
        if where is not None:
            w = np.where(where, w, 0)
        elif w.ndim == 0:
            w = np.full(self.p.size, int(w), dtype=np.int64)
        v = self.bits.read(self.p, w)
        self.p += w
        return v


@dataclass(frozen=True)
class _Header:
    """Fields of the weight and payload headers per lane (parameters only where reloaded)."""

    length: np.ndarray
    n_w: np.ndarray
    rp: np.ndarray
    zdiv: np.ndarray
    wdiv: np.ndarray
    trunc: np.ndarray
    dirofs: np.ndarray
    rpal: np.ndarray
    pal_len: np.ndarray
    pbits: np.ndarray
    palette: np.ndarray  # (lanes, MAX_PALETTE) signed values


@dataclass(frozen=True)
class _Params:
    """The compression parameters a stream is decoded with."""

    zdiv: np.ndarray
    wdiv: np.ndarray
    trunc: np.ndarray
    dirofs: np.ndarray
    pal: np.ndarray
    pal_len: np.ndarray
    pbits: np.ndarray


def _read_header(rd: _Reader) -> _Header:
    """Weight header (length, bias, requantisation: skipped) and payload header of every lane."""
    length = rd.take(16)
    rd.take(BIAS_BITS)
    reload = rd.take(1).astype(bool)
    rd.take(30, reload)  # multiplier 16, shift 6, OFM zero point 8
    n_w = rd.take(17)
    rp = rd.take(1).astype(bool)
    zdiv, wdiv, trunc, dirofs = rd.take(3, rp), rd.take(3, rp), rd.take(1, rp).astype(bool), rd.take(5, rp)
    rpal = rd.take(1, rp).astype(bool) & rp
    size_m1, pbits = rd.take(5, rpal), rd.take(3, rpal)
    cnt = np.where(rpal & (size_m1 > 0), size_m1 + 1, 0)
    entries = np.zeros((rd.p.size, MAX_PALETTE), dtype=np.int64)
    width = pbits + 2
    for j in range(int(cnt.max(initial=0))):
        entries[:, j] = rd.take(width, j < cnt)
    mag = entries & ((1 << (width - 1)) - 1)[:, None]
    signed = np.where((entries >> (width - 1)[:, None]) & 1, -mag, mag)
    if np.any(rp & ~np.isin(zdiv, (0, 1, 2, 3, ZDIV_RLE_OFF))) or np.any(rp & ~np.isin(wdiv, (0, 1, 2, 3, 4, 5, 7))):
        raise ValueError("invalid ZDIV/WDIV")
    return _Header(length, n_w, rp, zdiv, wdiv, trunc, dirofs, rpal, cnt, pbits, signed)


def _resolve(hdr: _Header, og: np.ndarray, held: _State) -> _Params:
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

    p = _Params(fill(sp, hdr.zdiv, held.zdiv), fill(sp, hdr.wdiv, held.wdiv), fill(sp, hdr.trunc, held.trunc),
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

    def update(self, live: np.ndarray, hdr: _Header) -> None:
        """Take what the lanes `live` reloaded."""
        rp, rpal = hdr.rp, hdr.rpal
        self.zdiv[live] = np.where(rp, hdr.zdiv, self.zdiv[live])
        self.wdiv[live] = np.where(rp, hdr.wdiv, self.wdiv[live])
        self.trunc[live] = np.where(rp, hdr.trunc, self.trunc[live])
        self.dirofs[live] = np.where(rp, hdr.dirofs, self.dirofs[live])
        self.pal[live] = np.where(rpal[:, None], hdr.palette, self.pal[live])
        self.pal_len[live] = np.where(rpal, hdr.pal_len, self.pal_len[live])
        self.pbits[live] = np.where(rpal, hdr.pbits, self.pbits[live])

    def take(self, live: np.ndarray) -> _Params:
        return _Params(self.zdiv[live], self.wdiv[live], self.trunc[live], self.dirofs[live], self.pal[live],
                       self.pal_len[live], self.pbits[live])


def _payload(rd: _Reader, n_w: np.ndarray, prm: _Params, length: np.ndarray, n: int) -> np.ndarray:
    """The GRC chunks of every lane's stream: its weights, (lanes, max length) with zeros re-inserted."""
    rle, unc = prm.zdiv != ZDIV_RLE_OFF, prm.wdiv == WDIV_UNCOMPRESSED
    pal_len = prm.pal_len
    pal_w = np.maximum(np.frexp(np.maximum(pal_len - 1, 0).astype(np.float64))[1], 1)
    d = np.where(unc, np.where(pal_len > 0, pal_w, prm.pbits + 2), prm.wdiv)
    e = np.where(rle, prm.zdiv, 0)
    n_z = np.where(rle, n_w + 1, 0)
    cw = np.where(unc & (d > 5), n // 2, 3 * n // 4)
    cz = np.where(e < 3, 3 * n // 4, n // 2)
    if np.any(n_w > length):
        raise ValueError("a stream's weight count is inconsistent with the layer geometry")
    fq, fr, zq, zr = _chunks(rd, n_w, n_z, rle, unc, prm.trunc, d, e, cw, cz, n)
    f = (fq << d[:, None]) | fr
    if np.any(~unc[:, None] & (fq > MAX_QUOTIENT)):
        raise ValueError("weight quotient exceeds 31")
    k = np.arange(f.shape[1])[None, :]
    do = prm.dirofs[:, None]
    direct_sym = np.where(pal_len[:, None] > 0, np.maximum(f - pal_len[:, None] + do, 0), f + do)
    mag = (direct_sym + 1) >> 1
    direct = np.where(direct_sym & 1, -mag, mag)
    in_pal = f < pal_len[:, None]
    w = np.where(in_pal, np.take_along_axis(prm.pal, np.clip(f, 0, MAX_PALETTE - 1), axis=1), direct)
    ok = k < n_w[:, None]
    runs = (zq << e[:, None]) | zr
    total = np.where(rle, n_w + np.where(k <= n_w[:, None], runs, 0).sum(axis=1), n_w)
    if np.any(total != length):
        raise ValueError("a stream's weight count is inconsistent with the layer geometry")
    out = np.zeros((n_w.size, int(length.max(initial=0))), dtype=np.int64)
    # RLE: weight j lands after the zeros of runs 0..j and the j weights before it.
    dest = np.where(rle[:, None], np.cumsum(np.where(ok, runs, 0), axis=1) + k, k)
    r, j = np.nonzero(ok)
    out[r, dest[r, j]] = w[r, j]
    return out


_POPCOUNT = np.array([bin(v).count("1") for v in range(1 << 12)], dtype=np.int64)  # unary words <= 12 bits


def _unary_runs(bits: np.ndarray, inside: np.ndarray, stop: np.ndarray, cost: np.ndarray, emit: np.ndarray,
                carry: np.ndarray, room: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Values completed in one chunk word per lane, (lanes, bits) matrices: `emit` where a value ends,
    `cost` what each bit adds to the open value (`carry` comes from the previous chunk); at most `room`
    values are taken, bits past that must be zero. Returns (valid emits, values, count, new carry)."""
    c = np.cumsum(cost, axis=1)
    emitted = np.cumsum(emit, axis=1)
    if np.any(inside & (emitted - emit >= room[:, None]) & stop):
        raise ValueError("non-zero padding in a unary word")
    valid = emit & (emitted <= room[:, None])
    at = np.maximum.accumulate(np.where(valid, c, 0), axis=1)  # cost up to the latest value's end
    before = np.concatenate([np.zeros((c.shape[0], 1), dtype=c.dtype), at[:, :-1]], axis=1)
    first = valid & (emitted == 1)
    values = c - before + np.where(first, carry[:, None], 0)
    count = valid.sum(axis=1)
    new_carry = np.where(count > 0, c[:, -1] - at[:, -1], carry + c[:, -1])
    return valid, values, count, new_carry


def _remainders(rd: _Reader, count: np.ndarray, width: np.ndarray, out: np.ndarray, first: np.ndarray) -> None:
    """Read `count` fields of `width` bits per lane back to back into out[lane, first + t]."""
    if not count.any():
        return
    r, t = np.nonzero(np.arange(int(count.max()))[None, :] < count[:, None])
    out[r, first[r] + t] = rd.bits.read(rd.p[r] + t * width[r], width[r])
    rd.p += count * width


def _chunks(rd: _Reader, n_w: np.ndarray, n_z: np.ndarray, rle: np.ndarray,
            unc: np.ndarray, trunc: np.ndarray, d: np.ndarray, e: np.ndarray, cw: np.ndarray, cz: np.ndarray,
            n: int) -> tuple[np.ndarray, ...]:
    """Parse every lane's chunk sequence with the decoder's balance rule (as `decode_chunks` does for
    one stream): weight quotients and remainders, zero-run quotients and remainders, (lanes, runs)."""
    lanes = n_w.size
    width = int(n_w.max(initial=0)) + 1
    fq, fr = np.zeros((lanes, width), dtype=np.int64), np.zeros((lanes, width), dtype=np.int64)
    zq, zr = np.zeros((lanes, width), dtype=np.int64), np.zeros((lanes, width), dtype=np.int64)
    wc, zc = np.zeros(lanes, dtype=np.int64), np.zeros(lanes, dtype=np.int64)
    cur_w, cur_z = np.zeros(lanes, dtype=np.int64), np.zeros(lanes, dtype=np.int64)
    pend_w, pend_z = np.zeros(lanes, dtype=np.int64), np.zeros(lanes, dtype=np.int64)
    pw0, pz0 = np.zeros(lanes, dtype=np.int64), np.zeros(lanes, dtype=np.int64)
    alive = np.ones(lanes, dtype=bool)
    half = n // 2
    jw = np.arange(int(cw.max(initial=0)))[None, :]
    jz = np.arange(int(cz.max(initial=0)))[None, :]
    while alive.any():
        bal = np.where(rle, wc - zc, 0)
        w_en = alive & (bal < half) & (wc < n_w)
        z_en = alive & rle & (bal >= 0) & (zc < n_z)
        wu = w_en & ~unc
        u0 = rd.take(cw, wu)
        zu = rd.take(cz, z_en)
        u1 = rd.take(_POPCOUNT[u0], wu)
        w_before, z_before = wc.copy(), zc.copy()
        wc = np.where(w_en & unc, wc + np.minimum(cw, n_w - wc), wc)  # fixed-width symbols: no unary part
        if wu.any():
            # Two-plane unary code: a 0 in plane 0 ends a value; a 1 reads plane 1, whose 0 (or any bit
            # with truncation) ends the value with 1 + that bit, and whose 1 adds 2 and goes on.
            b0 = (u0[:, None] >> jw) & 1
            inside = wu[:, None] & (jw < cw[:, None])
            one = inside & (b0 == 1)
            b1 = np.where(one, (u1[:, None] >> np.maximum(np.cumsum(one, axis=1) - 1, 0)) & 1, 0)
            end_one = one & (trunc[:, None] | (b1 == 0))
            emit = (inside & (b0 == 0)) | end_one
            cost = np.where(one & ~end_one, 2, 0) + np.where(end_one, 1 + b1, 0)
            valid, val, cnt, cur_w = _unary_runs(b0, inside, b0 == 1, cost, emit, cur_w, n_w - wc)
            r, j = np.nonzero(valid)
            fq[r, wc[r] + np.cumsum(valid, axis=1)[r, j] - 1] = val[r, j]
            wc = wc + cnt
        if z_en.any():
            b = (zu[:, None] >> jz) & 1
            inside = z_en[:, None] & (jz < cz[:, None])
            valid, val, cnt, cur_z = _unary_runs(b, inside, b == 1, np.where(inside & (b == 1), 1, 0),
                                                 inside & (b == 0), cur_z, n_z - zc)
            r, j = np.nonzero(valid)
            zq[r, zc[r] + np.cumsum(valid, axis=1)[r, j] - 1] = val[r, j]
            zc = zc + cnt
        # The previous iteration's remainders follow this iteration's unary words.
        _remainders(rd, pend_w, d, fr, pw0)
        _remainders(rd, pend_z, e, zr, pz0)
        pend_w, pend_z, pw0, pz0 = wc - w_before, zc - z_before, w_before, z_before
        alive = w_en | z_en
    return fq, fr, zq, zr
