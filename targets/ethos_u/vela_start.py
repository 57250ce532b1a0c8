"""A Vela compile started ahead of need: the CLI sends the model to the isolation worker as soon as
it knows the file and the target, and `regor_compile` later takes the result for the same request.

A short command spends about as long loading hwopt's engines and reading the model as Regor
needs to compile it; started first, the compile runs in the worker (on the other core) while
the command loads. Nothing is decided by it: the engine still validates the model first and
only then takes the result, so a model hwopt refuses is refused with the same message, and a
request that differs in any byte (model, system configuration, options) compiles anew.
"""

from __future__ import annotations

import contextlib
import mmap
import threading
from dataclasses import dataclass, field
from typing import Any

from hwopt import isolation
from hwopt.preloads import VELA_COMPILE_PRELOAD
from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u.vela_config import CompilerOptions, options_text, regor_arch, system_config_text

REGOR_CALL = "hwopt.native_calls:regor_compile"

Request = tuple[str, str, str]  # Regor's architecture name, system configuration text, options text
# The model as the early compile holds it: bytes, or a sealed read-only mapping (hwopt.cli.early.read_input_shared)
# that reaches the worker without a copy.
ModelBuffer = bytes | mmap.mmap


@dataclass
class _Started:
    """One compile in flight in the worker, waited on by its own thread."""

    request: Request
    model_bytes: ModelBuffer = field(repr=False)
    thread: threading.Thread | None = None
    value: Any = None
    error: BaseException | None = None

    def run(self) -> None:
        arch, system_config, options = self.request
        try:
            self.value = isolation.call(REGOR_CALL, arch, self.model_bytes, system_config, options, library="Vela")
        except BaseException as exc:  # handed to the caller that takes the result
            self.error = exc

    def result(self) -> Any:
        assert self.thread is not None
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


_started: _Started | None = None
_lock = threading.Lock()


def request_of(target: Target, options: CompilerOptions | None = None) -> Request:
    """What `regor.compile` is given besides the model, for a target and the compiler options."""
    return regor_arch(target), system_config_text(target), options_text(target, options)


def start(model_bytes: ModelBuffer, target: Target, options: CompilerOptions | None = None) -> bool:
    """Start compiling `model_bytes` for `target` in the isolation worker; False where there is no
    worker to run it beside the caller (HWOPT_WORKER=inline) or a compile is already started."""
    global _started
    if not isolation.uses_worker():
        return False
    started = _Started(request_of(target, options), model_bytes if isinstance(model_bytes, mmap.mmap)
                       else bytes(model_bytes))
    with _lock:
        if _started is not None:
            return False
        _started = started
    isolation.prestart(*VELA_COMPILE_PRELOAD)
    started.thread = threading.Thread(target=started.run, name="hwopt-vela-early", daemon=True)
    started.thread.start()
    return True


def take(request: Request, model_bytes: bytes | memoryview) -> Any | None:
    """The result (or the error) of the started compile when it is this very request; None when none
    was started or it was another one (which is then stopped, so the worker is free for this one)."""
    global _started
    with _lock:
        started, _started = _started, None
    if started is None:
        return None
    if started.request == request and _same(started.model_bytes, model_bytes):
        return started.result()
    _stop(started)
    return None


def _same(held: ModelBuffer, given: bytes | memoryview) -> bool:
    """Whether the started compile's model is byte for byte the one the engine checked (one memcmp
    against the held buffer, no copy of it; the very same buffer needs none)."""
    if held is given:
        return True
    if len(held) != len(given):
        return False
    return bytes(given).startswith(held)  # bytes of equal length: startswith compares the whole buffer


def discard() -> None:
    """Forget a started compile nobody took (the command ended before it compiled), stopping it."""
    global _started
    with _lock:
        started, _started = _started, None
    if started is not None:
        _stop(started)


def _stop(started: _Started) -> None:
    if started.thread is not None and started.thread.is_alive():
        isolation.interrupt()  # the worker restarts, fresh, for the next call
        with contextlib.suppress(Exception):
            started.thread.join()
