"""The one fd-level output redirection: C++ libraries (Vela's Regor, LiteRT, TensorFlow) write
straight to file descriptors 1 and 2, past Python's `sys.stdout`, so silencing or capturing
them means redirecting the descriptors themselves."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import IO

STDIO = (1, 2)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _sink() -> IO[bytes]:
    """An anonymous file for the captured output: an in-memory file on Linux (no file system, and
    no `tempfile` import in the isolation worker's start-up), else a temporary file."""
    if hasattr(os, "memfd_create"):
        with contextlib.suppress(OSError):
            return os.fdopen(os.memfd_create("hwopt-console", os.MFD_CLOEXEC), "w+b")
    import tempfile  # only where there are no memory files

    return tempfile.TemporaryFile()


@contextlib.contextmanager
def captured_fds(fds: tuple[int, ...] = STDIO) -> Iterator[list[str]]:
    """Redirect `fds` into a buffer; on exit the captured text is appended to the yielded list.

    Without real descriptors (an embedded interpreter) nothing is redirected and nothing captured.
    """
    out: list[str] = []
    _flush()
    try:
        saved = [os.dup(fd) for fd in fds]
    except OSError:
        yield out
        return
    with _sink() as sink:
        try:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            yield out
        finally:
            _flush()
            for fd, copy in zip(fds, saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            out.append(sink.read().decode("utf-8", errors="replace"))


@contextlib.contextmanager
def quiet_fds(fds: tuple[int, ...] = STDIO, *, enabled: bool = True) -> Iterator[None]:
    """Discard what native code writes to `fds` (a no-op when not `enabled`)."""
    if not enabled:
        yield
        return
    with captured_fds(fds):
        yield
