"""Bounds-checking flatbuffer verifier for untrusted TFLite files.

The Python flatbuffers runtime trusts every offset it reads, so a corrupt file can raise
from deep inside generated code or loop over a bogus vector length. This walks every
table reachable from the root with the field table generated from the schema
(`hwopt._generated.schema_spec`) and checks each offset, vtable, vector and string
against the buffer end, as flatc's C++ Verifier does, before anything is unpacked.
"""

from __future__ import annotations

import struct
from typing import Any

from hwopt._generated.schema_spec import SPEC
from hwopt.errors import ModelFormatError

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U16 = struct.Struct("<H")

MAX_DEPTH = 64


class _Verifier:
    def __init__(self, buf: bytes | memoryview, limit: int) -> None:
        self.buf = buf
        self.size = limit
        self.tables: dict[str, list[tuple[str, str, Any]]] = SPEC["tables"]  # type: ignore[assignment]
        self.unions: dict[str, list[str]] = SPEC["unions"]  # type: ignore[assignment]
        # A legal file holds fewer tables than it has 4-byte words; more visits means a
        # file whose offsets alias one table many times (a decompression bomb).
        self.budget = limit // 4 + 64

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"corrupt flatbuffer: {what}")

    def u32(self, pos: int, what: str) -> int:
        if pos < 0 or pos + 4 > self.size:
            raise self.fail(f"{what} at byte {pos} is past the end of the file ({self.size} bytes)")
        return int(_U32.unpack_from(self.buf, pos)[0])

    def offset(self, pos: int, what: str) -> int:
        """Follow the uoffset stored at pos; the target must lie inside the buffer."""
        rel = self.u32(pos, what)
        target = pos + rel
        if rel == 0 or target + 4 > self.size:
            raise self.fail(f"{what} points outside the file (offset {target})")
        return target

    def vector(self, pos: int, elem: int, what: str) -> tuple[int, int]:
        start = self.offset(pos, what)
        n = self.u32(start, what + " length")
        if start + 4 + n * elem > self.size:
            raise self.fail(f"{what} of {n} elements overruns the file")
        return start + 4, n

    def table(self, pos: int, name: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(f"tables nested deeper than {MAX_DEPTH}")
        self.budget -= 1
        if self.budget < 0:
            raise self.fail("more tables than the file can hold")
        if pos % 4 and pos + 4 > self.size:
            raise self.fail(f"{name} table outside the file")
        soff = int(_I32.unpack_from(self.buf, pos)[0]) if pos + 4 <= self.size else None
        if soff is None:
            raise self.fail(f"{name} table outside the file")
        vt = pos - soff
        if vt < 0 or vt + 4 > self.size:
            raise self.fail(f"{name} vtable outside the file")
        vt_size, tbl_size = _U16.unpack_from(self.buf, vt)[0], _U16.unpack_from(self.buf, vt + 2)[0]
        if vt_size < 4 or vt_size % 2 or vt + vt_size > self.size or pos + tbl_size > self.size:
            raise self.fail(f"{name} vtable of {vt_size} bytes is malformed")
        fields = self.tables.get(name)
        if fields is None:
            raise self.fail(f"unknown table type {name}")
        union_types: dict[str, int] = {}
        for i, (fname, kind, arg) in enumerate(fields):
            voff = 4 + 2 * i
            if voff >= vt_size:
                break
            fo = _U16.unpack_from(self.buf, vt + voff)[0]
            if fo == 0:
                continue
            if fo + (arg if kind == "scalar" else 4) > tbl_size:
                raise self.fail(f"field {name}.{fname} lies outside its table")
            fpos = pos + fo
            where = f"{name}.{fname}"
            if kind == "scalar":
                if fname.endswith("_type"):
                    union_types[fname[:-5]] = self.buf[fpos]
            elif kind == "string":
                start, n = self.vector(fpos, 1, where)
                if start + n >= self.size:
                    raise self.fail(f"{where} string is not terminated")
            elif kind == "vector_scalar":
                self.vector(fpos, int(arg), where)
            elif kind == "vector_string":
                start, n = self.vector(fpos, 4, where)
                for k in range(n):
                    s = self.offset(start + 4 * k, where)
                    ln = self.u32(s, where)
                    if s + 4 + ln >= self.size:
                        raise self.fail(f"{where}[{k}] string overruns the file")
            elif kind == "vector_table":
                start, n = self.vector(fpos, 4, where)
                for k in range(n):
                    self.table(self.offset(start + 4 * k, f"{where}[{k}]"), str(arg), depth + 1)
            elif kind == "table":
                self.table(self.offset(fpos, where), str(arg), depth + 1)
            elif kind == "union":
                utype = union_types.get(fname, 0)
                members = self.unions[str(arg)]
                if 0 < utype <= len(members):
                    self.table(self.offset(fpos, where), members[utype - 1], depth + 1)
                # An unknown union type comes from a newer schema: skipped, as flatc does.


def verify_tflite(buf: bytes | memoryview, *, limit: int | None = None) -> None:
    """Raise ModelFormatError unless `buf` is a structurally sound TFLite flatbuffer.

    `limit` is where the flatbuffer ends when buffer data is appended after it (the
    >2 GB layout); offsets of the flatbuffer itself may not point past it.
    """
    size = len(buf) if limit is None else min(limit, len(buf))
    if size < 8:
        raise ModelFormatError(f"file too short to be a TFLite model ({size} bytes)")
    ident = bytes(buf[4:8])
    if ident != SPEC["identifier"].encode():  # type: ignore[union-attr]
        raise ModelFormatError(
            f"not a TFLite flatbuffer (file identifier {ident!r}, expected b'TFL3')"
        )
    v = _Verifier(buf, size)
    root = v.offset(0, "root table offset")
    v.table(root, str(SPEC["root"]), 0)
