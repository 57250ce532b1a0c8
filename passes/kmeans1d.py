"""Exact optimal 1-D k-means over a weighted histogram of integers, with integer centroids.

Quantized weights take at most 256 (int8) values, so clustering works on the histogram
(value, weight) instead of the elements: in 1-D every optimal clustering assigns each
value to its nearest centroid, so clusters are contiguous runs of the sorted values, and
the best integer centroid of a run is its weighted mean rounded to the nearest integer
(the squared error is a parabola symmetric about the mean). A dynamic programme over run
boundaries with that integer cost therefore gives the integer-restricted optimum directly,
in O(k·V²) vectorised numpy work for V distinct values (V ≤ 511 for zero-corrected int8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Clustering:
    """Result of `kmeans_1d`: the centroid each input value maps to, and the weighted SSE."""

    values: np.ndarray  # the distinct input values, in the order given (int64)
    assigned: np.ndarray  # centroid of each value (int64), aligned with `values`
    cost: float  # sum over values of weight * (value - centroid)^2

    @property
    def centroids(self) -> np.ndarray:
        return np.unique(self.assigned)


def _segment_costs(v: np.ndarray, w: np.ndarray, zero_at: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Cost[i, j] and integer centroid[i, j] of the run v[i..j] (inf / 0 below the diagonal)."""
    s0 = np.concatenate(([0.0], np.cumsum(w)))
    s1 = np.concatenate(([0.0], np.cumsum(w * v)))
    s2 = np.concatenate(([0.0], np.cumsum(w * v * v)))
    n = v.size
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    valid = i <= j
    jj = np.where(valid, j + 1, 0)
    ii = np.where(valid, i, 0)
    ws = s0[jj] - s0[ii]
    sv = s1[jj] - s1[ii]
    svv = s2[jj] - s2[ii]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ws > 0, sv / np.where(ws > 0, ws, 1.0), 0.0)
    c = np.rint(mean)
    if zero_at is not None:
        # The run holding the zero bin keeps centroid 0, so zeros never move.
        holds_zero = (i <= zero_at) & (j >= zero_at)
        c = np.where(holds_zero, 0.0, c)
    cost = svv - 2.0 * c * sv + c * c * ws
    cost = np.where(valid, np.maximum(cost, 0.0), np.inf)
    return cost, c


def kmeans_1d(values: np.ndarray, weights: np.ndarray, k: int, *, fixed_zero: bool = False) -> Clustering:
    """Cluster integer `values` (any order, distinct) with non-negative `weights` into at most k
    integer centroids, minimising sum weight * (value - centroid)^2 exactly.

    With `fixed_zero`, 0 (if present among the values) is a centroid and every 0 stays 0;
    values nearer to 0 than to any other centroid may join it.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    v_in = np.asarray(values, dtype=np.int64).reshape(-1)
    w_in = np.asarray(weights, dtype=np.float64).reshape(-1)
    if v_in.size != w_in.size:
        raise ValueError("values and weights differ in length")
    if np.any(w_in < 0) or not np.all(np.isfinite(w_in)):
        raise ValueError("weights must be finite and non-negative")
    order = np.argsort(v_in, kind="stable")
    v = v_in[order]
    w = w_in[order]
    if v.size and np.any(np.diff(v) == 0):
        raise ValueError("values must be distinct")
    n = v.size
    if k >= n:
        return Clustering(v_in, v_in.copy(), 0.0)
    zero_at = int(np.searchsorted(v, 0)) if fixed_zero and np.any(v == 0) else None
    vf = v.astype(np.float64)
    cost, cent = _segment_costs(vf, w, zero_at)
    # best[j]: least cost of splitting v[0..j] into m+1 runs; back[m][j]: start of the last run.
    best = cost[0].copy()
    back = np.zeros((k, n), dtype=np.int64)
    for m in range(1, k):
        cand = best[:-1, None] + cost[1:, :]  # cand[i-1, j]: last run v[i..j]
        arg = np.argmin(cand, axis=0)
        new = cand[arg, np.arange(n)]
        # Fewer runs than m+1 is never worse to keep (ties keep the earlier solution).
        keep = best <= new
        best = np.where(keep, best, new)
        back[m] = np.where(keep, -1, arg + 1)
    assigned = np.empty(n, dtype=np.int64)
    j, m = n - 1, k - 1
    while j >= 0:
        while m > 0 and back[m][j] < 0:
            m -= 1
        start = int(back[m][j]) if m > 0 else 0
        assigned[start : j + 1] = int(cent[start, j])
        j, m = start - 1, m - 1
    total = float(np.sum(w * (vf - assigned) ** 2))
    out = np.empty_like(assigned)
    out[order] = assigned
    return Clustering(v_in, out, total)
