"""Minimal crafted models, each reproducing one kind of hostile input (native crashes, hangs, bypasses).

Every builder returns .tflite bytes of a small but otherwise valid int8 network: an input, one
weight operator with the planted defect, and its output, so a failure points at the defect.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from modelgen import ModelBuilder, conv_options, pack, quantization

from hwopt._generated.tflite.BuiltinOptions import BuiltinOptions
from hwopt._generated.tflite.FullyConnectedOptions import FullyConnectedOptionsT
from hwopt._generated.tflite.Model import Model as FbModel
from hwopt._generated.tflite.Model import ModelT
from hwopt._generated.tflite.Padding import Padding
from hwopt._generated.tflite.TensorType import TensorType


def conv_model(*, kernel: int = 3, channels: int = 8, in_channels: int = 8, size: int = 16, stride: int = 1,
               dilation: int = 1, weight_zp: int = 0, weight_type: int | None = None, filter_missing: bool = False,
               tensor_name: bytes | str = "conv/weights", seed: int = 0, unknown_opcode: int | None = None,
               padding: int = Padding.SAME) -> bytes:
    """INPUT → CONV_2D (k×k, per-channel int8 weights) → OUTPUT, with one planted defect."""
    rng = np.random.default_rng(seed)
    mb = ModelBuilder()
    sg = mb.subgraph()
    x = sg.tensor("input", (1, size, size, in_channels), quant=quantization(0.05, -3))
    w_data = rng.integers(-127, 128, size=(channels, kernel, kernel, in_channels), dtype=np.int8)
    w_scale = rng.uniform(0.002, 0.01, channels).astype(np.float32)
    w = sg.tensor("w", w_data.shape, data=w_data, quant=quantization(w_scale, weight_zp, 0))
    if weight_type is not None:
        sg.raw.tensors[w].type = weight_type
        if weight_type == TensorType.INT4:  # two weights per byte
            packed = rng.integers(0, 256, size=(w_data.size + 1) // 2, dtype=np.uint8)
            mb.raw.buffers[sg.raw.tensors[w].buffer].data = packed
    sg.raw.tensors[w].name = tensor_name if isinstance(tensor_name, bytes) else tensor_name.encode()
    b = sg.tensor("conv/bias", (channels,), "int32", data=rng.integers(-500, 500, channels).astype(np.int32),
                  quant=quantization(w_scale * 0.05, 0, 0))
    out_size = size if padding == Padding.SAME else max(1, (size - (kernel - 1) * dilation - 1) // max(stride, 1) + 1)
    if padding == Padding.SAME and stride > 0:
        out_size = (size + stride - 1) // stride
    y = sg.tensor("conv/out", (1, out_size, out_size, channels), quant=quantization(0.08, -128))
    opts = conv_options(stride=stride, padding=padding)
    opts.dilationWFactor = opts.dilationHFactor = dilation
    sg.op("CONV_2D", [x, -1 if filter_missing else w, b], [y], options=opts,
          options_type=BuiltinOptions.Conv2DOptions, version=3)
    if unknown_opcode is not None:
        mb.raw.operatorCodes[0].builtinCode = unknown_opcode
        mb.raw.operatorCodes[0].deprecatedBuiltinCode = 127
    sg.io([x], [y])
    return mb.build()


def dilated_1x1(dilation: int = 9) -> bytes:
    """A valid 1×1 convolution with a large dilation (mlw_codec's sub-kernel step was 8 // d = 0)."""
    return conv_model(kernel=1, dilation=dilation)


def int4_weights() -> bytes:
    """INT4 (packed) weights: LiteRT runs them, Vela dies with SIGFPE."""
    return conv_model(weight_type=TensorType.INT4)


def weight_zero_point(zp: int = 1000) -> bytes:
    """A weight zero point outside int8 (SIGSEGV in mlw_codec and Regor)."""
    return conv_model(weight_zp=zp)


def unknown_operator(code: int = 400) -> bytes:
    """A weight operator whose builtin code no schema knows (SIGSEGV in Regor)."""
    return conv_model(unknown_opcode=code)


def missing_filter() -> bytes:
    """CONV_2D whose filter input is -1 (SIGSEGV in LiteRT's allocate_tensors)."""
    return conv_model(filter_missing=True)


def bad_stride(stride: int = 0) -> bytes:
    return conv_model(stride=stride)


def bad_dilation(dilation: int = 0) -> bytes:
    return conv_model(dilation=dilation)


def non_utf8_name() -> bytes:
    return conv_model(tensor_name=b"conv/\xff\xfe/weights")


def long_name(length: int = 300) -> bytes:
    return conv_model(tensor_name="w" * length)


def edited(data: bytes, change: Callable[[ModelT], None]) -> bytes:
    """`data` with one edit of its object tree (the fuzzer's kind of mutation, made by hand)."""
    raw = ModelT.InitFromObj(FbModel.GetRootAs(data, 0))
    change(raw)
    return pack(raw)


def _set(obj: object, name: str, value: object) -> None:
    setattr(obj, name, value)


def options_of_another_op() -> bytes:
    """CONV_2D carrying FullyConnectedOptions (Regor reads them as its own: SIGSEGV)."""
    return edited(conv_model(), lambda m: (_set(m.subgraphs[0].operators[0], "builtinOptions", FullyConnectedOptionsT()),
                                           _set(m.subgraphs[0].operators[0], "builtinOptionsType",
                                                BuiltinOptions.FullyConnectedOptions)))


def options_type_without_table() -> bytes:
    """An options type in the union tag but no table behind it (SIGSEGV in Regor)."""
    return edited(conv_model(), lambda m: (_set(m.subgraphs[0].operators[0], "builtinOptions", None),
                                           _set(m.subgraphs[0].operators[0], "builtinOptionsType", 71)))


def custom_op_with_options() -> bytes:
    """A CUSTOM operator that still carries a builtin options table (SIGSEGV in Regor)."""
    def change(m: ModelT) -> None:
        m.operatorCodes[0].builtinCode = m.operatorCodes[0].deprecatedBuiltinCode = 32
        m.operatorCodes[0].customCode = b"x"
    return edited(conv_model(), change)


def zero_shape_signature() -> bytes:
    """shape_signature [0] on a tensor of shape [8] (SIGFPE in Regor)."""
    return edited(conv_model(), lambda m: _set(m.subgraphs[0].tensors[2], "shapeSignature", np.asarray([0], np.int32)))


def nan_scale() -> bytes:
    """A quantization scale that is NaN (the analytic estimators divided by it)."""
    return edited(conv_model(), lambda m: _set(m.subgraphs[0].tensors[3].quantization, "scale",
                                               np.asarray([np.nan], np.float32)))


def variant_tensor() -> bytes:
    """A feature map of type VARIANT (SIGFPE in Regor)."""
    return edited(conv_model(), lambda m: _set(m.subgraphs[0].tensors[3], "type", TensorType.VARIANT))


def huge_batch(batch: int = 65536) -> bytes:
    """A feature map with a batch of 65536: Vela unrolls it into one operation per item (minutes)."""
    def change(m: ModelT) -> None:
        for t in (m.subgraphs[0].tensors[0], m.subgraphs[0].tensors[3]):
            t.shape = np.asarray([batch, *list(t.shape)[1:]], np.int32)
    return edited(conv_model(), change)


def extreme_scale(scale: float = 1e38) -> bytes:
    """A finite but absurd output scale: requantisation multipliers overflow int64 in the cost models."""
    return edited(conv_model(), lambda m: _set(m.subgraphs[0].tensors[3].quantization, "scale",
                                               np.asarray([scale], np.float32)))


def conv_weights_of_rank_3() -> bytes:
    """CONV_2D weights [O, W, I] instead of [O, H, W, I] (SIGFPE in Regor)."""
    def change(m: ModelT) -> None:
        t = m.subgraphs[0].tensors[1]
        o, h, w, i = (int(d) for d in t.shape)
        t.shape = np.asarray([o, h * w, i], np.int32)
    return edited(conv_model(), change)


def conv_output_of_rank_3() -> bytes:
    """A convolution's output [1, W, C] instead of [1, H, W, C] (SIGFPE in Regor)."""
    def change(m: ModelT) -> None:
        t = m.subgraphs[0].tensors[3]
        t.shape = np.asarray([1, int(t.shape[1]) * int(t.shape[2]), int(t.shape[3])], np.int32)
    return edited(conv_model(), change)


def bool_weights() -> bytes:
    """Weights of type BOOL (SIGSEGV in Regor)."""
    return edited(conv_model(), lambda m: _set(m.subgraphs[0].tensors[1], "type", TensorType.BOOL))


def missing_options() -> bytes:
    """CONV_2D without its options table (Regor reads strides from it: SIGSEGV)."""
    return edited(conv_model(), lambda m: (_set(m.subgraphs[0].operators[0], "builtinOptions", None),
                                           _set(m.subgraphs[0].operators[0], "builtinOptionsType", 0)))


def fc_model(*, weight_shape: tuple[int, ...] | None = None, in_features: int = 16, out_features: int = 4,
             quantize_input: bool = False, seed: int = 0) -> bytes:
    """INPUT [1, in] → FULLY_CONNECTED (per-tensor int8 weights [out, in]) → OUTPUT [1, out].

    `weight_shape` relabels the weights (same data, another shape); `quantize_input` puts a float
    input and a QUANTIZE in front, as converters emit for a float interface.
    """
    rng = np.random.default_rng(seed)
    mb = ModelBuilder()
    sg = mb.subgraph()
    x = sg.tensor("input", (1, in_features), quant=quantization(0.05, -3))
    first = x
    if quantize_input:
        first = sg.tensor("input_float", (1, in_features), "float32")
        sg.op("QUANTIZE", [first], [x])
    w_data = rng.integers(-127, 128, size=(out_features, in_features), dtype=np.int8)
    w = sg.tensor("fc/weights", weight_shape or w_data.shape, data=w_data, quant=quantization(0.004, 0))
    b = sg.tensor("fc/bias", (out_features,), "int32", data=rng.integers(-100, 100, out_features).astype(np.int32),
                  quant=quantization(0.05 * 0.004, 0))
    y = sg.tensor("fc/out", (1, out_features), quant=quantization(0.5, 5))
    sg.op("FULLY_CONNECTED", [x, w, b], [y], options=FullyConnectedOptionsT(),
          options_type=BuiltinOptions.FullyConnectedOptions, version=4)
    sg.io([first], [y])
    return mb.build()


def fc_weights_of_rank_3() -> bytes:
    """FULLY_CONNECTED weights [1, O, I]: Regor cannot fold them to [O, 1, 1, I] and divides by a
    missing fourth dimension (SIGFPE) while summing the weights."""
    return fc_model(weight_shape=(1, 4, 16))


def fc_input_shorter_than_a_row() -> bytes:
    """FULLY_CONNECTED with 8 input values for weights of 16 per row: Regor's batch is 8 // 16 = 0 (SIGFPE)."""
    def change(m: ModelT) -> None:
        m.subgraphs[0].tensors[0].shape = np.asarray([1, 8], np.int32)
    return edited(fc_model(), change)


def quantize_input_missing() -> bytes:
    """A QUANTIZE whose input is -1 (an omitted optional input where none is optional: SIGSEGV in LiteRT)."""
    def change(m: ModelT) -> None:
        m.subgraphs[0].operators[0].inputs = np.asarray([-1], np.int32)
    return edited(fc_model(quantize_input=True), change)


def no_inputs() -> bytes:
    """A model whose subgraph declares no inputs: nothing to feed a fidelity run (an empty batch)."""
    return edited(fc_model(), lambda m: _set(m.subgraphs[0], "inputs", np.zeros(0, np.int32)))
