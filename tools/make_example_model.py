#!/usr/bin/env python3
"""Build the bundled example model hwopt/example/example_int8.tflite from scratch.

A small full-int8 CIFAR-sized image classifier (no TensorFlow needed):

    input 1x32x32x3 int8
    CONV_2D 3x3x16 stride 2 + RELU -> DEPTHWISE_CONV_2D 3x3 + RELU -> CONV_2D 1x1x32 + RELU
    -> CONV_2D 3x3x32 stride 2 + RELU -> AVERAGE_POOL_2D 8x8 -> FULLY_CONNECTED 10 -> SOFTMAX

The float weights are seeded random (He-scaled), pruned to exactly 50% zeros per tensor by
magnitude, and the convolution and fully-connected filters are clustered per output channel
to 16 values (zero plus 15 k-means centroids), as sparsity-preserving clustering would leave
them. Quantization is what the TFLite converter produces: symmetric per-channel int8
weights, int32 biases at scale input_scale * weight_scale, activation ranges calibrated on
seeded random images with a float reference forward pass. Per-channel scales spread the 16
per-channel values over many int8 values per tensor, which `hwopt audit` reports as
clusters split by quantization. The script is deterministic: every run writes the same bytes.

Usage: python tools/make_example_model.py [OUTPUT.tflite]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np

from hwopt._generated.tflite.ActivationFunctionType import ActivationFunctionType
from hwopt._generated.tflite.Buffer import BufferT
from hwopt._generated.tflite.BuiltinOperator import BuiltinOperator
from hwopt._generated.tflite.BuiltinOptions import BuiltinOptions
from hwopt._generated.tflite.Conv2DOptions import Conv2DOptionsT
from hwopt._generated.tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptionsT
from hwopt._generated.tflite.FullyConnectedOptions import FullyConnectedOptionsT
from hwopt._generated.tflite.Metadata import MetadataT
from hwopt._generated.tflite.Model import ModelT
from hwopt._generated.tflite.Operator import OperatorT
from hwopt._generated.tflite.OperatorCode import OperatorCodeT
from hwopt._generated.tflite.Padding import Padding
from hwopt._generated.tflite.Pool2DOptions import Pool2DOptionsT
from hwopt._generated.tflite.QuantizationParameters import QuantizationParametersT
from hwopt._generated.tflite.SignatureDef import SignatureDefT
from hwopt._generated.tflite.SoftmaxOptions import SoftmaxOptionsT
from hwopt._generated.tflite.SubGraph import SubGraphT
from hwopt._generated.tflite.Tensor import TensorT
from hwopt._generated.tflite.TensorMap import TensorMapT
from hwopt._generated.tflite.TensorType import TensorType
from hwopt.format.tflite_io import read_model, serialize

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "hwopt" / "example" / "example_int8.tflite"
SEED = 20240601
CLUSTERS = 16  # per output channel, zero included
CALIBRATION_IMAGES = 16
INPUT_SCALE, INPUT_ZP = 1.0 / 128.0, 0  # images in [-1, 1)
# Operator versions the TFLite converter assigns to these int8 kernels.
VERSIONS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "AVERAGE_POOL_2D": 2, "FULLY_CONNECTED": 4, "SOFTMAX": 2}


# ---- float reference (calibration) ---------------------------------------------------

def _pad_same(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """TensorFlow SAME padding of an HWC image for a k x k window."""
    h = x.shape[0]
    out = -(-h // stride)
    total = max((out - 1) * stride + k - h, 0)
    lo = total // 2
    return np.pad(x, ((lo, total - lo), (lo, total - lo), (0, 0)))


def _patches(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """[OH, OW, k, k, C] windows of a SAME-padded HWC image."""
    xp = _pad_same(x, k, stride)
    out = -(-x.shape[0] // stride)
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(0, 1))  # [H', W', C, k, k]
    return np.transpose(win[: out * stride : stride, : out * stride : stride], (0, 1, 3, 4, 2))


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """Float CONV_2D, w in OHWI."""
    p = _patches(x, w.shape[1], stride)
    return np.einsum("yxhwc,ohwc->yxo", p, w) + b


def depthwise(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Float DEPTHWISE_CONV_2D (multiplier 1), w in 1HWC."""
    p = _patches(x, w.shape[1], 1)
    return np.einsum("yxhwc,hwc->yxc", p, w[0]) + b


# ---- weight structure ----------------------------------------------------------------

def prune_half(w: np.ndarray) -> np.ndarray:
    """Zero exactly the half of the tensor with the smallest magnitudes (ties by position)."""
    flat = w.reshape(-1).copy()
    order = np.argsort(np.abs(flat), kind="stable")
    flat[order[: flat.size // 2]] = 0.0
    return flat.reshape(w.shape)


def cluster_rows(rows: np.ndarray, k: int, iterations: int = 30) -> np.ndarray:
    """Sparsity-preserving 1-D k-means per row: zeros stay zero, non-zeros take k-1 centroids."""
    out = rows.copy()
    for r in range(rows.shape[0]):  # a few dozen channels: the loop is over rows, not weights
        mask = rows[r] != 0
        v = rows[r, mask]
        if v.size <= k - 1:
            continue
        c = np.quantile(v, np.linspace(0.0, 1.0, k - 1))
        for _ in range(iterations):
            assign = np.argmin(np.abs(v[:, None] - c[None, :]), axis=1)
            sums = np.bincount(assign, weights=v, minlength=c.size)
            counts = np.bincount(assign, minlength=c.size)
            c = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        out[r, mask] = c[np.argmin(np.abs(v[:, None] - c[None, :]), axis=1)]
    return out


def structured(w: np.ndarray, out_axis: int, cluster: bool) -> np.ndarray:
    """Pruned (and per-output-channel clustered) float weights."""
    w = prune_half(w)
    if not cluster:
        return w
    rows = np.moveaxis(w, out_axis, 0)
    shape = rows.shape
    return np.moveaxis(cluster_rows(rows.reshape(shape[0], -1), CLUSTERS).reshape(shape), 0, out_axis)


def quantize_weights(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 (range [-127, 127]) as the TFLite converter quantizes filters."""
    other = tuple(d for d in range(w.ndim) if d != axis)
    amax = np.max(np.abs(w), axis=other)
    scale = np.where(amax > 0, amax / 127.0, 1e-9).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape).astype(np.float64)), -127, 127).astype(np.int8)
    return q, scale


def activation_quant(values: np.ndarray) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) covering the calibrated range and 0."""
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return float(np.float32(scale)), zp


# ---- flatbuffer assembly ---------------------------------------------------------------

def _q(scale: Any, zp: Any, axis: int = 0) -> QuantizationParametersT:
    q = QuantizationParametersT()
    q.scale = np.atleast_1d(np.asarray(scale, dtype=np.float32))
    z = np.atleast_1d(np.asarray(zp, dtype=np.int64))
    q.zeroPoint = np.repeat(z, q.scale.size) if z.size == 1 else z
    q.quantizedDimension = axis
    return q


@dataclass
class _Graph:
    model: ModelT
    sg: SubGraphT
    codes: dict[str, int]

    def buffer(self, data: np.ndarray | bytes | None) -> int:
        if data is None:
            return 0
        b = BufferT()
        b.data = np.frombuffer(data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes(), np.uint8)
        self.model.buffers.append(b)
        return len(self.model.buffers) - 1

    def tensor(self, name: str, shape: tuple[int, ...], ttype: int, quant: QuantizationParametersT,
               data: np.ndarray | None = None) -> int:
        t = TensorT()
        t.name, t.shape, t.type = name, np.asarray(shape, np.int32), ttype
        t.buffer, t.quantization = self.buffer(data), quant
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def op(self, name: str, ins: list[int], outs: list[int], opt_type: int, options: Any) -> None:
        if name not in self.codes:
            c = OperatorCodeT()
            c.builtinCode = c.deprecatedBuiltinCode = getattr(BuiltinOperator, name)
            c.version = VERSIONS[name]
            self.model.operatorCodes.append(c)
            self.codes[name] = len(self.model.operatorCodes) - 1
        o = OperatorT()
        o.opcodeIndex = self.codes[name]
        o.inputs, o.outputs = np.asarray(ins, np.int32), np.asarray(outs, np.int32)
        o.builtinOptionsType, o.builtinOptions = opt_type, options
        self.sg.operators.append(o)


def _conv_opts(stride: int, relu: bool = True) -> Conv2DOptionsT:
    o = Conv2DOptionsT()
    o.padding, o.strideW, o.strideH, o.dilationWFactor, o.dilationHFactor = Padding.SAME, stride, stride, 1, 1
    o.fusedActivationFunction = ActivationFunctionType.RELU if relu else ActivationFunctionType.NONE
    return o


def _dw_opts() -> DepthwiseConv2DOptionsT:
    o = DepthwiseConv2DOptionsT()
    o.padding, o.strideW, o.strideH, o.depthMultiplier = Padding.SAME, 1, 1, 1
    o.dilationWFactor = o.dilationHFactor = 1
    o.fusedActivationFunction = ActivationFunctionType.RELU
    return o


def _tensor_map(name: str, index: int) -> TensorMapT:
    m = TensorMapT()
    m.name, m.tensorIndex = name, index
    return m


def build() -> bytes:
    """The example model's bytes (deterministic)."""
    rng = np.random.default_rng(SEED)

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)

    # Float weights with the collaborative-optimization structure (OHWI, 1HWC, OI).
    w1 = structured(he((16, 3, 3, 3), 27), 0, True)
    b1 = rng.uniform(-0.1, 0.1, 16)
    wd = structured(he((1, 3, 3, 16), 9), 3, False)  # TF-MOT leaves depthwise unclustered
    bd = rng.uniform(-0.1, 0.1, 16)
    w3 = structured(he((32, 1, 1, 16), 16), 0, True)
    b3 = rng.uniform(-0.1, 0.1, 32)
    w4 = structured(he((32, 3, 3, 32), 288), 0, True)
    b4 = rng.uniform(-0.1, 0.1, 32)
    wf = structured(he((10, 32), 32), 0, True)
    bf = rng.uniform(-0.1, 0.1, 10)

    # Calibrate activation ranges on seeded random images, as post-training quantization does.
    images = np.round(rng.uniform(-1.0, 1.0, (CALIBRATION_IMAGES, 32, 32, 3)) * 128) / 128
    acts: dict[str, list[np.ndarray]] = {k: [] for k in ("a1", "a2", "a3", "a4", "pool", "fc")}
    for img in images:
        a1 = np.maximum(conv2d(img, w1, b1, 2), 0)
        a2 = np.maximum(depthwise(a1, wd, bd), 0)
        a3 = np.maximum(conv2d(a2, w3, b3, 1), 0)
        a4 = np.maximum(conv2d(a3, w4, b4, 2), 0)
        pool = a4.mean(axis=(0, 1))
        for key, val in zip(acts, (a1, a2, a3, a4, pool, wf @ pool + bf), strict=True):
            acts[key].append(val)
    aq = {k: activation_quant(np.stack(v)) for k, v in acts.items()}
    aq["pool"] = aq["a4"]  # int8 AVERAGE_POOL_2D keeps its input's quantization

    model = ModelT()
    model.version, model.description = 3, "hwopt example: int8 CIFAR-size classifier, 50% pruned, 16 clusters/channel"
    model.buffers, model.operatorCodes = [BufferT()], []
    sg = SubGraphT()
    sg.name, sg.tensors, sg.operators = "main", [], []
    model.subgraphs = [sg]
    g = _Graph(model, sg, {})
    i8, i32 = TensorType.INT8, TensorType.INT32

    x = g.tensor("input", (1, 32, 32, 3), i8, _q(INPUT_SCALE, INPUT_ZP))
    prev, prev_scale = x, INPUT_SCALE

    def weighted(name: str, w: np.ndarray, b: np.ndarray, axis: int, out_shape: tuple[int, ...],
                 out_key: str) -> tuple[int, int, int]:
        q, s = quantize_weights(w, axis)
        bias_scale = (np.float64(prev_scale) * s.astype(np.float64)).astype(np.float32)
        qb = np.round(b / bias_scale).astype(np.int32)
        wi = g.tensor(f"{name}/weights", w.shape, i8, _q(s, 0, axis), q)
        bi = g.tensor(f"{name}/bias", (b.size,), i32, _q(bias_scale, 0, 0), qb)
        oi = g.tensor(f"{name}/out", out_shape, i8, _q(*aq[out_key]))
        return wi, bi, oi

    wi, bi, oi = weighted("conv1", w1, b1, 0, (1, 16, 16, 16), "a1")
    g.op("CONV_2D", [prev, wi, bi], [oi], BuiltinOptions.Conv2DOptions, _conv_opts(2))
    prev, prev_scale = oi, aq["a1"][0]
    wi, bi, oi = weighted("dwconv2", wd, bd, 3, (1, 16, 16, 16), "a2")
    g.op("DEPTHWISE_CONV_2D", [prev, wi, bi], [oi], BuiltinOptions.DepthwiseConv2DOptions, _dw_opts())
    prev, prev_scale = oi, aq["a2"][0]
    wi, bi, oi = weighted("conv3", w3, b3, 0, (1, 16, 16, 32), "a3")
    g.op("CONV_2D", [prev, wi, bi], [oi], BuiltinOptions.Conv2DOptions, _conv_opts(1))
    prev, prev_scale = oi, aq["a3"][0]
    wi, bi, oi = weighted("conv4", w4, b4, 0, (1, 8, 8, 32), "a4")
    g.op("CONV_2D", [prev, wi, bi], [oi], BuiltinOptions.Conv2DOptions, _conv_opts(2))
    prev, prev_scale = oi, aq["a4"][0]

    pooled = g.tensor("pool/out", (1, 1, 1, 32), i8, _q(*aq["pool"]))
    po = Pool2DOptionsT()
    po.padding, po.strideW, po.strideH, po.filterWidth, po.filterHeight = Padding.VALID, 1, 1, 8, 8
    g.op("AVERAGE_POOL_2D", [prev], [pooled], BuiltinOptions.Pool2DOptions, po)
    prev, prev_scale = pooled, aq["pool"][0]

    wi, bi, logits = weighted("fc", wf, bf, 0, (1, 10), "fc")
    g.op("FULLY_CONNECTED", [prev, wi, bi], [logits], BuiltinOptions.FullyConnectedOptions, FullyConnectedOptionsT())
    # int8 SOFTMAX output quantization is fixed by TFLite: scale 1/256, zero point -128.
    probs = g.tensor("probabilities", (1, 10), i8, _q(1.0 / 256.0, -128))
    so = SoftmaxOptionsT()
    so.beta = 1.0
    g.op("SOFTMAX", [logits], [probs], BuiltinOptions.SoftmaxOptions, so)

    sg.inputs, sg.outputs = np.asarray([x], np.int32), np.asarray([probs], np.int32)
    meta = MetadataT()
    meta.name, meta.buffer = "min_runtime_version", g.buffer(b"1.14.0".ljust(16, b"\0"))
    model.metadata = [meta]
    sig = SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = "serving_default", 0
    sig.inputs, sig.outputs = [_tensor_map("input", x)], [_tensor_map("probabilities", probs)]
    model.signatureDefs = [sig]

    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    # Through hwopt's writer: 16-byte aligned buffers, exactly as every hwopt output.
    return serialize(read_model(bytes(builder.Output())))


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUTPUT
    data = build()
    from hwopt.fileio import atomic_write_bytes

    atomic_write_bytes(out, data)
    print(f"wrote {out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
