"""The DEFLATE size computed beside the caller: in a thread, or in a forked child process that
shares a sampled size's pieces with the caller once the caller is ready for the figure.

Kept free of numpy and of the flatbuffer bindings (as `deflate` is) so the CLI can fork the
child before the analysis modules are even imported: a small process to fork.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

from hwopt.analysis.deflate import (
    DeflateMethod,
    DeflateSize,
    deflate_size,
    measure_deflate,
    piece_bytes,
    plan_for,
    sampled_size,
)
from hwopt.errors import HwoptError
from hwopt.fileio import read_input_file


class DeflateJob:
    """`measure_deflate(data, name, exact=exact)` computed beside the caller; `result()` waits for it.

    By default in a daemon thread (zlib releases the GIL while it compresses). With
    `process=True`, in a forked child process instead, for callers whose main thread then
    holds the GIL in native code for seconds (Vela's Regor compile does, and a thread's
    zlib call needs the GIL back each time its output buffer grows). Where fork is not
    available or other threads run (forking them is unsafe), it falls back to a thread.
    A sampled size's pieces are independent: the child reports each as it is done, and a
    caller that asks for the result before the child has finished compresses the remaining
    pieces itself, from the last one down, so the two processes share the rest on two cores.
    """

    def __init__(self, data: bytes, name: str = "model.tflite", *, process: bool = False, exact: bool = False) -> None:
        self.data, self.name, self.exact = data, name, exact
        self._size: DeflateSize | None = None
        self._child: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        if process and hasattr(os, "fork") and threading.active_count() == 1:
            self._child = self._fork()
        if self._child is None:
            self._thread = threading.Thread(target=self._run, name="hwopt-deflate", daemon=True)
            self._thread.start()

    def _measure(self) -> DeflateSize:
        return measure_deflate(self.data, self.name, exact=self.exact)

    def _fork(self) -> tuple[int, int] | None:
        try:
            r, w = os.pipe()
            pid = os.fork()
        except OSError:
            return None
        if pid == 0:  # the child: compress, report, leave without running any cleanup
            try:
                os.close(r)
                plan = plan_for(self.data, self.exact)
                if plan is None:
                    size = deflate_size(self.data, self.name)
                    os.write(w, f"= {size}\n".encode())
                else:  # one line per piece, as each is done: the caller may take over the rest
                    view = memoryview(self.data).cast("B")
                    for i, (start, end) in enumerate(plan.pieces):
                        os.write(w, f"{i} {piece_bytes(view, start, end)}\n".encode())
            finally:
                os._exit(0)
        os.close(w)
        return pid, r

    def _run(self) -> None:
        self._size = self._measure()

    def cancel(self) -> None:
        """Stop a child that is no longer needed (the caller failed); a thread just finishes."""
        if self._child is not None:
            pid, r = self._child
            self._child = None
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            os.close(r)
            os.waitpid(pid, 0)

    def result(self) -> DeflateSize:
        if self._child is not None:
            pid, r = self._child
            self._child = None
            try:
                self._size = self._collect(r)
            finally:
                os.close(r)
                with contextlib.suppress(OSError):  # still compressing a piece the caller already has
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        elif self._thread is not None:
            self._thread.join()
        if self._size is None:  # a child that died (killed, out of memory) reported nothing: measure here
            self._size = self._measure()
        return self._size

    def _collect(self, r: int) -> DeflateSize | None:
        """The child's figure from its pipe, completed here where the child has not finished a sample."""
        plan = plan_for(self.data, self.exact)
        if plan is None:  # one stream over the whole file: only the child's figure will do
            lines = _read_lines(r, block=True)[0]
            return DeflateSize(int(lines[0][1]), DeflateMethod.EXACT, 0.0) if lines and lines[0][0] == "=" else None
        sizes: list[int | None] = [None] * len(plan.pieces)
        # Compress here only while no other thread runs: one that holds the GIL in native code
        # (a Vela compile) would stall every zlib call made here; waiting for the child is then faster.
        share = threading.active_count() == 1
        view = memoryview(self.data).cast("B")
        mine = len(sizes) - 1
        pending = b""
        os.set_blocking(r, not share)
        while True:
            lines, pending, ended = _read_lines(r, block=not share, pending=pending)
            for index, size in lines:
                if index.isdigit() and int(index) < len(sizes):
                    sizes[int(index)] = int(size)
            while mine >= 0 and sizes[mine] is not None:
                mine -= 1
            if mine < 0:
                break
            if share or ended:  # the child's share is not in yet, or the child died: take the next piece
                start, end = plan.pieces[mine]
                sizes[mine] = piece_bytes(view, start, end)
        return sampled_size(self.name, len(self.data), plan.estimate([int(n) for n in sizes if n is not None]))

    @classmethod
    def for_file(cls, path: str | os.PathLike[str], *, exact: bool = False,
                 process: bool = False) -> DeflateJob | None:
        """Start on a readable regular file within the size limit; None otherwise (the reader reports why)."""
        try:
            data = read_input_file(path)
        except HwoptError:
            return None
        return cls(data, Path(path).name or "model.tflite", exact=exact, process=process)


def _read_lines(r: int, *, block: bool, pending: bytes = b"") -> tuple[list[tuple[str, str]], bytes, bool]:
    """Whole "a b" lines the child has written so far (everything until it exits when `block`),
    the unfinished rest, and whether the child has closed its end."""
    ended = False
    while True:
        try:
            chunk = os.read(r, 4096)
        except BlockingIOError:
            break
        if not chunk:
            ended = True
            break
        pending += chunk
    *whole, rest = pending.split(b"\n")
    lines = []
    for line in whole:
        parts = line.decode("ascii", "replace").split()
        if len(parts) == 2 and parts[1].isdigit():
            lines.append((parts[0], parts[1]))
    return lines, rest, ended
