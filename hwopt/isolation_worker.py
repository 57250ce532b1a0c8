"""The isolation worker's side and the wire both sides speak (length-prefixed pickles over two pipes):
kept apart from `hwopt.isolation`, the parent's supervisor, so that each stays one concern.

Run as `python -m hwopt.isolation_worker REQ_FD RES_FD [PRELOAD ...]`; `hwopt.isolation` starts it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import struct
import sys
from typing import Any

from hwopt.errors import HwoptError
from hwopt.preloads import LATER

ENV_CHILD = "_HWOPT_IN_WORKER"
HEADER = struct.Struct("<Q")
PIPE_BYTES = 1 << 20


def resolve(target: str) -> Any:
    """The object `module:name.attr` names, importing its module."""
    module, _, name = target.partition(":")
    obj: Any = importlib.import_module(module)  # lazy: a worker loads the function it runs by name
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


class WorkerGoneError(Exception):
    """The other end of a pipe went away (the worker died, or its parent did)."""


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to a pipe; a closed pipe is WorkerGoneError."""
    view = memoryview(data)
    try:
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except (BrokenPipeError, OSError):
        raise WorkerGoneError from None


def _reply(fd: int, status: str, value: Any) -> None:
    try:
        data = pickle.dumps((status, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an unpicklable result or exception: send its text
        if isinstance(value, BaseException):
            data = pickle.dumps(("text", f"{type(value).__name__}: {value}"))
        else:
            data = pickle.dumps(("text", f"result cannot be returned: {exc}"))
    write_all(fd, HEADER.pack(len(data)))
    write_all(fd, data)


def read_exact(fd: int, n: int) -> bytearray | None:
    """Exactly `n` bytes from a pipe, or None at its end."""
    buf = bytearray(n)  # read in place: no chunk list, no joined copy
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if not k:
            return None
        got += k
    return buf


def grow_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe buffer (Linux; 64 KiB by default): a model-sized payload then crosses in
    16x fewer reads and process switches. Where it is refused, the default buffer works too."""
    with contextlib.suppress(OSError, AttributeError, ImportError):
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)


def _serve(req_fd: int, res_fd: int, later: list[str] | None = None) -> None:
    objects: dict[int, Any] = {}
    next_id = 1
    first = True
    while True:
        if not first:
            _warm_up(later or [])  # after the first reply, while the caller is busy with it
            later = None
        first = False
        header = read_exact(req_fd, HEADER.size)
        if header is None:
            return  # the parent closed the pipe (or died): leave quietly
        body = read_exact(req_fd, HEADER.unpack(header)[0])
        if body is None:
            return
        message, stale = pickle.loads(body)
        for ident in stale:
            objects.pop(ident, None)
        kind = message[0]
        try:
            if kind == "call":
                _, target, args, kwargs = message
                value = resolve(target)(*args, **kwargs)
            elif kind == "new":
                _, target, args, kwargs = message
                objects[next_id] = resolve(target)(*args, **kwargs)
                value, next_id = next_id, next_id + 1
            elif kind == "method":
                _, ident, name, args, kwargs = message
                value = getattr(objects[ident], name)(*args, **kwargs)
            else:
                raise HwoptError(f"unknown worker request {kind!r}")
        except Exception as exc:
            exc.__traceback__ = None
            _reply(res_fd, "raise", exc)
            continue
        _reply(res_fd, "ok", value)


def _main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills the worker on an interrupt
    with contextlib.suppress(Exception):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a native crash leaves no core file behind
    preload = argv[2:]
    cut = preload.index(LATER) if LATER in preload else len(preload)
    _warm_up(preload[:cut])  # what the first call needs, imported while the parent works
    _serve(int(argv[0]), int(argv[1]), [m for m in preload[cut:] if m != LATER])


def _warm_up(modules: list[str]) -> None:
    for module in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(module)  # lazy: the worker warms up what its calls will need


if __name__ == "__main__":
    _main(sys.argv[1:])
