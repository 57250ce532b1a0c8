"""Vectorised weight statistics: sparsity, distinct values per tensor and per channel, 2:4.

Pure functions over integer (or float) numpy arrays; the audit, enforce and estimate paths
share them so every report counts structure the same way.
"""

from __future__ import annotations

import math
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
    return np.moveaxis(w, out_axis, 0).reshape(w.shape[out_axis], -1)


def unique_per_row(rows: np.ndarray) -> np.ndarray:
    """Number of distinct values in each row, without a Python loop over rows."""
    if rows.size == 0:
        return np.zeros(rows.shape[0], dtype=np.int64)
    s = np.sort(rows, axis=1)
    return (np.diff(s, axis=1) != 0).sum(axis=1) + 1


def entropy_bits(values: np.ndarray) -> float:
    """Order-0 (per-symbol) Shannon entropy in bits per element."""
    if values.size == 0:
        return 0.0
    _, counts = np.unique(values, return_counts=True)
    p = counts / values.size
    return float(-(p * np.log2(p)).sum()) + 0.0


def check_2_4(corrected: np.ndarray, in_axis: int | None) -> tuple[bool | None, float | None]:
    """2:4 compliance: every aligned group of 4 input channels holds >= 2 zeros.

    A trailing partial group is padded with zeros, as the NPU pads the IFM depth.
    """
    if in_axis is None or corrected.ndim == 0:
        return None, None
    moved = np.moveaxis(corrected, in_axis, -1)
    depth = moved.shape[-1]
    pad = (-depth) % 4
    if pad:
        moved = np.concatenate([moved, np.zeros(moved.shape[:-1] + (pad,), dtype=moved.dtype)], axis=-1)
    groups = (moved == 0).reshape(-1, 4).sum(axis=1)
    if groups.size == 0:
        return None, None
    ok = float((groups >= 2).mean())
    return bool(ok == 1.0), ok


def weight_stats(corrected: np.ndarray, out_axis: int | None, in_axis: int | None) -> WeightStats:
    """Statistics of zero-point-corrected weights (a zero here is a quantized zero)."""
    rows = channel_rows(corrected, out_axis)
    zero_rows = ~rows.any(axis=1) if rows.size else np.zeros(rows.shape[0], dtype=bool)
    ok_24, frac_24 = check_2_4(corrected, in_axis)
    flat = corrected.reshape(-1)
    uniq = int(np.unique(flat).size) if flat.size else 0
    per_row = unique_per_row(rows)
    return WeightStats(
        elements=int(flat.size),
        channels=int(rows.shape[0]),
        zeros=int(flat.size - np.count_nonzero(flat)),
        zero_channels=int(zero_rows.sum()),
        unique_values=uniq,
        max_unique_per_channel=int(per_row.max()) if per_row.size else 0,
        sparse_2_4=ok_24,
        groups_2_4_ok=frac_24,
        entropy_bits=entropy_bits(flat),
    )


def palette_fit(unique_values: int) -> int | None:
    """Smallest Ethos-U palette class (4, 16 or 32 entries) the values fit, else None."""
    for size in (4, 16, 32):
        if unique_values <= size:
            return size
    return None


def safe_ratio(a: float, b: float) -> float:
    return a / b if b else (0.0 if a == 0 else math.inf)
