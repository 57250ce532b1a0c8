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
from typing import Any

import flatbuffers
import numpy as np

from hwopt._generated.tflite.Buffer import BufferT
from hwopt._generated.tflite.BuiltinOperator import BuiltinOperator
from hwopt._generated.tflite.BuiltinOptions import BuiltinOptions
from hwopt._generated.tflite.Conv2DOptions import Conv2DOptionsT
from hwopt._generated.tflite.FullyConnectedOptions import FullyConnectedOptionsT
from hwopt._generated.tflite.Model import ModelT
from hwopt._generated.tflite.Operator import OperatorT
from hwopt._generated.tflite.OperatorCode import OperatorCodeT
from hwopt._generated.tflite.Padding import Padding
from hwopt._generated.tflite.QuantizationParameters import QuantizationParametersT
from hwopt._generated.tflite.SubGraph import SubGraphT
from hwopt._generated.tflite.Tensor import TensorT
from hwopt._generated.tflite.TensorType import TensorType

FC_LADDER = (2, 8, 32)
CONV_LADDER = (4, 16, 64)
SEED = 17
ACT_SCALE = 0.05


def _quant(scale: Any, axis: int = 0) -> QuantizationParametersT:
    q = QuantizationParametersT()
    q.scale = np.atleast_1d(np.asarray(scale, dtype=np.float32))
    q.zeroPoint = np.zeros(q.scale.size, dtype=np.int64)
    q.quantizedDimension = axis
    return q


class _Graph:
    """One subgraph under construction: tensors, buffers, operators."""

    def __init__(self) -> None:
        self.model = ModelT()
        self.model.version, self.model.description = 3, "hwopt scale benchmark model"
        self.model.buffers, self.model.operatorCodes = [BufferT()], []
        self.sg = SubGraphT()
        self.sg.tensors, self.sg.operators = [], []
        self.model.subgraphs = [self.sg]

    def tensor(self, name: str, shape: tuple[int, ...], ttype: int, quant: QuantizationParametersT,
               data: np.ndarray | None = None) -> int:
        t = TensorT()
        t.name, t.shape, t.type, t.quantization = name, np.asarray(shape, dtype=np.int32), ttype, quant
        t.buffer = 0
        if data is not None:
            b = BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.model.buffers.append(b)
            t.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def op(self, code: int, version: int, inputs: list[int], outputs: list[int], opts_type: int, opts: Any) -> None:
        codes = self.model.operatorCodes
        index = next((k for k, c in enumerate(codes) if c.builtinCode == code), None)
        if index is None:
            c = OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), version
            codes.append(c)
            index = len(codes) - 1
        o = OperatorT()
        o.opcodeIndex, o.builtinOptionsType, o.builtinOptions = index, opts_type, opts
        o.inputs, o.outputs = np.asarray(inputs, dtype=np.int32), np.asarray(outputs, dtype=np.int32)
        self.sg.operators.append(o)

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        self.sg.inputs, self.sg.outputs = np.asarray(inputs, dtype=np.int32), np.asarray(outputs, dtype=np.int32)
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _half_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = rng.integers(-127, 128, size=shape, dtype=np.int8)
    w[rng.random(shape) < 0.5] = 0
    return w


def fc_model(layers: int, width: int = 1024, seed: int = SEED) -> bytes:
    """`layers` fully connected width x width int8 layers in a chain."""
    rng = np.random.default_rng(seed)
    g = _Graph()
    x = first = g.tensor("input", (1, width), TensorType.INT8, _quant(ACT_SCALE))
    for i in range(layers):
        w_scale = 0.01
        w = g.tensor(f"fc{i}/weights", (width, width), TensorType.INT8, _quant(w_scale), _half_zero(rng, (width, width)))
        b = g.tensor(f"fc{i}/bias", (width,), TensorType.INT32, _quant(ACT_SCALE * w_scale),
                     rng.integers(-1000, 1000, width).astype(np.int32))
        y = g.tensor(f"fc{i}/out", (1, width), TensorType.INT8, _quant(ACT_SCALE))
        g.op(BuiltinOperator.FULLY_CONNECTED, 4, [x, w, b], [y], BuiltinOptions.FullyConnectedOptions,
             FullyConnectedOptionsT())
        x = y
    return g.finish([first], [x])


def conv_model(layers: int, channels: int = 256, size: int = 8, seed: int = SEED) -> bytes:
    """`layers` CONV_2D 3x3 channels->channels layers (per-channel int8) in a chain."""
    rng = np.random.default_rng(seed)
    g = _Graph()
    x = first = g.tensor("input", (1, size, size, channels), TensorType.INT8, _quant(ACT_SCALE))
    for i in range(layers):
        w_scale = rng.uniform(0.002, 0.01, channels).astype(np.float32)
        w = g.tensor(f"conv{i}/weights", (channels, 3, 3, channels), TensorType.INT8, _quant(w_scale, 0),
                     _half_zero(rng, (channels, 3, 3, channels)))
        b = g.tensor(f"conv{i}/bias", (channels,), TensorType.INT32, _quant(ACT_SCALE * w_scale, 0),
                     rng.integers(-1000, 1000, channels).astype(np.int32))
        y = g.tensor(f"conv{i}/out", (1, size, size, channels), TensorType.INT8, _quant(ACT_SCALE))
        opts = Conv2DOptionsT()
        opts.padding, opts.strideW, opts.strideH = Padding.SAME, 1, 1
        opts.dilationWFactor = opts.dilationHFactor = 1
        g.op(BuiltinOperator.CONV_2D, 3, [x, w, b], [y], BuiltinOptions.Conv2DOptions, opts)
        x = y
    return g.finish([first], [x])


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
