"""Ethos-U85 Fast Weight Decoder (FWD) format: a 256-bit header, then fixed-width codes.

FWD trades compression for decode speed: no entropy or zero-run coding, only a small
lookup table (LUT2: 4 entries, 2-bit codes; LUT4: 16 entries, 4-bit codes) or raw 8-bit
codes. This module is hwopt's own implementation; its streams equal the ones Vela 5.x
writes into compiled U85 models, and `decode` reads those back.

Header (bits numbered LSB first inside little-endian bytes):

- bit 0: raw-mode flag (codes are signed bytes, no LUT)
- bit 1: small-LUT flag (LUT2: 4 entries and 2-bit codes; clear: LUT4)
- bits 2..103: reserved, zero
- bits 104..111: zero-adjust z (signed byte, 0 unless the values leave -128..127); in raw
  mode a weight is the signed code minus z
- bits 112..255: 16 LUT entries of 9 bits, folded as `(|w| << 1) | (w < 0)`: the first
  16 distinct values of the stream in order of appearance (filled in raw mode too)

The payload follows at byte 32, codes packed LSB first, and the stream is zero-padded to
a multiple of 32 bytes. With several weight-decoder streams the sub-streams share one
FWD stream: their codes are interleaved round-robin in blocks of `block` codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from hwopt.analysis.stats import value_counts
from hwopt.targets.ethos_u.mlw import fold  # the same sign-magnitude folding as the standard codec

HEADER_BYTES = 32
STREAM_ALIGN = 32  # the FWD stream is fetched in 256-bit words
LUT_ENTRIES = 16
_LUT_BIT0 = 112
_ZERO_ADJUST_BIT0 = 104
RESERVED_BITS = (2, 104)  # half-open range of reserved header bits


class FwdMode(Enum):
    """Code width of an FWD stream, chosen from the number of distinct weights."""

    LUT2 = 2  # <= 4 distinct values
    LUT4 = 4  # <= 16 distinct values
    RAW = 8  # value range spans < 256

    @property
    def bits(self) -> int:
        return self.value


class FwdError(ValueError):
    """Weights that FWD cannot represent (raw range too wide) or a malformed stream."""


@dataclass(frozen=True)
class FwdStream:
    """One encoded FWD stream and what a decoder needs besides the bytes."""

    data: bytes
    mode: FwdMode
    lengths: tuple[int, ...]  # weights per decoder sub-stream
    block: int  # interleave granule in codes

    @property
    def weights(self) -> int:
        return sum(self.lengths)


def unfold(folded: np.ndarray) -> np.ndarray:
    """Inverse of `fold`."""
    f = folded.astype(np.int64)
    mag = f >> 1
    return np.where(f & 1, -mag, mag)


def choose_mode(distinct: int) -> FwdMode:
    """Narrowest code for a stream with `distinct` different weight values."""
    if distinct <= 4:
        return FwdMode.LUT2
    if distinct <= 16:
        return FwdMode.LUT4
    return FwdMode.RAW


def estimated_size(weights: int, distinct: int) -> int:
    """Vela's Size-strategy estimate of an FWD stream: 32 header bytes + N/d (d = 4, 2, 1)."""
    return HEADER_BYTES + weights // {FwdMode.LUT2: 4, FwdMode.LUT4: 2, FwdMode.RAW: 1}[choose_mode(distinct)]


def encoded_size(weights: int, mode: FwdMode) -> int:
    """Exact byte size of `encode` output: header + packed codes, padded to 32 bytes."""
    payload = -(-weights * mode.bits // 8)
    return -(-(HEADER_BYTES + payload) // STREAM_ALIGN) * STREAM_ALIGN


def can_encode(values: np.ndarray) -> bool:
    """True when FWD can hold the values (≤16 distinct, or a range spanning < 256)."""
    if values.size == 0:
        return True
    if values.min() < -256 or values.max() > 255:
        return False
    return value_counts(values).size <= LUT_ENTRIES or int(values.max()) - int(values.min()) < 256


def _interleave(streams: Sequence[np.ndarray], block: int) -> np.ndarray:
    """Round-robin blocks of `block` values from each sub-stream (exhausted ones are skipped)."""
    if len(streams) == 1:
        return np.asarray(streams[0])
    keys = []
    for s, arr in enumerate(streams):
        n = len(arr)
        # Sort key: (round, stream, position) puts block r of every stream before block r+1.
        pos = np.arange(n, dtype=np.int64)
        keys.append(((pos // block) * len(streams) + s) * block + pos % block)
    order = np.argsort(np.concatenate(keys), kind="stable")
    return np.concatenate([np.asarray(a, dtype=np.int64) for a in streams])[order]


def _deinterleave(values: np.ndarray, lengths: Sequence[int], block: int) -> list[np.ndarray]:
    if len(lengths) == 1:
        return [values]
    keys = []
    for s, n in enumerate(lengths):
        pos = np.arange(n, dtype=np.int64)
        keys.append(((pos // block) * len(lengths) + s) * block + pos % block)
    order = np.argsort(np.concatenate(keys), kind="stable")
    flat = np.empty_like(values)
    flat[order] = values
    return list(np.split(flat, np.cumsum(lengths)[:-1]))


def _put_bits(header: np.ndarray, bit0: int, width: int, value: int) -> None:
    for b in range(width):
        if (value >> b) & 1:
            header[(bit0 + b) >> 3] |= np.uint8(1 << ((bit0 + b) & 7))


def _get_bits(header: bytes, bit0: int, width: int) -> int:
    value = 0
    for b in range(width):
        bit = bit0 + b
        value |= ((header[bit >> 3] >> (bit & 7)) & 1) << b
    return value


def _pack(codes: np.ndarray, bits: int) -> bytes:
    per_byte = 8 // bits
    pad = (-codes.size) % per_byte
    c = np.concatenate([codes.astype(np.uint16), np.zeros(pad, dtype=np.uint16)]).reshape(-1, per_byte)
    shifts = (np.arange(per_byte, dtype=np.uint16) * bits)[None, :]
    return (c << shifts).sum(axis=1).astype(np.uint8).tobytes()


def _unpack(payload: bytes, bits: int, count: int) -> np.ndarray:
    per_byte = 8 // bits
    raw = np.frombuffer(payload, dtype=np.uint8)[: -(-count // per_byte)].astype(np.uint16)
    shifts = (np.arange(per_byte, dtype=np.uint16) * bits)[None, :]
    codes = (raw[:, None] >> shifts) & ((1 << bits) - 1)
    return codes.reshape(-1)[:count].astype(np.int64)


def lut_of(values: np.ndarray) -> np.ndarray:
    """The LUT as Vela fills it: the first (up to) 16 distinct values in stream order."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    # The first 16 distinct values of a prefix are the stream's once the prefix holds 16 (or all) of
    # them: growing prefixes avoid sorting a whole layer's weights.
    want = min(LUT_ENTRIES, int(value_counts(values).size))
    n = 4096
    while True:
        distinct, first = np.unique(values[:n], return_index=True)
        if distinct.size >= want or n >= values.size:
            return distinct[np.argsort(first, kind="stable")][:LUT_ENTRIES]
        n *= 4


def zero_adjust(values: np.ndarray) -> int:
    """Raw-mode offset: 0 when the values fit int8, else the shift that brings them into -128..127."""
    lo = int(values.min()) if values.size else 0
    hi = int(values.max()) if values.size else 0
    if hi - lo >= 256:
        raise FwdError(f"raw FWD needs a value range spanning < 256, got [{lo}, {hi}]")
    if lo < -128:
        return -128 - lo
    if hi > 127:
        return 127 - hi
    return 0


def encode(streams: Sequence[np.ndarray] | np.ndarray, *, block: int = 1, no_lut: bool = False) -> FwdStream:
    """Encode the reordered weights of one or more decoder sub-streams as one FWD stream.

    The header is written as Vela 5.x writes it: the LUT field always holds the first 16
    distinct values in stream order; LUT2 for at most 4 distinct values, LUT4 for at most
    16, else raw signed bytes offset by the zero-adjust. `no_lut` forces raw codes (Vela
    does so for 2:4-sparse fast weights) while the LUT field and a zero adjust of 0 stay.
    Raises FwdError when the values cannot be represented.
    """
    subs = [np.asarray(streams, dtype=np.int64).reshape(-1)] if isinstance(streams, np.ndarray) else [
        np.asarray(s, dtype=np.int64).reshape(-1) for s in streams]
    if block < 1:
        raise FwdError("interleave block must be positive")
    values = _interleave(subs, block)
    if values.size and (values.min() < -256 or values.max() > 255):
        raise FwdError("weights outside [-256, 255]")
    lut = lut_of(values)
    n_distinct = int(value_counts(values).size)
    raw = n_distinct > LUT_ENTRIES
    z = zero_adjust(values) if raw else 0
    if no_lut:
        raw = True
    chosen = FwdMode.RAW if raw else choose_mode(n_distinct)
    header = np.zeros(HEADER_BYTES, dtype=np.uint8)
    _put_bits(header, 0, 1, int(raw))
    _put_bits(header, 1, 1, int(chosen is FwdMode.LUT2))
    _put_bits(header, _ZERO_ADJUST_BIT0, 8, z & 0xFF)
    for k, f in enumerate(fold(lut).tolist()):
        _put_bits(header, _LUT_BIT0 + 9 * k, 9, int(f))
    if raw:
        codes = (values + z) & 0xFF
    else:
        index = np.zeros(512, dtype=np.int64)
        index[lut + 256] = np.arange(lut.size)
        codes = index[values + 256]
    payload = _pack(codes, chosen.bits)
    total = encoded_size(values.size, chosen)
    data = header.tobytes() + payload
    data += bytes(total - len(data))
    return FwdStream(data, chosen, tuple(int(s.size) for s in subs), block)


def decode(data: bytes | memoryview, lengths: Sequence[int], *, block: int = 1) -> list[np.ndarray]:
    """Decode an FWD stream into its sub-streams of `lengths` weights each."""
    if len(data) < HEADER_BYTES or len(data) % STREAM_ALIGN:
        raise FwdError(f"FWD stream of {len(data)} bytes is not a whole number of 32-byte words")
    head = bytes(data[:HEADER_BYTES])
    raw_mode = _get_bits(head, 0, 1)
    small = _get_bits(head, 1, 1)
    if _get_bits(head, RESERVED_BITS[0], RESERVED_BITS[1] - RESERVED_BITS[0]):
        raise FwdError("reserved FWD header bits are set")
    count = int(sum(lengths))
    mode = FwdMode.RAW if raw_mode else (FwdMode.LUT2 if small else FwdMode.LUT4)
    if HEADER_BYTES + -(-count * mode.bits // 8) > len(data):
        raise FwdError("FWD stream shorter than its weights")
    codes = _unpack(bytes(data[HEADER_BYTES:]), mode.bits, count)
    if mode is FwdMode.RAW:
        adjust = _get_bits(head, _ZERO_ADJUST_BIT0, 8)
        values = (codes ^ 0x80) - 0x80 - ((adjust ^ 0x80) - 0x80)  # signed code minus signed zero adjust
    else:
        lut = unfold(np.array([_get_bits(head, _LUT_BIT0 + 9 * k, 9) for k in range(LUT_ENTRIES)]))
        values = lut[codes]
    return _deinterleave(values, list(lengths), block)
