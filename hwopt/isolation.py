"""Run native libraries (Vela's Regor and mlw_codec, LiteRT) in a supervised, warm worker process.

A native crash (SIGSEGV, SIGFPE, SIGABRT), a hang or a blown memory budget kills only the
worker: the caller gets one `NativeCodeError` line (exit 2) and the next call starts a fresh
worker. The worker is a plain `python -m hwopt.isolation_worker` child (that module holds its
side and the wire) speaking length-prefixed pickles over two pipes, large bytes both ways through
sealed shared memory where the system has it (else through the pipes); it stays alive between
calls, so a call costs a pipe round trip, not a process start. Limits come from the environment
(HWOPT_WORKER_TIMEOUT seconds per call, HWOPT_WORKER_MEMORY_MB resident memory);
HWOPT_WORKER=inline runs everything in-process.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from hwopt import shared_memory
from hwopt.errors import NativeCodeError, UsageError
from hwopt.isolation_worker import (
    ENV_CHILD,
    HEADER,
    NO_SHM,
    SHM_FLAG,
    WorkerGoneError,
    dumps,
    grow_pipe,
    loads,
    resolve,
    write_all,
)

ENV_TIMEOUT = "HWOPT_WORKER_TIMEOUT"
ENV_MEMORY = "HWOPT_WORKER_MEMORY_MB"
ENV_MODE = "HWOPT_WORKER"
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MEMORY_MB = 8192
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder holding the hwopt package
_POLL_S = 0.02  # memory watchdog period: a runaway allocation overshoots by at most ~this many ms of growth


_subject: contextvars.ContextVar[str | None] = contextvars.ContextVar("hwopt_native_subject", default=None)


class _LimitValues(NamedTuple):
    seconds: float
    memory_bytes: int


class Limits(_LimitValues):
    """Per-call wall-clock limit and resident-memory limit of the worker, checked when made.
    (A named tuple, not a dataclass: this module loads right before the worker is spawned, and
    `dataclasses` with `inspect` would take a few ms of that critical path.)"""

    __slots__ = ()

    def __new__(cls, seconds: float = DEFAULT_TIMEOUT_S, memory_bytes: int = DEFAULT_MEMORY_MB << 20) -> Limits:
        if not (seconds > 0 and seconds < float("inf")):
            raise UsageError(f"{ENV_TIMEOUT} must be a positive number of seconds, got {seconds}")
        if memory_bytes < (64 << 20):
            raise UsageError(f"{ENV_MEMORY} must be at least 64 (MiB), got {memory_bytes >> 20}")
        return super().__new__(cls, seconds, memory_bytes)

    @classmethod
    def from_env(cls) -> Limits:
        def number(name: str, default: float) -> float:
            text = os.environ.get(name, "").strip()
            if not text:
                return default
            try:
                return float(text)
            except ValueError:
                raise UsageError(f"{name} must be a number, got {text!r}") from None

        return cls(number(ENV_TIMEOUT, DEFAULT_TIMEOUT_S), int(number(ENV_MEMORY, DEFAULT_MEMORY_MB)) << 20)


@contextlib.contextmanager
def subject(label: str) -> Iterator[None]:
    """Name what the next native calls work on (e.g. "operator CONV_2D #3") for crash messages."""
    token = _subject.set(label)
    try:
        yield
    finally:
        _subject.reset(token)


def in_worker() -> bool:
    """True inside the worker process (calls there run directly)."""
    return os.environ.get(ENV_CHILD) == "1"


def _inline() -> bool:
    return in_worker() or os.environ.get(ENV_MODE, "").strip().lower() in ("inline", "off", "0")


def uses_worker() -> bool:
    """True when native calls go to a worker process (False inside the worker or with HWOPT_WORKER=inline)."""
    return not _inline()


_shm_failed = False  # a worker could not open shared memory once: every later call uses the pipes


def shares_memory() -> bool:
    """Whether large payloads cross to the worker through sealed shared memory (else through the pipes)."""
    return not _shm_failed and shared_memory.supported()


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


class Handle:
    """An object living in the worker (e.g. a LiteRT interpreter), used through `call_method`."""

    def __init__(self, worker: Worker, ident: int, generation: int, library: str) -> None:
        self.worker, self.ident, self.generation, self.library = worker, ident, generation, library

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.worker.request(("method", self.ident, method, args, kwargs), self.library, self.generation)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.worker.release(self.ident, self.generation)


class LocalHandle(Handle):
    """The in-process stand-in for a Handle (inside the worker, or with HWOPT_WORKER=inline)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.obj, method)(*args, **kwargs)

    def __del__(self) -> None:
        pass


class Worker:
    """One supervised worker process, started on first use and restarted after a failure."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits
        self._proc: subprocess.Popen[bytes] | None = None
        self._to: int = -1
        self._from: int = -1
        self._lock = threading.RLock()
        self._generation = 0
        self._pid = os.getpid()
        self._stale: list[int] = []
        self._shm = False  # this worker's wire uses shared memory (decided at its start)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, preload: tuple[str, ...] = ()) -> None:
        """Start the worker now; it imports `preload` in the background while the caller keeps working.

        Returns at once when another thread holds the worker (a call in flight): it is running then.
        """
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._pid != os.getpid():
                self._proc, self._to, self._from, self._pid = None, -1, -1, os.getpid()
            if self._proc is not None and self._proc.poll() is None:
                return
            self._spawn(preload)
        finally:
            self._lock.release()

    def _spawn(self, preload: tuple[str, ...] = ()) -> None:
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        env = dict(os.environ)
        env[ENV_CHILD] = "1"
        # `-S` (no `site`): the worker gets this process's import path whole, led by the folder holding
        # hwopt (an editable install's path finder is a `site` hook the worker then does without), and
        # starts ~20 ms sooner without reading the .pth files. It runs in that folder: `-m` puts the
        # working directory first on the path, and a folder named `hwopt` in the caller's working
        # directory (another checkout) would otherwise be the worker's hwopt. Its calls take no paths.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, *sys.path) if p)
        shm = shares_memory()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-m", "hwopt.isolation_worker", str(req_r), str(res_w), *((SHM_FLAG,) if shm else ()),
                 *preload],
                pass_fds=(req_r, res_w), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, cwd=_ROOT if os.path.isdir(_ROOT) else None,
            )
        finally:
            os.close(req_r)
            os.close(res_w)
        grow_pipe(req_w)
        grow_pipe(res_r)
        self._to, self._from = req_w, res_r
        self._shm = shm
        self._generation += 1
        self._stale.clear()

    def interrupt(self) -> None:
        """Kill the worker now, without waiting for a call another thread has in flight (that call
        then fails at once): for a caller that was interrupted while it waited."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()

    def close(self) -> None:
        """Stop the worker (it also exits by itself when its parent goes away)."""
        with self._lock:
            self._kill()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        for fd in (self._to, self._from):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to = self._from = -1
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)

    # -- calls -------------------------------------------------------------------------
    def call(self, target: str, *args: Any, library: str, **kwargs: Any) -> Any:
        """Run `module:function(*args, **kwargs)` in the worker and return its (pickled) result."""
        if _inline():
            return resolve(target)(*args, **kwargs)
        return self.request(("call", target, args, kwargs), library)

    def new(self, target: str, *args: Any, library: str, **kwargs: Any) -> Handle:
        """Construct `module:Class(*args, **kwargs)` in the worker; returns a handle to it."""
        if _inline():
            return LocalHandle(resolve(target)(*args, **kwargs))
        ident = self.request(("new", target, args, kwargs), library)
        return Handle(self, ident, self._generation, library)

    def release(self, ident: int, generation: int) -> None:
        if generation == self._generation and self._proc is not None:
            self._stale.append(ident)  # freed with the next request, never from a finaliser

    def request(self, message: tuple[Any, ...], library: str, generation: int | None = None) -> Any:
        with self._lock:
            if self._pid != os.getpid():  # a forked copy: never share the parent's pipes
                self._proc, self._to, self._from, self._pid = None, -1, -1, os.getpid()
            if generation is not None and generation != self._generation:
                raise NativeCodeError(f"{library} worker was restarted; its state is gone")
            if self._proc is None or self._proc.poll() is not None:
                self._kill()
                self._spawn()
            limits = self.limits or Limits.from_env()
            stale, self._stale = self._stale, []
            payload, oob = dumps((message, stale), self._shm)
            try:
                return self._exchange(payload, library, limits)
            except _NoSharedMemoryError:  # the worker cannot open this process's memory files: the pipes, from now on
                _pipes_only()
                self._shm = False
                payload, _ = dumps((message, stale), False)
                return self._exchange(payload, library, limits)
            finally:
                if oob is not None:  # the worker has read it (or is gone)
                    oob.close()

    def _exchange(self, payload: bytes, library: str, limits: Limits) -> Any:
        where = _subject.get()
        where_text = f" in {where}" if where else ""
        try:
            write_all(self._to, HEADER.pack(len(payload)))  # two writes: no second copy of a large payload
            write_all(self._to, payload)
            reply = self._read_reply(limits)
        except WorkerGoneError:
            code = self._reap()
            self._kill()
            how = f"({_signal_name(code)})" if code is not None and code < 0 else f"(exit status {code})"
            raise NativeCodeError(f"{library} crashed on this model {how}{where_text}") from None
        except _TimeoutError:
            self._kill()
            raise NativeCodeError(f"{library} did not finish within {limits.seconds:g} s on this model{where_text} "
                                  f"(limit set by {ENV_TIMEOUT})") from None
        except _OverMemoryError as exc:
            self._kill()
            raise NativeCodeError(f"{library} used more than {limits.memory_bytes >> 20} MiB on this model{where_text} "
                                  f"({exc.args[0] >> 20} MiB; limit set by {ENV_MEMORY})") from None
        except BaseException:  # KeyboardInterrupt or a signal handler's exit: the worker may be mid-call
            self._kill()
            raise
        status, value = reply
        if status == "ok":
            return value
        if status == "raise":
            raise value
        if status == NO_SHM:
            raise _NoSharedMemoryError(value)
        raise NativeCodeError(f"{library} failed{where_text}: {value}")

    def _reap(self) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def _read_reply(self, limits: Limits) -> tuple[str, Any]:
        deadline = time.monotonic() + limits.seconds
        buf = bytearray(HEADER.size)  # the header, then the whole reply, read in place
        view = memoryview(buf)
        got, need = 0, HEADER.size
        header_done = False
        assert self._proc is not None
        statm = f"/proc/{self._proc.pid}/statm"
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        while True:
            now = time.monotonic()
            if now > deadline:
                raise _TimeoutError
            ready, _, _ = select.select([self._from], [], [], min(_POLL_S, max(0.0, deadline - now)))
            if not ready:
                rss = _rss(statm, page)
                if rss > limits.memory_bytes:
                    raise _OverMemoryError(rss)
                continue
            n = os.readv(self._from, [view[got:need]])
            if not n:
                raise WorkerGoneError
            got += n
            if not header_done and got >= HEADER.size:
                (need,) = HEADER.unpack(buf)
                buf = bytearray(need)
                view, got, header_done = memoryview(buf), 0, True
            if header_done and got >= need:
                try:
                    return loads(buf) if self._shm else pickle.loads(buf)  # type: ignore[no-any-return]
                except shared_memory.SharedMemoryError as exc:  # this worker's memory files cannot be read here
                    _pipes_only()
                    self._kill()  # the next call starts a worker that replies through the pipe
                    return ("text", f"its reply could not be read ({exc}); the next call uses the pipes")
                except Exception as exc:  # an exception type that cannot be rebuilt here
                    return ("text", f"unreadable reply ({type(exc).__name__}: {exc})")



class _TimeoutError(Exception):
    pass


class _NoSharedMemoryError(Exception):
    pass


def _pipes_only() -> None:
    global _shm_failed
    _shm_failed = True


class _OverMemoryError(Exception):
    pass


def _rss(statm: str, page: int) -> int:
    try:
        with open(statm, "rb") as fh:
            return int(fh.read().split()[1]) * page
    except (OSError, ValueError, IndexError):
        return 0



_default: Worker | None = None
_default_lock = threading.Lock()


def worker() -> Worker:
    """The process-wide worker shared by every call site."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Worker()
        return _default


def shutdown() -> None:
    """Stop the shared worker, if one runs, and wait for it: the CLI does so at exit, so no worker
    outlives the command and the worker's CPU time is accounted to it."""
    with _default_lock:
        current = _default
    if current is not None:
        current.interrupt()  # a call still in flight in another thread (interrupted command) ends now
        current.close()


def interrupt() -> None:
    """Kill the shared worker at once, even while another thread waits on a call (see Worker.interrupt)."""
    with _default_lock:
        current = _default
    if current is not None:
        current.interrupt()


def prestart(*preload: str) -> None:
    """Start the shared worker early (importing `preload`) so its start-up overlaps the caller's work."""
    if not _inline():
        worker().start(preload)


def call(target: str, *args: Any, library: str, **kwargs: Any) -> Any:
    """Run `module:function` in the shared worker (in-process inside the worker itself)."""
    return worker().call(target, *args, library=library, **kwargs)
