"""Ethos-N78 stream parsing for many streams at once: each lane one stream at its own bit position.

Reads the weight and payload headers and steps the GRC chunks of every lane together, with the
decoder's balance rule (`stream_chunks.decode_chunks` does the same for one stream and stays the
reference); a chunk's unary word is handled as a (lanes, bits) matrix rather than bit by bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stream_params import BIAS_BITS, MAX_PALETTE, MAX_QUOTIENT, WDIV_UNCOMPRESSED, ZDIV_RLE_OFF

#: Zero bytes after the last field that an 8-byte window read may touch.
SLACK = 8


class Bits:
    """LSB-first reads at per-lane absolute bit positions of one buffer (8 bytes of slack at the end)."""

    def __init__(self, data: np.ndarray, slack: int = 0) -> None:
        """`data` whose last `slack` bytes are zero padding (8 or more: read in place, else copied)."""
        if slack < SLACK:
            data, slack = np.concatenate([data, np.zeros(SLACK, dtype=np.uint8)]), slack + SLACK
        data = np.ascontiguousarray(data, dtype=np.uint8)
        # The little-endian 8 bytes from every byte, as an unaligned uint64 view one byte apart: a read
        # gathers one word per field (gathering 8-byte rows of a sliding window costs ~2.5x more).
        self._win = np.ndarray(shape=(data.size - 7,), dtype="<u8", buffer=data, strides=(1,))
        self._limit = (data.size - slack) * 8

    def read(self, pos: np.ndarray, width: np.ndarray | int) -> np.ndarray:
        """Fields of `width` (<= 56) bits at bit positions `pos` (int64 arrays of one length)."""
        if pos.size and int((pos + width).max(initial=0)) > self._limit:
            raise ValueError("weight stream truncated")
        window = self._win[pos >> 3]  # the 8 bytes from each field's first byte
        value = window >> (pos & 7).astype(np.uint64)
        mask = (np.uint64(1) << np.asarray(width, dtype=np.uint64)) - np.uint64(1)
        return (value & mask).astype(np.int64)


class Reader:
    """Per-lane bit positions in one buffer; `take` reads a field per lane and moves on."""

    def __init__(self, bits: Bits, start: np.ndarray) -> None:
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
class Header:
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
class Params:
    """The compression parameters a stream is decoded with."""

    zdiv: np.ndarray
    wdiv: np.ndarray
    trunc: np.ndarray
    dirofs: np.ndarray
    pal: np.ndarray
    pal_len: np.ndarray
    pbits: np.ndarray


def read_header(rd: Reader) -> Header:
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
    return Header(length, n_w, rp, zdiv, wdiv, trunc, dirofs, rpal, cnt, pbits, signed)


def payload(rd: Reader, n_w: np.ndarray, prm: Params, length: np.ndarray, n: int) -> np.ndarray:
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
    # Selections by arithmetic, not np.where: signs and palette hits vary weight by weight.
    direct = mag - 2 * mag * (direct_sym & 1)  # odd zig-zag symbols are negative
    in_pal = f < pal_len[:, None]
    w = direct + in_pal * (np.take_along_axis(prm.pal, np.clip(f, 0, MAX_PALETTE - 1), axis=1) - direct)
    ok = k < n_w[:, None]
    runs = (zq << e[:, None]) | zr
    total = np.where(rle, n_w + (runs * (k <= n_w[:, None])).sum(axis=1), n_w)
    if np.any(total != length):
        raise ValueError("a stream's weight count is inconsistent with the layer geometry")
    out = np.zeros((n_w.size, int(length.max(initial=0))), dtype=np.int64)
    # RLE: weight j lands after the zeros of runs 0..j and the j weights before it.
    dest = np.where(rle[:, None], np.cumsum(runs * ok, axis=1) + k, k)
    r, j = np.nonzero(ok)
    out[r, dest[r, j]] = w[r, j]
    return out


def _accumulate_rows(a: np.ndarray, op: np.ufunc = np.add) -> np.ndarray:
    """`op.accumulate(a, axis=1)` (int64) of short rows, a column at a time across the rows: numpy
    accumulates each 12-bit row on its own (a cumulative sum of a bool matrix ~8x slower than this)."""
    t = np.ascontiguousarray(a.T, dtype=np.int64)
    for k in range(1, t.shape[0]):
        op(t[k], t[k - 1], out=t[k])
    return t.T


_POPCOUNT = np.array([bin(v).count("1") for v in range(1 << 12)], dtype=np.int64)  # unary words <= 12 bits


def _unary_runs(bits: np.ndarray, inside: np.ndarray, stop: np.ndarray, cost: np.ndarray, emit: np.ndarray,
                carry: np.ndarray, room: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Values completed in one chunk word per lane, (lanes, bits) matrices: `emit` where a value ends,
    `cost` what each bit adds to the open value (`carry` comes from the previous chunk); at most `room`
    values are taken, bits past that must be zero. Returns (valid emits, values, count, new carry)."""
    c = _accumulate_rows(cost)
    emitted = _accumulate_rows(emit)
    if np.any(inside & (emitted - emit >= room[:, None]) & stop):
        raise ValueError("non-zero padding in a unary word")
    valid = emit & (emitted <= room[:, None])
    at = _accumulate_rows(c * valid, np.maximum)  # cost up to the latest value's end
    before = np.concatenate([np.zeros((c.shape[0], 1), dtype=c.dtype), at[:, :-1]], axis=1)
    first = valid & (emitted == 1)
    values = c - before + first * carry[:, None]
    count = valid.sum(axis=1)
    new_carry = np.where(count > 0, c[:, -1] - at[:, -1], carry + c[:, -1])
    return valid, values, count, new_carry


def _remainders(rd: Reader, count: np.ndarray, width: np.ndarray, out: np.ndarray, first: np.ndarray) -> None:
    """Read `count` fields of `width` bits per lane back to back into out[lane, first + t]."""
    if not count.any():
        return
    r = np.repeat(np.arange(count.size), count)
    t = np.arange(r.size) - np.repeat(np.cumsum(count) - count, count)  # field index within its lane
    wr = width[r]
    out[r, first[r] + t] = rd.bits.read(rd.p[r] + t * wr, wr)
    rd.p += count * width


def _chunks(rd: Reader, n_w: np.ndarray, n_z: np.ndarray, rle: np.ndarray,
            unc: np.ndarray, trunc: np.ndarray, d: np.ndarray, e: np.ndarray, cw: np.ndarray, cz: np.ndarray,
            n: int) -> tuple[np.ndarray, ...]:
    """Parse every lane's chunk sequence with the decoder's balance rule (as `decode_chunks` does for
    one stream): weight quotients and remainders, zero-run quotients and remainders, (lanes, runs)."""
    lanes = n_w.size
    width = int(n_w.max(initial=0)) + 1
    # int32: quotients, remainders and runs are small, and a batch holds (streams, length) of each.
    fq, fr = np.zeros((lanes, width), dtype=np.int32), np.zeros((lanes, width), dtype=np.int32)
    zq, zr = np.zeros((lanes, width), dtype=np.int32), np.zeros((lanes, width), dtype=np.int32)
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
            b1 = ((u1[:, None] >> np.maximum(_accumulate_rows(one) - 1, 0)) & 1) * one
            end_one = one & (trunc[:, None] | (b1 == 0))
            emit = (inside & (b0 == 0)) | end_one
            cost = 2 * (one & ~end_one) + end_one * (1 + b1)
            valid, val, cnt, cur_w = _unary_runs(b0, inside, b0 == 1, cost, emit, cur_w, n_w - wc)
            r, j = np.nonzero(valid)
            fq[r, wc[r] + _accumulate_rows(valid)[r, j] - 1] = val[r, j]
            wc = wc + cnt
        if z_en.any():
            b = (zu[:, None] >> jz) & 1
            inside = z_en[:, None] & (jz < cz[:, None])
            valid, val, cnt, cur_z = _unary_runs(b, inside, b == 1, inside & (b == 1),
                                                 inside & (b == 0), cur_z, n_z - zc)
            r, j = np.nonzero(valid)
            zq[r, zc[r] + _accumulate_rows(valid)[r, j] - 1] = val[r, j]
            zc = zc + cnt
        # The previous iteration's remainders follow this iteration's unary words.
        _remainders(rd, pend_w, d, fr, pw0)
        _remainders(rd, pend_z, e, zr, pz0)
        pend_w, pend_z, pw0, pz0 = wc - w_before, zc - z_before, w_before, z_before
        alive = w_en | z_en
    return fq, fr, zq, zr
