"""Ethos-N78 stream parameters for all streams of a layer at once (streams x candidates in numpy).

The same choices as `stream_params.plan_stream`, made for a (streams, length) block of zig-zag
symbols without a Python loop per stream: each stream's distinct symbols are ranked by frequency,
the palette, DIROFS and GRC divisor of both passes (RLE off / on) are searched on (streams, ranks)
arrays, and the one sequential part - a palette already held by the OG is not resent, which can
tip the RLE choice - is solved by iterating the per-OG chain to its fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .stream_params import MAX_DIROFS, MAX_PALETTE, MAX_QUOTIENT, MAX_SYMBOL, WDIV_UNCOMPRESSED, ZDIV_RLE_OFF

_BIG = np.int64(1) << 40
_SYM_BINS = MAX_SYMBOL + 1


def bitwidth(values: np.ndarray, min_width: int) -> np.ndarray:
    """Vectorised CalcBitWidth: smallest width >= min_width holding each (non-negative) value."""
    v = np.asarray(values, dtype=np.int64)
    widths = np.frexp(np.maximum(v, 0).astype(np.float64))[1].astype(np.int64)  # bit_length, exact below 2**53
    return np.maximum(widths, min_width)


@dataclass(frozen=True)
class Ranking:
    """Each stream's distinct symbols, most frequent first (larger symbol first on ties)."""

    syms: np.ndarray  # (S, K) symbol per rank; padding ranks hold 0 with count 0
    cnts: np.ndarray  # (S, K) occurrences per rank
    rank: np.ndarray  # (S, L) rank of every symbol of the block


def rank_symbols(sym: np.ndarray) -> Ranking:
    """Rank the distinct symbols of every row of `sym` (S, L) by (count desc, symbol desc)."""
    rows, length = sym.shape
    if length >= _SYM_BINS // 2:
        # Long streams: one histogram per stream, then sort the 512 (count, symbol) keys.
        offs = (np.arange(rows, dtype=np.int64) * _SYM_BINS)[:, None]
        hist = np.bincount((sym + offs).ravel(), minlength=rows * _SYM_BINS).reshape(rows, _SYM_BINS)
        keys = hist * _SYM_BINS + np.arange(_SYM_BINS)
        full = np.argsort(-keys, axis=1, kind="stable")
        width = max(int(np.count_nonzero(hist, axis=1).max()), 1)
        order = full[:, :width]
        rank_of = np.empty((rows, _SYM_BINS), dtype=np.int64)
        np.put_along_axis(rank_of, full, np.broadcast_to(np.arange(_SYM_BINS)[None, :], full.shape), axis=1)
        cnts = np.take_along_axis(hist, order, axis=1)
        syms = np.where(cnts > 0, order, 0)
        rank = np.take_along_axis(rank_of, sym.astype(np.int64), axis=1)
        return Ranking(syms, cnts, rank)
    return _rank_short(sym)


def _rank_short(sym: np.ndarray) -> Ranking:
    """`rank_symbols` for short streams (depthwise: 9 weights), positions-major (L, S): every
    position is compared with every other, L*L vector operations across the streams, no sort."""
    length = sym.shape[1]
    # Narrow integers where the keys fit (count x 512 + symbol < 2**15 up to 63 positions): a
    # depthwise stripe's (9, S) passes then move a quarter of the int32 bytes.
    narrow = length * _SYM_BINS + _SYM_BINS <= np.iinfo(np.int16).max
    dtypes: tuple[Any, Any] = (np.int16, np.int8) if narrow else (np.int32, np.int32)
    wide, small = dtypes
    x = np.ascontiguousarray(sym.T, dtype=wide)
    rows = x.shape[1]
    # One position i at a time against all positions j, so the temporaries are (L, S), not (L, L, S).
    count = np.zeros((length, rows), dtype=small)  # occurrences of the symbol at each position
    first = np.ones((length, rows), dtype=bool)  # the symbol's first position: one per distinct symbol
    for i in range(length):
        same = x == x[i]
        count += same
        first[i + 1 :] &= ~same[i + 1 :]
    key = count.astype(wide) * _SYM_BINS + x  # count desc, then symbol desc (a weak int: stays narrow)
    # Rank = distinct symbols with a larger key (keys of distinct symbols never tie).
    rank = np.zeros((length, rows), dtype=small)
    for i in range(length):
        rank += (key[i] > key) & first[i]
    width = max(int(first.sum(axis=0).max(initial=0)), 1)
    # Each rank is held by exactly one first position (or none): scatter those into (S, K).
    pos, col = np.nonzero(first)
    at = rank[pos, col].astype(np.int64) + col * width
    syms = np.zeros(rows * width, dtype=np.int64)
    cnts = np.zeros(rows * width, dtype=np.int64)
    syms[at] = x[pos, col]
    cnts[at] = count[pos, col]
    return Ranking(syms.reshape(rows, width), cnts.reshape(rows, width), np.ascontiguousarray(rank.T, dtype=np.int64))


@dataclass(frozen=True)
class PassChoice:
    """One pass's parameters per stream (cost without the palette, which depends on the OG state)."""

    cost: np.ndarray  # (S,) bits of the coded symbols (and zero runs for the RLE pass)
    zdiv: np.ndarray
    wdiv: np.ndarray
    trunc: np.ndarray
    dirofs: np.ndarray
    pal_len: np.ndarray  # palette entries sent (0: none)
    pbits: np.ndarray
    palette: np.ndarray  # (S, <= 32) signed palette values, zero beyond pal_len
    in_pal: np.ndarray  # ranks below this are palette indices
    size: np.ndarray  # palette size P used for direct symbols (sym + P - DIROFS)

    def palette_cost(self) -> np.ndarray:
        return (self.pbits + 2) * self.pal_len


def _find_palette(syms: np.ndarray, cnts: np.ndarray, nd: np.ndarray, rle: bool) -> tuple[np.ndarray, ...]:
    """FindPaletteParams per stream on ranks-major (K, S) input: (size, padded, dirofs); size 0: none."""
    rows = syms.shape[1]
    valid = cnts > 0
    size = np.minimum(MAX_PALETTE, np.count_nonzero(cnts > 1, axis=0))
    # A single repeated non-zero value still pays off if padded with a zero entry.
    padded = (size == 1) & (syms[0] > 0) & (cnts[0] > 2)
    size = np.where(padded, 2, np.where(size < 2, 0, size))
    # Only streams with a palette candidate need the cut search (a few percent of dense streams).
    sub = np.flatnonzero(size > 0)
    out_size, out_dirofs = np.zeros(rows, dtype=np.int64), np.zeros(rows, dtype=np.int64)
    out_padded = np.zeros(rows, dtype=bool)
    if sub.size:
        out_size[sub], out_padded[sub], out_dirofs[sub] = _palette_cut(
            syms[:, sub], valid[:, sub], nd[sub], rle, size[sub], padded[sub])
    return out_size, out_padded, out_dirofs


def _palette_cut(syms: np.ndarray, valid: np.ndarray, nd: np.ndarray, rle: bool, size: np.ndarray,
                 padded: np.ndarray) -> tuple[np.ndarray, ...]:
    """`_find_palette` for streams with a palette candidate (size > 0): shrink it until the direct
    symbols fit, choosing DIROFS; (size, padded, dirofs), size 0 where no palette is left."""
    width, rows = syms.shape
    # Suffix min/max of the symbols outside the palette, for every possible palette cut.
    smin = np.where(valid, syms, _BIG)
    smax = np.where(valid, syms, -1)
    suf_min = np.concatenate([np.minimum.accumulate(smin[::-1], axis=0)[::-1], np.full((1, rows), _BIG)], axis=0)
    suf_max = np.concatenate([np.maximum.accumulate(smax[::-1], axis=0)[::-1], np.full((1, rows), -1)], axis=0)
    dirofs = np.zeros(rows, dtype=np.int64)
    range_left = MAX_SYMBOL - size
    active = np.ones(rows, dtype=bool)
    idx = np.arange(rows)
    while True:
        size = np.where(active, np.minimum(size, range_left), size)
        in_pal = np.clip(size - padded, 0, width)
        full = in_pal == nd
        cut_min, cut_max = suf_min[in_pal, idx], suf_max[in_pal, idx]
        new_dirofs = np.where(full, int(rle), np.minimum(cut_min, MAX_DIROFS))
        new_range = np.where(full, MAX_SYMBOL, MAX_SYMBOL - (cut_max - new_dirofs))
        dirofs = np.where(active, new_dirofs, dirofs)
        range_left = np.where(active, new_range, range_left)
        # Shrink until every direct symbol (sym + P - DIROFS) still fits in 9 bits.
        active = active & (size > 2) & (size > range_left)
        if not active.any():
            break
    ok = size >= 2
    return np.where(ok, size, 0), padded & ok, dirofs


def search_pass(rk_syms: np.ndarray, rk_cnts: np.ndarray, zdiv: np.ndarray, n: int) -> PassChoice:
    """Palette + GRC choice of one pass for every stream, like `stream_params._pass` (ranked input).

    Works ranks-major, (K, S): a reduction over a stream's few ranks is then K vector operations
    across the streams rather than S tiny ones (a depthwise stream has at most 9 ranks)."""
    rle = bool(np.any(zdiv != ZDIV_RLE_OFF))
    syms = np.ascontiguousarray(rk_syms.T)
    cnts = np.ascontiguousarray(rk_cnts.T)
    width, rows = syms.shape
    valid = cnts > 0
    nd = valid.sum(axis=0)
    total = cnts.sum(axis=0)
    smin_all = np.where(valid, syms, _BIG).min(axis=0, initial=_BIG)
    size, padded, dirofs = _find_palette(syms, cnts, nd, rle)
    has_pal = size > 0
    dirofs = np.where(has_pal, dirofs, np.minimum(smin_all, MAX_DIROFS))
    in_pal = size - padded
    r = np.arange(width)[:, None]
    mapped = np.where(r < in_pal, r, syms + (size - dirofs))
    partial = in_pal != nd
    raw_ofs = np.minimum(smin_all, MAX_DIROFS)
    raw = syms - raw_ofs
    unc_max = np.where(valid, np.where(partial, raw, mapped), -1).max(axis=0)
    best_cost = bitwidth(unc_max, 2) * total
    mmin = np.where(valid, mapped, _BIG).min(axis=0)
    mmax = np.where(valid, mapped, -1).max(axis=0)
    min_w, max_w = bitwidth(mmin, 2), bitwidth(mmax, 1)
    # The driver's pruned WDIV range: never so small that a quotient exceeds 31 bits.
    lo = np.maximum(np.where(max_w > 5, max_w - 5, 0), np.minimum(5, min_w - 2))
    hi = np.minimum(5, max_w - 1)
    c34 = 3 * n // 4
    costs = np.full((6, rows), np.iinfo(np.int64).max, dtype=np.int64)
    truncs = np.zeros((6, rows), dtype=bool)
    # int32 halves the memory traffic: symbols < 2**10, per-stream sums < 2**31 (PLDLEN is 17 bits).
    cnt = cnts.astype(np.int32)  # 0 on padding ranks already
    mv = (mapped * valid).astype(np.int32)
    any_trunc = bool((nd <= 3).any())
    for d in range(6):
        # A divisor outside a stream's range is never its choice: where few streams admit this one
        # (dense 8-bit symbols start at 3), only those are costed.
        cols = np.flatnonzero((d >= lo) & (d <= hi))
        if cols.size == 0:
            continue
        few = 2 * cols.size < rows
        q = (mv[:, cols] if few else mv) >> d
        c, t_, n_ = (cnt[:, cols], total[cols], nd[cols]) if few else (cnt, total, nd)
        qmax = q.max(axis=0)
        # Truncation: <= 3 distinct symbols, all quotients <= 2, so each costs 1 or 2 unary bits.
        trunc = (n_ <= 3) & (qmax < 3)
        # Only a stream of <= 3 distinct symbols can truncate: skip the count when none can.
        positive = ((q > 0) * c).sum(axis=0, dtype=np.int32) if any_trunc else 0
        quot_bits = np.where(trunc, positive, (q * c).sum(axis=0, dtype=np.int32)) + t_
        unary1 = np.where(trunc, positive, (((q + 1) >> 1) * c).sum(axis=0, dtype=np.int32))
        cost = -(-(quot_bits - unary1) // c34) * c34 + unary1 + d * t_
        if few:
            keep = qmax <= MAX_QUOTIENT
            costs[d, cols[keep]] = cost[keep]
            truncs[d, cols] = trunc
        else:
            ok = (d >= lo) & (d <= hi) & (qmax <= MAX_QUOTIENT)
            costs[d] = np.where(ok, cost, costs[d])
            truncs[d] = trunc
    k = np.argmin(costs, axis=0)  # lowest divisor wins ties, like the driver's ascending search
    kcost = costs[k, np.arange(rows)]
    grc = kcost < best_cost
    wdiv = np.where(grc, k, WDIV_UNCOMPRESSED)
    trunc = grc & truncs[k, np.arange(rows)]
    cost = np.where(grc, kcost, best_cost)
    # Palette values (sign-magnitude width from the largest magnitude; zig-zag order is magnitude order).
    # At most 32 entries, and never more than the distinct symbols plus the zero padding entry.
    pal_cols = min(MAX_PALETTE, width + 1)
    pal_syms = pad_cols(syms.T, pal_cols).T * (np.arange(pal_cols)[:, None] < in_pal)
    mag = (pal_syms + 1) >> 1
    palette = mag - 2 * mag * (pal_syms & 1)  # odd zig-zag symbols are negative
    max_mag = mag.max(axis=0)
    pbits = np.where(has_pal, bitwidth(max_mag, 2) + (max_mag > 1) - 2, 0)
    pal_len = size.copy()
    # A partial palette cannot be used uncompressed: drop it and send raw symbols.
    drop = (wdiv == WDIV_UNCOMPRESSED) & partial
    raw_max = np.where(valid, raw, -1).max(axis=0)
    pbits = np.where(drop, bitwidth(raw_max, 2) - 2, pbits)
    pal_len = np.where(drop, 0, pal_len)
    palette = (palette * ~drop).T
    dirofs = np.where(drop, raw_ofs, dirofs)
    in_pal = np.where(drop, 0, in_pal)
    size = np.where(drop, 0, size)
    return PassChoice(cost, zdiv, wdiv, trunc, dirofs, pal_len, pbits, palette, in_pal, size)


def stable_order(keys: np.ndarray) -> np.ndarray:
    """`np.argsort(keys, kind="stable")` of integer keys; keys in 0..65535 go through uint8/uint16,
    which numpy sorts by radix in linear time (a merge sort of 27,792 OG indices costs ~0.7 ms)."""
    if keys.size and int(keys.min()) >= 0:
        top = int(keys.max())
        if top < 1 << 16:
            return np.argsort(keys.astype(np.uint8 if top < 1 << 8 else np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def pad_cols(a: np.ndarray, width: int) -> np.ndarray:
    """`a` cut or zero-padded to `width` columns."""
    if a.shape[1] >= width:
        return a[:, :width]
    return np.concatenate([a, np.zeros((a.shape[0], width - a.shape[1]), dtype=a.dtype)], axis=1)


def zero_runs(sym: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero runs of every row: flat runs (count of zeros before each non-zero, plus a trailing one),
    the row of each run, and the number of runs per row (non-zeros + 1)."""
    rows, length = sym.shape
    nz_r, nz_c = np.nonzero(sym)
    nruns = np.bincount(nz_r, minlength=rows) + 1
    first = np.cumsum(nruns) - nruns  # flat index of each row's first run
    run_row = np.repeat(np.arange(rows), nruns)
    ends = np.full(int(nruns.sum()), length, dtype=np.int64)  # trailing run ends at the row end
    slot = np.arange(nz_r.size) + nz_r  # nz k of row r goes to run slot first[r] + (k - nzfirst[r])
    ends[slot] = nz_c
    prev_end = np.empty_like(ends)
    prev_end[1:] = ends[:-1] + 1
    prev_end[first] = 0
    return ends - prev_end, run_row, nruns


def positive_runs(sym: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero runs longer than 0 of every row (built from the zero positions only, so cheap for dense
    weights), the row of each, and every row's number of runs (non-zeros + 1, empty runs included)."""
    rows, length = sym.shape
    zr, zc = np.nonzero(sym == 0)
    new = np.ones(zr.size, dtype=bool)
    new[1:] = (zr[1:] != zr[:-1]) | (zc[1:] != zc[:-1] + 1)
    run_id = np.cumsum(new) - 1
    runs = np.bincount(run_id, minlength=int(new.sum())).astype(np.int64)
    count = length - np.bincount(zr, minlength=rows) + 1
    return runs, zr[new], count


def rle_search(runs: np.ndarray, run_row: np.ndarray, count: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest (ZDIV, bits) per row for its zero runs, like FindRLEParams (its pruned ZDIV range).

    `runs`/`run_row` are the non-empty runs; `count` is each row's number of runs, empty ones included."""
    rows = count.size
    npos = np.bincount(run_row, minlength=rows)
    rmin = np.full(rows, _BIG)
    np.minimum.at(rmin, run_row, runs)
    rmin = np.where(npos < count, 0, rmin)  # an empty run is the shortest
    rmax = np.zeros(rows, dtype=np.int64)
    np.maximum.at(rmax, run_row, runs)
    start = np.minimum(3, bitwidth(rmin, 2) - 2)
    end = np.minimum(3, bitwidth(rmax, 1) - 1)
    best_cost = np.full(rows, -1, dtype=np.int64)
    best_div = np.zeros(rows, dtype=np.int64)
    for e in range(4):
        quot = np.bincount(run_row, weights=(runs >> e).astype(np.float64), minlength=rows).astype(np.int64) + count
        # ZDIV 3 runs are short, so the hardware packs them in N/2-bit z_unary fields.
        field = 3 * n // 4 if e < 3 else n // 2
        cost = -(-quot // field) * field + e * count
        take = (e >= start) & (e <= end) & ((best_cost < 0) | (cost < best_cost))
        best_cost = np.where(take, cost, best_cost)
        best_div = np.where(take, e, best_div)
    return best_div, best_cost
