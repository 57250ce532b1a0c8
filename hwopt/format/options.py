"""An operator's builtin options read alone from verified file bytes, as the object-API class.

The generated `XOptionsT._UnPack` does the reading (so the object is exactly the one unpacking the
whole operator would give), but through a table that finds its vtable once and reads scalars
straight with `struct`: flatbuffers' own table re-reads the vtable and type-checks every offset on
each field, which costs about three times as much on bytes the verifier already accepted.
"""

from __future__ import annotations

import importlib
import struct
from typing import Any

from flatbuffers.table import Table as FbTable

from hwopt._generated.tflite.BuiltinOptions import BuiltinOptions
from hwopt.format.fbview import Table, slots

_OP = slots("Operator")
_I32 = struct.Struct("<i")
_U16 = struct.Struct("<H")
_NAMES = {v: k for k, v in vars(BuiltinOptions).items() if not k.startswith("_") and isinstance(v, int) and v}


class _VerifiedTable(FbTable):
    """flatbuffers' Table for bytes the verifier accepted: the vtable found once, reads unchecked."""

    __slots__ = ("_vt", "_vt_end")

    def __init__(self, buf: bytes, pos: int) -> None:
        super().__init__(buf, pos)
        self._vt = pos - _I32.unpack_from(buf, pos)[0]
        self._vt_end = _U16.unpack_from(buf, self._vt)[0]

    def Offset(self, vtableOffset: int) -> int:  # noqa: N802, N803 (flatbuffers' names)
        return _U16.unpack_from(self.Bytes, self._vt + vtableOffset)[0] if vtableOffset < self._vt_end else 0

    def Get(self, flags: Any, off: int) -> Any:  # noqa: N802
        return flags.py_type(flags.packer_type.unpack_from(self.Bytes, off)[0])


def read_options(data: bytes, operator_pos: int) -> tuple[int, Any]:
    """(builtin_options_type, options object or None) of the operator table at `operator_pos`."""
    op = Table(data, operator_pos)
    kind = op.u8(_OP["builtin_options_type"])
    table = op.table(_OP["builtin_options"])
    name = _NAMES.get(kind)
    if table is None or name is None:
        return kind, None  # no table, or a type this schema does not know: as the object API gives
    module = importlib.import_module(f"hwopt._generated.tflite.{name}")  # lazy: only the options a model uses
    reader = getattr(module, name)()
    reader._tab = _VerifiedTable(data, table.pos)
    options = getattr(module, f"{name}T")()
    options._UnPack(reader)
    return kind, options
