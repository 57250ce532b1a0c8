"""`prune`: set the smallest weights to their zero point, unstructured, 2:4 or in blocks.

Magnitude is that of the dequantized weight, |q − zp| · scale with per-channel scales, so
channels quantized with different scales compete fairly. 2:4 follows the Ethos-U85 sparse
format: every aligned group of 4 input channels (per output channel and kernel position)
keeps its 2 largest weights. Blocks are aligned runs of `block` input channels ranked by
their L2 norm. Existing zeros always stay zero (they rank first, with magnitude 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hwopt.analysis.layers import WeightLayer, zero_corrected_tensor, zero_points
from hwopt.analysis.stats import check_2_4
from hwopt.errors import PassError, UsageError
from hwopt.ir import Model
from hwopt.passes._common import integer_range, layers_to_process, scales, store_corrected, store_quantized
from hwopt.passes.manager import Pass, PassResult


def _grouped(w: np.ndarray, in_axis: int, size: int) -> tuple[np.ndarray, int]:
    """Input-channel axis last, zero-padded to a multiple of `size`, split into [..., groups, size]."""
    moved = np.moveaxis(w, in_axis, -1)
    pad = (-moved.shape[-1]) % size
    if pad:
        moved = np.concatenate([moved, np.zeros((*moved.shape[:-1], pad), dtype=moved.dtype)], axis=-1)
    return moved.reshape((*moved.shape[:-1], moved.shape[-1] // size, size)), pad


def _ungrouped(g: np.ndarray, in_axis: int, pad: int) -> np.ndarray:
    flat: np.ndarray = g.reshape((*g.shape[:-2], g.shape[-2] * g.shape[-1]))
    if pad:
        flat = flat[..., : flat.shape[-1] - pad]
    return np.moveaxis(flat, -1, in_axis)


def _smallest(scores: np.ndarray, count: int) -> np.ndarray:
    """Boolean mask of the `count` smallest scores (ties broken by position, deterministically).

    The same mask as the first `count` of a stable argsort, without one: everything below the
    count-th smallest score, then the earliest of the scores equal to it. The count-th score comes
    from a plain sort (numpy's vectorised sort; selection by np.partition is several times slower
    on the many equal scores of int8 weights).
    """
    mask = np.zeros(scores.size, dtype=bool)
    if count <= 0:
        return mask
    if count >= scores.size:
        mask[:] = True
        return mask
    kth = np.sort(scores)[count - 1]
    if np.isnan(kth):  # NaN scores sort last; keep the sort's exact order for them
        mask[np.argsort(scores, kind="stable")[:count]] = True
        return mask
    mask = scores < kth
    ties = np.flatnonzero(scores == kth)[: count - int(np.count_nonzero(mask))]
    mask[ties] = True
    return mask


MAX_MAGNITUDE = 512  # |q - zp| of 8-bit weights is below this


def _smallest_magnitudes(mag: np.ndarray, scale: np.ndarray, count: int) -> np.ndarray:
    """`_smallest(mag * scale, count)` for integer magnitudes below MAX_MAGNITUDE and scales
    broadcast along one axis, without sorting the elements: the count-th smallest score comes
    from a histogram of (scale, magnitude) pairs (an 8-bit layer holds few distinct scores).
    Scores are the same float64 products, so the mask is identical."""
    scores = (mag.astype(np.float64) * scale).reshape(-1)
    flat_scale = scale.reshape(-1)
    if count <= 0 or count >= scores.size or not np.all(np.isfinite(flat_scale)) or int(mag.max(initial=0)) >= MAX_MAGNITUDE:
        return _smallest(scores, count)
    values, ids = np.unique(flat_scale, return_inverse=True)
    keys = np.broadcast_to(ids.reshape(scale.shape), mag.shape).astype(np.int64) * MAX_MAGNITUDE + mag
    counts = np.bincount(keys.reshape(-1), minlength=values.size * MAX_MAGNITUDE)
    table = (np.arange(MAX_MAGNITUDE, dtype=np.float64)[None, :] * values[:, None]).reshape(-1)
    present = np.flatnonzero(counts)
    order = present[np.argsort(table[present], kind="stable")]
    kth = table[order[np.searchsorted(np.cumsum(counts[order]), count)]]  # the count-th smallest score
    mask = scores < kth
    ties = np.flatnonzero(scores == kth)[: count - int(np.count_nonzero(mask))]
    mask[ties] = True
    return mask


def _first_true(out: np.ndarray, flags: np.ndarray, n: int) -> None:
    """Set `out` where `flags` holds its first `n` True values in row-major order (2-D arrays; rows
    wholly before the n-th are taken in one vector operation, so no index list of every flag)."""
    cum = np.cumsum(np.count_nonzero(flags, axis=1))
    row = int(np.searchsorted(cum, n))  # the row holding the n-th True
    out[:row] |= flags[:row]
    if row < flags.shape[0]:
        left = n - (int(cum[row - 1]) if row else 0)
        out[row, np.flatnonzero(flags[row])[:left]] = True


def pruned_8bit(q: np.ndarray, zp: np.ndarray, scale: np.ndarray, count: int, lo: int, hi: int) -> np.ndarray | None:
    """8-bit weights `q` (zero points `zp` and scales broadcast against them, dtype range [lo, hi])
    with their `count` smallest magnitudes set to the zero point, or None where only the general
    path applies (scales not finite and non-negative, a zero point outside the range).

    The same mask as `_smallest_magnitudes` over `|q - zp| * scale`, worked out on the (scale,
    magnitude) histogram alone: for a scale v >= 0 the products m * v rise with m, so "below the
    count-th smallest score" is "m below a threshold of v's" and the mask needs no float per
    weight; the new values come from int16 arithmetic on the 8-bit weights.
    """
    flat_scale = scale.reshape(-1)
    if (count <= 0 or count >= q.size or not np.all(np.isfinite(flat_scale)) or np.any(flat_scale < 0)
            or int(zp.min()) < lo or int(zp.max()) > hi):
        return None
    d = q.astype(np.int16) - zp.astype(np.int16)  # |d| <= 255 < MAX_MAGNITUDE
    mag = np.abs(d)
    values, ids = np.unique(flat_scale, return_inverse=True)
    keys = mag if values.size == 1 else np.broadcast_to(ids.reshape(scale.shape) * MAX_MAGNITUDE, mag.shape) + mag
    counts = np.bincount(keys.reshape(-1).astype(np.intp), minlength=values.size * MAX_MAGNITUDE)
    table = (np.arange(MAX_MAGNITUDE, dtype=np.float64)[None, :] * values[:, None]).reshape(-1)
    present = np.flatnonzero(counts)
    order = present[np.argsort(table[present], kind="stable")]
    kth = table[order[np.searchsorted(np.cumsum(counts[order]), count)]]  # the count-th smallest score
    per_scale = table.reshape(values.size, MAX_MAGNITUDE)
    below = np.count_nonzero(per_scale < kth, axis=1)  # magnitudes m < below[v] score under kth
    upto = np.count_nonzero(per_scale <= kth, axis=1)  # ... and below[v] <= m < upto[v] score kth
    first = below.astype(np.int16)[ids].reshape(scale.shape)
    mask = mag < first
    need = count - int(counts.reshape(values.size, MAX_MAGNITUDE)[np.arange(MAX_MAGNITUDE)[None, :] < below[:, None]].sum())
    if need > 0:  # the earliest weights scoring exactly kth, in element order
        ties = (mag >= first) & (mag < upto.astype(np.int16)[ids].reshape(scale.shape))
        _first_true(mask.reshape(mask.shape[0] if mask.ndim else 1, -1), ties.reshape(mask.shape[0] if mask.ndim else 1, -1), need)
    return (q - d * mask).astype(q.dtype)  # a pruned weight becomes q - (q - zp) = zp


@dataclass(frozen=True)
class PrunePass(Pass):
    """Magnitude pruning to the zero point; per layer or global; unstructured, 2:4 or block."""

    name = "prune"
    description = "magnitude pruning of the dequantized weights to their zero point"
    shown = ("sparsity", "pattern")

    sparsity: float = 0.5
    pattern: Literal["unstructured", "2:4", "block"] = "unstructured"
    block: int = 4
    scope: Literal["layer", "global"] = "layer"
    skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity <= 1.0:
            raise UsageError(f"prune: sparsity must lie in [0, 1], got {self.sparsity}")
        if self.pattern == "2:4" and self.sparsity != 0.5:
            raise UsageError(f"prune: pattern 2:4 fixes sparsity at 0.5, got {self.sparsity}")
        if not 2 <= self.block <= 1024:
            raise UsageError(f"prune: block must lie in 2..1024, got {self.block}")

    def _units(self, model: Model, wl: WeightLayer) -> np.ndarray | None:
        """Score of every prunable unit of a layer (element or block), or None if the pattern does not apply."""
        t = wl.weights(model)
        mag = np.abs(zero_corrected_tensor(t)).astype(np.float64) * scales(t)
        if self.pattern == "unstructured":
            return mag.reshape(-1)
        if wl.in_axis is None:
            return None
        g, _ = _grouped(mag, wl.in_axis, self.block)
        return np.sqrt((g * g).sum(axis=-1)).reshape(-1)

    def _apply(self, model: Model, wl: WeightLayer, unit_mask: np.ndarray) -> int:
        t = wl.weights(model)
        w = zero_corrected_tensor(t)
        if self.pattern == "unstructured":
            new = np.where(unit_mask.reshape(w.shape), 0, w)
        else:
            assert wl.in_axis is not None
            g, pad = _grouped(w, wl.in_axis, self.block)
            g = np.where(unit_mask.reshape(g.shape[:-1])[..., None], 0, g)
            new = _ungrouped(g, wl.in_axis, pad)
        return store_corrected(model, wl, new)

    def _two_four(self, model: Model, wl: WeightLayer) -> int:
        t = wl.weights(model)
        assert wl.in_axis is not None
        w = zero_corrected_tensor(t)
        mag = np.abs(w).astype(np.float64) * scales(t)
        gm, _ = _grouped(mag, wl.in_axis, 4)
        gw, pad = _grouped(w, wl.in_axis, 4)
        # Zero the 2 smallest of each aligned group of 4 input channels (padding ranks first).
        order = np.argsort(gm, axis=-1, kind="stable")
        drop = np.zeros(gm.shape, dtype=bool)
        np.put_along_axis(drop, order[..., :2], True, axis=-1)
        return store_corrected(model, wl, _ungrouped(np.where(drop, 0, gw), wl.in_axis, pad))

    def run(self, model: Model) -> PassResult:
        layers, skipped = layers_to_process(model, self.skip)
        changed, n_skipped = 0, len(skipped)
        if self.pattern == "2:4":
            for wl in layers:
                if wl.in_axis is None:
                    n_skipped += 1  # depthwise: no input-channel axis, no 2:4 format on the NPU
                    continue
                changed += self._two_four(model, wl)
            return PassResult(model, changed > 0, {"layers": len(layers), "skipped": n_skipped, "weights_zeroed": changed})
        if self.scope == "layer":  # one layer's scores at a time: float64 scores are 8x the int8 weights
            pruned = 0
            for wl in layers:
                if self.pattern == "unstructured":
                    t = wl.weights(model)
                    assert t.data is not None
                    pruned_q = pruned_8bit(t.data, zero_points(t), scales(t), round(self.sparsity * t.data.size),
                                           *integer_range(t.dtype))
                    if pruned_q is not None:
                        changed += store_quantized(model, wl, pruned_q)
                        pruned += 1
                        continue
                    mag = np.abs(zero_corrected_tensor(t))
                    mask = _smallest_magnitudes(mag, scales(t), round(self.sparsity * mag.size))
                else:
                    s = self._units(model, wl)
                    if s is None:
                        n_skipped += 1
                        continue
                    mask = _smallest(s, round(self.sparsity * s.size))
                changed += self._apply(model, wl, mask)
                pruned += 1
            return PassResult(model, changed > 0, {"layers": pruned, "skipped": n_skipped, "weights_zeroed": changed})
        scored = [(wl, self._units(model, wl)) for wl in layers]
        scored_ok = [(wl, s) for wl, s in scored if s is not None]
        n_skipped += len(scored) - len(scored_ok)
        if scored_ok:
            allscores = np.concatenate([s for _, s in scored_ok])
            mask = _smallest(allscores, round(self.sparsity * allscores.size))
            pos = 0
            for wl, s in scored_ok:
                changed += self._apply(model, wl, mask[pos : pos + s.size])
                pos += s.size
        return PassResult(model, changed > 0, {"layers": len(scored_ok), "skipped": n_skipped, "weights_zeroed": changed})

    def ensures(self, model: Model) -> None:
        layers = layers_to_process(model, self.skip)[0]
        if self.pattern == "2:4":
            for wl in layers:
                if wl.in_axis is not None and check_2_4(zero_corrected_tensor(wl.weights(model)), wl.in_axis)[0] is False:
                    raise PassError(f"{wl.op} #{wl.op_index} is not 2:4 sparse")
            return
        zeros, units = 0, 0
        for wl in layers:
            w = zero_corrected_tensor(wl.weights(model))
            if self.pattern == "unstructured":
                z, n = int(w.size - np.count_nonzero(w)), int(w.size)
            elif wl.in_axis is None:
                continue
            else:
                g, _ = _grouped(w, wl.in_axis, self.block)
                blocks = ~g.any(axis=-1)
                z, n = int(blocks.sum()), int(blocks.size)
            if self.scope == "layer" and z < round(self.sparsity * n):
                raise PassError(f"{wl.op} #{wl.op_index}: {z} of {n} units zero, expected {round(self.sparsity * n)}")
            zeros, units = zeros + z, units + n
        if self.scope == "global" and zeros < round(self.sparsity * units):
            raise PassError(f"{zeros} of {units} units zero, expected {round(self.sparsity * units)}")
