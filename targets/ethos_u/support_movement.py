"""Ethos-U constraints of data-movement operators (slice, split, reverse, transpose, resize, gather,
scatter), apart from `support_compute` to keep modules small; each mirrors one Vela 5.2 check."""

from __future__ import annotations

import math

import numpy as np

from hwopt.ir import DType
from hwopt.targets.ethos_u.support_rules import _shape4, _values
from hwopt.targets.support import OpView, bits


def strided_slice(v: OpView) -> str | None:
    ifm = v.ifm
    params = v.params
    if ifm is None or len(params) < 3:
        return None
    begin, end, strides = (_values(t) for t in params[:3])
    if begin is None or end is None or strides is None:
        return None
    o = v.options
    bm, em = int(getattr(o, "beginMask", 0)), int(getattr(o, "endMask", 0))
    ellipsis, shrink = int(getattr(o, "ellipsisMask", 0)), int(getattr(o, "shrinkAxisMask", 0))
    rank = len(ifm.shape)
    shape = list(ifm.shape)
    offset, size, step = [0] * rank, list(shape), [1] * rank
    spec = min(begin.size, end.size, strides.size)
    axis = 0
    for i in range(spec):
        if ellipsis & (1 << i):
            axis = rank - (spec - i - 1)
            continue
        if axis >= rank:
            break
        is_shrink = bool(shrink & (1 << i))
        if not bm & (1 << i) or is_shrink:
            b = int(begin[i])
            b = b + shape[axis] if b < 0 else b
            b = min(max(b, 0), shape[axis] - 1)
            offset[axis] = b
            size[axis] = 1 if is_shrink else shape[axis] - b
        if not em & (1 << i) and not is_shrink:
            e = int(end[i])
            e = e + shape[axis] if e < 0 else e
            e = min(max(e, 1), shape[axis])
            size[axis] = e - offset[axis]
        step[axis] = int(strides[i])
        axis += 1
    step4 = _shape4(tuple(step))
    if step4[0] * step4[3] != 1 or (rank > 4 and math.prod(step[:-3]) != 1):
        return f"strides {step} step over an axis other than H or W"
    if any(s < 0 for s in step):
        return f"negative stride in {step}"
    if any(s <= 0 for s in size):
        return f"empty slice of shape {size}"
    return None


def splits_match(v: OpView) -> str | None:
    n = getattr(v.options, "numSplits", None)
    if n is None or int(n) == len(v.outputs):
        return None
    return f"num_splits {int(n)} but {len(v.outputs)} outputs"


def _resize_flags(v: OpView) -> tuple[bool, bool]:
    o = v.options
    return bool(getattr(o, "alignCorners", False)), bool(getattr(o, "halfPixelCenters", False))


# ---- Ethos-U55/U65 only --------------------------------------------------------------------

def reverse_axis(v: OpView) -> str | None:
    p = v.params[:1]
    vals = _values(p[0]) if p else None
    ofm = v.ofm
    if vals is None or ofm is None:
        return None
    rank = len(ofm.shape)
    axes = sorted({int(a) % max(rank, 1) for a in vals.tolist()})
    return None if not axes else f"reverses axes {axes}"


def _perm(v: OpView) -> list[int] | None:
    p = v.params[:1]
    vals = _values(p[0]) if p else None
    return None if vals is None else [int(x) for x in vals.tolist()]


def _hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    s = _shape4(shape)
    return (s[0] * s[1], s[2], s[3]) if len(shape) <= 4 else (math.prod(shape[:-2]), shape[-2], shape[-1])


def _perm_kind(perm: list[int]) -> str:
    """Vela's transpose type of a permutation padded to NHWC: NHWC (none), NWHC, NHCW, ..."""
    p = ([0, 1, 2, 3][: 4 - len(perm)] + [x + 4 - len(perm) for x in perm]) if len(perm) <= 4 else perm
    letters = "NHWC"
    return "".join(letters[i] for i in p) if len(p) == 4 else "other"


def transpose_32(v: OpView) -> str | None:
    ifm = v.ifm
    perm = _perm(v)
    if ifm is None or perm is None or ifm.dtype is not DType.INT32:
        return None
    if len(ifm.shape) > 4:
        return f"int32 transpose of rank {len(ifm.shape)} > 4"
    n, h, w, c = _shape4(ifm.shape)
    kind = _perm_kind(perm)
    if kind == "NHWC":
        return None if c <= 1 << 15 else f"int32 depth {c} > 32768"
    if kind == "NWHC":
        ok = n <= 1 and h <= 1 << 16 and w <= 1 << 16 and c <= 1 << 14
        return None if ok else f"int32 NWHC transpose of shape {list(ifm.shape)}"
    if kind == "NHCW":
        ok = n * h <= 1 << 16 and w <= 1 << 16 and c <= 1 << 16
        return None if ok else f"int32 NHCW transpose of shape {list(ifm.shape)}"
    return f"int32 transpose with permutation {perm}"


def transpose_8_16(v: OpView) -> str | None:
    ifm = v.ifm
    perm = _perm(v)
    if ifm is None or perm is None or bits(ifm.dtype) > 16:
        return None
    kind = _perm_kind(perm)
    if kind == "NHWC" or perm == sorted(perm):
        return None
    shape = ifm.shape
    rank = len(shape)
    outside = math.prod(shape[:-3]) if rank > 3 else 1
    if (rank <= 3 or outside == 1) and kind in ("NWHC", "NHCW", "NCWH", "NWCH", "NCHW"):
        hwc = _hwc(shape)
        return None if max(hwc) <= 1 << 16 else f"transpose of shape {list(shape)} ({hwc} > 65536)"
    total = math.prod(shape)
    for i in range(rank):
        for j in range(i + 1, rank):
            if shape[i] * shape[j] and total // (shape[i] * shape[j]) > 1 << 16:
                return f"transpose {perm} of shape {list(shape)}: a product of {rank - 2} axes > 65536"
    return None


def resize_u55(v: OpView) -> str | None:
    ifm, ofm = v.ifm, v.ofm
    if ifm is None or ofm is None:
        return None
    align, hpc = _resize_flags(v)
    hpc = hpc and v.name == "RESIZE_BILINEAR"
    _, ih, iw, _ = _shape4(ifm.shape)
    _, oh, ow, _ = _shape4(ofm.shape)
    if ih == 1 and iw == 1:
        return None
    if ih == oh and iw == ow:
        return "half-pixel centres without scaling" if hpc else None
    if align:
        hs = 1.0 if oh == 1 else (oh - 1) / (ih - 1) if ih > 1 else float("inf")
        ws = 1.0 if ow == 1 else (ow - 1) / (iw - 1) if iw > 1 else float("inf")
    else:
        hs, ws = oh / ih, ow / iw
    if hs != ws:
        if not ((oh == 1 and hs == 1) or (ow == 1 and ws == 1)):
            return f"scale factors differ: height {hs:g}, width {ws:g}"
        if hpc:
            return f"scale factors differ (height {hs:g}, width {ws:g}) with half-pixel centres"
    up = max(hs, ws)
    top = 2 if hpc else 8
    ok = up == int(up) and up > 1 and int(up) & (int(up) - 1) == 0 and up <= top
    return None if ok else f"scale factor {up:g} (must be 2x{'' if hpc else ', 4x or 8x'})"


# ---- Ethos-U85 only ------------------------------------------------------------------------

def _hpc_u85(v: OpView) -> tuple[bool, bool]:
    align, hpc = _resize_flags(v)
    if v.name == "RESIZE_NEAREST_NEIGHBOR":
        hpc = not align or hpc  # Vela follows the reference kernel: half-pixel unless align-corners
    return align, hpc


def resize_ac_hpc(v: OpView) -> str | None:
    align, hpc = _hpc_u85(v)
    return "both align_corners and half_pixel_centers are set" if align and hpc else None


def _factors(v: OpView) -> tuple[tuple[int, int], tuple[int, int]] | None:
    ifm, ofm = v.ifm, v.ofm
    if ifm is None or ofm is None:
        return None
    _, ih, iw, _ = _shape4(ifm.shape)
    _, oh, ow, _ = _shape4(ofm.shape)
    align, _ = _hpc_u85(v)
    wn, wd, hn, hd = ow, iw, oh, ih
    if align:
        if wd > 1:
            wn, wd = wn - 1, wd - 1
        if hd > 1:
            hn, hd = hn - 1, hd - 1
    return (wn, wd), (hn, hd)


def resize_scale_u85(v: OpView) -> str | None:
    f = _factors(v)
    if f is None:
        return None
    _, hpc = _hpc_u85(v)
    for axis, (num, den) in zip(("width", "height"), f, strict=True):
        if num == 0 or den == 0:
            return f"{axis} scale factor {num}/{den}"
        s = num // den
        if hpc and s > 1024:
            return f"{axis} scale factor {s} > 1024 with half-pixel centres"
        if s > 2048:
            return f"{axis} scale factor {s} > 2048"
    return None


def resize_pow2(v: OpView) -> str | None:
    ifm = v.ifm
    f = _factors(v)
    if ifm is None or f is None:
        return None
    _, ih, iw, _ = _shape4(ifm.shape)
    if ih == 1 and iw == 1:
        return None
    for axis, (num, den) in zip(("width", "height"), f, strict=True):
        s = num // den if den else 0
        if den == 0 or num % den or s <= 0 or s & (s - 1):
            return f"{axis} scale factor {num}/{den} is not an integer power of two"
    return None


def gather_axis(v: OpView) -> str | None:
    o = v.options
    ifm = v.ifm
    rank = len(ifm.shape) if ifm is not None else 0
    axis = int(getattr(o, "axis", 0))
    axis = rank + axis if axis < 0 else axis
    batch = int(getattr(o, "batchDims", 0))
    return None if axis == batch else f"axis {axis} != batch_dims {batch}"


def scatter_checks(v: OpView) -> str | None:
    ins = [v.sg.tensor(i) for i in v.op.inputs]
    idx = ins[0] if ins else None
    shape_t = ins[2] if len(ins) > 2 else None
    if shape_t is not None and not shape_t.is_constant:
        return "shape tensor is not a constant"
    if idx is None or not idx.is_constant:
        return "index tensor is not a constant"
    if not idx.shape or idx.shape[-1] != 1:
        return f"index tensor has shape {list(idx.shape)} (channel must be 1)"
    vals = _values(idx)
    if vals is not None and np.unique(vals).size != vals.size:
        return "index tensor has duplicate elements"
    return None
