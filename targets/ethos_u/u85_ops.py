"""Ethos-U85 operators costed the way Vela's own U85 estimator costs them.

Each operator Vela runs as one NPU operation is shaped as Vela lowers it, given the block
configuration of Vela's U85 block search, and costed by `u85_perf` (per-block cycles, burst- and
channel-limited traffic); its weights are staged slice by slice or read in place, and the weight
and lookup-table transfers overlap the preceding operation as Vela schedules them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from hwopt.errors import HwoptError
from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u import u85_perf as u85p
from hwopt.targets.ethos_u.cost_common import BRICK, encoded_weight_bytes, io_memories, padded_weights
from hwopt.targets.ethos_u.placement import CHAINABLE
from hwopt.targets.ethos_u.u85 import _deepen, is_multiplier, u85_block, u85_macs, u85_query
from hwopt.targets.ethos_u.u85_blocks import U85Op, U85Query, find_u85_block
from hwopt.targets.ethos_u.u85_lowering import COPY_OPS
from hwopt.targets.ethos_u.weight_layout import Traversal
from hwopt.targets.geometry import LayerCost, LayerGeometry, OpKind, WeightInfo, round_up

BIAS_BYTES = u85p.BIAS_BYTES


# Operators Vela runs as one NPU operation, costed by its per-operation model (`u85_perf`) on the block
# the block search picks; the rest (lowered into several operations) keep the coarser model below.
POOL_PASS = frozenset(["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "QUANTIZE"])
LUT_OPS = frozenset(["LOGISTIC", "TANH", "HARD_SWISH"])  # a table lookup, its table copied in first
LUT_BYTES = {1: 256, 2: 2048}  # table size by element size
VELA_STYLE = frozenset(["MAX_POOL_2D", "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                        "ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", *POOL_PASS, *LUT_OPS])
MAC_OPS = frozenset(["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
ACTIVATIONS = frozenset(["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "TANH", "LOGISTIC", "HARD_SWISH"])


def is_lookup(g: LayerGeometry) -> bool:
    """A table lookup: the LUT operators, and an 8-bit LEAKY_RELU (Vela turns it into a 256-entry table)."""
    return g.op in LUT_OPS or (g.op == "LEAKY_RELU" and g.itemsize == 1)


def _ao_per_element(g: LayerGeometry, target: Target, binary: bool) -> float:
    """Output-stage cycles per OFM element of the pass: the operation's own rate (fused activations
    run beside it), plus one output rate per elementwise operator chained onto it."""
    bits = 8 * g.itemsize
    rate = u85p.output_cycles_per_element(target, bits, bits, binary)
    if any(c in ACTIVATIONS for c in g.chain):
        rate = max(rate, u85p.hardware(target).activation_cycles[0])
    return rate + sum(u85p.output_cycles_per_element(target, bits, bits, True) for c in g.chain if c in CHAINABLE)


_OWN_WAY = frozenset(["MEAN", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"])  # single operations of their own kind
_PERF_OPS = frozenset({U85Op.RESIZE, U85Op.CONV, U85Op.DEPTHWISE, U85Op.VECTOR_PRODUCT, U85Op.POOL,
                       U85Op.ELEMENTWISE})  # the operations u85_perf costs


def _u85_query(g: LayerGeometry, target: Target, config: u85p.U85Config | None = None
               ) -> tuple[u85p.U85Operation, u85p.U85Config] | None:
    """The operator as one U85 NPU operation (shaped as Vela lowers it) and its block configuration
    (`config`, else the block search's), or None when Vela lowers it into something else (costed by
    the coarser model below)."""
    return _lowered(g, target, config)  # one memo entry whether `config` is passed as None or left out


@lru_cache(maxsize=4096)  # asked for each operator by its cost, its weight transfer and its calibration
def _lowered(g: LayerGeometry, target: Target, config: u85p.U85Config | None
             ) -> tuple[u85p.U85Operation, u85p.U85Config] | None:
    if (g.op not in VELA_STYLE and not is_lookup(g) and g.op not in _OWN_WAY) or g.chained:
        return None
    bits = 8 * g.itemsize
    if g.op in POOL_PASS:  # a standalone activation or requantisation: a 1x1 pooling pass, deepened
        shape = _deepen(g.ofm, g)
        lowered: U85Query | None = U85Query(U85Op.POOL, shape, shape, ifm_bits=bits, ofm_bits=bits)
    else:
        lowered = u85_query(g)
    if lowered is not None and lowered.op is U85Op.DEPTHWISE and g.ifm[2] == 1 < g.ofm[2]:
        lowered = replace(lowered, op=U85Op.CONV)  # one input channel, a multiplier: Vela runs a convolution
    if lowered is None or lowered.op not in _PERF_OPS:
        return None
    op = lowered.op
    ifm_mem, ofm_mem = io_memories(g, target)
    # a pass Vela deepens (a table lookup, a clamp, an elementwise operation) reads and writes the
    # reshaped tensors NHWC (a brick layout cannot be reshaped in place)
    deepened = lowered.op in (U85Op.POOL, U85Op.ELEMENTWISE) and lowered.ofm != g.ofm
    ifm = u85p.Fm(lowered.ifm, bits, g.ifm_in_arena or deepened, ifm_mem)
    ofm = u85p.Fm(lowered.ofm, bits, g.ofm_in_arena or deepened, ofm_mem)
    ifm2 = None
    if lowered.ifm2 is not None:  # a feature map beside the input, or a constant stored NHWC
        ifm2 = u85p.Fm(lowered.ifm2, bits, g.ifm2 is None or deepened,
                       ifm_mem if g.ifm2 is not None else target.const_memory)
    if config is None:
        blk = find_u85_block(lowered, u85_macs(target))
        config = u85p.U85Config(blk.ofm, blk.ifm, blk.ublock, blk.traversal is Traversal.PART_KERNEL,
                                blk.acc_bits == 64)
    encoded = encoded_weight_bytes(g, target) if op in (U85Op.CONV, U85Op.DEPTHWISE, U85Op.VECTOR_PRODUCT) else 0
    # the per-block scale fetch comes from where the weights are read: staged, or in place
    scales_mem = target.staging_memory if _buffered(target) else target.const_memory
    ao = _ao_per_element(g, target, op is U85Op.ELEMENTWISE)
    if g.op == "MEAN":  # a 32-bit sum into the chain buffer, then the chained scaling multiply
        ao = (u85p.output_cycles_per_element(target, bits, 32)
              + u85p.output_cycles_per_element(target, 32, bits, True, to_chain_buffer=True))
        # a spatial mean is a depthwise sum with a kernel of ones: its scales come from where those
        # weights are read, like any convolution's
        scales = scales_mem if op is U85Op.DEPTHWISE else target.const_memory
        return u85p.U85Operation(op, ifm, ofm, lowered.kernel, None, False, ao, scales), config
    return u85p.U85Operation(op, ifm, ofm, lowered.kernel, ifm2, lowered.sparse, ao,
                         scales_mem if encoded else None), config


def follows_vela(g: LayerGeometry, target: Target) -> bool:
    """Whether the U85 model costs this operator the way Vela's own estimator does (then its cycles
    are not calibrated): as one operation, or as the copies Vela lowers it into."""
    return not g.chained and (_u85_query(g, target) is not None or g.op in COPY_OPS or bool(g.copies)
                              or (g.op == "TRANSPOSE_CONV" and g.weights is not None)
                              or (g.op == "SOFTMAX" and g.itemsize in (1, 2) and g.ifm == g.ofm))


def _buffered(target: Target) -> bool:
    """Weights are DMA'd into the staging memory when they live elsewhere (not in fast on-chip flash)."""
    return target.const_memory not in (target.staging_memory, "OnChipFlash")


def transpose_phases(g: LayerGeometry) -> list[LayerGeometry]:
    """A transposed convolution as the convolutions Vela runs on the U85, one per output phase
    (row-major; a phase's kernel holds every stride-th tap; Vela's estimate gives it the OFM less the
    phase offset), after a 1x1 convolution clearing the output when the stride exceeds the kernel.
    Each carries its share of the weights."""
    (kh, kw), (sy, sx), (oh, ow, oc) = g.kernel, g.stride, g.ofm

    def part(kernel: tuple[int, int], ofm: tuple[int, int, int]) -> LayerGeometry:
        w = g.weights and replace(g.weights, count=max(1, g.weights.count * kernel[0] * kernel[1] // (kh * kw)))
        macs = ofm[0] * ofm[1] * oc * g.ifm[2] * kernel[0] * kernel[1]
        return replace(g, op="CONV_2D", kernel=kernel, stride=(1, 1), ofm=ofm, weights=w, macs=macs)

    phases = [part((1, 1), g.ofm)] if sy > kh or sx > kw else []
    for py in range(min(kh, sy)):
        for px in range(min(kw, sx)):
            phases.append(part((len(range(py, kh, sy)), len(range(px, kw, sx))), (oh - py, ow - px, oc)))
    return phases


def transpose_conv_cost(g: LayerGeometry, target: Target) -> LayerCost | None:
    """A transposed convolution's phases costed one after another (`vela_style_cost` each)."""
    if g.op != "TRANSPOSE_CONV" or g.chained or g.weights is None:
        return None
    costs = [vela_style_cost(p, target) for p in transpose_phases(g)]
    if not costs or any(c is None for c in costs):
        return None
    parts = [c for c in costs if c is not None]
    mem: dict[str, int] = {}
    for c in parts:
        for m, v in c.memory_cycles.items():
            mem[m] = mem.get(m, 0) + v
    first = parts[0]
    return replace(first, op=g.op, cycles=sum(c.cycles for c in parts), compute_cycles=sum(c.compute_cycles for c in parts),
                   memory_cycles=mem, weight_cycles=sum(c.weight_cycles for c in parts), macs=g.macs,
                   encoded_weight_bytes=sum(c.encoded_weight_bytes or 0 for c in parts) or None,
                   bound=max(parts, key=lambda c: c.cycles).bound)


def vela_style_cost(g: LayerGeometry, target: Target, config: u85p.U85Config | None = None,
                    in_place: bool = False, ofm: u85p.Fm | None = None) -> LayerCost | None:
    """One NPU operation costed the way Vela's U85 estimator does (`u85_perf`): block cycles, burst- and
    channel-limited traffic per memory, weights read per OFM block in H x W. The weight DMA's overlap
    with the preceding operation is added by `overlap_u85_weights` (which may choose `in_place`:
    weights read straight from the constant memory, not staged). `ofm` overrides where and how the
    output is written (a part of a lowered operator writing an intermediate tensor)."""
    if g.op == "TRANSPOSE_CONV":
        return transpose_conv_cost(g, target)
    if "activation_pass" in g.flags and ofm is None:
        return _with_activation_pass(g, target, config, in_place)
    qc = _u85_query(g, target, config)
    if qc is None:
        return None
    q, cfg = qc
    if ofm is not None:
        q = replace(q, ofm=ofm)
    if in_place and g.op == "MEAN":
        # the per-block scale fetch then reads the constant memory (Vela's rule for every operation; kept
        # to the mean's kernel of ones, whose in-place choice is certain: it is read once)
        q = replace(q, scales_memory=target.const_memory)
    timed = q
    if any(c in CHAINABLE for c in g.chain):
        # the output goes to the chaining buffer: Vela times its block write at the memory of a tensor it
        # never places (the arena's), while the chained operator's own output carries the traffic
        timed = replace(q, ofm=replace(q.ofm, memory=target.arena_memory))
    # the U85's resize unit streams the OFM through the output stage like an elementwise pass
    cycles = u85p.elementwise_cycles(q, cfg, target) if q.op is U85Op.RESIZE else u85p.op_cycles(timed, cfg, target)
    access = u85p.element_access(q, cfg)
    traffic = u85p.feature_map_traffic(q, cfg, target, access)
    g = _with_mean_weights(g, q)
    encoded = encoded_weight_bytes(g, target) if q.scales_memory is not None else 0
    staging = target.staging_memory if _buffered(target) and not in_place else None
    decode = 0
    if encoded:
        scales = _scale_bytes(g, cfg)
        fast = False
        # all but the first slice stream in beside the operation (that one was fetched under the previous)
        first = int(encoded * _slice_share(g, target, cfg)) if g.op_index > 0 else 0
        traffic += u85p.weight_traffic(target, target.const_memory, staging, encoded, scales, access.weight_refetch,
                                       first, fast)
        if g.weights is not None:
            n = padded_weights(g, target)
            zeros = int(g.weights.zero_fraction * g.weights.count) + n - g.weights.count
            decode = u85p.weight_decode_cycles(target, n, zeros, 256, encoded, staging or target.const_memory, fast)
    mem_cycles = u85p.access_cycles(target, traffic)
    op = cycles.total
    total = max(op, max(mem_cycles.values(), default=0))
    if total == op:
        bound = "compute"
    else:
        busiest = max(mem_cycles, key=lambda m: mem_cycles[m])
        # weights (and scales) bound when they are most of the busiest memory's traffic
        moved = [(t.group == "fm", t.nbytes) for t in traffic if t.memory == busiest]
        fm_bytes = sum(n for fm, n in moved if fm)
        bound = "weights" if sum(n for _, n in moved) > 2 * fm_bytes else "memory"
    ifm_mem, ofm_mem = q.ifm.memory, q.ofm.memory
    sram = (g.ifm_elements + g.ofm_elements) * g.itemsize if "Sram" in (ifm_mem, ofm_mem) else 0
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", int(total), int(op), mem_cycles, int(decode),
                     g.macs, encoded or None, int(sram), bound)


def _scale_bytes(g: LayerGeometry, cfg: u85p.U85Config) -> int:
    """Per-channel scale and bias bytes, the channels padded to whole micro-blocks (at least 16)."""
    return BIAS_BYTES * round_up(g.ofm[2], max(BRICK, cfg.ublock[2]))


def _slice_share(g: LayerGeometry, target: Target, config: u85p.U85Config | None = None) -> float:
    """Share of the weights in one depth slice: Vela buffers them slice by slice (one OFM block deep)."""
    if config is None:
        try:
            depth = u85_block(g, target).ofm[2]
        except HwoptError:
            return 1.0
    else:
        depth = config.ofm[2]
    return min(depth, g.ofm[2]) / max(g.ofm[2], 1)


@dataclass(frozen=True)
class WeightDma:
    """A buffered weight stream's DMA into the staging memory, in cycles."""

    full: int  # all weights and scales
    first: int  # the first depth slice (fetched before the operation can start)
    last_share: float  # share of the operation's cycles spent on the last depth slice
    refetch: int  # times the weights are read (once per OFM block in H x W)
    in_place: int  # cycles to read them once straight from the constant memory
    staged: int  # cycles to read them once from the staging memory


def _with_mean_weights(g: LayerGeometry, q: u85p.U85Operation) -> LayerGeometry:
    """A spatial MEAN as Vela runs it, a depthwise sum with a kernel of ones (one distinct value, no
    zeros: its stream is small, its per-channel scales are not); other operators unchanged."""
    if g.op != "MEAN" or q.op is not U85Op.DEPTHWISE:
        return g
    count = g.ofm[2] * q.kernel[0] * q.kernel[1]
    return replace(g, kind=OpKind.DEPTHWISE, kernel=q.kernel, weights=WeightInfo(count, 0.0, 1, 0.0))


def weight_transfer(g: LayerGeometry, target: Target) -> WeightDma | None:
    """The DMA of an operator's weights into the staging memory, or None when it reads them in place."""
    if not _buffered(target) or g.chained or g.op not in (*MAC_OPS, "MEAN") or is_multiplier(g):
        return None  # (a multiplier's depthwise parts are costed with their weights by `u85_multiplier`)
        return None
    qc = _u85_query(g, target)
    if qc is None:
        return None
    g = _with_mean_weights(g, qc[0])
    encoded = encoded_weight_bytes(g, target)
    if not encoded or g.kind is OpKind.POOL:
        return None
    full = encoded + _scale_bytes(g, qc[1])
    share = _slice_share(g, target)
    src, dst = target.const_memory, target.staging_memory
    refetch = u85p.element_access(*qc).weight_refetch

    def read(mem: str) -> int:
        return int(full / u85p.channel_bandwidth(target, mem, u85p.Channel.WEIGHT)) + target.memory_config(mem).read_latency

    return WeightDma(u85p.mem_to_mem_cycles(target, src, dst, full),
                     u85p.mem_to_mem_cycles(target, src, dst, int(full * share)), share, refetch, read(src), read(dst))


def overlap_u85_weights(geometry: list[LayerGeometry], costs: list[LayerCost], target: Target) -> list[LayerCost]:
    """Add each buffered weight stream's visible DMA time as Vela schedules it: the transfer runs under
    the preceding NPU operation; what that does not hide delays this one."""
    out: list[LayerCost] = list(costs)
    prev, sg = 0, -1
    for n in sorted(range(len(geometry)), key=lambda k: (geometry[k].subgraph, geometry[k].position, k)):
        g, c = geometry[n], costs[n]  # in the order Vela runs them: a transfer hides under the one before
        if g.subgraph != sg:
            prev, sg = 0, g.subgraph
        wt = weight_transfer(g, target) if c.placement == "npu" and c.cycles > 0 else None
        op = c.compute_cycles
        if wt is not None and wt.refetch == 1 and wt.full - prev + wt.staged >= wt.in_place:
            # weights read once and not hidden under the preceding operation: Vela reads them in place
            c = vela_style_cost(g, target, in_place=True) or c
            op = c.compute_cycles
        elif wt is not None:
            npu = int(max(wt.full - prev + wt.last_share * op, op + max(wt.first - prev, 0)))
            if npu > op:
                cycles = max(npu, max(c.memory_cycles.values(), default=0))
                c = replace(c, cycles=cycles, compute_cycles=npu, bound="weights" if cycles == npu else c.bound)
        if is_lookup(g) and follows_vela(g, target) and c.cycles > 0:
            # the lookup table is copied in first, under the preceding operation when it can be
            src = target.const_memory
            size = LUT_BYTES.get(g.itemsize, 2048)
            lut = int(size / u85p.channel_bandwidth(target, src, u85p.Channel.MEM2MEM)) + target.memory_config(src).read_latency
            npu = op + max(lut - prev, 0)
            c = replace(c, cycles=max(c.cycles, npu), compute_cycles=npu)
        if c.placement == "cpu":
            prev = 0
        elif c.cycles > 0:
            prev = op  # the next transfer hides under this operation's own cycles (not its weight wait)
        out[n] = c
    return out


def intermediate_memory(nbytes: int, target: Target) -> str:
    """Where a tensor Vela makes while lowering an operator lives (read and written once each): SRAM
    when both copies fit the cache, else the arena."""
    arena = target.arena_memory
    return "Sram" if arena == "Sram" or 2 * nbytes <= target.arena_limit // 2 else arena


def pool_pass(ifm: u85p.Fm, ofm: u85p.Fm, rate: float, target: Target, query: U85Query | None = None
              ) -> tuple[int, int, dict[str, int]]:
    """(cycles, NPU cycles, access cycles per memory) of one 1x1 pooling pass (a clamp, a transpose) at
    `rate` output-stage cycles per element, on the block of `query` (default: its own shapes)."""
    q0 = query or U85Query(U85Op.POOL, ifm.shape, ofm.shape, ifm_bits=ifm.bits, ofm_bits=ofm.bits)
    blk = find_u85_block(q0, u85_macs(target))
    cfg = u85p.U85Config(blk.ofm, blk.ifm, blk.ublock, False, blk.acc_bits == 64)
    q = u85p.U85Operation(U85Op.POOL, ifm, ofm, ao_per_element=rate)
    op = u85p.op_cycles(q, cfg, target).total
    mem = u85p.access_cycles(target, u85p.feature_map_traffic(q, cfg, target, u85p.element_access(q, cfg)))
    return max(op, max(mem.values(), default=0)), op, mem


def _with_activation_pass(g: LayerGeometry, target: Target, config: u85p.U85Config | None, in_place: bool
                          ) -> LayerCost | None:
    """An operation whose fused clamp Vela runs apart (`activation_pass`): the operation writes an NHWC
    intermediate, then a pooling pass clamps it, deepened, into the output."""
    bits = 8 * g.itemsize
    mid = intermediate_memory(g.ofm_elements * g.itemsize, target)
    main = vela_style_cost(g, target, config, in_place, ofm=u85p.Fm(g.ofm, bits, True, mid))
    if main is None:
        return None
    deep = _deepen(g.ofm)
    rate = max(u85p.output_cycles_per_element(target, bits, bits), u85p.hardware(target).activation_cycles[0])
    cycles, op, mem = pool_pass(u85p.Fm(deep, bits, True, mid), u85p.Fm(deep, bits, True, io_memories(g, target)[1]),
                                rate, target)
    mem_total = dict(main.memory_cycles)
    for k, v in mem.items():
        mem_total[k] = mem_total.get(k, 0) + v
    return replace(main, cycles=main.cycles + cycles, compute_cycles=main.compute_cycles + op, memory_cycles=mem_total)
