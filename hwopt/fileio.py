"""Atomic output: write to a temporary file beside the target, then rename over it.

A crash or an error never leaves a partial file, and an input file is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hwopt.errors import OutputError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, protect: tuple[Path, ...] = ()) -> Path:
    """Write `data` to `path` atomically; refuse to overwrite any file in `protect`."""
    target = Path(path)
    for p in protect:
        if _same_file(target, Path(p)) or target.resolve() == Path(p).resolve():
            raise OutputError(f"refusing to overwrite the input file {p}")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory does not exist: {parent}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise OutputError(f"cannot write to {parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, protect: tuple[Path, ...] = ()) -> Path:
    """Text flavour of atomic_write_bytes (UTF-8, newline as given)."""
    return atomic_write_bytes(path, text.encode("utf-8"), protect=protect)


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that replaces `target`'s contents only on success.

    Files are written into a sibling staging folder and moved into `target` one by one at
    the end; on an exception the staging folder is removed and `target` is left as it was.
    """
    out = Path(target)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise OutputError(f"output directory is not writable: {out}")
    try:
        stage = Path(tempfile.mkdtemp(prefix=".hwopt-stage-", dir=out))
    except OSError as exc:
        raise OutputError(f"cannot write to {out}: {exc.strerror or exc}") from None
    try:
        yield stage
        for item in sorted(stage.rglob("*")):
            dest = out / item.relative_to(stage)
            if item.is_dir():
                dest.mkdir(exist_ok=True)
            else:
                os.replace(item, dest)
    finally:
        import shutil

        shutil.rmtree(stage, ignore_errors=True)
