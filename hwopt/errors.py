"""The one exception tree of hwopt: every error a user can cause is a HwoptError.

The CLI prints `hwopt: error: <message>` and exits with `exit_code` (2 for bad input),
so no traceback ever reaches a user for a problem with their input.
"""

from __future__ import annotations


class HwoptError(Exception):
    """Base class: a problem with the user's input, options or environment."""

    exit_code = 2


class UsageError(HwoptError):
    """Options that do not make sense together, or a value out of range."""


class ModelFormatError(HwoptError):
    """The file is not a readable TFLite flatbuffer (missing, truncated, corrupt)."""


class UnsupportedModelError(HwoptError):
    """A valid model that this operation cannot handle (float, already Vela-compiled, ...)."""


class TargetError(HwoptError):
    """An unknown target name or an invalid target descriptor file."""


class PassError(HwoptError):
    """A graph pass failed or left the model invalid; the message names the pass."""


class CompileError(HwoptError):
    """Vela rejected the model or failed while compiling it."""


class OutputError(HwoptError):
    """An output cannot be written (unwritable directory, would overwrite the input)."""


class BaselineError(HwoptError):
    """A gate baseline file is missing, corrupt or of another schema."""


class DataError(HwoptError):
    """Calibration or evaluation data that does not match the model's inputs."""


class NativeCodeError(HwoptError):
    """A native library (Vela, its weight codec, LiteRT) crashed, hung or ran out of memory on the model."""
