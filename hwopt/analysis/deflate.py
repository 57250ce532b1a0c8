"""DEFLATE size of a model file as TF-MOT reports compression: a ZIP_DEFLATED archive's size.

The file is compressed once, in a streaming zlib compressor whose output is only counted
(exactly what `zipfile` writes, without building the archive or importing zipfile); the
ZIP headers around it are sized by hand, the way `zipfile` lays them out. Kept free of numpy
and of the flatbuffer bindings so the CLI can start compressing in a background thread
before the analysis modules are even imported (zlib releases the GIL, so on a multi-core
machine the compression overlaps the analysis).
"""

from __future__ import annotations

import os
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
    """`deflate_size(data, name)` computed in a daemon thread; `result()` waits for it."""

    def __init__(self, data: bytes, name: str = "model.tflite") -> None:
        self.data, self.name = data, name
        self._size = 0
        self._thread = threading.Thread(target=self._run, name="hwopt-deflate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._size = deflate_size(self.data, self.name)

    def result(self) -> int:
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
