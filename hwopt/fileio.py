"""Safe file I/O: bounded input reads, atomic outputs (temporary file beside the target, renamed).

An input is read only from a regular file and only up to a size limit (a device such as
/dev/zero or a pipe never fills memory); a crash or an error never leaves a partial output,
and an input file is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hwopt.errors import ModelFormatError, OutputError

# Largest input file read (TFLite's own >2 GB layout included); HWOPT_MAX_MODEL_BYTES overrides.
MAX_INPUT_BYTES = 16 << 30


def max_input_bytes() -> int:
    value = os.environ.get("HWOPT_MAX_MODEL_BYTES", "")
    return int(value) if value.isdigit() else MAX_INPUT_BYTES


def read_input_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an input file: a regular file (never a device or pipe), within the size limit."""
    p = Path(path)
    limit = max_input_bytes()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ModelFormatError(f"no such file: {p}") from None
    except OSError as exc:
        raise ModelFormatError(f"cannot read {p}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelFormatError(f"is a directory, not a model file: {p}")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFormatError(f"not a regular file (a device, pipe or socket): {p}")
    if st.st_size > limit:
        raise ModelFormatError(f"{p} is {st.st_size:,} bytes, beyond the {limit:,}-byte input limit "
                               "(HWOPT_MAX_MODEL_BYTES)")
    try:
        with p.open("rb") as fh:
            data = fh.read(st.st_size)  # read(n) allocates n bytes up front: never more than the file
            rest = fh.read(1 << 20)  # the file grew while it was read: take what follows, bounded
            while rest and len(data) <= limit:
                data += rest
                rest = fh.read(1 << 20)
    except OSError as exc:
        raise ModelFormatError(f"cannot read {p}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ModelFormatError(f"{p} is beyond the {limit:,}-byte input limit (HWOPT_MAX_MODEL_BYTES)")
    return data


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
