#!/usr/bin/env python3
"""Benchmark `hwopt audit --json` against a Vela compile of the same model, in the same run.

Prints the whole-process wall time (median of N runs, interleaved) of
    hwopt audit --json MODEL
    vela --accelerator-config ethos-u55-128 --output-dir TMP MODEL
and their ratio (target <= 0.2), plus `python -c "import hwopt"` (target <= 0.3 s).
Subprocesses run with bytecode caching on (in a temporary cache folder), as an installed
package runs; one warm-up run of each comes first.

Usage: python tools/bench_audit.py [MODEL] [--runs N] [--check]
  MODEL defaults to ../shared/models/mobilenet_v2_1.0_224_INT8.tflite (HWOPT_SHARED_MODELS
  overrides the folder); --check exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
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


def wall(cmd: list[str], env: dict[str, str]) -> float:
    """Wall-clock seconds of one run; the command must succeed (exit 0 or 1 for findings)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench_audit: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", type=Path, default=default_model())
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    if not args.model.is_file():
        print(f"bench_audit: model not found: {args.model}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hwopt-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp, "pycache"))
        out_dir = Path(tmp, "vela")
        out_dir.mkdir()
        audit_cmd = [*tool("hwopt"), "audit", "--json", str(args.model)]
        vela_cmd = [*tool("vela"), "--accelerator-config", "ethos-u55-128", "--output-dir", str(out_dir),
                    str(args.model)]
        import_cmd = [sys.executable, "-c", "import hwopt"]
        times: dict[str, list[float]] = {"audit": [], "vela": [], "import": []}
        for cmd in (audit_cmd, vela_cmd, import_cmd):
            wall(cmd, env)  # warm-up: fills the bytecode cache and the page cache
        for _ in range(args.runs):
            times["audit"].append(wall(audit_cmd, env))
            times["vela"].append(wall(vela_cmd, env))
            times["import"].append(wall(import_cmd, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["audit"] / med["vela"]
    ok_ratio, ok_import = ratio <= RATIO_TARGET, med["import"] <= IMPORT_TARGET_S
    print(f"model: {args.model.name} ({args.model.stat().st_size:,} bytes), median of {args.runs}")
    print(f"hwopt audit --json        {med['audit']:.3f} s")
    print(f"vela (ethos-u55-128)      {med['vela']:.3f} s")
    print(f"ratio audit / vela        {ratio:.3f}  (target <= {RATIO_TARGET}: {'ok' if ok_ratio else 'MISSED'})")
    print(f"python -c 'import hwopt'  {med['import']:.3f} s  (target <= {IMPORT_TARGET_S} s: "
          f"{'ok' if ok_import else 'MISSED'})")
    return 1 if args.check and not (ok_ratio and ok_import) else 0


if __name__ == "__main__":
    raise SystemExit(main())
