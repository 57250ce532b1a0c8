"""Ethos-N78 headers and GRC chunks of every stream of a layer as bit items, built in numpy.

The same bits as `stream_codec.stream_items` for each stream, for all streams at once: unary planes
become chunk words through per-chunk sums, the weight/zero chunk interleave (the decoder's balance
rule) is stepped for all streams together, and every field gets its bit offset from cumulative sums.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .batch_plan import LayerPlan
from .stream_params import BIAS_BITS, LENGTH_PLACEHOLDER, MAX_PLDLEN, WDIV_UNCOMPRESSED, ZDIV_RLE_OFF

#: Maps the bits of every stream to the absolute bit where each stream starts in the blob.
Place = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Widths:
    """Per-stream field widths: remainder bits (d, e) and unary field sizes (cw, cz)."""

    d: np.ndarray
    e: np.ndarray
    cw: np.ndarray
    cz: np.ndarray
    unc: np.ndarray
    rle: np.ndarray


def widths(plan: LayerPlan, n: int) -> Widths:
    """Symbol/zero-run remainder widths and chunk field sizes per stream (see `chunk_bits`)."""
    unc = plan.wdiv == WDIV_UNCOMPRESSED
    rle = plan.zdiv != ZDIV_RLE_OFF
    pal_w = np.frexp(np.maximum(plan.pal_len - 1, 0).astype(np.float64))[1].astype(np.int64)
    d = np.where(unc, np.where(plan.pal_len > 0, np.maximum(pal_w, 1), plan.pbits + 2), plan.wdiv)
    e = np.where(rle, plan.zdiv, 0)
    # Wide uncompressed symbols leave room for only N/2 per chunk; ZDIV 3 runs use N/2-bit z fields.
    cw = np.where(unc & (d > 5), n // 2, 3 * n // 4)
    cz = np.where(e < 3, 3 * n // 4, n // 2)
    return Widths(d, e, cw, cz, unc, rle)


def header_items(plan: LayerPlan, hdr: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(S, F) values and widths of the weight and payload headers (absent fields have width 0)."""
    bias, reload, mult, shift, ozp = hdr
    if int(plan.n_w.max(initial=0)) > MAX_PLDLEN:
        raise ValueError(f"stream has {int(plan.n_w.max())} coded weights; PLDLEN is limited to {MAX_PLDLEN}")
    rp, rpal = plan.reload_params, plan.reload_palette & plan.reload_params
    reload = reload.astype(np.int64)
    rp64, rpal64 = rp.astype(np.int64), rpal.astype(np.int64)
    # Consecutive fields are joined into items of at most 32 bits (a short stream is mostly header,
    # and the packing costs per item): [reload, multiplier 16, shift 6, OFM zero point 8] (1 or 31
    # bits); [PLDLEN 17, reload params, zdiv 3, wdiv 3, trunc, dirofs 5, reload palette] (18 or 31);
    # [palette size - 1 5, palette bits 3] (0 or 8).
    requant = reload | (((mult & 0xFFFF) | ((shift & 0x3F) << 16) | ((ozp & 0xFF) << 22)) << 1) * reload
    params = (plan.zdiv | (plan.wdiv << 3) | (plan.trunc.astype(np.int64) << 6) | (plan.dirofs << 7)
              | (plan.reload_palette.astype(np.int64) << 12))
    payload = plan.n_w | (rp64 << 17) | (params << 18) * rp64
    pal_head = (np.maximum(plan.pal_len - 1, 0) | (plan.pbits << 5)) * rpal64
    ones = np.ones_like(plan.n_w)
    cols = [
        (np.full_like(plan.n_w, LENGTH_PLACEHOLDER), 16 * ones), (bias & 0xFFFFFFFF, BIAS_BITS * ones),
        (requant, 1 + 30 * reload), (payload, 18 + 13 * rp64), (pal_head, 8 * rpal64),
    ]
    vals = np.stack([c[0] for c in cols], axis=1).astype(np.int64)
    wids = np.stack([np.asarray(c[1], dtype=np.int64) for c in cols], axis=1)
    # Sign-magnitude palette entries: magnitude, sign in the top bit of the entry.
    ew = (plan.pbits + 2)[:, None]
    pal = plan.palette
    entries = np.abs(pal) | ((pal < 0).astype(np.int64) << (ew - 1))
    present = (np.arange(pal.shape[1])[None, :] < plan.pal_len[:, None]) & rpal[:, None]
    vals = np.concatenate([vals, entries * present], axis=1)
    wids = np.concatenate([wids, ew * present], axis=1)
    return vals, wids  # fields of width 0 are absent (their values are not masked)


def _unary_words(ends: np.ndarray, zero_bits: np.ndarray, item_stream: np.ndarray, field: np.ndarray,
                 totals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Chunk words of unary planes: per stream `totals` bits, all ones except at `zero_bits` (positions
    end-1 of the items flagged there); returns (words, ones per word, chunk count per stream, item chunk)."""
    nch = -(-totals // field)
    first = np.cumsum(nch) - nch
    word, bit = np.divmod(ends - 1, field[item_stream])
    item_chunk = first[item_stream] + word
    chunk_stream = np.repeat(np.arange(totals.size), nch)
    local = np.arange(int(nch.sum())) - first[chunk_stream]
    valid = np.minimum(field[chunk_stream], totals[chunk_stream] - local * field[chunk_stream])
    # Items without a zero bit weigh 0 (multiplying, not subscripting by a data-dependent mask).
    zeros = np.bincount(item_chunk, weights=((1 << bit) * zero_bits).astype(np.float64),
                        minlength=nch.sum()).astype(np.int64)
    nzeros = np.bincount(item_chunk, weights=zero_bits, minlength=nch.sum()).astype(np.int64)
    return (1 << valid) - 1 - zeros, valid - nzeros, nch, item_chunk


def _local_cumsum(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum restarting at every stream (items sorted by stream, `count` per stream)."""
    c = np.cumsum(values, dtype=np.int64)
    first = np.cumsum(count) - count
    has = count > 0
    base = np.zeros(count.size, dtype=np.int64)
    base[has] = (c - values)[first[has]]
    return c - np.repeat(base, count)


def chunk_items(plan: LayerPlan, wd: Widths, n: int, head_bits: np.ndarray, place: Place) -> tuple[Any, ...]:
    """GRC chunk items of all streams: (values, widths, absolute starts (each a list of arrays),
    stream bits, stream starts).

    Field order per chunk as in `pack_chunks`; remainders lag one chunk. `place` turns the bits of
    every stream into its absolute start bit, so item positions are absolute from the outset."""
    streams = plan.n_w.size
    n_w, n_z = plan.n_w, plan.n_z
    fs = np.repeat(np.arange(streams), n_w)
    zs = np.repeat(np.arange(streams), n_z)
    # Each side in its own function, so that its per-weight temporaries are gone before the placing.
    u0, c1, u1, n_wch, comp_w = _weight_unary(plan, wd, fs)
    wch_stream = np.repeat(np.arange(streams), n_wch)
    # ---- zero side: q ones then a zero per run
    zq1 = (plan.z >> wd.e[zs]) + 1
    endz = _local_cumsum(zq1, n_z)
    totz = np.bincount(zs, weights=zq1, minlength=streams).astype(np.int64)
    del zq1
    zu, _, n_zch, comp_z = _unary_words(endz, np.ones(plan.z.size, dtype=bool), zs, wd.cz, totz)
    del endz
    # ---- symbols completed by the end of each chunk (w_done / z_done, with a leading 0 per stream)
    w_done = _done(comp_w, n_wch)
    z_done = _done(comp_z, n_zch)
    recs = _schedule(w_done, z_done, n_wch, n_zch, n_w, n_z, wd.rle, n // 2)
    return _place(plan, wd, recs, (u0, c1, u1, zu), (w_done, z_done, n_wch, n_zch), (comp_w, comp_z, fs, zs),
                  wch_stream, head_bits, place)


def _weight_unary(plan: LayerPlan, wd: Widths, fs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weight-side unary planes as chunk words: (u0 words, u1 bits per chunk, u1 words, chunks per
    stream, chunk of every weight). Uncompressed streams have no unary bits, only a symbol count
    (their quotient is 0, symbols being below 2**10). Arithmetic rather than np.where per weight."""
    streams, n_w = plan.n_w.size, plan.n_w
    q = plan.f >> np.where(wd.unc, 63, wd.d)[fs]
    trunc_f = plan.trunc[fs]
    # Truncated (q <= 2): a 0 ends the u0 run unless q == 2, which takes one 1 in u0 and one in u1;
    # otherwise q >> 1 ones then a 0 in u0 and (q + 1) >> 1 bits in u1 (both give 0 or 1 for q < 2).
    two = trunc_f & (q == 2)
    n0 = (q >> 1) + 1 - two
    last0 = ((q & 1) == 1) | two
    n1 = (q + 1) >> 1
    last1 = ((q & 1) == 0) ^ (trunc_f & (q == 0))
    del q, two, trunc_f
    end0 = _local_cumsum(n0, n_w)
    tot0 = np.bincount(fs, weights=n0, minlength=streams).astype(np.int64)
    del n0
    u0, c1, n_wch, comp_w = _unary_words(end0, ~last0 | wd.unc[fs], fs, wd.cw, tot0)
    del end0, last0
    c1 = np.where(np.repeat(wd.unc, n_wch), 0, c1)
    c1_first = np.cumsum(c1) - c1  # u1 bits before each chunk, counted from the layer start
    s1_first = np.zeros(streams, dtype=np.int64)
    first_ch = np.cumsum(n_wch) - n_wch
    has = n_wch > 0
    s1_first[has] = c1_first[first_ch[has]]
    end1 = _local_cumsum(n1, n_w)
    zero1 = np.flatnonzero((n1 > 0) & ~last1)
    chunk1 = comp_w[zero1]
    bit1 = end1[zero1] - 1 - (c1_first[chunk1] - s1_first[fs[zero1]])
    u1 = (1 << c1) - 1 - np.bincount(chunk1, weights=(1 << bit1).astype(np.float64), minlength=c1.size).astype(np.int64)
    return u0, c1, u1, n_wch, comp_w


def _done(comp: np.ndarray, nch: np.ndarray) -> np.ndarray:
    """Per stream, symbols completed before chunk k, k = 0..n_chunks (flat, n_chunks + 1 per stream)."""
    per_chunk = np.bincount(comp, minlength=int(nch.sum()))
    counts = nch + 1
    out = np.zeros(int(counts.sum()), dtype=np.int64)
    first = np.cumsum(counts) - counts
    stream = np.repeat(np.arange(nch.size), nch)
    pos = first[stream] + (np.arange(per_chunk.size) - (np.cumsum(nch) - nch)[stream]) + 1
    out[pos] = per_chunk
    return _local_cumsum(out, counts)


def _schedule(w_done: np.ndarray, z_done: np.ndarray, n_wch: np.ndarray, n_zch: np.ndarray, n_w: np.ndarray,
              n_z: np.ndarray, rle: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoder's chunk interleave, stepped for all streams together: per iteration record the
    stream, its weight chunk and its zero chunk (-1: none); a last record per stream only flushes."""
    streams = n_w.size
    ow = np.cumsum(n_wch + 1) - (n_wch + 1)
    oz = np.cumsum(n_zch + 1) - (n_zch + 1)
    live = np.arange(streams)
    a = np.zeros(streams, dtype=np.int64)
    b = np.zeros(streams, dtype=np.int64)
    rec_s, rec_a, rec_b = [], [], []
    while live.size:
        wpos, zpos = w_done[ow[live] + a[live]], z_done[oz[live] + b[live]]
        r = rle[live]
        bal = (wpos - zpos) * r
        w_en = (bal < half) & (wpos < n_w[live])
        z_en = r & (bal >= 0) & (zpos < n_z[live])
        rec_s.append(live)
        rec_a.append(np.where(w_en, a[live], -1))
        rec_b.append(np.where(z_en, b[live], -1))
        a[live] += w_en
        b[live] += z_en
        live = live[w_en | z_en]
    # A stream is live from the first step to its last, so its records go, in step order, to its
    # first record's place plus the step: a scatter instead of a sort by stream.
    s = np.concatenate(rec_s)
    steps = np.repeat(np.arange(len(rec_s)), [r.size for r in rec_s])
    count = np.bincount(s, minlength=streams)
    pos = (np.cumsum(count) - count)[s] + steps
    out_s, out_a, out_b = np.empty_like(s), np.empty_like(s), np.empty_like(s)
    out_s[pos], out_a[pos], out_b[pos] = s, np.concatenate(rec_a), np.concatenate(rec_b)
    return out_s, out_a, out_b


def _place(plan: LayerPlan, wd: Widths, recs: tuple[np.ndarray, np.ndarray, np.ndarray],
           words: tuple[np.ndarray, ...], done: tuple[np.ndarray, ...], comp: tuple[np.ndarray, ...],
           wch_stream: np.ndarray, head_bits: np.ndarray, place: Place) -> tuple[Any, ...]:
    """Bit offsets of every chunk field from the schedule: slots [u0, z_unary, u1, w rem, z rem]."""
    s, wa, zb = recs
    u0, c1, u1, zu = words
    w_done, z_done, n_wch, n_zch = done
    comp_w, comp_z, fs, zs = comp
    streams = plan.n_w.size
    wfirst = np.cumsum(n_wch) - n_wch
    zfirst = np.cumsum(n_zch) - n_zch
    ow = np.cumsum(n_wch + 1) - (n_wch + 1)
    oz = np.cumsum(n_zch + 1) - (n_zch + 1)
    gw = np.where(wa >= 0, wfirst[s] + wa, -1)  # global chunk ids
    gz = np.where(zb >= 0, zfirst[s] + zb, -1)
    w_cnt = np.where(wa >= 0, w_done[ow[s] + wa + 1] - w_done[ow[s] + np.maximum(wa, 0)], 0)
    z_cnt = np.where(zb >= 0, z_done[oz[s] + zb + 1] - z_done[oz[s] + np.maximum(zb, 0)], 0)
    emit_u = (wa >= 0) & ~wd.unc[s]
    # Bits of each record's five slots, as separate vectors (a (records, 5) matrix would cost a
    # short row reduction per record): [u0, z_unary, u1, w remainders, z remainders].
    same = np.append(False, s[1:] == s[:-1])
    c0 = wd.cw[s] * emit_u
    c1_ = wd.cz[s] * (zb >= 0)
    c2 = np.append(c1, 0)[gw] * emit_u  # gw -1 reads the appended 0
    # Remainders of the previous record's chunks (the decoder double-buffers them one chunk behind).
    c3 = np.append(0, w_cnt[:-1]) * wd.d[s] * same
    c4 = np.append(0, z_cnt[:-1]) * wd.e[s] * same
    total = c0 + c1_ + c2 + c3 + c4
    rec_count = np.bincount(s, minlength=streams)
    per_stream = np.bincount(s, weights=total, minlength=streams).astype(np.int64)
    bits = head_bits + per_stream
    stream_start = place(bits)
    slot0 = _local_cumsum(total, rec_count) - total + (stream_start + head_bits)[s]
    slot1 = slot0 + c0
    slot2 = slot1 + c1_
    slot3 = slot2 + c2
    slot4 = slot3 + c3
    rec_of_w = np.zeros(u0.size, dtype=np.int64)
    rec_of_w[gw[wa >= 0]] = np.flatnonzero(wa >= 0)
    rec_of_z = np.zeros(zu.size, dtype=np.int64)
    rec_of_z[gz[zb >= 0]] = np.flatnonzero(zb >= 0)
    vals, wids, pos = [], [], []
    ru = np.flatnonzero(emit_u)
    vals += [u0[gw[ru]], u1[gw[ru]]]
    wids += [wd.cw[s[ru]], c1[gw[ru]]]
    pos += [slot0[ru], slot2[ru]]
    rz = np.flatnonzero(zb >= 0)
    vals.append(zu[gz[rz]])
    wids.append(wd.cz[s[rz]])
    pos.append(slot1[rz])
    # Remainders: in the record after their chunk's, in symbol order, back to back.
    d, e = wd.d[fs], wd.e[zs]
    vals += [plan.f & ((1 << d) - 1), plan.z & ((1 << e) - 1)]
    wids += [d, e]
    pos += [_remainder_starts(slot3, rec_of_w, comp_w, d, wd.d[wch_stream]),
            _remainder_starts(slot4, rec_of_z, comp_z, e, wd.e[np.repeat(np.arange(streams), n_zch)])]
    return vals, wids, pos, bits, stream_start  # lists, joined once with the headers by `layer_items`


def _remainder_starts(slot: np.ndarray, rec_of_chunk: np.ndarray, comp: np.ndarray, width: np.ndarray,
                      chunk_width: np.ndarray) -> np.ndarray:
    """Start bit of each remainder: its chunk's remainder slot (in the next record) plus its place
    among the chunk's symbols, written as chunk offset + global symbol index x width."""
    per_chunk = np.bincount(comp, minlength=rec_of_chunk.size)
    first_sym = np.cumsum(per_chunk) - per_chunk
    chunk_off = slot[np.minimum(rec_of_chunk + 1, slot.size - 1)] - first_sym * chunk_width
    return chunk_off[comp] + np.arange(comp.size) * width


def layer_items(plan: LayerPlan, hdr: tuple[np.ndarray, ...], n: int, place: Place) -> tuple[np.ndarray, ...]:
    """All items of all streams: values, widths and absolute start bits (`place` maps the bits of each
    stream to its start), then each stream's bits and the item index of its length field (patched later)."""
    wd = widths(plan, n)
    hv, hw = header_items(plan, hdr)
    cv, cw_, cs, bits, stream_start = chunk_items(plan, wd, n, hw.sum(axis=1), place)
    fields = hw.shape[1]
    flat_w = hw.ravel()
    before = np.cumsum(flat_w) - flat_w  # header bits before each field, counted from the chunk's first stream
    kept = np.flatnonzero(flat_w)  # absent fields (no reload, no palette) are not items
    row = kept // fields
    per_stream = np.bincount(row, minlength=hw.shape[0])
    length_item = np.cumsum(per_stream) - per_stream  # the 16-bit length field comes first in each stream
    hs = before[kept] + (stream_start - before[::fields])[row]
    vals = np.concatenate([hv.ravel()[kept], *cv])
    wids = np.concatenate([flat_w[kept], *cw_])
    starts = np.concatenate([hs, *cs])
    return vals, wids, starts, bits, length_item


def stream_bit_counts(plan: LayerPlan, hdr: tuple[np.ndarray, ...], n: int) -> np.ndarray:
    """Bits of every stream (headers + chunks) without placing them (what the sizes need)."""
    wd = widths(plan, n)
    _, hw = header_items(plan, hdr)
    streams = plan.n_w.size
    fs = np.repeat(np.arange(streams), plan.n_w)
    zs = np.repeat(np.arange(streams), plan.n_z)
    q = np.where(wd.unc[fs], 0, plan.f >> wd.d[fs])
    trunc = plan.trunc[fs]
    u0 = np.bincount(fs, weights=np.where(trunc, 1, (q >> 1) + 1), minlength=streams).astype(np.int64)
    u1 = np.bincount(fs, weights=np.where(trunc, q > 0, (q + 1) >> 1), minlength=streams).astype(np.int64)
    uz = np.bincount(zs, weights=(plan.z >> wd.e[zs]) + 1, minlength=streams).astype(np.int64)
    total = wd.d * plan.n_w + wd.e * plan.n_z
    total += np.where(~wd.unc & (plan.n_w > 0), -(-u0 // wd.cw) * wd.cw + u1, 0)
    total += np.where(plan.n_z > 0, -(-uz // wd.cz) * wd.cz, 0)
    return hw.sum(axis=1) + total
