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

from hwopt.analysis.layers import weight_layers, zero_corrected
from hwopt.analysis.stats import check_2_4
from hwopt.ir import DType, Model, Operator, Subgraph, Tensor
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
    sparse_2_4: bool = False  # every aligned group of 4 input channels holds >= 2 zeros


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
    ifm_in_arena: bool = False  # the IFM is a graph input: it stays in the arena, in NHWC layout
    ofm_in_arena: bool = False  # the OFM is a graph output
    chained: bool = False  # U85: elementwise op chained onto its producer's output (no pass of its own)
    chain: tuple[str, ...] = ()  # U85: the elementwise ops chained onto this op's output stage

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


def _weight_info(w: np.ndarray, in_axis: int | None = None) -> WeightInfo:
    flat = w.reshape(-1)
    values, counts = np.unique(flat, return_counts=True)
    p = counts / max(flat.size, 1)
    entropy = float(-(p * np.log2(p)).sum()) if flat.size else 0.0
    zeros = int(counts[values == 0].sum()) if flat.size else 0
    sparse = bool(check_2_4(w, in_axis)[0]) if in_axis is not None and zeros * 2 >= flat.size else False
    return WeightInfo(int(flat.size), zeros / max(flat.size, 1), int(values.size), entropy, sparse)


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


# Binary elementwise ops the U85 output stage can apply to a chained producer's output.
CHAINABLE = frozenset(["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"])


def _consumers(sg: Subgraph) -> dict[int, list[int]]:
    """Tensor index -> indices of the operators reading it."""
    readers: dict[int, list[int]] = {}
    for op in sg.operators:
        for i in dict.fromkeys(op.inputs):
            if i >= 0:
                readers.setdefault(i, []).append(op.index)
    return readers


def chained_ops(sg: Subgraph, family: Family) -> dict[int, int]:
    """U85 operators chained onto the previous NPU pass (op -> producer): a binary elementwise op whose input is the
    output of the operator just before it, read by nothing else, with the same shape as its own output.

    The U85 output stage keeps that intermediate in its chaining buffer and applies the elementwise
    op as the producer's results are written, so the op costs no pass (and no feature-map traffic) of
    its own; U55/U65 have no chaining buffer.
    """
    if family is not Family.ETHOS_U85:
        return {}
    readers = _consumers(sg)
    producer = {o: op.index for op in sg.operators for o in op.outputs if o >= 0}
    graph_outputs = set(sg.outputs)
    out: dict[int, int] = {}  # chained op -> the op whose pass it rides on
    for op in sg.operators:
        if op.op not in CHAINABLE or _cpu_reason(sg, op, family) or not op.outputs:
            continue
        ofm = sg.tensor(op.outputs[0])
        acts = [i for i in op.inputs if (t := sg.tensor(i)) is not None and t.data is None]
        for i in acts:
            src = producer.get(i)
            t = sg.tensor(i)
            if src is None or src != op.index - 1 or t is None or ofm is None:
                continue
            prev = sg.operators[src]
            if (_cpu_reason(sg, prev, family) or KIND_OF.get(prev.op) in (OpKind.NOP, OpKind.MEMORY, OpKind.SOFTMAX)
                    or src in out):
                continue
            if readers.get(i) == [op.index] and i not in graph_outputs and tuple(t.shape) == tuple(ofm.shape):
                out[op.index] = src
                break
    return out


def layer_geometry(model: Model, family: Family) -> list[LayerGeometry]:
    """Every operator of every subgraph as a `LayerGeometry`, with weight statistics."""
    layers = {(wl.subgraph, wl.op_index): wl for wl in weight_layers(model)}
    out = []
    for sg in model.subgraphs:
        chained = chained_ops(sg, family)
        chains: dict[int, tuple[str, ...]] = {}
        for c, src in chained.items():
            chains[src] = (*chains.get(src, ()), sg.operators[c].op)
        graph_in, graph_out = set(sg.inputs), set(sg.outputs)
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
            winfo = _weight_info(zero_corrected(model, wl), wl.in_axis) if wl is not None and wl.macs else None
            macs = wl.macs if wl is not None else 0
            if kind is OpKind.POOL:
                macs = ofm[0] * ofm[1] * ofm[2] * kernel[0] * kernel[1]
            ifm_index = next((i for i in op.inputs if (t := sg.tensor(i)) is not None and t.data is None), -1)
            out.append(LayerGeometry(sg.index, op.index, op.op, kind, ifm, ifm2, ofm, kernel, stride, itemsize, macs,
                                     winfo, reason, ifm_index in graph_in,
                                     bool(op.outputs) and op.outputs[0] in graph_out, op.index in chained,
                                     chains.get(op.index, ())))
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


# --- Ethos-U85 --------------------------------------------------------------------------------------
# The U85 reads through per-channel AXI read buffers, chooses its OFM block from the sizes of its
# IFM and accumulator RAMs, and re-reads weights and per-channel scales for every OFM block in H x W.


class Channel(Enum):
    """U85 DMA channels; each read channel has its own read buffer."""

    MEM2MEM = 0  # weight prefetch into the staging SRAM
    IFM_STREAM = 1  # elementwise inputs
    WEIGHT = 2
    FAST_WEIGHT = 3
    IFM = 4
    SCALE = 5
    WRITE = 6


@dataclass(frozen=True)
class U85Buffers:
    """Fixed on-chip buffers of one U85 configuration (Arm Ethos-U85 TRM / Vela's arch tables)."""

    ifm_ram: int  # bytes of IFM RAM (holds the IFM blocks being convolved)
    acc_ram: int  # bytes of accumulator RAM (holds the OFM blocks' 32-bit accumulators)
    read_buffers: tuple[int, ...]  # read-buffer size per read channel (Channel order), in 16-byte words


U85_BUFFERS = {
    128: U85Buffers(8192, 8192, (64, 64, 128, 128, 104, 16)),
    256: U85Buffers(16384, 16384, (104, 104, 128, 128, 128, 16)),
    512: U85Buffers(16384, 32768, (128, 128, 256, 256, 128, 16)),
    1024: U85Buffers(16384, 65536, (256, 256, 416, 208, 256, 16)),
    2048: U85Buffers(32768, 131072, (256, 256, 512, 256, 256, 16)),
}
AXI_EFFICIENCY = 0.8  # usable share of outstanding transactions and of a burst's latency window
ACC_BYTES = 4  # 32-bit accumulators
BLOCKS_IN_RAM = 2  # IFM/accumulator RAMs are double-buffered across OFM blocks
OFM_BLOCK_MAX = (128, 128, 1024)
SUBKERNEL = 8  # kernels larger than 8x8 run as 8x8 sub-kernels
AXI_WORD = 16


def u85_buffers(target: Target) -> U85Buffers:
    """The buffer table of the U85 configuration with the nearest MAC count not above the target's."""
    fits = [m for m in U85_BUFFERS if m <= target.npu.macs] or [min(U85_BUFFERS)]
    return U85_BUFFERS[max(fits)]


def channel_bandwidth(target: Target, memory: str, channel: Channel) -> float:
    """Bytes/cycle one U85 channel sustains: bursts in flight (read buffer / burst length, bounded by
    the memory's outstanding transactions over its ports) x burst length / latency, capped at peak."""
    m = target.memory_config(memory)
    peak = target.bandwidth(memory)
    if channel is Channel.WRITE:
        in_flight = m.max_writes * m.ports_used * AXI_EFFICIENCY
        latency = m.write_latency
    else:
        burst_words = max(m.burst_length // AXI_WORD, 1)
        rb = u85_buffers(target).read_buffers[channel.value] / burst_words
        in_flight = min(rb, m.max_reads * m.ports_used * AXI_EFFICIENCY)
        latency = m.read_latency
    if latency <= 0 or in_flight <= 0:
        return peak
    return min(peak, m.burst_length * in_flight / latency * AXI_EFFICIENCY)


@dataclass(frozen=True)
class U85Block:
    """The OFM/IFM block and micro-block a U85 pass runs in, and its traversal."""

    ofm: tuple[int, int, int]
    ifm: tuple[int, int, int]
    ublock: tuple[int, int, int]
    part_kernel: bool
    ifm_depth: int  # IFM channels consumed per block step


def _u85_ublock(g: LayerGeometry, target: Target) -> tuple[int, int, int]:
    """Least-waste micro-block: 8-bit convolutions use the 8-deep ones, depthwise/pooling the 16-deep."""
    blocks = (target.npu.ofm_ublock, *target.npu.alt_ofm_ublocks)
    deep = [b for b in blocks if b[2] == BRICK]
    if g.kind in (OpKind.DEPTHWISE, OpKind.POOL):
        cands = deep or list(blocks)
    else:
        cands = [b for b in blocks if b[2] == target.npu.ofm_ublock[2] and b not in deep] or list(blocks)
    oh, ow, oc = g.ofm

    def waste(b: tuple[int, int, int]) -> tuple[int, int]:
        return (_round(oh, b[0]) * _round(ow, b[1]) * _round(oc, b[2]) - oh * ow * oc, b[0])
    return min(cands, key=waste)


def _sparse(g: LayerGeometry) -> bool:
    """U85 runs 2:4-sparse convolution/FC weights at half the MAC steps (zeros skipped in pairs)."""
    return g.weights is not None and g.weights.sparse_2_4 and g.kind in (OpKind.CONV, OpKind.FULLY_CONNECTED)


def _part_kernel(g: LayerGeometry) -> bool:
    """Kernel-first traversal when it keeps more MACs busy than depth-first (16- vs 64-channel steps,
    128 when 2:4-sparse)."""
    if g.kind is not OpKind.CONV:
        return False
    sparse = _sparse(g)
    k = g.kernel[0] * g.kernel[1]
    c = g.ifm[2]
    step, rem = (10, 4) if sparse else (5, 2)
    k_rnd = (k // step) * step + max(k % step, rem)
    return (c / _round(c, 16)) * (k / k_rnd) >= c / _round(c, 128 if sparse else 64)


def _ifm_extent(o: np.ndarray | int, stride: int, k: int, au: int) -> np.ndarray | int:
    """IFM rows/columns needed for `o` OFM rows/columns (kernel clipped to a sub-kernel), to the alloc unit."""
    n = (o - 1) * stride + min(k, SUBKERNEL)
    return -(-n // au) * au


def u85_block(g: LayerGeometry, target: Target) -> U85Block:
    """Choose the OFM block the way the U85 block search does: among blocks whose accumulators and IFM
    fit the RAMs (double-buffered), the one that fetches the fewest IFM + weight bytes per OFM element."""
    bufs = u85_buffers(target)
    ub = _u85_ublock(g, target)
    oh, ow, oc = g.ofm
    ih, iw, ic = g.ifm
    kh, kw = g.kernel
    sh, sw = g.stride
    part = _part_kernel(g)
    if g.kind in (OpKind.DEPTHWISE, OpKind.POOL):
        # equal-depth ops: one brick deep, as much of H x W as the accumulators hold (single buffer);
        # when the whole plane fits, deepen the block instead
        acc = bufs.acc_ram // ACC_BYTES
        d = BRICK
        w = min(_round(ow, ub[1]), OFM_BLOCK_MAX[1], max(ub[1], acc // (d * ub[0]) // ub[1] * ub[1]))
        h = min(_round(oh, ub[0]), OFM_BLOCK_MAX[0], max(ub[0], acc // (d * w) // ub[0] * ub[0]))
        if h >= oh and w >= ow:
            d = min(_round(oc, BRICK), OFM_BLOCK_MAX[2], max(BRICK, acc // (h * w) // BRICK * BRICK))
        while h > ub[0] and (_ifm_extent(h + ub[0], sh, kh, 1) * _ifm_extent(w, sw, kw, 1) * d > bufs.ifm_ram):
            h -= ub[0]
        ifm = (int(_ifm_extent(h, sh, kh, 1)), int(_ifm_extent(w, sw, kw, 1)), d)
        return U85Block((h, w, d), ifm, ub, False, d)
    if part:
        ifm_depth = 16
    elif target.npu.macs <= 256 and ub[2] == BRICK and not _sparse(g):
        ifm_depth = 32
    elif _sparse(g):
        ifm_depth = 128
    else:
        ifm_depth = 64
    end_h = _round(max(min(oh, OFM_BLOCK_MAX[0]), ub[0]), ub[0])
    end_w = _round(max(min(ow, OFM_BLOCK_MAX[1]), ub[1]), ub[1])
    end_d = _round(max(min(oc, OFM_BLOCK_MAX[2]), BRICK), ub[2])
    depths = []
    d = max(ub[2], min(end_d, BRICK))
    d = _round(d, BRICK) if d < oc else d
    while d <= end_d:
        depths.append(d)
        d += ub[2]
        d = _round(d, BRICK) if d < oc else d
    hs = np.arange(ub[0], end_h + 1, ub[0])
    ws = np.arange(ub[1], end_w + 1, ub[1])
    bd, bh, bw = np.meshgrid(np.array(depths), hs, ws, indexing="ij")
    ifm_h = np.asarray(_ifm_extent(bh, sh, kh, ub[0]))
    ifm_w = np.asarray(_ifm_extent(bw, sw, kw, ub[1]))
    fits_acc = bufs.acc_ram >= bh * bw * bd * ACC_BYTES * BLOCKS_IN_RAM
    fits_ifm = ifm_h * ifm_w * ifm_depth * g.itemsize * BLOCKS_IN_RAM <= bufs.ifm_ram
    ok = fits_acc & fits_ifm
    if not ok.any():
        ok = bufs.acc_ram >= bh * bw * bd * ACC_BYTES  # single-buffered as a last resort
    full_wh = -(-oh // bh) * -(-ow // bw)
    repeats = _cdiv(kh, SUBKERNEL) * _cdiv(kw, SUBKERNEL)
    k = kh * kw if g.kind is OpKind.CONV else 0
    weight_fetch = k * ic * full_wh * oc
    ifm_fetch = ifm_h * ifm_w * ic * repeats * (oh / bh) * (ow / bw) * -(-oc // bd)
    cost = (ifm_fetch + weight_fetch) / max(oh * ow * oc, 1)
    if g.kind is OpKind.FULLY_CONNECTED:
        cost = 1.0 / (bh * bw)
    cost = np.where(ih * iw * ic < ifm_h * ifm_w * ifm_depth * 2, cost / 2, cost)
    cost = np.where(ok, cost, np.inf)
    i = np.unravel_index(int(np.argmin(cost)), cost.shape)
    h, w, d = int(bh[i]), int(bw[i]), int(bd[i])
    return U85Block((h, w, d), (int(ifm_h[i]), int(ifm_w[i]), ifm_depth), ub, part, ifm_depth)


def _burst_factor(target: Target, memory: str, nhwc: bool, channels: int, block_w: int, block_c: int,
                  write: bool) -> float:
    """Bus bytes per payload byte: short bursts (NHWC rows narrower than a burst) waste the rest of it."""
    burst_max = target.memory_config(memory).burst_length
    if nhwc:
        if channels == block_c and (not write or block_c <= 16):
            burst = block_w * channels
        elif write:
            burst = min(64, 16 * target.npu.cores, block_c)
        else:
            burst = block_c
    else:
        burst = 16 * block_w * (target.npu.cores if write else 1)
    return burst_max / max(min(burst_max, burst), 1)


def _access_cycles(target: Target, transfers: list[tuple[str, Channel, float]]) -> dict[str, int]:
    """Per memory: max(all bytes at peak bandwidth, the busiest channel at its own bandwidth)."""
    per_mem: dict[str, dict[Channel, float]] = {}
    for mem, ch, n in transfers:
        if n > 0:
            per_mem.setdefault(mem, {})
            per_mem[mem][ch] = per_mem[mem].get(ch, 0.0) + n
    out = {}
    for mem, chans in per_mem.items():
        total = sum(chans.values()) / target.bandwidth(mem)
        busiest = max(n / channel_bandwidth(target, mem, ch) for ch, n in chans.items())
        out[mem] = math.ceil(max(total, busiest))
    return out


def _u85_mac_cycles_per_block(g: LayerGeometry, blk: U85Block) -> float:
    """MAC-array cycles of one OFM block: kernel steps x micro-blocks, with the write-back floor."""
    uh, uw, uc = blk.ublock
    bh, bw, bd = min(blk.ofm[0], g.ofm[0]), min(blk.ofm[1], g.ofm[1]), min(blk.ofm[2], g.ofm[2])
    nub_wh = _cdiv(bh, uh) * _cdiv(bw, uw)
    nub_d = _cdiv(bd, uc)
    wb = 4 * uc
    ifm_d = min(blk.ifm_depth, g.ifm[2])
    kh, kw = g.kernel if g.kind is not OpKind.FULLY_CONNECTED else (1, 1)
    total = 0.0
    for x in range(0, kw, SUBKERNEL):
        for y in range(0, kh, SUBKERNEL):
            k = min(kh - y, SUBKERNEL) * min(kw - x, SUBKERNEL)
            if g.kind is OpKind.POOL:
                steps, cycles = 1, max(4, k) * nub_wh * nub_d * 4
            elif g.kind is OpKind.DEPTHWISE:
                steps = _cdiv(k, 4)
                cycles = max(wb, 4 * nub_wh) * steps * nub_d
            elif blk.part_kernel:
                steps = _cdiv(k, 4)
                cycles = max(wb, 4 * nub_wh) * steps * nub_d * _cdiv(ifm_d, 8)
            else:
                steps = k
                cycles = max(wb, blk.ifm_depth // 8 * nub_wh) * steps * nub_d
            if _sparse(g):
                cycles //= 2
            delay = 0
            if nub_wh == 1:  # a single micro-block cannot hide the 2-cycle accumulate latency
                delay = 2 * steps if nub_d == 1 else (2 * (steps - 1) * nub_d if steps > 1 else 0)
            if blk.part_kernel:
                delay *= _cdiv(ifm_d, 8)
            total += cycles + delay
    if g.kind in (OpKind.CONV, OpKind.FULLY_CONNECTED):
        total *= _cdiv(g.ifm[2], blk.ifm_depth)
    return total


def _u85_fm_memories(g: LayerGeometry, target: Target) -> tuple[str, str]:
    """Graph inputs/outputs stay in the arena; intermediates are staged in SRAM when they fit."""
    ifm_mem, ofm_mem = _fm_memories(g, target)
    arena = target.arena_memory
    return (arena if g.ifm_in_arena else ifm_mem, arena if g.ofm_in_arena else ofm_mem)


def u85_layer_cost(g: LayerGeometry, target: Target) -> LayerCost:
    """One U85 pass: max(MAC/AO/command-issue cycles, each memory's channel-limited access cycles,
    weight decode)."""
    if g.chained:
        return LayerCost(g.subgraph, g.op_index, g.op, "npu", 0, 0, {}, 0, 0, None, 0, "none")
    encoded = encoded_weight_bytes(g, target)
    ifm_mem, ofm_mem = _u85_fm_memories(g, target)
    const = target.const_memory
    ih, iw, ic = g.ifm
    oh, ow, oc = g.ofm
    ifm_c = ic if g.ifm_in_arena else _round(ic, BRICK)
    ofm_c = oc if g.ofm_in_arena else _round(oc, BRICK)
    transfers: list[tuple[str, Channel, float]] = []
    lat_in = target.memory_config(ifm_mem).read_latency
    lat_out = target.memory_config(ofm_mem).write_latency
    if g.kind in (OpKind.CONV, OpKind.FULLY_CONNECTED, OpKind.DEPTHWISE, OpKind.POOL):
        blk = u85_block(g, target)
        bh, bw, bd = (min(blk.ofm[0], oh), min(blk.ofm[1], ow), min(blk.ofm[2], oc))
        n_wh = _cdiv(oh, bh) * _cdiv(ow, bw)
        equal_depth = g.kind in (OpKind.DEPTHWISE, OpKind.POOL)
        n_blocks = n_wh * (1 if equal_depth else _cdiv(oc, bd))
        fh, fw = min(blk.ifm[0], ih), min(blk.ifm[1], iw)
        sub = _cdiv(g.kernel[0], SUBKERNEL) * _cdiv(g.kernel[1], SUBKERNEL)
        ifm_burst = _burst_factor(target, ifm_mem, g.ifm_in_arena, ic, fw, blk.ifm_depth, False)
        ofm_burst = _burst_factor(target, ofm_mem, g.ofm_in_arena, oc, bw, bd, True)
        transfers.append((ifm_mem, Channel.IFM, fh * fw * ifm_c * sub * n_blocks * g.itemsize * ifm_burst))
        transfers.append((ofm_mem, Channel.WRITE, oh * ow * ofm_c * g.itemsize * ofm_burst))
        if encoded:
            # scales/biases and weights are re-read for every OFM block in H x W
            transfers.append((const, Channel.SCALE, n_wh * SCALE_BYTES_PER_CHANNEL * oc))
            transfers.append((const, Channel.WEIGHT, encoded))
            if const != "Sram" and target.staging_memory == "Sram" and n_wh > 1:
                transfers.append(("Sram", Channel.WEIGHT, n_wh * encoded))
        # per-block pipeline: MAC, output stage (>= scale fetch latency) and command issue overlap
        ublocks = _cdiv(oh, blk.ublock[0]) * _cdiv(ow, blk.ublock[1]) * _cdiv(oc, blk.ublock[2])
        per_block = _cdiv(bh, blk.ublock[0]) * _cdiv(bw, blk.ublock[1]) * _cdiv(bd, blk.ublock[2])
        nb = ublocks / per_block
        os_ = target.npu.output_stage
        rate = os_.maxpool if g.op == "MAX_POOL_2D" else os_.conv
        # chained elementwise ops run through the output stage after this op's own output
        rate += sum(os_.mul if c in ("MUL", "SQUARED_DIFFERENCE") else os_.add for c in g.chain)
        ao: float = math.ceil(rate * bh * bw * bd)
        if encoded:
            ao = max(ao, SCALE_BYTES_PER_CHANNEL * bd * target.memory_config(const).read_latency / 256)
        mac = _u85_mac_cycles_per_block(g, blk)
        min_mem = (lat_in + fh * fw * min(blk.ifm_depth, ifm_c) * g.itemsize * ifm_burst / target.bandwidth(ifm_mem)
                   + lat_out + bh * bw * bd * g.itemsize * ofm_burst / target.bandwidth(ofm_mem))
        cmd = (min_mem + mac + ao) / 4
        mac_b, ao_b = max(mac, cmd), max(ao, cmd)
        compute = int(mac_b * nb + ao_b if mac_b > ao_b else ao_b * nb + mac_b)
    else:
        compute = 0 if g.kind is OpKind.MEMORY else ao_cycles(g, target)
        ifm_bytes = ih * iw * ifm_c * g.itemsize
        ch = Channel.IFM_STREAM if g.kind is OpKind.ELEMENTWISE else Channel.IFM
        passes = SOFTMAX_PASSES if g.kind is OpKind.SOFTMAX else 1
        transfers.append((ifm_mem, ch, ifm_bytes * passes + g.ifm2_elements * g.itemsize))
        transfers.append((ofm_mem, Channel.WRITE, oh * ow * ofm_c * g.itemsize * passes))
        if g.kind is not OpKind.MEMORY:
            compute = max(compute, math.ceil((lat_in + lat_out) / 4))
    mem_cycles = _access_cycles(target, transfers)
    decode = 0
    if encoded:
        dma = encoded / channel_bandwidth(target, const, Channel.WEIGHT) + target.memory_config(const).read_latency
        decode = max(weight_decode_cycles(g, target), math.ceil(dma))
    fm_max = max(mem_cycles.values(), default=0)
    cycles = max(compute, fm_max, decode)
    if cycles == compute:
        bound = "compute"
    elif cycles == decode:
        bound = "weights"
    else:
        bound = "memory"
    sram = (g.ifm_elements + g.ofm_elements) * g.itemsize if "Sram" in (ifm_mem, ofm_mem) else 0
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", int(cycles), int(compute), mem_cycles, int(decode),
                     g.macs, encoded or None, int(sram), bound)


def layer_cost(g: LayerGeometry, target: Target) -> LayerCost:
    """Cycles of one operator: max(compute, each memory's access cycles, weight decode)."""
    if g.kind is OpKind.CPU:
        return LayerCost(g.subgraph, g.op_index, g.op, "cpu", 0, 0, {}, 0, 0, None, 0, "cpu")
    if g.kind is OpKind.NOP:
        return LayerCost(g.subgraph, g.op_index, g.op, "npu", 0, 0, {}, 0, 0, None, 0, "none")
    if target.family is Family.ETHOS_U85:
        return u85_layer_cost(g, target)
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
