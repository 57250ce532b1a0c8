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
from hwopt.analysis.stats import channel_rows, unique_per_row
from hwopt.errors import PassError, UsageError
from hwopt.ir import Model, Tensor
from hwopt.passes._common import (
    ChannelView,
    channel_scales,
    channel_view,
    integer_range,
    layers_to_process,
    store_corrected,
    store_quantized,
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


def distinct_per_group(model: Model, wl: WeightLayer, granularity: str, target: Target | None) -> int:
    """Largest number of distinct weight values any group (tensor, channel or stream) of a layer holds,
    counted on the stored bytes where one zero point maps them one to one onto the values."""
    t = wl.weights(model)
    channels = channel_rows(t.data, wl.out_axis).shape[0] if t.data is not None else 0
    groups = channel_groups(granularity, channels, target)
    br = byte_rows(t, wl.out_axis, groups)
    if br is None:
        return max_unique_per_group(channel_view(model, wl).rows, groups)
    return int(np.count_nonzero(br.counts(), axis=1).max())


@dataclass(frozen=True)
class ByteRows:
    """An 8-bit weight tensor with one zero point, as (group, stored byte) cells: the histogram
    clustering needs, without an int32 or int64 copy per weight."""

    keys: np.ndarray  # [C, per-channel elements]: group * 256 + the weight's byte (intp)
    values: np.ndarray  # [256]: the zero-corrected value of each byte (int64)
    order: np.ndarray  # [256]: the bytes in ascending value order
    zero_point: int
    n_groups: int

    def counts(self) -> np.ndarray:
        """[n_groups, 256] occurrences of each byte per group."""
        return np.bincount(self.keys.reshape(-1), minlength=self.n_groups * 256).reshape(self.n_groups, 256)


def byte_rows(t: Tensor, out_axis: int | None, groups: np.ndarray) -> ByteRows | None:
    """`ByteRows` of an int8/uint8 weight tensor with one in-range zero point; None otherwise
    (per-channel zero points, no channels), where the int32 path applies."""
    if t.data is None or t.data.dtype.itemsize != 1 or t.data.dtype.kind not in "iu" or t.data.size == 0:
        return None
    zps = zero_points(t)
    lo, hi = integer_range(t.dtype)
    zp = int(zps.min())
    if int(zps.max()) != zp or not lo <= zp <= hi:  # (a plain np.unique would import numpy.ma, ~30 ms)
        return None
    rows = channel_rows(t.data, out_axis).view(np.uint8)
    if rows.shape[0] == 0 or groups.shape != (rows.shape[0],):
        return None
    n_groups = int(groups.max()) + 1
    keys = rows.astype(np.intp) if n_groups == 1 else groups.astype(np.intp)[:, None] * 256 + rows
    signed = np.arange(lo, hi + 1, dtype=np.int64)  # every stored value, ascending
    return ByteRows(keys, signed - zp, signed & 0xFF, zp, n_groups)


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

    def _solve(self, present: np.ndarray, hist: np.ndarray, values: np.ndarray, lut: np.ndarray) -> None:
        """Centroids into `lut` [groups, bins]: one exact solve per group holding more than k of `values`
        (ascending; `present` and `hist` per group and value)."""
        for g in range(present.shape[0]):  # one exact solve per group (tensor, channel or stream)
            bins = np.flatnonzero(present[g])
            if bins.size <= self.k:
                continue
            # Bins present with zero weight (channels of scale 0) still need a centroid.
            res = kmeans_1d(values[bins], np.maximum(hist[g, bins], 0.0), self.k, fixed_zero=bool(self.preserve_zero))
            lut[g, bins] = res.assigned

    def _layer_bytes(self, model: Model, wl: WeightLayer, br: ByteRows, w_ch: np.ndarray) -> tuple[int, float, int]:
        """`_layer` on a tensor's bytes: the same histograms, centroids, stored values and figures."""
        t = wl.weights(model)
        assert t.data is not None
        counts = br.counts()
        # The weighted histogram as the int32 path builds it: a bin's sum depends on the order of its additions.
        hist = np.bincount(br.keys.reshape(-1), weights=np.repeat(w_ch, br.keys.shape[1]),
                           minlength=br.n_groups * 256).reshape(br.n_groups, 256)
        lut = np.tile(br.values, (br.n_groups, 1))
        self._solve(counts[:, br.order] > 0, hist[:, br.order], br.values, lut)
        lo, hi = integer_range(t.dtype)
        stored = np.empty((br.n_groups, 256), dtype=t.data.dtype)  # each (group, byte)'s new stored value
        stored[:, br.order] = np.clip(lut + br.zero_point, lo, hi)
        new_rows = np.take(stored.reshape(-1), br.keys)
        moved = store_quantized(model, wl, ChannelView(new_rows, wl.out_axis, t.data.shape).back(new_rows))
        old = np.empty(256, dtype=np.int64)
        old[br.order] = br.values + br.zero_point
        total = int((counts * (stored.astype(np.int64) - old) ** 2).sum())  # exact: integers far below 2**53
        seen = np.zeros((br.n_groups, 256), dtype=bool)
        cells = counts > 0
        seen[np.nonzero(cells)[0], stored.view(np.uint8)[cells]] = True
        return moved, total / t.data.size, int(seen.sum(axis=1).max())

    def _layer(self, model: Model, wl: WeightLayer) -> tuple[int, float, int]:
        t = wl.weights(model)
        channels = channel_rows(t.data, wl.out_axis).shape[0] if t.data is not None else 0
        groups = channel_groups(self.granularity, channels, self.effective_target)
        br = byte_rows(t, wl.out_axis, groups)
        if br is not None:
            w_ch = channel_scales(t, wl.out_axis, channels) ** 2 if self.metric == "real" else np.ones(channels)
            return self._layer_bytes(model, wl, br, w_ch)
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
        self._solve(present, hist, np.arange(-OFFSET, OFFSET + 1, dtype=np.int64), lut)
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
            n = distinct_per_group(model, wl, self.granularity, self.effective_target)
            if n > self.k:
                raise PassError(f"{wl.op} #{wl.op_index} still has {n} distinct values per {self.granularity} (k={self.k})")
