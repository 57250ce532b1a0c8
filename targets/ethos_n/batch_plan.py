"""Ethos-N78 parameters and coded symbols for every stream of a layer, chosen in numpy.

Per block of equally long streams (one IFM iteration) both passes of `batch_params` are searched;
then the per-OG chain is resolved: a stream pays for its palette only when the OG does not already
hold it, and an all-zero stream coded as one zero run keeps the OG's other parameters. Those depend
on the previous stream's choice, so the choice is iterated until no stream changes (the fixed point
of a chain is its sequential solution; it is reached in a few rounds).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from .batch_params import (
    PassChoice,
    pad_cols,
    positive_runs,
    rank_symbols,
    rle_search,
    search_pass,
    stable_order,
    zero_runs,
)
from .stream_params import INITIAL_PARAMS, ZDIV_RLE_OFF, StreamParams


@dataclass(frozen=True)
class LayerPlan:
    """Final parameters per stream (encoder order) and the symbols each stream codes."""

    zdiv: np.ndarray
    wdiv: np.ndarray
    trunc: np.ndarray
    dirofs: np.ndarray
    pal_len: np.ndarray
    pbits: np.ndarray
    palette: np.ndarray  # (S, <= 32) signed values, zero beyond pal_len
    reload_params: np.ndarray
    reload_palette: np.ndarray
    f: np.ndarray  # coded weight symbols of all streams, stream after stream
    n_w: np.ndarray  # per stream
    z: np.ndarray  # zero runs of all RLE streams, stream after stream
    n_z: np.ndarray  # per stream


@dataclass(frozen=True)
class _Block:
    """Searched candidates of one block of streams (rows of one IFM iteration)."""

    off: PassChoice
    rle: PassChoice
    zcost: np.ndarray
    has_zero: np.ndarray
    all_zero: np.ndarray


_FIELDS = ("cost", "zdiv", "wdiv", "trunc", "dirofs", "pal_len", "pbits", "palette", "in_pal", "size")


def _search_block(sym: np.ndarray, n: int) -> tuple[_Block, np.ndarray, np.ndarray]:
    """Both passes for one block; the RLE pass only for the streams that hold a zero."""
    rows, width = sym.shape[0], 0
    rk = rank_symbols(sym)
    width = rk.syms.shape[1]
    off = search_pass(rk.syms, rk.cnts, np.full(rows, ZDIV_RLE_OFF), n)
    is_zero = (rk.syms == 0) & (rk.cnts > 0)
    has_zero = is_zero.any(axis=1)
    r0 = np.where(has_zero, np.argmax(is_zero, axis=1), width)
    sub = np.flatnonzero(has_zero)
    # The RLE pass ranks the same symbols without 0 (zeros travel as runs): drop that column.
    cols = np.arange(width)[None, :]
    shift = cols >= r0[sub, None]
    src = np.minimum(cols + shift, width - 1)
    keep = cols + shift < width
    r_syms = np.where(keep, np.take_along_axis(rk.syms[sub], src, axis=1), 0)
    r_cnts = np.where(keep, np.take_along_axis(rk.cnts[sub], src, axis=1), 0)
    runs, run_row, count = positive_runs(sym[sub])
    zdiv, zcost = rle_search(runs, run_row, count, n)
    rle = _expand(search_pass(r_syms, r_cnts, zdiv, n), sub, rows)
    all_zero = np.zeros(rows, dtype=bool)
    all_zero[sub] = r_cnts[:, 0] == 0
    full_zcost = np.zeros(rows, dtype=np.int64)
    full_zcost[sub] = zcost
    block = _Block(off, rle, full_zcost, has_zero, all_zero)
    return block, rk.rank, r0


def _expand(c: PassChoice, sub: np.ndarray, rows: int) -> PassChoice:
    """Candidates searched for the rows `sub` spread over all `rows` (others: no palette, never chosen)."""
    out = []
    for f in _FIELDS:
        v = getattr(c, f)
        full = np.zeros((rows, *v.shape[1:]), dtype=v.dtype)
        full[sub] = v
        out.append(full)
    return PassChoice(*out)


def _cat(blocks: list[PassChoice], order: np.ndarray | None) -> PassChoice:
    """Concatenate per-block candidates and put them in encoder stream order (None: already in it)."""
    cols = max(b.palette.shape[1] for b in blocks)
    return PassChoice(*(_ordered(np.concatenate([pad_cols(getattr(b, f), cols) if f == "palette" else getattr(b, f)
                                                 for b in blocks]), order) for f in _FIELDS))


def _ordered(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """`values[order]`, or `values` itself when the blocks' rows are already in stream order."""
    return values if order is None else values[order]


def _pick(cond: np.ndarray, yes: np.ndarray, no: np.ndarray) -> np.ndarray:
    """`np.where(cond, yes, no)` (rows of 1-D `cond`) for a mostly false `cond`: a copy of `no`
    with the few rows patched, without a data-dependent branch per row."""
    out = np.array(no, dtype=np.result_type(yes, no))
    rows = np.flatnonzero(cond)
    out[rows] = yes[rows]
    return out


def prev_index(og: np.ndarray) -> np.ndarray:
    """Previous stream on the same OG (-1 for the first): the decoder keeps its state per OG."""
    order = stable_order(og)
    prev = np.full(og.size, -1, dtype=np.int64)
    same = og[order[1:]] == og[order[:-1]]
    prev[order[1:][same]] = order[:-1][same]
    return prev


def _og_runs(og: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The streams ordered by OG (stable) and, in that order, where each one's OG run starts."""
    order = stable_order(og)
    pos = np.arange(og.size)
    starts = np.ones(og.size, dtype=bool)
    starts[1:] = og[order[1:]] != og[order[:-1]]
    return order, np.maximum.accumulate(np.where(starts, pos, 0))


def _chain_source(own: np.ndarray, runs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """For each stream, the latest stream at or before it on its OG with its own parameters (-1: none);
    `runs` is `_og_runs` of the streams' OGs."""
    order, group_start = runs
    val = np.where(own[order], np.arange(order.size), -1)
    last = np.maximum.accumulate(val)
    src = np.where(last >= group_start, order[np.maximum(last, 0)], -1)
    out = np.empty(order.size, dtype=np.int64)
    out[order] = src
    return out


def _reloads(c: PassChoice, held: tuple[np.ndarray, np.ndarray, np.ndarray], initial: np.ndarray) -> np.ndarray:
    """Whether each stream must send this candidate's palette: reset, or not the palette the OG holds."""
    p_len, p_bits, p_pal = held
    return initial | ~_same_palette(c.pal_len, c.pbits, c.palette, (p_len, p_bits, p_pal))


def _same_palette(pal_len: np.ndarray, pbits: np.ndarray, palette: np.ndarray,
                  held: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Whether each stream's palette is the one held. Entries beyond a palette's length are zero, so
    only streams with an equally long non-empty palette need their entries compared."""
    p_len, p_bits, p_pal = held
    same = (pal_len == p_len) & (pbits == p_bits)
    rows = np.flatnonzero(same & (pal_len > 0))
    cols = p_pal.shape[1]
    same[rows] = (pad_cols(palette[rows], cols) == pad_cols(p_pal[rows], cols)).all(axis=1)
    return same


@dataclass(frozen=True)
class Held:
    """Parameters each OG holds when a chunk of a layer starts (those of its last stream before).

    A reset of the decoder state forces a reload but does not clear the values: an all-zero stream
    at the start of a stripe still keeps (and resends) what its OG held; without a reset, whether a
    stream resends its parameters and palette is decided against these."""

    zdiv: np.ndarray  # per OG
    wdiv: np.ndarray
    trunc: np.ndarray
    dirofs: np.ndarray
    pal_len: np.ndarray
    pbits: np.ndarray
    palette: np.ndarray  # (OGs, entries)

    @staticmethod
    def initial(ogs: int) -> Held:
        init = INITIAL_PARAMS
        full = np.full
        return Held(full(ogs, init.zdiv), full(ogs, init.wdiv), full(ogs, init.truncation),
                    full(ogs, init.weight_offset), full(ogs, 0), full(ogs, init.palette_bits),
                    np.zeros((ogs, 1), dtype=np.int64))

    def after(self, plan: LayerPlan, og: np.ndarray) -> Held:
        """What every OG holds after the chunk `plan` (OGs without a stream in it keep theirs)."""
        last = np.full(self.wdiv.size, -1, dtype=np.int64)
        last[og] = np.arange(og.size)  # the last write per OG wins
        has, k = last >= 0, np.maximum(last, 0)
        cols = max(self.palette.shape[1], plan.palette.shape[1])

        def pick(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
            return np.where(has, theirs[k], mine)

        return Held(pick(self.zdiv, plan.zdiv), pick(self.wdiv, plan.wdiv), pick(self.trunc, plan.trunc), pick(self.dirofs, plan.dirofs),
                    pick(self.pal_len, plan.pal_len), pick(self.pbits, plan.pbits),
                    np.where(has[:, None], pad_cols(plan.palette, cols)[k], pad_cols(self.palette, cols)))


def plan_layer_streams(
    blocks_sym: list[np.ndarray], stream_of_row: list[np.ndarray], og: np.ndarray, initial: np.ndarray, n: int,
    held: Held | None = None,
) -> LayerPlan:
    """Choose parameters for every stream; `blocks_sym[i]` holds the symbols of the streams
    `stream_of_row[i]`; `og` and `initial` (decoder state reset) are per stream in encoder order;
    `held` is what the OGs hold before the first stream (default: the decoder's reset values)."""
    held = Held.initial(int(og.max(initial=0)) + 1) if held is None else held
    total = og.size
    searched = [_search_block(sym, n) for sym in blocks_sym]
    where = np.concatenate(stream_of_row)
    order = np.empty(total, dtype=np.int64)
    order[where] = np.arange(total)
    in_order = np.array_equal(where, np.arange(total))  # one IFM iteration: blocks follow the streams
    off = _cat([b.off for b, _, _ in searched], None if in_order else order)
    rle = _cat([b.rle for b, _, _ in searched], None if in_order else order)
    zcost = _ordered(np.concatenate([b.zcost for b, _, _ in searched]), None if in_order else order)
    has_zero = _ordered(np.concatenate([b.has_zero for b, _, _ in searched]), None if in_order else order)
    all_zero = _ordered(np.concatenate([b.all_zero for b, _, _ in searched]), None if in_order else order)
    rle_cost = rle.cost + zcost
    rle_cost = _pick(all_zero, zcost, rle_cost)
    prev = prev_index(og)
    runs = _og_runs(og)
    # Few streams take RLE, inherit or start an OG here: each choice below copies the common case
    # and patches the few exceptions (np.where on every stream costs a mispredicted branch each).
    first_here = np.flatnonzero(prev < 0)
    p = np.maximum(prev, 0)
    cols = max(off.palette.shape[1], rle.palette.shape[1], held.palette.shape[1])
    off_pal, rle_pal = pad_cols(off.palette, cols), pad_cols(rle.palette, cols)
    held_pal = pad_cols(held.palette, cols)

    def previous(values: np.ndarray, held_values: np.ndarray) -> np.ndarray:
        """The previous stream's value on the OG, or for the OG's first stream here, the OG's."""
        out = values[p]
        out[first_here] = held_values[og[first_here]]
        return out

    choice = has_zero & (rle_cost < off.cost)  # first guess: palettes free
    while True:
        inherit = choice & all_zero
        src = _chain_source(~inherit, runs)
        fin = {f: _pick(choice, getattr(rle, f), getattr(off, f)) for f in ("wdiv", "trunc", "dirofs", "pal_len",
                                                                               "pbits")}
        fin_pal = _pick(choice, rle_pal, off_pal)
        fin_zdiv = _pick(choice, rle.zdiv, np.full(total, ZDIV_RLE_OFF, dtype=rle.zdiv.dtype))
        # Streams that keep the OG's parameters take them from their chain source (or the reset state).
        inh = np.flatnonzero(inherit)
        s_inh = src[inh]
        have = s_inh >= 0
        s, og_inh = np.maximum(s_inh, 0), og[inh]
        for name in ("wdiv", "trunc", "dirofs", "pal_len", "pbits"):
            fin[name][inh] = np.where(have, fin[name][s], getattr(held, name)[og_inh])
        fin_pal[inh] = np.where(have[:, None], fin_pal[s], held_pal[og_inh])
        p_pal = previous(fin_pal, held_pal)
        p_len = previous(fin["pal_len"], held.pal_len)
        p_bits = previous(fin["pbits"], held.pbits)

        prev_held = (p_len, p_bits, p_pal)
        off_total = off.cost + (_reloads(off, prev_held, initial) & (off.pal_len > 0)) * off.palette_cost()
        rle_total = _pick(all_zero, zcost, rle_cost + (_reloads(rle, prev_held, initial) & (rle.pal_len > 0))
                          * rle.palette_cost())
        new = has_zero & (rle_total < off_total)
        if np.array_equal(new, choice):
            break
        choice = new
    same_pal = _same_palette(fin["pal_len"], fin["pbits"], fin_pal, (p_len, p_bits, p_pal))
    reload_palette = initial | ~same_pal
    reload_params = reload_palette | (fin_zdiv != previous(fin_zdiv, held.zdiv))
    for name in ("wdiv", "trunc", "dirofs"):
        reload_params |= fin[name] != previous(fin[name], getattr(held, name))
    f, n_w, z, n_z = _coded(searched, blocks_sym, stream_of_row, choice, off, rle, total)
    return LayerPlan(fin_zdiv, fin["wdiv"], fin["trunc"].astype(bool), fin["dirofs"], fin["pal_len"], fin["pbits"],
                     fin_pal, reload_params, reload_palette, f, n_w, z, n_z)


def _coded(
    searched: list[tuple[_Block, np.ndarray, np.ndarray]],
    blocks_sym: list[np.ndarray],
    stream_of_row: list[np.ndarray],
    choice: np.ndarray,
    off: PassChoice,
    rle: PassChoice,
    total: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coded weight symbols (palette index or direct symbol) and zero runs, stream after stream."""
    fs, f_streams, zs, z_streams = [], [], [], []
    for (_, rank, r0), sym, rows in zip(searched, blocks_sym, stream_of_row, strict=True):
        ch = choice[rows]
        in_pal, size, dirofs = (_pick(ch, getattr(rle, f)[rows], getattr(off, f)[rows])
                                for f in ("in_pal", "size", "dirofs"))
        # With RLE the zero symbol leaves the ranking: the ranks after it move up by one.
        rr = rank - ((rank > r0[:, None]) & ch[:, None])
        mapped = np.where(rr < in_pal[:, None], rr, sym + (size - dirofs)[:, None])
        keep = ~ch[:, None] | (sym != 0)  # RLE streams code only their non-zero weights
        fs.append(mapped[keep])
        f_streams.append(np.repeat(rows, keep.sum(axis=1)))
        rle_rows = np.flatnonzero(ch)
        runs, run_row, _ = zero_runs(sym[rle_rows])  # every run, empty ones included, of the RLE streams
        zs.append(runs)
        z_streams.append(rows[rle_rows[run_row]])
    f_stream, z_stream = np.concatenate(f_streams), np.concatenate(z_streams)
    f, z = np.concatenate(fs), np.concatenate(zs)
    if not np.array_equal(np.concatenate(stream_of_row), np.arange(total)):  # IFM iterations interleave
        fo, zo = stable_order(f_stream), stable_order(z_stream)
        f, f_stream, z, z_stream = f[fo], f_stream[fo], z[zo], z_stream[zo]
    return f, np.bincount(f_stream, minlength=total), z, np.bincount(z_stream, minlength=total)


#: Bit fields of `ParamArrays.packed`, (name, shift, width): every parameter of a stream in 23 bits.
PACKED_FIELDS = (("zdiv", 0, 3), ("wdiv", 3, 3), ("dirofs", 6, 5), ("pal_len", 11, 6), ("pbits", 17, 3),
                 ("trunc", 20, 1), ("reload_params", 21, 1), ("reload_palette", 22, 1))


@dataclass(frozen=True)
class ParamArrays:
    """The parameters of every stream packed into one uint32 each, palettes stored ragged (a layer
    can hold millions of streams, most of them without a palette: 4 bytes a stream, not a record)."""

    packed: np.ndarray  # (S,) uint32, fields as in PACKED_FIELDS
    pal_values: np.ndarray  # int16, the palettes of all streams back to back

    @staticmethod
    def of(plan: LayerPlan) -> ParamArrays:
        packed = np.zeros(plan.pal_len.size, dtype=np.uint32)
        for name, shift, width in PACKED_FIELDS:
            value = getattr(plan, name).astype(np.uint32)
            if value.size and int(value.max()) >> width:
                raise ValueError(f"stream parameter {name} does not fit {width} bits")
            packed |= value << np.uint32(shift)
        palette = pad_cols(plan.palette, max(plan.palette.shape[1], int(plan.pal_len.max(initial=0))))
        cols = np.arange(palette.shape[1])[None, :] < plan.pal_len[:, None]
        return ParamArrays(packed, palette[cols].astype(np.int16))

    def field(self, name: str) -> np.ndarray:
        """One parameter of every stream (a PACKED_FIELDS name)."""
        shift, width = next((s, w) for n, s, w in PACKED_FIELDS if n == name)
        return (self.packed >> np.uint32(shift)) & np.uint32((1 << width) - 1)


class ParamTable(Sequence[StreamParams]):
    """The per-stream `StreamParams` of a layer (its chunks' arrays, in stream order), made on
    access and equal to a tuple of them."""

    def __init__(self, parts: Sequence[ParamArrays]) -> None:
        self._parts = list(parts)
        self._first = np.cumsum([0] + [p.packed.size for p in self._parts])
        self._pal_start: dict[int, np.ndarray] = {}  # per part, built on its first access

    def __len__(self) -> int:
        return int(self._first[-1])

    def _one(self, i: int) -> StreamParams:
        k = int(np.searchsorted(self._first, i, side="right")) - 1
        part, i = self._parts[k], i - int(self._first[k])
        word = int(part.packed[i])
        zdiv, wdiv, dirofs, pal_len, pbits, trunc, reload_params, reload_palette = (
            (word >> shift) & ((1 << width) - 1) for _, shift, width in PACKED_FIELDS)
        if k not in self._pal_start:
            lengths = part.field("pal_len").astype(np.int64)
            self._pal_start[k] = np.cumsum(lengths) - lengths
        start = int(self._pal_start[k][i])
        pal = tuple(int(v) for v in part.pal_values[start : start + pal_len])
        return StreamParams(zdiv, wdiv, bool(trunc), dirofs, pal, pbits, bool(reload_params), bool(reload_palette))

    @overload
    def __getitem__(self, i: int) -> StreamParams: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[StreamParams, ...]: ...
    def __getitem__(self, i: int | slice) -> StreamParams | tuple[StreamParams, ...]:
        if isinstance(i, slice):
            return tuple(self._one(k) for k in range(len(self))[i])
        if not -len(self) <= i < len(self):
            raise IndexError("stream index out of range")
        return self._one(i % len(self))

    def __iter__(self) -> Iterator[StreamParams]:
        return (self._one(k) for k in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(tuple(self))
