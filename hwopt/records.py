"""Findings and JSON conventions shared by every report (audit, estimate, encode, gate...).

Reports are dataclasses; `to_jsonable` turns them into plain data with floats rounded so
that the same input gives byte-identical JSON (no timestamps, stable key order).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FLOAT_DIGITS = 6


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class OpRef:
    """The input operator a per-layer record describes: subgraph, operator index and type.

    Every per-layer record (audit, encode, estimate, compile, gate, enforce, Vela rows) is an
    OpRef, so rows from different engines join on `op_key`; in JSON the three fields stay flat.
    """

    subgraph: int
    op_index: int
    op: str

    @property
    def op_key(self) -> tuple[int, int]:
        """(subgraph, operator index): what rows from different sources join on."""
        return (self.subgraph, self.op_index)

    @property
    def ref(self) -> OpRef:
        """Just the operator reference of a record."""
        return OpRef(self.subgraph, self.op_index, self.op)


@dataclass(frozen=True)
class Finding:
    """One observation about the model; `error` findings make the command exit 1."""

    severity: Severity
    rule: str
    message: str
    subgraph: int | None = None
    op_index: int | None = None


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data from dataclasses, enums, numpy scalars and paths (floats rounded)."""
    kind = type(obj)
    if kind is str or kind is int or kind is bool or obj is None:  # most leaves: returned as they are
        return obj
    if kind is float:
        return _float(obj)
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(obj) if not f.name.startswith("_"))
    if names is not None:
        return {name: to_jsonable(getattr(obj, name)) for name in names}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _float(float(obj))
    if isinstance(obj, Path):
        return str(obj)
    return obj


# The JSON field names of each dataclass met so far (dataclasses.fields builds a new tuple per call).
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _float(value: float) -> float | None:
    """A float for JSON: rounded to FLOAT_DIGITS, None for NaN and infinities."""
    if math.isnan(value) or math.isinf(value):
        return None
    return round(value, FLOAT_DIGITS)


def dumps(obj: Any, *, sort_keys: bool = False) -> str:
    """Deterministic, indented JSON text of a report, ending in a newline."""
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n"
