#!/usr/bin/env python3
"""Ethos-U encoder cost against a Vela compile of the same model, on the fully connected ladder.

For each model of the ladder (N FULLY_CONNECTED 1024x1024 int8 layers, half zeros; built
by tools/scale_models.py) and each target, measures in one process, back to back: Vela's
own compile (`ethosu.regor.compile`, called in this process), `hwopt encode --blocks rule`
(hwopt's work alone) and the default `hwopt encode` (Vela's block configuration: a compile
plus hwopt's work). hwopt runs Vela in its isolation worker, whose CPU time this process does
not see, so the default's CPU time is this process's plus the bare compile's. CPU time is
reported beside wall time, because on a shared machine wall time mostly measures the other
processes. Prints a markdown table.

Usage: python tools/bench_encode_speed.py [--layers 2 8 32] [--targets ethos-u55-128 ethos-u85-256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def main(argv: list[str] | None = None) -> int:
    from scale_models import fc_model  # the tools folder is on sys.path (above)

    from hwopt.engines.encode import encode
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u.vela_config import options_text, regor_arch, system_config_text
    from hwopt.targets.ethos_u.vela_engine import _regor_in_worker

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--targets", nargs="+", default=["ethos-u55-128", "ethos-u85-256"])
    args = parser.parse_args(argv)
    print("| target | model | weights | Vela compile CPU (wall) | encode --blocks rule CPU (wall) | ratio | "
          "encode (Vela blocks) CPU (wall) | ratio | M weights/s (rule, CPU) |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.layers:
            path = Path(tmp) / f"fc-{n}.tflite"
            path.write_bytes(fc_model(n))
            data = path.read_bytes()
            weights = n * 1024 * 1024
            for name in args.targets:
                target = resolve_target(name)
                call = (regor_arch(target), data, system_config_text(target), options_text(target, None))
                vela = _timed(lambda: _regor_in_worker(*call))  # noqa: B023 - called at once
                rule = _timed(lambda: encode(path, target, block_source="rule"))  # noqa: B023
                hw = _timed(lambda: encode(path, target))  # noqa: B023
                default = (hw[0] + vela[0], hw[1])
                print(f"| {name} | fc-{n} | {weights:,} | {vela[0]:.2f} s ({vela[1]:.2f}) | {rule[0]:.2f} s "
                      f"({rule[1]:.2f}) | {rule[0] / vela[0]:.1f}x | {default[0]:.2f} s ({default[1]:.2f}) | "
                      f"{default[0] / vela[0]:.1f}x | {weights / rule[0] / 1e6:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
