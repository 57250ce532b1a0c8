"""Sealed shared-memory buffers (Linux memfd): how large payloads cross between hwopt and its worker.

A buffer is written into an anonymous memory file, then sealed (no write, shrink or grow) before
the other process opens it through /proc/<pid>/fd/<n>; the reader checks the seals, so what it
reads or maps cannot change under it. Nothing touches the file system: the memory file vanishes
with its last descriptor or mapping. `supported()` says once per process whether all of this
works here (memfd, sealing, /proc); where it does not, the caller sends the bytes through its pipe.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # not a POSIX system: no sealed memory files, every payload goes through the pipe
    fcntl = None  # type: ignore[assignment]

_SEALS = (getattr(fcntl, "F_SEAL_WRITE", 8) | getattr(fcntl, "F_SEAL_SHRINK", 2) | getattr(fcntl, "F_SEAL_GROW", 4)
          | getattr(fcntl, "F_SEAL_SEAL", 1))
_NEEDED = _SEALS & ~getattr(fcntl, "F_SEAL_SEAL", 1)  # what a reader insists on before trusting the content
_CHUNK = 1 << 30  # sendfile/write moves at most ~2 GiB per call


class SharedMemoryError(OSError):
    """A sealed buffer could not be made, opened or checked."""


class Ref(NamedTuple):
    """Where a sealed buffer lives: process, descriptor number in it, and a byte range of the file."""

    pid: int
    fd: int
    offset: int
    length: int


def _create(size: int) -> int:
    fd = os.memfd_create("hwopt", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _seal(fd: int) -> None:
    assert fcntl is not None
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)


class Builder:
    """A memory file filled piece by piece and then sealed: the sending side of out-of-band buffers.
    The sender keeps it open (`close`) until the reader has taken what it needs."""

    def __init__(self) -> None:
        self.fd = -1
        self.size = 0

    def add(self, data: bytes | memoryview) -> Ref:
        """Append `data`; where it will be once sealed."""
        if self.fd < 0:
            self.fd = _create(0)
        view, at = memoryview(data), self.size
        while view:
            n = os.pwrite(self.fd, view[:_CHUNK], at)
            view, at = view[n:], at + n
        ref = Ref(os.getpid(), self.fd, self.size, len(data))
        self.size = at
        return ref

    def seal(self) -> None:
        if self.fd >= 0:
            _seal(self.fd)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def seal_file(src: int, size: int) -> int:
    """A sealed memory file with the first `size` bytes of the open file `src`, copied in the kernel
    (sendfile: no pass through this process's memory). Returns its descriptor."""
    fd = _create(size)
    try:
        done = 0
        while done < size:
            n = os.sendfile(fd, src, done, min(size - done, _CHUNK))
            if n == 0:
                raise SharedMemoryError(f"the file ended after {done:,} of {size:,} bytes")
            done += n
        _seal(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_sealed(ref: Ref) -> int:
    """Open another process's sealed memory file read-only, checking its seals and size (a descriptor)."""
    try:
        fd = os.open(f"/proc/{ref.pid}/fd/{ref.fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SharedMemoryError(f"cannot open the shared buffer: {exc.strerror or exc}") from None
    try:
        assert fcntl is not None
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        if seals & _NEEDED != _NEEDED:
            raise SharedMemoryError("the shared buffer is not sealed")
        if os.fstat(fd).st_size < ref.offset + ref.length:
            raise SharedMemoryError("the shared buffer is shorter than announced")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read(ref: Ref) -> bytes:
    """The bytes a Ref names, copied once out of the sealed file (an independent `bytes`)."""
    fd = open_sealed(ref)
    try:
        parts, at, left = [], ref.offset, ref.length
        while left:
            chunk = os.pread(fd, min(left, _CHUNK), at)
            if not chunk:
                raise SharedMemoryError("the shared buffer ended early")
            parts.append(chunk)
            at, left = at + len(chunk), left - len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)
    finally:
        os.close(fd)


def read_writable(ref: Ref) -> bytearray:
    """The bytes a Ref names as a new bytearray (for an array that must stay writable, as unpickled)."""
    out = bytearray(ref.length)
    view = memoryview(out)
    fd = open_sealed(ref)
    try:
        done = 0
        while done < ref.length:
            n = os.preadv(fd, [view[done:done + _CHUNK]], ref.offset + done)
            if n <= 0:
                raise SharedMemoryError("the shared buffer ended early")
            done += n
    finally:
        os.close(fd)
    return out


def attach(ref: Ref) -> mmap.mmap:
    """A read-only mapping of the sealed file a Ref names (the whole file: `ref.offset` is 0), no copy."""
    if ref.offset or not ref.length:
        raise SharedMemoryError("a shared mapping covers a whole, non-empty file")
    fd = open_sealed(ref)
    try:
        return mmap.mmap(fd, ref.length, prot=mmap.PROT_READ)  # the mapping keeps its own descriptor
    finally:
        os.close(fd)


# -- sealed mappings this process holds, by identity: the wire sends them by reference --------------
# (Single dictionary operations, atomic under the GIL: no lock. An identity is reused only after the
# mapping's finaliser has removed it.)
_registry: dict[int, int] = {}


def _register(mapping: mmap.mmap, fd: int) -> None:
    import weakref  # lazy: only the process that shares a mapping needs it, never the worker at start-up

    key = id(mapping)
    _registry[key] = fd
    weakref.finalize(mapping, _forget, key, fd)


def _forget(key: int, fd: int) -> None:
    _registry.pop(key, None)
    with contextlib.suppress(OSError):
        os.close(fd)


def sealed_fd(obj: object) -> int | None:
    """The sealed memory file behind `obj` when it is a mapping made by `map_file`, else None."""
    return _registry.get(id(obj)) if type(obj) is mmap.mmap else None


def map_file(src: int, size: int) -> mmap.mmap:
    """A read-only mapping of a sealed in-memory copy of an open file's first `size` bytes. It reads like
    `bytes`, cannot change, and crosses to the worker by reference (the descriptor closes with it)."""
    if size <= 0:
        raise SharedMemoryError("an empty file has nothing to share")
    fd = seal_file(src, size)
    try:
        mapping = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    except BaseException:
        os.close(fd)
        raise
    _register(mapping, fd)
    return mapping


_supported: bool | None = None


def supported() -> bool:
    """Whether sealed memory files work here (Linux memfd with sealing, readable through /proc); probed once."""
    global _supported
    if _supported is None:
        _supported = _probe()
    return _supported


def _probe() -> bool:
    if fcntl is None or not hasattr(os, "memfd_create") or not hasattr(fcntl, "F_ADD_SEALS"):
        return False
    builder = Builder()
    try:
        ref = builder.add(b"hwopt")
        builder.seal()
        return read(ref) == b"hwopt"
    except OSError:
        return False
    finally:
        builder.close()
