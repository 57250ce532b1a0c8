"""The native calls the isolation worker makes for Vela: a Regor compile and a weight-stream decode check.

Kept to the standard library, `ethosu` and hwopt's base modules on purpose: a worker that
imported numpy and hwopt's packages to run them would spend ~0.25 CPU seconds per command
on imports, as much as Vela takes to compile a small model. Results are plain data (bytes,
strings, numbers, lists, dicts and namespaces), so they unpickle on either side.
"""

from __future__ import annotations

from array import array
from types import SimpleNamespace
from typing import Any

from hwopt._quiet import captured_fds
from hwopt.errors import CompileError


def regor_message(exc: BaseException, text: str) -> str:
    """One line from a Regor rejection: its last error line, else its last line, else the exception."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "dynamic signature" not in ln]
    errors = [ln for ln in lines if "error" in ln.lower()]
    detail = (errors or lines or [str(exc) or type(exc).__name__])[-1]
    return "Vela rejected the model: " + "; ".join(p.strip(" -").rstrip(".") for p in detail.splitlines() if p.strip(" -"))


def plain(obj: Any, depth: int = 0) -> Any:
    """A picklable copy of a Regor result object: numbers, strings, lists, dicts and namespaces."""
    if obj is None or isinstance(obj, int | float | str | bool | bytes):
        return obj
    if depth > 4:
        return None
    if isinstance(obj, dict):
        return {k: plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v, depth + 1) for v in obj]
    fields = {}
    for name in dir(obj):
        if name.startswith("_"):
            continue
        value = getattr(obj, name)
        if not callable(value):
            fields[name] = plain(value, depth + 1)
    return SimpleNamespace(**fields)


def regor_compile(arch: str, model_bytes: bytes, system_config: str,
                  options: str) -> tuple[bytes, Any, SimpleNamespace, str]:
    """`ethosu.regor.compile` to a TFLite model: (model bytes, plain perf report, plain database, console text)."""
    from ethosu import regor  # lazy: Vela is loaded only where a compile runs (normally the worker)

    text = ""
    try:
        with captured_fds() as captured:
            compiled = regor.compile(arch, model_bytes, "TFLITE", system_config, options=options, verbose=False)
        text = captured[0] if captured else ""
    except Exception as exc:  # Regor raises plain RuntimeError/ValueError for rejected networks
        text = captured[0] if captured else ""
        raise CompileError(regor_message(exc, text)) from None
    if not isinstance(compiled, regor.CompiledTFLiteModel):
        raise CompileError("Vela returned no TFLite model")
    db = compiled.opt_database
    tables = {name: SimpleNamespace(header=list(t.header), data=[list(r) for r in t.data])
              for name, t in getattr(db, "tables", {}).items()}
    return bytes(compiled.model), plain(compiled.perf_report), SimpleNamespace(tables=tables), text


def mlw_streams_decode_to(pairs: list[tuple[bytes, bytes]]) -> list[bool]:
    """Whether each standard weight stream decodes, with Vela's legacy decoder, to its weights
    (given as little-endian int16 bytes). The decoder ends the process on a malformed stream."""
    from ethosu import mlw_codec  # lazy: Vela's codec, loaded only where it runs (normally the worker)

    out = []
    for data, weights in pairs:
        want = array("h")
        want.frombytes(weights)
        out.append(mlw_codec.decode(bytearray(data)) == want.tolist())
    return out
