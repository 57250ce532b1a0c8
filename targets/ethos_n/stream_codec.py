"""Ethos-N78 single-stream weight codec ("weight compression version 1"): the per-OFM bitstream core.

Written from the prose reconstruction in shared/docs/ethos-n-facts.md §1.1-1.4 of the driver stack's
`WeightEncoder.cpp`. A stream is a weight header (bias, requantisation), a payload header (compression
parameters, palette) and GRC-coded chunks; `weight_codec.py` arranges streams into the DRAM blob.
Everything here is a pure function of numpy arrays; the hot paths are vectorised.

The parameter search follows the 25.03 encoder: pruned WDIV/ZDIV ranges, uncompressed as the
incumbent, earlier candidates winning ties, and no 31-bit limit on zero-run quotients.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .bitstream import BitReader, scatter_bits

ZDIV_RLE_OFF = 7  # ZDIV field value meaning "no zero-run coding"
WDIV_UNCOMPRESSED = 7  # WDIV field value meaning "fixed-width symbols"
MAX_PALETTE = 32
MAX_SYMBOL = 511  # the weight decoder works on 9-bit symbols
MAX_DIROFS = 31  # 5-bit DIROFS field
MAX_QUOTIENT = 31  # the GRC unit decodes at most 31 quotient bits per weight
MAX_PLDLEN = 0x1FFFF  # 17-bit PLDLEN field
LENGTH_PLACEHOLDER = 0xFFFF  # stream length is patched when the OG's streams are concatenated
BIAS_BITS = 32  # 3 + 1 bytes for 8-bit weights (GetOfmBiasSize)


@dataclass(frozen=True)
class OfmHeader:
    """Weight-header fields of one OFM stream; requant fields are sent only when `reload` is set."""

    bias: int = 0
    multiplier: int = 0  # 16-bit quantised multiplier of in_scale*w_scale/out_scale
    shift: int = 0  # 6 bits
    zero_point: int = 0  # output zero point, 8 bits (two's complement when negative)
    reload: bool = True

    def __post_init__(self) -> None:
        _check_range("bias", self.bias, -(1 << 31), (1 << 31) - 1)
        _check_range("multiplier", self.multiplier, 0, 0xFFFF)
        _check_range("shift", self.shift, 0, 63)
        _check_range("output zero point", self.zero_point, -128, 255)


@dataclass(frozen=True)
class StreamParams:
    """Compression parameters of one stream, plus which of them the payload header reloads.

    `palette` holds signed weight values (a padding entry is 0); `palette_bits` is the entry width - 2,
    or, with no palette and WDIV=7, the raw symbol width - 2.
    """

    zdiv: int = ZDIV_RLE_OFF
    wdiv: int = WDIV_UNCOMPRESSED
    truncation: bool = False
    weight_offset: int = 0
    palette: tuple[int, ...] = ()
    palette_bits: int = 7
    reload_params: bool = True
    reload_palette: bool = True

    @property
    def rle(self) -> bool:
        """True when zeros are removed from the weight stream and coded as runs."""
        return self.zdiv != ZDIV_RLE_OFF

    @property
    def uncompressed(self) -> bool:
        """True when weight symbols are written at a fixed width (no GRC unary part)."""
        return self.wdiv == WDIV_UNCOMPRESSED

    def symbol_width(self) -> int:
        """Remainder width: WDIV, or the fixed symbol width in uncompressed mode."""
        if not self.uncompressed:
            return self.wdiv
        return _bitwidth(len(self.palette) - 1, 1) if self.palette else self.palette_bits + 2


#: Parameters the hardware holds before the first stream of an OG (the driver's defaults).
INITIAL_PARAMS = StreamParams()


@dataclass(frozen=True)
class EncodedStream:
    """One encoded stream: LSB-first bytes (length field still 0xFFFF) and its exact bit length."""

    data: bytes
    num_bits: int
    params: StreamParams


@dataclass(frozen=True)
class DecodedStream:
    """Result of parsing one stream: zero-point-corrected weights and the header/params it carried."""

    weights: np.ndarray
    header: OfmHeader
    params: StreamParams
    length_words: int
    end_bit: int


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name} {value} outside [{lo}, {hi}]")


def _bitwidth(value: int, min_width: int) -> int:
    """Smallest width >= min_width that holds `value` (the driver's CalcBitWidth)."""
    return max(min_width, int(value).bit_length())


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def to_symbols(w: np.ndarray) -> np.ndarray:
    """Zig-zag map 9-bit signed weights to unsigned symbols: 0,-1,1,-2,2 -> 0,1,2,3,4."""
    w = np.asarray(w, dtype=np.int64)
    return 2 * np.abs(w) - (w < 0)


def from_symbols(sym: np.ndarray) -> np.ndarray:
    """Inverse of `to_symbols`."""
    sym = np.asarray(sym, dtype=np.int64)
    mag = (sym + 1) >> 1
    return np.where(sym & 1, -mag, mag)


# ----------------------------------------------------------------------------- parameter search


@dataclass(frozen=True)
class _Choice:
    cost: int
    params: StreamParams
    lut: np.ndarray | None  # symbol -> final (palette index or direct) symbol


@dataclass(frozen=True)
class StreamPlan:
    """Chosen parameters plus the coded symbol lists: weight symbols `f` and zero runs `z`."""

    params: StreamParams
    f: np.ndarray
    z: np.ndarray


def _find_palette(syms: np.ndarray, cnts: np.ndarray, rle: bool) -> tuple[int, bool, int] | None:
    """Palette size, padding flag and DIROFS per FindPaletteParams, or None for no palette.

    `syms`/`cnts` are sorted by frequency (desc), larger symbol first on ties.
    """
    size = min(MAX_PALETTE, int(np.count_nonzero(cnts > 1)))
    if size == 0:
        return None
    padded = False
    if size < 2:
        # A single repeated non-zero value still pays off if padded with a zero entry.
        if syms[0] > 0 and cnts[0] > 2:
            padded, size = True, 2
        else:
            return None
    dirofs, range_left = 0, MAX_SYMBOL - size
    while True:
        size = min(size, range_left)
        in_palette = size - padded
        if in_palette == len(syms):
            dirofs, range_left = int(rle), MAX_SYMBOL  # with RLE, symbol 0 never reaches the decoder
        else:
            outside = syms[in_palette:]
            dirofs = min(int(outside.min()), MAX_DIROFS)
            range_left = MAX_SYMBOL - (int(outside.max()) - dirofs)
        # Shrink until every direct symbol (sym + P - DIROFS) still fits in 9 bits.
        if not (size > 2 and size > range_left):
            break
    return (size, padded, dirofs) if size >= 2 else None


def _grc_search(mapped: np.ndarray, cnts: np.ndarray, raw: np.ndarray | None, n: int) -> tuple[int, bool, int]:
    """Cheapest (WDIV, truncation, bits) per FindGRCParams; unary0 is paid in whole 3N/4-bit fields.

    Uncompressed is the incumbent and only a strictly cheaper WDIV (lowest first) replaces it.
    """
    unc = mapped if raw is None else raw
    total = int(cnts.sum())
    best_cost = _bitwidth(int(unc.max()), 2) * total
    min_w, max_w = _bitwidth(int(mapped.min()), 2), _bitwidth(int(mapped.max()), 1)
    # The driver's pruned WDIV range: never so small that a quotient exceeds 31 bits.
    divs = np.arange(max(max_w - 5 if max_w > 5 else 0, min(5, min_w - 2)), min(5, max_w - 1) + 1)
    if divs.size == 0:
        return WDIV_UNCOMPRESSED, False, best_cost
    q = mapped[None, :] >> divs[:, None]
    qmax = q.max(axis=1)
    # Truncation: <= 3 distinct symbols, all quotients <= 2, so each costs 1 or 2 unary bits.
    trunc = (len(mapped) <= 3) & (qmax < 3)
    positive = (q > 0) @ cnts
    quot_bits = np.where(trunc, total + positive, (q + 1) @ cnts)
    unary1 = np.where(trunc, positive, ((q + 1) >> 1) @ cnts)
    c34 = 3 * n // 4
    costs = -(-(quot_bits - unary1) // c34) * c34 + unary1 + divs * total
    costs[qmax > MAX_QUOTIENT] = np.iinfo(np.int64).max
    k = int(np.argmin(costs))
    if costs[k] < best_cost:
        return int(divs[k]), bool(trunc[k]), int(costs[k])
    return WDIV_UNCOMPRESSED, False, best_cost


def _rle_search(runs: np.ndarray, n: int) -> tuple[int, int]:
    """Cheapest (ZDIV, bits) for the zero runs per FindRLEParams (its pruned ZDIV range)."""
    start = min(3, _bitwidth(int(runs.min()), 2) - 2)
    end = min(3, _bitwidth(int(runs.max()), 1) - 1)
    best_cost, best_div = -1, 0
    for e in range(start, end + 1):
        quot_bits = int((runs >> e).sum()) + runs.size
        # ZDIV 3 runs are short, so the hardware packs them in N/2-bit z_unary fields.
        cost = _round_up(quot_bits, 3 * n // 4 if e < 3 else n // 2) + e * runs.size
        if best_cost < 0 or cost < best_cost:
            best_cost, best_div = cost, e
    return best_div, best_cost


def _pass(syms: np.ndarray, cnts: np.ndarray, zdiv: int, prev: StreamParams, initial: bool, n: int) -> _Choice:
    """Palette + GRC choice for one pass (RLE on or off), costed like FindWeightCompressionParams."""
    rle = zdiv != ZDIV_RLE_OFF
    found = _find_palette(syms, cnts, rle)
    if found is None:
        size, padded, dirofs = 0, False, min(int(syms.min()), MAX_DIROFS)
    else:
        size, padded, dirofs = found
    in_palette = size - padded
    mapped = syms + size - dirofs
    mapped[:in_palette] = np.arange(in_palette)
    palette: tuple[int, ...] = ()
    pbits = 0
    if size:
        palette = tuple(from_symbols(syms[:in_palette]).tolist()) + (0,) * padded
        max_mag = (int(syms[:in_palette].max()) + 1) >> 1  # zig-zag order is magnitude order
        pbits = _bitwidth(max_mag, 2) + (max_mag > 1) - 2  # sign-magnitude entry width - 2
    raw = None
    raw_ofs = min(int(syms.min()), MAX_DIROFS)
    if in_palette != len(syms):
        raw = syms - raw_ofs
    wdiv, trunc, cost = _grc_search(mapped, cnts, raw, n)
    if wdiv == WDIV_UNCOMPRESSED and raw is not None:
        # A partial palette cannot be used uncompressed: drop it and send raw symbols.
        palette, dirofs, mapped = (), raw_ofs, raw
        pbits = _bitwidth(int(raw.max()), 2) - 2
    reload_palette = initial or palette != prev.palette or pbits != prev.palette_bits
    if reload_palette and palette:
        cost += (pbits + 2) * len(palette)
    reload_params = reload_palette or (zdiv, wdiv, trunc, dirofs) != (
        prev.zdiv,
        prev.wdiv,
        prev.truncation,
        prev.weight_offset,
    )
    lut = np.zeros(MAX_SYMBOL + 1, dtype=np.int64)
    lut[syms] = mapped
    params = StreamParams(zdiv, wdiv, trunc, dirofs, palette, pbits, reload_params, reload_palette)
    return _Choice(cost, params, lut)


def choose_params(w: np.ndarray, n: int, prev: StreamParams = INITIAL_PARAMS, initial: bool = True) -> StreamPlan:
    """Pick RLE/ZDIV/WDIV/palette for one stream of corrected weights by exact bit cost.

    `prev` is the previous stream's parameters on the same OG; `initial` forces a full reload.
    """
    sym = to_symbols(np.asarray(w).ravel())
    return plan_stream(sym, np.bincount(sym, minlength=MAX_SYMBOL + 1), n, prev, initial)


def plan_stream(sym: np.ndarray, hist: np.ndarray, n: int, prev: StreamParams, initial: bool) -> StreamPlan:
    """`choose_params` on zig-zag symbols with their histogram (lets callers batch the histograms).

    Two passes as in FindWeightCompressionParams: RLE off, then RLE on if zeros exist; cheaper wins.
    """
    present = np.flatnonzero(hist)
    freqs = hist[present]
    order = np.lexsort((-present, -freqs))
    syms, cnts = present[order], freqs[order]
    best = _pass(syms, cnts, ZDIV_RLE_OFF, prev, initial, n)
    if hist[0] == 0:
        assert best.lut is not None
        return StreamPlan(best.params, best.lut[sym], np.zeros(0, dtype=np.int64))
    nonzero = np.flatnonzero(sym)
    runs = np.diff(nonzero, prepend=-1, append=sym.size) - 1
    zdiv, zcost = _rle_search(runs, n)
    if len(syms) == 1:
        # All zeros: only ZDIV matters, everything else carries over from the previous stream.
        params = replace(prev, zdiv=zdiv, reload_palette=initial, reload_params=initial or zdiv != prev.zdiv)
        rle_choice = _Choice(zcost, params, None)
    else:
        keep = syms != 0
        rle_choice = _pass(syms[keep], cnts[keep], zdiv, prev, initial, n)
        rle_choice = replace(rle_choice, cost=rle_choice.cost + zcost)
    if rle_choice.cost < best.cost:
        lut = rle_choice.lut
        f = lut[sym[nonzero]] if lut is not None else np.zeros(0, dtype=np.int64)
        return StreamPlan(rle_choice.params, f, runs)
    assert best.lut is not None
    return StreamPlan(best.params, best.lut[sym], np.zeros(0, dtype=np.int64))


# ----------------------------------------------------------------------------- chunk packing

_Items = tuple[np.ndarray, np.ndarray, np.ndarray, int]  # values, widths, bit starts, total bits


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


def pack_chunks(f: np.ndarray, z: np.ndarray, params: StreamParams, n: int) -> _Items:
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


# ----------------------------------------------------------------------------- stream encode/decode


def header_fields(header: OfmHeader, params: StreamParams, pldlen: int) -> list[tuple[int, int]]:
    """(value, width) fields of the weight header and payload header, in bitstream order."""
    fields = [(LENGTH_PLACEHOLDER, 16), (header.bias & 0xFFFFFFFF, BIAS_BITS), (int(header.reload), 1)]
    if header.reload:
        fields += [(header.multiplier, 16), (header.shift, 6), (header.zero_point & 0xFF, 8)]
    fields += [(pldlen, 17), (int(params.reload_params), 1)]
    if params.reload_params:
        fields += [
            (params.zdiv, 3),
            (params.wdiv, 3),
            (int(params.truncation), 1),
            (params.weight_offset, 5),
            (int(params.reload_palette), 1),
        ]
        if params.reload_palette:
            width = params.palette_bits + 2
            fields += [(max(len(params.palette) - 1, 0), 5), (params.palette_bits, 3)]
            # Sign-magnitude entries: magnitude, sign in the top bit of the entry.
            fields += [(abs(v) | (int(v < 0) << (width - 1)), width) for v in params.palette]
    return fields


def stream_items(header: OfmHeader, plan: StreamPlan, n: int) -> _Items:
    """All bit items of one stream (headers + chunks) with starts relative to the stream start."""
    if plan.f.size > MAX_PLDLEN:
        raise ValueError(f"stream has {plan.f.size} coded weights; PLDLEN is limited to {MAX_PLDLEN}")
    hdr = header_fields(header, plan.params, plan.f.size)
    hv = np.array([v for v, _ in hdr], dtype=np.int64)
    hw = np.array([b for _, b in hdr], dtype=np.int64)
    hs = np.cumsum(hw) - hw
    head_bits = int(hw.sum())
    cv, cw, cs, ctotal = pack_chunks(plan.f, plan.z, plan.params, n)
    return (
        np.concatenate([hv, cv]),
        np.concatenate([hw, cw]),
        np.concatenate([hs, cs + head_bits]),
        head_bits + ctotal,
    )


def encode_stream(
    w: np.ndarray,
    *,
    ifm_parallel: int,
    header: OfmHeader | None = None,
    prev: StreamParams = INITIAL_PARAMS,
    initial: bool = True,
) -> EncodedStream:
    """Encode one stream of zero-point-corrected weights w = q - zp (each in [-255, 255]).

    `prev`/`initial` model the parameters the OG already holds, so reused parameters are not resent.
    """
    w = np.asarray(w, dtype=np.int64).ravel()
    ifm_parallel = int(ifm_parallel)
    if w.size and (w.min() < -255 or w.max() > 255):
        raise ValueError("zero-point-corrected weights must lie in [-255, 255]")
    if ifm_parallel not in (8, 16):
        raise ValueError("ifm_parallel must be 8 or 16")
    plan = choose_params(w, ifm_parallel, prev, initial)
    vals, wids, starts, total = stream_items(header or OfmHeader(), plan, ifm_parallel)
    return EncodedStream(scatter_bits(vals, wids, starts, total).tobytes(), total, plan.params)


def _read_params(r: BitReader, prev: StreamParams) -> StreamParams:
    """Parse the payload header's compression-parameter part (after PLDLEN)."""
    if not r.read(1):
        return replace(prev, reload_params=False, reload_palette=False)
    zdiv, wdiv, trunc, dirofs, pal_reload = r.read(3), r.read(3), bool(r.read(1)), r.read(5), r.read(1)
    if zdiv not in (0, 1, 2, 3, ZDIV_RLE_OFF) or wdiv not in (0, 1, 2, 3, 4, 5, WDIV_UNCOMPRESSED):
        raise ValueError(f"invalid ZDIV/WDIV {zdiv}/{wdiv}")
    palette, pbits = prev.palette, prev.palette_bits
    if pal_reload:
        size_m1, pbits = r.read(5), r.read(3)
        width = pbits + 2
        entries = [r.read(width) for _ in range(size_m1 + 1 if size_m1 else 0)]
        mag_mask = (1 << (width - 1)) - 1
        palette = tuple(-(e & mag_mask) if e >> (width - 1) else e & mag_mask for e in entries)
    return StreamParams(zdiv, wdiv, trunc, dirofs, palette, pbits, True, bool(pal_reload))


def _decode_chunks(r: BitReader, n_w: int, p: StreamParams, n: int) -> tuple[np.ndarray, np.ndarray]:
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


def _symbols_to_weights(f: np.ndarray, p: StreamParams) -> np.ndarray:
    """Undo palette/direct mapping: index < P -> palette value, else zig-zag symbol f - P + DIROFS."""
    size = len(p.palette)
    if f.size == 0:
        return f
    if size:
        pal = np.array(p.palette, dtype=np.int64)
        direct = from_symbols(np.maximum(f - size + p.weight_offset, 0))
        return np.where(f < size, pal[np.minimum(f, size - 1)], direct)
    return from_symbols(f + p.weight_offset)


def decode_stream(
    data: bytes,
    *,
    ifm_parallel: int,
    prev: StreamParams = INITIAL_PARAMS,
    bit_offset: int = 0,
    bit_limit: int | None = None,
) -> DecodedStream:
    """Parse one stream starting at `bit_offset`; `prev` is the OG's parameter state before it."""
    ifm_parallel = int(ifm_parallel)
    if ifm_parallel not in (8, 16):
        raise ValueError("ifm_parallel must be 8 or 16")
    r = BitReader(data, bit_offset, bit_limit)
    length = r.read(16)
    bias = r.read_signed(BIAS_BITS)
    reload = bool(r.read(1))
    mult = shift = zp = 0
    if reload:
        mult, shift, zp = r.read(16), r.read(6), r.read_signed(8)
    header = OfmHeader(bias, mult, shift, zp, reload)
    n_w = r.read(17)
    params = _read_params(r, prev)
    f, zruns = _decode_chunks(r, n_w, params, ifm_parallel)
    w = _symbols_to_weights(f, params)
    if params.rle:
        out = np.zeros(n_w + int(zruns.sum()), dtype=np.int64)
        out[np.cumsum(zruns[:-1]) + np.arange(n_w)] = w
        w = out
    return DecodedStream(w, header, params, length, r.pos)
