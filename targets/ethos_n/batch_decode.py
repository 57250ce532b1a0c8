"""Ethos-N78 layer weight decoder in numpy: every independent OG chain of a layer parsed in lockstep.

The bitstream of one group is sequential (a stream starts where the previous one ended), but the
decoder's compression state restarts for the first stream of every OG in a stripe (and at IFM
iteration 0), so the (stripe, OG) chains of a layer are independent. Each lane here is one chain:
all lanes read their k-th stream's headers together, then step the GRC chunks together (the same
balance rule as `stream_chunks.decode_chunks`, which stays the reference). Weights only: the
headers' bias and requantisation are skipped (`weight_decode.decode_layer_full` returns them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .layout import DMA_ALIGN, Geometry, sram_layout
from .stream_params import BIAS_BITS, MAX_PALETTE, MAX_QUOTIENT, WDIV_UNCOMPRESSED, ZDIV_RLE_OFF
from .variants import N78Variant

Take = Callable[[np.ndarray | int, np.ndarray | None], np.ndarray]


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


def decode_streams(data: bytes, geo: Geometry, variant: N78Variant) -> list[np.ndarray]:
    """Zero-point-corrected weights of every stream, per IFM iteration as (OFMs, length) arrays."""
    flat, entry_len = group_bytes(data, geo, variant)
    bits = _Bits(flat)
    iters, n = geo.num_iterations, variant.ifm_parallel
    s_all = np.arange(geo.num_ofms * iters)
    ofm_all, it_all = s_all // iters, s_all % iters
    stripe = ofm_all // geo.stripe_depth
    gps = geo.groups_per_stripe
    entry = stripe * gps + ((ofm_all - stripe * geo.stripe_depth) * iters + it_all) % gps
    gpos = np.arange(geo.num_entries, dtype=np.int64) * entry_len * 8  # where each group's next stream starts
    order, per_lane = _lanes(geo)
    lanes = per_lane.size
    first = np.cumsum(per_lane) - per_lane
    lengths = np.array([o.size for o in geo.orders], dtype=np.int64)
    raws = [np.zeros((geo.num_ofms, o.size), dtype=np.int16) for o in geo.orders]  # values in [-255, 255]
    state = _State(lanes)
    for k in range(int(per_lane.max(initial=0))):
        live = np.flatnonzero(per_lane > k)
        s = order[first[live] + k]
        start = gpos[entry[s]]
        w, end, length = _decode_one(bits, start, live, state, lengths[it_all[s]], n)
        group_start = entry[s] * entry_len * 8
        spanned = -(-(end - group_start) // (DMA_ALIGN * 8)) - ((start - group_start) // 8) // DMA_ALIGN
        if np.any(length != spanned):
            raise ValueError("a stream's length field is inconsistent with the layer geometry")
        if np.any(np.abs(w) > 255):
            raise ValueError("decoded weights fall outside the weight data type")
        gpos[entry[s]] = end
        for it in range(iters):
            sel = it_all[s] == it
            raws[it][ofm_all[s[sel]]] = w[sel, : lengths[it]]
    return raws


class _State:
    """Compression parameters each lane's OG holds."""

    def __init__(self, lanes: int) -> None:
        self.zdiv = np.full(lanes, ZDIV_RLE_OFF, dtype=np.int64)
        self.wdiv = np.full(lanes, WDIV_UNCOMPRESSED, dtype=np.int64)
        self.trunc = np.zeros(lanes, dtype=bool)
        self.dirofs = np.zeros(lanes, dtype=np.int64)
        self.pal = np.zeros((lanes, MAX_PALETTE), dtype=np.int64)
        self.pal_len = np.zeros(lanes, dtype=np.int64)
        self.pbits = np.full(lanes, 7, dtype=np.int64)


def _decode_one(bits: _Bits, start: np.ndarray, live: np.ndarray, st: _State, length: np.ndarray,
                n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One stream per lane `live` starting at bit `start`: (weights (lanes, max length), end bit, length field)."""
    p = start.copy()

    def take(width: np.ndarray | int, where: np.ndarray | None = None) -> np.ndarray:
        """Read a field per lane at its position (width 0 where `where` is False) and move on."""
        w = np.broadcast_to(np.asarray(width, dtype=np.int64), p.shape)
        if where is not None:
            w = np.where(where, w, 0)
        v = bits.read(p, w)
        p[:] += w
        return v

    length_field = take(16)
    take(BIAS_BITS)
    reload = take(1).astype(bool)
    take(30, reload)  # multiplier 16, shift 6, OFM zero point 8
    n_w = take(17)
    rp = take(1).astype(bool)
    zdiv, wdiv, trunc, dirofs, rpal = take(3, rp), take(3, rp), take(1, rp), take(5, rp), take(1, rp).astype(bool)
    rpal &= rp
    size_m1, pbits = take(5, rpal), take(3, rpal)
    cnt = np.where(size_m1 > 0, size_m1 + 1, 0)
    entries = np.zeros((live.size, MAX_PALETTE), dtype=np.int64)
    width = pbits + 2
    for j in range(int(np.where(rpal, cnt, 0).max(initial=0))):
        entries[:, j] = take(width, rpal & (j < cnt))
    mag = entries & ((1 << (width - 1)) - 1)[:, None]
    signed = np.where((entries >> (width - 1)[:, None]) & 1, -mag, mag)
    if np.any(rp & ~np.isin(zdiv, (0, 1, 2, 3, ZDIV_RLE_OFF))) or np.any(rp & ~np.isin(wdiv, (0, 1, 2, 3, 4, 5, 7))):
        raise ValueError("invalid ZDIV/WDIV")
    st.zdiv[live] = np.where(rp, zdiv, st.zdiv[live])
    st.wdiv[live] = np.where(rp, wdiv, st.wdiv[live])
    st.trunc[live] = np.where(rp, trunc.astype(bool), st.trunc[live])
    st.dirofs[live] = np.where(rp, dirofs, st.dirofs[live])
    st.pal[live] = np.where(rpal[:, None], signed, st.pal[live])
    st.pal_len[live] = np.where(rpal, cnt, st.pal_len[live])
    st.pbits[live] = np.where(rpal, pbits, st.pbits[live])
    zd, wd, tr, do = st.zdiv[live], st.wdiv[live], st.trunc[live], st.dirofs[live]
    pal, pal_len, pb = st.pal[live], st.pal_len[live], st.pbits[live]
    rle, unc = zd != ZDIV_RLE_OFF, wd == WDIV_UNCOMPRESSED
    pal_w = np.maximum(np.frexp(np.maximum(pal_len - 1, 0).astype(np.float64))[1], 1)
    d = np.where(unc, np.where(pal_len > 0, pal_w, pb + 2), wd)
    e = np.where(rle, zd, 0)
    n_z = np.where(rle, n_w + 1, 0)
    cw = np.where(unc & (d > 5), n // 2, 3 * n // 4)
    cz = np.where(e < 3, 3 * n // 4, n // 2)
    if np.any(n_w > length):
        raise ValueError("a stream's weight count is inconsistent with the layer geometry")
    fq, fr, zq, zr = _chunks(bits, p, take, n_w, n_z, rle, unc, tr, d, e, cw, cz, n)
    f = (fq << d[:, None]) | fr
    if np.any(~unc[:, None] & (fq > MAX_QUOTIENT)):
        raise ValueError("weight quotient exceeds 31")
    k = np.arange(f.shape[1])[None, :]
    direct_sym = np.where(pal_len[:, None] > 0, np.maximum(f - pal_len[:, None] + do[:, None], 0), f + do[:, None])
    mag = (direct_sym + 1) >> 1
    direct = np.where(direct_sym & 1, -mag, mag)
    in_pal = (f < pal_len[:, None]) & (pal_len[:, None] > 0)
    w = np.where(in_pal, np.take_along_axis(pal, np.clip(f, 0, MAX_PALETTE - 1), axis=1), direct)
    w = np.where(k < n_w[:, None], w, 0)
    runs = (zq << e[:, None]) | zr
    total = np.where(rle, n_w + np.where(k <= n_w[:, None], runs, 0).sum(axis=1), n_w)
    if np.any(total != length):
        raise ValueError("a stream's weight count is inconsistent with the layer geometry")
    out = np.zeros((live.size, int(length.max(initial=0))), dtype=np.int64)
    # RLE: weight j lands after the zeros of runs 0..j and the j weights before it.
    dest = np.where(rle[:, None], np.cumsum(np.where(k < n_w[:, None], runs[:, : f.shape[1]], 0), axis=1) + k, k)
    rows = np.broadcast_to(np.arange(live.size)[:, None], f.shape)
    ok = k < n_w[:, None]
    out[rows[ok], dest[ok]] = w[ok]
    return out, p, length_field


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


def _remainders(bits: _Bits, p: np.ndarray, count: np.ndarray, width: np.ndarray, out: np.ndarray,
                first: np.ndarray) -> None:
    """Read `count` fields of `width` bits per lane back to back into out[lane, first + t]."""
    most = int(count.max(initial=0))
    if not most:
        return
    t = np.arange(most)[None, :]
    sel = t < count[:, None]
    pos = p[:, None] + t * width[:, None]
    rows = np.broadcast_to(np.arange(p.size)[:, None], sel.shape)
    out[rows[sel], (first[:, None] + t)[sel]] = bits.read(pos[sel], np.broadcast_to(width[:, None], sel.shape)[sel])
    p += count * width


def _chunks(bits: _Bits, p: np.ndarray, take: Take, n_w: np.ndarray, n_z: np.ndarray, rle: np.ndarray,
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
        u0 = take(cw, wu)
        zu = take(cz, z_en)
        u1 = take(_POPCOUNT[u0], wu)
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
        _remainders(bits, p, pend_w, d, fr, pw0)
        _remainders(bits, p, pend_z, e, zr, pz0)
        pend_w, pend_z, pw0, pz0 = wc - w_before, zc - z_before, w_before, z_before
        alive = w_en | z_en
    return fq, fr, zq, zr
