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

    def __init__(self, bits: np.ndarray, can: np.ndarray, save: np.ndarray | None = None) -> None:
        self.bits, self.can = bits, can
        # save[a, j]: the most bits set j saves on one symbol over active set a (bounds a run's lead).
        self.save = save
        n_cfg = bits.shape[0]
        self.b = np.zeros(n_cfg, dtype=np.int64)
        self.coded = np.zeros(n_cfg, dtype=bool)
        self.reset = np.zeros(n_cfg, dtype=np.int64)
        self.active = -1
        self.acc = 0  # the active set's bit count
        # Symbols each set cannot code, as one sorted array: set j's position i at j * n + i.
        self.n = bits.shape[1]
        self.bad_row = np.arange(n_cfg, dtype=np.int64)
        self.bad = np.flatnonzero(~can.ravel())
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
        n_cfg = bits.shape[0]
        # Where each set cannot code a symbol, from the per-section list (no pass over the window).
        row0 = self.bad_row * self.n
        lo = np.searchsorted(self.bad, row0 + p)
        n_bad = np.searchsorted(self.bad, row0 + q) - lo
        stop = int(self.bad[lo[a]]) - a * self.n - p if n_bad[a] else w  # a forced decision
        row_can = n_bad == 0
        # The active set itself never leads (its lead stays 0 up to `stop`): left out of both groups.
        others = self.bad_row != a
        fast = np.flatnonzero(row_can & self.coded & others)  # usable throughout, run carried over from before p
        slow = np.flatnonzero((n_bad < w) & ~(row_can & self.coded) & others)  # runs start or stop inside
        off = (self.b - self.acc).astype(np.int32)
        big = np.iinfo(np.int32).max // 2
        ref = bits[a]
        best = np.full(w, big, dtype=np.int32)  # per symbol: the lowest lead of any set over the active one
        if fast.size:
            fast_d = np.cumsum(bits[fast] - ref, axis=1, dtype=np.int32)
            fast_d += off[fast, None]
            np.minimum(best, fast_d.min(axis=0), out=best)
        pruned = np.zeros(0, dtype=np.intp)
        if slow.size and self.save is not None:
            keep = np.array([self._may_lead(int(j), p, q, int(lo[j]), int(n_bad[j]), int(off[j])) for j in slow])
            pruned, slow = slow[~keep], slow[keep]
        if slow.size:
            # ecum columns: 0 the carried run's base (-lead before p), 1 zero, 2.. the running sum of
            # differences; a run starting at symbol s is measured from column s + 1.
            cs = can[slow]
            span = w + 2
            ecum = np.empty((slow.size, span), dtype=np.int32)
            ecum[:, 0] = -off[slow]
            ecum[:, 1] = 0
            np.cumsum(bits[slow] - ref, axis=1, dtype=np.int32, out=ecum[:, 2:])
            starts = cs.copy()
            starts[:, 0] &= ~self.coded[slow]
            starts[:, 1:] &= ~cs[:, :-1]
            flat0 = (np.arange(slow.size, dtype=np.int64) * span)[:, None]
            # One 1-D running maximum for all rows: each row's indices exceed every earlier row's.
            at = np.where(starts, flat0 + np.arange(1, w + 1), flat0).ravel()
            np.maximum.accumulate(at, out=at)
            slow_d = ecum[:, 2:] - ecum.ravel()[at].reshape(slow.size, w)
            slow_d = np.where(cs, slow_d, big)  # unusable symbols never lead
            np.minimum(best, slow_d.min(axis=0), out=best)
        # The encoder compares the best set with the active set's count *before* this symbol.
        lead = best[:stop] + ref[:stop]
        sw = np.flatnonzero(lead < -SLICE_COST)
        event = int(sw[0]) if sw.size else stop
        if event > 0:
            last = event - 1
            last_d = np.zeros(n_cfg, dtype=np.int32)  # the leads at the last symbol scanned
            if fast.size:
                last_d[fast] = fast_d[:, last]
            if slow.size:
                last_d[slow] = slow_d[:, last]
            for j in pruned:
                last_d[j] = self._lead_at(int(j), p, p + last, int(off[j]))
            acc = self.acc + int(bits[a, :event].sum())
            col = can[:, last]
            self.b = np.where(col, acc + last_d.astype(np.int64), self.b)  # the lead is known where col holds
            self.coded = col.copy()
            k = np.searchsorted(self.bad, row0 + p + event) - 1  # the last uncodable symbol before the event
            has = k >= lo
            if has.any():
                self.reset = np.where(has, self.bad[np.maximum(k, 0)] - row0 + 1, self.reset)
            self.acc = acc
        return p + event


    def _runs(self, j: int, p: int, q: int, lo: int, n_bad: int) -> tuple[int, int]:
        """Set j's usable run open at p (0 if none) and its longest run starting inside (p, q)."""
        bad = self.bad[lo:lo + n_bad] - j * self.n
        edges = np.concatenate(([p - 1], bad, [q]))
        lengths = np.diff(edges) - 1
        first = int(lengths[0])
        return first, int(lengths[1:].max(initial=0))

    def _may_lead(self, j: int, p: int, q: int, lo: int, n_bad: int, off: int) -> bool:
        """Whether set j can lead the active set by more than a slice header anywhere in [p, q).

        A run of L symbols changes the lead by at most L * save: a set whose every run is too
        short to save a header (and whose carried lead is not already close) needs no scan.
        """
        assert self.save is not None
        save = int(self.save[self.active, j])
        if save <= 0:
            return bool(self.coded[j] and off < -SLICE_COST)
        first, longest = self._runs(j, p, q, lo, n_bad)
        carried = off if self.coded[j] else 0
        return carried - first * save < -SLICE_COST or -longest * save < -SLICE_COST

    def _lead_at(self, j: int, p: int, i: int, off: int) -> int:
        """Set j's lead over the active set after symbol i (j usable at i), summed over its run."""
        bad = self.bad[np.searchsorted(self.bad, j * self.n + p):np.searchsorted(self.bad, j * self.n + i)]
        s = int(bad[-1]) - j * self.n + 1 if bad.size else p
        base = off if (s == p and self.coded[j]) else 0
        return base + int(self.bits[j, s:i + 1].sum()) - int(self.bits[self.active, s:i + 1].sum())


def max_saving(values: np.ndarray, uncompressed_bits: int) -> np.ndarray:
    """save[a, j]: the most bits weight set j spends less than set a on one of these symbols (both usable)."""
    present = np.flatnonzero(np.bincount(values.astype(np.intp), minlength=1))
    bits, can = symbol_costs(present, False, uncompressed_bits)
    diff = bits[:, None, :].astype(np.int64) - bits[None, :, :]
    both = can[:, None, :] & can[None, :, :]
    return np.where(both, diff, np.iinfo(np.int32).min).max(axis=2, initial=np.iinfo(np.int32).min)


def search(values: np.ndarray, zero_runs: bool, uncompressed_bits: int) -> list[SliceParam]:
    """The slices and GRC parameter sets Vela's greedy forward search picks for these symbols."""
    n = int(values.size)
    bits, can = symbol_costs(values, zero_runs, uncompressed_bits)
    # Zero-run sets code every run length: no set is ever unusable, nothing to prune.
    s = _Search(bits, can, None if zero_runs or n == 0 else max_saving(values, uncompressed_bits))
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
