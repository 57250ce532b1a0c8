"""Lazy loading of TensorFlow, tf-keras and TFMOT for `hwopt tree` (the optional `hwopt[train]` extra).

TFMOT 0.8 works only with Keras 2, so `TF_USE_LEGACY_KERAS=1` must be in the environment
before TensorFlow is first imported: `load()` sets it (and quiets TensorFlow's C++ logging
unless the user chose a level) and is the only place in hwopt that imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from hwopt.errors import UnsupportedModelError

INSTALL_HINT = "hwopt tree needs TensorFlow, tf-keras and tensorflow-model-optimization: install hwopt[train]"
_REQUIRED = ("tensorflow", "tf_keras", "tensorflow_model_optimization")


@dataclass(frozen=True)
class TF:
    """The three modules a tree run uses: `tf`, Keras 2 (`tf_keras`) and `tfmot`."""

    tf: Any
    keras: Any
    tfmot: Any


_LOADED: TF | None = None


def available() -> bool:
    """True when the train extra is installed (checked without importing TensorFlow)."""
    return all(importlib.util.find_spec(name) is not None for name in _REQUIRED)


def require() -> None:
    """Raise a one-line UnsupportedModelError when the train extra is missing."""
    missing = [name for name in _REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise UnsupportedModelError(f"{INSTALL_HINT} (missing: {', '.join(missing)})")


def load() -> TF:
    """Import TensorFlow with legacy Keras selected, make ops deterministic and return the modules."""
    global _LOADED
    require()
    if _LOADED is not None:
        return _LOADED
    # If TensorFlow was imported earlier without the variable, tf.keras is Keras 3; this module
    # uses tf_keras directly, so training still works, but TFMOT needs the variable set now.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tensorflow_model_optimization as tfmot
        import tf_keras as keras
    except ImportError as exc:  # a broken install: still one line
        raise UnsupportedModelError(f"{INSTALL_HINT} ({exc})") from None
    tf.get_logger().setLevel("ERROR")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # absl ships with TensorFlow; tolerate its absence
        pass
    _LOADED = TF(tf=tf, keras=keras, tfmot=tfmot)
    return _LOADED


def seed_everything(mods: TF, seed: int) -> None:
    """Seed Python, numpy and TensorFlow and make TF ops deterministic (reproducible trees)."""
    mods.keras.utils.set_random_seed(seed)
    with contextlib.suppress(AttributeError, RuntimeError):  # older TF, or set after graph creation
        mods.tf.config.experimental.enable_op_determinism()
