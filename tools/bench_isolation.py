#!/usr/bin/env python3
"""Cost of running Vela in the isolation worker instead of in the hwopt process.

    python tools/bench_isolation.py [--repeats 5] [MODEL ...]

Two measurements, each alternating the two modes in one run (the machine is noisy):
1. whole `hwopt compile` processes, HWOPT_WORKER=inline vs the default worker (start-up included,
   overlapped with reading and auditing the model);
2. warm calls in one process: `vela_engine.compile_model` inline vs through the running worker.
Prints medians and the ratios (goal: a compile costs at most ~10 % more through the worker).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET = "ethos-u55-128"


def _cli(model: Path, inline: bool, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if inline:
        env["HWOPT_WORKER"] = "inline"
    else:
        env.pop("HWOPT_WORKER", None)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hwopt", "compile", str(model), "--target", TARGET, "-o", str(out)],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _warm(model: Path, inline: bool) -> float:
    from hwopt.targets import resolve_target as load_target
    from hwopt.targets.ethos_u.vela_engine import compile_model

    if inline:
        os.environ["HWOPT_WORKER"] = "inline"
    else:
        os.environ.pop("HWOPT_WORKER", None)
    data = model.read_bytes()
    target = load_target(TARGET)
    start = time.perf_counter()
    compile_model(data, target)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    models = args.models or [ROOT / "hwopt" / "example" / "example_int8.tflite"]
    print("| model | size | process inline | process worker | ratio | warm inline | warm worker | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for model in models:
        cli = {True: [], False: []}
        warm = {True: [], False: []}
        with tempfile.TemporaryDirectory() as tmp:
            _warm(model, False)  # start the worker and import Regor in both processes once
            _warm(model, True)
            for _ in range(args.repeats):
                for inline in (True, False):
                    cli[inline].append(_cli(model, inline, Path(tmp) / "o"))
                    warm[inline].append(_warm(model, inline))
        c_in, c_w = statistics.median(cli[True]), statistics.median(cli[False])
        w_in, w_w = statistics.median(warm[True]), statistics.median(warm[False])
        print(f"| {model.name} | {model.stat().st_size / 1024:.0f} KiB | {c_in:.2f} s | {c_w:.2f} s | {c_w / c_in:.2f} "
              f"| {w_in * 1000:.0f} ms | {w_w * 1000:.0f} ms | {w_w / w_in:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
