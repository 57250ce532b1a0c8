#!/usr/bin/env python3
"""Benchmark the Ethos-N78 weight encoder against Vela's Ethos-U `mlw_codec.encode` on the same data.

Encodes a ~1M-weight 3x3x256x448 int8 layer of three kinds (dense Gaussian sigma=30, 50 % sparse,
16 clusters) and prints one markdown table: throughput (best of N runs, one thread, weights/s) and
encoded size (bits/weight) for both encoders. mlw_codec gets the flattened zero-point-corrected
weights as a Python list, prepared outside the timed region.

Usage: python tools/bench_ethos_n_encoder.py [--variant ethos-n78-4tops-4ple] [--repeats 3]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # measure one core

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from typing import TypeVar  # noqa: E402

import numpy as np  # noqa: E402

from hwopt.targets.ethos_n.variants import VARIANTS  # noqa: E402
from hwopt.targets.ethos_n.weight_codec import encode_layer  # noqa: E402

SHAPE = (3, 3, 256, 448)  # 1,032,192 weights
T = TypeVar("T")


def make_layers(seed: int = 0) -> dict[str, np.ndarray]:
    """The three weight populations, int8 with zero point 0."""
    rng = np.random.default_rng(seed)
    gauss = np.clip(np.round(rng.normal(0.0, 30.0, SHAPE)), -127, 127).astype(np.int8)
    sparse = np.where(rng.random(SHAPE) < 0.5, 0, gauss).astype(np.int8)
    centroids = np.clip(np.round(rng.normal(0.0, 30.0, 16)), -127, 127).astype(np.int8)
    clustered = rng.choice(centroids, SHAPE).astype(np.int8)
    return {"dense Gaussian (sigma 30)": gauss, "50% sparse": sparse, "16 clusters": clustered}


def best_time(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Minimum wall time over `repeats` runs (the least disturbed by other load) and the result."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="ethos-n78-4tops-4ple", choices=sorted(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    variant = VARIANTS[args.variant]
    from ethosu import mlw_codec  # Vela's C extension; imported late so --help works without it

    rows = []
    for name, w in make_layers().items():
        t_ours, enc = best_time(partial(encode_layer, w, zero_point=0, variant=variant, layout="HWIO"), args.repeats)
        flat = w.astype(np.int64).ravel().tolist()
        t_mlw, mlw = best_time(partial(mlw_codec.encode, flat), args.repeats)
        rows.append(
            f"| {name} | {w.size:,} | {w.size / t_ours / 1e6:.2f} | {w.size / t_mlw / 1e6:.2f} "
            f"| {len(enc.data) * 8 / w.size:.3f} | {len(mlw) * 8 / w.size:.3f} |"
        )
    print(f"Ethos-N78 encoder ({variant.name}, full-depth stripe) vs ethosu.mlw_codec.encode, best of {args.repeats}")
    print()
    print("| data | weights | N78 M weights/s | mlw_codec M weights/s | N78 bits/weight | mlw_codec bits/weight |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
