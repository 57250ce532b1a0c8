"""One function per TFLite operator the generator emits, each adding a valid quantized operator to a
`GraphBuilder` and returning its output tensor (feature maps are NHWC, batch 1)."""

from __future__ import annotations

import numpy as np

from hwopt.testing.builder import ACTIVATIONS, PADDING, Act, GraphBuilder, WeightStyle, conv_out, options

DENSE = WeightStyle()
DENSE_PER_TENSOR = WeightStyle(per_channel=False)


def _act(g: GraphBuilder, x: int) -> Act:
    return g.acts[x]


def _hwc(g: GraphBuilder, x: int) -> tuple[int, int, int]:
    s = g.shapes[x]
    return (s[1], s[2], s[3]) if len(s) == 4 else (1, 1, s[-1])


def conv2d(g: GraphBuilder, x: int, cout: int, k: tuple[int, int], stride: tuple[int, int] = (1, 1),
           dilation: tuple[int, int] = (1, 1), padding: str = "SAME", activation: str = "NONE",
           style: WeightStyle = DENSE) -> int:
    h, w, c = _hwc(g, x)
    a = _act(g, x)
    wt, scales = g.weights((cout, k[0], k[1], c), 0, 3, style)
    b = g.bias(cout, a, scales)
    oh = conv_out(h, k[0], stride[0], dilation[0], padding)
    ow = conv_out(w, k[1], stride[1], dilation[1], padding)
    y = g.activation((1, oh, ow, cout), g.random_act(a.dtype))
    g.op("CONV_2D", [x, wt, b], [y], options("Conv2DOptions", padding=PADDING[padding], strideH=stride[0],
                                               strideW=stride[1], dilationHFactor=dilation[0],
                                               dilationWFactor=dilation[1],
                                               fusedActivationFunction=ACTIVATIONS[activation]))
    return y


def depthwise(g: GraphBuilder, x: int, k: tuple[int, int], stride: tuple[int, int] = (1, 1), multiplier: int = 1,
              dilation: tuple[int, int] = (1, 1), padding: str = "SAME", activation: str = "NONE",
              style: WeightStyle = DENSE) -> int:
    h, w, c = _hwc(g, x)
    a = _act(g, x)
    cout = c * multiplier
    wt, scales = g.weights((1, k[0], k[1], cout), 3, 3, WeightStyle(style.zeros, False, style.clusters,
                                                                     style.per_channel))
    b = g.bias(cout, a, scales)
    oh = conv_out(h, k[0], stride[0], dilation[0], padding)
    ow = conv_out(w, k[1], stride[1], dilation[1], padding)
    y = g.activation((1, oh, ow, cout), g.random_act(a.dtype))
    g.op("DEPTHWISE_CONV_2D", [x, wt, b], [y],
         options("DepthwiseConv2DOptions", padding=PADDING[padding], strideH=stride[0], strideW=stride[1],
                 depthMultiplier=multiplier, dilationHFactor=dilation[0], dilationWFactor=dilation[1],
                 fusedActivationFunction=ACTIVATIONS[activation]))
    return y


def reshape(g: GraphBuilder, x: int, shape: tuple[int, ...]) -> int:
    y = g.activation(shape, _act(g, x))
    g.op("RESHAPE", [x, g.const_int32(list(shape))], [y], options("ReshapeOptions", newShape=list(shape)))
    return y


def fully_connected(g: GraphBuilder, x: int, cout: int, activation: str = "NONE",
                    style: WeightStyle = DENSE_PER_TENSOR) -> int:
    """FULLY_CONNECTED on a [1, N] input (a 4-D input is reshaped first), per-tensor weights."""
    n = int(np.prod(g.shapes[x]))
    if len(g.shapes[x]) != 2:
        x = reshape(g, x, (1, n))
    a = _act(g, x)
    wt, scales = g.weights((cout, n), 0, 1, WeightStyle(style.zeros, style.sparse_2_4, style.clusters, False))
    b = g.bias(cout, a, scales)
    y = g.activation((1, cout), g.random_act(a.dtype))
    g.op("FULLY_CONNECTED", [x, wt, b], [y],
         options("FullyConnectedOptions", fusedActivationFunction=ACTIVATIONS[activation]))
    return y


def transpose_conv(g: GraphBuilder, x: int, cout: int, k: tuple[int, int], stride: int = 2,
                   style: WeightStyle = DENSE) -> int:
    """TRANSPOSE_CONV with SAME padding: OFM = IFM x stride (the shape Vela requires)."""
    h, w, c = _hwc(g, x)
    a = _act(g, x)
    wt, scales = g.weights((cout, k[0], k[1], c), 0, 3, style)
    b = g.bias(cout, a, scales)
    out_shape = (1, h * stride, w * stride, cout)
    y = g.activation(out_shape, g.random_act(a.dtype))
    g.op("TRANSPOSE_CONV", [g.const_int32(list(out_shape)), wt, x, b], [y],
         options("TransposeConvOptions", padding=PADDING["SAME"], strideH=stride, strideW=stride))
    return y


def pool(g: GraphBuilder, x: int, kind: str, k: tuple[int, int], stride: tuple[int, int],
         padding: str = "VALID") -> int:
    """AVERAGE_POOL_2D or MAX_POOL_2D; output quantization equals the input's (reference kernels)."""
    h, w, c = _hwc(g, x)
    a = _act(g, x)
    oh, ow = conv_out(h, k[0], stride[0], 1, padding), conv_out(w, k[1], stride[1], 1, padding)
    y = g.activation((1, oh, ow, c), a)
    g.op(kind, [x], [y], options("Pool2DOptions", padding=PADDING[padding], strideH=stride[0], strideW=stride[1],
                                 filterHeight=k[0], filterWidth=k[1]))
    return y


def binary(g: GraphBuilder, kind: str, x: int, other: int) -> int:
    """ADD / SUB / MUL of two feature maps; `other` may broadcast against `x`."""
    a = _act(g, x)
    y = g.activation(g.shapes[x], g.random_act(a.dtype))
    name = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[kind]
    g.op(kind, [x, other], [y], options(name))
    return y


def concat(g: GraphBuilder, xs: list[int]) -> int:
    """CONCATENATION along channels; every input shares the first input's quantization."""
    h, w, _ = _hwc(g, xs[0])
    c = sum(_hwc(g, t)[2] for t in xs)
    y = g.activation((1, h, w, c), _act(g, xs[0]))
    g.op("CONCATENATION", xs, [y], options("ConcatenationOptions", axis=3))
    return y


def resize(g: GraphBuilder, x: int, kind: str, factor: int, align_corners: bool = False,
           half_pixel: bool = False) -> int:
    h, w, c = _hwc(g, x)
    oh, ow = ((h - 1) * factor + 1, (w - 1) * factor + 1) if align_corners else (h * factor, w * factor)
    y = g.activation((1, oh, ow, c), _act(g, x))
    name = "ResizeBilinearOptions" if kind == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
    g.op(kind, [x, g.const_int32([oh, ow])], [y],
         options(name, alignCorners=align_corners, halfPixelCenters=half_pixel))
    return y


def mean(g: GraphBuilder, x: int) -> int:
    """MEAN over H and W (global average pooling), keeping dimensions."""
    _, _, c = _hwc(g, x)
    a = _act(g, x)
    y = g.activation((1, 1, 1, c), g.random_act(a.dtype))
    g.op("MEAN", [x, g.const_int32([1, 2])], [y], options("ReducerOptions", keepDims=True))
    return y


def softmax(g: GraphBuilder, x: int) -> int:
    a = _act(g, x)
    out = Act("int16", 1 / 32768, 0) if a.dtype == "int16" else Act("int8", 1 / 256, -128)
    y = g.activation(g.shapes[x], out)
    g.op("SOFTMAX", [x], [y], options("SoftmaxOptions", beta=1.0))
    return y


def pad(g: GraphBuilder, x: int, pads: tuple[int, int, int, int]) -> int:
    """PAD of H (top, bottom) and W (left, right)."""
    h, w, c = _hwc(g, x)
    t, b, left, r = pads
    y = g.activation((1, h + t + b, w + left + r, c), _act(g, x))
    g.op("PAD", [x, g.const_int32(np.array([[0, 0], [t, b], [left, r], [0, 0]]))], [y], options("PadOptions"))
    return y


def unary(g: GraphBuilder, x: int, kind: str) -> int:
    """Activation functions as operators of their own."""
    a = _act(g, x)
    if kind == "LOGISTIC":
        out = Act("int16", 1 / 32768, 0) if a.dtype == "int16" else Act("int8", 1 / 256, -128)
    elif kind == "TANH":
        out = Act("int16", 1 / 32768, 0) if a.dtype == "int16" else Act("int8", 1 / 128, 0)
    elif kind in ("RELU", "RELU6"):
        out = a
    else:
        out = g.random_act(a.dtype)
    y = g.activation(g.shapes[x], out)
    opts = options("LeakyReluOptions", alpha=0.1) if kind == "LEAKY_RELU" else None
    g.op(kind, [x], [y], opts)
    return y
