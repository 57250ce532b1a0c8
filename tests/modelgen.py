"""Build small TFLite models for tests with the flatbuffer object API (no TensorFlow).

`ModelBuilder` assembles a ModelT by hand (operator codes, buffers, tensors with any
quantization, sparsity, several subgraphs, metadata, signature defs) and packs it with the
plain flatbuffers Builder, so tests of the reader never depend on hwopt's own writer.
`int8_conv_model` and `quantize_per_channel` give a ready valid int8 model LiteRT can run.
"""

from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np

from hwopt._generated.tflite.ActivationFunctionType import ActivationFunctionType
from hwopt._generated.tflite.Buffer import BufferT
from hwopt._generated.tflite.BuiltinOperator import BuiltinOperator
from hwopt._generated.tflite.BuiltinOptions import BuiltinOptions
from hwopt._generated.tflite.Conv2DOptions import Conv2DOptionsT
from hwopt._generated.tflite.FullyConnectedOptions import FullyConnectedOptionsT
from hwopt._generated.tflite.Metadata import MetadataT
from hwopt._generated.tflite.Model import ModelT
from hwopt._generated.tflite.Operator import OperatorT
from hwopt._generated.tflite.OperatorCode import OperatorCodeT
from hwopt._generated.tflite.Padding import Padding
from hwopt._generated.tflite.QuantizationParameters import QuantizationParametersT
from hwopt._generated.tflite.SignatureDef import SignatureDefT
from hwopt._generated.tflite.SubGraph import SubGraphT
from hwopt._generated.tflite.Tensor import TensorT
from hwopt._generated.tflite.TensorMap import TensorMapT
from hwopt._generated.tflite.TensorType import TensorType
from hwopt.testing import ops
from hwopt.testing.builder import GraphBuilder, options

PLACEHOLDER_FOR_GREATER_OP_CODES = 127

TYPES = {
    "float32": TensorType.FLOAT32, "int8": TensorType.INT8, "uint8": TensorType.UINT8,
    "int16": TensorType.INT16, "int32": TensorType.INT32, "int64": TensorType.INT64,
}


def quantization(scale: Any, zero_point: Any = 0, axis: int = 0) -> QuantizationParametersT:
    """QuantizationParametersT with float32 scales and int64 zero points (per tensor or per axis)."""
    q = QuantizationParametersT()
    q.scale = np.atleast_1d(np.asarray(scale, dtype=np.float32))
    zp = np.atleast_1d(np.asarray(zero_point, dtype=np.int64))
    q.zeroPoint = np.repeat(zp, q.scale.size) if zp.size == 1 and q.scale.size > 1 else zp
    q.quantizedDimension = axis
    return q


class SubgraphBuilder:
    """Tensors and operators of one subgraph."""

    def __init__(self, owner: ModelBuilder, name: str) -> None:
        self.owner = owner
        self.raw = SubGraphT()
        self.raw.name = name
        self.raw.tensors, self.raw.operators = [], []
        self.raw.inputs, self.raw.outputs = [], []

    def tensor(self, name: str, shape: tuple[int, ...] | list[int], dtype: str = "int8", *,
               data: np.ndarray | bytes | None = None, quant: QuantizationParametersT | None = None,
               buffer: int | None = None, sparsity: Any = None) -> int:
        """Add a tensor (constant when `data` is given) and return its index."""
        t = TensorT()
        t.name = name
        t.shape = np.asarray(shape, dtype=np.int32)
        t.type = TYPES[dtype]
        t.buffer = buffer if buffer is not None else self.owner.buffer(data)
        t.quantization = quant
        t.sparsity = sparsity
        self.raw.tensors.append(t)
        return len(self.raw.tensors) - 1

    def op(self, name: str, inputs: list[int], outputs: list[int], *, options: Any = None,
           options_type: int = 0, custom: str | None = None, version: int = 1) -> int:
        """Add an operator by builtin name ('CONV_2D') or custom code; returns its index."""
        o = OperatorT()
        o.opcodeIndex = self.owner.opcode(name, custom=custom, version=version)
        o.inputs = np.asarray(inputs, dtype=np.int32)
        o.outputs = np.asarray(outputs, dtype=np.int32)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.raw.operators.append(o)
        return len(self.raw.operators) - 1

    def io(self, inputs: list[int], outputs: list[int]) -> SubgraphBuilder:
        self.raw.inputs = np.asarray(inputs, dtype=np.int32)
        self.raw.outputs = np.asarray(outputs, dtype=np.int32)
        return self


class ModelBuilder:
    """A ModelT under construction; `build()` gives the .tflite bytes."""

    def __init__(self, description: str = "hwopt test model") -> None:
        self.raw = ModelT()
        self.raw.version = 3
        self.raw.description = description
        self.raw.buffers = [BufferT()]  # buffer 0: the empty sentinel every converter writes
        self.raw.operatorCodes, self.raw.subgraphs = [], []
        self._codes: dict[tuple[int, str | None, int, int | None], int] = {}

    def subgraph(self, name: str = "main") -> SubgraphBuilder:
        sg = SubgraphBuilder(self, name)
        self.raw.subgraphs.append(sg.raw)
        return sg

    def buffer(self, data: np.ndarray | bytes | None) -> int:
        """A new buffer holding `data` (raw little-endian bytes), or the empty buffer 0."""
        if data is None:
            return 0
        b = BufferT()
        raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
        b.data = np.frombuffer(raw, dtype=np.uint8)
        self.raw.buffers.append(b)
        return len(self.raw.buffers) - 1

    def opcode(self, name: str, *, custom: str | None = None, version: int = 1,
               deprecated: int | None = None) -> int:
        """Index of an OperatorCode, stored the way current converters store it.

        `deprecated` overrides deprecated_builtin_code (e.g. to store only the old field).
        """
        code = BuiltinOperator.CUSTOM if custom is not None else getattr(BuiltinOperator, name)
        key = (code, custom, version, deprecated)
        if key not in self._codes:
            c = OperatorCodeT()
            c.builtinCode = code
            c.deprecatedBuiltinCode = min(code, PLACEHOLDER_FOR_GREATER_OP_CODES) if deprecated is None else deprecated
            c.customCode = custom
            c.version = version
            self.raw.operatorCodes.append(c)
            self._codes[key] = len(self.raw.operatorCodes) - 1
        return self._codes[key]

    def metadata(self, name: str, data: bytes) -> None:
        m = MetadataT()
        m.name = name
        m.buffer = self.buffer(data)
        self.raw.metadata = [*(self.raw.metadata or []), m]

    def signature(self, key: str, subgraph: int, inputs: dict[str, int], outputs: dict[str, int]) -> None:
        s = SignatureDefT()
        s.signatureKey = key
        s.subgraphIndex = subgraph
        s.inputs = [_tensor_map(n, i) for n, i in inputs.items()]
        s.outputs = [_tensor_map(n, i) for n, i in outputs.items()]
        self.raw.signatureDefs = [*(self.raw.signatureDefs or []), s]

    def build(self) -> bytes:
        return pack(self.raw)


def _tensor_map(name: str, index: int) -> TensorMapT:
    m = TensorMapT()
    m.name, m.tensorIndex = name, index
    return m


def pack(raw: ModelT) -> bytes:
    """Pack an object-API model with the plain flatbuffers Builder (file identifier TFL3)."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quantize_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8: (q, scales) with scale = max|w| / 127 along `axis`."""
    other = tuple(d for d in range(w.ndim) if d != axis)
    amax = np.max(np.abs(w), axis=other)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def conv_options(stride: int = 1, padding: int = Padding.SAME, relu: bool = False) -> Conv2DOptionsT:
    o = Conv2DOptionsT()
    o.padding, o.strideW, o.strideH = padding, stride, stride
    o.dilationWFactor = o.dilationHFactor = 1
    o.fusedActivationFunction = ActivationFunctionType.RELU if relu else ActivationFunctionType.NONE
    return o


def int8_conv_model(weights: np.ndarray | None = None, *, seed: int = 0, channels: int = 8,
                    in_channels: int = 4, size: int = 8, fc: bool = True) -> bytes:
    """A valid full-int8 model: CONV_2D 3x3 (per-channel) [+ FULLY_CONNECTED per-tensor].

    `weights` (int8, OHWI) replaces the random conv filter, to plant known structure.
    """
    rng = np.random.default_rng(seed)
    if weights is None:
        weights = rng.integers(-127, 128, size=(channels, 3, 3, in_channels), dtype=np.int8)
    channels, in_channels = weights.shape[0], weights.shape[3]
    mb = ModelBuilder()
    sg = mb.subgraph()
    x = sg.tensor("input", (1, size, size, in_channels), quant=quantization(0.05, -3))
    w_scale = rng.uniform(0.002, 0.01, channels).astype(np.float32)
    w = sg.tensor("conv/weights", weights.shape, data=weights.astype(np.int8), quant=quantization(w_scale, 0, 0))
    bias = rng.integers(-500, 500, channels).astype(np.int32)
    b = sg.tensor("conv/bias", (channels,), "int32", data=bias, quant=quantization(w_scale * 0.05, 0, 0))
    y = sg.tensor("conv/out", (1, size, size, channels), quant=quantization(0.08, -128))
    sg.op("CONV_2D", [x, w, b], [y], options=conv_options(relu=True), options_type=BuiltinOptions.Conv2DOptions,
          version=3)
    out = y
    if fc:
        n_in = size * size * channels
        fw = rng.integers(-127, 128, size=(4, n_in), dtype=np.int8)
        f = sg.tensor("fc/weights", (4, n_in), data=fw, quant=quantization(0.004, 0))
        fb = sg.tensor("fc/bias", (4,), "int32", data=rng.integers(-100, 100, 4).astype(np.int32),
                       quant=quantization(0.08 * 0.004, 0))
        out = sg.tensor("fc/out", (1, 4), quant=quantization(0.5, 5))
        opts = FullyConnectedOptionsT()
        sg.op("FULLY_CONNECTED", [y, f, fb], [out], options=opts, options_type=BuiltinOptions.FullyConnectedOptions,
              version=4)
    sg.io([x], [out])
    mb.metadata("min_runtime_version", b"1.14.0\0\0\0\0\0\0\0\0\0\0")
    mb.signature("serving_default", 0, {"input": x}, {"output": out})
    return mb.build()


def reshapes_and_pack() -> bytes:
    """A [1, 1, 42] graph input reshaped twice (each reshape read by its own fully connected layer)
    and one result packed into a graph output, as in recurrent denoisers: Vela copies both."""
    g = GraphBuilder(np.random.default_rng(5), "reshape and pack")
    x0 = g.activation((1, 1, 42), g.random_act("int8"))
    a = ops.fully_connected(g, ops.reshape(g, x0, (1, 42)), 24)
    b = ops.fully_connected(g, ops.reshape(g, x0, (1, 42)), 16)
    p = g.activation((1, 1, 24), g.acts[a])
    g.op("PACK", [a], [p], options("PackOptions", valuesCount=1, axis=1))
    g.io([x0], [p, b])
    return g.build()


def requantized_concat(rows: tuple[int, ...] = (150, 600), depth: int = 4) -> bytes:
    """Convolution outputs reshaped to [1, rows, 1, depth], requantized (QUANTIZE int8 -> int8) and
    concatenated along H into a graph output, as detection heads gather their boxes: each QUANTIZE
    writes its part of the output directly."""
    g = GraphBuilder(np.random.default_rng(7), "requantized concatenation")
    x = g.activation((1, 1, 1, 8), g.random_act("int8"))
    out_act = g.random_act("int8")
    parts = []
    for r in rows:
        y = ops.reshape(g, ops.conv2d(g, x, r * depth, (1, 1)), (1, r, 1, depth))
        z = g.activation((1, r, 1, depth), out_act)
        g.op("QUANTIZE", [y], [z])
        parts.append(z)
    out = g.activation((1, sum(rows), 1, depth), out_act)
    g.op("CONCATENATION", parts, [out], options("ConcatenationOptions", axis=1))
    g.io([x], [out])
    return g.build()


def conv_chain(size: int, channels: int = 64, depth: int = 4) -> bytes:
    """A graph input through `depth` 3x3 convolutions of `size` x `size` x `channels` feature maps
    into a graph output: each intermediate is live from its producer to its one reader."""
    g = GraphBuilder(np.random.default_rng(11), "convolution chain")
    x = g.activation((1, size, size, 8), g.random_act("int8"))
    y = x
    for _ in range(depth):
        y = ops.conv2d(g, y, channels, (3, 3))
    g.io([x], [y])
    return g.build()


def conv_times_input(size: int = 16, channels: int = 8) -> bytes:
    """A 1x1 convolution whose output is multiplied by, and added to, the graph input it read (two
    readers: neither elementwise operator can be chained onto the convolution)."""
    g = GraphBuilder(np.random.default_rng(12), "convolution times input")
    x = g.activation((1, size, size, channels), g.random_act("int8"))
    y = ops.conv2d(g, x, channels, (1, 1))
    g.io([x], [ops.binary(g, "MUL", y, x), ops.binary(g, "ADD", y, x)])
    return g.build()


def gated_sum(hw: tuple[int, int] = (8, 8), channels: int = 24) -> bytes:
    """Three 1x1 convolutions of one input; the sum of two through a LOGISTIC, times the third, then
    a convolution: as in a recurrent gate, the ADD, the LOGISTIC and the MUL all ride on one pass."""
    g = GraphBuilder(np.random.default_rng(3), "gated sum")
    x = g.activation((1, *hw, 8), g.random_act("int8"))
    a, b, m = (ops.conv2d(g, x, channels, (1, 1)) for _ in range(3))
    gate = ops.binary(g, "MUL", ops.unary(g, ops.binary(g, "ADD", a, b), "LOGISTIC"), m)
    g.io([x], [ops.conv2d(g, gate, 16, (1, 1))])
    return g.build()
