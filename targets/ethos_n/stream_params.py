"""Ethos-N78 stream parameters and their search: symbols, palette, GRC divisors, zero-run divisor.

Written from the prose reconstruction (shared facts §1.1-1.4) of the driver stack's encoder: the
parameter search follows the 25.03 encoder (pruned WDIV/ZDIV ranges, uncompressed as the incumbent,
earlier candidates winning ties, no 31-bit limit on zero-run quotients). Pure numpy functions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

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

