"""hwopt's in-memory model of a TFLite file: Model / Subgraph / Operator / Tensor / Buffer.

The IR wraps the flatbuffer object-API tree (`raw`) so that every field hwopt does not
model (operator options, signature defs, metadata, newer schema fields) is written back
unchanged, while the fields passes work on are typed: resolved op names, shapes, dtypes,
quantization and constant data as numpy views over the file bytes (no copy on read).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hwopt.errors import ModelFormatError, PassError

VELA_CUSTOM_CODE = "ethos-u"


class RawSource(Protocol):
    """Where a node read from a file gets its object-API form when first asked for it."""

    def unpack(self, node: Any) -> Any:
        """Unpack (and remember on `node`) the object-API form of `node`."""

    def options(self, node: Any) -> tuple[int, Any]:
        """An operator's (builtin options type, options object), without unpacking the rest of it."""


class _LazyRaw:
    """`node.raw`, the object-API form the writer packs, unpacked from the file on first use.

    Reading a model builds only the typed IR; commands that never write (audit, encode,
    estimate) never pay for unpacking every table of the file.
    """

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return None  # the dataclass default
        raw = obj.__dict__.get("_raw")
        if raw is None:
            source = obj.__dict__.get("_source")
            if source is not None:
                raw = source.unpack(obj)
        return raw

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_raw"] = None if isinstance(value, _LazyRaw) else value


def attach_source(node: Any, source: RawSource) -> None:
    """Let `node.raw` be unpacked from `source` when first used (called by the reader)."""
    node.__dict__["_source"] = source


class DType(enum.IntEnum):
    """TFLite TensorType values (schema enum), with their numpy equivalents below."""

    FLOAT32 = 0
    FLOAT16 = 1
    INT32 = 2
    UINT8 = 3
    INT64 = 4
    STRING = 5
    BOOL = 6
    INT16 = 7
    COMPLEX64 = 8
    INT8 = 9
    FLOAT64 = 10
    COMPLEX128 = 11
    UINT64 = 12
    RESOURCE = 13
    VARIANT = 14
    UINT32 = 15
    UINT16 = 16
    INT4 = 17
    BFLOAT16 = 18
    INT2 = 19
    UINT4 = 20
    FLOAT8_E4M3FN = 21
    FLOAT8_E5M2 = 22

    @property
    def numpy(self) -> np.dtype[Any] | None:
        """The numpy dtype holding one element, or None for packed/opaque types."""
        return _NUMPY_DTYPES.get(self)

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def is_float(self) -> bool:
        return self in (DType.FLOAT32, DType.FLOAT16, DType.FLOAT64, DType.BFLOAT16,
                        DType.FLOAT8_E4M3FN, DType.FLOAT8_E5M2)

    @property
    def is_integer(self) -> bool:
        return self in (DType.INT8, DType.UINT8, DType.INT16, DType.INT32, DType.INT64,
                        DType.UINT16, DType.UINT32, DType.UINT64, DType.INT4, DType.UINT4, DType.INT2)

    @classmethod
    def parse(cls, value: int) -> DType:
        try:
            return cls(value)
        except ValueError:
            raise ModelFormatError(f"unknown tensor type {value}") from None


_NUMPY = {
    DType.FLOAT32: "<f4", DType.FLOAT16: "<f2", DType.INT32: "<i4", DType.UINT8: "u1",
    DType.INT64: "<i8", DType.BOOL: "?", DType.INT16: "<i2", DType.COMPLEX64: "<c8",
    DType.INT8: "i1", DType.FLOAT64: "<f8", DType.COMPLEX128: "<c16", DType.UINT64: "<u8",
    DType.UINT32: "<u4", DType.UINT16: "<u2",
}
_NUMPY_DTYPES = {k: np.dtype(v) for k, v in _NUMPY.items()}  # built once: np.dtype() is slow in hot loops


@dataclass
class Quantization:
    """Affine quantization of a tensor: real = scale * (q - zero_point)."""

    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int = 0
    min: np.ndarray | None = None
    max: np.ndarray | None = None

    @property
    def per_channel(self) -> bool:
        """True when scales vary along `quantized_dimension` (per-axis quantization)."""
        return int(self.scale.size) > 1

    @property
    def granularity(self) -> str:
        return "per-channel" if self.per_channel else "per-tensor"

    def zero_points_along(self, shape: tuple[int, ...]) -> np.ndarray:
        """Zero points broadcastable against a tensor of `shape` (per-axis aware)."""
        zp = self.zero_point.astype(np.int64)
        if zp.size <= 1 or not shape:
            return np.full((1,) * max(len(shape), 1), int(zp[0]) if zp.size else 0, dtype=np.int64)
        view = [1] * len(shape)
        view[self.quantized_dimension] = zp.size
        return zp.reshape(view)


@dataclass(eq=False)
class Buffer:
    """A constant data buffer: `data` is a read-only uint8 view of the file, or new bytes."""

    index: int
    data: np.ndarray | None
    raw: Any = field(repr=False, default=_LazyRaw())
    external: bool = False  # stored after the flatbuffer (offset/size, the >2 GB layout)

    @property
    def nbytes(self) -> int:
        return 0 if self.data is None else int(self.data.size)


@dataclass(eq=False)
class Tensor:
    """One tensor of a subgraph, with its constant value when it has one."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: DType
    buffer: int
    quantization: Quantization | None
    is_variable: bool = False
    shape_signature: tuple[int, ...] | None = None
    sparse: bool = False  # stored in the TFLite sparse format; `data` is densified
    data: np.ndarray | None = field(default=None, repr=False)
    raw: Any = field(default=_LazyRaw(), repr=False)
    read_quantization: Quantization | None = field(default=None, repr=False)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def elements(self) -> int:
        return int(math.prod(self.shape))  # exact Python ints (the reader bounds it by 2^40)


@dataclass(eq=False)
class Operator:
    """One operator: resolved op name ('CONV_2D', 'CUSTOM:ethos-u') and tensor indices."""

    index: int
    opcode_index: int
    op: str
    builtin_code: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    custom_code: str | None = None
    raw: Any = field(default=_LazyRaw(), repr=False)

    @property
    def options(self) -> Any:
        """The builtin options object (e.g. Conv2DOptionsT), or None."""
        return self._options()[1]

    @property
    def options_type(self) -> int:
        """The builtin_options union type the operator declares (0: none)."""
        return self._options()[0]

    def _options(self) -> tuple[int, Any]:
        # Before `raw` is unpacked, the options table alone is read from the file (the whole
        # operator costs ~3x more); unpacking `raw` later keeps this same options object.
        d = self.__dict__
        raw = d.get("_raw")
        if raw is None:
            read = d.get("_read_options")
            if read is not None:
                return read  # type: ignore[no-any-return]
            source = d.get("_source")
            if source is not None:
                d["_read_options"] = read = source.options(self)
                return read  # type: ignore[no-any-return]
            raw = self.raw
        if raw is None:
            return 0, None
        return int(getattr(raw, "builtinOptionsType", 0) or 0), raw.builtinOptions


@dataclass(eq=False)
class Subgraph:
    """One subgraph: its tensors, its operators in execution order, and its input and output tensor indices."""

    index: int
    name: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    raw: Any = field(default=_LazyRaw(), repr=False)

    def tensor(self, i: int) -> Tensor | None:
        """The tensor at index i, or None for an omitted optional input (-1)."""
        return None if i < 0 else self.tensors[i]


@dataclass(eq=False)
class Model:
    """A whole TFLite model; `raw` is the object-API tree the writer packs back."""

    version: int
    description: str
    subgraphs: list[Subgraph]
    buffers: list[Buffer]
    metadata: dict[str, bytes]
    signature_keys: tuple[str, ...]
    path: Path | None = None
    file_bytes: int = 0
    external_buffers: bool = False
    raw: Any = field(default=_LazyRaw(), repr=False)
    source: bytes = field(default=b"", repr=False)  # the file bytes the views point into

    @property
    def vela_compiled(self) -> bool:
        """True for a model Vela already compiled: it holds a CUSTOM `ethos-u` op."""
        return any(op.custom_code == VELA_CUSTOM_CODE for sg in self.subgraphs for op in sg.operators)

    def operators(self) -> list[tuple[Subgraph, Operator]]:
        return [(sg, op) for sg in self.subgraphs for op in sg.operators]

    def set_tensor_data(self, sg: Subgraph, tensor: Tensor, values: np.ndarray) -> None:
        """Give a constant tensor new values, in a buffer of its own (never shared)."""
        np_dtype = tensor.dtype.numpy
        if np_dtype is None or tensor.data is None:
            raise PassError(f"tensor {tensor.name!r} is not a constant of a plain numeric type")
        arr = np.ascontiguousarray(values, dtype=np_dtype).reshape(tensor.data.shape)
        shared = sum(
            1 for g in self.subgraphs for t in g.tensors if t.buffer == tensor.buffer and t.data is not None
        )
        blob = arr.tobytes()  # one immutable copy: the buffer and the tensor are read-only views of it
        raw_bytes = np.frombuffer(blob, dtype=np.uint8)
        if shared > 1 or tensor.sparse:
            from hwopt._generated.tflite.Buffer import BufferT  # lazy: object-API bindings cost ~30 ms to import

            buf = Buffer(index=len(self.buffers), data=raw_bytes, raw=BufferT(), external=self.external_buffers)
            self.buffers.append(buf)
            tensor.buffer = buf.index
            tensor.sparse = False
        else:
            self.buffers[tensor.buffer].data = raw_bytes
        tensor.data = np.frombuffer(blob, dtype=np_dtype).reshape(arr.shape)
