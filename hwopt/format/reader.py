"""Read a TFLite file into the hwopt IR: verified first, then only what the IR models.

Tensors, operators and buffers are read in place from the file bytes (`fbview`); constant
data are zero-copy numpy views. The object-API tree the writer packs (`node.raw`) is
unpacked only when a command asks for it, node by node (an operator's options) or whole
(writing the model). Every size the file declares is checked against the file's own size
before anything is allocated, so a small hostile file cannot exhaust memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hwopt._generated.tflite.BuiltinOperator import BuiltinOperator
from hwopt.errors import ModelFormatError
from hwopt.fileio import read_input_file
from hwopt.format.fbview import Table, root, slots
from hwopt.format.sparse import densify
from hwopt.format.verify import verify_tflite
from hwopt.ir import Buffer, DType, Model, Operator, Quantization, Subgraph, Tensor, attach_source

BUILTIN_NAMES: dict[int, str] = {
    v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)
}
BUILTIN_CODES: dict[str, int] = {v: k for k, v in BUILTIN_NAMES.items()}
CUSTOM = BuiltinOperator.CUSTOM
MAX_DIM = 1 << 31  # absurd beyond this: no device tensor has a 2^31-long axis
MAX_ELEMENTS = 1 << 40
# Densified sparse tensors of one model may take this many times the file, plus a floor.
DENSIFY_FACTOR, DENSIFY_FLOOR = 4, 64 << 20

_M, _SG, _T, _OP = slots("Model"), slots("SubGraph"), slots("Tensor"), slots("Operator")
_OC, _BUF, _Q, _META, _SIG = (slots(n) for n in ("OperatorCode", "Buffer", "QuantizationParameters", "Metadata",
                                                 "SignatureDef"))


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def op_name(code: Any) -> tuple[str, int, str | None]:
    """Resolve an OperatorCode (object-API form): (name, builtin code, custom code).

    Schema 3a moved the code to `builtin_code` (int32) and kept `deprecated_builtin_code`
    (int8) for old readers; the larger of the two is the real one.
    """
    return _resolve(int(code.builtinCode), int(code.deprecatedBuiltinCode),
                    _text(code.customCode) if code.customCode is not None else None)


def _resolve(builtin_code: int, deprecated: int, custom: str | None) -> tuple[str, int, str | None]:
    builtin = max(builtin_code, deprecated)
    if builtin == CUSTOM:
        return f"CUSTOM:{custom or '?'}", builtin, custom
    return BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"), builtin, custom


def load_bytes(source: str | os.PathLike[str] | bytes) -> tuple[bytes, Path | None]:
    """The bytes of a model (a path to a regular file within the size limit, or bytes)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    return read_input_file(source), Path(source)


class _Budget:
    """Python objects and dense bytes the reader may create, relative to the file size.

    A sound file stores every vector element at least once, so a file whose tables alias
    each other (one tensor list shared by 200 subgraphs) is caught before it is expanded.
    """

    def __init__(self, size: int) -> None:
        self.items = size + 4096
        self.dense = DENSIFY_FACTOR * size + DENSIFY_FLOOR
        self.size = size

    def take(self, n: int) -> None:
        self.items -= n
        if self.items < 0:
            raise ModelFormatError(f"the file's tables alias one another: they declare more structure than its "
                                   f"{self.size:,} bytes can hold")


class _FileSource:
    """The verified file bytes the IR was read from; unpacks object-API nodes on demand."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.model: Model | None = None
        self.nodes: list[tuple[Any, int]] = []  # (IR node, table position) of tensors, operators, buffers

    def unpack(self, node: Any) -> Any:
        # The object-API classes import every options table of the schema (~30 ms): only
        # commands that need a node's full form (options, writing) pay for them.
        from hwopt._generated.tflite.Buffer import BufferT  # lazy: object-API bindings, only when unpacked
        from hwopt._generated.tflite.Operator import OperatorT  # lazy: object-API bindings, only when unpacked
        from hwopt._generated.tflite.Tensor import TensorT  # lazy: object-API bindings, only when unpacked

        if isinstance(node, (Model, Subgraph)):
            self._tree()
            return node.__dict__["_raw"]
        pos = node.__dict__["_pos"]
        kind = {Tensor: TensorT, Operator: OperatorT, Buffer: BufferT}[type(node)]
        node.raw = _keep_options(node, kind.InitFromBuf(self.data, pos))
        return node.__dict__["_raw"]

    def options(self, node: Any) -> tuple[int, Any]:
        from hwopt.format.options import read_options  # lazy: flatbuffers and the options classes, see unpack

        return read_options(self.data, node.__dict__["_pos"])

    def _tree(self) -> Any:
        """Unpack the whole ModelT once, keeping the nodes already unpacked (and maybe edited)."""
        from hwopt._generated.tflite.Model import Model as FbModel  # lazy: object-API bindings, only when unpacked
        from hwopt._generated.tflite.Model import ModelT  # lazy: object-API bindings, only when unpacked

        model = self.model
        assert model is not None
        if model.__dict__.get("_raw") is not None:
            return model.__dict__["_raw"]
        tree = ModelT.InitFromObj(FbModel.GetRootAs(self.data, 0))
        for sg, sg_raw in zip(model.__dict__["_read_subgraphs"], tree.subgraphs or [], strict=True):
            for nodes, raws in ((sg.__dict__["_read_tensors"], sg_raw.tensors), (sg.__dict__["_read_ops"], sg_raw.operators)):
                for k, node in enumerate(nodes):
                    have = node.__dict__.get("_raw")
                    if have is not None:
                        raws[k] = have
                    else:
                        node.raw = _keep_options(node, raws[k])
            if sg.__dict__.get("_raw") is None:
                sg.raw = sg_raw
        for b, b_raw in zip(model.__dict__["_read_buffers"], tree.buffers or [], strict=True):
            if b.__dict__.get("_raw") is None:
                b.raw = b_raw
        model.raw = tree
        return tree


def _keep_options(node: Any, raw: Any) -> Any:
    """`raw` with the options object already read for `node` (edits made through it survive)."""
    read = node.__dict__.get("_read_options")
    if read is not None and isinstance(node, Operator):
        raw.builtinOptions = read[1]
    return raw


def _quantization(q: Table | None, shape: tuple[int, ...], name: str, budget: _Budget) -> Quantization | None:
    if q is None:
        return None
    scale_v = q.array(_Q["scale"], "<f4")
    if scale_v is None or scale_v.size == 0:
        return None
    zp_v = q.array(_Q["zero_point"], "<i8")
    budget.take(scale_v.size + (0 if zp_v is None else zp_v.size))
    scale = scale_v.astype(np.float32)
    zp = np.zeros(scale.size, dtype=np.int64) if zp_v is None or zp_v.size == 0 else zp_v.astype(np.int64)
    if zp.size not in (scale.size, 1):
        raise ModelFormatError(f"tensor {name!r}: {scale.size} scales but {zp.size} zero points")
    qdim = q.i32(_Q["quantized_dimension"])
    if scale.size > 1 and not (0 <= qdim < len(shape) and shape[qdim] == scale.size):
        # Some converters leave the filter's quantized_dimension on the 1-D bias; the
        # per-axis scales still belong to the one axis whose length they match.
        axes = [d for d, n in enumerate(shape) if n == scale.size]
        if len(axes) != 1:
            raise ModelFormatError(
                f"tensor {name!r}: {scale.size} per-axis scales do not match quantized_dimension {qdim} of shape {list(shape)}"
            )
        qdim = axes[0]
    lo, hi = q.array(_Q["min"], "<f4"), q.array(_Q["max"], "<f4")
    return Quantization(
        scale=scale,
        zero_point=zp if zp.size == scale.size else np.repeat(zp, scale.size),
        quantized_dimension=qdim,
        min=None if lo is None else lo.astype(np.float32),
        max=None if hi is None else hi.astype(np.float32),
    )


def _constant(t: Table, buf: Buffer, shape: tuple[int, ...], dtype: DType, name: str,
              budget: _Budget) -> tuple[np.ndarray | None, bool]:
    if buf.data is None or buf.data.size == 0:
        return None, False
    np_dtype = dtype.numpy
    if np_dtype is None:
        return None, False  # strings / packed int4: kept as bytes, not analysed
    if buf.data.size % np_dtype.itemsize:
        raise ModelFormatError(f"tensor {name!r}: buffer of {buf.data.size} bytes is not a whole number of {dtype.label}")
    values = buf.data.view(np_dtype)
    sparsity = t.table(_T["sparsity"])
    if sparsity is not None:
        from hwopt._generated.tflite.SparsityParameters import SparsityParametersT  # lazy: rare, see unpack

        params = SparsityParametersT.InitFromBuf(t.buf, sparsity.pos)
        dense = densify(values, params, shape, name, max_positions=budget.size, max_bytes=budget.dense)
        budget.dense -= dense.nbytes
        return dense, True
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if values.size != n:
        raise ModelFormatError(f"tensor {name!r}: shape {list(shape)} needs {n} elements, buffer holds {values.size}")
    return values.reshape(shape), False


def _buffers(data: bytes, m: Table, src: _FileSource) -> tuple[list[Buffer], bool]:
    buffers: list[Buffer] = []
    external = False
    for i, b in enumerate(m.tables(_M["buffers"])):
        off, size = b.u64(_BUF["offset"]), b.u64(_BUF["size"])
        if off > 1:
            if off + size > len(data):
                raise ModelFormatError(f"buffer {i}: offset {off} + size {size} is past the end of the file ({len(data)} bytes)")
            buf = Buffer(i, np.frombuffer(data, dtype=np.uint8, count=size, offset=off), external=True)
            external = True
        else:
            buf = Buffer(i, b.array(_BUF["data"], "u1"))
        buf.__dict__["_pos"] = b.pos
        attach_source(buf, src)
        buffers.append(buf)
    return buffers, external


def _tensor(t: Table, ti: int, buffers: list[Buffer], budget: _Budget, src: _FileSource) -> Tensor:
    name = _text(t.string(_T["name"]))
    shape = t.ints(_T["shape"]) or ()
    budget.take(len(shape) + 8)
    if any(d < 0 or d >= MAX_DIM for d in shape) or (shape and int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS):
        raise ModelFormatError(f"tensor {ti} {name!r}: absurd shape {list(shape)}")
    dtype = DType.parse(t.i8(_T["type"]))
    bi = t.u32(_T["buffer"])
    if not 0 <= bi < max(len(buffers), 1):
        raise ModelFormatError(f"tensor {ti} {name!r}: buffer index {bi} out of range (model has {len(buffers)} buffers)")
    value: np.ndarray | None = None
    sparse = False
    if buffers:
        value, sparse = _constant(t, buffers[bi], shape, dtype, name, budget)
    signature = t.ints(_T["shape_signature"])
    budget.take(len(signature or ()))
    quant = _quantization(t.table(_T["quantization"]), shape, name, budget)
    tensor = Tensor(index=ti, name=name, shape=shape, dtype=dtype, buffer=bi, quantization=quant,
                    is_variable=bool(t.u8(_T["is_variable"])), shape_signature=signature, sparse=sparse, data=value)
    tensor.read_quantization = quant
    tensor.__dict__["_pos"] = t.pos
    attach_source(tensor, src)
    return tensor


def _subgraph(sg: Table, si: int, codes: list[tuple[str, int, str | None]], buffers: list[Buffer],
              budget: _Budget, src: _FileSource) -> Subgraph:
    tables = sg.tables(_SG["tensors"])
    budget.take(len(tables))
    tensors = [_tensor(t, ti, buffers, budget, src) for ti, t in enumerate(tables)]
    ops: list[Operator] = []
    op_tables = sg.tables(_SG["operators"])
    budget.take(len(op_tables))
    for oi, o in enumerate(op_tables):
        code_index = o.u32(_OP["opcode_index"])
        if not 0 <= code_index < len(codes):
            raise ModelFormatError(f"subgraph {si} operator {oi}: opcode index {code_index} out of range")
        name, builtin, custom = codes[code_index]
        ins, outs = o.ints(_OP["inputs"]) or (), o.ints(_OP["outputs"]) or ()
        budget.take(len(ins) + len(outs))
        for k in ins + outs:
            if k >= len(tensors) or k < -1:
                raise ModelFormatError(f"subgraph {si} operator {oi} ({name}): tensor index {k} out of range")
        op = Operator(oi, code_index, name, builtin, ins, outs, custom)
        op.__dict__["_pos"] = o.pos
        attach_source(op, src)
        ops.append(op)
    sg_ins, sg_outs = sg.ints(_SG["inputs"]) or (), sg.ints(_SG["outputs"]) or ()
    budget.take(len(sg_ins) + len(sg_outs))
    for k in sg_ins + sg_outs:
        if not 0 <= k < len(tensors):
            raise ModelFormatError(f"subgraph {si}: input/output tensor index {k} out of range")
    sub = Subgraph(si, _text(sg.string(_SG["name"])), tensors, ops, sg_ins, sg_outs)
    sub.__dict__["_read_tensors"], sub.__dict__["_read_ops"] = list(tensors), list(ops)
    attach_source(sub, src)
    return sub


def read_model(source: str | os.PathLike[str] | bytes) -> Model:
    """Parse a .tflite file (path or bytes) into a Model; ModelFormatError if it is not sound."""
    data, path = load_bytes(source)
    verify_tflite(data)
    m = root(data)
    src = _FileSource(data)
    budget = _Budget(len(data))
    buffers, external = _buffers(data, m, src)
    code_tables = m.tables(_M["operator_codes"])
    budget.take(len(code_tables))
    codes = []
    for c in code_tables:
        custom = c.string(_OC["custom_code"])
        codes.append(_resolve(c.i32(_OC["builtin_code"]), c.i8(_OC["deprecated_builtin_code"]),
                              None if custom is None else _text(custom)))
    sg_tables = m.tables(_M["subgraphs"])
    budget.take(len(sg_tables))
    subgraphs = [_subgraph(sg, si, codes, buffers, budget, src) for si, sg in enumerate(sg_tables)]
    metadata: dict[str, bytes] = {}
    for meta_t in m.tables(_M["metadata"]):
        idx, meta_name = meta_t.u32(_META["buffer"]), _text(meta_t.string(_META["name"]))
        if not 0 <= idx < len(buffers):
            raise ModelFormatError(f"metadata {meta_name!r}: buffer index {idx} out of range")
        meta = buffers[idx].data
        metadata[meta_name] = b"" if meta is None else meta.tobytes()
    sigs = tuple(_text(s.string(_SIG["signature_key"])) for s in m.tables(_M["signature_defs"]))
    if not subgraphs:
        raise ModelFormatError("model has no subgraphs")
    model = Model(
        version=m.u32(_M["version"]), description=_text(m.string(_M["description"])), subgraphs=subgraphs,
        buffers=buffers, metadata=metadata, signature_keys=sigs, path=path,
        file_bytes=len(data), external_buffers=external, source=data,
    )
    model.__dict__["_read_subgraphs"], model.__dict__["_read_buffers"] = list(subgraphs), list(buffers)
    src.model = model
    attach_source(model, src)
    return model
