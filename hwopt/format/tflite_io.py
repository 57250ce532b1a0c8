"""Read a TFLite flatbuffer into the hwopt IR and write it back, losslessly and atomically.

Reading verifies the flatbuffer first (hwopt.format.verify), then unpacks the object-API tree;
constant tensors become zero-copy numpy views of the file bytes. Writing packs the tree
again with every buffer 16-byte aligned (as the TFLite converter does, so kernels may
read weights with aligned loads) and, for models that keep buffers after the flatbuffer
(the >2 GB layout), appends them the same way.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np

from hwopt._generated.tflite.Buffer import BufferT
from hwopt._generated.tflite.BuiltinOperator import BuiltinOperator
from hwopt._generated.tflite.DimensionType import DimensionType
from hwopt._generated.tflite.Model import Model as FbModel
from hwopt._generated.tflite.Model import ModelT
from hwopt.errors import ModelFormatError, OutputError
from hwopt.fileio import atomic_write_bytes
from hwopt.format.verify import verify_tflite
from hwopt.ir import Buffer, DType, Model, Operator, Quantization, Subgraph, Tensor

log = logging.getLogger(__name__)

BUILTIN_NAMES: dict[int, str] = {
    v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)
}
BUILTIN_CODES: dict[str, int] = {v: k for k, v in BUILTIN_NAMES.items()}
CUSTOM = BuiltinOperator.CUSTOM
PLACEHOLDER_FOR_GREATER_OP_CODES = 127
MAX_DIM = 1 << 31  # absurd beyond this: no device tensor has a 2^31-long axis
MAX_ELEMENTS = 1 << 40
ALIGN = 16


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _ints(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    return tuple(int(v) for v in value)


def op_name(code: Any) -> tuple[str, int, str | None]:
    """Resolve an OperatorCode: (name, builtin code, custom code).

    Schema 3a moved the code to `builtin_code` (int32) and kept `deprecated_builtin_code`
    (int8) for old readers; the larger of the two is the real one.
    """
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    custom = _text(code.customCode) if code.customCode is not None else None
    if builtin == CUSTOM:
        return f"CUSTOM:{custom or '?'}", builtin, custom
    return BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"), builtin, custom


def _quantization(raw: Any, shape: tuple[int, ...], name: str) -> Quantization | None:
    if raw is None or raw.scale is None or len(raw.scale) == 0:
        return None
    scale = np.asarray(raw.scale, dtype=np.float32)
    zp = np.asarray(raw.zeroPoint if raw.zeroPoint is not None else [0] * scale.size, dtype=np.int64)
    if zp.size not in (scale.size, 1) and zp.size:
        raise ModelFormatError(f"tensor {name!r}: {scale.size} scales but {zp.size} zero points")
    if zp.size == 0:
        zp = np.zeros(scale.size, dtype=np.int64)
    qdim = int(raw.quantizedDimension)
    if scale.size > 1 and not (0 <= qdim < len(shape) and shape[qdim] == scale.size):
        # Some converters leave the filter's quantized_dimension on the 1-D bias; the
        # per-axis scales still belong to the one axis whose length they match.
        axes = [d for d, n in enumerate(shape) if n == scale.size]
        if len(axes) != 1:
            raise ModelFormatError(
                f"tensor {name!r}: {scale.size} per-axis scales do not match quantized_dimension {qdim} of shape {list(shape)}"
            )
        qdim = axes[0]
    return Quantization(
        scale=scale,
        zero_point=zp if zp.size == scale.size else np.repeat(zp, scale.size),
        quantized_dimension=qdim,
        min=None if raw.min is None else np.asarray(raw.min, dtype=np.float32),
        max=None if raw.max is None else np.asarray(raw.max, dtype=np.float32),
    )


def _index_vector(union: Any) -> np.ndarray:
    values = getattr(union, "values", None)
    return np.zeros(0, dtype=np.int64) if values is None else np.asarray(values, dtype=np.int64)


def densify(values: np.ndarray, sparsity: Any, shape: tuple[int, ...], name: str = "") -> np.ndarray:
    """Expand a TFLite sparse tensor (SparsityParameters) to its dense array.

    Walks the traversal order level by level with numpy (DENSE levels enumerate, CSR levels
    follow segments/indices), then folds block dimensions back into their original axes.
    """
    order = _ints(sparsity.traversalOrder)
    block_map = _ints(sparsity.blockMap)
    dims = sparsity.dimMetadata or []
    rank = len(shape)
    if len(order) != len(dims) or len(order) != rank + len(block_map) or sorted(order) != list(range(len(order))):
        raise ModelFormatError(f"tensor {name!r}: inconsistent sparsity parameters")
    pos = np.zeros(1, dtype=np.int64)
    coords: list[np.ndarray] = []
    for meta in dims:
        if meta.format == DimensionType.DENSE:
            size = int(meta.denseSize)
            if size < 0 or pos.size * max(size, 1) > MAX_ELEMENTS // 1024:
                raise ModelFormatError(f"tensor {name!r}: absurd dense size in sparsity parameters")
            coords = [np.repeat(c, size) for c in coords]
            coords.append(np.tile(np.arange(size, dtype=np.int64), pos.size))
            pos = (pos[:, None] * size + np.arange(size, dtype=np.int64)).ravel()
        else:
            seg = _index_vector(meta.arraySegments)
            idx = _index_vector(meta.arrayIndices)
            if pos.size and (pos.max() + 1 >= seg.size):
                raise ModelFormatError(f"tensor {name!r}: sparse segment index out of range")
            starts, ends = seg[pos], seg[pos + 1]
            counts = ends - starts
            if np.any(counts < 0) or (ends.size and ends.max() > idx.size):
                raise ModelFormatError(f"tensor {name!r}: malformed sparse segments")
            total = int(counts.sum())
            offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
            new_pos = np.arange(total, dtype=np.int64) + offsets
            coords = [np.repeat(c, counts) for c in coords]
            coords.append(idx[new_pos])
            pos = new_pos
    if pos.size != values.size:
        raise ModelFormatError(f"tensor {name!r}: {values.size} stored values, sparsity expects {pos.size}")
    level_of = {dim: lvl for lvl, dim in enumerate(order)}
    full = []
    for d in range(rank):
        c = coords[level_of[d]]
        for k, bd in enumerate(block_map):
            if bd == d:
                lvl = level_of[rank + k]
                c = c * int(dims[lvl].denseSize) + coords[lvl]
        if c.size and (c.min() < 0 or c.max() >= shape[d]):
            raise ModelFormatError(f"tensor {name!r}: sparse index out of range")
        full.append(c)
    dense = np.zeros(shape, dtype=values.dtype)
    if values.size:
        dense[tuple(full)] = values
    return dense


def _constant(tensor_raw: Any, buf: Buffer, shape: tuple[int, ...], dtype: DType, name: str) -> tuple[np.ndarray | None, bool]:
    if buf.data is None or buf.data.size == 0:
        return None, False
    np_dtype = dtype.numpy
    if np_dtype is None:
        return None, False  # strings / packed int4: kept as bytes, not analysed
    if buf.data.size % np_dtype.itemsize:
        raise ModelFormatError(f"tensor {name!r}: buffer of {buf.data.size} bytes is not a whole number of {dtype.label}")
    values = buf.data.view(np_dtype) if buf.data.size else buf.data
    if tensor_raw.sparsity is not None:
        return densify(values, tensor_raw.sparsity, shape, name), True
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if values.size != n:
        raise ModelFormatError(f"tensor {name!r}: shape {list(shape)} needs {n} elements, buffer holds {values.size}")
    return values.reshape(shape), False


def _load_bytes(source: str | os.PathLike[str] | bytes) -> tuple[bytes, Path | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    path = Path(source)
    if not path.exists():
        raise ModelFormatError(f"no such file: {path}")
    if path.is_dir():
        raise ModelFormatError(f"is a directory, not a model file: {path}")
    try:
        return path.read_bytes(), path
    except OSError as exc:
        raise ModelFormatError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_model(source: str | os.PathLike[str] | bytes) -> Model:
    """Parse a .tflite file (path or bytes) into a Model; ModelFormatError if it is not sound."""
    data, path = _load_bytes(source)
    verify_tflite(data)
    try:
        raw = ModelT.InitFromObj(FbModel.GetRootAs(data, 0))
    except (IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError, struct.error) as exc:
        raise ModelFormatError(f"corrupt flatbuffer: {exc}") from None
    buffers: list[Buffer] = []
    external = False
    for i, b in enumerate(raw.buffers or []):
        off, size = int(b.offset), int(b.size)
        if off > 1:
            if off + size > len(data):
                raise ModelFormatError(f"buffer {i}: offset {off} + size {size} is past the end of the file ({len(data)} bytes)")
            view = np.frombuffer(data, dtype=np.uint8, count=size, offset=off)
            buffers.append(Buffer(i, view, raw=b, external=True))
            external = True
        else:
            arr = b.data if isinstance(b.data, np.ndarray) else (None if b.data is None else np.asarray(b.data, np.uint8))
            buffers.append(Buffer(i, arr, raw=b))
    codes = [op_name(c) for c in (raw.operatorCodes or [])]
    subgraphs: list[Subgraph] = []
    for si, sg in enumerate(raw.subgraphs or []):
        tensors: list[Tensor] = []
        for ti, t in enumerate(sg.tensors or []):
            name = _text(t.name)
            shape = _ints(t.shape)
            if any(d < 0 or d >= MAX_DIM for d in shape) or (shape and int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS):
                raise ModelFormatError(f"tensor {ti} {name!r}: absurd shape {list(shape)}")
            dtype = DType.parse(int(t.type))
            if not 0 <= int(t.buffer) < max(len(buffers), 1):
                raise ModelFormatError(f"tensor {ti} {name!r}: buffer index {t.buffer} out of range (model has {len(buffers)} buffers)")
            value: np.ndarray | None = None
            sparse = False
            if buffers:
                value, sparse = _constant(t, buffers[int(t.buffer)], shape, dtype, name)
            tensors.append(Tensor(
                index=ti, name=name, shape=shape, dtype=dtype, buffer=int(t.buffer),
                quantization=_quantization(t.quantization, shape, name),
                is_variable=bool(t.isVariable),
                shape_signature=_ints(t.shapeSignature) if t.shapeSignature is not None else None,
                sparse=sparse, data=value, raw=t,
            ))
            tensors[-1].read_quantization = tensors[-1].quantization
        ops: list[Operator] = []
        for oi, o in enumerate(sg.operators or []):
            if not 0 <= int(o.opcodeIndex) < len(codes):
                raise ModelFormatError(f"subgraph {si} operator {oi}: opcode index {o.opcodeIndex} out of range")
            name, builtin, custom = codes[int(o.opcodeIndex)]
            ins, outs = _ints(o.inputs), _ints(o.outputs)
            for k in ins + outs:
                if k >= len(tensors) or k < -1:
                    raise ModelFormatError(f"subgraph {si} operator {oi} ({name}): tensor index {k} out of range")
            ops.append(Operator(oi, int(o.opcodeIndex), name, builtin, ins, outs, custom, raw=o))
        sg_ins, sg_outs = _ints(sg.inputs), _ints(sg.outputs)
        for k in sg_ins + sg_outs:
            if not 0 <= k < len(tensors):
                raise ModelFormatError(f"subgraph {si}: input/output tensor index {k} out of range")
        subgraphs.append(Subgraph(si, _text(sg.name), tensors, ops, sg_ins, sg_outs, raw=sg))
    metadata: dict[str, bytes] = {}
    for m in raw.metadata or []:
        idx = int(m.buffer)
        if not 0 <= idx < len(buffers):
            raise ModelFormatError(f"metadata {_text(m.name)!r}: buffer index {idx} out of range")
        meta = buffers[idx].data
        metadata[_text(m.name)] = b"" if meta is None else meta.tobytes()
    sigs = tuple(_text(s.signatureKey) for s in (raw.signatureDefs or []))
    if not subgraphs:
        raise ModelFormatError("model has no subgraphs")
    return Model(
        version=int(raw.version), description=_text(raw.description), subgraphs=subgraphs,
        buffers=buffers, metadata=metadata, signature_keys=sigs, path=path,
        file_bytes=len(data), external_buffers=external, raw=raw, source=data,
    )


class _AlignedBufferT(BufferT):  # type: ignore[misc]
    """BufferT whose data vector is 16-byte aligned (the generated Pack aligns to 1)."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - generated API name
        data_off = None
        if self.data is not None and len(self.data):
            payload = self.data.tobytes() if isinstance(self.data, np.ndarray) else bytes(self.data)
            builder.StartVector(1, len(payload), ALIGN)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            data_off = builder.EndVector(len(payload))
        from hwopt._generated.tflite import Buffer as FbBuffer

        FbBuffer.BufferStart(builder)
        if data_off is not None:
            FbBuffer.BufferAddData(builder, data_off)
        if self.offset:
            FbBuffer.BufferAddOffset(builder, self.offset)
        if self.size:
            FbBuffer.BufferAddSize(builder, self.size)
        return int(FbBuffer.BufferEnd(builder))


def _sync(model: Model) -> None:
    """Copy the fields passes may change from the IR back into the object-API tree."""
    raw = model.raw
    raw.buffers = []
    for b in model.buffers:
        nb = _AlignedBufferT()
        nb.data = b.data if (b.data is not None and b.data.size and not b.external) else None
        nb.offset, nb.size = 0, 0
        raw.buffers.append(nb)
    for sg in model.subgraphs:
        for t in sg.tensors:
            t.raw.buffer = t.buffer
            if not t.sparse and t.raw.sparsity is not None:
                t.raw.sparsity = None
            q = t.quantization
            # Only quantization a pass replaced is written back: what was read stays as it
            # was stored (some converters store a quantized_dimension we normalise on read).
            if q is not None and t.raw.quantization is not None and q is not t.read_quantization:
                t.raw.quantization.scale = np.asarray(q.scale, dtype=np.float32)
                t.raw.quantization.zeroPoint = np.asarray(q.zero_point, dtype=np.int64)
                t.raw.quantization.quantizedDimension = int(q.quantized_dimension)


def _pack(raw: ModelT) -> bytes:
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def serialize(model: Model) -> bytes:
    """The model as .tflite bytes; identical input and IR give identical bytes."""
    _sync(model)
    ext = [b for b in model.buffers if b.external and b.data is not None and b.data.size]
    if not ext:
        return _pack(model.raw)
    # >2 GB layout: buffers follow the flatbuffer at 16-byte aligned absolute offsets. Pack
    # once with placeholder offsets (fixed-size scalars, so the size does not change), then
    # again with the real ones.
    for b in ext:
        model.raw.buffers[b.index].offset = 2
        model.raw.buffers[b.index].size = b.nbytes
    head = len(_pack(model.raw))
    pos = head + (-head) % ALIGN
    layout = []
    for b in ext:
        model.raw.buffers[b.index].offset = pos
        layout.append((pos, b))
        pos += b.nbytes + (-b.nbytes) % ALIGN
    out = bytearray(_pack(model.raw))
    if len(out) != head:  # pragma: no cover - guarded by the fixed-width argument above
        raise OutputError("internal error: flatbuffer size changed between passes")
    for off, b in layout:
        out.extend(b"\0" * (off - len(out)))
        assert b.data is not None
        out.extend(b.data.tobytes())
    return bytes(out)


def write_model(model: Model, path: str | os.PathLike[str], *, protect: tuple[Path, ...] = ()) -> Path:
    """Serialize and write atomically; never overwrites the model's own input file."""
    guard = protect + ((model.path,) if model.path is not None else ())
    data = serialize(model)
    return atomic_write_bytes(path, data, protect=guard)
