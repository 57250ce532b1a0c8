"""Ethos-U85 per-operation performance model in the structure of Vela's own U85 estimator.

Per NPU operation and block configuration: MAC cycles per OFM block (micro-blocks x kernel steps per
8x8 sub-kernel, with the accumulate latency a lone micro-block cannot hide), output-stage cycles per
block (or the scale fetch when slower), a command-issue floor from the block's IFM/OFM transfer
times, then the blocks. Traffic is counted in bursts per AXI channel, each channel limited by its
read buffer and the memory's outstanding transactions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u.u85_arch import U85Op
from hwopt.targets.geometry import cdiv, round_up

SUBKERNEL = 8  # kernels larger than 8x8 run as 8x8 sub-kernels (the IFM is re-read per sub-kernel)
BRICK = 16  # NHCWB16 bricks: 16 channels
BIAS_BYTES = 10  # scale and bias per OFM channel
AXI_WORD = 16
AXI_EFFICIENCY = 0.8  # usable share of outstanding transactions and of a burst's latency window


@dataclass(frozen=True)
class U85Hardware:
    """Fixed parameters of one U85 configuration (Arm Ethos-U85 TRM / Vela's accelerator table)."""

    cores: int  # MAC cores the OFM depth is split over
    output_cycles: tuple[float, ...]  # per OFM element: 8-, 16-, 32-, 64-bit, 32-bit CB, 32-bit binary
    activation_cycles: tuple[float, float]  # fused activation per element: plain, transposing
    read_buffers: tuple[int, ...]  # read-buffer words per read channel (Channel order from MEM2MEM)


U85_HARDWARE = {
    128: U85Hardware(1, (0.5, 0.5, 0.5, 1.0, 1.0, 1.0), (0.5, 1.0), (64, 64, 128, 128, 104, 16)),
    256: U85Hardware(1, (0.25, 0.25, 0.25, 0.5, 0.5, 0.5), (0.25, 0.5), (104, 104, 128, 128, 128, 16)),
    512: U85Hardware(2, (0.125, 0.125, 0.25, 0.5, 0.25, 0.25), (0.125, 0.25), (128, 128, 256, 256, 128, 16)),
    1024: U85Hardware(4, (0.0625, 0.125, 0.25, 0.5, 0.125, 0.25), (0.0625, 0.125), (256, 256, 416, 208, 256, 16)),
    2048: U85Hardware(4, (0.03125, 0.0625, 0.125, 0.25, 0.0625, 0.125), (0.03125, 0.0625),
                      (256, 256, 512, 256, 256, 16)),
}


@lru_cache(maxsize=64)
def hardware(target: Target) -> U85Hardware:
    """The hardware table of the U85 configuration with the nearest MAC count not above the target's."""
    fits = [m for m in U85_HARDWARE if m <= target.npu.macs] or [min(U85_HARDWARE)]
    return U85_HARDWARE[max(fits)]


class Channel(Enum):
    """U85 DMA channels; each read channel has its own read buffer."""

    MEM2MEM = 0  # weight prefetch into the staging SRAM
    IFM_STREAM = 1  # elementwise and resize inputs
    WEIGHT = 2
    FAST_WEIGHT = 3
    IFM = 4
    SCALE = 5
    WRITE = 6


# Operations timed as elementwise (the rest run through the MAC array), and those whose OFM depth
# follows the IFM's (one pass over all channels, no depth blocks).
ELEMENTWISE_TIMED = frozenset({U85Op.ELEMENTWISE, U85Op.RESIZE})
EQUAL_DEPTH_OPS = frozenset({U85Op.DEPTHWISE, U85Op.POOL})


Shape = tuple[int, int, int]


@dataclass(frozen=True)
class Fm:
    """A feature map as the estimator sees it: shape (H, W, C), element bits, layout and memory."""

    shape: Shape
    bits: int
    nhwc: bool  # graph inputs/outputs and odd offsets stay NHWC; the rest are NHCWB16 bricks
    memory: str


@dataclass(frozen=True)
class U85Config:
    """The block configuration of one operation: OFM/IFM block, micro-block, traversal, accumulator."""

    ofm: Shape
    ifm: Shape
    ublock: Shape
    part_kernel: bool
    acc48: bool = False


@dataclass(frozen=True)
class U85Operation:
    """One NPU operation: hardware op, feature maps, kernel (undilated), weights and output stage."""

    op: U85Op
    ifm: Fm
    ofm: Fm
    kernel: tuple[int, int] = (1, 1)
    ifm2: Fm | None = None
    sparse: bool = False  # 2:4-sparse weights: half the MAC steps
    ao_per_element: float = 0.0
    scales_memory: str | None = None  # memory the per-channel scales are read from (None: no scales)


def _clip(a: Shape, b: Shape) -> Shape:
    return (min(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]))


def transfer_bytes(target: Target, fm: Fm, block: Shape, elements: int, read: bool) -> int:
    """Bus bytes moving `elements` of a feature map: a burst as long as the block's contiguous run,
    a short burst costing a whole one."""
    bits = fm.bits
    if not fm.nhwc:
        z_stride = fm.shape[1] * bits * BRICK // 8
        burst = bits * block[1] * block[2] if z_stride == block[2] else BRICK * bits * block[1]
    else:
        x_stride = fm.shape[2] * bits // 8
        if read:
            burst = bits * block[1] * block[2] if x_stride == block[2] else bits * block[2]
        elif block[2] <= 16 and x_stride == block[2]:
            burst = bits * block[1] * block[2]
        else:
            burst = min(64 * 8, 16 * bits, block[2] * bits)
    max_burst = target.memory_config(fm.memory).burst_length
    burst_bytes = max(min(max_burst, burst // 8), 1)
    return (elements * bits // 8) * max_burst // burst_bytes


@lru_cache(maxsize=1024)  # a function of the target alone, asked several times per operation
def channel_bandwidth(target: Target, memory: str, channel: Channel | None) -> float:
    """Bytes/cycle one channel sustains: bursts in flight (its read buffer over the burst length,
    bounded by the memory's outstanding transactions over its ports) x burst length / latency."""
    m = target.memory_config(memory)
    peak = target.bandwidth(memory)
    if channel is Channel.WRITE:
        outstanding, latency, rb = m.max_writes, m.write_latency, math.inf
    else:
        outstanding, latency, rb = m.max_reads, m.read_latency, math.inf
        if channel is not None:
            rb = hardware(target).read_buffers[channel.value] / max(m.burst_length // AXI_WORD, 1)
    in_flight = min(rb, outstanding * m.ports_used * AXI_EFFICIENCY)
    if latency <= 0:
        return peak
    return min(peak, m.burst_length * in_flight / latency * AXI_EFFICIENCY)


def mem_to_mem_cycles(target: Target, source: str, dest: str, n: int) -> int:
    """A DMA of `n` bytes: the slower of reading them on the copy channel and writing them."""
    src, dst = target.memory_config(source), target.memory_config(dest)
    read = int(n / channel_bandwidth(target, source, Channel.MEM2MEM)) + src.read_latency
    write = int(n / channel_bandwidth(target, dest, Channel.WRITE)) + dst.write_latency
    return max(read, write)


def min_ifm_cycles(q: U85Operation, cfg: U85Config, target: Target) -> int:
    """Fetch time of one IFM block (the slower input when there are two): latency + bursts."""
    cycles = 0
    for fm in (q.ifm, q.ifm2) if q.ifm2 is not None else (q.ifm,):
        tx = transfer_bytes(target, fm, cfg.ifm, math.prod(_clip(fm.shape, cfg.ifm)), True)
        cycles = max(cycles, target.memory_config(fm.memory).read_latency + int(tx / target.bandwidth(fm.memory)))
    return cycles


def min_ofm_cycles(q: U85Operation, cfg: U85Config, target: Target) -> int:
    """Write time of one OFM block: latency + bursts."""
    tx = transfer_bytes(target, q.ofm, cfg.ofm, math.prod(_clip(q.ofm.shape, cfg.ofm)), False)
    return target.memory_config(q.ofm.memory).write_latency + int(tx / target.bandwidth(q.ofm.memory))


def mac_cycles_per_block(q: U85Operation, cfg: U85Config, target: Target) -> int:
    """MAC-array cycles of one OFM block: kernel steps x micro-blocks per 8x8 sub-kernel, the weight
    decoder's floor per step, and the accumulate latency a single micro-block cannot hide."""
    ifm_blk = _clip(q.ifm.shape, cfg.ifm)
    ofm_blk = _clip(q.ofm.shape, cfg.ofm)
    ub = cfg.ublock
    n = (cdiv(ofm_blk[0], ub[0]), cdiv(ofm_blk[1], ub[1]), cdiv(ofm_blk[2], ub[2]))
    n_wh = n[0] * n[1]
    bits = q.ifm.bits
    hw = hardware(target)
    wb = 32 * ub[2] // (8 * hw.cores)
    sub = (1, 1) if q.op is U85Op.VECTOR_PRODUCT else (SUBKERNEL, SUBKERNEL)
    kh, kw = q.kernel
    delay_per_step = 3 if cfg.acc48 and target.npu.macs <= 128 else 2
    total = 0
    for x in range(0, kw, sub[1]):
        for y in range(0, kh, sub[0]):
            k = min(kh - y, sub[0]) * min(kw - x, sub[1])
            if q.op is U85Op.POOL:
                steps = 1
                cycles = max(4, k) * n_wh * n[2] * (bits // 2)
            elif q.op is U85Op.DEPTHWISE:
                steps = cdiv(k, 4)
                cycles = max(wb, 4 * n_wh * (bits // 8)) * steps * n[2]
            elif not cfg.part_kernel:
                steps = k
                cycles = max(wb, ifm_blk[2] // 8 * n_wh) * steps * n[2] * (bits // 8)
                cycles //= 2 if q.sparse else 1
            else:
                # kernel elements per step; a single-channel IFM packs twice as many (Vela 5.2)
                per_step = (2 if bits == 16 else 4) * (2 if q.ifm.shape[2] == 1 else 1)
                steps = cdiv(k, per_step)
                cycles = max(wb, 4 * n_wh) * steps * n[2] * cdiv(ifm_blk[2], 8)
                cycles //= 2 if q.sparse else 1
            delay = 0
            if n_wh == 1:
                delay = delay_per_step * steps if n[2] == 1 else (
                    delay_per_step * (steps - 1) * n[2] if steps > 1 else 0)
            if q.op in (U85Op.CONV, U85Op.VECTOR_PRODUCT) and cfg.part_kernel:
                delay *= cdiv(ifm_blk[2], 8)
            total += cycles + delay
    if q.op in (U85Op.CONV, U85Op.VECTOR_PRODUCT, U85Op.REDUCE_SUM):
        total *= cdiv(q.ifm.shape[2], ifm_blk[2])
    return total


@dataclass(frozen=True)
class OpCycles:
    """An operation's NPU cycles and the terms behind them (Vela's mac/ao/cmd debug columns)."""

    total: int
    mac: int  # MAC cycles per block x blocks + one block's output stage
    ao: int  # output-stage cycles per block x blocks + one block's MACs
    cmd: int  # command-issue floor per block


def mac_op_cycles(q: U85Operation, cfg: U85Config, target: Target, first: bool = True, last: bool = True) -> OpCycles:
    """Per block the slower of MAC and output stage (each at least the command-issue floor) times the
    blocks, plus one block of the other; a standalone operation also waits for its first IFM block
    and its last OFM block."""
    ofm_blk = _clip(q.ofm.shape, cfg.ofm)
    per_block = math.prod(cdiv(b, u) for b, u in zip(ofm_blk, cfg.ublock, strict=True))
    n_blocks = math.prod(cdiv(s, u) for s, u in zip(q.ofm.shape, cfg.ublock, strict=True)) / per_block
    ao_compute = math.ceil(q.ao_per_element * math.prod(ofm_blk))
    ao: float = ao_compute
    if q.scales_memory is not None and q.op in (U85Op.CONV, U85Op.DEPTHWISE, U85Op.VECTOR_PRODUCT):
        ao = max(ao, BIAS_BYTES * ofm_blk[2] * target.memory_config(q.scales_memory).read_latency / 256)
    mac = mac_cycles_per_block(q, cfg, target)
    ifm_c, ofm_c = min_ifm_cycles(q, cfg, target), min_ofm_cycles(q, cfg, target)
    min_mem = abs(ofm_c - ifm_c) if n_blocks > 1 else 0
    cmd = (min_mem + mac + ao) / 4
    mac_b, ao_b = max(mac, cmd), max(ao, cmd)
    total = int(mac_b * n_blocks) + (ao_b if last else 0) if mac_b > ao_b else ao_b * n_blocks + mac_b
    total = int(total) + (ofm_c if last else 0) + (ifm_c if first else 0)
    return OpCycles(int(total), int(mac * n_blocks + ao), int(ao_compute * n_blocks + mac), int(cmd))


def elementwise_cycles(q: U85Operation, cfg: U85Config, target: Target) -> OpCycles:
    """Elementwise pass: output stage per element, or the command-issue floor of its block transfers
    (input and output overlapped)."""
    oh, ow, oc = q.ofm.shape
    elements = oh * ow * (oc if q.ofm.nhwc else round_up(oc, BRICK))
    ao = math.ceil(q.ao_per_element * elements)
    block = max(min_ofm_cycles(q, cfg, target), min_ifm_cycles(q, cfg, target))
    cmd = math.ceil((block / math.prod(cfg.ofm) + q.ao_per_element) / 4 * elements)
    return OpCycles(max(cmd, ao), 0, ao, cmd)


def op_cycles(q: U85Operation, cfg: U85Config, target: Target) -> OpCycles:
    """NPU cycles of one operation (resize: Vela gives it none)."""
    if q.op is U85Op.RESIZE:
        return OpCycles(0, 0, 0, 0)
    return mac_op_cycles(q, cfg, target) if q.op not in ELEMENTWISE_TIMED else elementwise_cycles(q, cfg, target)


def output_cycles_per_element(target: Target, ifm_bits: int, ofm_bits: int, binary: bool = False,
                              to_chain_buffer: bool = False) -> float:
    """Output-stage cycles per element of one operation by its element sizes."""
    t = hardware(target).output_cycles
    if to_chain_buffer and 32 in (ofm_bits, ifm_bits):
        return t[4]
    if ofm_bits == 64:
        return t[3]
    if binary and ifm_bits == 32:
        return t[5] if ofm_bits == 32 else t[4]
    return t[2] if ofm_bits == 32 else t[1] if ofm_bits == 16 else t[0]


@dataclass(frozen=True)
class Access:
    """Elements (then bytes) an operation moves: IFM reads per input, OFM writes, weight refetches."""

    ifm: tuple[int, int]
    ofm: int
    weight_refetch: int


def element_access(q: U85Operation, cfg: U85Config) -> Access:
    """Elements read and written: MAC operations re-read the IFM block per OFM block and sub-kernel
    (NHCWB16 depth in whole bricks); elementwise reads each non-scalar input once."""

    def rnd(fm: Fm) -> Shape:
        h, w, c = fm.shape
        return (h, w, c if fm.nhwc else round_up(c, BRICK))

    if q.op not in ELEMENTWISE_TIMED:
        ifm_blk = _clip(q.ifm.shape, cfg.ifm)
        ofm_blk = _clip(q.ofm.shape, cfg.ofm)
        blocks = [cdiv(s, b) for s, b in zip(q.ofm.shape, ofm_blk, strict=True)]
        if q.op in EQUAL_DEPTH_OPS:
            blocks[2] = 1
        subk = 1 if q.op is U85Op.VECTOR_PRODUCT else cdiv(q.kernel[0], SUBKERNEL) * cdiv(q.kernel[1], SUBKERNEL)
        fetch = ifm_blk[0] * ifm_blk[1] * rnd(q.ifm)[2]
        ifm = (fetch * subk * math.prod(blocks), 0)
        refetch = blocks[0] * blocks[1]
    elif q.op is U85Op.ELEMENTWISE:
        # one scalar is encoded in the command stream, a second one is read; every input is counted in
        # whole units of the first input's storage (16-channel bricks when it is in NHCWB16)
        reads, encoded = [], False
        for fm in (q.ifm, q.ifm2):
            if fm is not None and (math.prod(fm.shape) > 1 or encoded):
                reads.append(math.prod(rnd(Fm(fm.shape, fm.bits, q.ifm.nhwc, fm.memory))))
            else:
                reads.append(0)
                encoded = encoded or fm is not None
        ifm, refetch = (reads[0], reads[1]), 0
    else:
        ifm, refetch = (math.prod(rnd(q.ifm)), 0), 0
    return Access(ifm, math.prod(rnd(q.ofm)), refetch)


@dataclass(frozen=True)
class Traffic:
    """Bytes on one channel of one memory, by group (feature maps, weights, scales)."""

    memory: str
    channel: Channel
    group: str
    nbytes: int


def feature_map_traffic(q: U85Operation, cfg: U85Config, target: Target, access: Access) -> list[Traffic]:
    """The operation's feature-map reads and writes in bus bytes, on their channels."""
    read_ch = Channel.IFM if q.op not in ELEMENTWISE_TIMED else Channel.IFM_STREAM
    out = [Traffic(q.ifm.memory, read_ch, "fm", transfer_bytes(target, q.ifm, cfg.ifm, access.ifm[0], True))]
    if q.ifm2 is not None:
        out.append(Traffic(q.ifm2.memory, read_ch, "fm", transfer_bytes(target, q.ifm2, cfg.ifm, access.ifm[1], True)))
    out.append(Traffic(q.ofm.memory, Channel.WRITE, "fm", transfer_bytes(target, q.ofm, cfg.ofm, access.ofm, False)))
    return out


def weight_traffic(target: Target, const: str, staging: str | None, encoded: int, scales: int, refetch: int,
                   first_dma: int, fast: bool) -> list[Traffic]:
    """Weights and scales read per OFM block in H x W: from the constant memory, or (buffered) copied
    into the staging memory beside the operation (all but the pre-fetched first slice) and read there."""
    ch = Channel.FAST_WEIGHT if fast else Channel.WEIGHT
    out = []
    if staging is not None:
        rest = max(encoded - first_dma, 0)
        out += [Traffic(const, Channel.MEM2MEM, "weights", rest), Traffic(staging, Channel.WRITE, "weights", rest),
                Traffic(staging, ch, "weights", refetch * encoded)]
    else:
        out.append(Traffic(const, Channel.WEIGHT, "weights", refetch * encoded))
    out.append(Traffic(const, Channel.SCALE, "scales", refetch * scales))
    return out


def access_cycles(target: Target, traffic: list[Traffic]) -> dict[str, int]:
    """Per memory: max(all its bytes at peak bandwidth, its busiest channel's cycles), each channel's
    cycles the sum over its groups at that channel's own bandwidth."""
    per: dict[str, dict[tuple[Channel, str], int]] = {}
    for t in traffic:
        d = per.setdefault(t.memory, {})
        d[(t.channel, t.group)] = d.get((t.channel, t.group), 0) + t.nbytes
    out = {}
    for mem, groups in per.items():
        chan: dict[Channel, int] = {}
        for (ch, _), n in groups.items():
            chan[ch] = chan.get(ch, 0) + int(n / channel_bandwidth(target, mem, ch))
        total = sum(groups.values())
        out[mem] = max(int(total / target.bandwidth(mem)), max(chan.values(), default=0))
    return out


def weight_decode_cycles(target: Target, weights: int, zeros: int, distinct: int, encoded: int, memory: str,
                         fast: bool) -> int:
    """The weight decoder's time: weights per cycle per core rising with the zero share (fast format: a
    fixed rate), or the weight stream's DMA when slower."""
    if fast:
        per_cycle = 64 if distinct < 16 else 32
    else:
        z = min(max(zeros / max(weights, 1), 0.5), 0.9)
        per_cycle = int(8 + (z - 0.5) * (32 - 8) / 0.4) * hardware(target).cores
    ch = Channel.FAST_WEIGHT if fast else Channel.WEIGHT
    dma = int(encoded / channel_bandwidth(target, memory, ch)) + target.memory_config(memory).read_latency
    return max(weights // per_cycle, dma)
