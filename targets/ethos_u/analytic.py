"""hwopt's own Ethos-U cost model: per-layer cycles from the descriptor alone (no compiler run).

Per operator the model takes the larger of three terms, as the NPU overlaps them:
- compute: MAC cycles from the OFM micro-block grid (OFM rounded up to whole micro-blocks, IFM
  depth to the 8-channel dot-product width and its IFM block), with Vela's two convolution
  traversals (depth-first: one kernel element per step; part-kernel: four) and the write-back
  floor of a block; depthwise and pooling use 4-element kernel steps; the output stage (AO)
  runs at the descriptor's cycles-per-element;
- memory: feature-map and weight bytes over each memory's bandwidth (AXI width x ports x clock
  scale), with IFM re-reads per OFM-depth block and NHCWB16 16-channel bricks;
- weights: U85 weight-decoder throughput from sparsity (8 + (z - 0.5) * 60 weights/cycle/stream,
  z clamped to [0.5, 0.9]); on U55/U65 weight cost is the DMA only.
Encoded weight bytes are estimated from the zero-point-corrected weights' entropy (the MLW
palette/GRC coder approaches it) after padding to micro-block multiples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from hwopt.ir import DType, Model, Operator, Subgraph, Tensor
from hwopt.layers import weight_layers, zero_corrected
from hwopt.targets.descriptor import Family, Target

# TFLite builtins Vela 5.2 can place on the NPU (regor.tflite_operator_constraints).
NPU_OPS_U55 = frozenset(
    ["ABS", "ADD", "ARGMAX", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "ELU", "EXP", "EXPAND_DIMS", "FULLY_CONNECTED", "GELU", "HARD_SWISH", "LEAKY_RELU", "LOG", "LOGISTIC", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "NEG", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RELU_0_TO_1", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "REVERSE_V2", "RSQRT", "SLICE", "SOFTMAX", "SPLIT", "SPLIT_V", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TILE", "TRANSPOSE", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK"])
NPU_OPS_U85 = NPU_OPS_U55 | frozenset(
    ["ASSIGN_VARIABLE", "CAST", "DIV", "EQUAL", "GATHER", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "NOT_EQUAL", "READ_VARIABLE", "REDUCE_ALL", "REDUCE_ANY", "SCATTER_ND", "SELECT", "SELECT_V2"])

# Passes Vela lowers SOFTMAX into (max, exp LUT, sums, Newton-Raphson reciprocal): ~25 elementwise passes.
SOFTMAX_PASSES = 25
BRICK = 16  # NHCWB16 feature maps are stored in 16-channel bricks
SCALE_BYTES_PER_CHANNEL = 10  # bias + scale + shift record per OFM channel


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


@dataclass(frozen=True)
class LayerGeometry:
    """One operator reduced to what the cost models need (shapes as H, W, C)."""

    subgraph: int
    op_index: int
    op: str
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

    @property
    def ifm_elements(self) -> int:
        return self.ifm[0] * self.ifm[1] * self.ifm[2]

    @property
    def ofm_elements(self) -> int:
        return self.ofm[0] * self.ofm[1] * self.ofm[2]


@dataclass(frozen=True)
class LayerCost:
    """Estimated cost of one operator on one target."""

    subgraph: int
    op_index: int
    op: str
    placement: str  # "npu" | "cpu"
    cycles: int
    compute_cycles: int
    memory_cycles: dict[str, int]
    weight_cycles: int
    macs: int
    encoded_weight_bytes: int | None
    sram_bytes: int
    bound: str  # "compute" | "memory" | "weights" | "none" | "cpu"

    @property
    def mac_utilisation(self) -> float | None:
        return None


def hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A tensor shape as (H, W, C): C the last axis, W the one before, H the product of the rest."""
    if not shape:
        return (1, 1, 1)
    c = shape[-1]
    w = shape[-2] if len(shape) >= 3 else 1
    rest = shape[:-2] if len(shape) >= 3 else shape[:-1]
    h = int(np.prod(rest, dtype=np.int64)) if rest else 1
    return (max(h, 1), max(w, 1), max(c, 1))


def _weight_info(w: np.ndarray) -> WeightInfo:
    flat = w.reshape(-1)
    values, counts = np.unique(flat, return_counts=True)
    p = counts / max(flat.size, 1)
    entropy = float(-(p * np.log2(p)).sum()) if flat.size else 0.0
    zeros = int(counts[values == 0].sum()) if flat.size else 0
    return WeightInfo(int(flat.size), zeros / max(flat.size, 1), int(values.size), entropy)


def _cpu_reason(sg: Subgraph, op: Operator, family: Family) -> str | None:
    supported = NPU_OPS_U85 if family is Family.ETHOS_U85 else NPU_OPS_U55
    if op.op not in supported:
        return f"{op.op} is not supported on the NPU"
    for i in (*op.inputs, *op.outputs):
        t = sg.tensor(i)
        if t is not None and t.data is None and t.dtype.is_float:
            return f"{op.op} has a {t.dtype.label} tensor"
    return None


def _kernel_stride(op: Operator, sg: Subgraph, kind: OpKind) -> tuple[tuple[int, int], tuple[int, int]]:
    opts = op.options
    stride = (int(getattr(opts, "strideH", 1) or 1), int(getattr(opts, "strideW", 1) or 1))
    if kind in (OpKind.CONV, OpKind.DEPTHWISE) and len(op.inputs) > 1:
        w = sg.tensor(op.inputs[2] if op.op == "TRANSPOSE_CONV" else op.inputs[1])
        if w is not None and len(w.shape) == 4:
            return (w.shape[1], w.shape[2]), stride
    if op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return (int(getattr(opts, "filterHeight", 1)), int(getattr(opts, "filterWidth", 1))), stride
    if op.op in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        t = sg.tensor(op.inputs[0])
        if t is not None and len(t.shape) == 4:
            return (t.shape[1], t.shape[2]), (1, 1)
    return (1, 1), stride


def layer_geometry(model: Model, family: Family) -> list[LayerGeometry]:
    """Every operator of every subgraph as a `LayerGeometry`, with weight statistics."""
    layers = {(wl.subgraph, wl.op_index): wl for wl in weight_layers(model)}
    out = []
    for sg in model.subgraphs:
        for op in sg.operators:
            reason = _cpu_reason(sg, op, family)
            kind = OpKind.CPU if reason else KIND_OF.get(op.op, OpKind.ELEMENTWISE)
            ins = [sg.tensor(i) for i in op.inputs]
            acts: list[Tensor] = [t for t in ins if t is not None and t.data is None]
            ofm_t = sg.tensor(op.outputs[0]) if op.outputs else None
            ifm = hwc(acts[0].shape) if acts else (1, 1, 1)
            ifm2 = acts[1].elements if len(acts) > 1 else 0
            ofm = hwc(ofm_t.shape) if ofm_t is not None else (1, 1, 1)
            dt = ofm_t.dtype if ofm_t is not None else DType.INT8
            itemsize = dt.numpy.itemsize if dt.numpy is not None else 1
            kernel, stride = _kernel_stride(op, sg, kind)
            wl = layers.get((sg.index, op.index))
            winfo = _weight_info(zero_corrected(model, wl)) if wl is not None and wl.macs else None
            macs = wl.macs if wl is not None else 0
            if kind is OpKind.POOL:
                macs = ofm[0] * ofm[1] * ofm[2] * kernel[0] * kernel[1]
            out.append(LayerGeometry(sg.index, op.index, op.op, kind, ifm, ifm2, ofm, kernel, stride, itemsize, macs,
                                     winfo, reason))
    return out


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _round(a: int, b: int) -> int:
    return _cdiv(a, b) * b


def padded_weights(g: LayerGeometry, target: Target) -> int:
    """Weights the encoder emits after padding IFM/OFM depth and kernel to the brick granules."""
    if g.weights is None:
        return 0
    kh, kw = g.kernel
    uc = target.npu.ofm_ublock[2]
    if g.kind is OpKind.DEPTHWISE:
        return _round(g.ofm[2], uc) * _round(kh * kw, 4)
    return _round(g.ofm[2], uc) * _round(g.ifm[2], 8) * kh * kw


def encoded_weight_bytes(g: LayerGeometry, target: Target) -> int:
    """Encoded stream size: entropy-coded symbols (zeros run-length coded when they dominate) + headers."""
    if g.weights is None:
        return 0
    w = g.weights
    n = padded_weights(g, target)
    pad_zeros = n - w.count
    z = (w.zero_fraction * w.count + pad_zeros) / max(n, 1)
    bits = w.entropy_bits
    if z > 0.5:  # zero-run mode: zeros leave the symbol stream, only run lengths are coded
        bits = (1 - z) * (w.entropy_bits + 1.0) + 0.3 * z
    bits = min(max(bits, 0.15), 9.0) + 0.2  # GRC parameter/palette overhead
    streams = max(1, _cdiv(g.ofm[2], 64)) * target.npu.cores * target.npu.weight_streams
    return _round(math.ceil(n * bits / 8), 16) + 16 * streams


def _ublock(g: LayerGeometry, target: Target) -> tuple[int, int, int]:
    """The OFM micro-block an op runs in (U85 depthwise/pooling use the 16-deep alternative)."""
    ub = target.npu.ofm_ublock
    if target.family is Family.ETHOS_U85 and g.kind in (OpKind.DEPTHWISE, OpKind.POOL):
        for alt in target.npu.alt_ofm_ublocks:
            if alt[2] == 16 and alt[0] * alt[1] * alt[2] >= ub[0] * ub[1] * ub[2] // 2:
                return alt
    if (target.family is not Family.ETHOS_U85 and ub[0] == 2 and g.ofm[0] == 1 and g.ofm[1] % 2 == 0
            and g.kernel[0] == 1 and g.kind in (OpKind.CONV, OpKind.FULLY_CONNECTED)):
        return (1, 4, ub[2])  # U55/U65: 1-row OFMs with an even width run as 1x4 micro-blocks
    return ub


BLOCK_ELEMENTS = 256  # typical OFM block area (H x W) the block-config search settles on


def mac_cycles(g: LayerGeometry, target: Target) -> int:
    """MAC-array cycles from the micro-block grid and kernel steps (Vela's per-block model, one block size)."""
    uh, uw, uc = _ublock(g, target)
    oh, ow, oc = g.ofm
    ub_wh = _cdiv(oh, uh) * _cdiv(ow, uw)
    ub_c = _cdiv(oc, uc)
    n_wh = max(1, min(ub_wh, BLOCK_ELEMENTS // (uh * uw)))  # micro-blocks per block in H x W
    blocks_wh = ub_wh / n_wh
    kh, kw = g.kernel
    k = kh * kw
    wb = 4 * uc  # write-back floor of a block step: 32 accumulator bits x C / 8
    cin = g.ifm[2]
    u85 = target.family is Family.ETHOS_U85
    sparse_div = 1
    if g.kind in (OpKind.CONV, OpKind.FULLY_CONNECTED):
        if g.kind is OpKind.FULLY_CONNECTED:
            k = 1
        # depth-first: one kernel element per step over an IFM block (32 channels U55/U65, 64 U85)
        ifm_block = 64 if u85 else 32
        step = max(wb, (ifm_block // 8 if u85 else 4) * n_wh)
        depth_first = k * step * _cdiv(cin, ifm_block)
        # part-kernel: four kernel elements per step, 16-channel IFM blocks, 8 channels per pass
        part = _cdiv(k, 4) * max(wb, 4 * n_wh) * _cdiv(min(cin, 16), 8) * _cdiv(cin, 16)
        per_block = min(depth_first, part) if g.kind is OpKind.CONV else depth_first
        cycles = per_block * ub_c * blocks_wh / sparse_div
    elif g.kind is OpKind.DEPTHWISE:
        cycles = _cdiv(k, 4) * max(wb, 4 * n_wh) * ub_c * blocks_wh
    elif g.kind is OpKind.POOL:
        bits_factor = 1 if target.npu.macs == 32 and not u85 else 4
        cycles = max(4, min(k, 64)) * _cdiv(k, 64) * ub_wh * ub_c * bits_factor
    else:
        return 0
    return int(cycles / target.npu.cores)


def ao_cycles(g: LayerGeometry, target: Target) -> int:
    """Output-stage cycles: per OFM element at the descriptor's rate for the op kind."""
    os_ = target.npu.output_stage
    elements = g.ofm[0] * g.ofm[1] * _round(g.ofm[2], BRICK)
    rate = {OpKind.CONV: os_.conv, OpKind.DEPTHWISE: os_.conv, OpKind.FULLY_CONNECTED: os_.conv,
            OpKind.POOL: os_.maxpool if g.op == "MAX_POOL_2D" else os_.conv, OpKind.LUT: max(os_.lut, os_.conv),
            OpKind.SOFTMAX: os_.add * SOFTMAX_PASSES}.get(g.kind)
    if rate is None:
        rate = os_.mul if g.op in ("MUL", "SQUARED_DIFFERENCE", "PRELU") else os_.add
    return math.ceil(rate * elements / target.npu.cores)


def _fm_memories(g: LayerGeometry, target: Target) -> tuple[str, str]:
    """Where IFM and OFM live: the arena, or SRAM when the arena is off-chip and both fit the cache."""
    arena = target.arena_memory
    if arena == "Sram":
        return "Sram", "Sram"
    fits = (g.ifm_elements + g.ofm_elements) * g.itemsize <= target.arena_limit // 2
    return ("Sram", "Sram") if fits else (arena, arena)


def memory_bytes(g: LayerGeometry, target: Target, encoded: int) -> dict[str, float]:
    """Bytes each memory moves for this op (reads + writes)."""
    traffic: dict[str, float] = {}

    def add(mem: str, n: float) -> None:
        traffic[mem] = traffic.get(mem, 0.0) + n

    ifm_mem, ofm_mem = _fm_memories(g, target)
    ih, iw, ic = g.ifm
    ifm_bytes = ih * iw * _round(ic, BRICK) * g.itemsize
    ofm_bytes = g.ofm[0] * g.ofm[1] * _round(g.ofm[2], BRICK) * g.itemsize
    if g.kind is OpKind.CONV or g.kind is OpKind.FULLY_CONNECTED:
        # the IFM is re-read for every OFM-depth block (block depth ~ 8 micro-blocks deep)
        depth_blocks = _cdiv(g.ofm[2], 8 * target.npu.ofm_ublock[2])
        halo = ((16 + g.kernel[0] - 1) * (16 + g.kernel[1] - 1)) / 256 if g.kernel != (1, 1) else 1.0
        add(ifm_mem, ifm_bytes * depth_blocks * halo)
    elif g.kind is OpKind.SOFTMAX:
        add(ifm_mem, ifm_bytes * SOFTMAX_PASSES)
        add(ofm_mem, ofm_bytes * (SOFTMAX_PASSES - 1))
    else:
        add(ifm_mem, ifm_bytes + g.ifm2_elements * g.itemsize)
    add(ofm_mem, ofm_bytes)
    if encoded:
        const = target.const_memory
        add(const, encoded + SCALE_BYTES_PER_CHANNEL * g.ofm[2])
        if const != "Sram" and target.staging_memory == "Sram":
            add("Sram", 2 * encoded)  # DMA'd into SRAM, then read by the NPU
    return traffic


def weight_decode_cycles(g: LayerGeometry, target: Target) -> int:
    """U85 weight-decoder time: weights per cycle rise with the zero fraction (SWD format)."""
    if g.weights is None or target.family is not Family.ETHOS_U85:
        return 0
    z = min(max(g.weights.zero_fraction, 0.5), 0.9)
    rate = target.npu.weight_streams * (8 + (z - 0.5) * 60)
    return int(padded_weights(g, target) / rate)


def layer_cost(g: LayerGeometry, target: Target) -> LayerCost:
    """Cycles of one operator: max(compute, each memory's access cycles, weight decode)."""
    if g.kind is OpKind.CPU:
        return LayerCost(g.subgraph, g.op_index, g.op, "cpu", 0, 0, {}, 0, 0, None, 0, "cpu")
    if g.kind is OpKind.NOP:
        return LayerCost(g.subgraph, g.op_index, g.op, "npu", 0, 0, {}, 0, 0, None, 0, "none")
    encoded = encoded_weight_bytes(g, target)
    compute = 0 if g.kind is OpKind.MEMORY else max(mac_cycles(g, target), ao_cycles(g, target))
    traffic = memory_bytes(g, target, encoded)
    mem_cycles = {m: math.ceil(b / target.bandwidth(m)) for m, b in traffic.items()}
    const = target.const_memory
    weight_dma = math.ceil((encoded + SCALE_BYTES_PER_CHANNEL * g.ofm[2]) / target.bandwidth(const)) if encoded else 0
    decode = max(weight_decode_cycles(g, target), weight_dma if target.family is Family.ETHOS_U85 else 0)
    fm_max = max(mem_cycles.values(), default=0)
    cycles = max(compute, fm_max, decode)
    if cycles == compute:
        bound = "compute"
    elif cycles == decode or (encoded and cycles == mem_cycles.get(const, -1) and weight_dma * 2 >= cycles):
        bound = "weights"
    else:
        bound = "memory"
    sram = (g.ifm_elements + g.ofm_elements) * g.itemsize if "Sram" in _fm_memories(g, target) else 0
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", int(cycles), int(compute), mem_cycles, int(decode),
                     g.macs, encoded or None, int(sram), bound)


def estimate_layers(model: Model, target: Target) -> list[LayerCost]:
    """Analytic per-operator costs of a whole model on an Ethos-U target."""
    return [layer_cost(g, target) for g in layer_geometry(model, target.family)]
