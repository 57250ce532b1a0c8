"""Ethos-U55/U65 per-block performance model in the structure of Vela's own estimator.

Vela chooses, per NPU operation, the OFM block that fits the shared buffer (SHRAM) and fetches the
fewest IFM and weight elements per OFM element; its cycle estimate is then per block: MAC steps
over the micro-blocks of the block, the output stage, and a command-issue floor set by the block's
IFM/OFM transfer time, times the number of blocks. Feature-map traffic is counted in bursts, and a
short burst (an NHWC row narrower than the bus burst) costs a whole one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

import numpy as np

from hwopt.targets.descriptor import Target
from hwopt.targets.geometry import cdiv, round_up

OFM_BLOCK_MAX = (32, 64, 128)  # (H, W, C): the largest OFM block the U55/U65 block registers take
SUBKERNEL = 8  # kernels larger than 8x8 run as 8x8 sub-kernels (the IFM is re-read per sub-kernel)
OFM_SPLIT_DEPTH = 16  # OFM block depths are multiples of 16 below the full OFM depth
BANK_BYTES = 1024  # SHRAM bank size
RESERVED_OUTPUT_BANKS = 2
# SHRAM bank allocation granules per configuration (by MACs per core): IFM 8/16-bit, elementwise
# IFM 8/16-bit, accumulators 32/40-bit. Hardware constants of the SHRAM arbiter.
GRANULES = {32: (2, 2, 2, 2, 4, 4), 64: (2, 2, 2, 2, 4, 8), 128: (4, 4, 4, 4, 8, 12), 256: (8, 8, 8, 8, 16, 20)}
f32 = np.float32
BIAS_BYTES = 10  # per OFM channel: 32-bit scale, 40-bit bias... packed as 10 bytes


class NpuOp(Enum):
    """The U55/U65 hardware operation an operator runs as."""

    CONV = "conv"
    DEPTHWISE = "depthwise"
    VECTOR = "vector_product"  # fully connected
    POOL = "pool"  # pooling, and the 1x1 pooling pass that carries standalone activations
    ELEMENTWISE = "elementwise"


@dataclass(frozen=True)
class Query:
    """One NPU operation as the estimator sees it (shapes (H, W, C))."""

    op: NpuOp
    ifm: tuple[int, int, int]
    ofm: tuple[int, int, int]
    kernel: tuple[int, int]  # dilated kernel (H, W)
    stride: tuple[int, int]
    bits: int  # IFM element bits
    ifm_nhwc: bool  # graph inputs/outputs stay NHWC; intermediates are 16-channel bricks
    ofm_nhwc: bool
    ifm2: tuple[int, int, int] | None = None
    scalar: bool = False  # elementwise with a scalar operand
    upscale: int = 1  # the hardware upscales the IFM (nearest, 2x) as it reads it


@dataclass(frozen=True)
class Block:
    """Vela's block configuration: OFM and IFM block (H, W, C) and the kernel traversal."""

    ofm: tuple[int, int, int]
    ifm: tuple[int, int, int]
    part_kernel: bool
    acc40: bool


def reshape_to_increase_depth(shape: tuple[int, int, int], min_depth: int = 16) -> tuple[int, int, int]:
    """The shape Vela gives a shallow elementwise-like operation: the element count's prime factors,
    smallest first, make a depth of at least `min_depth`; the rest is split between height and width
    (height the larger)."""
    n = shape[0] * shape[1] * shape[2]
    primes = []
    while n % 2 == 0 and n > 1:
        primes.append(2)
        n //= 2
    f = 3
    root = math.isqrt(n)
    while n > 1 and f <= root:
        while n % f == 0:
            primes.append(f)
            n //= f
        f += 2
    if n != 1:
        primes.append(n)
    depth, i = 1, 0
    while i < len(primes) and depth < min_depth:
        depth *= primes[i]
        i += 1
    h = w = 1
    for p in primes[i:]:
        if w < h:
            w *= p
        else:
            h *= p
    return (max(h, w), min(h, w), depth)


Arch = tuple[tuple[int, int, int], int, tuple[int, ...], int]


@lru_cache(maxsize=64)
def _arch(target: Target) -> Arch:
    """(OFM micro-block (H, W, C), IFM micro-block depth, SHRAM granules, total banks): all the block
    search needs of a configuration (U55-256, U65-256 and U65-512 share one)."""
    w, h, c = target.npu.ofm_ublock  # descriptors give the micro-blocks as (W, H, C)
    granules = GRANULES[min(GRANULES, key=lambda m: abs(m - target.npu.macs))]
    return (h, w, c), target.npu.ifm_ublock[2], granules, target.npu.shram_banks or 48


def _part_kernel(q: Query) -> bool:
    """Kernel-first traversal when it keeps more of the MAC array busy than depth-first."""
    depth = q.ifm[2]
    if depth <= 8:
        return True
    k = q.kernel[0] * q.kernel[1]
    depth_util = depth / round_up(depth, 32 if q.bits == 8 else 16)
    part_util = depth / round_up(depth, 8) * (k / round_up(k, 4 if q.bits == 8 else 2))
    return part_util >= depth_util


def _ceil(a: np.ndarray, b: int) -> np.ndarray:
    """Ceiling division of an integer array by a positive integer (the array itself for 1)."""
    return a if b == 1 else (a + (b - 1)) // b


def _fits_grid(arch: Arch, acc: tuple[np.ndarray, np.ndarray, np.ndarray],
               ifm: tuple[np.ndarray, np.ndarray, np.ndarray], q: Query, elementwise: bool, acc40: bool) -> np.ndarray:
    """Which candidate blocks' double-buffered IFM (and accumulator) blocks fit the SHRAM banks. Each
    triple holds arrays that broadcast to the (depth, height, width) candidate grid."""
    _, _, gran, banks = arch
    reserved_end = 2 if banks > 16 else 0

    def rnd(a: np.ndarray, b: int) -> np.ndarray:
        return _ceil(a, b) * b

    ifm_bytes = ifm[0] * ifm[1] * rnd(ifm[2] * (q.bits // 8), 8)
    ifm_banks = rnd(_ceil(ifm_bytes, BANK_BYTES) * 2, gran[(2 if elementwise else 0) + (q.bits == 16)])
    ifm_end = RESERVED_OUTPUT_BANKS + ifm_banks
    acc_start = banks - reserved_end
    if not elementwise:
        acc_bytes = acc[0] * acc[1] * rnd(acc[2], 8) * (40 if acc40 else 32) // 8
        acc_banks = rnd(_ceil(acc_bytes, BANK_BYTES) * 2, gran[5 if acc40 else 4])
        return np.asarray(ifm_end <= acc_start - acc_banks)
    return np.asarray(ifm_end + (0 if q.scalar else ifm_banks) <= acc_start)


def find_block(q: Query, target: Target) -> Block:
    """The block Vela's search picks: the fitting OFM block with the least IFM + weight fetch per OFM
    element (elementwise: the fewest blocks), ties to the smaller IFM coverage for small blocks."""
    return _search(q, _arch(target))


@lru_cache(maxsize=4096)
def _search(q: Query, arch: Arch) -> Block:
    """`find_block` on a configuration's block-search parameters.

    Every candidate is costed at once on a (depth, height, width) grid, in the search's scan order;
    each term is computed on the axes it depends on (the IFM rows on the height, the columns on the
    width) and broadcast, in the search's single-precision operation order."""
    ub, ifm_ub_c, _, _ = arch
    elementwise = q.op is NpuOp.ELEMENTWISE
    ifm = q.ifm if q.ifm2 is None or q.ifm[0] * q.ifm[1] * q.ifm[2] >= math.prod(q.ifm2) else q.ifm2
    equal_depth = q.op in (NpuOp.ELEMENTWISE, NpuOp.POOL, NpuOp.DEPTHWISE)
    part = q.op is NpuOp.CONV and _part_kernel(q)
    acc40 = q.bits == 16 and q.op is not NpuOp.POOL
    ifm_depth = (round_up(min(ifm[2], 16), 4) if q.bits == 16
                 else round_up(min(ifm[2], 16 if part else 32), ifm_ub_c))
    kh, kw = q.kernel
    repeats = cdiv(kw, SUBKERNEL) * cdiv(kh, SUBKERNEL)
    weight_wh = kh * kw if q.op in (NpuOp.CONV, NpuOp.DEPTHWISE) else 0
    oh, ow, oc = q.ofm
    space = tuple(round_up(min(s, m), u) for s, m, u in zip(q.ofm, OFM_BLOCK_MAX, ub, strict=True))
    depths = []
    depth = max(ub[2], min(space[2], OFM_SPLIT_DEPTH))
    if depth < oc:
        depth = round_up(depth, OFM_SPLIT_DEPTH)
    while depth <= space[2]:
        depths.append(depth)
        depth += ub[2]
        if depth < oc:
            depth = round_up(depth, OFM_SPLIT_DEPTH)
    # the candidate axes: depth (D, 1, 1), height (1, H, 1), width (1, 1, W) broadcast to the grid
    d = np.array(depths, dtype=np.int64)[:, None, None]
    h = np.arange(ub[0], space[0] + 1, ub[0], dtype=np.int64)[None, :, None]
    w = np.arange(ub[1], space[1] + 1, ub[1], dtype=np.int64)[None, None, :]
    # the IFM rows and columns a block needs (an upscaled IFM: half of them, rounded up)
    rnd, up = (1, q.upscale) if q.upscale > 1 else (0, 1)
    ih = _ceil(_ceil(h * q.stride[0] + (min(kh, SUBKERNEL) + rnd - q.stride[0]), up), ub[0]) * ub[0]  # (h-1)s + k
    iw = _ceil(_ceil(w * q.stride[1] + (min(kw, SUBKERNEL) + rnd - q.stride[1]), up), ub[1]) * ub[1]
    idepth = d if equal_depth else np.full((1, 1, 1), ifm_depth, dtype=np.int64)
    fit_h = np.minimum(h, oh) if (oh == 1 and kh == 1 and ub[0] == 2) else h  # 1-row convolutions: 1-row block
    ok = _fits_grid(arch, (fit_h, w, d), (ih, iw, idepth), q, elementwise, acc40)
    if not ok.any():  # nothing fits (very large kernels): the smallest block
        return Block(ub, (ub[0], ub[1], ifm_depth), part, acc40)
    # single-precision arithmetic in Vela's operation order, so near-ties resolve alike
    if elementwise:
        cost = f32(oh * ow * oc) / (h * w * d).astype(f32)
    else:
        full_h, full_w, full_d = -(-oh // fit_h), -(-ow // w), -(-oc // d)
        bx, by, bz = f32(ow) / w.astype(f32), f32(oh) / fit_h.astype(f32), f32(oc) / d.astype(f32)  # x is W
        weight_fetch = (weight_wh * ifm[2] * full_h * full_w).astype(f32)
        if q.op is not NpuOp.DEPTHWISE:
            weight_fetch = weight_fetch * (bz * d.astype(f32))
        ifm_fetch = (ih * iw * ifm[2] * repeats).astype(f32) * bx * by
        if not equal_depth:
            ifm_fetch = ifm_fetch * full_d.astype(f32)
        cost = (ifm_fetch + weight_fetch) / f32(oh * ow * oc)
    cost = np.where(ifm[0] * ifm[1] * ifm[2] < ih * iw * idepth * 2, cost / f32(2), cost)
    cost = np.where(ok, cost, np.inf)
    grid = (len(depths), h.shape[1], w.shape[2])
    cost = (cost if cost.shape == grid else np.broadcast_to(cost, grid)).ravel()
    ties = np.flatnonzero(cost == cost.min())
    ti_d, ti_h, ti_w = np.unravel_index(ties, grid)
    pick = 0
    # later equal-cost candidates win only when small (<= 4x4) and covering at least as much of the IFM
    small = np.flatnonzero((h.ravel()[ti_h[1:]] <= 4) & (w.ravel()[ti_w[1:]] <= 4)) + 1 if ties.size > 1 else ties[:0]
    if small.size:
        cov = f32(ifm[0] * ifm[1]) / np.maximum(np.minimum(ifm[0], ih.ravel()[ti_h[small]])
                                                * np.minimum(ifm[1], iw.ravel()[ti_w[small]]), 1).astype(f32)
        pick = int(small[np.flatnonzero(cov == cov.min())[-1]])
    pd, ph, pw = int(ti_d[pick]), int(ti_h[pick]), int(ti_w[pick])
    return Block((int(h[0, ph, 0]), int(w[0, 0, pw]), depths[pd]),
                 (int(ih[0, ph, 0]), int(iw[0, 0, pw]), depths[pd] if equal_depth else ifm_depth), part, acc40)


def transfer_bytes(target: Target, memory: str, nhwc: bool, bits: int, block: tuple[int, int, int],
                   shape: tuple[int, int, int], elements: int, read: bool) -> int:
    """Bus bytes moving `elements` feature-map elements: bursts as long as the block's contiguous run."""
    burst = 8
    if not nhwc:
        burst = 16 * bits * block[1] * (1 if read else target.npu.cores)
    else:
        x_stride = shape[2] * bits // 8
        if read:
            burst = bits * block[1] * block[2] if x_stride == block[2] else bits * block[2]
        elif block[2] <= 16 and x_stride == block[2]:
            burst = bits * block[1] * block[2]
        else:
            burst = min(64 * 8, 16 * bits * target.npu.cores, block[2] * bits)
    max_burst = target.memory_config(memory).burst_length
    burst_bytes = max(min(max_burst, burst // 8), 1)
    return (elements * bits // 8) * max_burst // burst_bytes


def _clip(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return (min(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]))


def micro_block(q: Query, target: Target) -> tuple[int, int, int]:
    """The OFM micro-block; 1-row even-width convolutions with 1-row kernels run as 1x4."""
    ub = _arch(target)[0]
    if (ub[0] == 2 and q.op in (NpuOp.CONV, NpuOp.VECTOR) and q.ofm[0] == 1 and q.ofm[1] % 2 == 0
            and q.kernel[0] == 1):
        return (1, 4, ub[2])
    return ub


def mac_cycles_per_block(q: Query, blk: Block, target: Target) -> float:
    """MAC-array cycles of one OFM block: kernel steps x micro-blocks, write-back floor, accumulate delay."""
    ifm_blk = _clip(q.ifm, blk.ifm)
    ofm_blk = _clip(q.ofm, blk.ofm)
    ub = micro_block(q, target)
    n = (cdiv(ofm_blk[0], ub[0]), cdiv(ofm_blk[1], ub[1]), cdiv(ofm_blk[2], ub[2]))
    n_wh = n[0] * n[1]
    wb = 32 * ub[2] // 8
    u55_32 = target.npu.macs == 32 and target.family.value == "ethos-u55"
    sub = (SUBKERNEL, SUBKERNEL) if q.op is not NpuOp.VECTOR else (1, 1)
    kh, kw = q.kernel
    total = 0
    for x in range(0, kw, sub[1]):
        for y in range(0, kh, sub[0]):
            k = min(kh - y, sub[0]) * min(kw - x, sub[1])
            if q.op is NpuOp.POOL:
                steps = 1
                cycles = max(4, k) * n_wh * n[2] * (1 if u55_32 else q.bits // 2)
            elif q.op is NpuOp.DEPTHWISE:
                steps = cdiv(k, 4)
                cycles = max(wb, 4 * n_wh * (q.bits // 8)) * steps * n[2]
            elif q.op is NpuOp.VECTOR or not blk.part_kernel:
                steps = k
                cycles = max(wb, 4 * n_wh) * steps * n[2]
            else:
                steps = cdiv(k, 2 if q.bits == 16 else 4)
                cycles = max(wb, 4 * n_wh) * steps * n[2] * cdiv(ifm_blk[2], 8)
            # accumulate latency a single micro-block cannot hide
            d = (7 if blk.acc40 else 3) if u55_32 else (3 if blk.acc40 and target.npu.macs <= 128 else 2)
            delay = 0
            if n_wh == 1:
                delay = d * steps if n[2] == 1 else (d * (steps - 1) * n[2] if steps > 1 else 0)
            if u55_32 and (n[0] == 1 or n[1] == 1) and n[2] > 1 and blk.acc40:
                delay += d * n[2]
            if q.op is NpuOp.CONV and blk.part_kernel:
                delay *= cdiv(ifm_blk[2], 8)
            total += cycles + delay
    if q.op in (NpuOp.CONV, NpuOp.VECTOR):
        total *= cdiv(q.ifm[2], ifm_blk[2])
    return total // target.npu.cores


def block_io_cycles(q: Query, blk: Block, target: Target, ifm_mem: str, ofm_mem: str,
                    ifm2_mem: str | None = None) -> tuple[int, int]:
    """(IFM, OFM) cycles of moving one block: latency + burst-rounded bytes over the bandwidth. The
    second operand is read from `ifm2_mem` (a constant's memory; default the first's); a scalar
    counts only when its memory is given (a constant tensor, whose read latency the block waits for)."""
    ifm_cycles = 0
    reads = [(q.ifm, ifm_mem)]
    if q.ifm2 is not None and (not q.scalar or ifm2_mem is not None):
        reads.append((q.ifm2, ifm2_mem or ifm_mem))
    for shape, mem in reads:
        n = math.prod(_clip(shape, blk.ifm))
        tx = transfer_bytes(target, mem, q.ifm_nhwc, q.bits, blk.ifm, shape, n, True)
        ifm_cycles = max(ifm_cycles, target.memory_config(mem).read_latency + int(tx / target.bandwidth(mem)))
    n = math.prod(_clip(q.ofm, blk.ofm))
    tx = transfer_bytes(target, ofm_mem, q.ofm_nhwc, q.bits, blk.ofm, q.ofm, n, False)
    ofm_cycles = target.memory_config(ofm_mem).write_latency + int(tx / target.bandwidth(ofm_mem))
    return ifm_cycles, ofm_cycles


@dataclass(frozen=True)
class MacOpCycles:
    """A MAC operation's cycles: the total, and the per-block MAC and output-stage terms behind it."""

    total: int
    mac_per_block: float
    ao_per_block: float  # output stage, or the per-block scale/bias fetch when that is slower
    blocks: float  # OFM blocks, fractional: micro-blocks of the OFM over micro-blocks per block


def mac_op_cycles(q: Query, blk: Block, target: Target, ifm_mem: str, ofm_mem: str, ao_per_element: float,
                  bias_latency: int | None) -> MacOpCycles:
    """Per block the slower of MAC and output stage
    (each at least the command-issue floor) times the blocks, plus one block of the other, plus the
    first IFM block's fetch and the last OFM block's write (a standalone operation)."""
    ub = micro_block(q, target)
    ofm_blk = _clip(q.ofm, blk.ofm)
    per_block = math.prod(cdiv(b, u) for b, u in zip(ofm_blk, ub, strict=True))
    n_blocks = math.prod(cdiv(s, u) for s, u in zip(q.ofm, ub, strict=True)) / per_block
    ao: float = math.ceil(ao_per_element * math.prod(ofm_blk))
    if bias_latency is not None:
        ao = max(ao, BIAS_BYTES * ofm_blk[2] * bias_latency / 256)
    mac = mac_cycles_per_block(q, blk, target)
    ifm_c, ofm_c = block_io_cycles(q, blk, target, ifm_mem, ofm_mem)
    min_mem = abs(ofm_c - ifm_c) if n_blocks > 1 else 0
    cmd = (min_mem + mac + ao) / 4
    mac_b, ao_b = max(mac, cmd), max(ao, cmd)
    total = int(mac_b * n_blocks) + ao_b if mac_b > ao_b else ao_b * n_blocks + mac_b
    return MacOpCycles(int(total) + ifm_c + ofm_c, mac, ao, n_blocks)


def elementwise_cycles(q: Query, blk: Block, target: Target, ifm_mem: str, ofm_mem: str,
                       ao_per_element: float, ifm2_mem: str | None = None) -> int:
    """Elementwise pass: output stage per element, or the command-issue floor of its block transfers."""
    oc = q.ofm[2] if q.ofm_nhwc else round_up(q.ofm[2], 16)
    elements = q.ofm[0] * q.ofm[1] * oc
    ao = math.ceil(ao_per_element * elements)
    ifm_c, ofm_c = block_io_cycles(q, blk, target, ifm_mem, ofm_mem, ifm2_mem)
    cmd = math.ceil((max(ifm_c, ofm_c) / math.prod(blk.ofm) + ao_per_element) / 4 * elements)
    return max(cmd, ao)


def feature_map_bytes(q: Query, blk: Block, target: Target, ifm_mem: str, ofm_mem: str) -> tuple[int, int]:
    """(IFM read, OFM write) bus bytes: the IFM block re-read per OFM block and sub-kernel (an
    elementwise operation's first operand only: the second is read from where it lives)."""
    ifm_round = 1 if q.ifm_nhwc else 16
    ofm_round = 1 if q.ofm_nhwc else 16
    if q.op is NpuOp.ELEMENTWISE:
        ifm_n = q.ofm[0] * q.ofm[1] * round_up(q.ofm[2], ifm_round)
    else:
        ifm_blk = _clip(q.ifm, blk.ifm)
        ofm_blk = _clip(q.ofm, blk.ofm)
        blocks = cdiv(q.ofm[0], ofm_blk[0]) * cdiv(q.ofm[1], ofm_blk[1])
        if q.op not in (NpuOp.DEPTHWISE, NpuOp.POOL):
            blocks *= cdiv(q.ofm[2], ofm_blk[2])
        sub = cdiv(q.kernel[0], SUBKERNEL) * cdiv(q.kernel[1], SUBKERNEL) if q.op is not NpuOp.VECTOR else 1
        ifm_n = ifm_blk[0] * ifm_blk[1] * round_up(q.ifm[2], ifm_round) * sub * blocks
    ofm_n = q.ofm[0] * q.ofm[1] * round_up(q.ofm[2], ofm_round)
    return (transfer_bytes(target, ifm_mem, q.ifm_nhwc, q.bits, blk.ifm, q.ifm, ifm_n, True),
            transfer_bytes(target, ofm_mem, q.ofm_nhwc, q.bits, blk.ofm, q.ofm, ofm_n, False))


def weight_refetch(q: Query, blk: Block) -> int:
    """Times the weights (and scales) are streamed: once per OFM block in H x W."""
    ofm_blk = _clip(q.ofm, blk.ofm)
    return cdiv(q.ofm[0], ofm_blk[0]) * cdiv(q.ofm[1], ofm_blk[1])
