"""The DEFLATE size computed beside the caller: in a thread, or in a forked child process
(`deflate_core.Compressing`) that shares a sampled size's pieces with the caller once the
caller is ready for the figure.
"""

from __future__ import annotations

import os
import threading

from hwopt.analysis.deflate import DeflateMethod, DeflateSize, measure_deflate, sampled_size
from hwopt.analysis.deflate_core import Compressing, piece_bytes, plan_for


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
        self._child: Compressing | None = None
        self._thread: threading.Thread | None = None
        if process and hasattr(os, "fork") and threading.active_count() == 1:
            self._child = Compressing.start(data, name, exact=exact)
        if self._child is None:
            self._thread = threading.Thread(target=self._run, name="hwopt-deflate", daemon=True)
            self._thread.start()

    @classmethod
    def adopt(cls, child: Compressing) -> DeflateJob:
        """The job of a child the caller forked itself (`deflate_core.compress_file`)."""
        job = cls.__new__(cls)
        job.data, job.name, job.exact = child.data, child.name, child.exact
        job._size, job._child, job._thread = None, child, None
        return job

    def _measure(self) -> DeflateSize:
        return measure_deflate(self.data, self.name, exact=self.exact)

    def _run(self) -> None:
        self._size = self._measure()

    def cancel(self) -> None:
        """Stop a child that is no longer needed (the caller failed); a thread just finishes."""
        if self._child is not None:
            child, self._child = self._child, None
            child.cancel()

    def result(self) -> DeflateSize:
        if self._child is not None:
            child, self._child = self._child, None
            try:
                self._size = self._collect(child.fd)
            finally:
                child.cancel()  # reaped; still compressing, it would only redo a piece the caller has
        elif self._thread is not None:
            self._thread.join()
        if self._size is None:  # a child that died (killed, out of memory) reported nothing: measure here
            self._size = self._measure()
        return self._size

    def _collect(self, r: int) -> DeflateSize | None:
        """The child's figure from its pipe, completed here where the child has not finished a sample."""
        # Compress here only while no other thread runs: one that holds the GIL in native code
        # (a Vela compile) would stall every zlib call made here; waiting for the child is then faster.
        share = threading.active_count() == 1
        os.set_blocking(r, not share)
        lines, pending, ended = _read_lines(r, block=not share)
        plan = None if _figure(lines) else plan_for(self.data, self.exact)
        if plan is None:  # the child's figure is in, or only the child's whole-file stream will do
            os.set_blocking(r, True)
            while not _figure(lines) and not ended:
                more, pending, ended = _read_lines(r, block=True, pending=pending)
                lines += more
            return _figure(lines)
        sizes: list[int | None] = [None] * len(plan.pieces)
        view = memoryview(self.data).cast("B")
        mine = len(sizes) - 1
        while True:
            if (figure := _figure(lines)) is not None:  # the child finished first
                return figure
            for line in lines:
                if len(line) == 2 and line[0].isdigit() and line[1].isdigit() and int(line[0]) < len(sizes):
                    sizes[int(line[0])] = int(line[1])
            while mine >= 0 and sizes[mine] is not None:
                mine -= 1
            if mine < 0:
                break
            if share or ended:  # the child's share is not in yet, or the child died: take the next piece
                start, end = plan.pieces[mine]
                sizes[mine] = piece_bytes(view, start, end)
            lines, pending, ended = _read_lines(r, block=not share, pending=pending)
        return sampled_size(self.name, len(self.data), plan.estimate([int(n) for n in sizes if n is not None]))


def _read_lines(r: int, *, block: bool, pending: bytes = b"") -> tuple[list[list[str]], bytes, bool]:
    """The whole lines the child has written so far, split into words (everything until it exits
    when `block`), the unfinished rest, and whether the child has closed its end."""
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
    return [line.decode("ascii", "replace").split() for line in whole], rest, ended


def _figure(lines: list[list[str]]) -> DeflateSize | None:
    """The child's own figure ("= bytes method max_error"), if one of `lines` is it."""
    for line in lines:
        if len(line) == 4 and line[0] == "=":
            try:
                return DeflateSize(int(line[1]), DeflateMethod(line[2]), float(line[3]))
            except ValueError:
                return None
    return None
