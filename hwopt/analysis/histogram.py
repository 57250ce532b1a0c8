"""Statistics of 8-bit weight tensors from one 256-bin histogram per output channel.

Every figure the audit reports for an int8/uint8 tensor (zeros, all-zero channels, distinct
values per channel and per tensor, entropy) follows from the (channel, byte) histogram, so
the weights are read once as stored: no zero-point-corrected int32 copy, no sort. The
zero points only re-label histogram bins (a quantized zero is the byte equal to the zero
point), which costs 256 operations per channel instead of one per weight.
"""

from __future__ import annotations

import numpy as np

from hwopt.analysis.stats import WeightStats, check_2_4_mask, entropy_from_counts

BINS = 256
CHUNK = 1 << 14  # weights per bincount: a 128 KiB key buffer, reused (measured fastest from 8 Ki to 128 Ki)


def _matrix(w: np.ndarray, out_axis: int | None) -> tuple[np.ndarray, bool]:
    """A 2-D view of `w` with the channel axis first (True) or last (False), copying only if needed."""
    if out_axis is None or w.ndim == 0:
        return w.reshape(1, -1), True
    channels = w.shape[out_axis]
    if all(n == 1 for n in w.shape[:out_axis]):
        return w.reshape(channels, -1), True
    if all(n == 1 for n in w.shape[out_axis + 1 :]):
        return w.reshape(-1, channels), False
    return np.moveaxis(w, out_axis, 0).reshape(channels, -1), True


def channel_histogram(w: np.ndarray, out_axis: int | None) -> np.ndarray:
    """(channels, 256) counts of each stored byte per output channel of an 8-bit tensor.

    One bincount of (channel * 256 + byte) keys per CHUNK weights, the keys in one small buffer
    reused for every chunk: fresh tensor-sized temporaries would cost more in page faults than
    the counting itself.
    """
    mat, major = _matrix(w, out_axis)
    codes = mat.view(np.uint8)
    rows, cols = codes.shape
    # A cell counts at most one channel's weights: 32-bit cells halve the memory the later
    # passes over the (channels, 256) table read, unless a channel holds 2**31 weights or more.
    count = np.int32 if (cols if major else rows) < 1 << 31 else np.int64
    if not major:  # channels along the columns (depthwise weights): every chunk of rows adds to all of them
        channels = cols
        hist = np.zeros(channels * BINS, dtype=count)
        per = max(1, CHUNK // max(cols, 1))
        keys = np.empty(min(rows, per) * cols, dtype=np.intp)
        offsets = (np.arange(channels, dtype=np.intp) * BINS)[None, :]
        for r0 in range(0, rows, per):
            part = keys[: (min(rows, r0 + per) - r0) * cols].reshape(-1, cols)
            np.add(codes[r0 : r0 + per], offsets, out=part)
            hist += np.bincount(part.reshape(-1), minlength=channels * BINS)
        return hist.reshape(channels, BINS)
    hist = np.empty((rows, BINS), dtype=count)
    per = max(1, CHUNK // max(cols, 1))  # whole channels per chunk: each chunk fills its own rows
    keys = np.empty(min(rows, per) * cols, dtype=np.intp)
    offsets = (np.arange(min(rows, per), dtype=np.intp) * BINS)[:, None]
    for r0 in range(0, rows, per):
        n = min(rows, r0 + per) - r0
        part = keys[: n * cols].reshape(n, cols)
        np.add(codes[r0 : r0 + n], offsets[:n], out=part)
        hist[r0 : r0 + n] = np.bincount(part.reshape(-1), minlength=n * BINS).reshape(n, BINS)
    return hist


def _bin_values(signed: bool) -> np.ndarray:
    """The integer value each byte bin stands for (two's complement for int8)."""
    codes = np.arange(BINS, dtype=np.int64)
    return np.where(codes >= 128, codes - 256, codes) if signed else codes


def _zero_mask(w: np.ndarray, zps: np.ndarray, in_range: np.ndarray, out_axis: int | None) -> np.ndarray:
    """True where a weight equals its channel's zero point (a quantized zero)."""
    if int(zps.min()) == int(zps.max()):
        return w == w.dtype.type(zps[0]) if in_range[0] else np.zeros(w.shape, dtype=bool)
    shape = [1] * w.ndim
    shape[out_axis if out_axis is not None else 0] = zps.size
    mask = w == np.where(in_range, zps, 0).astype(w.dtype).reshape(shape)
    if not in_range.all():
        mask &= in_range.reshape(shape)
    return mask


def histogram_stats(w: np.ndarray, zero_points: np.ndarray, out_axis: int | None,
                    in_axis: int | None) -> WeightStats:
    """WeightStats of an int8/uint8 tensor relative to its zero points.

    `zero_points` holds one zero point per output channel (or one for the whole tensor);
    the figures equal `weight_stats` of the zero-point-corrected tensor.
    """
    signed = w.dtype == np.int8
    hist = channel_histogram(w, out_axis)
    channels = hist.shape[0]
    zps = np.broadcast_to(np.asarray(zero_points, dtype=np.int64).reshape(-1), (channels,))
    values = _bin_values(signed)
    lo, hi = (-128, 127) if signed else (0, 255)
    in_range = (zps >= lo) & (zps <= hi)
    zero_bin = np.where(in_range, zps, 0) & 0xFF
    zero_per_row = np.where(in_range, hist[np.arange(channels), zero_bin], 0)
    if zps.size and int(zps.min()) == int(zps.max()):
        counts = hist.sum(axis=0, dtype=np.int64)[np.argsort(values, kind="stable")]  # ascending corrected value
    else:
        # Merge the occupied (channel, byte) cells by corrected value (sorted; np.unique
        # would import numpy.ma, a noticeable share of a small audit's start-up).
        occupied = hist > 0
        cells = (values[None, :] - zps[:, None])[occupied]
        order = np.argsort(cells, kind="stable")
        ordered = cells[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        counts = (np.add.reduceat(hist[occupied][order], starts, dtype=np.int64) if ordered.size
                  else np.zeros(0, np.int64))
    counts = counts[counts > 0]
    elements = int(w.size)
    cols = elements // channels if channels else 0
    if in_axis is None or w.ndim == 0:
        ok_24, frac_24 = None, None
    else:
        ok_24, frac_24 = check_2_4_mask(_zero_mask(w, zps, in_range, out_axis), in_axis)
    return WeightStats(
        elements=elements,
        channels=channels,
        zeros=int(zero_per_row.sum(dtype=np.int64)),
        zero_channels=int(np.count_nonzero(zero_per_row == cols)) if elements else 0,
        unique_values=int(counts.size),
        max_unique_per_channel=int(np.count_nonzero(hist, axis=1).max()) if channels and elements else 0,
        sparse_2_4=ok_24,
        groups_2_4_ok=frac_24,
        entropy_bits=entropy_from_counts(counts, elements),
    )
