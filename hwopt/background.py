"""A call run in a thread beside the caller's own work (e.g. Vela compiling in the isolation worker)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from hwopt import isolation

T = TypeVar("T")


class Background(Generic[T]):
    """A call run in a thread while the caller works: where it calls the worker (Vela compiling),
    the thread only waits on its pipe, without the GIL, so the caller's own analysis overlaps it."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        ctx = contextvars.copy_context()  # the caller's isolation subject names a crash
        self._thread = threading.Thread(target=lambda: ctx.run(self._run, fn), name="hwopt-vela", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def cancel(self) -> None:
        """The caller failed: stop the worker's call (it would otherwise run to its end) and wait."""
        if self._thread.is_alive():
            isolation.interrupt()
        self._thread.join()

    def done(self) -> bool:
        """Whether the call has ended (its result or error is ready)."""
        return not self._thread.is_alive()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value
