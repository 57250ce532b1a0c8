"""Operator geometry shared by every NPU cost model: shapes as (H, W, C), kernels, strides, MAC counts
and weight statistics, independent of any one target family.

A family supplies its own placement function (which operators run on the CPU and why) and, where
its hardware chains operators, the chaining map; everything else here is pure shape arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

import numpy as np

from hwopt.analysis.layers import weight_layers, zero_corrected_tensor
from hwopt.analysis.stats import check_2_4
from hwopt.ir import DType, Model, Operator, Subgraph, Tensor
from hwopt.records import OpRef


class OpKind(Enum):
    CONV = "conv"
    DEPTHWISE = "depthwise"
    FULLY_CONNECTED = "fully_connected"
    POOL = "pool"
    ELEMENTWISE = "elementwise"
    LUT = "lut"
    SOFTMAX = "softmax"
    MEMORY = "memory"  # concat / pad / slice / transpose: data movement only
    NOP = "nop"  # reshape-like: removed by the compiler
    CPU = "cpu"


KIND_OF = {
    "CONV_2D": OpKind.CONV, "TRANSPOSE_CONV": OpKind.CONV, "DEPTHWISE_CONV_2D": OpKind.DEPTHWISE,
    "FULLY_CONNECTED": OpKind.FULLY_CONNECTED, "BATCH_MATMUL": OpKind.FULLY_CONNECTED,
    "AVERAGE_POOL_2D": OpKind.POOL, "MAX_POOL_2D": OpKind.POOL, "MEAN": OpKind.POOL, "SUM": OpKind.POOL,
    "REDUCE_MAX": OpKind.POOL, "REDUCE_MIN": OpKind.POOL,
    "LOGISTIC": OpKind.LUT, "TANH": OpKind.LUT, "HARD_SWISH": OpKind.LUT, "EXP": OpKind.LUT, "LOG": OpKind.LUT,
    "GELU": OpKind.LUT, "ELU": OpKind.LUT, "RSQRT": OpKind.LUT, "LEAKY_RELU": OpKind.ELEMENTWISE,
    "SOFTMAX": OpKind.SOFTMAX,
    "RESHAPE": OpKind.NOP, "SQUEEZE": OpKind.NOP, "EXPAND_DIMS": OpKind.NOP,
    "CONCATENATION": OpKind.MEMORY, "PAD": OpKind.MEMORY, "PADV2": OpKind.MEMORY, "MIRROR_PAD": OpKind.MEMORY,
    "SLICE": OpKind.MEMORY, "STRIDED_SLICE": OpKind.MEMORY, "SPLIT": OpKind.MEMORY, "SPLIT_V": OpKind.MEMORY,
    "PACK": OpKind.MEMORY, "UNPACK": OpKind.MEMORY, "TILE": OpKind.MEMORY, "TRANSPOSE": OpKind.MEMORY,
    "REVERSE_V2": OpKind.MEMORY, "GATHER": OpKind.MEMORY,
}


@dataclass(frozen=True)
class WeightInfo:
    """What the cost of a weight stream depends on: count, zeros, distinct values, entropy."""

    count: int
    zero_fraction: float
    distinct: int
    entropy_bits: float
    sparse_2_4: bool = False  # every aligned group of 4 input channels holds >= 2 zeros


@dataclass(frozen=True)
class LayerGeometry(OpRef):
    """One operator reduced to what the cost models need (shapes as H, W, C)."""

    kind: OpKind
    ifm: tuple[int, int, int]
    ifm2_elements: int
    ofm: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    itemsize: int
    macs: int
    weights: WeightInfo | None
    cpu_reason: str | None
    ifm_in_arena: bool = False  # the IFM is a graph input: it stays in the arena, in NHWC layout
    ofm_in_arena: bool = False  # the OFM is a graph output
    chained: bool = False  # rides on its producer's pass (U85 chained elementwise, U55/U65 fused activation)
    chain: tuple[str, ...] = ()  # the operators riding on this op's output stage
    const_ifm: tuple[int, int, int] | None = None  # a constant feature-map operand (elementwise), read from flash/DRAM
    dilation: tuple[int, int] = (1, 1)  # kernel dilation (H, W)
    ifm2: tuple[int, int, int] | None = None  # the second feature-map operand's shape (binary elementwise)
    # Ethos-U concatenation / PAD: the copies Vela makes into the output (shape, read from the constant
    # memory, input NHWC, output NHWC); a concatenation's other inputs are written in place
    copies: tuple[tuple[tuple[int, int, int], bool, bool, bool], ...] = ()
    # operator options the lowering depends on ("align_corners", "half_pixel_centers" of a RESIZE)
    flags: frozenset[str] = frozenset()
    position: int = -1  # its place in the order the compiler runs the subgraph (-1: the file's order)
    # feature-map live ranges (Ethos-U85 placement): the passes writing its feature-map inputs (-1: none,
    # a graph input), the position of the last pass reading its output (-1: none), and the memories
    # chosen for its input and output ("": the per-layer rule)
    sources: tuple[int, ...] = ()
    last_read: int = -1
    ifm_memory: str = ""
    ofm_memory: str = ""

    @property
    def ifm_elements(self) -> int:
        return self.ifm[0] * self.ifm[1] * self.ifm[2]

    @property
    def ofm_elements(self) -> int:
        return self.ofm[0] * self.ofm[1] * self.ofm[2]


_GEOMETRY_FIELDS = frozenset(f.name for f in fields(LayerGeometry))


def evolve(g: LayerGeometry, **changes: Any) -> LayerGeometry:
    """`dataclasses.replace` of a geometry, field for field, without re-running the initialiser.

    The placement passes copy every geometry several times per model; the generated initialiser
    sets some thirty fields one `object.__setattr__` at a time, a dictionary copy does it at once.
    """
    if not changes.keys() <= _GEOMETRY_FIELDS:
        raise TypeError(f"LayerGeometry has no field {sorted(changes.keys() - _GEOMETRY_FIELDS)}")
    new = object.__new__(type(g))
    new.__dict__.update(g.__dict__)
    new.__dict__.update(changes)
    return new


@dataclass(frozen=True)
class PassCost:
    """One hardware pass of an NPU layer as the vendor's estimator itemises it (Ethos-N78)."""

    ple_operation: str  # PLE kernel ("PASSTHROUGH", "INTERLEAVE_2X2", ...) or "CONVERSION"
    mce_cycles: int
    mce_operations: int
    ple_cycles: int
    input_dram_bytes: int
    output_dram_bytes: int
    weight_dram_bytes: int
    sram_bytes: int
    weight_stripes: int


@dataclass(frozen=True)
class LayerCost(OpRef):
    """Estimated cost of one operator on one target."""

    placement: str  # "npu" | "cpu"
    cycles: int
    compute_cycles: int
    memory_cycles: dict[str, int]
    weight_cycles: int
    macs: int
    encoded_weight_bytes: int | None
    sram_bytes: int
    bound: str  # "compute" | "memory" | "weights" | "none" | "cpu"
    passes: tuple[PassCost, ...] = ()  # Ethos-N78: the passes behind the layer

    @property
    def mac_utilisation(self) -> float | None:
        return None


Placement = Callable[[Subgraph, Operator], "str | None"]
"""A family's operator-support model: the reason an operator runs on the CPU, or None for the NPU."""
Chaining = Callable[[Subgraph], "dict[int, int]"]
"""A family's chaining map: operator index -> index of the operator whose pass it rides on."""


def cdiv(a: int, b: int) -> int:
    """Ceiling division."""
    return -(-a // b)


def round_up(a: int, b: int) -> int:
    """`a` rounded up to a multiple of `b`."""
    return cdiv(a, b) * b


def hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A tensor shape as (H, W, C): C the last axis, W the one before, H the product of the rest."""
    if not shape:
        return (1, 1, 1)
    c = shape[-1]
    w = shape[-2] if len(shape) >= 3 else 1
    rest = shape[:-2] if len(shape) >= 3 else shape[:-1]
    h = int(math.prod(rest)) if rest else 1
    return (max(h, 1), max(w, 1), max(c, 1))


def weight_info(w: np.ndarray, in_axis: int | None = None) -> WeightInfo:
    """Count, zero fraction, distinct values and entropy of (zero-corrected, integer) weights."""
    flat = w.reshape(-1)
    if flat.size:
        lo = int(flat.min())
        idx = flat.astype(np.intp)
        idx -= lo
        hist = np.bincount(idx)  # one O(n) pass, no sort
        counts = hist[hist > 0]
        zeros = int(hist[-lo]) if 0 <= -lo < hist.size else 0
    else:
        counts, zeros = np.zeros(0, dtype=np.int64), 0
    p = counts / max(flat.size, 1)
    entropy = float(-(p * np.log2(p)).sum()) if flat.size else 0.0
    values = counts
    sparse = bool(check_2_4(w, in_axis)[0]) if in_axis is not None and zeros * 2 >= flat.size else False
    return WeightInfo(int(flat.size), zeros / max(flat.size, 1), int(values.size), entropy, sparse)


def byte_histogram(flat: np.ndarray) -> np.ndarray:
    """The 256-bin histogram of a flat uint8 array, exact.

    A large array is counted two bytes at a time (one 65536-bin count of half as many elements,
    then each byte's row and column summed): `np.bincount` widens every element to an index, so
    halving the elements halves that cost.
    """
    if flat.size < 1 << 17:
        return np.bincount(flat, minlength=256)
    even = flat.size & ~1
    pairs = np.bincount(flat[:even].view(np.uint16), minlength=1 << 16).reshape(256, 256)
    hist = pairs.sum(axis=0) + pairs.sum(axis=1)
    if even < flat.size:
        hist[flat[-1]] += 1
    return hist


def tensor_weight_info(t: Tensor, in_axis: int | None = None) -> WeightInfo:
    """`weight_info` of a constant tensor's zero-corrected values, figure for figure.

    8-bit weights with one zero point for the whole tensor (TFLite's symmetric int8 weights) take
    one 256-bin histogram of the stored bytes: subtracting a constant neither merges nor reorders
    values, so the counts, zeros and entropy are those of the corrected weights, without the int32
    copy; other tensors take the general path.
    """
    data, q = t.data, t.quantization
    assert data is not None
    zps = q.zero_point if q is not None and t.dtype.is_integer else None
    if data.dtype.itemsize != 1 or data.dtype.kind not in "iu" or (zps is not None and zps.size and (zps != zps[0]).any()):
        return weight_info(zero_corrected_tensor(t), in_axis)
    zp = int(zps[0]) if zps is not None and zps.size else 0
    flat = data.reshape(-1)
    hist = byte_histogram(flat.view(np.uint8))
    if data.dtype.kind == "i":  # bytes 128..255 hold -128..-1: put the bins in value order
        hist = np.concatenate((hist[128:], hist[:128]))
        lo = -128
    else:
        lo = 0
    counts = hist[hist > 0]
    zeros = int(hist[zp - lo]) if 0 <= zp - lo < 256 else 0
    n = int(flat.size)
    p = counts / max(n, 1)
    entropy = float(-(p * np.log2(p)).sum()) if n else 0.0
    sparse = bool(check_2_4(zero_corrected_tensor(t), in_axis)[0]) if in_axis is not None and zeros * 2 >= n else False
    return WeightInfo(n, zeros / max(n, 1), int(counts.size), entropy, sparse)


def kernel_stride(op: Operator, sg: Subgraph, kind: OpKind) -> tuple[tuple[int, int], tuple[int, int]]:
    opts = op.options
    stride = (int(getattr(opts, "strideH", 1) or 1), int(getattr(opts, "strideW", 1) or 1))
    if kind in (OpKind.CONV, OpKind.DEPTHWISE) and len(op.inputs) > 1:
        w = sg.tensor(op.inputs[1])  # the weights (TRANSPOSE_CONV: output shape, weights, input)
        if w is not None and len(w.shape) == 4:
            return (w.shape[1], w.shape[2]), stride
    if op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return (int(getattr(opts, "filterHeight", 1)), int(getattr(opts, "filterWidth", 1))), stride
    if op.op in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        t = sg.tensor(op.inputs[0])
        if t is not None and len(t.shape) == 4:
            return (t.shape[1], t.shape[2]), (1, 1)
    return (1, 1), stride


def dilation(op: Operator) -> tuple[int, int]:
    """Kernel dilation (H, W) of a convolution; (1, 1) for everything else."""
    opts = op.options
    return (int(getattr(opts, "dilationHFactor", 1) or 1), int(getattr(opts, "dilationWFactor", 1) or 1))


def consumers(sg: Subgraph) -> dict[int, list[int]]:
    """Tensor index -> indices of the operators reading it."""
    readers: dict[int, list[int]] = {}
    for op in sg.operators:
        for i in dict.fromkeys(op.inputs):
            if i >= 0:
                readers.setdefault(i, []).append(op.index)
    return readers


def layer_geometry(model: Model, placement: Placement, chaining: Chaining | None = None,
                   stats: dict[tuple[int, int], WeightInfo | None] | None = None) -> list[LayerGeometry]:
    """Every operator of every subgraph as a `LayerGeometry`, with weight statistics; `placement` decides
    CPU fallback, `chaining` (optional) which operators ride on a producer's pass. `stats` memoises the
    weight statistics (they do not depend on the target) across calls for one model."""
    stats = {} if stats is None else stats
    layers = {(wl.subgraph, wl.op_index): wl for wl in weight_layers(model)}
    out = []
    for sg in model.subgraphs:
        chained = chaining(sg) if chaining is not None else {}
        chains: dict[int, tuple[str, ...]] = {}
        for c, src in sorted(chained.items()):
            while src in chained:  # riding on an operator that itself rides on a pass: that pass's chain
                src = chained[src]
            chains[src] = (*chains.get(src, ()), sg.operators[c].op)
        graph_in, graph_out = set(sg.inputs), set(sg.outputs)
        for op in sg.operators:
            reason = placement(sg, op)
            kind = OpKind.CPU if reason else KIND_OF.get(op.op, OpKind.ELEMENTWISE)
            ins = [sg.tensor(i) for i in op.inputs]
            acts: list[Tensor] = [t for t in ins if t is not None and t.data is None]
            ofm_t = sg.tensor(op.outputs[0]) if op.outputs else None
            ifm = hwc(acts[0].shape) if acts else (1, 1, 1)
            ifm2 = acts[1].elements if len(acts) > 1 else 0
            ifm2_shape = hwc(acts[1].shape) if len(acts) > 1 else None
            ofm = hwc(ofm_t.shape) if ofm_t is not None else (1, 1, 1)
            dt = ofm_t.dtype if ofm_t is not None else DType.INT8
            itemsize = dt.numpy.itemsize if dt.numpy is not None else 1
            kernel, stride = kernel_stride(op, sg, kind)
            wl = layers.get((sg.index, op.index))
            key = (sg.index, op.index)
            if key not in stats:
                stats[key] = tensor_weight_info(wl.weights(model), wl.in_axis) if wl is not None and wl.macs else None
            winfo = stats[key]
            macs = wl.macs if wl is not None else 0
            if kind is OpKind.POOL:
                macs = ofm[0] * ofm[1] * ofm[2] * kernel[0] * kernel[1]
            ifm_index = next((i for i in op.inputs if (t := sg.tensor(i)) is not None and t.data is None), -1)
            consts = [t for t in ins if t is not None and t.data is not None and t.dtype in (DType.INT8, DType.INT16)]
            const_ifm = hwc(consts[0].shape) if kind is OpKind.ELEMENTWISE and consts else None
            out.append(LayerGeometry(sg.index, op.index, op.op, kind, ifm, ifm2, ofm, kernel, stride, itemsize, macs,
                                     winfo, reason, ifm_index in graph_in,
                                     bool(op.outputs) and op.outputs[0] in graph_out, op.index in chained,
                                     chains.get(op.index, ()), const_ifm, dilation(op), ifm2_shape))
    return out
