"""Ethos-N78 GRC chunk packing and parsing: the payload after a stream's headers (shared facts §1.4).

Weight and zero-run symbols are Golomb-Rice coded into interleaved chunks: w_unary0 (fixed width),
z_unary (fixed width), w_unary1, then the previous chunk's remainders (the decoder double-buffers
them one chunk behind). Packing is vectorised; parsing is plain Python and meant for verification.
"""

from __future__ import annotations

import numpy as np

from .bitstream import BitReader
from .stream_params import MAX_QUOTIENT, StreamParams

Items = tuple[np.ndarray, np.ndarray, np.ndarray, int]  # values, widths, bit starts, total bits


def _unary_planes(q: np.ndarray, trunc: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-symbol unary0/unary1 bit counts and last bits of the 2-plane code (all earlier bits are 1)."""
    if trunc:
        # Truncation stops after one pair: q in {0,1,2} -> "0", "1"+"0", "1"+"1".
        n0 = np.ones_like(q)
        last0 = (q > 0).astype(np.uint8)
        n1 = (q > 0).astype(np.int64)
        last1 = (q == 2).astype(np.uint8)
    else:
        # Each step writes (q>0) to unary0 and, if that was 1, (q>1) to unary1, then q -= 2.
        n0 = (q >> 1) + 1
        last0 = (q & 1).astype(np.uint8)
        n1 = (q + 1) >> 1
        last1 = (1 - (q & 1)).astype(np.uint8)
    return n0, last0, n1, last1


def _chunk_words(bits: np.ndarray, width: int) -> np.ndarray:
    """Pack a 0/1 array (length a multiple of width <= 16) into one integer per chunk, LSB first."""
    packed = np.packbits(bits.reshape(-1, width), axis=1, bitorder="little").astype(np.int64)
    return packed[:, 0] | (packed[:, 1] << 8) if packed.shape[1] > 1 else packed[:, 0]


def _schedule(w_done: list[int], z_done: list[int], n_w: int, n_z: int, rle: bool, half: int) -> list[tuple[int, int]]:
    """Interleave weight and zero chunks with the balance rule; returns (w chunk, z chunk) per iteration.

    -1 means "not emitted"; the final (-1, -1) iteration only flushes the lagging remainders.
    """
    a = b = 0
    out: list[tuple[int, int]] = []
    while True:
        wpos, zpos = w_done[a], z_done[b]
        bal = wpos - zpos if rle else 0
        w_en = bal < half and wpos < n_w
        z_en = rle and bal >= 0 and zpos < n_z
        out.append((a if w_en else -1, b if z_en else -1))
        if not (w_en or z_en):
            return out
        a += w_en
        b += z_en


def chunk_bits(f: np.ndarray, z: np.ndarray, params: StreamParams, n: int) -> int:
    """Length in bits of `pack_chunks(f, z, params, n)` without building it (sizes only)."""
    n_w, n_z, rle = f.size, z.size, params.rle
    d, e = params.symbol_width(), (params.zdiv if rle else 0)
    unc = params.uncompressed
    cw = n // 2 if (unc and d > 5) else 3 * n // 4
    cz = 3 * n // 4 if e < 3 else n // 2
    total = d * n_w + e * n_z
    if n_w and not unc:
        q = f >> d
        if params.truncation:
            positive = int(np.count_nonzero(q))
            u0, u1 = n_w, positive
        else:
            u0, u1 = int(((q >> 1) + 1).sum()), int(((q + 1) >> 1).sum())
        total += -(-u0 // cw) * cw + u1
    if n_z:
        total += -(-int(((z >> e) + 1).sum()) // cz) * cz
    return total


def pack_chunks(f: np.ndarray, z: np.ndarray, params: StreamParams, n: int) -> Items:
    """GRC-code weight symbols `f` and zero runs `z` into the chunk sequence (§1.4) as bit items.

    Chunk field order: w_unary0 (fixed), z_unary (fixed), w_unary1, then the remainders of the
    previous chunk (weights, zeros): the decoder double-buffers remainders one chunk behind.
    """
    n_w, n_z, rle = f.size, z.size, params.rle
    d, e = params.symbol_width(), (params.zdiv if rle else 0)
    unc = params.uncompressed
    cw = n // 2 if (unc and d > 5) else 3 * n // 4
    cz = 3 * n // 4 if e < 3 else n // 2
    # ---- weight side: u0 chunks, u1 segments and the chunk each symbol completes in
    if n_w == 0:
        n_wch, comp_w = 0, np.zeros(0, dtype=np.int64)
        u0 = u1 = c1 = np.zeros(0, dtype=np.int64)
    elif unc:
        n_wch = -(-n_w // cw)
        comp_w = np.arange(n_w) // cw
        u0 = u1 = c1 = np.zeros(n_wch, dtype=np.int64)
    else:
        q = f >> d
        n0, last0, n1, last1 = _unary_planes(q, params.truncation)
        end0 = np.cumsum(n0)
        n_wch = -(-int(end0[-1]) // cw)
        bits0 = np.zeros(n_wch * cw, dtype=np.uint8)
        bits0[: end0[-1]] = 1
        bits0[end0 - 1] = last0
        u0 = _chunk_words(bits0, cw)
        c1 = bits0.reshape(n_wch, cw).sum(axis=1, dtype=np.int64)  # one u1 bit per u0 one
        end1 = np.cumsum(n1)
        bits1 = np.ones(int(end1[-1]), dtype=np.int64)
        has1 = n1 > 0
        bits1[end1[has1] - 1] = last1[has1]
        seg = np.repeat(np.arange(n_wch), c1)
        offs = np.arange(bits1.size) - np.repeat(np.cumsum(c1) - c1, c1)
        u1 = np.bincount(seg, weights=(bits1 << offs).astype(np.float64), minlength=n_wch).astype(np.int64)
        comp_w = (end0 - 1) // cw
    w_done = np.searchsorted(comp_w, np.arange(n_wch + 1), side="left")
    # ---- zero side: plain unary (q ones then a zero) in cz-bit fields
    if n_z:
        zq = z >> e
        endz = np.cumsum(zq + 1)
        n_zch = -(-int(endz[-1]) // cz)
        bitsz = np.zeros(n_zch * cz, dtype=np.uint8)
        bitsz[: endz[-1]] = 1
        bitsz[endz - 1] = 0
        zu = _chunk_words(bitsz, cz)
        comp_z = (endz - 1) // cz
    else:
        n_zch, zu, comp_z = 0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    z_done = np.searchsorted(comp_z, np.arange(n_zch + 1), side="left")
    # ---- iteration schedule
    if rle:
        sched = np.array(_schedule(w_done.tolist(), z_done.tolist(), n_w, n_z, True, n // 2), dtype=np.int64)
        it_w, it_z = sched[:, 0], sched[:, 1]
    else:
        it_w = np.append(np.arange(n_wch), -1)
        it_z = np.full(n_wch + 1, -1)
    n_it = it_w.size
    t_w = np.flatnonzero(it_w >= 0)  # iteration of each weight chunk (chunks are emitted in order)
    t_z = np.flatnonzero(it_z >= 0)
    # ---- slot sizes per iteration: [u0, z_unary, u1, w remainders, z remainders]
    sizes = np.zeros((n_it, 5), dtype=np.int64)
    if not unc:
        sizes[t_w, 0] = cw
        sizes[t_w, 2] = c1
    sizes[t_z, 1] = cz
    sizes[t_w + 1, 3] = np.diff(w_done) * d
    sizes[t_z + 1, 4] = np.diff(z_done) * e
    flat = sizes.ravel()
    slot_start = (np.cumsum(flat) - flat).reshape(n_it, 5)
    total = int(flat.sum())
    vals, wids, starts = [], [], []
    if not unc and n_wch:
        vals += [u0, u1]
        wids += [np.full(n_wch, cw), c1]
        starts += [slot_start[t_w, 0], slot_start[t_w, 2]]
    if n_zch:
        vals.append(zu)
        wids.append(np.full(n_zch, cz))
        starts.append(slot_start[t_z, 1])
    if d and n_w:
        vals.append(f & ((1 << d) - 1))
        wids.append(np.full(n_w, d))
        starts.append(slot_start[t_w[comp_w] + 1, 3] + (np.arange(n_w) - w_done[comp_w]) * d)
    if e and n_z:
        vals.append(z & ((1 << e) - 1))
        wids.append(np.full(n_z, e))
        starts.append(slot_start[t_z[comp_z] + 1, 4] + (np.arange(n_z) - z_done[comp_z]) * e)
    if not vals:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, total
    return np.concatenate(vals), np.concatenate(wids), np.concatenate(starts), total




def decode_chunks(r: BitReader, n_w: int, p: StreamParams, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse the chunk sequence, mirroring the encoder's balance rule; returns (symbols, zero runs)."""
    rle, unc, trunc = p.rle, p.uncompressed, p.truncation
    d, e = p.symbol_width(), (p.zdiv if rle else 0)
    n_z = n_w + 1 if rle else 0
    cw = n // 2 if (unc and d > 5) else 3 * n // 4
    cz = 3 * n // 4 if e < 3 else n // 2
    wq: list[int] = []
    wr: list[int] = []
    zq: list[int] = []
    zr: list[int] = []
    cur_w = cur_z = 0
    pend_w = pend_z = 0
    half = n // 2
    while True:
        w_done, z_done = len(wq), len(zq)
        bal = w_done - z_done if rle else 0
        w_en = bal < half and w_done < n_w
        z_en = rle and bal >= 0 and z_done < n_z
        u0 = r.read(cw) if (w_en and not unc) else 0
        zu = r.read(cz) if z_en else 0
        new_w = new_z = 0
        if w_en and unc:
            new_w = min(cw, n_w - w_done)
            wq.extend([0] * new_w)
        elif w_en:
            u1 = r.read(u0.bit_count())
            k = 0
            for j in range(cw):
                b0 = (u0 >> j) & 1
                if len(wq) == n_w:
                    if b0:
                        raise ValueError("non-zero padding in w_unary0")
                    continue
                if not b0:
                    wq.append(cur_w)
                    cur_w = 0
                    continue
                b1 = (u1 >> k) & 1
                k += 1
                if trunc or not b1:
                    wq.append(cur_w + 1 + b1)
                    cur_w = 0
                else:
                    cur_w += 2
            new_w = len(wq) - w_done
        if z_en:
            for j in range(cz):
                if len(zq) == n_z:
                    if (zu >> j) & 1:
                        raise ValueError("non-zero padding in z_unary")
                    continue
                if (zu >> j) & 1:
                    cur_z += 1
                else:
                    zq.append(cur_z)
                    cur_z = 0
            new_z = len(zq) - z_done
        wr.extend(r.read(d) for _ in range(pend_w))
        zr.extend(r.read(e) for _ in range(pend_z))
        pend_w, pend_z = new_w, new_z
        if not (w_en or z_en):
            break
    fq = np.array(wq, dtype=np.int64)
    f = (fq << d) | np.array(wr, dtype=np.int64) if n_w else np.zeros(0, dtype=np.int64)
    if not unc and n_w and int(fq.max()) > MAX_QUOTIENT:
        raise ValueError("weight quotient exceeds 31")
    zruns = (np.array(zq, dtype=np.int64) << e) | np.array(zr, dtype=np.int64) if n_z else np.zeros(0, np.int64)
    return f, zruns


