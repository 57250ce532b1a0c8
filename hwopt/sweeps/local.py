"""Local execution engines: in-process (one worker) and a pool of worker processes (no extra dependency).

The pool gives each worker its own pipe, so the driver always knows which job a worker
holds: when a worker dies (killed, crashed in native code, out of memory) exactly that job
is queued again on a fresh worker, up to `MAX_ATTEMPTS` times, and the others carry on.
Model and data bytes go to each worker once, keyed by their hash, not once per job.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hwopt.errors import UsageError
from hwopt.sweeps.job import Job, execute
from hwopt.sweeps.records import Outcome

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # a job whose worker dies this many times is reported as failed
Done = Callable[[Outcome], None]


class Engine(Protocol):
    """Runs jobs and hands each outcome to `done` as it arrives (in any order)."""

    name: str
    retried: int

    def run(self, jobs: Sequence[Job], blobs: Mapping[str, bytes], done: Done) -> None: ...


class SerialEngine:
    """Every job in this process, one after the other."""

    name = "serial"

    def __init__(self) -> None:
        self.retried = 0

    def run(self, jobs: Sequence[Job], blobs: Mapping[str, bytes], done: Done) -> None:
        for job in jobs:
            done(execute(job, blobs[job.model_sha], blobs[job.data_sha] if job.data_sha else None))


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    """A pool worker: keep the blobs it is sent, run the jobs it is given, send back outcomes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers
    blobs: dict[str, bytes] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if msg is None:
            return
        kind, payload = msg
        if kind == "blob":
            sha, data = payload
            blobs[sha] = data
        else:
            job: Job = payload
            outcome = execute(job, blobs[job.model_sha], blobs[job.data_sha] if job.data_sha else None)
            try:
                conn.send(outcome)
            except OSError:  # the driver is gone (interrupted): nothing left to report to
                return


@dataclass
class _Worker:
    process: Any
    conn: multiprocessing.connection.Connection
    sent: set[str] = field(default_factory=set)
    job: Job | None = None


def _context() -> Any:
    """Workers fork from a server process that has imported the engines once (cheap start, no state
    shared with the driver, safe with threads); plain spawn where forkserver does not exist."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


class ProcessPoolEngine:
    """`workers` processes, each running one job at a time."""

    name = "local"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise UsageError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.retried = 0
        self._ctx = _context()
        self._pool: list[_Worker] = []

    def busy_pids(self) -> list[int]:
        """Process ids of the workers running a job now."""
        return [w.process.pid for w in self._pool if w.job is not None and w.process.pid is not None]

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_worker_main, args=(child,), daemon=True, name="hwopt-sweep-worker")
        proc.start()
        child.close()
        return _Worker(proc, parent)

    @staticmethod
    def _stop(w: _Worker, wait: float) -> None:
        with contextlib.suppress(OSError):
            w.conn.send(None)
        w.process.join(timeout=wait)
        if w.process.is_alive():
            w.process.kill()
            w.process.join()
        w.conn.close()

    def _assign(self, w: _Worker, job: Job, blobs: Mapping[str, bytes]) -> None:
        for sha in (job.model_sha, job.data_sha):
            if sha is not None and sha not in w.sent:
                w.conn.send(("blob", (sha, blobs[sha])))
                w.sent.add(sha)
        w.conn.send(("job", job))
        w.job = job

    def run(self, jobs: Sequence[Job], blobs: Mapping[str, bytes], done: Done) -> None:
        queue = deque(jobs)
        attempts: dict[str, int] = {}
        self._pool = [self._start() for _ in range(min(self.workers, len(queue)))]
        finished = False
        try:
            while queue or any(w.job is not None for w in self._pool):
                for i, w in enumerate(self._pool):
                    if w.job is None and queue:
                        job = queue.popleft()
                        try:
                            self._assign(w, job, blobs)
                        except OSError:  # the worker died while idle: start another and retry there
                            queue.appendleft(job)
                            w.job = None
                            self._replace(i)
                busy = [w for w in self._pool if w.job is not None]
                if not busy:
                    continue
                waitables: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
                ready = set(multiprocessing.connection.wait(waitables))
                for w in busy:
                    if w.conn not in ready and w.process.sentinel not in ready:
                        continue
                    held = w.job
                    assert held is not None
                    try:
                        outcome: Outcome = w.conn.recv()
                    except (EOFError, OSError):
                        outcome = None  # type: ignore[assignment]
                    if outcome is not None:
                        w.job = None
                        done(outcome)
                        continue
                    code = w.process.exitcode
                    n = attempts[held.key] = attempts.get(held.key, 0) + 1
                    log.warning("a sweep worker died (exit code %s) running job %s; attempt %d of %d",
                                code, held.key[:12], n, MAX_ATTEMPTS)
                    self._replace(self._pool.index(w))
                    if n >= MAX_ATTEMPTS:
                        done(Outcome.failure(held.key, f"worker died {n} times running this job (last exit code {code})",
                                             cacheable=False))
                    else:
                        self.retried += 1
                        queue.appendleft(held)
            finished = True
        finally:  # idle workers exit at once; after an interrupt, busy ones are killed (their jobs rerun later)
            for w in self._pool:
                self._stop(w, 5.0 if finished else 0.0)
            self._pool = []

    def _replace(self, index: int) -> None:
        old = self._pool[index]
        old.job = None
        if old.process.is_alive():
            old.process.kill()
        old.process.join()
        old.conn.close()
        self._pool[index] = self._start()
