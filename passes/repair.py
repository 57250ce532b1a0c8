"""`repair`: restore structure that conversion or requantization blurred.

Two repairs, both reported as the number of weights moved:
- clusters: a group (tensor, channel or stream) holding more than k distinct values is
  snapped to its k most populated values (each value to the nearest of them). With k=0 the
  count is inferred per layer: the largest distinct count of one output channel, when that
  fits an Ethos-U palette (≤ 32) and the tensor holds more (the per-channel-scale split);
- zero drift: in layers whose sparsity says they were pruned (≥ min_sparsity), values
  within `zero_tolerance` of the zero point are set back to it, and zero stays a palette entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hwopt.analysis.layers import WeightLayer
from hwopt.analysis.stats import unique_per_row
from hwopt.errors import UsageError
from hwopt.ir import Model
from hwopt.passes._common import channel_view, layers_to_process, store_corrected
from hwopt.passes.cluster import channel_groups, max_unique_per_group
from hwopt.passes.manager import Pass, PassResult
from hwopt.targets import Target

PALETTE_MAX = 32  # Ethos-U palette entries per weight stream


def snap_to_popular(values: np.ndarray, k: int, keep_zero: bool) -> np.ndarray:
    """Replace each value by the nearest of the k most frequent values (ties: more frequent, then smaller)."""
    uniq, counts = np.unique(values, return_counts=True)
    if uniq.size <= k:
        return values
    # Rank by count descending, then |value| ascending, then value: deterministic.
    rank = np.lexsort((uniq, np.abs(uniq), -counts))
    chosen = uniq[rank[:k]]
    if keep_zero and 0 in uniq and 0 not in chosen:
        chosen = np.concatenate([chosen[: k - 1], [0]])
    chosen = np.sort(chosen)
    pos = np.clip(np.searchsorted(chosen, values), 1, max(chosen.size - 1, 1))
    if chosen.size == 1:
        return np.full_like(values, chosen[0])
    left, right = chosen[pos - 1], chosen[pos]
    c_left = counts[np.searchsorted(uniq, left)]
    c_right = counts[np.searchsorted(uniq, right)]
    d_left, d_right = np.abs(values - left), np.abs(right - values)
    take_left = (d_left < d_right) | ((d_left == d_right) & (c_left >= c_right))
    return np.where(take_left, left, right)


@dataclass(frozen=True)
class RepairPass(Pass):
    """Re-cluster split clusters to the k most populated values and re-zero drifted near-zeros."""

    name = "repair"
    description = "restore at most k values per group and re-zero near-zeros of pruned layers"
    shown = ("k",)

    k: int = 0
    granularity: Literal["tensor", "channel", "stream"] = "tensor"
    zero_tolerance: int = 1
    min_sparsity: float = 0.3
    target: Target | None = None
    skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.k <= 256:
            raise UsageError(f"repair: k must lie in 1..256 (or 0 to infer it), got {self.k}")
        if not 0 <= self.zero_tolerance <= 16:
            raise UsageError(f"repair: zero_tolerance must lie in 0..16, got {self.zero_tolerance}")
        if not 0.0 <= self.min_sparsity <= 1.0:
            raise UsageError(f"repair: min_sparsity must lie in [0, 1], got {self.min_sparsity}")

    def _k_for(self, rows: np.ndarray) -> int | None:
        if self.k:
            return self.k
        per_ch = int(unique_per_row(rows).max()) if rows.size else 0
        whole = int(np.unique(rows).size)
        return per_ch if per_ch <= PALETTE_MAX and whole > per_ch else None

    def _layer(self, model: Model, wl: WeightLayer) -> tuple[int, int]:
        view = channel_view(model, wl)
        rows = view.rows.copy()
        pruned = rows.size > 0 and float(np.mean(rows == 0)) >= self.min_sparsity
        rezeroed = 0
        if pruned and self.zero_tolerance:
            drift = (rows != 0) & (np.abs(rows) <= self.zero_tolerance)
            rezeroed = int(drift.sum())
            rows[drift] = 0
        k = self._k_for(rows)
        if k is not None:
            groups = channel_groups(self.granularity, rows.shape[0], self.target)
            for g in np.unique(groups):  # one snap per group (tensor, channel or stream)
                sel = groups == g
                rows[sel] = snap_to_popular(rows[sel], k, keep_zero=pruned)
        moved = store_corrected(model, wl, view.back(rows))
        return moved, rezeroed

    def run(self, model: Model) -> PassResult:
        layers, skipped = layers_to_process(model, self.skip)
        moved, rezeroed, per_layer = 0, 0, []
        for wl in layers:
            m, z = self._layer(model, wl)
            moved += m
            rezeroed += z
            if m:
                rows = channel_view(model, wl).rows
                groups = channel_groups(self.granularity, rows.shape[0], self.target)
                per_layer.append({"op_index": wl.op_index, "moved": m, "rezeroed": z,
                                  "max_unique_per_group": max_unique_per_group(rows, groups)})
        return PassResult(model, moved > 0, {"layers": len(layers), "skipped": len(skipped), "weights_moved": moved,
                                             "rezeroed": rezeroed, "per_layer": per_layer})

