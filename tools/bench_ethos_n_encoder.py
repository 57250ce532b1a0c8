#!/usr/bin/env python3
"""Benchmark the Ethos-N78 weight encoder on the four layer shapes at a given weight count.

Shapes (each scaled to about --weights weights, dense Gaussian int8, sigma 30): 1x1 convolution
with 1024 inputs, 3x3 convolution with 256 inputs, 3x3 depthwise, fully connected with 1024
inputs. Each is encoded under the support library's plan (`plan.py`) with `encode_layer` (the
bytes) and `encoded_size` (sizes only, what the estimator uses); one run each, one thread, every
shape in its own process so that its peak RSS is its own (the weights are generated in slices,
so the peak is the interpreter, the int8 weights and the encoder). Throughput in M weights/s by
wall-clock time and by the process's CPU time (on a loaded machine the wall figure drops with the
load; the CPU figure much less). The peak RSS of each shape's process is set against the memory
budget of every hwopt command, 4x the model file + 150 MiB, taking the int8 weights as the model
(a model file holding the layer is at least that large, so this budget is the stricter one).
Prints the load average and a markdown table.

Usage: python tools/bench_ethos_n_encoder.py [--weights 32000000] [--variant ethos-n78-4tops-4ple]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # measure one core

import argparse  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from hwopt.targets.ethos_n.plan import Kind, N78Layer, plan_layer  # noqa: E402
from hwopt.targets.ethos_n.sizing import plan_kwargs  # noqa: E402
from hwopt.targets.ethos_n.variants import VARIANTS  # noqa: E402
from hwopt.targets.ethos_n.weight_codec import encode_layer, encoded_size  # noqa: E402

RSS_FACTOR, RSS_FIXED = 4, 150 << 20  # the budget: 4x the model + 150 MiB (as tools/bench_scale.py)
SLICE = 1 << 20  # weights generated at a time (a float64 normal sample of the whole layer is 8 B/weight)


def layers(total: int) -> list[tuple[str, N78Layer, tuple[int, int, int, int]]]:
    """(name, layer, weight shape) of about `total` weights each."""
    o1 = max(16, total // 1024)
    o3 = max(16, total // (9 * 256))
    c_dw = max(16, total // 9)
    return [
        ("1x1 conv, 1024 inputs", N78Layer(Kind.CONV, (8, 8, 1024), (8, 8, o1)), (1, 1, 1024, o1)),
        ("3x3 conv, 256 inputs", N78Layer(Kind.CONV, (8, 8, 256), (8, 8, o3), (3, 3), (1, 1), (1, 1)),
         (3, 3, 256, o3)),
        ("3x3 depthwise", N78Layer(Kind.DEPTHWISE, (8, 8, c_dw), (8, 8, c_dw), (3, 3), (1, 1), (1, 1)),
         (3, 3, c_dw, 1)),
        ("fully connected, 1024 inputs", N78Layer(Kind.FULLY_CONNECTED, (1, 1, 1024), (1, 1, o1)), (1, 1, 1024, o1)),
    ]


def weights(shape: tuple[int, int, int, int], seed: int) -> np.ndarray:
    """Dense Gaussian int8 weights (sigma 30), generated a slice at a time."""
    rng = np.random.default_rng(seed)
    w = np.empty(shape, dtype=np.int8)
    flat = w.reshape(-1)
    for first in range(0, flat.size, SLICE):
        n = min(SLICE, flat.size - first)
        flat[first : first + n] = np.clip(np.round(rng.normal(0.0, 30.0, n)), -127, 127)
    return w


def run_one(index: int, total: int, variant: str) -> None:
    """Encode one shape (bytes, then sizes) and print its table row."""
    v = VARIANTS[variant]
    name, layer, shape = layers(total)[index]
    w = weights(shape, index)
    plan = plan_layer(layer, v)
    kw = plan_kwargs(layer, plan, v)
    wall, cpu = time.perf_counter(), time.process_time()
    enc = encode_layer(w, zero_point=0, **kw)
    t_enc, c_enc = time.perf_counter() - wall, time.process_time() - cpu
    bits = len(enc.data) * 8 / w.size
    del enc
    wall, cpu = time.perf_counter(), time.process_time()
    encoded_size(w, zero_point=0, **kw)
    t_size, c_size = time.perf_counter() - wall, time.process_time() - cpu
    desc = f"{plan.algorithm.value}, depth {plan.stripe_depth}, iteration {plan.iteration_size}"
    m = w.size / 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    budget = RSS_FACTOR * w.nbytes + RSS_FIXED
    print(f"| {name} | {w.size:,} | {desc} | {m / t_enc:.2f} / {m / c_enc:.2f} | {m / t_size:.2f} / {m / c_size:.2f} "
          f"| {bits:.3f} | {peak / 2**20:.0f} | {budget / 2**20:.0f} | {peak / budget:.2f} | {os.getloadavg()[0]:.1f} |",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--weights", type=int, default=32_000_000, help="weights per layer (default 32 M)")
    parser.add_argument("--variant", default="ethos-n78-4tops-4ple", choices=sorted(VARIANTS))
    parser.add_argument("--shape", type=int, help=argparse.SUPPRESS)  # one shape, in this process
    args = parser.parse_args()
    if args.shape is not None:
        run_one(args.shape, args.weights, args.variant)
        return
    print(f"Ethos-N78 encoder ({args.variant}), library plan, ~{args.weights:,} weights per layer, one run;"
          f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print()
    print("| layer | weights | plan | encode M weights/s (wall / CPU) | size-only M weights/s (wall / CPU) "
          "| bits/weight | peak RSS MiB | budget MiB | peak / budget | load |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for index in range(len(layers(args.weights))):
        subprocess.run([sys.executable, __file__, "--weights", str(args.weights), "--variant", args.variant,
                        "--shape", str(index)], check=True)
    print()
    print(f"load average after the run {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
