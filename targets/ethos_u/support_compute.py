"""Ethos-U constraints of compute operators (MEAN, LSTM, matmul, ARG_MAX, strides, zero points),
apart from `support_movement` to keep modules small; each mirrors one Vela 5.2 check."""

from __future__ import annotations

import math

import numpy as np

from hwopt.ir import DType, Tensor
from hwopt.targets.ethos_u.support_rules import (
    _conv_kernel,
    _dilation,
    _has_padding,
    _name,
    _shape4,
    _stride,
    _values,
)
from hwopt.targets.support import OpView, bits

MAX_MEAN_KERNEL = 64 * 64


MAX_MEAN_ELEMENTS = {DType.INT8: 1 << 24, DType.UINT8: 1 << 23, DType.INT16: 1 << 16}


def _axes(v: OpView) -> list[int] | None:
    """Reduced axes of a reduction, normalised to the IFM rank, or None when not constant."""
    p = v.params[:1]
    vals = _values(p[0]) if p else None
    ifm = v.ifm
    if vals is None or ifm is None:
        return None
    rank = max(len(ifm.shape), 1)
    return sorted({int(a) % rank for a in vals.tolist()})


def _reduced_mask(v: OpView) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]] | None:
    ifm = v.ifm
    axes = _axes(v)
    if ifm is None or axes is None:
        return None
    rank = len(ifm.shape)
    mask = [1 if i in axes else 0 for i in range(rank)]
    mask4 = ([0] * (4 - rank) + mask)[-4:] if rank <= 4 else mask[-4:]
    return _shape4(ifm.shape), (mask4[0], mask4[1], mask4[2], mask4[3])


def unit_batch(v: OpView) -> str | None:
    ifm = v.ifm
    if ifm is None:
        return None
    n = _shape4(ifm.shape)[0]
    return None if n <= 1 else f"batch {n} > 1"


def mean_depth(v: OpView) -> str | None:
    rm = _reduced_mask(v)
    if rm is None:
        return None
    shape, mask = rm
    if mask[3] and not any(shape[i] == 1 for i in (1, 2, 3)):
        return f"reduces the depth of a {shape[1]}x{shape[2]}x{shape[3]} input (one of H, W, C must be 1)"
    return None


def mean_axis(v: OpView) -> str | None:
    rm = _reduced_mask(v)
    if rm is None:
        return None
    shape, mask = rm
    for axis, (d, m) in enumerate(zip(shape, mask, strict=True)):
        if m and d > MAX_MEAN_KERNEL:
            return f"reduced axis {axis} has {d} elements (> {MAX_MEAN_KERNEL})"
    return None


def mean_type(v: OpView) -> str | None:
    ifm = v.ifm
    if ifm is None or ifm.dtype in (DType.INT8, DType.UINT8, DType.INT16):
        return None
    return f"input is {ifm.dtype.label}"


def mean_elements(v: OpView) -> str | None:
    rm = _reduced_mask(v)
    ifm = v.ifm
    if rm is None or ifm is None:
        return None
    shape, mask = rm
    n = math.prod(d for d, m in zip(shape, mask, strict=True) if m)
    limit = MAX_MEAN_ELEMENTS.get(ifm.dtype)
    return None if limit is None or n <= limit else f"{n} reduced elements > {limit} for {ifm.dtype.label}"


def _present(v: OpView, positions: range) -> list[int]:
    ins = v.op.inputs
    return [p for p in positions if p < len(ins) and ins[p] >= 0]


def lstm_gates(v: OpView) -> str | None:
    missing = [p for p in range(1, 9) if p not in _present(v, range(1, 9))]
    return None if not missing else f"gate weight inputs {missing} are omitted (coupled input and forget gate)"


def lstm_peephole(v: OpView) -> str | None:
    got = _present(v, range(9, 12))
    return None if not got else f"peephole weights present (inputs {got})"


def lstm_projection(v: OpView) -> str | None:
    got = _present(v, range(16, 18))
    return None if not got else f"projection weights or bias present (inputs {got})"


def lstm_norm(v: OpView) -> str | None:
    got = _present(v, range(20, 24))
    return None if not got else f"layer-normalisation coefficients present (inputs {got})"


# ---- Ethos-U55/U65 only --------------------------------------------------------------------

def stride_at_most_3(v: OpView) -> str | None:
    sw, sh = _stride(v)
    return None if sw <= 3 and sh <= 3 else f"stride {sw}x{sh} (WxH) > 3"


def unrolled_stride(v: OpView) -> str | None:
    ofm = v.ofm
    if ofm is None:
        return None
    _, oh, ow, _ = _shape4(ofm.shape)
    sw, sh = _stride(v)
    if (sw <= 3 or ow == 1) and (sh <= 3 or oh == 1):
        return None
    dw, dh = _dilation(v)
    if not _has_padding(v) and dw == 1 and dh == 1:
        return None
    why = "padding" if _has_padding(v) else f"dilation {dw}x{dh}"
    return f"stride {sw}x{sh} (WxH) > 3 with {why}"


def _dynamic_matmul(v: OpView) -> bool:
    if v.name == "FULLY_CONNECTED":
        w = v.weights
        return w is not None and not w.is_constant
    return True


def matmul_reduced(v: OpView) -> str | None:
    ifm = v.ifm
    if ifm is None or not _dynamic_matmul(v) or not ifm.shape:
        return None
    adj_x = bool(getattr(v.options, "adjX", False))
    k = ifm.shape[-2] if adj_x and len(ifm.shape) >= 2 else ifm.shape[-1]
    return None if k <= 1 << 16 else f"reduced axis {k} > 65536"


def matmul_depth(v: OpView) -> str | None:
    ofm = v.ofm
    if ofm is None or not _dynamic_matmul(v) or not ofm.shape:
        return None
    return None if ofm.shape[-1] <= 1 << 16 else f"output depth {ofm.shape[-1]} > 65536"


def matmul_type(v: OpView) -> str | None:
    ifm = v.ifm
    if ifm is None or not _dynamic_matmul(v):
        return None
    return None if ifm.dtype is DType.INT8 else f"input is {ifm.dtype.label}"


def argmax_depth(v: OpView) -> str | None:
    ifm = v.ifm
    if ifm is None or not ifm.shape:
        return None
    return None if ifm.shape[-1] <= 127 else f"input depth {ifm.shape[-1]} > 127"


def argmax_axis(v: OpView) -> str | None:
    ifm = v.ifm
    p = v.params[:1]
    vals = _values(p[0]) if p else None
    if ifm is None or vals is None or vals.size == 0:
        return None
    axis = int(vals[0])
    rank = len(ifm.shape)
    return None if axis in (rank - 1, -1) else f"axis {axis} of a rank-{rank} input (only the last axis)"


def transpose_conv_stride(v: OpView) -> str | None:
    ifm = v.ifm
    sw, sh = _stride(v)
    kw, kh = _conv_kernel(v)
    if not (1 <= sw <= 2 and 1 <= sh <= 2):
        return f"stride {sw}x{sh} (WxH) (1 or 2 only)"
    _, ih, iw, _ = _shape4(ifm.shape) if ifm is not None else (1, 1, 1, 1)
    if (sw, sh) == (1, 2) and not (iw == 1 and kw == 1):
        return f"stride 1x2 (WxH) needs input width 1 and kernel width 1 (have {iw}, {kw})"
    if (sw, sh) == (2, 1) and not (ih == 1 and kh == 1):
        return f"stride 2x1 (WxH) needs input height 1 and kernel height 1 (have {ih}, {kh})"
    return None


def precision_rule_check(precision: int):
    def check(v: OpView) -> str | None:
        for t in v.feature_maps():
            if bits(t.dtype) == precision:
                return f"tensor {_name(t)} is {t.dtype.label}"
        return None

    return check


UNSIGNED = (DType.UINT8, DType.UINT16, DType.UINT32)


def zero_points_u55(v: OpView) -> str | None:
    for t in v.feature_maps():
        q = t.quantization
        if q is None or q.zero_point.size == 0 or (t.dtype not in UNSIGNED and bits(t.dtype) != 32):
            continue
        zps = q.zero_point.astype(np.int64)
        if bits(t.dtype) == 32 and bool(np.any(zps != 0)):
            return f"{t.dtype.label} tensor {_name(t)} has zero point {int(zps[zps != 0][0])} (must be 0)"
        if t.dtype in UNSIGNED and bool(np.any(zps < 0)):
            return f"unsigned tensor {_name(t)} has negative zero point {int(zps.min())}"
    return None


# ---- Ethos-U85 only ------------------------------------------------------------------------

def _zp_ok_in(t: Tensor, zp: int) -> bool:
    if t.dtype is DType.INT8:
        return -128 <= zp <= 127
    if t.dtype is DType.UINT8:
        return 0 <= zp <= 255
    if t.dtype is DType.UINT16:
        return zp in (0, 32768)
    return zp == 0


def ifm_zero_points(v: OpView) -> str | None:
    for t in v.ifms:
        q = t.quantization
        for zp in ([] if q is None else q.zero_point.astype(np.int64).tolist()):
            if not _zp_ok_in(t, int(zp)):
                return f"input {_name(t)} ({t.dtype.label}) has zero point {zp}"
    return None


def ofm_zero_points(v: OpView) -> str | None:
    for t in v.outputs:
        q = t.quantization
        signed = t.dtype in (DType.INT8, DType.INT16, DType.INT32, DType.INT64)
        for zp in ([] if q is None else q.zero_point.astype(np.int64).tolist()):
            ok = -128 <= zp <= 127 if signed else (0 <= zp <= 255 or zp == 32768)
            if not ok:
                return f"output {_name(t)} ({t.dtype.label}) has zero point {zp}"
    return None
