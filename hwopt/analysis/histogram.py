"""Statistics of 8-bit weight tensors from one 256-bin histogram per output channel.

Every figure the audit reports for an int8/uint8 tensor (zeros, all-zero channels, distinct
values per channel and per tensor, entropy) follows from the (channel, byte) histogram, so
the weights are read once as stored: no zero-point-corrected int32 copy, no sort. The
zero points only re-label histogram bins (a quantized zero is the byte equal to the zero
point), which costs 256 operations per channel instead of one per weight.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from hwopt.analysis.stats import WeightStats, check_2_4_mask, entropy_from_counts

BINS = 256
CHUNK = 1 << 14  # weights per bincount: a 128 KiB key buffer, reused (measured fastest from 8 Ki to 128 Ki)
# Tensors holding at least this many weights in all are measured on two threads: bincount and
# the ufuncs release the GIL, so a second core takes half of a large model's statistics.
PARALLEL_MIN_WEIGHTS = 1 << 20


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


Job = tuple[np.ndarray, np.ndarray, "int | None", "int | None"]


def histogram_stats_many(jobs: list[Job], threads: int | None = None) -> list[WeightStats]:
    """`histogram_stats(*job)` of every job, in order; on two threads when the weights are many
    and a second core is free to this process (`threads` overrides: 1 or 2)."""
    if threads is None:
        total = sum(int(w.size) for w, *_ in jobs)
        threads = 2 if total >= PARALLEL_MIN_WEIGHTS and len(jobs) > 1 and _cores() > 1 else 1
    results: list[WeightStats | None] = [None] * len(jobs)
    if threads < 2 or len(jobs) < 2:
        return [histogram_stats(*job) for job in jobs]
    # Largest first, each to the less loaded of the two threads: the halves end close together.
    mine: list[int] = []
    theirs: list[int] = []
    load = [0, 0]
    for i in sorted(range(len(jobs)), key=lambda i: -int(jobs[i][0].size)):
        side = 0 if load[0] <= load[1] else 1
        (mine if side == 0 else theirs).append(i)
        load[side] += int(jobs[i][0].size)
    failed: list[BaseException] = []

    def run(indices: list[int]) -> None:
        try:
            for i in indices:
                results[i] = histogram_stats(*jobs[i])
        except BaseException as exc:  # re-raised on the calling thread
            failed.append(exc)

    worker = threading.Thread(target=run, args=(theirs,), name="hwopt-stats", daemon=True)
    worker.start()
    try:
        run(mine)
    finally:
        worker.join()
    if failed:
        raise failed[0]
    return [r for r in results if r is not None]


def _cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
