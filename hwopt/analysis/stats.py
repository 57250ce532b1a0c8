"""Vectorised weight statistics: sparsity, distinct values per tensor and per channel, 2:4.

Pure functions over integer (or float) numpy arrays; the audit, enforce and estimate paths
share them so every report counts structure the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WeightStats:
    """Structure of one weight tensor, measured relative to its zero points."""

    elements: int
    channels: int
    zeros: int
    zero_channels: int
    unique_values: int
    max_unique_per_channel: int
    sparse_2_4: bool | None  # None when the tensor has no input-channel axis
    groups_2_4_ok: float | None  # fraction of aligned groups of 4 with >= 2 zeros
    entropy_bits: float  # order-0 entropy of the values, bits per element

    @property
    def sparsity(self) -> float:
        return self.zeros / self.elements if self.elements else 0.0


def channel_rows(w: np.ndarray, out_axis: int | None) -> np.ndarray:
    """The tensor as a 2-D array with one row per output channel."""
    if out_axis is None or w.ndim == 0:
        return w.reshape(1, -1)
    cols = int(np.prod([n for d, n in enumerate(w.shape) if d != out_axis], dtype=np.int64))
    return np.moveaxis(w, out_axis, 0).reshape(w.shape[out_axis], cols)  # explicit: 0 channels is legal


# Integer tensors whose values span at most this many codes are counted with np.bincount
# (one pass, no sort): every int8/uint8 tensor after zero-point correction spans <= 511.
BINCOUNT_SPAN = 1 << 16
BINCOUNT_CELLS = 1 << 24  # rows x span of the per-row histogram


def _span(values: np.ndarray) -> tuple[int, int] | None:
    """(min, span) of a non-empty integer array small enough for bincount, else None."""
    if values.size == 0 or values.dtype.kind not in "iu":
        return None
    lo, hi = int(values.min()), int(values.max())
    span = hi - lo + 1
    return (lo, span) if span <= BINCOUNT_SPAN else None


def value_counts(values: np.ndarray) -> np.ndarray:
    """Occurrences of each distinct value, in ascending value order (zeros dropped)."""
    flat = values.reshape(-1)
    sp = _span(flat)
    if sp is None:
        return np.unique(flat, return_counts=True)[1] if flat.size else np.zeros(0, dtype=np.int64)
    counts = np.bincount((flat - sp[0]).astype(np.intp, copy=False), minlength=sp[1])
    return counts[counts > 0]


def unique_per_row(rows: np.ndarray) -> np.ndarray:
    """Number of distinct values in each row, without a Python loop over rows."""
    if rows.size == 0:
        return np.zeros(rows.shape[0], dtype=np.int64)
    sp = _span(rows)
    if sp is not None and rows.shape[0] * sp[1] <= BINCOUNT_CELLS:
        lo, span = sp
        keys = (rows - lo).astype(np.intp) + (np.arange(rows.shape[0], dtype=np.intp) * span)[:, None]
        hist = np.bincount(keys.reshape(-1), minlength=rows.shape[0] * span).reshape(rows.shape[0], span)
        return np.count_nonzero(hist, axis=1).astype(np.int64)
    s = np.sort(rows, axis=1)
    return (np.diff(s, axis=1) != 0).sum(axis=1) + 1


def entropy_from_counts(counts: np.ndarray, n: int) -> float:
    """Order-0 entropy (bits per element) of `n` values occurring `counts` times, ascending by value."""
    if n == 0:
        return 0.0
    p = counts / n
    return float(-(p * np.log2(p)).sum()) + 0.0


def entropy_bits(values: np.ndarray) -> float:
    """Order-0 (per-symbol) Shannon entropy in bits per element."""
    return entropy_from_counts(value_counts(values), int(values.size))


def check_2_4(corrected: np.ndarray, in_axis: int | None) -> tuple[bool | None, float | None]:
    """2:4 compliance: every aligned group of 4 input channels holds >= 2 zeros.

    A trailing partial group is padded with zeros, as the NPU pads the IFM depth.
    """
    if in_axis is None or corrected.ndim == 0:
        return None, None
    return check_2_4_mask(corrected == 0, in_axis)


def check_2_4_mask(zero: np.ndarray, in_axis: int) -> tuple[bool | None, float | None]:
    """check_2_4 from a boolean mask of the quantized zeros (True = zero)."""
    if zero.ndim == 0:
        return None, None
    moved = np.moveaxis(zero, in_axis, -1)
    depth = moved.shape[-1]
    pad = (-depth) % 4
    if pad:
        moved = np.concatenate([moved, np.ones((*moved.shape[:-1], pad), dtype=bool)], axis=-1)
    if moved.size == 0:
        return None, None
    # One byte per weight (1 = zero); four bytes read as one uint32 and multiplied by
    # 0x01010101 leave the group's zero count in the top byte (each byte is 0 or 1, so the
    # lower bytes never carry into it): two or more zeros <=> the product >= 2 << 24.
    flags = np.ascontiguousarray(moved).view(np.uint8).reshape(-1)
    groups = flags.view("<u4") * np.uint32(0x01010101)
    ok = float(np.count_nonzero(groups >= np.uint32(2 << 24)) / groups.size)
    return bool(ok == 1.0), ok


def _histogram_stats(rows: np.ndarray, lo: int, span: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One bincount over (row, value): per-tensor counts, distinct values and zeros per row."""
    n_rows = rows.shape[0]
    keys = rows.astype(np.intp)
    keys += (np.arange(n_rows, dtype=np.intp) * span - lo)[:, None]
    hist = np.bincount(keys.reshape(-1), minlength=n_rows * span).reshape(n_rows, span)
    counts = hist.sum(axis=0)
    zero_per_row = hist[:, -lo] if lo <= 0 < lo + span else np.zeros(n_rows, dtype=np.int64)
    return counts[counts > 0], np.count_nonzero(hist, axis=1), zero_per_row


def weight_stats(corrected: np.ndarray, out_axis: int | None, in_axis: int | None) -> WeightStats:
    """Statistics of zero-point-corrected weights (a zero here is a quantized zero)."""
    rows = channel_rows(corrected, out_axis)
    ok_24, frac_24 = check_2_4(corrected, in_axis)
    flat = corrected.reshape(-1)
    sp = _span(rows)
    if sp is not None and rows.shape[0] * sp[1] <= BINCOUNT_CELLS:
        # Integer weights (all int8/uint8 ones): everything from one (row, value) histogram.
        counts, per_row, zero_per_row = _histogram_stats(rows, *sp)
        zeros = int(zero_per_row.sum())
        zero_channels = int(np.count_nonzero(zero_per_row == rows.shape[1]))
    else:
        counts, per_row = value_counts(flat), unique_per_row(rows)
        zeros = int(flat.size - np.count_nonzero(flat))
        zero_channels = int((~rows.any(axis=1)).sum()) if rows.size else 0
    return WeightStats(
        elements=int(flat.size),
        channels=int(rows.shape[0]),
        zeros=zeros,
        zero_channels=zero_channels,
        unique_values=int(counts.size),
        max_unique_per_channel=int(per_row.max()) if per_row.size else 0,
        sparse_2_4=ok_24,
        groups_2_4_ok=frac_24,
        entropy_bits=entropy_from_counts(counts, int(flat.size)),
    )


def palette_fit(unique_values: int) -> int | None:
    """Smallest Ethos-U palette class (4, 16 or 32 entries) the values fit, else None."""
    for size in (4, 16, 32):
        if unique_values <= size:
            return size
    return None
