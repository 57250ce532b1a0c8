"""The schema of a gate baseline file, checked field by field before any figure is trusted.

A baseline is external data a CI job reads on every build: a wrong type, a negative or
non-finite figure, an absurd size or nesting must be one error line naming the field (exit 2),
never a crash and never a silent pass (a negative total would make every check pass).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from hwopt.errors import BaselineError

MAX_FILE_BYTES = 64 << 20
MAX_INT = 1 << 62  # cycles, bytes and counts beyond this are not measurements
MAX_TEXT = 4096
MAX_LAYERS = 1 << 20
MAX_PREDICTIONS = 1 << 24
MAX_DEPTH = 8  # a baseline is {totals: {...}, layers: [{...}]}: three levels; deeper is not a baseline

Check = Callable[[Any, str], None]


def _fail(field: str, msg: str) -> BaselineError:
    return BaselineError(f"field {field!r} {msg}")


def _count(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"must be a whole number, got {_show(value)}")
    if not 0 <= value <= MAX_INT:
        raise _fail(field, f"must lie in 0..{MAX_INT}, got {_show(value)}")


def _fraction(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(field, f"must be a number, got {_show(value)}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise _fail(field, f"must lie in [0, 1], got {_show(value)}")


def _text(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise _fail(field, f"must be a string, got {_show(value)}")
    if len(value) > MAX_TEXT:
        raise _fail(field, f"is longer than {MAX_TEXT} characters")


def _optional(check: Check) -> Check:
    def run(value: Any, field: str) -> None:
        if value is not None:
            check(value, field)
    return run


def _placement(value: Any, field: str) -> None:
    if value not in ("npu", "cpu"):
        raise _fail(field, f"must be \"npu\" or \"cpu\", got {_show(value)}")


def _predictions(value: Any, field: str) -> None:
    if not isinstance(value, list) or len(value) > MAX_PREDICTIONS:
        raise _fail(field, f"must be a list of at most {MAX_PREDICTIONS} class indices")
    for i, v in enumerate(value):
        _count(v, f"{field}[{i}]")


TOTALS: dict[str, tuple[Check, bool]] = {  # field: (check, required)
    "cycles": (_count, True), "sram_bytes": (_count, True), "flash_bytes": (_count, True),
    "encoded_weight_bytes": (_count, True), "macs": (_count, True), "sparsity": (_fraction, True),
    "max_unique_per_channel": (_count, True), "npu_operators": (_count, True), "cpu_operators": (_count, True),
    "accuracy": (_optional(_fraction), False), "predictions": (_optional(_predictions), False),
}
LAYER: dict[str, tuple[Check, bool]] = {
    "subgraph": (_count, True), "op_index": (_count, True), "op": (_text, True), "placement": (_placement, False),
    "cycles": (_optional(_count), False), "sram_bytes": (_optional(_count), False),
    "encoded_weight_bytes": (_optional(_count), False), "sparsity": (_optional(_fraction), False),
    "max_unique_per_channel": (_optional(_count), False),
}


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, int) or abs(value) < 10**30 else f"a {len(str(value))}-digit number"
    return text if len(text) <= 40 else text[:37] + "..."


def _record(data: Any, schema: dict[str, tuple[Check, bool]], where: str) -> None:
    if not isinstance(data, dict):
        raise _fail(where, f"must be an object, got {_show(data)}")
    for key in data:
        if key not in schema:
            raise _fail(f"{where}.{key}", "is not a baseline field")
    for key, (check, required) in schema.items():
        if key not in data:
            if required:
                raise _fail(f"{where}.{key}", "is missing")
            continue
        check(data[key], f"{where}.{key}")


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, without recursion (a hostile file can nest thousands deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a number in a baseline")


def parse(text: str, where: str, schema_id: str) -> dict[str, Any]:
    """Parse and check baseline JSON; BaselineError naming the first bad field."""
    if len(text) > MAX_FILE_BYTES:
        raise BaselineError(f"baseline {where} is larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {where} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise BaselineError(f"baseline {where} is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # NaN / Infinity, or an integer too long to convert
        raise BaselineError(f"baseline {where}: {exc}") from None
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise BaselineError(f"baseline {where} is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict) or data.get("schema") != schema_id:
        raise BaselineError(f"baseline {where} is not a {schema_id} file")
    try:
        for key in ("model", "target"):
            _text(data.get(key), key)
        _record(data.get("totals"), TOTALS, "totals")
        layers = data.get("layers")
        if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
            raise _fail("layers", f"must be a list of at most {MAX_LAYERS} layers")
        for i, row in enumerate(layers):
            _record(row, LAYER, f"layers[{i}]")
        extra = sorted(set(data) - {"schema", "model", "target", "totals", "layers"})
        if extra:
            raise _fail(extra[0], "is not a baseline field")
    except BaselineError as exc:
        raise BaselineError(f"baseline {where}: {exc}") from None
    return data  # type: ignore[no-any-return]
