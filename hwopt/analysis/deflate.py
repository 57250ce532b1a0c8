"""DEFLATE size of a model file as TF-MOT reports compression: a ZIP_DEFLATED archive's size.

The file is compressed once, in a streaming zlib compressor whose output is only counted
(exactly what `zipfile` writes, without building the archive or importing zipfile); the
ZIP headers around it are sized by hand, the way `zipfile` lays them out. Kept free of numpy
and of the flatbuffer bindings so the CLI can start compressing in a background thread
before the analysis modules are even imported (zlib releases the GIL, so on a multi-core
machine the compression overlaps the analysis).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import zlib
from pathlib import Path

from hwopt.errors import HwoptError
from hwopt.fileio import read_input_file

# zipfile's limits: beyond ZIP64_LIMIT bytes it adds ZIP64 extra fields and end records.
ZIP64_LIMIT = (1 << 31) - 1
_LOCAL, _CENTRAL, _END = 30, 46, 22  # fixed header sizes of a ZIP archive
_ZIP64_LOCAL_EXTRA, _ZIP64_CENTRAL_EXTRA, _ZIP64_END = 20, 20, 56 + 20


def deflated_bytes(data: bytes | memoryview) -> int:
    """Length of the raw DEFLATE stream zipfile writes (zlib default level, no header).

    One compress call: zlib releases the GIL for all of it, so the compression runs on
    another core even while the main thread holds the GIL (Vela's Regor compile does).
    """
    comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return len(comp.compress(data)) + len(comp.flush())


def zip_size(name: str, file_size: int, compressed: int, *, zip64_limit: int = ZIP64_LIMIT) -> int:
    """Bytes of a one-member ZIP_DEFLATED archive as `zipfile.ZipFile.writestr` lays it out."""
    name = name.split("\0", 1)[0]
    try:
        name_len = len(name.encode("ascii"))
    except UnicodeEncodeError:
        name_len = len(name.encode("utf-8"))
    local = _LOCAL + name_len + (_ZIP64_LOCAL_EXTRA if file_size * 1.05 > zip64_limit else 0)
    big = file_size > zip64_limit or compressed > zip64_limit
    central = _CENTRAL + name_len + (_ZIP64_CENTRAL_EXTRA if big else 0)
    start_dir = local + compressed
    end = _END + (_ZIP64_END if start_dir > zip64_limit or central > zip64_limit else 0)
    return local + compressed + central + end


def deflate_size(data: bytes, name: str = "model.tflite") -> int:
    """Bytes of a ZIP_DEFLATED archive holding the file: TFMOT's "compressed size"."""
    return zip_size(name, len(data), deflated_bytes(data))


class DeflateJob:
    """`deflate_size(data, name)` computed beside the caller; `result()` waits for it.

    By default in a daemon thread (zlib releases the GIL while it compresses). With
    `process=True`, in a forked child process instead, for callers whose main thread then
    holds the GIL in native code for seconds (Vela's Regor compile does, and a thread's
    zlib call needs the GIL back each time its output buffer grows). Where fork is not
    available or other threads run (forking them is unsafe), it falls back to a thread.
    """

    def __init__(self, data: bytes, name: str = "model.tflite", *, process: bool = False) -> None:
        self.data, self.name = data, name
        self._size = 0
        self._child: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        if process and hasattr(os, "fork") and threading.active_count() == 1:
            self._child = self._fork()
        if self._child is None:
            self._thread = threading.Thread(target=self._run, name="hwopt-deflate", daemon=True)
            self._thread.start()

    def _fork(self) -> tuple[int, int] | None:
        try:
            r, w = os.pipe()
            pid = os.fork()
        except OSError:
            return None
        if pid == 0:  # the child: compress, report the size, leave without running any cleanup
            try:
                os.close(r)
                os.write(w, str(deflate_size(self.data, self.name)).encode())
            finally:
                os._exit(0)
        os.close(w)
        return pid, r

    def _run(self) -> None:
        self._size = deflate_size(self.data, self.name)

    def cancel(self) -> None:
        """Stop a child that is no longer needed (the caller failed); a thread just finishes."""
        if self._child is not None:
            pid, r = self._child
            self._child = None
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            os.close(r)
            os.waitpid(pid, 0)

    def result(self) -> int:
        if self._child is not None:
            pid, r = self._child
            self._child = None
            chunks = []
            while chunk := os.read(r, 64):
                chunks.append(chunk)
            os.close(r)
            os.waitpid(pid, 0)
            text = b"".join(chunks)
            # A child that died (killed, out of memory) reported nothing: compress here instead.
            self._size = int(text) if text.isdigit() else deflate_size(self.data, self.name)
        elif self._thread is not None:
            self._thread.join()
        return self._size

    @classmethod
    def for_file(cls, path: str | os.PathLike[str]) -> DeflateJob | None:
        """Start on a readable regular file within the size limit; None otherwise (the reader reports why)."""
        try:
            data = read_input_file(path)
        except HwoptError:
            return None
        return cls(data, Path(path).name or "model.tflite")
