"""Field access to a verified TFLite flatbuffer in place: no unpacking, no flatbuffers import.

The reader touches a few fields of a few tables (tensors, operators, buffers); reading them
straight from the file bytes with `struct` costs microseconds, where unpacking the whole
object-API tree costs tens of milliseconds on a MobileNet. Only call this on bytes that
`hwopt.format.verify` accepted: offsets are trusted here. Field slots come from the schema
table the verifier uses, so both always agree with the generated bindings.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any

import numpy as np

from hwopt._generated.schema_spec import SPEC

_U8 = struct.Struct("<B")
_I8 = struct.Struct("<b")
_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def slots(table: str) -> dict[str, int]:
    """Field name -> vtable slot of a schema table (union fields take two slots)."""
    fields: list[tuple[str, str, Any]] = SPEC["tables"][table]  # type: ignore[index]
    return {name: i for i, (name, _kind, _arg) in enumerate(fields)}


@lru_cache(maxsize=256)
def _vector_struct(code: str, n: int) -> struct.Struct:
    return struct.Struct(f"<{n}{code}")


class Table:
    """One table of a verified flatbuffer: typed reads of its fields by slot."""

    __slots__ = ("_vt", "_vt_size", "buf", "pos")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self._vt = pos - _I32.unpack_from(buf, pos)[0]
        self._vt_size = _U16.unpack_from(buf, self._vt)[0]

    def _field(self, slot: int) -> int:
        voff = 4 + 2 * slot
        return int(_U16.unpack_from(self.buf, self._vt + voff)[0]) if voff < self._vt_size else 0

    def present(self, slot: int) -> bool:
        return self._field(slot) != 0

    def scalar(self, slot: int, fmt: struct.Struct, default: int = 0) -> int:
        off = self._field(slot)
        return int(fmt.unpack_from(self.buf, self.pos + off)[0]) if off else default

    def i8(self, slot: int, default: int = 0) -> int:
        return self.scalar(slot, _I8, default)

    def u8(self, slot: int, default: int = 0) -> int:
        return self.scalar(slot, _U8, default)

    def i32(self, slot: int, default: int = 0) -> int:
        return self.scalar(slot, _I32, default)

    def u32(self, slot: int, default: int = 0) -> int:
        return self.scalar(slot, _U32, default)

    def u64(self, slot: int, default: int = 0) -> int:
        return self.scalar(slot, _U64, default)

    def _target(self, slot: int) -> int:
        off = self._field(slot)
        if not off:
            return 0
        at = self.pos + off
        return at + int(_U32.unpack_from(self.buf, at)[0])

    def table(self, slot: int) -> Table | None:
        at = self._target(slot)
        return Table(self.buf, at) if at else None

    def string(self, slot: int) -> bytes | None:
        at = self._target(slot)
        if not at:
            return None
        n = int(_U32.unpack_from(self.buf, at)[0])
        return bytes(self.buf[at + 4 : at + 4 + n])

    def vector(self, slot: int) -> tuple[int, int] | None:
        """(first element's byte position, element count) of a vector field, or None."""
        at = self._target(slot)
        if not at:
            return None
        return at + 4, int(_U32.unpack_from(self.buf, at)[0])

    def length(self, slot: int) -> int:
        vec = self.vector(slot)
        return 0 if vec is None else vec[1]

    def ints(self, slot: int, code: str = "i") -> tuple[int, ...] | None:
        """A vector of integers as a tuple (struct code 'i', 'b', 'q', ...), or None."""
        vec = self.vector(slot)
        if vec is None:
            return None
        start, n = vec
        return _vector_struct(code, n).unpack_from(self.buf, start) if n else ()

    def array(self, slot: int, dtype: str) -> np.ndarray | None:
        """A vector of scalars as a read-only numpy view of the file bytes, or None."""
        vec = self.vector(slot)
        if vec is None:
            return None
        start, n = vec
        return np.frombuffer(self.buf, dtype=np.dtype(dtype), count=n, offset=start)

    def tables(self, slot: int) -> list[Table]:
        vec = self.vector(slot)
        if vec is None:
            return []
        start, n = vec
        buf = self.buf
        out = []
        for k in range(n):
            at = start + 4 * k
            out.append(Table(buf, at + int(_U32.unpack_from(buf, at)[0])))
        return out


def root(buf: bytes) -> Table:
    """The root table (Model) of a verified TFLite file."""
    return Table(buf, int(_U32.unpack_from(buf, 0)[0]))
