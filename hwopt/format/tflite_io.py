"""Read a TFLite flatbuffer into the hwopt IR and write it back, losslessly and atomically.

Reading (hwopt.format.reader) verifies the flatbuffer, then reads the IR in place; constant
tensors are zero-copy numpy views of the file bytes. Writing packs the object-API tree
again with every buffer 16-byte aligned (as the TFLite converter does, so kernels may
read weights with aligned loads) and, for models that keep buffers after the flatbuffer
(the >2 GB layout), appends them the same way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import flatbuffers
import numpy as np

from hwopt._generated.tflite import Buffer as FbBuffer
from hwopt._generated.tflite.Buffer import BufferT
from hwopt._generated.tflite.Model import ModelT
from hwopt.errors import OutputError
from hwopt.fileio import atomic_write_bytes
from hwopt.format.reader import BUILTIN_CODES, BUILTIN_NAMES, CUSTOM, MAX_DIM, MAX_ELEMENTS, op_name, read_model
from hwopt.format.sparse import densify
from hwopt.ir import Model

# The reader's names stay importable from here, where callers have always found them.
__all__ = ["ALIGN", "BUILTIN_CODES", "BUILTIN_NAMES", "CUSTOM", "MAX_DIM", "MAX_ELEMENTS", "densify", "op_name",
           "read_model", "serialize", "write_model"]

log = logging.getLogger(__name__)

PLACEHOLDER_FOR_GREATER_OP_CODES = 127
ALIGN = 16


class _AlignedBufferT(BufferT):  # type: ignore[misc]
    """BufferT whose data vector is 16-byte aligned (the generated Pack aligns to 1)."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - generated API name
        data_off = None
        if self.data is not None and len(self.data):
            payload = (np.ascontiguousarray(self.data, dtype=np.uint8).reshape(-1).data
                       if isinstance(self.data, np.ndarray) else bytes(self.data))
            builder.StartVector(1, len(payload), ALIGN)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            data_off = builder.EndVector(len(payload))

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


def _pack(raw: ModelT, size_hint: int = 0) -> bytes:
    # Sized for the whole file up front: growing the builder copies everything packed so far.
    builder = flatbuffers.Builder(max(size_hint, 1 << 16))
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return bytes(memoryview(builder.Bytes)[builder.Head():])


def serialize(model: Model) -> bytes:
    """The model as .tflite bytes; identical input and IR give identical bytes."""
    _sync(model)
    ext = [b for b in model.buffers if b.external and b.data is not None and b.data.size]
    hint = max(model.file_bytes, sum(b.nbytes + ALIGN for b in model.buffers if not b.external)) + (1 << 20)
    if not ext:
        return _pack(model.raw, hint)
    # >2 GB layout: buffers follow the flatbuffer at 16-byte aligned absolute offsets. Pack
    # once with placeholder offsets (fixed-size scalars, so the size does not change), then
    # again with the real ones.
    for b in ext:
        model.raw.buffers[b.index].offset = 2
        model.raw.buffers[b.index].size = b.nbytes
    head = len(_pack(model.raw, hint))
    pos = head + (-head) % ALIGN
    layout = []
    for b in ext:
        model.raw.buffers[b.index].offset = pos
        layout.append((pos, b))
        pos += b.nbytes + (-b.nbytes) % ALIGN
    out = bytearray(_pack(model.raw, hint))
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
