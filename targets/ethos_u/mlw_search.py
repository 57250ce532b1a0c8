"""Golomb-Rice parameter search for the Ethos-U standard weight stream, as Vela 5.x decides it.

Vela's encoder walks the symbols once, keeping for each GRC parameter set the bits it
would have spent since it last became usable, and starts a new slice when another set
beats the active one by more than a slice header (40 bits). This module reproduces that
greedy walk exactly, but vectorised: between two decisions every candidate's cost is a
running sum, so whole windows of symbols are scanned with numpy and only the positions
where the active parameter set changes (or can no longer code a symbol) are stepped one
by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLICE_COST = 40  # bits a new slice header costs; a switch must save more than this
NO_UNCOMPRESSED_BITS = 100  # cost per symbol of the uncompressed set when it is not allowed
# Weight parameter sets: (truncated << 4) | divisor; 0x20 is "uncompressed".
W_PARAMS = (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x20)
Z_PARAMS = (0x00, 0x01, 0x02, 0x03)  # zero-run sets: divisor 0..3, never truncated
UNCOMPRESSED = 12  # index of the uncompressed set in W_PARAMS
_MIN_WINDOW, _MAX_WINDOW = 64, 16384


@dataclass(frozen=True)
class SliceParam:
    """One run of symbols coded with one GRC parameter set: symbols [previous end, end)."""

    cfg: int
    end: int


def _w_tables(uncompressed_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Cost and usability of every weight parameter set for every symbol index 0..511."""
    v = np.arange(512, dtype=np.int32)[None, :]
    params = np.array(W_PARAMS, dtype=np.int32)[:, None]
    div, trunc = params & 15, params >> 4
    q = v >> div
    bits = np.where(trunc == 1, np.minimum(q + 1, 2) + div, q + 1 + div)
    can = ~(((trunc == 1) & (q > 2)) | (q > 31))
    unc = np.broadcast_to(trunc == 2, bits.shape)
    bits = np.where(unc, uncompressed_bits if uncompressed_bits > 0 else NO_UNCOMPRESSED_BITS, bits)
    return bits.astype(np.int32), can | unc


_W_TABLES = {u: _w_tables(u) for u in range(10)}


def symbol_costs(values: np.ndarray, zero_runs: bool, uncompressed_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Bits each parameter set spends on each symbol, and whether it can code the symbol at all."""
    if zero_runs:
        v = values.astype(np.int32)
        bits = np.empty((len(Z_PARAMS), v.size), dtype=np.int32)
        for j, param in enumerate(Z_PARAMS):
            div = param & 15
            np.add(v >> div, 1 + div, out=bits[j])
        return bits, np.ones(bits.shape, dtype=bool)
    table, usable = _W_TABLES.get(uncompressed_bits) or _w_tables(uncompressed_bits)
    if uncompressed_bits <= 0:
        # Without uncompressed mode its set costs 100 bits a symbol, while the divisor-5 set codes
        # every symbol (< 512) in at most 21: it can never be the cheapest, so it is left out.
        table, usable = table[:UNCOMPRESSED], usable[:UNCOMPRESSED]
    idx = values.astype(np.intp)
    return table[:, idx], usable[:, idx]


class _Search:
    """The walk's state after some symbols: per-set bit counts, usability, last reset position."""

    def __init__(self, bits: np.ndarray, can: np.ndarray) -> None:
        self.bits, self.can = bits, can
        n_cfg = bits.shape[0]
        self.b = np.zeros(n_cfg, dtype=np.int64)
        self.coded = np.zeros(n_cfg, dtype=bool)
        self.reset = np.zeros(n_cfg, dtype=np.int64)
        self.active = -1
        self.acc = 0  # the active set's bit count
        self.result: list[SliceParam] = []

    def step(self, i: int) -> None:
        """One symbol exactly as the encoder's loop body treats it."""
        can = self.can[:, i]
        fresh = can & ~self.coded
        self.b[fresh] = self.acc
        self.b += np.where(can, self.bits[:, i], SLICE_COST)
        self.reset[~can] = i + 1
        self.coded = can.copy()
        masked = np.where(can, self.b, np.iinfo(np.int64).max)
        best = int(np.argmin(masked))
        a = self.active
        must = a == -1 or not self.coded[a]
        if must or (best != a and int(self.b[best]) + SLICE_COST < self.acc):
            if a != -1 and not (self.b[best] < self.b[a] and self.reset[best] <= self.reset[a]):
                self.result.append(SliceParam(a, i))
            self.active = best
        self.acc = int(self.b[self.active])

    def scan(self, p: int, q: int) -> int:
        """Advance through [p, q) while nothing happens; return the first eventful position (or q)."""
        a = self.active
        bits, can = self.bits[:, p:q], self.can[:, p:q]
        w = q - p
        stop = w
        not_a = np.flatnonzero(~can[a])
        if not_a.size:
            stop = int(not_a[0])  # the active set cannot code this symbol: a forced decision
        n_cfg = bits.shape[0]
        row_can = can.all(axis=1)
        row_any = can.any(axis=1)
        fast = np.flatnonzero(row_can & self.coded)  # usable throughout, run carried over from before p
        slow = np.flatnonzero(row_any & ~(row_can & self.coded))  # runs start or stop inside the window
        off = (self.b - self.acc).astype(np.int32)
        big = np.iinfo(np.int32).max // 2
        ref = bits[a]
        best = np.full(w, big, dtype=np.int32)  # per symbol: the lowest lead of any set over the active one
        last_d = np.zeros(n_cfg, dtype=np.int32)  # the leads at the window's last symbol (state update)
        if fast.size:
            ef = np.cumsum(bits[fast] - ref, axis=1, dtype=np.int32)
            ef += off[fast, None]
            np.minimum(best, ef.min(axis=0), out=best)
            fast_d = ef
        if slow.size:
            bs, cs = bits[slow], can[slow]
            ecum = np.zeros((slow.size, w + 1), dtype=np.int32)
            np.cumsum(bs - ref, axis=1, out=ecum[:, 1:])
            prev = np.concatenate([self.coded[slow, None], cs[:, :-1]], axis=1)
            starts = cs & ~prev
            start_at = np.maximum.accumulate(np.where(starts, np.arange(w, dtype=np.int32), -1), axis=1)
            carried = start_at < 0  # still in the run that was open before p
            rows = np.arange(slow.size)[:, None] * (w + 1)
            base = ecum.ravel()[rows + np.maximum(start_at, 0)]
            ds = ecum[:, 1:] - base + np.where(carried, off[slow, None], 0)
            ds[~cs] = big  # unusable symbols never lead
            np.minimum(best, ds.min(axis=0), out=best)
            slow_d = ds
        # The encoder compares the best set with the active set's count *before* this symbol.
        lead = best[:stop] + ref[:stop]
        sw = np.flatnonzero(lead < -SLICE_COST)
        event = int(sw[0]) if sw.size else stop
        if event > 0:
            last = event - 1
            if fast.size:
                last_d[fast] = fast_d[:, last]
            if slow.size:
                last_d[slow] = slow_d[:, last]
            acc = self.acc + int(bits[a, :event].sum())
            col = can[:, last]
            self.b = np.where(col, acc + last_d.astype(np.int64), self.b)  # the lead is known where col holds
            self.coded = col.copy()
            unc = ~can[:, :event]
            has = unc.any(axis=1)
            if has.any():
                last_unc = event - 1 - np.argmax(unc[:, ::-1], axis=1)
                self.reset = np.where(has, p + last_unc + 1, self.reset)
            self.acc = acc
        return p + event


def search(values: np.ndarray, zero_runs: bool, uncompressed_bits: int) -> list[SliceParam]:
    """The slices and GRC parameter sets Vela's greedy forward search picks for these symbols."""
    n = int(values.size)
    bits, can = symbol_costs(values, zero_runs, uncompressed_bits)
    s = _Search(bits, can)
    i = 0
    window = 1024
    while i < n:
        if s.active == -1 or not s.can[s.active, i]:
            s.step(i)
            i += 1
            continue
        q = min(n, i + window)
        e = s.scan(i, q)
        gap = e - i
        if e < q:
            s.step(e)
            i = e + 1
            window = min(_MAX_WINDOW, max(_MIN_WINDOW, 2 * gap))
        else:
            i = q
            window = min(_MAX_WINDOW, window * 2)
    if not s.result or s.result[-1].cfg != s.active:
        s.result.append(SliceParam(s.active, n))
    else:  # the last pushed run has the active set again: it is extended to the end
        s.result[-1] = SliceParam(s.active, n)
    return s.result
