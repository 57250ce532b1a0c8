"""Ethos-U85 cost model.

The U85 reads through per-channel AXI read buffers, chooses its OFM block from the sizes of its IFM
and accumulator RAMs, re-reads weights and per-channel scales for every OFM block in H x W, decodes
weights at a rate set by their sparsity and chains elementwise operators onto a producer's output.
This is the coarser model for operators Vela lowers into several operations; those it runs as one
NPU operation follow Vela's own U85 estimator (`u85_ops`, `u85_perf`) on the block of `u85_blocks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from hwopt.errors import HwoptError
from hwopt.targets.descriptor import Family, Target
from hwopt.targets.ethos_u import u85_perf as u85p
from hwopt.targets.ethos_u.cost_common import (
    BRICK,
    SCALE_BYTES_PER_CHANNEL,
    SOFTMAX_PASSES,
    ao_cycles,
    burst_factor,
    constant_read_bytes,
    encoded_weight_bytes,
    io_memories,
    padded_weights,
)
from hwopt.targets.ethos_u.placement import CHAINABLE
from hwopt.targets.ethos_u.u55_perf import reshape_to_increase_depth
from hwopt.targets.ethos_u.u85_blocks import U85Op, U85Query, find_u85_block
from hwopt.targets.ethos_u.u85_perf import Channel, channel_bandwidth
from hwopt.targets.ethos_u.weight_layout import Traversal
from hwopt.targets.geometry import LayerCost, LayerGeometry, OpKind, cdiv, round_up


def _decode_cycles(g: LayerGeometry, target: Target) -> int:
    """U85 weight-decoder time: weights per cycle rise with the zero fraction (SWD format)."""
    if g.weights is None or target.family is not Family.ETHOS_U85:
        return 0
    z = min(max(g.weights.zero_fraction, 0.5), 0.9)
    rate = target.npu.weight_streams * (8 + (z - 0.5) * 60)
    return int(padded_weights(g, target) / rate)


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
SUBKERNEL = 8  # kernels larger than 8x8 run as 8x8 sub-kernels
BIAS_BYTES = u85p.BIAS_BYTES


def u85_macs(target: Target) -> int:
    """The U85 configuration with the nearest MAC count not above the target's."""
    return max([m for m in U85_BUFFERS if m <= target.npu.macs] or [min(U85_BUFFERS)])


def u85_buffers(target: Target) -> U85Buffers:
    """The buffer table of the U85 configuration with the nearest MAC count not above the target's."""
    return U85_BUFFERS[u85_macs(target)]


@dataclass(frozen=True)
class U85Block:
    """The OFM/IFM block and micro-block a U85 pass runs in, and its traversal."""

    ofm: tuple[int, int, int]
    ifm: tuple[int, int, int]
    ublock: tuple[int, int, int]
    part_kernel: bool
    ifm_depth: int  # IFM channels consumed per block step
    traversal: Traversal = Traversal.DEPTH_FIRST


_QUERY_OPS = {OpKind.CONV: U85Op.CONV, OpKind.DEPTHWISE: U85Op.DEPTHWISE, OpKind.FULLY_CONNECTED: U85Op.VECTOR_PRODUCT,
              OpKind.POOL: U85Op.POOL, OpKind.ELEMENTWISE: U85Op.ELEMENTWISE, OpKind.LUT: U85Op.POOL}
_NAMED_OPS = {"SUM": U85Op.REDUCE_SUM, "MEAN": U85Op.REDUCE_SUM, "REDUCE_MAX": U85Op.REDUCE_MINMAX,
              "REDUCE_MIN": U85Op.REDUCE_MINMAX, "RESIZE_BILINEAR": U85Op.RESIZE,
              "RESIZE_NEAREST_NEIGHBOR": U85Op.RESIZE}


def _sparse(g: LayerGeometry) -> bool:
    """U85 runs 2:4-sparse convolution/FC weights at half the MAC steps (zeros skipped in pairs)."""
    return g.weights is not None and g.weights.sparse_2_4 and g.kind in (OpKind.CONV, OpKind.FULLY_CONNECTED)


_CLAMPS = frozenset(("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"))  # standalone: a pooling pass


def _deepen(shape: tuple[int, int, int], g: LayerGeometry | None = None) -> tuple[int, int, int]:
    """Vela's reshape of a shallow (depth < 8, more than 16 elements) elementwise-like operation; not of
    one writing into part of a concatenation's output (Vela reshapes no slice)."""
    if g is not None and "ofm_slice" in g.flags:
        return shape
    if shape[0] * shape[1] * shape[2] > 16 and shape[2] < 8:
        return reshape_to_increase_depth(shape)
    return shape


def is_multiplier(g: LayerGeometry) -> bool:
    """A depthwise convolution with a channel multiplier > 1 over more than one input channel, which Vela
    runs as several depthwise convolutions and transposes (`u85_multiplier`)."""
    return g.kind is OpKind.DEPTHWISE and 1 < g.ifm[2] != g.ofm[2] and g.ofm[2] % g.ifm[2] == 0


@lru_cache(maxsize=4096)
def u85_query(g: LayerGeometry) -> U85Query | None:
    """The block-search query of one layer as Vela lowers it for the U85 (None: no block configuration)."""
    op = _NAMED_OPS.get(g.op) or _QUERY_OPS.get(g.kind)
    if op is None or min(*g.ifm, *g.ofm) < 1:
        return None
    bits = 8 * g.itemsize
    if g.kind is OpKind.FULLY_CONNECTED:  # a vector product: batches run as OFM rows, inputs flattened
        rows = g.ofm[0] * g.ofm[1]
        depth = g.macs // max(rows * g.ofm[2], 1) or g.ifm[2]
        return U85Query(op, (rows, 1, depth), (rows, 1, g.ofm[2]), ifm_bits=bits, ofm_bits=bits, sparse=_sparse(g))
    ofm = g.ofm
    if g.kind is OpKind.DEPTHWISE and g.ifm[2] == 1 < g.ofm[2]:  # one input channel: Vela runs a convolution
        op = U85Op.CONV
    elif g.kind is OpKind.DEPTHWISE and g.ofm[2] != g.ifm[2]:  # multiplier M: M depthwise parts, each this deep
        ofm = (g.ofm[0], g.ofm[1], g.ifm[2])
    if g.op == "MEAN" and g.ofm[2] == g.ifm[2]:  # a spatial mean: one depthwise pass summing the kernel
        kh, kw = (g.ifm[0] if g.ofm[0] == 1 else 1), (g.ifm[1] if g.ofm[1] == 1 else 1)
        ifm = g.ifm
        if kh > 64 and kh * kw <= 4096 and kw > 1:  # too tall: Vela runs it as one row
            ifm, kh, kw = (1, kh * kw, g.ifm[2]), 1, kh * kw
        return U85Query(U85Op.DEPTHWISE, ifm, g.ofm, (min(kh, 64), kw), ifm_bits=bits, ofm_bits=32)
    if g.kind is OpKind.LUT or (g.op == "LEAKY_RELU" and bits == 8) or g.op in _CLAMPS:  # a pooling pass
        shape = _deepen(g.ofm, g)
        return U85Query(U85Op.POOL, shape, shape, ifm_bits=bits, ofm_bits=bits)
    if op is U85Op.ELEMENTWISE:
        ifm2 = g.ifm2 or g.const_ifm
        ifm, ofm = g.ifm, g.ofm
        if ifm2 is None or ifm2 == ifm == ofm or ifm2 == (1, 1, 1):  # no broadcast but of a scalar
            scalar = ifm2 == (1, 1, 1)
            ifm = ofm = _deepen(ofm, g)
            ifm2 = ifm2 and (ifm2 if scalar else ofm)
        return U85Query(op, ifm, ofm, ifm_bits=bits, ofm_bits=bits, ifm2=ifm2)
    if op is U85Op.RESIZE:
        return U85Query(op, g.ifm, g.ofm, ifm_bits=bits, ofm_bits=bits, resize_scale_x=(g.ofm[1], g.ifm[1]))
    # an axis with one output row or column has no stride (Vela sets it to 1)
    stride = (1 if g.ofm[0] == 1 else g.stride[0], 1 if g.ofm[1] == 1 else g.stride[1])
    kernel = g.kernel
    if g.op == "TRANSPOSE_CONV":  # one convolution per output phase; the first has the most taps
        kernel, stride = (-(-g.kernel[0] // g.stride[0]), -(-g.kernel[1] // g.stride[1])), (1, 1)
    return U85Query(op, g.ifm, ofm, kernel, stride, g.dilation, bits, bits, None, _sparse(g))


def u85_block(g: LayerGeometry, target: Target) -> U85Block:
    """The OFM/IFM block, micro-block and traversal Vela's U85 block search picks for this layer."""
    q = u85_query(g)
    if q is None:
        raise HwoptError(f"{g.op} has no U85 block configuration")
    cfg = find_u85_block(q, u85_macs(target))
    return U85Block(cfg.ofm, cfg.ifm, cfg.ublock, cfg.traversal is Traversal.PART_KERNEL, cfg.ifm[2], cfg.traversal)


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
    nub_wh = cdiv(bh, uh) * cdiv(bw, uw)
    nub_d = cdiv(bd, uc)
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
                steps = cdiv(k, 4)
                cycles = max(wb, 4 * nub_wh) * steps * nub_d
            elif blk.part_kernel:
                steps = cdiv(k, 4)
                cycles = max(wb, 4 * nub_wh) * steps * nub_d * cdiv(ifm_d, 8)
            else:
                steps = k
                cycles = max(wb, blk.ifm_depth // 8 * nub_wh) * steps * nub_d
            if _sparse(g):
                cycles //= 2
            delay = 0
            if nub_wh == 1:  # a single micro-block cannot hide the 2-cycle accumulate latency
                delay = 2 * steps if nub_d == 1 else (2 * (steps - 1) * nub_d if steps > 1 else 0)
            if blk.part_kernel:
                delay *= cdiv(ifm_d, 8)
            total += cycles + delay
    if g.kind in (OpKind.CONV, OpKind.FULLY_CONNECTED):
        total *= cdiv(g.ifm[2], blk.ifm_depth)
    return total


def u85_layer_cost(g: LayerGeometry, target: Target) -> LayerCost:
    """One U85 pass: max(MAC/AO/command-issue cycles, each memory's channel-limited access cycles,
    weight decode)."""
    if g.chained:
        return LayerCost(g.subgraph, g.op_index, g.op, "npu", 0, 0, {}, 0, 0, None, 0, "none")
    encoded = encoded_weight_bytes(g, target)
    ifm_mem, ofm_mem = io_memories(g, target)
    const = target.const_memory
    ih, iw, ic = g.ifm
    oh, ow, oc = g.ofm
    ifm_c = ic if g.ifm_in_arena else round_up(ic, BRICK)
    ofm_c = oc if g.ofm_in_arena else round_up(oc, BRICK)
    transfers: list[tuple[str, Channel, float]] = []
    lat_in = target.memory_config(ifm_mem).read_latency
    lat_out = target.memory_config(ofm_mem).write_latency
    if g.kind in (OpKind.CONV, OpKind.FULLY_CONNECTED, OpKind.DEPTHWISE, OpKind.POOL):
        blk = u85_block(g, target)
        bh, bw, bd = (min(blk.ofm[0], oh), min(blk.ofm[1], ow), min(blk.ofm[2], oc))
        n_wh = cdiv(oh, bh) * cdiv(ow, bw)
        equal_depth = g.kind in (OpKind.DEPTHWISE, OpKind.POOL)
        n_blocks = n_wh * (1 if equal_depth else cdiv(oc, bd))
        fh, fw = min(blk.ifm[0], ih), min(blk.ifm[1], iw)
        sub = cdiv(g.kernel[0], SUBKERNEL) * cdiv(g.kernel[1], SUBKERNEL)
        ifm_burst = burst_factor(target, ifm_mem, g.ifm_in_arena, ic, fw, blk.ifm_depth, False)
        ofm_burst = burst_factor(target, ofm_mem, g.ofm_in_arena, oc, bw, bd, True)
        transfers.append((ifm_mem, Channel.IFM, fh * fw * ifm_c * sub * n_blocks * g.itemsize * ifm_burst))
        transfers.append((ofm_mem, Channel.WRITE, oh * ow * ofm_c * g.itemsize * ofm_burst))
        if encoded:
            # scales/biases and weights are re-read for every OFM block in H x W
            transfers.append((const, Channel.SCALE, n_wh * SCALE_BYTES_PER_CHANNEL * oc))
            transfers.append((const, Channel.WEIGHT, encoded))
            if const != "Sram" and target.staging_memory == "Sram" and n_wh > 1:
                transfers.append(("Sram", Channel.WEIGHT, n_wh * encoded))
        # per-block pipeline: MAC, output stage (>= scale fetch latency) and command issue overlap
        ublocks = cdiv(oh, blk.ublock[0]) * cdiv(ow, blk.ublock[1]) * cdiv(oc, blk.ublock[2])
        per_block = cdiv(bh, blk.ublock[0]) * cdiv(bw, blk.ublock[1]) * cdiv(bd, blk.ublock[2])
        nb = ublocks / per_block
        os_ = target.npu.output_stage
        rate = os_.maxpool if g.op == "MAX_POOL_2D" else os_.conv
        # chained elementwise ops run through the output stage after this op's own output
        rate += sum(os_.mul if c in ("MUL", "SQUARED_DIFFERENCE") else os_.add for c in g.chain if c in CHAINABLE)
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
    transfers.append((target.const_memory, Channel.IFM_STREAM, constant_read_bytes(g, target)))
    mem_cycles = _access_cycles(target, transfers)
    decode = 0
    if encoded:
        dma = encoded / channel_bandwidth(target, const, Channel.WEIGHT) + target.memory_config(const).read_latency
        decode = max(_decode_cycles(g, target), math.ceil(dma))
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


