"""Vela 5.2's TFLite operator constraints for Ethos-U, as named rules (shared by U55/U65 and U85).

Each check mirrors one constraint Vela's Regor core documents in its supported-operators
report (`ethosu.regor.tflite_operator_constraints`); the message names the failing values so
a user sees "stride 4 > 3", not just "unsupported". Family tables are in `support_tables`.
"""

from __future__ import annotations

import math

import numpy as np

from hwopt.ir import DType, Tensor
from hwopt.targets.support import OpView, Rule, bits

CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D")
FIX_INT8 = "convert with full-integer quantization (int8 or 16x8) so that every input and output is an integer tensor"
FIX_PER_TENSOR = "quantize this operator's tensors per tensor (one scale and zero point)"


def _name(t: Tensor) -> str:
    return t.name or f"#{t.index}"


def _shape4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Pad a shape to NHWC rank 4 with leading ones (Vela's Shape::PadAxes(shape, 4, 1))."""
    s = tuple(shape[-4:]) if len(shape) >= 4 else (1,) * (4 - len(shape)) + tuple(shape)
    return (int(s[0]), int(s[1]), int(s[2]), int(s[3]))


def _values(t: Tensor | None) -> np.ndarray | None:
    return None if t is None or t.data is None else np.asarray(t.data).reshape(-1)


# ---- generic constraints (every operator type) -------------------------------------------

def dtypes_rule(allowed: frozenset[DType]) -> Rule:
    names = ", ".join(sorted(d.name for d in allowed))

    def check(v: OpView) -> str | None:
        for t in v.feature_maps():
            if t.dtype not in allowed:
                return f"tensor {_name(t)} is {t.dtype.label}"
        return None

    return Rule("feature-map-type", f"Feature-map data types must be one of {{{names}}}", FIX_INT8, check)


def _has_ifm(v: OpView) -> str | None:
    return None if v.ifm is not None else "the operator has no input feature map"


def _has_ofm(v: OpView) -> str | None:
    return None if v.ofm is not None else "the operator has no output"


def _static_dims(v: OpView) -> str | None:
    for t in v.all_tensors():
        sig = t.shape_signature or t.shape
        for axis, d in enumerate(sig):
            if axis > 0 and d < 0:
                return f"tensor {_name(t)} has a dynamic dimension at axis {axis}"
    return None


def _needs_quant(v: OpView, t: Tensor, role: str) -> bool:
    if t.dtype in (DType.INT64, DType.BOOL):
        return False
    if role == "w":
        return True
    if role in ("ifm", "ofm"):
        return t.dtype is not DType.INT32 or v.name == "QUANTIZE"
    return False


def _quantized(v: OpView) -> str | None:
    pairs = [(r, t) for r, t in v.roles if t is not None] + [("ofm", t) for t in v.outputs]
    for role, t in pairs:
        if _needs_quant(v, t, role):
            q = t.quantization
            if q is None or q.scale.size == 0 or q.zero_point.size == 0:
                return f"tensor {_name(t)} has no quantization parameters"
    return None


def _negative_shift(scale: float) -> bool:
    """True when Vela's 32-bit multiplier and right shift for `scale` keep a negative shift.

    Vela takes frexp(scale) -> multiplier round(m * 2^31), shift 31 - e, and folds a negative
    shift into the multiplier when it still fits in 32 bits; the NPU's output stage can only
    shift right, so what is left negative (scales of about 2^32 and up) cannot run.
    """
    if not math.isfinite(scale):
        return True  # an infinite scale has no multiplier and shift at all
    m, e = math.frexp(scale)
    mult = math.floor(abs(m) * 2.0**31 + 0.5) * (1 if m >= 0 else -1)
    shift = 31 - e
    return shift < 0 and not mult < 2.0 ** (shift + 32)


def _scale_positive(v: OpView) -> str | None:
    for t in v.all_tensors():
        q = t.quantization
        if q is None or not q.scale.size:
            continue
        # only |scale| >= 2^31 can leave a negative shift (frexp exponent above 31): check just those
        if q.scale.size == 1:  # (as float32, as Vela reads it)
            one = float(np.float32(q.scale[0]))
            big = [one] if abs(one) >= 2.0**31 else []
        else:
            scales = np.asarray(q.scale, dtype=np.float32).astype(np.float64)
            big = scales[np.abs(scales) >= 2.0**31].tolist()
        for s in big:
            if _negative_shift(s):
                return f"tensor {_name(t)} has scale {s:g} (Vela needs a right shift; scales from 2^32 up cannot)"
    return None


def _per_axis(v: OpView) -> str | None:
    for t in v.all_tensors():
        q = t.quantization
        if q is not None and (q.scale.size > 1 or q.zero_point.size > 1):
            return f"tensor {_name(t)} is quantized per axis ({q.scale.size} scales)"
    return None


def _weights_8bit(v: OpView) -> str | None:
    w = v.weights
    if w is None:
        return None
    return None if bits(w.dtype) == 8 else f"weights {_name(w)} are {w.dtype.label}"


def weight_sum_rule(limit8: int, limit16: int) -> Rule:
    def check(v: OpView) -> str | None:
        w, ifm = v.weights, v.ifm
        values = None if w is None else w.data
        if w is None or ifm is None or values is None or values.ndim != 4 or bits(w.dtype) != 8:
            return None
        limit = limit8 if bits(ifm.dtype) == 8 else limit16
        depthwise = v.name == "DEPTHWISE_CONV_2D"
        out_axis = 3 if depthwise else 0
        outs = values.shape[out_axis]
        if outs and (values.size // outs) * 255 < limit:  # cannot overflow: Vela skips the sum too
            return None
        arr = np.asarray(values, dtype=np.int64)
        zp = np.zeros(1, dtype=np.int64)
        if w.quantization is not None and w.quantization.zero_point.size:
            zp = w.quantization.zero_point.astype(np.int64)
        per_out = np.moveaxis(arr, out_axis, 0).reshape(outs, -1)
        if per_out.shape[1] * 255 < limit:  # (no output channel: nothing to sum)
            return None
        zp_col = zp.reshape(-1, 1) if zp.size == per_out.shape[0] else zp[:1].reshape(1, 1)
        sums = np.abs(per_out - zp_col).sum(axis=1)
        worst = int(sums.max()) if sums.size else 0
        return None if worst <= limit else f"absolute weight sum {worst} of one output channel > {limit}"

    return Rule("weight-sum", f"The sum of absolute weights of an output channel cannot exceed {limit8} (8-bit "
                f"IFM) / {limit16} (16-bit IFM)", "prune or rescale the weights of the largest output channels, or "
                "split the layer along its input channels", check)


def _bias_shape(v: OpView) -> str | None:
    b = v.bias
    if b is None or not b.shape:
        return None
    return None if b.elements <= b.shape[-1] else f"bias {_name(b)} has shape {list(b.shape)}"


def _bias_constant(v: OpView) -> str | None:
    b = v.bias
    return None if b is None or b.is_constant else f"bias {_name(b)} is not a constant"


def _bias_type(v: OpView) -> str | None:
    b = v.bias
    if b is None:
        return None
    return None if b.dtype in (DType.INT32, DType.INT64) else f"bias {_name(b)} is {b.dtype.label}"


def bias_range_rule(max_bias: int) -> Rule:
    def check(v: OpView) -> str | None:
        b = v.bias
        vals = _values(b) if b is not None and b.dtype is DType.INT64 else None
        if vals is None or vals.size == 0:
            return None
        top = int(vals.max())
        return None if top <= max_bias else f"int64 bias {top} > {max_bias}"

    return Rule("bias-range", f"Int64 bias must be smaller than {max_bias}",
                "requantize the layer so its biases fit (smaller input or weight scales)", check)


def _const_params(v: OpView) -> str | None:
    for t in v.params:
        if not t.is_constant:
            return f"parameter tensor {_name(t)} is not a constant"
    return None


def _matching_quant(v: OpView) -> str | None:
    ins, out = v.ifms, v.ofm
    if out is None or len(ins) < 2:
        return None
    def key(t: Tensor) -> tuple[tuple[float, ...], tuple[int, ...]]:
        q = t.quantization
        return ((), ()) if q is None else (tuple(map(float, q.scale)), tuple(map(int, q.zero_point)))
    for t in ins[:2]:
        if key(t) != key(out):
            return f"input {_name(t)} is quantized {key(t)}, output {key(out)}"
    return None


def _fc_weight_shape(v: OpView) -> str | None:
    w = v.weights
    if w is None:
        return None
    s = w.shape
    if len(s) < 2 or w.elements != s[0] * s[-1]:
        return f"weights {_name(w)} have shape {list(s)}"
    return None


def _kernel(v: OpView) -> tuple[int, int]:
    o = v.options
    return (int(getattr(o, "filterWidth", 1) or 1), int(getattr(o, "filterHeight", 1) or 1))


def _stride(v: OpView) -> tuple[int, int]:
    o = v.options
    return (int(getattr(o, "strideW", 1)), int(getattr(o, "strideH", 1)))


def _dilation(v: OpView) -> tuple[int, int]:
    o = v.options
    return (int(getattr(o, "dilationWFactor", 1) or 1), int(getattr(o, "dilationHFactor", 1) or 1))


def _conv_kernel(v: OpView) -> tuple[int, int]:
    """Kernel (W, H) of a convolution from its weights (pooling: from its options)."""
    w = v.weights
    if w is not None and len(w.shape) == 4:
        return (int(w.shape[2]), int(w.shape[1]))
    return _kernel(v)


def _same_padding(v: OpView) -> bool:
    return int(getattr(v.options, "padding", 0)) == 0  # tflite Padding.SAME == 0


def _has_padding(v: OpView) -> bool:
    """True when the operator pads its input (SAME padding that adds at least one row or column)."""
    if not _same_padding(v) or v.ifm is None or v.ofm is None:
        return False
    (kw, kh), (sw, sh), (dw, dh) = _conv_kernel(v), _stride(v), _dilation(v)
    _, ih, iw, _ = _shape4(v.ifm.shape)
    _, oh, ow, _ = _shape4(v.ofm.shape)
    pad_h = max((oh - 1) * sh + (kh - 1) * dh + 1 - ih, 0)
    pad_w = max((ow - 1) * sw + (kw - 1) * dw + 1 - iw, 0)
    return pad_h > 0 or pad_w > 0


def _avgpool_kernel(v: OpView) -> str | None:
    w, h = _kernel(v)
    if not _has_padding(v):
        if not 1 <= h <= 256:
            return f"kernel height {h} > 256"
        return None if w * h <= 256 * 256 else f"kernel {w}x{h} = {w * h} > 65536"
    if not 1 <= w <= 8 or not 1 <= h <= 8:
        return f"kernel {w}x{h} with SAME padding (at most 8x8)"
    return None


def _maxpool_kernel(v: OpView) -> str | None:
    w, h = _kernel(v)
    if not 1 <= h <= 256:
        return f"kernel height {h} > 256"
    return None if w * h <= 256 * 256 else f"kernel {w}x{h} = {w * h} > 65536"


def _transpose_conv_shape(v: OpView) -> str | None:
    ifm, ofm = v.ifm, v.ofm
    if ifm is None or ofm is None:
        return None
    (sw, sh), (kw, kh) = _stride(v), _conv_kernel(v)
    _, ih, iw, _ = _shape4(ifm.shape)
    _, oh, ow, _ = _shape4(ofm.shape)
    want = (iw * sw, ih * sh) if _same_padding(v) else (iw * sw + max(kw - sw, 0), ih * sh + max(kh - sh, 0))
    if (ow, oh) != want:
        return f"output {ow}x{oh} (WxH) where {'SAME' if _same_padding(v) else 'VALID'} padding needs {want[0]}x{want[1]}"
    return None


def _rsqrt_type(v: OpView) -> str | None:
    ifm = v.ifm
    return None if ifm is None or ifm.dtype in (DType.INT8, DType.INT16) else f"input is {ifm.dtype.label}"


def _softmax_size(v: OpView) -> str | None:
    ifm = v.ifm
    if ifm is None:
        return None
    _, h, w, _ = _shape4(ifm.shape)
    return None if h * w <= 1 << 16 else f"input {w}x{h} = {w * h} > 65536 (W x H)"


def _pad_params(v: OpView) -> str | None:
    p = v.params[:1]
    if p and p[0].dtype not in (DType.INT32, DType.INT64):
        return f"paddings tensor {_name(p[0])} is {p[0].dtype.label}"
    return None


def _transpose_rank(v: OpView) -> str | None:
    p = v.params[:1]
    if p and p[0].shape and p[0].shape[-1] > 8:
        return f"permutation of rank {p[0].shape[-1]} > 8"
    return None


def _same_shapes(v: OpView) -> str | None:
    ifm, ofm = v.ifm, v.ofm
    if ifm is None or ofm is None or ifm.shape == ofm.shape:
        return None
    return f"input shape {list(ifm.shape)} != output shape {list(ofm.shape)}"


def same_types_rule(rule_id: str, allowed: tuple[DType, ...]) -> Rule:
    names = " or ".join(d.name.title() for d in allowed)

    def check(v: OpView) -> str | None:
        ifm, ofm = v.ifm, v.ofm
        if ifm is None or ofm is None:
            return None
        if ifm.dtype not in allowed:
            return f"input is {ifm.dtype.label}"
        return None if ifm.dtype == ofm.dtype else f"input is {ifm.dtype.label}, output {ofm.dtype.label}"

    return Rule(rule_id, f"IFM and OFM data types must match, and must be {names}", FIX_INT8, check)
