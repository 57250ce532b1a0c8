"""TFLite weight layers as Ethos-N78 MCE layers: shapes, HWIO/HWIM weights, requantisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwopt.analysis.layers import Layout, WeightLayer
from hwopt.ir import DType, Model, Operator, Subgraph

from .plan import Kind, N78Layer
from .weight_codec import OfmRequant, requant_from_scales

MCE_OPS = {"CONV_2D": Kind.CONV, "DEPTHWISE_CONV_2D": Kind.DEPTHWISE, "FULLY_CONNECTED": Kind.FULLY_CONNECTED}


@dataclass(frozen=True, eq=False)
class N78Weights:
    """A TFLite layer in the form the N78 encoder and estimator take."""

    layer: N78Layer
    weights: np.ndarray  # HWIO (conv, fully connected) or HWIM (depthwise), int8/uint8
    zero_point: int
    bias: np.ndarray | None
    requant: OfmRequant

    @property
    def layout(self) -> str:
        return "HWIM" if self.layer.kind is Kind.DEPTHWISE else "HWIO"


def _opt(op: Operator, name: str) -> int:
    return int(getattr(op.options, name, 1) or 1) if op.options is not None else 1


def _same_padding(in_size: int, out_size: int, k: int, s: int, d: int) -> int:
    return max((out_size - 1) * s + (k - 1) * d + 1 - in_size, 0) // 2


def _hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 4:
        return int(shape[1]), int(shape[2]), int(shape[3])
    return 1, 1, int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])


def _scale(sg: Subgraph, index: int) -> tuple[float, int]:
    t = sg.tensor(index)
    q = t.quantization if t is not None else None
    if q is None or q.scale.size == 0:
        return 1.0, 0
    return float(q.scale.ravel()[0]), int(q.zero_point.ravel()[0]) if q.zero_point.size else 0


def n78_weights(model: Model, wl: WeightLayer) -> N78Weights:
    """The N78 view of one weight layer; ValueError when the N78 weight format cannot hold it."""
    sg = model.subgraphs[wl.subgraph]
    op = sg.operators[wl.op_index]
    kind = MCE_OPS.get(op.op)
    if kind is None:
        raise ValueError(f"{op.op} has no N78 weight layout")
    t = wl.weights(model)
    if t.data is None or t.dtype not in (DType.INT8, DType.UINT8):
        raise ValueError("weights must be constant int8 or uint8")
    q = np.asarray(t.data)
    zps = t.quantization.zero_point if t.quantization is not None else np.zeros(1, dtype=np.int64)
    if zps.size > 1 and np.any(zps != zps.ravel()[0]):
        raise ValueError("per-channel weight zero points (the N78 takes one per tensor)")
    zp = int(zps.ravel()[0]) if zps.size else 0
    ifm_t, ofm_t = sg.tensor(op.inputs[0]), sg.tensor(op.outputs[0]) if op.outputs else None
    ifm = _hwc(ifm_t.shape) if ifm_t is not None and ifm_t.shape else (1, 1, q.shape[-1])
    ofm = _hwc(ofm_t.shape) if ofm_t is not None and ofm_t.shape else (1, 1, q.shape[0])
    stride = (_opt(op, "strideH"), _opt(op, "strideW"))
    if wl.layout is Layout.IHWO:
        # TFLite depthwise [1, H, W, C*M] -> HWIM [H, W, C, M].
        cin = ifm[2]
        hw = q[0].reshape(q.shape[1], q.shape[2], cin, q.shape[3] // cin)
    elif wl.layout is Layout.OI:
        hw = q.T.reshape(1, 1, q.shape[1], q.shape[0])
        ifm, stride = (1, 1, q.shape[1]), (1, 1)
    else:
        hw = np.transpose(q, (1, 2, 3, 0))  # OHWI -> HWIO
    kernel = (int(hw.shape[0]), int(hw.shape[1]))
    padding = (0, 0)
    if op.options is not None and getattr(op.options, "padding", 1) == 0 and kind is not Kind.FULLY_CONNECTED:
        padding = (_same_padding(ifm[0], ofm[0], kernel[0], stride[0], _opt(op, "dilationHFactor")),
                   _same_padding(ifm[1], ofm[1], kernel[1], stride[1], _opt(op, "dilationWFactor")))
    if kind is Kind.FULLY_CONNECTED:
        ofm = (1, 1, int(hw.shape[3]))
    layer = N78Layer(kind, ifm, ofm, kernel, stride, padding)
    bias = None
    if wl.bias_index >= 0:
        b = sg.tensors[wl.bias_index]
        if b.data is not None and b.dtype == DType.INT32:
            bias = np.asarray(b.data).reshape(-1).astype(np.int64)
    in_scale, _ = _scale(sg, op.inputs[0])
    out_scale, out_zp = _scale(sg, op.outputs[0]) if op.outputs else (1.0, 0)
    w_scales = t.quantization.scale if t.quantization is not None and t.quantization.scale.size else [1.0]
    num_ofms = hw.shape[3] if layer.kind is not Kind.DEPTHWISE else hw.shape[2] * hw.shape[3]
    w_scales = np.asarray(w_scales, dtype=np.float64).ravel()
    if w_scales.size not in (1, num_ofms):
        w_scales = w_scales[:1]
    requant = requant_from_scales(in_scale, w_scales, out_scale if out_scale > 0 else 1.0, out_zp, num_ofms)
    return N78Weights(layer, hw, zp, bias, requant)
