"""What the benchmark tools share: the CPU time of hwopt's isolation worker, which runs Vela and
LiteRT in a process of its own, so that a command's CPU figure can include it."""

from __future__ import annotations

import os
from pathlib import Path


def worker_cpu_seconds() -> float:
    """CPU seconds (user + system) hwopt's isolation worker has used so far (0 when none runs)."""
    from hwopt import isolation

    proc = isolation.worker()._proc  # a benchmark reads the worker's pid
    if proc is None or proc.poll() is not None:
        return 0.0
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
