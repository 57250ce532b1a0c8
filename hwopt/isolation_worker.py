"""The isolation worker's side and the wire both sides speak (length-prefixed pickles over two pipes):
kept apart from `hwopt.isolation`, the parent's supervisor, so that each stays one concern.

With shared memory (Linux), a message's large `bytes` (a model, a compiled model) and large
protocol-5 buffers (a contiguous numpy array's data, arriving writable) do not cross the pipe: they go into one sealed memory file per message, and the pickle holds where (persistent ids);
a sealed mapping of an input file (`hwopt.cli.early.read_input_shared`) crosses by reference, without a copy.
The sender keeps its memory file open until the reader has answered (the parent: until the reply;
the worker: until the next request).

Run as `python -m hwopt.isolation_worker REQ_FD RES_FD [--shm] [PRELOAD ...]`; `hwopt.isolation` starts it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import mmap
import os
import pickle
import signal
import struct
import sys
from typing import Any

from hwopt import shared_memory
from hwopt.errors import HwoptError
from hwopt.preloads import LATER

ENV_CHILD = "_HWOPT_IN_WORKER"
HEADER = struct.Struct("<Q")
PIPE_BYTES = 1 << 20
SHM_FLAG = "--shm"  # the worker's argument that turns shared memory on for its replies
# A `bytes` this large crosses through shared memory: below it, the pipe's copies cost less than
# creating, filling and opening a memory file (~0.1 ms).
SHM_MIN_BYTES = 256 << 10
NO_SHM = "noshm"  # the worker's reply status when it could not open a request's shared memory


def resolve(target: str) -> Any:
    """The object `module:name.attr` names, importing its module."""
    module, _, name = target.partition(":")
    obj: Any = import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


_site_read = False


def import_module(name: str) -> Any:
    """`importlib.import_module`; where the worker runs without `site` (`python -S`) and a module is not
    found, the worker reads the .pth files after all (a path hook or namespace one adds) and tries again."""
    global _site_read
    while True:
        try:
            return importlib.import_module(name)  # lazy: the worker loads what it runs (or warms up) by name
        except ImportError:
            if _site_read or not sys.flags.no_site:
                raise
            _site_read = True
            import site  # the .pth files, only now that a module was missing without them

            site.main()
            importlib.invalidate_caches()


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


class _Pickler(pickle.Pickler):
    """Pickles a message for the pipe alone: a sealed mapping goes as its bytes."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is mmap.mmap:
            return bytes, (obj[:],)
        return NotImplemented


class _SharedPickler(_Pickler):
    """Pickles a message whose large bytes and protocol-5 buffers (numpy arrays) go into a memory file
    and whose sealed mappings go by reference (persistent ids), so that none crosses the pipe."""

    def __init__(self, file: io.BytesIO, oob: shared_memory.Builder) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.oob = oob

    def persistent_id(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is bytes:
            return ("b", self.oob.add(obj)) if len(obj) >= SHM_MIN_BYTES else None
        if kind is mmap.mmap:
            fd = shared_memory.sealed_fd(obj)
            return ("m", shared_memory.Ref(os.getpid(), fd, 0, len(obj))) if fd is not None else None
        if kind is pickle.PickleBuffer:  # protocol 5's buffers (e.g. a contiguous numpy array's data)
            raw = obj.raw()
            return ("w", self.oob.add(raw)) if raw.nbytes >= SHM_MIN_BYTES else None
        return None


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        kind, ref = pid
        if kind == "b":
            return shared_memory.read(ref)
        if kind == "m":
            return shared_memory.attach(ref)
        if kind == "w":
            return shared_memory.read_writable(ref)
        raise pickle.UnpicklingError(f"unknown out-of-band object {kind!r}")


def dumps(obj: Any, shm: bool) -> tuple[bytes, shared_memory.Builder | None]:
    """A message's pickle, and (with `shm`) the sealed memory file holding its large bytes, which the
    caller closes once the other side has read the message (None when nothing went out of band)."""
    buf = io.BytesIO()
    if not shm:
        _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return buf.getvalue(), None
    oob = shared_memory.Builder()
    try:
        _SharedPickler(buf, oob).dump(obj)
        oob.seal()
    except BaseException:
        oob.close()
        raise
    return buf.getvalue(), (oob if oob.fd >= 0 else None)


def loads(data: bytes | bytearray) -> Any:
    """A message from its pickle, reading what it holds in shared memory (a SharedMemoryError if that fails)."""
    return _Unpickler(io.BytesIO(data)).load()


def _reply(fd: int, status: str, value: Any, shm: bool) -> shared_memory.Builder | None:
    oob = None
    try:
        data, oob = dumps((status, value), shm)
    except Exception as exc:  # an unpicklable result or exception: send its text
        if isinstance(value, BaseException):
            data = pickle.dumps(("text", f"{type(value).__name__}: {value}"))
        else:
            data = pickle.dumps(("text", f"result cannot be returned: {exc}"))
    write_all(fd, HEADER.pack(len(data)))
    write_all(fd, data)
    return oob


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


def _serve(req_fd: int, res_fd: int, later: list[str] | None = None, shm: bool = False) -> None:
    objects: dict[int, Any] = {}
    next_id = 1
    first = True
    sent: shared_memory.Builder | None = None  # the last reply's memory file, open until the parent answers
    while True:
        if not first:
            _warm_up(later or [])  # after the first reply, while the caller is busy with it
            later = None
        first = False
        header = read_exact(req_fd, HEADER.size)
        if sent is not None:  # the parent has read the last reply: it sends nothing before
            sent.close()
            sent = None
        if header is None:
            return  # the parent closed the pipe (or died): leave quietly
        body = read_exact(req_fd, HEADER.unpack(header)[0])
        if body is None:
            return
        try:
            message, stale = loads(body)
        except shared_memory.SharedMemoryError as exc:  # the parent resends through the pipe; so does this side
            shm = False
            _reply(res_fd, NO_SHM, str(exc), False)
            continue
        del body
        for ident in stale:
            objects.pop(ident, None)
        try:
            value, next_id = _dispatch(message, objects, next_id)
        except Exception as exc:
            exc.__traceback__ = None
            sent = _reply(res_fd, "raise", exc, shm)
            continue
        finally:
            del message  # a shared mapping in the request is unmapped now, not at the next one
        sent = _reply(res_fd, "ok", value, shm)
        del value


def _dispatch(message: tuple[Any, ...], objects: dict[int, Any], next_id: int) -> tuple[Any, int]:
    """Run one request: (its result, the next free handle number)."""
    kind = message[0]
    if kind == "call":
        _, target, args, kwargs = message
        return resolve(target)(*args, **kwargs), next_id
    if kind == "new":
        _, target, args, kwargs = message
        objects[next_id] = resolve(target)(*args, **kwargs)
        return next_id, next_id + 1
    if kind == "method":
        _, ident, name, args, kwargs = message
        return getattr(objects[ident], name)(*args, **kwargs), next_id
    raise HwoptError(f"unknown worker request {kind!r}")


def _main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills the worker on an interrupt
    with contextlib.suppress(Exception):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a native crash leaves no core file behind
    shm = argv[2:3] == [SHM_FLAG]
    preload = argv[3:] if shm else argv[2:]
    cut = preload.index(LATER) if LATER in preload else len(preload)
    _warm_up(preload[:cut])  # what the first call needs, imported while the parent works
    _serve(int(argv[0]), int(argv[1]), [m for m in preload[cut:] if m != LATER], shm)


def _warm_up(modules: list[str]) -> None:
    for module in modules:
        with contextlib.suppress(Exception):
            import_module(module)  # the worker warms up what its calls will need


if __name__ == "__main__":
    _main(sys.argv[1:])
