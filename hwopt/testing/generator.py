"""Deterministic generator of valid quantized TFLite models spanning what Vela places on the NPU.

`generate(seed)` gives one model: a single operator between optional 1x1 convolutions (odd and even
spatial sizes 1-224, channels 1-1024, kernels 1-11, strides 1-3, dilation, both padding modes,
int8 or int16 activations, per-channel or per-tensor, sparse or clustered weights), or a whole
network chained from them (DS-CNN, MobileNet v1/v2 and ResNet-like stacks with random widths).
The same seed always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from hwopt.testing import ops
from hwopt.testing.builder import GraphBuilder, WeightStyle

LAYER_OPS = ("CONV_2D", "CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
             "TRANSPOSE_CONV", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD", "SUB", "MUL", "CONCATENATION",
             "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "MEAN", "SOFTMAX", "PAD", "LOGISTIC", "TANH",
             "HARD_SWISH", "LEAKY_RELU", "RELU")
INT16_OPS = frozenset(["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD",
                       "MUL", "CONCATENATION", "PAD", "SOFTMAX", "LOGISTIC", "TANH"])
NETWORKS = ("dscnn", "mobilenet_v1", "mobilenet_v2", "resnet")
MAX_MACS = 40_000_000  # keeps one single-operator model quick to compile and to run
MAX_FM = 400_000  # feature-map elements of a single-operator model's input


@dataclass(frozen=True)
class GeneratedModel:
    """One generated model: a stable name, its kind ("layer" | a network family) and the .tflite bytes."""

    name: str
    kind: str
    seed: int
    data: bytes


def _log_int(rng: np.random.Generator, lo: int, hi: int) -> int:
    """An integer spread evenly on a log scale in [lo, hi]."""
    return int(np.clip(round(float(np.exp(rng.uniform(np.log(lo), np.log(hi + 1)))) - 0.5), lo, hi))


def weight_style(rng: np.random.Generator) -> WeightStyle:
    """Dense most of the time; otherwise pruned, 2:4-sparse or clustered (what TFMOT produces)."""
    r = rng.random()
    per_channel = bool(rng.random() < 0.8)
    if r < 0.6:
        return WeightStyle(per_channel=per_channel)
    if r < 0.75:
        return WeightStyle(zeros=float(rng.uniform(0.3, 0.9)), per_channel=per_channel)
    if r < 0.85:
        return WeightStyle(sparse_2_4=True, per_channel=per_channel)
    return WeightStyle(clusters=int(rng.choice([4, 8, 16, 32])), zeros=float(rng.choice([0.0, 0.5])),
                       per_channel=per_channel)


def _shape(rng: np.random.Generator, op: str) -> tuple[int, int, int]:
    """A feature-map shape (H, W, C) within the single-operator budget."""
    while True:
        h, w = _log_int(rng, 1, 224), _log_int(rng, 1, 224)
        if rng.random() < 0.5:
            w = h  # square maps are the common case
        c = _log_int(rng, 1, 1024)
        if op in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE_CONV"):
            h, w = max(2, h // 4), max(2, w // 4)
        if (op == "SOFTMAX" and h * w > 4096) or (op == "FULLY_CONNECTED" and h * w * c > 16384):
            continue
        if h * w * c <= MAX_FM:
            return h, w, c


def _kernel(rng: np.random.Generator, h: int, w: int, hi: int = 11) -> tuple[int, int]:
    k = int(rng.choice([1, 3, 3, 3, 5, 7, _log_int(rng, 1, hi)]))
    kh = k if rng.random() < 0.8 else _log_int(rng, 1, hi)
    return max(1, min(kh, h)), max(1, min(k, w))


def _layer(g: GraphBuilder, rng: np.random.Generator, op: str, x: int) -> int:
    """One operator `op` on `x` with random parameters."""
    _, h, w, c = g.shapes[x]
    style = weight_style(rng)
    act = str(rng.choice(["NONE", "RELU", "RELU6"]))
    if op == "CONV_2D":
        k = _kernel(rng, h, w)
        cout = _log_int(rng, 1, 1024)
        while cout * k[0] * k[1] * c * h * w > MAX_MACS * 4 and cout > 1:
            cout //= 2
        k = (k[0], k[1]) if k[0] * k[1] * c <= 60_000 else (1, 1)
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.4 else (1, 1)
        dil = (int(rng.integers(1, 3)),) * 2 if rng.random() < 0.1 and stride == (1, 1) else (1, 1)
        pad = "SAME" if rng.random() < 0.7 or (k[0] - 1) * dil[0] >= h or (k[1] - 1) * dil[1] >= w else "VALID"
        return ops.conv2d(g, x, cout, k, stride, dil, pad, act, style)
    if op == "DEPTHWISE_CONV_2D":
        k = _kernel(rng, h, w, 9)
        mult = int(rng.choice([1, 1, 1, 2, 4])) if c * 4 <= 1024 else 1
        stride = (int(rng.integers(1, 4)),) * 2 if rng.random() < 0.4 else (1, 1)
        dil = (2, 2) if rng.random() < 0.1 and stride == (1, 1) else (1, 1)
        pad = "SAME" if rng.random() < 0.7 or (k[0] - 1) * dil[0] >= h or (k[1] - 1) * dil[1] >= w else "VALID"
        return ops.depthwise(g, x, k, stride, mult, dil, pad, act, style)
    if op == "FULLY_CONNECTED":
        n = h * w * c
        cout = max(1, min(_log_int(rng, 1, 1024), MAX_MACS // max(n, 1), 65536 // max(n // 1024, 1)))
        return ops.fully_connected(g, x, cout, act, style)
    if op == "TRANSPOSE_CONV":
        tk = (int(rng.choice([2, 3, 4])),) * 2
        up = int(rng.choice([1, 2, 2]))
        cout = max(1, min(_log_int(rng, 1, 256), MAX_MACS // max(h * w * c * tk[0] * tk[1], 1)))
        return ops.transpose_conv(g, x, cout, (tk[0], tk[1]), up, style)
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        pad = "SAME" if rng.random() < 0.5 else "VALID"
        hi = 8 if pad == "SAME" or op == "AVERAGE_POOL_2D" else 11
        k = (min(h, int(rng.integers(1, hi + 1))), min(w, int(rng.integers(1, hi + 1))))
        stride = (int(rng.integers(1, 4)),) * 2
        return ops.pool(g, x, op, k, stride, pad)
    if op in ("ADD", "SUB", "MUL"):
        shape = [(1, h, w, c), (1, 1, 1, c), (1, h, w, 1)][int(rng.integers(0, 3))]
        other = ops.conv2d(g, x, c, (1, 1)) if shape == (1, h, w, c) and rng.random() < 0.5 else \
            g.const_act(shape, g.random_act(g.acts[x].dtype))
        return ops.binary(g, op, x, other)
    if op == "CONCATENATION":
        other = ops.conv2d(g, x, _log_int(rng, 1, 256), (1, 1))
        g.acts[other] = g.acts[x]
        g.sg.tensors[other].quantization = g.sg.tensors[x].quantization
        return ops.concat(g, [x, other] if rng.random() < 0.5 else [other, x])
    if op in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        half = bool(rng.random() < 0.5) and op == "RESIZE_BILINEAR"
        factor = 2 if half else int(rng.choice([2, 2, 4]))
        return ops.resize(g, x, op, factor, align_corners=False, half_pixel=half)
    if op == "MEAN":
        return ops.mean(g, x)
    if op == "SOFTMAX":
        return ops.softmax(g, x)
    if op == "PAD":
        return ops.pad(g, x, tuple(int(v) for v in rng.integers(0, 4, size=4)))  # type: ignore[arg-type]
    return ops.unary(g, x, op)


def layer_model(seed: int) -> GeneratedModel:
    """A single operator of a random type, optionally between 1x1 convolutions (so its IFM/OFM are
    intermediate tensors, as inside a network)."""
    rng = np.random.default_rng(seed)
    op = str(rng.choice(LAYER_OPS))
    dtype = "int16" if op in INT16_OPS and rng.random() < 0.12 else "int8"
    h, w, c = _shape(rng, op)
    g = GraphBuilder(rng, f"layer {op}")
    x0 = g.activation((1, h, w, c), g.random_act(dtype))
    x = ops.conv2d(g, x0, c, (1, 1)) if rng.random() < 0.5 else x0
    y = _layer(g, rng, op, x)
    if len(g.shapes[y]) == 4 and rng.random() < 0.3:
        y = ops.conv2d(g, y, _log_int(rng, 1, 128), (1, 1))
    g.io([x0], [y])
    return GeneratedModel(f"layer-{seed:05d}-{op.lower()}", "layer", seed, g.build())


def _widths(rng: np.random.Generator, base: int) -> int:
    return max(1, int(base * float(rng.choice([0.25, 0.35, 0.5, 0.75, 1.0, 1.3]))) // 8 * 8 or 8)


def _head(g: GraphBuilder, rng: np.random.Generator, x: int) -> int:
    x = ops.mean(g, x) if rng.random() < 0.5 else ops.pool(g, x, "AVERAGE_POOL_2D", (g.shapes[x][1], g.shapes[x][2]), (1, 1))
    y = ops.fully_connected(g, x, int(rng.integers(2, 20)))
    return ops.softmax(g, y) if rng.random() < 0.8 else y


def _dscnn(g: GraphBuilder, rng: np.random.Generator, dtype: str) -> tuple[int, int]:
    h, w = int(rng.integers(20, 64)), int(rng.integers(5, 16))
    x0 = g.activation((1, h, w, 1), g.random_act(dtype))
    c = int(rng.choice([32, 64, 96, 172, 276]))
    x = ops.conv2d(g, x0, c, (int(rng.integers(3, 11)), int(rng.integers(3, 5))), (2, 2), activation="RELU")
    for _ in range(int(rng.integers(2, 6))):
        x = ops.depthwise(g, x, (3, 3), activation="RELU")
        x = ops.conv2d(g, x, c, (1, 1), activation="RELU", style=weight_style(rng))
    return x0, _head(g, rng, x)


def _mobilenet(g: GraphBuilder, rng: np.random.Generator, v2: bool) -> tuple[int, int]:
    s = int(rng.choice([32, 48, 64, 96, 97, 128, 160]))
    x0 = g.activation((1, s, s, 3), g.random_act("int8"))
    c = _widths(rng, 32)
    x = ops.conv2d(g, x0, c, (3, 3), (2, 2), activation="RELU6")
    for _ in range(int(rng.integers(3, 9))):
        stride = int(rng.choice([1, 1, 2])) if g.shapes[x][1] > 4 else 1
        cout = _widths(rng, min(2 * c, 320)) if stride == 2 or rng.random() < 0.3 else c
        if v2:
            e = ops.conv2d(g, x, c * int(rng.choice([2, 4, 6])), (1, 1), activation="RELU6")
            d = ops.depthwise(g, e, (3, 3), (stride, stride), activation="RELU6")
            y = ops.conv2d(g, d, cout, (1, 1), style=weight_style(rng))
            x = ops.binary(g, "ADD", y, x) if stride == 1 and cout == c else y
        else:
            d = ops.depthwise(g, x, (3, 3), (stride, stride), activation="RELU6")
            x = ops.conv2d(g, d, cout, (1, 1), activation="RELU6", style=weight_style(rng))
        c = cout
    return x0, _head(g, rng, x)


def _resnet(g: GraphBuilder, rng: np.random.Generator) -> tuple[int, int]:
    s = int(rng.choice([16, 32, 33, 48, 64]))
    x0 = g.activation((1, s, s, 3), g.random_act("int8"))
    c = _widths(rng, 16)
    x = ops.conv2d(g, x0, c, (3, 3), activation="RELU")
    for _ in range(int(rng.integers(2, 5))):
        stride = int(rng.choice([1, 2])) if g.shapes[x][1] > 4 else 1
        cout = _widths(rng, 2 * c) if stride == 2 else c
        y = ops.conv2d(g, x, cout, (3, 3), (stride, stride), activation="RELU", style=weight_style(rng))
        y = ops.conv2d(g, y, cout, (3, 3), style=weight_style(rng))
        short = x if stride == 1 and cout == c else ops.conv2d(g, x, cout, (1, 1), (stride, stride))
        x = ops.unary(g, ops.binary(g, "ADD", y, short), "RELU")
        c = cout
    return x0, _head(g, rng, x)


def network_model(seed: int) -> GeneratedModel:
    """A whole network of a random family with random widths and input size."""
    rng = np.random.default_rng(seed)
    family = str(rng.choice(NETWORKS))
    g = GraphBuilder(rng, f"network {family}")
    build: dict[str, Callable[[], tuple[int, int]]] = {
        "dscnn": lambda: _dscnn(g, rng, "int16" if rng.random() < 0.2 else "int8"),
        "mobilenet_v1": lambda: _mobilenet(g, rng, v2=False),
        "mobilenet_v2": lambda: _mobilenet(g, rng, v2=True),
        "resnet": lambda: _resnet(g, rng),
    }
    x0, y = build[family]()
    g.io([x0], [y])
    return GeneratedModel(f"net-{seed:05d}-{family}", family, seed, g.build())


def generate(seed: int, network_share: float = 0.15) -> GeneratedModel:
    """One model from `seed`: a whole network with probability `network_share`, else a single operator."""
    pick = np.random.default_rng([seed, 1]).random()
    return network_model(seed) if pick < network_share else layer_model(seed)


def corpus(seed: int, count: int, network_share: float = 0.15) -> Iterator[GeneratedModel]:
    """`count` models from consecutive seeds derived from `seed`."""
    for i in range(count):
        yield generate(seed * 100_000 + i, network_share)
