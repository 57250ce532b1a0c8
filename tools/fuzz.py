#!/usr/bin/env python3
"""Long structure-aware fuzz campaign over every hwopt command (see tests/structfuzz.py).

    python tools/fuzz.py --cases 20000 --per-case 2 [--seed N] [--report fuzz.json]

Mutates the object tree of the bundled example model and the small shared models, runs
sampled commands in-process per case and prints: cases, command runs per command, exit-code
counts, the slowest case, peak memory (this process and its isolation worker) and every
contract breach (exit 3, traceback, native crash or hang, modified input). Exit 1 on any breach.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import structfuzz as sf  # noqa: E402 - found through tests/

SOURCES = ("hello_world_int8.tflite", "micro_speech_quantized.tflite", "ds_cnn_s_quantized_int16.tflite",
           "mlperftiny_resnet8_int8.tflite", "derived/ic_resnet8_pruned50_clustered16_int8.tflite", "dnn_s_quantized.tflite")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM between two commands: stop and report, as for SIGINT


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20000)
    ap.add_argument("--per-case", type=int, default=2, help="commands sampled per case (default 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "models")
    ap.add_argument("--report", type=Path, help="write the figures and breaches as JSON")
    ap.add_argument("--mix", choices=("quick", "full"), default="full",
                    help="command shares: full (Vela-backed commands often) or quick (the test suite's)")
    args = ap.parse_args()
    sf.worker_limits()
    signal.signal(signal.SIGTERM, _stop)
    sources = sf.load_sources(ROOT / "hwopt" / "example" / "example_int8.tflite",
                              args.shared if args.shared.is_dir() else None, SOURCES)
    cases = sf.cases(sources, args.cases, args.seed)
    rng = random.Random(args.seed)
    per_command: Counter[str] = Counter()
    codes: Counter[int] = Counter()
    breaches: list[dict[str, object]] = []
    slowest = (0.0, "", "")
    start = time.perf_counter()
    done = 0
    with tempfile.TemporaryDirectory(prefix="hwopt-fuzz-") as tmp:
        try:
            for i, case in enumerate(cases):
                shares = sf.FULL if args.mix == "full" else sf.QUICK
                for o in sf.run_case(case, Path(tmp) / f"c{i % 16}", rng, args.per_case, shares):
                    if o.code in (130, 143):  # SIGINT/SIGTERM reached hwopt's own handler: stop the campaign there
                        raise KeyboardInterrupt
                    per_command[o.command] += 1
                    codes[o.code] += 1
                    if o.seconds > slowest[0]:
                        slowest = (o.seconds, f"{case.source} [{case.mutation}]", o.command)
                    if o.defect:
                        breaches.append({"source": case.source, "mutation": case.mutation, "command": o.command,
                                         "error": o.error})
                        print(f"BREACH {case.source} [{case.mutation}] {o.command}: {o.error}", flush=True)
                done = i + 1
                if done % 250 == 0:
                    print(f"{done} cases, {sum(per_command.values())} runs, {len(breaches)} breaches, "
                          f"{time.perf_counter() - start:.0f} s", flush=True)
        except KeyboardInterrupt:  # stop early (SIGINT, SIGTERM) and still report what ran
            print(f"interrupted after {done} cases", flush=True)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss >> 10
    figures = {
        "cases": done, "command_runs": sum(per_command.values()), "per_command": dict(sorted(per_command.items())),
        "exit_codes": {str(k): v for k, v in sorted(codes.items())}, "seconds": round(time.perf_counter() - start, 1),
        "slowest": {"seconds": round(slowest[0], 2), "case": slowest[1], "command": slowest[2]},
        "peak_rss_mib": {"hwopt": own, "worker": worker}, "breaches": breaches,
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "breaches"}, indent=2))
    print(f"{len(breaches)} breaches")
    if args.report:
        args.report.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
