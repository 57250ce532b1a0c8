"""Ethos-N78 weight blob built in one buffer: groups placed as their chunks are packed, the SRAM-bank
interleave done in place, and the bytes handed over without a copy.

The blob holds every (stripe, group) entry padded to one common length, which is known only once the
last chunk is packed. Entries are kept group-major at the longest length seen so far (re-spaced in
place when a chunk brings a longer one), so a layer's encoding never holds its bytes twice: not as
chunks plus the blob, nor as an array plus its `bytes` copy (the buffer is a `BytesIO`, whose
`getvalue` returns its own bytes object when nothing else refers to it).
"""

from __future__ import annotations

import io

import numpy as np

from .layout import DMA_ALIGN, Geometry, sram_layout
from .variants import N78Variant

#: Bytes moved at a time when the entries are re-spaced (bounds the temporary copy).
RESPACE_BYTES = 1 << 22


class BlobBuilder:
    """Collects a layer's entries in order (whole stripes per call) and interleaves them at the end."""

    def __init__(self, geo: Geometry, variant: N78Variant) -> None:
        banks = sram_layout(geo.num_entries, geo.num_iterations, variant)
        self._banks = len(banks)
        self._per_bank = max(len(b) for b in banks)
        self._bank_of = np.zeros(geo.num_entries, dtype=np.int64)
        self._slot_of = np.zeros(geo.num_entries, dtype=np.int64)
        for b, group in enumerate(banks):
            self._bank_of[group] = b
            self._slot_of[group] = np.arange(len(group))
        self._entries = geo.num_entries
        self._slots = self._block_slots(geo, variant)
        self._io = io.BytesIO()
        self._size = 0
        self._placed = 0  # entries written so far (they arrive in order)
        self.entry_len = 0

    def _block_slots(self, geo: Geometry, variant: N78Variant) -> int:
        """Slots per bank of the smallest run of consecutive entries that fills the same slots of
        every bank (the interleave permutes within such runs only); the whole blob if none."""
        per_sram = variant.num_ogs // self._banks
        iters = geo.num_iterations
        slots = iters * per_sram if per_sram > 1 and iters > 1 else iters
        e = np.arange(self._entries)
        if self._per_bank % slots == 0 and np.array_equal(self._slot_of // slots, e // (self._banks * slots)):
            return slots
        return self._per_bank

    def _view(self) -> np.ndarray:
        """The buffer as a writable array (let it go before the buffer grows)."""
        return np.frombuffer(self._io.getbuffer(), dtype=np.uint8)

    def _grow(self, nbytes: int) -> None:
        """Extend the buffer with zeros to `nbytes` (in place where the allocator can)."""
        if nbytes > self._size:
            self._io.seek(nbytes - 1)
            self._io.write(b"\0")
            self._size = nbytes

    def _respace(self, new_len: int) -> None:
        """Move the placed entries from `entry_len` to `new_len` bytes apart, last first (a destination
        never lies below its source, so nothing unmoved is overwritten), zero-filling each tail."""
        old, count = self.entry_len, self._placed
        v = self._view()
        step = max(1, RESPACE_BYTES // new_len)
        for hi in range(count, 0, -step):
            lo = max(0, hi - step)
            src = v[lo * old : hi * old].reshape(hi - lo, old).copy()
            dst = v[lo * new_len : hi * new_len].reshape(hi - lo, new_len)
            dst[:, :old] = src
            dst[:, old:] = 0

    def add(self, first_entry: int, entries: np.ndarray) -> None:
        """Place the (count, length) entries that start at `first_entry` (the next ones in order)."""
        if first_entry != self._placed:
            raise ValueError("blob entries must arrive in order")
        count, length = entries.shape
        if length > self.entry_len:
            self._grow(self._per_bank * self._banks * length)
            if self._placed:
                self._respace(length)
            self.entry_len = length
        v = self._view()
        rows = v[: self._per_bank * self._banks * self.entry_len].reshape(-1, self.entry_len)
        rows[first_entry : first_entry + count, :length] = entries
        self._placed += count

    def finish(self) -> bytes:
        """Interleave the SRAM banks and return the blob (the builder keeps no reference to it)."""
        if self._placed != self._entries:
            raise ValueError("blob is missing entries")
        self._interleave()
        data = self._io.getvalue()
        self._io = io.BytesIO()
        return data

    def _interleave(self) -> None:
        """In place, 16 bytes at a time for the DMA: bank b's slot s, word w goes to word
        (s * words per entry + w) * banks + b; runs of entries that fill the same slots of every
        bank are permuted one at a time."""
        length, banks, slots = self.entry_len, self._banks, self._slots
        unit = length // DMA_ALIGN
        v = self._view()
        run = banks * slots
        for first in range(0, self._entries, run):
            last = min(first + run, self._entries)
            region = v[first * length : (first + run) * length]
            src = region[: (last - first) * length].reshape(last - first, unit, DMA_ALIGN).copy()
            out = region.reshape(slots, unit, banks, DMA_ALIGN)
            out[...] = 0  # slots that no entry fills stay zero
            e = np.arange(first, last)
            out[self._slot_of[e] - (first // run) * slots, :, self._bank_of[e], :] = src
