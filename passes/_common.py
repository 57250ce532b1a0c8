"""Helpers shared by the weight passes: which layers they touch, scales, ranges, write-back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwopt.analysis.layers import Layout, WeightLayer, weight_layers, zero_corrected_tensor, zero_points
from hwopt.analysis.stats import channel_rows
from hwopt.errors import PassError
from hwopt.ir import DType, Model, Tensor

# Layers whose weights passes may restructure: the MAC layers of the NPU (not constants of
# element-wise ops, whose values are data, not learned filters).
STRUCTURED_LAYOUTS = (Layout.OHWI, Layout.IHWO, Layout.OI, Layout.DHWIO, Layout.KN)
INT_WEIGHT_DTYPES = (DType.INT8, DType.UINT8)


def integer_range(dtype: DType) -> tuple[int, int]:
    """Smallest and largest value of an integer weight dtype."""
    info = np.iinfo(dtype.numpy)  # type: ignore[arg-type]
    return int(info.min), int(info.max)


def parse_skip(skip: tuple[str, ...]) -> tuple[frozenset[int], frozenset[str]]:
    """Split a skip list into operator indices and operator type names (upper case)."""
    idx, ops = set(), set()
    for s in skip:
        text = str(s).strip()
        if text.lstrip("-").isdigit():
            idx.add(int(text))
        elif text:
            ops.add(text.upper())
    return frozenset(idx), frozenset(ops)


def layers_to_process(model: Model, skip: tuple[str, ...] = ()) -> tuple[list[WeightLayer], list[WeightLayer]]:
    """(layers a weight pass works on, layers it skips): int8/uint8 MAC layers not on the skip list."""
    idx, ops = parse_skip(skip)
    keep, skipped = [], []
    for wl in weight_layers(model):
        t = wl.weights(model)
        ok = wl.layout in STRUCTURED_LAYOUTS and t.dtype in INT_WEIGHT_DTYPES and t.data is not None
        if ok and wl.op_index not in idx and wl.op not in ops:
            keep.append(wl)
        else:
            skipped.append(wl)
    return keep, skipped


def scales(t: Tensor) -> np.ndarray:
    """Scales broadcastable against the tensor (per-axis aware); 1.0 when unquantized."""
    q = t.quantization
    if q is None or q.scale.size == 0:
        return np.ones((1,) * len(t.shape), dtype=np.float64)
    s = q.scale.astype(np.float64)
    if s.size == 1:
        return np.full((1,) * len(t.shape), float(s[0]))
    view = [1] * len(t.shape)
    view[q.quantized_dimension] = s.size
    return s.reshape(view)


def store_corrected(model: Model, wl: WeightLayer, values: np.ndarray) -> int:
    """Write zero-point-corrected values back into the layer's weights; returns how many changed."""
    t = wl.weights(model)
    assert t.data is not None
    lo, hi = integer_range(t.dtype)
    q = values.astype(np.int64) + zero_points(t)
    if q.min(initial=lo) < lo or q.max(initial=hi) > hi:
        raise PassError(f"tensor {t.name!r}: new values leave the {t.dtype.label} range")
    q = q.astype(t.dtype.numpy)  # type: ignore[arg-type]
    changed = int(np.count_nonzero(q != t.data))
    if changed:
        model.set_tensor_data(model.subgraphs[wl.subgraph], t, q)
    return changed


def store_quantized(model: Model, wl: WeightLayer, q: np.ndarray) -> int:
    """Write new quantized values (the tensor's own dtype and shape) into the layer's weights;
    returns how many changed. `store_corrected` for values already in range."""
    t = wl.weights(model)
    assert t.data is not None and q.dtype == t.data.dtype and q.shape == t.data.shape
    changed = int(np.count_nonzero(q != t.data))
    if changed:
        model.set_tensor_data(model.subgraphs[wl.subgraph], t, q)
    return changed


@dataclass(frozen=True)
class ChannelView:
    """A weight tensor seen as rows of output channels (the axis quantization and streams run along)."""

    rows: np.ndarray  # [C, per-channel elements], int32 zero-corrected
    out_axis: int | None
    shape: tuple[int, ...]

    def back(self, rows: np.ndarray) -> np.ndarray:
        """Rows back to the tensor's own shape."""
        if self.out_axis is None:
            return rows.reshape(self.shape)
        moved = list(self.shape)
        moved.insert(0, moved.pop(self.out_axis))
        return np.moveaxis(rows.reshape(moved), 0, self.out_axis)


def channel_view(model: Model, wl: WeightLayer) -> ChannelView:
    """The layer's zero-corrected weights as one row per output channel."""
    w = zero_corrected_tensor(wl.weights(model))
    return ChannelView(channel_rows(w, wl.out_axis), wl.out_axis, tuple(w.shape))


def channel_scales(t: Tensor, out_axis: int | None, channels: int) -> np.ndarray:
    """One scale per output channel (a per-tensor scale repeated)."""
    q = t.quantization
    if q is None or q.scale.size == 0:
        return np.ones(channels)
    s = q.scale.astype(np.float64)
    if s.size == channels and (out_axis is None or q.quantized_dimension == out_axis):
        return s
    return np.full(channels, float(s.reshape(-1)[0]))
