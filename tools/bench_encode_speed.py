#!/usr/bin/env python3
"""Ethos-U encoder cost against a Vela compile of the same model, on the fully connected ladder.

For each model of the ladder (N FULLY_CONNECTED 1024x1024 int8 layers, half zeros; built
by tools/scale_models.py) and each target, runs alternately in one process, `--runs` times:
Vela's own compile (`ethosu.regor.compile`, in the isolation worker), the default `hwopt
encode` (`--blocks vela`: a compile with Vela's database in the isolation worker, whose streams
it takes) and, with `--rule`, `hwopt encode --blocks rule` (hwopt's block searches and its own
encoder on every layer, no compile; a large model's layers shared with the isolation worker). CPU time counts
this process and the isolation worker (read from /proc), so it is
the whole cost of the command; on a shared machine wall time mostly measures the other
processes, so both are printed, with the load average. Prints a markdown table of medians.

Usage: python tools/bench_encode_speed.py [--layers 2 8 32] [--targets ethos-u55-128 ethos-u85-256]
                                          [--runs 3] [--rule]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import worker_cpu_seconds


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds of this process and the worker, wall seconds) of one call."""
    c0, k0, w0 = time.process_time(), worker_cpu_seconds(), time.perf_counter()
    fn()
    return time.process_time() - c0 + worker_cpu_seconds() - k0, time.perf_counter() - w0


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def main(argv: list[str] | None = None) -> int:
    from scale_models import fc_model  # the tools folder is on sys.path (above)

    from hwopt.engines.encode import encode
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u.vela_config import options_text, regor_arch, system_config_text
    from hwopt.targets.ethos_u.vela_engine import _regor_in_worker

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--targets", nargs="+", default=["ethos-u55-128", "ethos-u85-256"])
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per cell (median)")
    parser.add_argument("--rule", action="store_true", help="also time `encode --blocks rule` (hwopt's block searches "
                        "and encoder, no compile)")
    args = parser.parse_args(argv)
    head = ("| target | model | weights | load | Vela compile CPU (wall) | `encode` CPU (wall) | ratio CPU (wall) |"
            + (" `encode --blocks rule` CPU (wall) | ratio CPU |" if args.rule else "") + " M weights/s (`encode`, CPU) |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.tflite"
        warm.write_bytes(fc_model(1, 64))
        encode(warm, resolve_target(args.targets[0]))  # starts the worker and imports Vela in it
        for n in args.layers:
            path = Path(tmp) / f"fc-{n}.tflite"
            path.write_bytes(fc_model(n))
            data = path.read_bytes()
            weights = n * 1024 * 1024
            for name in args.targets:
                target = resolve_target(name)
                call = (regor_arch(target), data, system_config_text(target), options_text(target, None))
                vela, hw, other = [], [], []
                loads = [_load()]
                for _ in range(args.runs):
                    vela.append(_timed(lambda: _regor_in_worker(*call)))  # noqa: B023 - called at once
                    hw.append(_timed(lambda: encode(path, target)))  # noqa: B023
                    if args.rule:
                        other.append(_timed(lambda: encode(path, target, block_source="rule")))  # noqa: B023
                loads.append(_load())

                def med(xs: list[tuple[float, float]], k: int) -> float:
                    return statistics.median(x[k] for x in xs)

                v_c, v_w, h_c, h_w = med(vela, 0), med(vela, 1), med(hw, 0), med(hw, 1)
                row = (f"| {name} | fc-{n} | {weights:,} | {'-'.join(loads)} | {v_c:.2f} s ({v_w:.2f}) | "
                       f"{h_c:.2f} s ({h_w:.2f}) | **{h_c / v_c:.2f}x** ({h_w / v_w:.2f}x) |")
                if args.rule:
                    o_c, o_w = med(other, 0), med(other, 1)
                    row += f" {o_c:.2f} s ({o_w:.2f}) | {o_c / v_c:.2f}x |"
                print(row + f" {weights / h_c / 1e6:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
