"""Pass options: the typed option record of a pass, and option values to and from pipeline text.

A pass's options are its dataclass fields; their annotations decide how pipeline text converts
(`convert_value`) and prints back (`format_value`), so parse(print(x)) == x.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from hwopt.errors import UsageError
from hwopt.targets import Target, resolve_target


@dataclass(frozen=True)
class OptionSpec:
    """One pass option: its name, type annotation (resolved) and default."""

    name: str
    type: Any
    default: Any
    help: str = ""

    @property
    def type_text(self) -> str:
        return _type_text(self.type)


def option_specs(cls: type) -> list[OptionSpec]:
    """The typed options of a pass class: its init fields, except those marked `option=False`."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("option") is False:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out.append(OptionSpec(f.name, hints[f.name], default, f.metadata.get("help", "")))
    return out


def _type_text(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in get_args(tp) if a is not type(None)) + " (optional)"
    if origin is tuple:
        return f"[{_type_text(get_args(tp)[0])}, ...]"
    if tp is Target:
        return "target"
    return getattr(tp, "__name__", str(tp))


# --------------------------------------------------------------------------- values

_BOOL = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def format_value(value: Any) -> str:
    """Pipeline text of an option value (inverse of `convert_value`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if value is None:
        return "none"
    if isinstance(value, Target):
        value = value.spec
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z0-9_.:+\-]+", text) else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def convert_value(raw: str | list[Any], tp: Any, where: str) -> Any:
    """Convert parsed pipeline text to the option's type; UsageError on a bad value."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if isinstance(raw, str) and raw.lower() == "none" and type(None) in get_args(tp):
            return None
        errors = []
        for a in args:
            try:
                return convert_value(raw, a, where)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(errors[0] if errors else f"{where}: bad value {raw!r}")
    if origin is tuple:
        (item,) = get_args(tp)[:1]
        items = raw if isinstance(raw, list) else ([] if raw == "" else [raw])
        return tuple(convert_value(v, item, where) for v in items)
    if isinstance(raw, list):
        raise UsageError(f"{where}: expected {_type_text(tp)}, got a list")
    if origin is Literal:
        choices = get_args(tp)
        for c in choices:
            if str(c) == raw or (isinstance(c, str) and c.lower() == raw.lower()):
                return c
        raise UsageError(f"{where}: {raw!r} is not one of {', '.join(str(c) for c in choices)}")
    if tp is bool:
        if raw.lower() in _BOOL:
            return _BOOL[raw.lower()]
        raise UsageError(f"{where}: expected true or false, got {raw!r}")
    if tp is int:
        try:
            return int(raw, 0)
        except ValueError:
            raise UsageError(f"{where}: expected an integer, got {raw!r}") from None
    if tp is float:
        try:
            value = float(raw)
        except ValueError:
            raise UsageError(f"{where}: expected a number, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise UsageError(f"{where}: expected a finite number, got {raw!r}")
        return value
    if tp is str:
        return raw
    if tp is Target:
        return resolve_target(raw)
    raise UsageError(f"{where}: unsupported option type {tp!r}")  # pragma: no cover
