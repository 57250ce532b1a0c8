"""Assemble valid quantized TFLite graphs operator by operator (flatbuffer object API, no TensorFlow).

`GraphBuilder` holds one subgraph; each method adds one operator with the quantization the
TFLite reference kernels require (fixed output scales of LOGISTIC/TANH/SOFTMAX, equal input and
output quantization of pooling, padding and resizing, zero points of 0 for int16) and returns the
output tensor. Weight values come from a `WeightStyle` so that sparse and clustered weights appear.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np

from hwopt._generated.tflite.Buffer import BufferT
from hwopt._generated.tflite.BuiltinOperator import BuiltinOperator
from hwopt._generated.tflite.BuiltinOptions import BuiltinOptions
from hwopt._generated.tflite.Model import ModelT
from hwopt._generated.tflite.Operator import OperatorT
from hwopt._generated.tflite.OperatorCode import OperatorCodeT
from hwopt._generated.tflite.QuantizationParameters import QuantizationParametersT
from hwopt._generated.tflite.SubGraph import SubGraphT
from hwopt._generated.tflite.Tensor import TensorT
from hwopt._generated.tflite.TensorType import TensorType

ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU6": 3}
PADDING = {"SAME": 0, "VALID": 1}
_DEPRECATED_CODE_LIMIT = 127  # builtin codes above this are stored only in the new field


@dataclass(frozen=True)
class Act:
    """Activation quantization: dtype ("int8" | "int16"), scale and zero point."""

    dtype: str
    scale: float
    zero_point: int


@dataclass(frozen=True)
class WeightStyle:
    """How weight values are drawn: dense, with a zero fraction, 2:4 along input channels, or clustered."""

    zeros: float = 0.0  # fraction of weights forced to zero (unstructured)
    sparse_2_4: bool = False  # two of every four consecutive input-channel weights are zero
    clusters: int = 0  # > 0: weights take at most this many distinct values
    per_channel: bool = True


def _quant(scale: np.ndarray | float, zero_point: np.ndarray | int, axis: int = 0) -> QuantizationParametersT:
    q = QuantizationParametersT()
    q.scale = np.atleast_1d(np.asarray(scale, dtype=np.float32))
    zp = np.atleast_1d(np.asarray(zero_point, dtype=np.int64))
    q.zeroPoint = np.repeat(zp, q.scale.size) if zp.size == 1 and q.scale.size > 1 else zp
    q.quantizedDimension = axis
    return q


def _options(name: str, **fields: Any) -> tuple[int, Any]:
    cls = getattr(importlib.import_module(f"hwopt._generated.tflite.{name}"), f"{name}T")  # lazy: bindings by name
    obj = cls()
    for k, v in fields.items():
        setattr(obj, k, v)
    return getattr(BuiltinOptions, name), obj


class GraphBuilder:
    """One subgraph under construction; `build()` packs the model (file identifier TFL3)."""

    def __init__(self, rng: np.random.Generator, description: str = "hwopt generated model") -> None:
        self.rng = rng
        self.model = ModelT()
        self.model.version = 3
        self.model.description = description
        self.model.buffers = [BufferT()]
        self.model.operatorCodes = []
        self.sg = SubGraphT()
        self.sg.tensors, self.sg.operators, self.sg.inputs, self.sg.outputs = [], [], [], []
        self.model.subgraphs = [self.sg]
        self._codes: dict[str, int] = {}
        self.shapes: list[tuple[int, ...]] = []
        self.acts: dict[int, Act] = {}

    # --- tensors -------------------------------------------------------------------------------
    def _tensor(self, shape: tuple[int, ...], ttype: int, quant: QuantizationParametersT | None,
                data: np.ndarray | None = None, name: str | None = None) -> int:
        t = TensorT()
        t.name = name or f"t{len(self.sg.tensors)}"
        t.shape = np.asarray(shape, dtype=np.int32)
        t.type = ttype
        t.quantization = quant
        t.buffer = 0
        if data is not None:
            b = BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.model.buffers.append(b)
            t.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(t)
        self.shapes.append(tuple(shape))
        return len(self.sg.tensors) - 1

    def activation(self, shape: tuple[int, ...], act: Act, name: str | None = None) -> int:
        """A feature-map tensor with activation quantization."""
        ttype = TensorType.INT16 if act.dtype == "int16" else TensorType.INT8
        i = self._tensor(shape, ttype, _quant(act.scale, act.zero_point), name=name)
        self.acts[i] = act
        return i

    def random_act(self, dtype: str) -> Act:
        """Activation quantization as a converter would choose it for a random value range."""
        if dtype == "int16":
            return Act("int16", float(self.rng.uniform(1e-4, 1e-3)), 0)
        return Act("int8", float(self.rng.uniform(0.01, 0.1)), int(self.rng.integers(-128, 64)))

    def const_int32(self, values: list[int] | np.ndarray) -> int:
        arr = np.asarray(values, dtype=np.int32)
        return self._tensor(arr.shape, TensorType.INT32, None, arr)

    def constant(self, data: np.ndarray, scale: np.ndarray | float, axis: int = 0, name: str | None = None) -> int:
        """A constant tensor holding `data` as given (int8/16/32/64), symmetric quantization along `axis`."""
        ttype = {"int8": TensorType.INT8, "int16": TensorType.INT16, "int32": TensorType.INT32,
                 "int64": TensorType.INT64}[np.dtype(data.dtype).name]
        return self._tensor(tuple(data.shape), ttype, _quant(scale, 0, axis), data, name=name)

    def const_act(self, shape: tuple[int, ...], act: Act) -> int:
        """A constant feature-map operand (e.g. the broadcast side of an elementwise op)."""
        lo, hi = (-32768, 32767) if act.dtype == "int16" else (-128, 127)
        data = self.rng.integers(lo, hi + 1, size=shape).astype(np.int16 if act.dtype == "int16" else np.int8)
        ttype = TensorType.INT16 if act.dtype == "int16" else TensorType.INT8
        i = self._tensor(shape, ttype, _quant(act.scale, act.zero_point), data)
        self.acts[i] = act
        return i

    def weights(self, shape: tuple[int, ...], axis: int, in_axis: int, style: WeightStyle) -> tuple[int, np.ndarray]:
        """An int8 weight tensor (symmetric, per-channel along `axis` or per-tensor) and its scales."""
        w = np.clip(np.round(self.rng.normal(0.0, 40.0, size=shape)), -127, 127)
        if style.clusters:
            centres = np.sort(self.rng.uniform(-127, 127, size=style.clusters))
            w = centres[np.abs(w[..., None] - centres).argmin(axis=-1)]
            w = np.round(w)
        if style.zeros:
            w = np.where(self.rng.random(shape) < style.zeros, 0, w)
        if style.sparse_2_4 and shape[in_axis] >= 4:
            moved = np.moveaxis(w, in_axis, -1)
            n = moved.shape[-1] // 4 * 4
            groups = moved[..., :n].reshape(*moved.shape[:-1], -1, 4)
            order = np.argsort(np.abs(groups) + self.rng.random(groups.shape) * 1e-3, axis=-1)
            np.put_along_axis(groups, order[..., :2], 0, axis=-1)
            moved[..., :n] = groups.reshape(*moved.shape[:-1], n)
            w = np.moveaxis(moved, -1, in_axis)
        q = w.astype(np.int8)
        n_scales = shape[axis] if style.per_channel else 1
        scales = self.rng.uniform(0.002, 0.02, size=n_scales).astype(np.float32)
        i = self._tensor(shape, TensorType.INT8, _quant(scales, 0, axis if style.per_channel else 0), q)
        return i, scales

    def bias(self, n: int, in_act: Act, w_scales: np.ndarray) -> int:
        scales = (in_act.scale * w_scales.astype(np.float64)).astype(np.float32)  # one per weight scale
        if in_act.dtype == "int16":
            data64 = self.rng.integers(-(2**20), 2**20, size=n).astype(np.int64)
            return self._tensor((n,), TensorType.INT64, _quant(scales, 0), data64)
        data = self.rng.integers(-(2**12), 2**12, size=n).astype(np.int32)
        return self._tensor((n,), TensorType.INT32, _quant(scales, 0), data)

    # --- operators -----------------------------------------------------------------------------
    def op(self, name: str, inputs: list[int], outputs: list[int], options: tuple[int, Any] | None = None,
           version: int = 1) -> None:
        """Append an operator; `version` is its operator code's version (first use of the code wins)."""
        if name not in self._codes:
            c = OperatorCodeT()
            c.builtinCode = getattr(BuiltinOperator, name)
            c.deprecatedBuiltinCode = min(c.builtinCode, _DEPRECATED_CODE_LIMIT)
            c.version = version
            self.model.operatorCodes.append(c)
            self._codes[name] = len(self.model.operatorCodes) - 1
        o = OperatorT()
        o.opcodeIndex = self._codes[name]
        o.inputs = np.asarray(inputs, dtype=np.int32)
        o.outputs = np.asarray(outputs, dtype=np.int32)
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = options
        self.sg.operators.append(o)

    def io(self, inputs: list[int], outputs: list[int]) -> None:
        self.sg.inputs = np.asarray(inputs, dtype=np.int32)
        self.sg.outputs = np.asarray(outputs, dtype=np.int32)

    def build(self) -> bytes:
        builder = flatbuffers.Builder(1024)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def conv_out(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    """Output extent of a convolution or pooling window along one axis (TFLite's rule)."""
    eff = (k - 1) * dilation + 1
    return -(-size // stride) if padding == "SAME" else (size - eff) // stride + 1


def options(name: str, **fields: Any) -> tuple[int, Any]:
    """(BuiltinOptions type, options object) for an options table by schema name."""
    return _options(name, **fields)
