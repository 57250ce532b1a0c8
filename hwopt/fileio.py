"""Safe file I/O: bounded input reads, atomic outputs (temporary file beside the target, renamed).

An input is read only from a regular file and only up to a size limit (a device such as
/dev/zero or a pipe never fills memory); a crash or an error never leaves a partial output,
and an input file is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hwopt.errors import DataError, ModelFormatError, OutputError

if TYPE_CHECKING:
    import numpy as np

# Largest input file read (TFLite's own >2 GB layout included); HWOPT_MAX_MODEL_BYTES overrides.
MAX_INPUT_BYTES = 16 << 30


def max_input_bytes() -> int:
    value = os.environ.get("HWOPT_MAX_MODEL_BYTES", "")
    return int(value) if value.isdigit() else MAX_INPUT_BYTES


def input_stat(p: Path, st: os.stat_result | None = None) -> os.stat_result:
    """The file's status when it is a regular file within the size limit (else one-line ModelFormatError)."""
    if st is None:
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
    limit = max_input_bytes()
    if st.st_size > limit:
        raise ModelFormatError(f"{p} is {st.st_size:,} bytes, beyond the {limit:,}-byte input limit "
                               "(HWOPT_MAX_MODEL_BYTES)")
    return st


def read_input_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an input file: a regular file (never a device or pipe), within the size limit."""
    p = Path(path)
    limit = max_input_bytes()
    st = input_stat(p)
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
    tmp = _write_temporary(target, data, protect)
    try:
        return _replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_temporary(target: Path, data: bytes, protect: tuple[Path, ...]) -> str:
    """`data` written and synced to a new temporary file beside `target` (the checks of atomic_write_bytes first)."""
    for p in protect:
        if _same_file(target, Path(p)) or target.resolve() == Path(p).resolve():
            raise OutputError(f"refusing to overwrite the input file {p}")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory does not exist: {parent}")
    try:
        import tempfile  # here, not at the top: reading a model (audit's start-up) needs none of the writing

        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise OutputError(f"cannot write to {parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _replace(tmp: str, target: Path) -> Path:
    try:
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


class StagedWrite:
    """atomic_write_bytes in two steps: the bytes are written and synced to a temporary file beside
    `path` in a thread (while the caller still works out whether to keep them), then `commit()`
    renames it into place or `discard()` removes it. A write error is raised by `commit()`, where
    atomic_write_bytes would have raised it; a discarded write leaves nothing."""

    def __init__(self, path: str | os.PathLike[str], data: bytes, *, protect: tuple[Path, ...] = ()) -> None:
        import threading  # here, not at the top: only commands that stage an output start a thread

        self._target = Path(path)
        self._tmp: str | None = None
        self._error: BaseException | None = None
        self._done = False
        self._thread = threading.Thread(target=self._write, args=(data, protect), name="hwopt-write", daemon=True)
        self._thread.start()

    def _write(self, data: bytes, protect: tuple[Path, ...]) -> None:
        try:
            self._tmp = _write_temporary(self._target, data, protect)
        except BaseException as exc:  # raised by commit()
            self._error = exc

    def commit(self) -> Path:
        """Wait for the write and rename the file into place (OutputError as atomic_write_bytes)."""
        self._thread.join()
        self._done = True
        if self._error is not None:
            raise self._error
        assert self._tmp is not None
        return _replace(self._tmp, self._target)

    def discard(self) -> None:
        """Wait for the write and remove the temporary file (nothing once committed)."""
        self._thread.join()
        if not self._done and self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
        self._done = True


def atomic_write_text(path: str | os.PathLike[str], text: str, *, protect: tuple[Path, ...] = ()) -> Path:
    """Text flavour of atomic_write_bytes (UTF-8, newline as given)."""
    return atomic_write_bytes(path, text.encode("utf-8"), protect=protect)


def refuse_inputs(outputs: Iterable[str | os.PathLike[str] | None], inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """OutputError when an output path is (or resolves to) one of the inputs: an output never replaces an input."""
    ins = [Path(p) for p in inputs if p is not None]
    for o in outputs:
        if o is None:
            continue
        out = Path(o)
        for i in ins:
            if _same_file(out, i) or out.resolve() == i.resolve():
                raise OutputError(f"refusing to overwrite the input file {i} with an output ({out})")


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP while files move into place, so a signal never leaves a mix of old and new."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike[str], *, protect: Iterable[str | os.PathLike[str]] = ()) -> Iterator[Path]:
    """Yield a staging folder (a sibling of `target`) whose files replace `target`'s on success only.

    A new or empty `target` is replaced by renaming the staging folder (all files appear at once);
    otherwise the files move in with signals held. No file may land on a path in `protect` (the
    command's inputs). On an exception or a signal the staging folder is removed, `target` untouched.
    """
    out = Path(target)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path exists and is not a directory: {out}")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    import shutil  # here, not at the top: see atomic_write_bytes
    import tempfile

    try:
        stage = Path(tempfile.mkdtemp(prefix=f".hwopt-stage-{out.name}-", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot write to {parent}: {exc.strerror or exc}") from None
    guard = tuple(Path(p) for p in protect)
    try:
        yield stage
        items = sorted(stage.rglob("*"))
        refuse_inputs((out / item.relative_to(stage) for item in items if not item.is_dir()), guard)
        os.chmod(stage, 0o755)
        with _signals_deferred():
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            if not out.exists():
                os.rename(stage, out)  # the whole set appears in one step
                return
            if not os.access(out, os.W_OK):
                raise OutputError(f"output directory is not writable: {out}")
            for item in items:
                dest = out / item.relative_to(stage)
                if item.is_dir():
                    dest.mkdir(exist_ok=True)
                else:
                    os.replace(item, dest)
    except OSError as exc:
        raise OutputError(f"cannot write to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


MAX_NPZ_BYTES = 1 << 30  # uncompressed arrays of one --data/--calibration file (HWOPT_MAX_DATA_MB overrides)
ENV_MAX_DATA = "HWOPT_MAX_DATA_MB"


def max_npz_bytes() -> int:
    text = os.environ.get(ENV_MAX_DATA, "").strip()
    if not text:
        return MAX_NPZ_BYTES
    try:
        value = int(float(text) * (1 << 20))
    except ValueError:
        raise DataError(f"{ENV_MAX_DATA} must be a number of MiB, got {text!r}") from None
    if value <= 0:
        raise DataError(f"{ENV_MAX_DATA} must be positive, got {text!r}")
    return value


def load_npz(path: str | os.PathLike[str], *, limit: int | None = None) -> dict[str, np.ndarray]:
    """Arrays of an .npz file, every member's size checked before anything is decompressed.

    Both the zip header's uncompressed size and the .npy header's shape are checked against
    `limit` (a zip bomb or a lying header is a DataError, not gigabytes of memory); the input
    must be a regular file; pickled objects are refused.
    """
    import zipfile

    import numpy as np  # here, not at the top: the DEFLATE job starts on the read bytes before numpy loads

    p = Path(path)
    cap = max_npz_bytes() if limit is None else limit
    if not p.exists():
        raise DataError(f"no such data file: {p}")
    if not p.is_file():
        raise DataError(f"{p} is not a regular file")
    try:
        with zipfile.ZipFile(p) as zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            if total > cap:
                raise DataError(f"{p} would unpack to {total:,} bytes, more than the {cap:,}-byte limit "
                                f"(set {ENV_MAX_DATA} to allow more)")
            out: dict[str, np.ndarray] = {}
            for info in infos:
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    else:
                        raise DataError(f"{p}: array {name!r} uses .npy format {version}, not 1.0 or 2.0")
                    if dtype.hasobject:
                        raise DataError(f"{p}: array {name!r} holds Python objects (not allowed)")
                    need = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                    if need > info.file_size or need > cap:
                        raise DataError(f"{p}: array {name!r} declares {need:,} bytes but its member holds "
                                        f"{info.file_size:,}")
                with zf.open(info) as fh:
                    out[name] = np.lib.format.read_array(fh, allow_pickle=False)
            return out
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise DataError(f"cannot read {p} as an .npz archive: {exc}") from None
