"""A TOML writer for descriptor documents (tables of strings, numbers, booleans and lists of them).

Python's standard library reads TOML but does not write it, and a descriptor needs only this
small subset, so hwopt writes it itself rather than take a dependency for it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML descriptor values must be finite, got {value!r}")
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps_toml(doc: Mapping[str, Any], comments: Mapping[str, str] | None = None) -> str:
    """TOML text of a nested mapping; `comments` maps a dotted table name to a comment line above it."""
    lines: list[str] = []
    comments = comments or {}

    def table(prefix: tuple[str, ...], body: Mapping[str, Any]) -> None:
        scalars = [(k, v) for k, v in body.items() if not isinstance(v, Mapping)]
        subtables = [(k, v) for k, v in body.items() if isinstance(v, Mapping)]
        name = ".".join(_key(p) for p in prefix)
        if prefix and (scalars or not subtables):
            if lines:
                lines.append("")
            if name in comments:
                lines.append(f"# {comments[name]}")
            lines.append(f"[{name}]")
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars)
        for k, v in subtables:
            table((*prefix, k), v)

    table((), doc)
    return "\n".join(lines) + "\n"
