"""`cluster`: snap every weight to one of at most k integer centroids, optimally.

Works on zero-point-corrected integers. Per group of channels (the whole tensor, one
output channel, or one Ethos-U weight stream) it builds the weighted histogram of values
and solves 1-D k-means exactly (passes.kmeans1d). Centroids are shared in the integer
domain, so the palette the NPU encoder sees has at most k entries per group; the error is
weighted by each channel's scale² (metric=real, the dequantized squared error) or by plain
counts (metric=int).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hwopt.analysis.layers import WeightLayer, zero_points
from hwopt.analysis.stats import unique_per_row
from hwopt.errors import PassError, UsageError
from hwopt.ir import Model
from hwopt.passes._common import (
    channel_scales,
    channel_view,
    integer_range,
    layers_to_process,
    store_corrected,
)
from hwopt.passes.kmeans1d import kmeans_1d
from hwopt.passes.manager import Pass, PassContext, PassResult, Stat
from hwopt.targets import Target

OFFSET = 255  # zero-corrected int8/uint8 values lie in [-255, 255]
BINS = 2 * OFFSET + 1


def channel_groups(granularity: str, channels: int, target: Target | None) -> np.ndarray:
    """Group index of each output channel: one group per tensor, per channel or per weight stream
    (the target's stream layout; one stream without a target)."""
    if granularity == "channel":
        return np.arange(channels, dtype=np.int64)
    if granularity == "stream" and target is not None:
        return target.stream_of_channel(channels)
    return np.zeros(channels, dtype=np.int64)


def max_unique_per_group(rows: np.ndarray, groups: np.ndarray) -> int:
    """Largest number of distinct values any group of channel rows holds."""
    if rows.size == 0:
        return 0
    if np.array_equal(groups, np.arange(rows.shape[0])):
        return int(unique_per_row(rows).max())
    if int(rows.min()) >= -OFFSET and int(rows.max()) <= OFFSET:  # 8-bit weights: one bincount, no sort per group
        n_groups = int(groups.max()) + 1
        idx = (groups[:, None] * BINS + rows.astype(np.int64) + OFFSET).reshape(-1)
        present = np.bincount(idx, minlength=n_groups * BINS).reshape(n_groups, BINS) > 0
        return int(present.sum(axis=1).max())
    return max(int(np.unique(rows[groups == g]).size) for g in np.unique(groups))


@dataclass(frozen=True)
class ClusterPass(Pass):
    """Optimal k-means of int8 weights with integer centroids shared per tensor, channel or stream."""

    name = "cluster"
    description = "exact 1-D k-means of the integer weights: at most k values per tensor, channel or weight stream"
    shown = ("k", "granularity")

    k: int = 16
    granularity: Literal["tensor", "channel", "stream"] = "tensor"
    preserve_zero: bool | None = None  # None: keep zeros when a prune ran before (resolved by the engine)
    metric: Literal["real", "int"] = "real"
    target: Target | None = None
    skip: tuple[str, ...] = ()
    context: PassContext | None = field(default=None, compare=False, repr=False, metadata={"option": False})

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 256:
            raise UsageError(f"cluster: k must lie in 1..256, got {self.k}")

    @property
    def effective_target(self) -> Target | None:
        return self.target or (self.context.target if self.context else None)

    def _layer(self, model: Model, wl: WeightLayer) -> tuple[int, float, int]:
        t = wl.weights(model)
        view = channel_view(model, wl)
        rows = view.rows
        c = rows.shape[0]
        groups = channel_groups(self.granularity, c, self.effective_target)
        n_groups = int(groups.max()) + 1 if c else 0
        w_ch = channel_scales(t, wl.out_axis, c) ** 2 if self.metric == "real" else np.ones(c)
        idx = (groups[:, None] * BINS + rows + OFFSET).reshape(-1)
        hist = np.bincount(idx, weights=np.repeat(w_ch, rows.shape[1]), minlength=n_groups * BINS).reshape(n_groups, BINS)
        present = np.bincount(idx, minlength=n_groups * BINS).reshape(n_groups, BINS) > 0
        lut = np.tile(np.arange(-OFFSET, OFFSET + 1, dtype=np.int64), (n_groups, 1))
        for g in range(n_groups):  # one exact solve per group (tensor, channel or stream)
            bins = np.flatnonzero(present[g])
            if bins.size <= self.k:
                continue
            # Bins present with zero weight (channels of scale 0) still need a centroid.
            res = kmeans_1d(bins - OFFSET, np.maximum(hist[g, bins], 0.0), self.k, fixed_zero=bool(self.preserve_zero))
            lut[g, bins] = res.assigned
        new_rows = lut.reshape(-1)[idx].reshape(rows.shape)  # idx is each weight's (group, value) cell
        lo, hi = integer_range(t.dtype)
        zp = zero_points(t)
        new = view.back(new_rows)
        clipped = np.clip(new + zp, lo, hi) - zp  # shared centroids may not fit a channel with another zero point
        moved = store_corrected(model, wl, clipped)
        err = float(np.mean((clipped - view.back(rows)).astype(np.float64) ** 2)) if rows.size else 0.0
        return moved, err, max_unique_per_group(channel_view(model, wl).rows, groups)

    def run(self, model: Model) -> PassResult:
        layers, skipped = layers_to_process(model, self.skip)
        moved_total = 0
        per_layer: list[Stat] = []
        for wl in layers:
            moved, mse, uniq = self._layer(model, wl)
            moved_total += moved
            per_layer.append({"op_index": wl.op_index, "moved": moved, "mse_int": mse, "max_unique_per_group": uniq})
        stats: dict[str, Stat] = {"layers": len(layers), "skipped": len(skipped), "weights_moved": moved_total, "per_layer": per_layer}
        return PassResult(model, moved_total > 0, stats)

    def ensures(self, model: Model) -> None:
        for wl in layers_to_process(model, self.skip)[0]:
            rows = channel_view(model, wl).rows
            groups = channel_groups(self.granularity, rows.shape[0], self.effective_target)
            n = max_unique_per_group(rows, groups)
            if n > self.k:
                raise PassError(f"{wl.op} #{wl.op_index} still has {n} distinct values per {self.granularity} (k={self.k})")
