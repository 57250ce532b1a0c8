"""Which operators carry constant weights, how those weights are laid out, and their MACs.

A `WeightLayer` is what audit, encode, enforce and the estimators share: the operator, its
constant weight tensor, the output-channel axis (the axis per-channel quantization and
the NPU's OFM streams run along), the input-channel axis (the axis 2:4 sparsity and the
NPU's IFM micro-blocks run along) and the multiply-accumulates one inference performs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from hwopt.ir import VELA_CUSTOM_CODE, DType, Model, Operator, Subgraph, Tensor
from hwopt.records import OpRef


class Layout(Enum):
    """Weight tensor layouts of TFLite builtins (letters name the axes in order)."""

    OHWI = "OHWI"  # CONV_2D, TRANSPOSE_CONV
    IHWO = "1HWO"  # DEPTHWISE_CONV_2D: [1, H, W, C*M]
    OI = "OI"  # FULLY_CONNECTED
    DHWIO = "DHWIO"  # CONV_3D
    KN = "KN"  # BATCH_MATMUL constant right-hand side [..., K, N]
    OTHER = "other"


@dataclass(frozen=True)
class WeightLayer(OpRef):
    """An operator with a constant weight tensor, as every weight analysis sees it."""

    weight_index: int  # tensor index of the weights in the subgraph
    bias_index: int  # tensor index of the bias, or -1
    layout: Layout
    out_axis: int | None  # output-channel axis of the weight tensor (None: no channel axis)
    in_axis: int | None  # input-channel axis (2:4 groups run along it)
    macs: int

    def weights(self, model: Model) -> Tensor:
        return model.subgraphs[self.subgraph].tensors[self.weight_index]


WEIGHT_INPUT = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "CONV_3D": 1}
BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3, "CONV_3D": 2}
WEIGHT_DTYPES = (DType.INT8, DType.UINT8, DType.INT16, DType.INT4, DType.FLOAT32, DType.FLOAT16)


def _numel(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _out_shape(sg: Subgraph, op: Operator) -> tuple[int, ...]:
    t = sg.tensor(op.outputs[0]) if op.outputs else None
    return t.shape if t is not None else ()


def _layer_for(sg: Subgraph, op: Operator) -> WeightLayer | None:
    name = op.op
    if op.custom_code == VELA_CUSTOM_CODE:
        return None  # a Vela command stream and its packed weights: opaque, not weights
    if name in WEIGHT_INPUT and len(op.inputs) > WEIGHT_INPUT[name]:
        w = sg.tensor(op.inputs[WEIGHT_INPUT[name]])
        if w is None or not w.is_constant:
            return None
        b_at = BIAS_INPUT[name]
        bias = op.inputs[b_at] if len(op.inputs) > b_at else -1
        out = _out_shape(sg, op)
        s = w.shape
        if name == "CONV_2D" and len(s) == 4:
            macs = _numel(out) * s[1] * s[2] * s[3]
            return WeightLayer(sg.index, op.index, name, w.index, bias, Layout.OHWI, 0, 3, macs)
        if name == "DEPTHWISE_CONV_2D" and len(s) == 4:
            macs = _numel(out) * s[1] * s[2]
            return WeightLayer(sg.index, op.index, name, w.index, bias, Layout.IHWO, 3, None, macs)
        if name == "FULLY_CONNECTED" and len(s) == 2:
            rows = _numel(out) // max(s[0], 1)
            return WeightLayer(sg.index, op.index, name, w.index, bias, Layout.OI, 0, 1, rows * s[0] * s[1])
        if name == "TRANSPOSE_CONV" and len(s) == 4:
            ifm = sg.tensor(op.inputs[2])
            spatial = _numel(ifm.shape[:-1]) if ifm is not None and ifm.shape else 0
            return WeightLayer(sg.index, op.index, name, w.index, bias, Layout.OHWI, 0, 3, spatial * _numel(s))
        if name == "CONV_3D" and len(s) == 5:
            macs = _numel(out) * s[0] * s[1] * s[2] * s[3]
            return WeightLayer(sg.index, op.index, name, w.index, bias, Layout.DHWIO, 4, 3, macs)
        return None
    if name == "BATCH_MATMUL" and len(op.inputs) >= 2:
        rhs = sg.tensor(op.inputs[1])
        if rhs is None or not rhs.is_constant or len(rhs.shape) < 2:
            return None
        adj_y = bool(getattr(op.options, "adjY", False))
        k = rhs.shape[-1] if adj_y else rhs.shape[-2]
        out_axis = len(rhs.shape) - (2 if adj_y else 1)
        in_axis = len(rhs.shape) - (1 if adj_y else 2)
        return WeightLayer(sg.index, op.index, name, rhs.index, -1, Layout.KN, out_axis, in_axis,
                           _numel(_out_shape(sg, op)) * k)
    # Any other operator with a constant multi-element operand of a weight type (e.g. a
    # MUL by a constant, an embedding table): audited for structure, no MACs claimed.
    for pos, i in enumerate(op.inputs):
        t = sg.tensor(i)
        if t is None or not t.is_constant or t.dtype not in WEIGHT_DTYPES or t.elements < 16:
            continue
        q = t.quantization
        axis = q.quantized_dimension if q is not None and q.per_channel else None
        del pos
        return WeightLayer(sg.index, op.index, name, t.index, -1, Layout.OTHER, axis, None, 0)
    return None


def weight_layers(model: Model) -> list[WeightLayer]:
    """Every operator with constant weights, in subgraph then execution order."""
    out = []
    for sg in model.subgraphs:
        for op in sg.operators:
            layer = _layer_for(sg, op)
            if layer is not None:
                out.append(layer)
    return out


def zero_points(t: Tensor) -> np.ndarray:
    """The tensor's zero points, broadcastable against it (0 when unquantized)."""
    if t.quantization is None:
        return np.zeros((1,) * max(len(t.shape), 1), dtype=np.int64)
    return t.quantization.zero_points_along(t.shape)


def zero_corrected_tensor(t: Tensor) -> np.ndarray:
    """A constant tensor's values minus their (per-channel) zero points, as int32."""
    assert t.data is not None
    w = t.data.astype(np.int32)
    if t.quantization is not None and t.dtype.is_integer and t.quantization.zero_point.any():
        w -= t.quantization.zero_points_along(t.shape).astype(np.int32)  # in place: one pass
    return w


def zero_corrected(model: Model, layer: WeightLayer) -> np.ndarray:
    """The layer's weights minus their (per-channel) zero points, as int32."""
    return zero_corrected_tensor(layer.weights(model))


def to_ohwi(w: np.ndarray, layout: Layout) -> np.ndarray:
    """Weights in the OHWI order Ethos-U reads them (depthwise: O=channels, I=1)."""
    if layout is Layout.OHWI:
        return w
    if layout is Layout.IHWO:
        return np.transpose(w, (3, 1, 2, 0))
    if layout is Layout.OI:
        return w.reshape(w.shape[0], 1, 1, w.shape[1])
    if layout is Layout.KN:
        m = w.reshape(-1, w.shape[-2], w.shape[-1])[0]
        return m.T.reshape(m.shape[1], 1, 1, m.shape[0])
    if layout is Layout.DHWIO:
        d, h, ww, i, o = w.shape
        return np.transpose(w, (4, 0, 1, 2, 3)).reshape(o, d * h, ww, i)
    raise ValueError(f"no OHWI view of layout {layout}")
