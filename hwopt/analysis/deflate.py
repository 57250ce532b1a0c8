"""DEFLATE size of a model file as TF-MOT reports compression: a ZIP_DEFLATED archive's size.

Kept free of numpy and of the flatbuffer bindings so the CLI can start compressing the file
in a background thread before the analysis modules are even imported (zlib releases the
GIL, so on a multi-core machine the compression costs no wall time).
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from pathlib import Path


def deflate_size(data: bytes, name: str = "model.tflite") -> int:
    """Bytes of a ZIP_DEFLATED archive holding the file: TFMOT's "compressed size"."""
    buf = io.BytesIO()
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, data)
    return len(buf.getvalue())


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
        """Start on a readable regular file; None otherwise (the reader reports the error)."""
        p = Path(path)
        try:
            if not p.is_file():
                return None
            return cls(p.read_bytes(), p.name or "model.tflite")
        except OSError:
            return None
