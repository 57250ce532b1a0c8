"""Ethos-N78 operator support, after the Ethos-N support library's `SupportQueries` (driver stack 25.03).

The library answers Supported, EstimateOnly or Unsupported per operation; anything not
Supported runs on the CPU in a real deployment, so each failing query is a rule here with the
library's own wording. Kernel, stride and pooling limits are the library's.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from hwopt.ir import DType
from hwopt.targets.ethos_u.support_rules import _conv_kernel, _has_padding, _kernel, _name, _shape4, _stride
from hwopt.targets.support import OperatorSupport, OpView, Rule

N78_OPS = frozenset(["ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "FULLY_CONNECTED", "LEAKY_RELU", "LOGISTIC", "MAX_POOL_2D", "MEAN", "MUL", "PAD", "QUANTIZE", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "EXPAND_DIMS", "TANH", "TRANSPOSE", "TRANSPOSE_CONV"])
KERNEL_SIZES = frozenset({1, 2, 3, 5, 7, 9})
MAX_DEPTH = 65536  # tensor depth limit of the NHWCB layout (16-bit channel count)
FIX_INT8 = "convert with full-integer quantization to int8 or uint8"


def _dtypes(v: OpView) -> str | None:
    for t in v.feature_maps():
        if t.dtype not in (DType.INT8, DType.UINT8):
            return f"tensor {_name(t)} is {t.dtype.label} (int8 or uint8 only)"
    w = v.weights
    if w is not None and w.dtype not in (DType.INT8, DType.UINT8):
        return f"weights {_name(w)} are {w.dtype.label}"
    return None


def _batch(v: OpView) -> str | None:
    ifm = v.ifm
    if ifm is None or not ifm.shape:
        return None
    n = _shape4(ifm.shape)[0]
    return None if n == 1 else f"batch {n} (must be 1)"


def _depth(v: OpView) -> str | None:
    for t in v.feature_maps():
        if t.shape and t.shape[-1] > MAX_DEPTH:
            return f"tensor {_name(t)} has depth {t.shape[-1]} > {MAX_DEPTH}"
    return None


def _zero_points(v: OpView) -> str | None:
    for t in [*v.feature_maps(), *([v.weights] if v.weights is not None else [])]:
        q = t.quantization
        if q is None or q.zero_point.size == 0:
            continue
        lo, hi = (-128, 127) if t.dtype is DType.INT8 else (0, 255)
        zps = q.zero_point.astype(np.int64)
        if bool(np.any((zps < lo) | (zps > hi))):
            return f"tensor {_name(t)} has a zero point outside {lo}..{hi}"
    return None


def _conv_kernel_size(v: OpView) -> str | None:
    kw, kh = _conv_kernel(v)
    if kh not in KERNEL_SIZES or kw not in KERNEL_SIZES:
        return f"kernel {kw}x{kh} (WxH): width and height must be in {{1, 2, 3, 5, 7, 9}}"
    if v.name == "DEPTHWISE_CONV_2D" and kw != kh:
        return f"depthwise kernel {kw}x{kh} is not square"
    return None


def _conv_stride(v: OpView) -> str | None:
    sw, sh = _stride(v)
    if sw != sh or sw not in (1, 2):
        return f"stride {sw}x{sh} (WxH): X and Y must be equal and 1 or 2"
    kw, kh = _conv_kernel(v)
    if sw > 1 and (kw > 7 or kh > 7):
        return f"stride {sw} with a {kw}x{kh} kernel (kernels above 7 need stride 1)"
    if v.name == "DEPTHWISE_CONV_2D" and sw > 1 and kw == 1 and kh == 1:
        return f"stride {sw} with a 1x1 depthwise kernel"
    return None


def _dilation(v: OpView) -> str | None:
    o = v.options
    dw, dh = int(getattr(o, "dilationWFactor", 1) or 1), int(getattr(o, "dilationHFactor", 1) or 1)
    return None if dw == 1 and dh == 1 else f"dilation {dw}x{dh} (the library takes dilation 1 only)"


def _depth_multiplier(v: OpView) -> str | None:
    ifm, w = v.ifm, v.weights
    if ifm is None or w is None or len(w.shape) != 4 or not ifm.shape:
        return None
    c, m = ifm.shape[-1], w.shape[3] // max(ifm.shape[-1], 1)
    return None if m <= 1 or c == 1 else f"channel multiplier {m} with {c} input channels (multiplier > 1 needs 1)"


def _fc_per_channel(v: OpView) -> str | None:
    w = v.weights
    q = None if w is None else w.quantization
    if q is not None and q.scale.size > 1:
        return f"weights {_name(w) if w else ''} have {q.scale.size} scales (one only for FULLY_CONNECTED)"
    return None


def _pooling(v: OpView) -> str | None:
    ifm = v.ifm
    if ifm is None:
        return None
    (kw, kh), (sw, sh) = _kernel(v), _stride(v)
    _, ih, iw, _ = _shape4(ifm.shape)
    padded = _has_padding(v)
    if v.name == "AVERAGE_POOL_2D":
        if (kw, kh, sw, sh) == (3, 3, 1, 1) and padded:
            return None
        if not padded and kw == kh and kw in (7, 8) and (iw, ih) == (kw, kh):
            return None
        return f"AVG pooling {kw}x{kh} stride {sw}x{sh}{' SAME' if padded else ''} (3x3 s1 SAME or 7x7/8x8 global)"
    if (sw, sh) == (2, 2) and (kw, kh) == (2, 2):
        even = iw % 2 == 0 and ih % 2 == 0
        return None if even != padded else f"MAX pooling 2x2 s2 on {iw}x{ih} input with{'' if padded else 'out'} padding"
    if (sw, sh) == (2, 2) and (kw, kh) == (3, 3):
        odd = iw % 2 == 1 and ih % 2 == 1
        return None if odd != padded else f"MAX pooling 3x3 s2 on {iw}x{ih} input with{'' if padded else 'out'} padding"
    if (sw, sh) == (1, 1) and not padded and iw >= kw and ih >= kh:
        return None
    return f"MAX pooling {kw}x{kh} stride {sw}x{sh}{' SAME' if padded else ''}"


def _mean(v: OpView) -> str | None:
    ifm, p = v.ifm, v.params[:1]
    vals = None if not p or p[0].data is None else np.asarray(p[0].data).reshape(-1)
    if ifm is None or vals is None:
        return "reduction axes are not constant"
    rank = len(ifm.shape)
    axes = sorted({int(a) % max(rank, 1) for a in vals.tolist()})
    _, ih, iw, _ = _shape4(ifm.shape)
    if axes != [rank - 3, rank - 2] or (iw, ih) not in ((7, 7), (8, 8)):
        return f"MEAN over axes {axes} of a {iw}x{ih} input (H and W of a 7x7 or 8x8 input only)"
    return None


def _rule(rule_id: str, doc: str, fix: str, check) -> Rule:
    return Rule(rule_id, doc, fix, check)


UNSUPPORTED = _rule("operator-type", "The operator type must be one the Ethos-N support library takes",
                    "replace it with supported operators, or accept that it runs on the CPU",
                    lambda v: f"{v.name} is not an operator the Ethos-N78 runs")
DTYPE = _rule("n78-data-type", "Inputs, outputs and weights must be int8 or uint8 (QAsymmS8/QAsymmU8)", FIX_INT8,
              _dtypes)
BATCH = _rule("n78-batch", "Batch size must be 1", "run with batch 1", _batch)
DEPTH = _rule("n78-depth", f"Tensor depth must be at most {MAX_DEPTH}", "split the channels", _depth)
ZP = _rule("n78-zero-point", "Zero points must be in the range of the data type",
           "requantize with zero points in range", _zero_points)
KSIZE = _rule("n78-kernel-size", "Kernel width and height must be in { 1, 2, 3, 5, 7, 9 } (depthwise: square)",
              "use a supported kernel size (e.g. split a 10x4 kernel)", _conv_kernel_size)
STRIDE = _rule("n78-stride", "Stride X and Y must be equal and in { 1, 2 }; kernels above 7 need stride 1",
               "use stride 1 or 2 (1 for kernels above 7)", _conv_stride)
DILATION = _rule("n78-dilation", "Dilation must be 1", "use an undilated kernel", _dilation)
MULT = _rule("n78-depth-multiplier", "If channel multiplier > 1 the weights input channels dimension must be 1",
             "use depth multiplier 1", _depth_multiplier)
FC_PC = _rule("n78-fc-per-channel", "Multiple quantization scales is not supported for FullyConnected operation",
              "quantize the fully connected weights per tensor", _fc_per_channel)
POOL = _rule("n78-pooling", "Pooling: AVG 3x3 s1 SAME or 7x7/8x8 global; MAX 2x2/3x3 s2 or VALID s1",
             "use a supported pooling configuration", _pooling)
MEAN = _rule("n78-mean", "MEAN only over H and W of a 7x7 or 8x8 input", "use a global 7x7 or 8x8 mean", _mean)


@cache
def n78_support() -> OperatorSupport:
    """The Ethos-N78 support table (all variants share it)."""
    table: dict[str, list[Rule]] = {name: [DTYPE, BATCH, DEPTH, ZP] for name in sorted(N78_OPS)}
    table["QUANTIZE"] = [DTYPE, BATCH, DEPTH]  # a requantize; float inputs fail DTYPE
    for name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
        table[name] += [KSIZE, STRIDE, DILATION]
    table["DEPTHWISE_CONV_2D"].append(MULT)
    table["FULLY_CONNECTED"].append(FC_PC)
    table["AVERAGE_POOL_2D"].append(POOL)
    table["MAX_POOL_2D"].append(POOL)
    table["MEAN"].append(MEAN)
    return OperatorSupport("ethos-n78", table, UNSUPPORTED)
