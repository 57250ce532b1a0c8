"""hwopt: audit, enforce, encode, estimate and compile int8 TFLite models for Arm Ethos NPUs.

The Python API mirrors the CLI; heavy modules load on first use so `import hwopt` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["HwoptError", "__version__", "audit", "read_model", "write_model"]

from hwopt.errors import HwoptError

if TYPE_CHECKING:
    from hwopt.audit import audit
    from hwopt.tflite_io import read_model, write_model

_LAZY = {
    "audit": ("hwopt.audit", "audit"),
    "read_model": ("hwopt.tflite_io", "read_model"),
    "write_model": ("hwopt.tflite_io", "write_model"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hwopt' has no attribute {name!r}")
