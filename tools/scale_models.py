#!/usr/bin/env python3
"""Build the int8 model ladders the scale benchmark runs on (no TensorFlow needed).

    fc-N:   N FULLY_CONNECTED 1024x1024 layers (N = 2, 8, 32: 2.1, 8.4, 33.7 MB)
    conv-N: N CONV_2D 3x3 256->256 layers on an 8x8 map (N = 4, 16, 64: 2.4, 9.4, 37.8 MB)

Weights are seeded random int8 with half of them zero (symmetric, zero point 0; per-tensor
for the fully connected layers as the TFLite converter writes them, per-channel for the
convolutions), biases int32 at input scale x weight scale. Every run writes the same bytes.

Usage: python tools/scale_models.py OUTDIR [--ladder fc|conv|all]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hwopt.testing.builder import PADDING, Act, GraphBuilder, options

FC_LADDER = (2, 8, 32)
CONV_LADDER = (4, 16, 64)
SEED = 17
ACT_SCALE = 0.05
ACT = Act("int8", ACT_SCALE, 0)
DESCRIPTION = "hwopt scale benchmark model"


def _half_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = rng.integers(-127, 128, size=shape, dtype=np.int8)
    w[rng.random(shape) < 0.5] = 0
    return w


def fc_model(layers: int, width: int = 1024, seed: int = SEED) -> bytes:
    """`layers` fully connected width x width int8 layers in a chain."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder(rng, DESCRIPTION)
    x = first = g.activation((1, width), ACT, name="input")
    for i in range(layers):
        w_scale = 0.01
        w = g.constant(_half_zero(rng, (width, width)), w_scale, name=f"fc{i}/weights")
        b = g.constant(rng.integers(-1000, 1000, width).astype(np.int32), ACT_SCALE * w_scale, name=f"fc{i}/bias")
        y = g.activation((1, width), ACT, name=f"fc{i}/out")
        g.op("FULLY_CONNECTED", [x, w, b], [y], options("FullyConnectedOptions"), version=4)
        x = y
    g.io([first], [x])
    return g.build()


def conv_model(layers: int, channels: int = 256, size: int = 8, seed: int = SEED) -> bytes:
    """`layers` CONV_2D 3x3 channels->channels layers (per-channel int8) in a chain."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder(rng, DESCRIPTION)
    x = first = g.activation((1, size, size, channels), ACT, name="input")
    for i in range(layers):
        w_scale = rng.uniform(0.002, 0.01, channels).astype(np.float32)
        w = g.constant(_half_zero(rng, (channels, 3, 3, channels)), w_scale, name=f"conv{i}/weights")
        b = g.constant(rng.integers(-1000, 1000, channels).astype(np.int32), ACT_SCALE * w_scale,
                       name=f"conv{i}/bias")
        y = g.activation((1, size, size, channels), ACT, name=f"conv{i}/out")
        same = options("Conv2DOptions", padding=PADDING["SAME"], strideW=1, strideH=1, dilationWFactor=1, dilationHFactor=1)
        g.op("CONV_2D", [x, w, b], [y], same, version=3)
        x = y
    g.io([first], [x])
    return g.build()


def build_ladders(outdir: Path, which: str = "all") -> list[Path]:
    """Write the ladder models into `outdir` (skipping ones already there); their paths, smallest first."""
    outdir.mkdir(parents=True, exist_ok=True)
    plan = ([(f"fc-{n}", fc_model, n) for n in FC_LADDER] if which in ("fc", "all") else []) + \
           ([(f"conv-{n}", conv_model, n) for n in CONV_LADDER] if which in ("conv", "all") else [])
    paths = []
    for name, make, n in plan:
        path = outdir / f"{name}.tflite"
        if not path.exists():
            path.write_bytes(make(n))
        paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--ladder", choices=("fc", "conv", "all"), default="all")
    args = ap.parse_args(argv)
    for p in build_ladders(args.outdir, args.ladder):
        print(f"{p} {p.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
