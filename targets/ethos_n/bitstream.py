"""LSB-first bit packing and reading for Ethos-N weight streams.

The NPU's weight decoder reads fields least-significant bit first with no byte alignment between
fields (the driver's `BitstreamWriter`). Writing is vectorised: callers collect (value, width) items,
optionally with explicit bit positions, and the bytes are produced by one numpy scatter at the end.
"""

from __future__ import annotations

import numpy as np

#: Widest single item: an item shifted inside a 32-bit word must still fit one uint64.
MAX_ITEM_BITS = 32
#: Items placed at a time (bounds the temporaries: ~8 arrays of 8 bytes per item).
SCATTER_SLICE = 1 << 16


def scatter_bits(values: np.ndarray, nbits: np.ndarray, starts: np.ndarray, total_bits: int) -> np.ndarray:
    """Write each value's low `nbits` bits at bit offset `starts` (LSB first) into a zeroed buffer.

    Items must not overlap and values must already fit their widths (callers mask); returns
    ceil(total_bits / 8) bytes as uint8. Works on 32-bit words so each item touches at most two,
    `SCATTER_SLICE` items at a time (a layer chunk has ~2 items per weight: whole-array temporaries
    would be most of the encoder's peak memory).
    """
    nbytes = (int(total_bits) + 7) // 8
    widths = np.asarray(nbits, dtype=np.int64)
    pos = np.asarray(starts, dtype=np.int64)
    vals = np.asarray(values)
    if widths.size == 0:
        return np.zeros(nbytes, dtype=np.uint8)
    if int(widths.max()) > MAX_ITEM_BITS:
        raise ValueError(f"bit item wider than {MAX_ITEM_BITS} bits")
    nwords = (int(total_bits) + 31) // 32 + 2  # +1 for the high half of an item in the last word
    acc = np.zeros(nwords, dtype=np.float64)
    for first in range(0, widths.size, SCATTER_SLICE):
        p = pos[first : first + SCATTER_SLICE]
        if int(widths[first : first + SCATTER_SLICE].min()) < 0 or int(p.min()) < 0 \
                or int((p + widths[first : first + SCATTER_SLICE]).max()) > total_bits:
            raise ValueError("bit item outside the stream")
        word = p >> 5
        shifted = vals[first : first + SCATTER_SLICE].astype(np.uint64) << (p & 31).astype(np.uint64)
        lo = int(word.min())
        word -= lo
        m = int(word.max()) + 1
        # Items never share a bit, so summing per word equals OR-ing; 32-bit sums are exact in float64.
        acc[lo : lo + m] += np.bincount(word, weights=(shifted & np.uint64(0xFFFFFFFF)).astype(np.float64), minlength=m)
        acc[lo + 1 : lo + 1 + m] += np.bincount(word, weights=(shifted >> np.uint64(32)).astype(np.float64), minlength=m)
    return acc.astype(np.uint32).astype("<u4").view(np.uint8)[:nbytes].copy()


class BitReader:
    """LSB-first reader over a byte buffer; reads past the end raise ValueError (truncated stream)."""

    def __init__(self, data: bytes, bit_offset: int = 0, bit_limit: int | None = None) -> None:
        self._data = bytes(data) + bytes(8)  # slack so an 8-byte window never runs off the end
        self.pos = int(bit_offset)
        self.limit = len(data) * 8 if bit_limit is None else int(bit_limit)

    def read(self, nbits: int) -> int:
        """Read an unsigned `nbits`-bit field (nbits <= 57)."""
        nbits = int(nbits)
        if nbits == 0:
            return 0
        if self.pos + nbits > self.limit:
            raise ValueError("weight stream truncated")
        byte = self.pos >> 3
        window = int.from_bytes(self._data[byte : byte + 8], "little")
        value = (window >> (self.pos & 7)) & ((1 << nbits) - 1)
        self.pos += nbits
        return value

    def read_signed(self, nbits: int) -> int:
        """Read a two's-complement field."""
        value = self.read(nbits)
        return value - (1 << nbits) if value >> (nbits - 1) else value
