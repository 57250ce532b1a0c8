"""Ethos-U55/U65 cost model: per operator the larger of compute (MAC micro-block grid, output stage),
each memory's feature-map and weight traffic over its bandwidth; weights cost their DMA only."""

from __future__ import annotations

import math
from functools import lru_cache

from hwopt.targets.descriptor import Family, Target
from hwopt.targets.ethos_u.cost_common import (
    BRICK,
    SCALE_BYTES_PER_CHANNEL,
    SOFTMAX_PASSES,
    ao_cycles,
    burst_factor,
    constant_read_bytes,
    encoded_weight_bytes,
    fm_memories,
    io_memories,
)
from hwopt.targets.ethos_u.u55_lowering import lowered_passes, passes_cost
from hwopt.targets.ethos_u.u55_perf import (
    BIAS_BYTES,
    Block,
    NpuOp,
    Query,
    elementwise_cycles,
    feature_map_bytes,
    find_block,
    mac_op_cycles,
    reshape_to_increase_depth,
    transfer_bytes,
    weight_refetch,
)
from hwopt.targets.geometry import LayerCost, LayerGeometry, OpKind, cdiv, round_up

BINARY = frozenset(["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"])
SLOW_CONST_BYTES_PER_CYCLE = 2.0  # flash-class constant memory (U55 systems' off-chip flash: 0.5-1 B/cycle)
LUT_ACTIVATIONS = frozenset(["TANH", "LOGISTIC", "HARD_SWISH", "LEAKY_RELU"])  # 8-bit: table lookups
LUT_BYTES = 256  # an 8-bit table: 256 entries
POOL_NOP = frozenset(["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "QUANTIZE"])  # 1x1 pooling passes


def _ublock(g: LayerGeometry, target: Target) -> tuple[int, int, int]:
    """The OFM micro-block an op runs in (U85 depthwise/pooling use the 16-deep alternative)."""
    ub = target.npu.ofm_ublock
    if target.family is Family.ETHOS_U85 and g.kind in (OpKind.DEPTHWISE, OpKind.POOL):
        for alt in target.npu.alt_ofm_ublocks:
            if alt[2] == 16 and alt[0] * alt[1] * alt[2] >= ub[0] * ub[1] * ub[2] // 2:
                return alt
    if target.family is Family.ETHOS_U85:
        return ub
    hwc_ub = (ub[1], ub[0], ub[2])  # U55/U65 descriptors give the micro-block as (W, H, C), as Vela's tables do
    if (hwc_ub[0] == 2 and g.ofm[0] == 1 and g.ofm[1] % 2 == 0 and g.kernel[0] == 1
            and g.kind in (OpKind.CONV, OpKind.FULLY_CONNECTED)):
        return (1, 4, ub[2])  # 1-row OFMs with an even width run as 1x4 micro-blocks
    return hwc_ub


BLOCK_ELEMENTS = 256  # typical OFM block area (H x W) the block-config search settles on


def mac_cycles(g: LayerGeometry, target: Target) -> int:
    """MAC-array cycles from the micro-block grid and kernel steps (Vela's per-block model, one block size)."""
    uh, uw, uc = _ublock(g, target)
    oh, ow, oc = g.ofm
    ub_wh = cdiv(oh, uh) * cdiv(ow, uw)
    ub_c = cdiv(oc, uc)
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
        depth_first = k * step * cdiv(cin, ifm_block)
        # part-kernel: four kernel elements per step, 16-channel IFM blocks, 8 channels per pass
        part = cdiv(k, 4) * max(wb, 4 * n_wh) * cdiv(min(cin, 16), 8) * cdiv(cin, 16)
        per_block = min(depth_first, part) if g.kind is OpKind.CONV else depth_first
        cycles = per_block * ub_c * blocks_wh / sparse_div
    elif g.kind is OpKind.DEPTHWISE:
        cycles = cdiv(k, 4) * max(wb, 4 * n_wh) * ub_c * blocks_wh
    elif g.kind is OpKind.POOL:
        bits_factor = 1 if target.npu.macs == 32 and not u85 else 4
        cycles = max(4, min(k, 64)) * cdiv(k, 64) * ub_wh * ub_c * bits_factor
    else:
        return 0
    return int(cycles / target.npu.cores)


def memory_bytes(g: LayerGeometry, target: Target, encoded: int) -> dict[str, float]:
    """Bytes each memory moves for this op (reads + writes)."""
    traffic: dict[str, float] = {}

    def add(mem: str, n: float) -> None:
        traffic[mem] = traffic.get(mem, 0.0) + n

    ifm_mem, ofm_mem = io_memories(g, target)
    ih, iw, ic = g.ifm
    # graph inputs/outputs stay NHWC; intermediate feature maps are stored in 16-channel bricks
    ifm_bytes: float = ih * iw * (ic if g.ifm_in_arena else round_up(ic, BRICK)) * g.itemsize
    ofm_bytes: float = g.ofm[0] * g.ofm[1] * (g.ofm[2] if g.ofm_in_arena else round_up(g.ofm[2], BRICK)) * g.itemsize
    # NHWC graph inputs/outputs move in bursts as short as one pixel's channels (IFM blocks 8-32 deep)
    ifm_bytes *= burst_factor(target, ifm_mem, g.ifm_in_arena, ic, min(iw, 16), round_up(min(ic, 32), 8), False)
    ofm_bytes *= burst_factor(target, ofm_mem, g.ofm_in_arena, g.ofm[2], min(g.ofm[1], 16),
                              round_up(min(g.ofm[2], 64), 8), True)
    if g.kind is OpKind.CONV or g.kind is OpKind.FULLY_CONNECTED:
        # the IFM is re-read for every OFM-depth block (block depth ~ 8 micro-blocks deep)
        depth_blocks = cdiv(g.ofm[2], 8 * target.npu.ofm_ublock[2])
        halo = ((16 + g.kernel[0] - 1) * (16 + g.kernel[1] - 1)) / 256 if g.kernel != (1, 1) else 1.0
        add(ifm_mem, ifm_bytes * depth_blocks * halo)
    elif g.kind is OpKind.SOFTMAX:
        add(ifm_mem, ifm_bytes * SOFTMAX_PASSES)
        add(ofm_mem, ofm_bytes * (SOFTMAX_PASSES - 1))
    else:
        add(ifm_mem, ifm_bytes + g.ifm2_elements * g.itemsize)
    add(ofm_mem, ofm_bytes)
    if const_read := constant_read_bytes(g, target):
        add(target.const_memory, const_read)
    if encoded:
        const = target.const_memory
        add(const, encoded + SCALE_BYTES_PER_CHANNEL * g.ofm[2])
        if const != "Sram" and target.staging_memory == "Sram":
            add("Sram", 2 * encoded)  # DMA'd into SRAM, then read by the NPU
    return traffic


def u55_layer_cost(g: LayerGeometry, target: Target) -> LayerCost:
    """Cycles of one U55/U65 NPU operator: max(compute, each memory's access cycles); weights cost
    their DMA (no decode limit on these generations)."""
    passes = lowered_passes(g)
    if passes is not None:
        return passes_cost(g, passes, target)
    vela = vela_style_cost(g, target)
    if vela is not None:
        return vela
    encoded = encoded_weight_bytes(g, target)
    compute = 0 if g.kind is OpKind.MEMORY else max(mac_cycles(g, target), ao_cycles(g, target))
    traffic = memory_bytes(g, target, encoded)
    mem_cycles = {m: math.ceil(b / target.bandwidth(m)) for m, b in traffic.items()}
    const = target.const_memory
    weight_dma = math.ceil((encoded + SCALE_BYTES_PER_CHANNEL * g.ofm[2]) / target.bandwidth(const)) if encoded else 0
    decode = 0  # U55/U65 decode weights as fast as the MACs consume them
    fm_max = max(mem_cycles.values(), default=0)
    cycles = max(compute, fm_max, decode)
    if cycles == compute:
        bound = "compute"
    elif cycles == decode or (encoded and cycles == mem_cycles.get(const, -1) and weight_dma * 2 >= cycles):
        bound = "weights"
    else:
        bound = "memory"
    sram = (g.ifm_elements + g.ofm_elements) * g.itemsize if "Sram" in fm_memories(g, target) else 0
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", int(cycles), int(compute), mem_cycles, int(decode),
                     g.macs, encoded or None, int(sram), bound)



@lru_cache(maxsize=4096)  # asked for each operator by its cost, its weight stream and its calibration
def npu_query(g: LayerGeometry) -> Query | None:
    """The operator as one Vela NPU operation, or None when Vela lowers it into something else."""
    bits = 8 * g.itemsize
    if g.op == "CONCATENATION":
        return None
    if g.kind in (OpKind.CONV, OpKind.DEPTHWISE) and g.op != "TRANSPOSE_CONV":
        k = tuple((k - 1) * d + 1 for k, d in zip(g.kernel, g.dilation, strict=True))
        op = NpuOp.CONV if g.kind is OpKind.CONV else NpuOp.DEPTHWISE
        return Query(op, g.ifm, g.ofm, (k[0], k[1]), g.stride, bits, g.ifm_in_arena, g.ofm_in_arena)
    if g.op == "TRANSPOSE_CONV":  # a convolution over the zero-upscaled IFM
        return Query(NpuOp.CONV, (g.ofm[0], g.ofm[1], g.ifm[2]), g.ofm, g.kernel, (1, 1), bits, g.ifm_in_arena,
                     g.ofm_in_arena)
    if g.kind is OpKind.FULLY_CONNECTED and g.op == "FULLY_CONNECTED":
        return Query(NpuOp.VECTOR, g.ifm, g.ofm, (1, 1), (1, 1), bits, g.ifm_in_arena, g.ofm_in_arena)
    if g.op == "MEAN" and g.ofm[0] * g.ofm[1] == 1 and g.ofm[2] == g.ifm[2] and g.ifm[0] * g.ifm[1] > 1:
        # the mean over height and width: a depthwise convolution with an H x W kernel of ones
        return Query(NpuOp.DEPTHWISE, g.ifm, g.ofm, (g.ifm[0], g.ifm[1]), (1, 1), bits, g.ifm_in_arena,
                     g.ofm_in_arena)
    if g.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return Query(NpuOp.POOL, g.ifm, g.ofm, g.kernel, g.stride, bits, g.ifm_in_arena, g.ofm_in_arena)
    if is_lookup(g) or g.op in POOL_NOP:
        ifm, ofm = _deepen(g.ifm), _deepen(g.ofm)
        return Query(NpuOp.POOL, ifm, ofm, (1, 1), (1, 1), bits, g.ifm_in_arena, g.ofm_in_arena)
    if g.op in BINARY:
        other = g.ifm2 if g.ifm2 is not None else g.const_ifm
        if other is None:
            return None
        scalar = other[0] * other[1] * other[2] == 1
        ifm, ofm = g.ifm, g.ofm
        if scalar or other == g.ifm:  # no broadcast: Vela reshapes shallow operands
            ifm, ofm, other = _deepen(ifm), _deepen(ofm), other if scalar else _deepen(other)
        return Query(NpuOp.ELEMENTWISE, ifm, ofm, (1, 1), (1, 1), bits, g.ifm_in_arena, g.ofm_in_arena, other, scalar)
    return None


def is_lookup(g: LayerGeometry) -> bool:
    """A standalone table lookup (an 8-bit LEAKY_RELU is one too: Vela turns it into a table)."""
    return g.kind is OpKind.LUT or (g.op == "LEAKY_RELU" and g.itemsize == 1)


def _deepen(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Vela's reshape of a shallow (depth < 8, more than 16 elements) elementwise-like operand."""
    if shape[0] * shape[1] * shape[2] > 16 and shape[2] < 8:
        return reshape_to_increase_depth(shape)
    return shape


def follows_vela(g: LayerGeometry) -> bool:
    """Whether the U55/U65 model costs this operator the way Vela's own estimator does (then its
    cycles are not calibrated)."""
    return lowered_passes(g) is not None or npu_query(g) is not None


def _ao_per_element(g: LayerGeometry, q: Query, target: Target) -> float:
    """Output-stage cycles per OFM element for the operation (40-bit accumulators run at the MUL rate)."""
    os_ = target.npu.output_stage
    if q.op is NpuOp.ELEMENTWISE:
        rate = os_.add if g.op in ("ADD", "SUB") else os_.mul if g.op in ("MUL", "SQUARED_DIFFERENCE") else os_.conv
    elif g.op == "MAX_POOL_2D":
        return os_.maxpool
    else:
        # a standalone LUT operation is a 1x1 pooling pass whose table lookup is the operation itself,
        # not a fused activation: it runs at the plain output rate
        rate = os_.mul if q.bits == 16 and q.op is not NpuOp.POOL else os_.conv
    if LUT_ACTIVATIONS.intersection(g.chain):  # a fused table-lookup activation
        rate = max(rate, os_.lut)
    return rate


def weights_buffered(g: LayerGeometry, q: Query, blk: Block, target: Target) -> bool:
    """Whether Vela DMAs the weights into the staging memory: always when they are re-read per OFM
    block. Weights read once stay where they are when the feature maps share the staging memory
    (U55: the scheduler keeps the unbuffered schedule); with feature maps in another memory (U65)
    they are buffered when the transfer can hide under a preceding operation (not for the first
    operator), and a fully connected layer's only when the constant memory is not slow flash."""
    if weight_refetch(q, blk) > 1:
        return True
    if g.op_index == 0 or target.arena_memory == target.staging_memory:
        return False
    return q.op is not NpuOp.VECTOR or target.bandwidth(target.const_memory) >= SLOW_CONST_BYTES_PER_CYCLE


def mean_scaling(g: LayerGeometry, target: Target) -> int:
    """Cycles of a spatial mean's last pass: its sum scaled by 1 / (H x W) in an elementwise pass, the
    scale a constant scalar whose read latency each block waits for."""
    ofm_mem = io_memories(g, target)[1]
    m = Query(NpuOp.ELEMENTWISE, g.ofm, g.ofm, (1, 1), (1, 1), 8 * g.itemsize, False, g.ofm_in_arena, (1, 1, 1), True)
    return elementwise_cycles(m, find_block(m, target), target, ofm_mem, ofm_mem, target.npu.output_stage.mul,
                              target.const_memory)


def vela_style_cost(g: LayerGeometry, target: Target, in_place: bool = False) -> LayerCost | None:
    """One NPU operation costed the way Vela's U55/U65 estimator does: its block configuration, the
    per-block MAC / output-stage / command-issue cycles, burst-rounded feature-map traffic and weight
    streaming per memory (`in_place`: weights read where they are stored, not buffered). None for
    operators Vela lowers into several operations."""
    q = npu_query(g)
    if q is None:
        return None
    blk = find_block(q, target)
    ifm_mem, ofm_mem = io_memories(g, target)
    const, staging = target.const_memory, target.staging_memory
    buffered = not in_place and const not in (staging, "OnChipFlash") and weights_buffered(g, q, blk, target)
    encoded = encoded_weight_bytes(g, target) if q.op in (NpuOp.CONV, NpuOp.DEPTHWISE, NpuOp.VECTOR) else 0
    ao_elem = _ao_per_element(g, q, target)
    if q.op is NpuOp.ELEMENTWISE:
        # a constant operand (scalar or tensor) is read from the constant memory
        op_cycles = elementwise_cycles(q, blk, target, ifm_mem, ofm_mem, ao_elem,
                                       const if g.ifm2 is None and q.ifm2 is not None else None)
    else:
        scaled = bool(encoded) or g.op == "MEAN"  # a spatial mean is a depthwise pass with unit weights
        latency = target.memory_config(staging if buffered else const).read_latency if scaled else None
        op_cycles = mac_op_cycles(q, blk, target, ifm_mem, ofm_mem, ao_elem, latency).total
    if g.op == "MEAN":  # then the sum is scaled by 1 / (H x W) in an elementwise pass
        op_cycles += mean_scaling(g, target)
    traffic: dict[str, float] = {}

    def add(mem: str, n: float) -> None:
        traffic[mem] = traffic.get(mem, 0.0) + n

    ifm_bytes, ofm_bytes = feature_map_bytes(q, blk, target, ifm_mem, ofm_mem)
    add(ifm_mem, ifm_bytes)
    add(ofm_mem, ofm_bytes)
    if q.op is NpuOp.ELEMENTWISE and q.ifm2 is not None and not q.scalar:
        if g.ifm2 is not None:  # the second feature map: one element per OFM element, broadcast or not
            n = q.ofm[0] * q.ofm[1] * round_up(q.ofm[2], 1 if q.ifm_nhwc else 16)
            add(ifm_mem, transfer_bytes(target, ifm_mem, q.ifm_nhwc, q.bits, blk.ifm, q.ifm2, n, True))
        else:  # a constant operand, stored NHWC in the constant memory
            n = q.ofm[0] * q.ofm[1] * q.ofm[2]
            add(const, transfer_bytes(target, const, True, q.bits, blk.ifm, q.ifm2, n, True))
    if encoded:
        scales = BIAS_BYTES * g.ofm[2]
        refetch = weight_refetch(q, blk)
        if buffered:
            # weights are DMA'd depth slice by depth slice into the staging memory and read from there
            # once per OFM block; the first slice was fetched before the operation started
            first = encoded * min(blk.ofm[2], g.ofm[2]) // max(g.ofm[2], 1)
            add(const, encoded - first + refetch * scales)
            add(staging, encoded - first + refetch * encoded)
        else:
            add(const, refetch * (encoded + scales))
    mem_cycles = {m: int(b / target.bandwidth(m)) for m, b in traffic.items()}
    cycles = max(op_cycles, max(mem_cycles.values(), default=0))
    if cycles == op_cycles:
        bound = "compute"
    else:
        bound = "weights" if encoded and max(mem_cycles, key=lambda m: mem_cycles[m]) == const else "memory"
    sram = (g.ifm_elements + g.ofm_elements) * g.itemsize if "Sram" in (ifm_mem, ofm_mem) else 0
    # the weight DMA's overlap with the preceding operation is added by `overlap_weight_streams`
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", int(cycles), int(op_cycles), mem_cycles, 0,
                     g.macs, encoded or None, int(sram), bound)


def u55_block(g: LayerGeometry, target: Target) -> Block | None:
    """The block Vela's U55/U65 block search picks for this operator run as one NPU operation (None: Vela
    lowers it into something else)."""
    q = npu_query(g)
    return None if q is None else find_block(q, target)
