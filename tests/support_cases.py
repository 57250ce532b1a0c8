"""Minimal single-operator models, each violating one operator-support rule (and a valid twin).

`CASES` maps a case name to (families, expected rule ids, builder). The builder returns the
.tflite bytes of a model whose operator #0 breaks exactly the named rules on those families.
Used by tests/test_check.py and tools/check_agreement.py (agreement with Vela's placement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from modelgen import ModelBuilder, quantization

from hwopt._generated.tflite.ArgMaxOptions import ArgMaxOptionsT
from hwopt._generated.tflite.BatchMatMulOptions import BatchMatMulOptionsT
from hwopt._generated.tflite.BuiltinOptions import BuiltinOptions
from hwopt._generated.tflite.Conv2DOptions import Conv2DOptionsT
from hwopt._generated.tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptionsT
from hwopt._generated.tflite.GatherOptions import GatherOptionsT
from hwopt._generated.tflite.Padding import Padding
from hwopt._generated.tflite.Pool2DOptions import Pool2DOptionsT
from hwopt._generated.tflite.ReducerOptions import ReducerOptionsT
from hwopt._generated.tflite.ResizeBilinearOptions import ResizeBilinearOptionsT
from hwopt._generated.tflite.ResizeNearestNeighborOptions import ResizeNearestNeighborOptionsT
from hwopt._generated.tflite.SoftmaxOptions import SoftmaxOptionsT
from hwopt._generated.tflite.SplitOptions import SplitOptionsT
from hwopt._generated.tflite.StridedSliceOptions import StridedSliceOptionsT
from hwopt._generated.tflite.TransposeConvOptions import TransposeConvOptionsT
from hwopt._generated.tflite.UnidirectionalSequenceLSTMOptions import UnidirectionalSequenceLSTMOptionsT

U55, U85, N78 = "ethos-u55", "ethos-u85", "ethos-n78"
NP_TYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
            "float32": np.float32}


@dataclass(frozen=True)
class Case:
    families: tuple[str, ...]
    rules: tuple[str, ...]  # the rules the operator must fail (exactly these)
    build: Callable[[], bytes]
    vela_rejects: bool = False  # Vela refuses the whole model (its TFLite semantic check), not just the operator


def _q(dtype: str, scale: float = 0.05, zp: int = 0) -> Any:
    return None if dtype in ("int64",) else quantization(scale, zp)


def _unary(op: str, shape: tuple[int, ...], dtype: str = "int8", out_shape: tuple[int, ...] | None = None,
           out_dtype: str | None = None, *, params: list[tuple[tuple[int, ...], str, np.ndarray | None]] = (),
           options: Any = None, options_type: int = 0, in_q: Any = "default", out_q: Any = "default",
           params_first: bool = False) -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    out_dtype = out_dtype or dtype
    x = sg.tensor("x", shape, dtype, quant=_q(dtype) if in_q == "default" else in_q)
    y = sg.tensor("y", out_shape or shape, out_dtype, quant=_q(out_dtype) if out_q == "default" else out_q)
    extra = []
    graph_in = [x]
    for i, (pshape, pdtype, data) in enumerate(params):
        t = sg.tensor(f"p{i}", pshape, pdtype, data=data)
        extra.append(t)
        if data is None:
            graph_in.append(t)
    ins = [*extra, x] if params_first else [x, *extra]
    sg.op(op, ins, [y], options=options, options_type=options_type)
    sg.io(graph_in, [y])
    return mb.build()


def _binary(op: str, shape: tuple[int, ...], dtype: str = "int8", *, q1: Any = "default", q2: Any = "default",
            qo: Any = "default", out_dtype: str | None = None) -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    a = sg.tensor("a", shape, dtype, quant=_q(dtype) if q1 == "default" else q1)
    b = sg.tensor("b", shape, dtype, quant=_q(dtype) if q2 == "default" else q2)
    od = out_dtype or dtype
    y = sg.tensor("y", shape, od, quant=_q(od) if qo == "default" else qo)
    sg.op(op, [a, b], [y])
    sg.io([a, b], [y])
    return mb.build()


def _conv(op: str = "CONV_2D", *, ifm: tuple[int, ...] = (1, 8, 8, 8), oc: int = 8, k: tuple[int, int] = (3, 3),
          stride: tuple[int, int] = (1, 1), padding: int = Padding.VALID, w_dtype: str = "int8",
          w_value: int | None = None, b_dtype: str = "int32", bias_shape: tuple[int, ...] | None = None,
          b_value: int = 0, in_dtype: str = "int8", out_hw: tuple[int, int] | None = None,
          dilation: tuple[int, int] = (1, 1), bias_const: bool = True) -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    n, h, w, c = ifm
    kh, kw = k
    dw = op == "DEPTHWISE_CONV_2D"
    if out_hw is None:
        if padding == Padding.SAME:
            oh, ow = -(-h // stride[1]), -(-w // stride[0])
        else:
            oh = (h - (kh - 1) * dilation[1] - 1) // stride[1] + 1
            ow = (w - (kw - 1) * dilation[0] - 1) // stride[0] + 1
    else:
        oh, ow = out_hw
    wshape = (1, kh, kw, oc) if dw else (oc, kh, kw, c)
    rng = np.random.default_rng(0)
    wdata = (np.full(wshape, w_value) if w_value is not None else rng.integers(-100, 100, wshape)).astype(
        NP_TYPES[w_dtype])
    x = sg.tensor("x", ifm, in_dtype, quant=quantization(0.05, 0))
    wt = sg.tensor("w", wshape, w_dtype, data=wdata, quant=quantization(0.01, 0))
    bshape = bias_shape or (oc,)
    bt = sg.tensor("b", bshape, b_dtype, data=np.full(bshape, b_value, dtype=NP_TYPES[b_dtype]) if bias_const
                   else None, quant=quantization(0.0005, 0))
    y = sg.tensor("y", (n, oh, ow, oc), in_dtype, quant=quantization(0.1, 0))
    if dw:
        o = DepthwiseConv2DOptionsT()
        o.padding, o.strideW, o.strideH, o.depthMultiplier = padding, stride[0], stride[1], oc // c
        o.dilationWFactor, o.dilationHFactor = dilation
        sg.op(op, [x, wt, bt], [y], options=o, options_type=BuiltinOptions.DepthwiseConv2DOptions)
    else:
        o2 = Conv2DOptionsT()
        o2.padding, o2.strideW, o2.strideH = padding, stride[0], stride[1]
        o2.dilationWFactor, o2.dilationHFactor = dilation
        sg.op(op, [x, wt, bt], [y], options=o2, options_type=BuiltinOptions.Conv2DOptions)
    sg.io([x] if bias_const else [x, bt], [y])
    return mb.build()


def _pool(op: str, ifm: tuple[int, ...], k: tuple[int, int], stride: tuple[int, int], padding: int,
          out: tuple[int, ...], dtype: str = "int8") -> bytes:
    o = Pool2DOptionsT()
    o.padding, o.strideW, o.strideH, o.filterWidth, o.filterHeight = padding, stride[0], stride[1], k[0], k[1]
    return _unary(op, ifm, dtype, out, options=o, options_type=BuiltinOptions.Pool2DOptions)


def _mean(ifm: tuple[int, ...], axes: list[int], out: tuple[int, ...], dtype: str = "int8") -> bytes:
    o = ReducerOptionsT()
    o.keepDims = True
    return _unary("MEAN", ifm, dtype, out, params=[((len(axes),), "int32", np.array(axes, np.int32))], options=o,
                  options_type=BuiltinOptions.ReducerOptions)


def _resize(op: str, ifm: tuple[int, ...], out: tuple[int, ...], align: bool = False, hpc: bool = False) -> bytes:
    if op == "RESIZE_BILINEAR":
        o: Any = ResizeBilinearOptionsT()
        kind = BuiltinOptions.ResizeBilinearOptions
    else:
        o = ResizeNearestNeighborOptionsT()
        kind = BuiltinOptions.ResizeNearestNeighborOptions
    o.alignCorners, o.halfPixelCenters = align, hpc
    return _unary(op, ifm, "int8", out, params=[((2,), "int32", np.array(out[1:3], np.int32))], options=o,
                  options_type=kind)


def _tconv(stride: tuple[int, int], ifm: tuple[int, ...], out: tuple[int, ...], padding: int = Padding.SAME,
           k: tuple[int, int] = (2, 2)) -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    oc, c = out[3], ifm[3]
    shape_t = sg.tensor("shape", (4,), "int32", data=np.array(out, np.int32))
    wt = sg.tensor("w", (oc, k[0], k[1], c), "int8", data=np.ones((oc, k[0], k[1], c), np.int8),
                   quant=quantization(0.01, 0))
    x = sg.tensor("x", ifm, "int8", quant=quantization(0.05, 0))
    y = sg.tensor("y", out, "int8", quant=quantization(0.1, 0))
    o = TransposeConvOptionsT()
    o.padding, o.strideW, o.strideH = padding, stride[0], stride[1]
    sg.op("TRANSPOSE_CONV", [shape_t, wt, x], [y], options=o, options_type=BuiltinOptions.TransposeConvOptions)
    sg.io([x], [y])
    return mb.build()


def _sslice(ifm: tuple[int, ...], begin: list[int], end: list[int], strides: list[int], out: tuple[int, ...]) -> bytes:
    o = StridedSliceOptionsT()
    return _unary("STRIDED_SLICE", ifm, "int8", out, params=[
        ((len(begin),), "int32", np.array(begin, np.int32)), ((len(end),), "int32", np.array(end, np.int32)),
        ((len(strides),), "int32", np.array(strides, np.int32))], options=o,
        options_type=BuiltinOptions.StridedSliceOptions)


def _argmax(ifm: tuple[int, ...], axis: int, out: tuple[int, ...]) -> bytes:
    o = ArgMaxOptionsT()
    o.outputType = 2  # INT32
    return _unary("ARG_MAX", ifm, "int8", out, "int32", params=[((1,), "int32", np.array([axis], np.int32))],
                  options=o, options_type=BuiltinOptions.ArgMaxOptions, out_q=None)


def _softmax(shape: tuple[int, ...]) -> bytes:
    o = SoftmaxOptionsT()
    o.beta = 1.0
    return _unary("SOFTMAX", shape, options=o, options_type=BuiltinOptions.SoftmaxOptions,
                  out_q=quantization(1 / 256, -128))


def _gather(axis: int) -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    x = sg.tensor("x", (1, 4, 4, 8), "int8", quant=quantization(0.05, 0))
    idx = sg.tensor("i", (2,), "int32", data=np.array([0, 1], np.int32))
    y = sg.tensor("y", (1, 2, 4, 8) if axis == 1 else (2, 4, 4, 8), "int8", quant=quantization(0.05, 0))
    o = GatherOptionsT()
    o.axis = axis
    sg.op("GATHER", [x, idx], [y], options=o, options_type=BuiltinOptions.GatherOptions)
    sg.io([x], [y])
    return mb.build()


def _batch_matmul(dtype: str) -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    a = sg.tensor("a", (1, 4, 8), dtype, quant=quantization(0.05, 0))
    b = sg.tensor("b", (1, 8, 4), dtype, quant=quantization(0.05, 0))
    y = sg.tensor("y", (1, 4, 4), dtype, quant=quantization(0.1, 0))
    sg.op("BATCH_MATMUL", [a, b], [y], options=BatchMatMulOptionsT(), options_type=BuiltinOptions.BatchMatMulOptions)
    sg.io([a, b], [y])
    return mb.build()


def _static_shape() -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    a = sg.tensor("a", (1, 4, 4, 8), "int8", quant=quantization(0.05, 0))
    b = sg.tensor("b", (1, 4, 4, 8), "int8", quant=quantization(0.05, 0))
    y = sg.tensor("y", (1, 4, 4, 8), "int8", quant=quantization(0.1, 0))
    sg.raw.tensors[a].shapeSignature = np.array([1, -1, 4, 8], np.int32)
    sg.op("ADD", [a, b], [y])
    sg.io([a, b], [y])
    return mb.build()


PER_AXIS_Q = quantization(np.array([0.05, 0.06]), np.array([0, 0]), axis=3)

CASES: dict[str, Case] = {
    "valid-conv": Case((U55, U85), (), lambda: _conv()),
    "valid-add": Case((U55, U85), (), lambda: _binary("ADD", (1, 4, 4, 8))),
    "operator-type": Case((U55, U85), ("operator-type",), lambda: _unary("FLOOR", (1, 4, 4, 8))),
    "feature-map-type-u85": Case((U85,), ("feature-map-type",), lambda: _binary(
        "ADD", (1, 4, 4, 8), "float32")),
    "feature-map-type-u55": Case((U55,), ("feature-map-type",), lambda: _binary(
        "ADD", (1, 4, 4, 8), "float32")),
    "static-shape": Case((U55, U85), ("static-shape",), _static_shape),
    "quantized": Case((U55, U85), ("quantized",), lambda: _binary("ADD", (1, 4, 4, 8), q1=None)),
    "scale-positive": Case((U55, U85), ("scale-positive",), lambda: _binary(
        "ADD", (1, 4, 4, 8), q1=quantization(1.0e10, 0))),
    "per-axis": Case((U55, U85), ("per-axis",), lambda: _binary("ADD", (1, 4, 4, 2), q1=PER_AXIS_Q)),
    "weights-8bit": Case((U55, U85), ("weights-8bit",), lambda: _conv(w_dtype="int16")),
    "weight-sum": Case((U55, U85), ("weight-sum",), lambda: _conv(ifm=(1, 3, 3, 7300), oc=1, w_value=127)),
    "bias-shape": Case((U55, U85), ("bias-shape",), lambda: _conv(bias_shape=(2, 4))),
    "bias-type": Case((U55, U85), ("bias-type",), lambda: _conv(b_dtype="int16")),
    "bias-range-u55": Case((U55,), ("bias-range",), lambda: _conv(in_dtype="int16", b_dtype="int64",
                                                                    b_value=1 << 41)),
    "matching-quantization": Case((U55, U85), ("matching-quantization",), lambda: _binary(
        "MAXIMUM", (1, 4, 4, 8), q1=quantization(0.07, 0))),
    "avgpool-kernel": Case((U55, U85), ("avgpool-kernel",), lambda: _pool(
        "AVERAGE_POOL_2D", (1, 16, 16, 8), (9, 9), (1, 1), Padding.SAME, (1, 16, 16, 8))),
    "maxpool-kernel": Case((U55, U85), ("maxpool-kernel",), lambda: _pool(
        "MAX_POOL_2D", (1, 300, 1, 8), (1, 300), (1, 1), Padding.VALID, (1, 1, 1, 8))),
    "transpose-conv-shape": Case((U55, U85), ("transpose-conv-shape",), lambda: _tconv(
        (2, 2), (1, 4, 4, 8), (1, 9, 9, 8))),
    "transpose-conv-stride": Case((U55,), ("transpose-conv-stride",), lambda: _tconv(
        (3, 3), (1, 4, 4, 8), (1, 12, 12, 8), k=(3, 3))),
    "rsqrt-type": Case((U55, U85), ("rsqrt-type",), lambda: _unary("RSQRT", (1, 4, 4, 8), "uint8",
                                                                     in_q=quantization(0.05, 128),
                                                                     out_q=quantization(0.05, 128))),
    "softmax-size": Case((U55, U85), ("softmax-size",), lambda: _softmax((1, 300, 300, 2))),
    "unit-batch": Case((U55, U85), ("unit-batch",), lambda: _mean((2, 4, 4, 8), [1, 2], (2, 1, 1, 8))),
    "mean-depth": Case((U55, U85), ("mean-depth",), lambda: _mean((1, 4, 4, 8), [3], (1, 4, 4, 1))),
    "mean-axis": Case((U55, U85), ("mean-axis",), lambda: _mean((1, 5000, 2, 8), [1], (1, 1, 2, 8))),
    "mean-elements": Case((U55, U85), ("mean-elements",), lambda: _mean((1, 300, 300, 2), [1, 2], (1, 1, 1, 2),
                                                                          "int16")),
    "strided-slice": Case((U55, U85), ("strided-slice",), lambda: _sslice(
        (1, 4, 4, 8), [0, 0, 0, 0], [1, 4, 4, 8], [1, 1, 1, 2], (1, 4, 4, 4))),
    "kernel-stride": Case((U55,), ("kernel-stride",), lambda: _conv(
        "DEPTHWISE_CONV_2D", ifm=(1, 16, 16, 8), stride=(4, 4))),
    "stride-unroll": Case((U55,), ("stride-unroll",), lambda: _conv(
        ifm=(1, 14, 14, 8), stride=(4, 4), padding=Padding.SAME)),
    "argmax-depth": Case((U55,), ("argmax-depth",), lambda: _argmax((1, 2, 2, 200), 3, (1, 2, 2))),
    "argmax-axis": Case((U55,), ("argmax-axis",), lambda: _argmax((1, 4, 2, 8), 1, (1, 2, 8))),
    "matmul-type": Case((U55,), ("matmul-type",), lambda: _batch_matmul("int16")),
    "resize-scale-u55": Case((U55,), ("resize-scale",), lambda: _resize(
        "RESIZE_NEAREST_NEIGHBOR", (1, 4, 4, 8), (1, 12, 12, 8))),
    "no-32bit": Case((U55,), ("no-32bit",), lambda: _pool(
        "MAX_POOL_2D", (1, 4, 4, 8), (2, 2), (2, 2), Padding.VALID, (1, 2, 2, 8), "int32")),
    "no-64bit": Case((U55,), ("no-64bit",), lambda: _binary("ADD", (1, 4, 4, 8), "int64")),
    "zero-point-u55": Case((U55,), ("zero-point",), lambda: _binary(
        "ADD", (1, 4, 4, 8), "int32", q1=quantization(0.05, 5))),
    "ifm-zero-point": Case((U85,), ("ifm-zero-point",), lambda: _binary(
        "ADD", (1, 4, 4, 8), "int16", q1=quantization(0.05, 5))),
    "resize-align-half-pixel": Case((U85,), ("resize-align-half-pixel",), lambda: _resize(
        "RESIZE_BILINEAR", (1, 5, 5, 8), (1, 9, 9, 8), align=True, hpc=True)),
    "resize-power-of-two": Case((U85,), ("resize-power-of-two",), lambda: _resize(
        "RESIZE_BILINEAR", (1, 4, 4, 8), (1, 12, 12, 8))),
    "gather-axis": Case((U85,), ("gather-axis",), lambda: _gather(1)),
}


def _pad(param_const: bool = True, ptype: str = "int32") -> bytes:
    pads = np.array([[0, 0], [1, 1], [1, 1], [0, 0]], dtype=NP_TYPES[ptype])
    return _unary("PAD", (1, 4, 4, 8), "int8", (1, 6, 6, 8), params=[((4, 2), ptype, pads if param_const else None)])


def _fc_rank3() -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    x = sg.tensor("x", (1, 16), "int8", quant=quantization(0.05, 0))
    w = sg.tensor("w", (4, 2, 8), "int8", data=np.ones((4, 2, 8), np.int8), quant=quantization(0.01, 0))
    y = sg.tensor("y", (1, 4), "int8", quant=quantization(0.1, 0))
    sg.op("FULLY_CONNECTED", [x, w, -1], [y])
    sg.io([x], [y])
    return mb.build()


def _matmul(a_shape: tuple[int, ...], b_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    a = sg.tensor("a", a_shape, "int8", quant=quantization(0.05, 0))
    b = sg.tensor("b", b_shape, "int8", quant=quantization(0.05, 0))
    y = sg.tensor("y", y_shape, "int8", quant=quantization(0.1, 0))
    sg.op("BATCH_MATMUL", [a, b], [y], options=BatchMatMulOptionsT(), options_type=BuiltinOptions.BatchMatMulOptions)
    sg.io([a, b], [y])
    return mb.build()


def _transpose(shape: tuple[int, ...], perm: list[int], dtype: str = "int8") -> bytes:
    out = tuple(shape[p] for p in perm)
    q = None if dtype == "int32" else "default"
    return _unary("TRANSPOSE", shape, dtype, out, params=[((len(perm),), "int32", np.array(perm, np.int32))],
                  in_q=q, out_q=q)


MORE: dict[str, Case] = {
    "const-params": Case((U55, U85), ("const-params",), lambda: _pad(param_const=False), vela_rejects=True),
    "pad-params-type": Case((U55, U85), ("pad-params-type",), lambda: _pad(ptype="int16"), vela_rejects=True),
    "fc-weight-shape": Case((U55, U85), ("fc-weight-shape",), _fc_rank3, vela_rejects=True),
    "log-type": Case((U55, U85), ("log-type",), lambda: _unary("LOG", (1, 4, 4, 8), "uint8",
                                                                 in_q=quantization(0.05, 128),
                                                                 out_q=quantization(0.05, 128))),
    "gelu-type": Case((U55, U85), ("gelu-type",), lambda: _unary("GELU", (1, 4, 4, 8), "int16")),
    "same-shapes": Case((U55, U85), ("same-shapes",), lambda: _unary("LOG", (1, 4, 4, 8), "int8", (1, 4, 4, 4))),
    "transpose-shape": Case((U55,), ("transpose-shape",), lambda: _transpose((2, 300, 300, 2), [3, 1, 2, 0])),
    "transpose-int32": Case((U55,), ("transpose-int32",), lambda: _transpose((1, 4, 6, 8), [0, 3, 1, 2], "int32")),
    "matmul-reduced-axis": Case((U55,), ("matmul-reduced-axis",), lambda: _matmul(
        (1, 1, 70000), (1, 70000, 1), (1, 1, 1))),
    "matmul-depth": Case((U55,), ("matmul-depth",), lambda: _matmul((1, 1, 1), (1, 1, 70000), (1, 1, 70000))),
    "reverse-axis": Case((U55,), ("reverse-axis",), lambda: _unary(
        "REVERSE_V2", (1, 4, 4, 8), params=[((1,), "int32", np.array([1], np.int32))])),
    "ofm-zero-point": Case((U85,), ("ofm-zero-point",), lambda: _binary(
        "ADD", (1, 4, 4, 8), qo=quantization(0.05, 200))),
    "resize-scale-u85": Case((U85,), ("resize-scale",), lambda: _resize(
        "RESIZE_NEAREST_NEIGHBOR", (1, 2, 1, 1), (1, 4100, 1, 1))),
}
def _no_io(inputs: bool) -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    a = sg.tensor("a", (1, 4, 4, 8), "int8", quant=quantization(0.05, 0))
    y = sg.tensor("y", (1, 4, 4, 8), "int8", quant=quantization(0.05, 0))
    sg.op("RELU", [] if inputs else [a], [y] if inputs else [])
    sg.io([a], [y])
    return mb.build()


def _split(num_splits: int) -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    axis = sg.tensor("axis", (), "int32", data=np.array(3, np.int32))
    x = sg.tensor("x", (1, 4, 4, 8), "int8", quant=quantization(0.05, 0))
    outs = [sg.tensor(f"y{i}", (1, 4, 4, 4), "int8", quant=quantization(0.05, 0)) for i in range(2)]
    o = SplitOptionsT()
    o.numSplits = num_splits
    sg.op("SPLIT", [axis, x], outs, options=o, options_type=BuiltinOptions.SplitOptions)
    sg.io([x], outs)
    return mb.build()


def _scatter() -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    idx = sg.tensor("i", (4, 1), "int32")
    upd = sg.tensor("u", (4, 8), "int8", quant=quantization(0.05, 0))
    shape = sg.tensor("s", (2,), "int32", data=np.array([8, 8], np.int32))
    y = sg.tensor("y", (8, 8), "int8", quant=quantization(0.05, 0))
    sg.op("SCATTER_ND", [idx, upd, shape], [y])
    sg.io([idx, upd], [y])
    return mb.build()


def _n78_conv(**kw: Any) -> bytes:
    kw.setdefault("in_dtype", "int8")
    return _conv(**kw)


def _fc_per_channel() -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    x = sg.tensor("x", (1, 8), "int8", quant=quantization(0.05, 0))
    w = sg.tensor("w", (2, 8), "int8", data=np.ones((2, 8), np.int8),
                  quant=quantization(np.array([0.01, 0.02]), np.array([0, 0]), axis=0))
    y = sg.tensor("y", (1, 2), "int8", quant=quantization(0.1, 0))
    sg.op("FULLY_CONNECTED", [x, w, -1], [y])
    sg.io([x], [y])
    return mb.build()


MORE["has-ifm"] = Case((U55, U85), ("has-ifm",), lambda: _no_io(True))
MORE["has-ofm"] = Case((U55, U85), ("has-ofm",), lambda: _no_io(False), vela_rejects=True)
MORE["split-outputs"] = Case((U55, U85), ("split-outputs",), lambda: _split(4))
MORE["scatter-indices"] = Case((U85,), ("scatter-indices",), _scatter)
MORE["n78-operator-type"] = Case((N78,), ("operator-type",), lambda: _unary("FLOOR", (1, 4, 4, 8)))
MORE["n78-data-type"] = Case((N78,), ("n78-data-type",), lambda: _binary("ADD", (1, 4, 4, 8), "int16"))
MORE["n78-batch"] = Case((N78,), ("n78-batch",), lambda: _binary("ADD", (2, 4, 4, 8)))
MORE["n78-depth"] = Case((N78,), ("n78-depth",), lambda: _binary("ADD", (1, 1, 1, 70000)))
MORE["n78-zero-point"] = Case((N78,), ("n78-zero-point",), lambda: _binary(
    "ADD", (1, 4, 4, 8), "uint8", q1=quantization(0.05, 300), q2=quantization(0.05, 128), qo=quantization(0.05, 128)))
MORE["n78-kernel-size"] = Case((N78,), ("n78-kernel-size",), lambda: _n78_conv(k=(4, 4)))
MORE["n78-stride"] = Case((N78,), ("n78-stride",), lambda: _n78_conv(ifm=(1, 12, 12, 8), stride=(3, 3)))
MORE["n78-dilation"] = Case((N78,), ("n78-dilation",), lambda: _n78_conv(ifm=(1, 12, 12, 8), dilation=(2, 2)))
MORE["n78-depth-multiplier"] = Case((N78,), ("n78-depth-multiplier",), lambda: _n78_conv(
    op="DEPTHWISE_CONV_2D", ifm=(1, 8, 8, 2), oc=4))
MORE["n78-fc-per-channel"] = Case((N78,), ("n78-fc-per-channel",), _fc_per_channel)
MORE["n78-pooling"] = Case((N78,), ("n78-pooling",), lambda: _pool(
    "MAX_POOL_2D", (1, 16, 16, 8), (4, 4), (4, 4), Padding.VALID, (1, 4, 4, 8)))
MORE["n78-mean"] = Case((N78,), ("n78-mean",), lambda: _mean((1, 4, 4, 8), [3], (1, 4, 4, 1)))
def _lstm(drop_gate: bool = False, peephole: bool = False, projection: bool = False, norm: bool = False) -> bytes:
    """An int8 UNIDIRECTIONAL_SEQUENCE_LSTM (batch 1, 3 steps, 4 inputs, 8 cells) with optional variants."""
    mb = ModelBuilder()
    sg = mb.subgraph()
    cells, n_in = 8, 4
    x = sg.tensor("x", (1, 3, n_in), "int8", quant=quantization(0.05, 0))
    rng = np.random.default_rng(1)

    def w(name: str, shape: tuple[int, ...]) -> int:
        return sg.tensor(name, shape, "int8", data=rng.integers(-50, 50, shape).astype(np.int8),
                         quant=quantization(0.01, 0))

    def b(name: str, dtype: str = "int32", n: int = cells) -> int:
        data = np.zeros(n, NP_TYPES[dtype])
        return sg.tensor(name, (n,), dtype, data=data, quant=quantization(0.0005, 0))

    ins = [x]
    ins += [-1 if drop_gate and g == 0 else w(f"wi{g}", (cells, n_in)) for g in range(4)]
    ins += [-1 if drop_gate and g == 0 else w(f"wr{g}", (cells, cells)) for g in range(4)]
    ins += [b(f"peep{g}", "int16") if peephole else -1 for g in range(3)]
    ins += [-1 if drop_gate and g == 0 else b(f"gb{g}") for g in range(4)]
    ins += [w("proj", (cells, cells)) if projection else -1, -1]
    out_state = sg.tensor("h", (1, cells), "int8", quant=quantization(0.05, 0), buffer=mb.buffer(b""))
    cell_state = sg.tensor("c", (1, cells), "int16", quant=quantization(1 / 2048, 0), buffer=mb.buffer(b""))
    sg.raw.tensors[out_state].isVariable = True
    sg.raw.tensors[cell_state].isVariable = True
    ins += [out_state, cell_state]
    ins += [b(f"ln{g}", "int16") if norm else -1 for g in range(4)]
    y = sg.tensor("y", (1, 3, cells), "int8", quant=quantization(0.05, 0))
    o = UnidirectionalSequenceLSTMOptionsT()
    o.fusedActivationFunction = 3  # TANH
    o.cellClip, o.projClip, o.timeMajor = 0.0, 0.0, False
    # The int8 LSTM kernel keeps five intermediate tensors (gate outputs) with their scales.
    inter = [sg.tensor(f"gate{g}", (1, cells), "int16", quant=quantization(1 / 4096, 0)) for g in range(5)]
    sg.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], options=o,
          options_type=BuiltinOptions.UnidirectionalSequenceLSTMOptions)
    sg.raw.operators[-1].intermediates = np.asarray(inter, dtype=np.int32)
    sg.io([x], [y])
    return mb.build()


def _rank9() -> bytes:
    shape = (1, 1, 1, 1, 1, 1, 1, 2, 3)
    perm = [0, 1, 2, 3, 4, 5, 6, 8, 7]
    return _transpose(shape, perm)


MORE["valid-lstm"] = Case((U55, U85), (), _lstm)
MORE["lstm-gates"] = Case((U55, U85), ("lstm-gates",), lambda: _lstm(drop_gate=True))
MORE["lstm-peephole"] = Case((U55, U85), ("lstm-peephole",), lambda: _lstm(peephole=True))
MORE["lstm-projection"] = Case((U55, U85), ("lstm-projection",), lambda: _lstm(projection=True))
MORE["lstm-norm"] = Case((U55, U85), ("lstm-norm",), lambda: _lstm(norm=True))
MORE["transpose-rank"] = Case((U55, U85), ("transpose-rank",), _rank9)
MORE["bias-constant"] = Case((U55, U85), ("bias-constant",), lambda: _conv(bias_const=False))
MORE["mean-type"] = Case((U85,), ("mean-type",), lambda: _mean((1, 4, 4, 8), [1, 2], (1, 1, 1, 8), "int32"))
CASES.update(MORE)


def family_of(target: str) -> str:
    return U85 if target.startswith("ethos-u85") else U55
