"""hwopt: audit, enforce, encode, estimate and compile int8 TFLite models for Arm Ethos NPUs.

The Python API (hwopt.api) mirrors the CLI and returns the same typed report objects the CLI
renders. Its names load on first use, so `import hwopt` stays cheap and never pulls in the
engines, Vela, LiteRT, TensorFlow or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hwopt._version import __version__
from hwopt.errors import HwoptError

if TYPE_CHECKING:
    from hwopt.api import (
        audit,
        compile,
        encode,
        enforce,
        estimate,
        estimate_batch,
        gate,
        read_model,
        sweep,
        write_model,
    )

__all__ = ["HwoptError", "__version__", "audit", "compile", "encode", "enforce", "estimate", "estimate_batch", "gate",
           "read_model", "sweep", "write_model"]

_API = frozenset(__all__) - {"HwoptError", "__version__"}


def __getattr__(name: str) -> Any:
    """`hwopt.audit` and the other API names, from hwopt.api on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'hwopt' has no attribute {name!r}")
    value = getattr(importlib.import_module("hwopt.api"), name)  # lazy: `import hwopt` must not load the engines
    globals()[name] = value
    return value
