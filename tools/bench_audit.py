#!/usr/bin/env python3
"""Benchmark `hwopt audit --json` against a Vela compile of the same model, in the same run.

Prints the whole-process wall time and CPU time (median of N runs, interleaved) of
    hwopt audit --json MODEL                  (DEFLATE size sampled above 1 MiB)
    hwopt audit --json --exact-deflate MODEL  (the whole file compressed)
    vela --accelerator-config ethos-u55-128 --output-dir TMP MODEL
and the ratios of the audits to Vela (target <= 0.2 for the default audit), plus
`python -c "import hwopt"` (target <= 0.3 s), the DEFLATE figure the audit reported and
the load average before and after (the machine is shared: compare ratios measured in one run).
Subprocesses run with bytecode caching on (in a temporary cache folder), as an installed
package runs; one warm-up run of each comes first.

Usage: python tools/bench_audit.py [MODEL] [--runs N] [--check]
  MODEL defaults to ../shared/models/mobilenet_v2_1.0_224_INT8.tflite (HWOPT_SHARED_MODELS
  overrides the folder); --check exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RATIO_TARGET = 0.2
IMPORT_TARGET_S = 0.3


def default_model() -> Path:
    folder = Path(os.environ.get("HWOPT_SHARED_MODELS", ROOT.parent / "shared" / "models"))
    return folder / "mobilenet_v2_1.0_224_INT8.tflite"


def tool(name: str) -> list[str]:
    """The console script installed beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"bench_audit: {name} not found")
    return [found]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    """(wall seconds, CPU seconds of the process and its threads, stdout) of one run; it must exit 0 or 1."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        if code not in (0, 1):
            err.seek(0)
            raise SystemExit(f"bench_audit: {' '.join(cmd)} failed ({code}): {err.read().decode()[-500:]}")
        out.seek(0)
        return elapsed, usage.ru_utime + usage.ru_stime, out.read()


def cores() -> int:
    """CPUs this process may run on (the audit makes the same count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", type=Path, default=default_model())
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    if not args.model.is_file():
        print(f"bench_audit: model not found: {args.model}", file=sys.stderr)
        return 2
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="hwopt-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp, "pycache"))
        out_dir = Path(tmp, "vela")
        out_dir.mkdir()
        cmds = {
            "audit": [*tool("hwopt"), "audit", "--json", str(args.model)],
            "exact": [*tool("hwopt"), "audit", "--json", "--exact-deflate", str(args.model)],
            "vela": [*tool("vela"), "--accelerator-config", "ethos-u55-128", "--output-dir", str(out_dir),
                     str(args.model)],
            "import": [sys.executable, "-c", "import hwopt"],
        }
        wall: dict[str, list[float]] = {k: [] for k in cmds}
        cpu: dict[str, list[float]] = {k: [] for k in cmds}
        for cmd in cmds.values():
            timed(cmd, env)  # warm-up: fills the bytecode cache and the page cache
        report = json.loads(timed(cmds["audit"], env)[2])["model"]
        for _ in range(args.runs):
            for name, cmd in cmds.items():  # interleaved: every round sees the same load
                w, c, _out = timed(cmd, env)
                wall[name].append(w)
                cpu[name].append(c)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    ratio = med["audit"] / med["vela"]
    ok_ratio, ok_import = ratio <= RATIO_TARGET, med["import"] <= IMPORT_TARGET_S
    d = report["deflate"]
    print(f"model: {args.model.name} ({args.model.stat().st_size:,} bytes), median of {args.runs}, "
          f"load average {load_before} before, {load()} after, {cores()} CPU(s) free to this process "
          "(the audit's statistics use two threads when two are free and the model holds >= 1 Mi weights)")
    print(f"DEFLATE: {d['bytes']:,} bytes, {d['method']}, max_error {d['max_error']}")
    print(f"{'':34s} {'wall':>8s} {'CPU':>8s} {'wall/vela':>10s} {'CPU/vela':>9s}")
    for name, label in (("audit", "hwopt audit --json"), ("exact", "hwopt audit --json --exact-deflate"),
                        ("vela", "vela (ethos-u55-128)"), ("import", "python -c 'import hwopt'")):
        print(f"{label:34s} {med[name]:7.3f}s {cmed[name]:7.3f}s {med[name] / med['vela']:10.3f} "
              f"{cmed[name] / cmed['vela']:9.3f}")
    print(f"ratio audit / vela {ratio:.3f} (target <= {RATIO_TARGET}: {'ok' if ok_ratio else 'MISSED'}); "
          f"import {med['import']:.3f} s (target <= {IMPORT_TARGET_S} s: {'ok' if ok_import else 'MISSED'})")
    return 1 if args.check and not (ok_ratio and ok_import) else 0


if __name__ == "__main__":
    raise SystemExit(main())
