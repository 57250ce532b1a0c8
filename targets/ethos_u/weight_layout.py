"""Ethos-U weight layout: the scheduler's block configuration and the brick order it implies.

The NPU's weight decoder consumes weights in "brick" order (OFM block → IFM block →
sub-kernel → micro-blocks → kernel element → channels), with out-of-tensor positions padded
with zeros; the order depends on the block configuration (traversal, OFM block depth, depth
slices, U85 micro-block and IFM block). The encoders in `weights` code streams in this order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import numpy as np

from hwopt.targets.geometry import round_up

SUBKERNEL_MAX = 8  # the MAC array reads at most 8x8 kernel elements per sub-kernel
DEFAULT_OFM_BLOCK_DEPTH = 16  # block depth of the size rule (per core pair on u65-512: 8 each)


class Traversal(Enum):
    """How the MAC array walks a kernel: depth-first, part-kernel-first, or depthwise."""

    DEPTH_FIRST = "DepthFirst"
    PART_KERNEL = "PartKernel"
    DEPTHWISE = "Depthwise"


class WeightFormat(Enum):
    """Weight stream formats: the standard MLW stream (SWD), U85's Fast Weight (FWD), and
    their 2:4-sparse variants (U85 only; same codes, sparse weight order)."""

    DEFAULT = "Default"
    FAST = "Fast"
    DEFAULT_SPARSE = "Default|Sparse2_4"
    FAST_SPARSE = "Fast|Sparse2_4"

    @property
    def fast(self) -> bool:
        return self in (WeightFormat.FAST, WeightFormat.FAST_SPARSE)

    @property
    def sparse(self) -> bool:
        return self in (WeightFormat.DEFAULT_SPARSE, WeightFormat.FAST_SPARSE)


@dataclass(frozen=True)
class EthosUArch:
    """The hardware parameters that shape a weight stream."""

    family: str  # "u55", "u65" or "u85"
    macs: int  # MACs per cycle per core
    cores: int  # U55/U65: NPU cores (one weight stream each)
    ifm_ublock_depth: int
    ofm_ublock_depth: int
    weight_streams: int = 1  # U85 weight-decoder streams
    u85_ofm_ublock_depths: tuple[int, ...] = ()

    @property
    def is_u85(self) -> bool:
        return self.family == "u85"

    @property
    def streams(self) -> int:
        return self.weight_streams if self.is_u85 else self.cores


@dataclass(frozen=True)
class BlockConfig:
    """The scheduler's choices that change a layer's weight stream."""

    traversal: Traversal
    ofm_block_depth: int
    depth_offsets: tuple[int, ...] | None = None  # OFM-depth slices (None: one slice)
    ifm_block_depth: int = 0  # U85 only
    ofm_ublock_depth: int = 0  # U85 only (0: the architecture's)
    source: str = "rule"  # "rule" or "vela"
    weight_format: WeightFormat | None = None  # U85: Vela's choice (None: hwopt's rule picks)



def u55_order(w: np.ndarray, *, ifm_ublock: int, ofm_ublock: int, ofm_block: int, traversal: Traversal,
              ifm_bits: int = 8, decomp: tuple[int, int] = (SUBKERNEL_MAX, SUBKERNEL_MAX)) -> np.ndarray:
    """OHWI weights in U55/U65 brick order (one stream), zeros where the NPU pads.

    Loop nest, outer to inner: OFM block, IFM block, sub-kernel H, sub-kernel W,
    [part-kernel: IFM µblock], OFM µblock, kernel element, [depth-first: IFM µblock],
    OFM channel in µblock, IFM channel in µblock.
    """
    o_n, h_n, w_n, i_n = w.shape
    dw = traversal is Traversal.DEPTHWISE
    pk = traversal is Traversal.PART_KERNEL
    ifm_block = 16 if (pk or ifm_bits == 16) else 32
    rnd = 4 if dw else ((2 if ifm_bits == 16 else 4) if pk else 1)
    dy, dx = decomp
    if not (dw or pk) and h_n <= dy and w_n <= dx and ofm_block % ofm_ublock == 0 and ifm_block % ifm_ublock == 0:
        return _depth_first_order(w, ifm_ublock=ifm_ublock, ofm_ublock=ofm_ublock, ofm_block=ofm_block,
                                  ifm_block=ifm_block)
    flat = np.append(w.reshape(-1).astype(np.int32), 0)
    pad = flat.size - 1
    pieces = []
    if not (dw or pk) and h_n <= dy and w_n <= dx:
        # Depth-first with one sub-kernel: every IFM block has the same shape, so they are one axis.
        # Axes: IFM block, OFM µblock, kernel element, IFM µblock, OFM ch, IFM ch.
        blocks = np.arange(0, i_n, ifm_block)[:, None, None, None, None, None]
        ke = np.arange(h_n * w_n)[None, None, :, None, None, None]
        iui = np.arange(0, ifm_block, ifm_ublock)[None, None, None, :, None, None]
        ou = np.arange(ofm_ublock)[None, None, None, None, :, None]
        iu = np.arange(ifm_ublock)[None, None, None, None, None, :]
        iz = blocks + iui + iu
        kpos = ke * i_n  # (ky * w + kx) * i for a kernel that is not split
        for obz in range(0, o_n, ofm_block):
            cob = min(ofm_block, o_n - obz)
            oz = obz + np.arange(0, cob, ofm_ublock)[None, :, None, None, None, None] + ou
            idx = oz * (h_n * w_n * i_n) + kpos + iz
            pieces.append(np.where((iz < i_n) & (oz < o_n), idx, pad).reshape(-1))
        return flat[np.concatenate(pieces)] if pieces else np.zeros(0, dtype=np.int32)
    for obz in range(0, o_n, ofm_block):
        cob = min(ofm_block, o_n - obz)
        for ibz in [0] if dw else range(0, i_n, ifm_block):
            cib = ifm_ublock if dw else (min(ifm_block, i_n - ibz) if pk else ifm_block)
            for sy in range(0, h_n, dy):
                sh = min(h_n - sy, dy)
                for sx in range(0, w_n, dx):
                    sw = min(w_n - sx, dx)
                    elements = round_up(sw * sh, rnd)
                    # Axes: IFM µblock outer, OFM µblock, kernel element, IFM µblock inner, OFM ch, IFM ch.
                    iuo = np.arange(0, cib if pk else 1, ifm_ublock)[:, None, None, None, None, None]
                    oub = np.arange(0, cob, ofm_ublock)[None, :, None, None, None, None]
                    ke = np.arange(elements)[None, None, :, None, None, None]
                    iui = np.arange(0, 1 if pk else cib, ifm_ublock)[None, None, None, :, None, None]
                    ou = np.arange(ofm_ublock)[None, None, None, None, :, None]
                    iu = np.arange(1 if dw else ifm_ublock)[None, None, None, None, None, :]
                    iz = ibz + iuo + iui + iu
                    oz = obz + oub + ou
                    ky, kx = ke // sw, ke % sw
                    valid = (iz < i_n) & (oz < o_n) & (ky < sh)
                    idx = ((oz * h_n + sy + ky) * w_n + sx + kx) * i_n + iz
                    pieces.append(np.where(valid, idx, pad).reshape(-1))
    return flat[np.concatenate(pieces)] if pieces else np.zeros(0, dtype=np.int32)


def _depth_first_order(w: np.ndarray, *, ifm_ublock: int, ofm_ublock: int, ofm_block: int,
                       ifm_block: int) -> np.ndarray:
    """`u55_order` for depth-first traversal with one sub-kernel, as transposes of the padded tensor.

    With whole micro-blocks in every block the brick order is a pure axis permutation: OFM
    block, IFM block, OFM µblock, kernel element, IFM µblock, OFM channel, IFM channel (the
    last OFM block padded to whole µblocks, the IFM depth to whole IFM blocks, with zeros).
    """
    ke = w.shape[1] * w.shape[2]
    n_ib = -(-w.shape[3] // ifm_block)
    parts = []
    for _, n_ob, block, sub in _padded_ofm_groups(w, ofm_block, ofm_ublock, ifm_block):
        t = sub.reshape(n_ob, block // ofm_ublock, ofm_ublock, ke, n_ib, ifm_block // ifm_ublock, ifm_ublock)
        parts.append(t.transpose(0, 4, 1, 3, 5, 2, 6).reshape(-1))
    return _joined(parts, w.dtype)


def _padded_ofm_groups(w: np.ndarray, ofm_block: int, ofm_ublock: int,
                       ifm_block: int) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """The whole OFM blocks, then the rest as one block rounded up to whole µblocks, each as
    (first OFM, blocks, block depth, weights [blocks * depth, H * W, IFM depth padded to whole
    IFM blocks]), zero-padded: the brick layout both depth-first orders start from."""
    o_n, h_n, w_n, i_n = w.shape
    pad_i = -(-i_n // ifm_block) * ifm_block - i_n
    full = o_n // ofm_block * ofm_block
    for lo, hi, block in ((0, full, ofm_block), (full, o_n, round_up(o_n - full, ofm_ublock))):
        if hi <= lo:
            continue
        sub = w[lo:hi].reshape(hi - lo, h_n * w_n, i_n)
        n_ob = (hi - lo + block - 1) // block
        pad_o = n_ob * block - (hi - lo)
        if pad_o or pad_i:
            sub = np.pad(sub, ((0, pad_o), (0, 0), (0, pad_i)))
        yield lo, n_ob, block, sub


def _joined(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """The flat parts back to back (no copy for one part)."""
    return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0, dtype=dtype)


def _u85_elements(sh: int, sw: int, stride: tuple[int, int]) -> list[tuple[int, int]]:
    """Kernel positions of one sub-kernel in U85 order: stride phases, rows, serpentine columns."""
    sty, stx = stride
    out = []
    for py in range(sty):
        kh = (sh + sty - 1 - py) // sty
        for px in range(stx):
            kw = (sw + stx - 1 - px) // stx
            for ky in range(kh):
                for kx in range(kw):
                    x = kx if ky % 2 == 0 else kw - 1 - kx
                    out.append((py + ky * sty, px + x * stx))
    return out


def u85_order(w: np.ndarray, *, arch: EthosUArch, config: BlockConfig, stream: int = 0, ifm_bits: int = 8,
              stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1), sparse: bool = False) -> np.ndarray:
    """OHWI weights in U85 order for weight-decoder `stream` of `arch.weight_streams`.

    OFM block → IFM block (direction alternating per OFM block) → sub-kernel X → Y → IFM
    µblock → OFM µblock → stride phase → kernel row → kernel column (serpentine) → IFM step
    (8, 16 sparse, 1 depthwise) → OFM groups of 4 (stream s takes groups s, s+N, ...) → 4 OFM
    → IFM channels; each OFM µblock's kernel is zero-padded to the traversal's element multiple.
    """
    o_n, h_n, w_n, i_n = w.shape
    n_streams = arch.weight_streams
    trav = config.traversal
    dw, pk = trav is Traversal.DEPTHWISE, trav is Traversal.PART_KERNEL
    ifm16 = ifm_bits == 16
    ifm_block = 1 if dw else config.ifm_block_depth
    ofm_ub = config.ofm_ublock_depth or arch.ofm_ublock_depth
    if pk:
        rnd, ifm_ub = (10 if (ifm16 or sparse) else 5), (8 if ifm16 and not sparse else ifm_block)
    elif dw:
        rnd, ifm_ub = 10, 1
    else:
        rnd, ifm_ub, stride = 1, ifm_block, (1, 1)
    dw_pad = 0 if (not ifm16 and arch.macs <= 256) else (2 if arch.macs <= 512 else 6)
    step = 1 if dw else (16 if sparse else 8)
    decomp_y, decomp_x = decomposition(dilation)
    if (trav is Traversal.DEPTH_FIRST and h_n <= decomp_y and w_n <= decomp_x and ofm_ub % 4 == 0
            and config.ofm_block_depth % ofm_ub == 0 and ifm_block % step == 0):
        return _u85_depth_first(w, stream=stream, n_streams=n_streams, ofm_block=config.ofm_block_depth,
                                ofm_ub=ofm_ub, ifm_block=ifm_block, step=step)
    flat = np.append(w.reshape(-1).astype(np.int32), 0)
    pad = flat.size - 1
    groups = np.arange(stream * 4, ofm_ub, 4 * n_streams)
    pieces: list[np.ndarray] = []
    ifm_blocks = [0] if dw else list(range(0, i_n, ifm_block))
    for nth, obz in enumerate(range(0, o_n, config.ofm_block_depth)):
        cob = min(config.ofm_block_depth, o_n - obz)
        oub = np.arange(0, cob, ofm_ub)
        for ibz in ifm_blocks if nth % 2 == 0 else ifm_blocks[::-1]:
            cib = min(ifm_block, i_n - ibz)
            for skx in range(0, w_n, decomp_x):
                sw = min(w_n - skx, decomp_x)
                for sky in range(0, h_n, decomp_y):
                    sh = min(h_n - sky, decomp_y)
                    elems = _u85_elements(sh, sw, stride)
                    total = round_up(len(elems), rnd)
                    for iuo in range(0, 1 if dw else cib, ifm_ub):
                        segs = []
                        # Axes: OFM µblock, element, IFM step, OFM group, OFM in group, IFM channel.
                        ky = np.array([e[0] for e in elems])[None, :, None, None, None, None]
                        kx = np.array([e[1] for e in elems])[None, :, None, None, None, None]
                        iui = np.arange(0, ifm_ub, step)[None, None, :, None, None, None]
                        grp = groups[None, None, None, :, None, None]
                        oin = np.arange(4)[None, None, None, None, :, None]
                        iuz = np.arange(step)[None, None, None, None, None, :]
                        oz = obz + oub[:, None, None, None, None, None] + grp + oin
                        iz = ibz + iuo + iui + iuz
                        idx = ((oz * h_n + sky + ky) * w_n + skx + kx) * i_n + iz
                        body = np.where((iz < i_n) & (oz < o_n), idx, pad)
                        per_elem = body.reshape(len(oub), len(elems), -1)
                        remaining = total
                        start = 0
                        for e in range(len(elems)):
                            remaining -= 1
                            if dw and dw_pad and remaining % rnd == 0:
                                segs.append(per_elem[:, start:e + 1].reshape(len(oub), -1))
                                segs.append(np.full((len(oub), dw_pad * ofm_ub // n_streams), pad))
                                start = e + 1
                        segs.append(per_elem[:, start:].reshape(len(oub), -1))
                        if remaining > 0:
                            count = (remaining + (dw_pad if dw else 0)) * ifm_ub * ofm_ub // n_streams
                            segs.append(np.full((len(oub), count), pad))
                        pieces.append(np.concatenate(segs, axis=1).reshape(-1))
    return flat[np.concatenate(pieces)] if pieces else np.zeros(0, dtype=np.int32)


def _u85_depth_first(w: np.ndarray, *, stream: int, n_streams: int, ofm_block: int, ofm_ub: int, ifm_block: int,
                     step: int) -> np.ndarray:
    """`u85_order` for depth-first traversal with one sub-kernel, as transposes of the padded tensor.

    OFM block → IFM block (reversed in odd OFM blocks) → OFM µblock → kernel element (rows,
    serpentine columns) → IFM step → this decoder's OFM groups of 4 → 4 OFM → IFM channel.
    """
    _, h_n, w_n, i_n = w.shape
    elems = _u85_elements(h_n, w_n, (1, 1))
    ke = np.array([y * w_n + x for y, x in elems], dtype=np.intp)
    n_ib = -(-i_n // ifm_block)
    parts = []
    for lo, n_ob, block, sub in _padded_ofm_groups(w, ofm_block, ofm_ub, ifm_block):
        t = sub.reshape(n_ob, block // ofm_ub, ofm_ub // 4, 4, h_n * w_n, n_ib, ifm_block // step, step)
        t = t[:, :, stream::n_streams]
        if ke.size > 1 and np.any(ke != np.arange(ke.size)):
            t = t[:, :, :, :, ke]
        t = t.transpose(0, 5, 1, 4, 6, 2, 3, 7)
        first = lo // ofm_block  # index of this group's first OFM block: the IFM direction alternates
        if n_ib > 1 and (n_ob > 1 or first % 2):
            out = np.empty(t.shape, dtype=t.dtype)  # one copy: even blocks as they are, odd ones reversed
            even, odd = slice(first % 2, None, 2), slice(1 - first % 2, None, 2)
            out[even] = t[even]
            out[odd] = t[odd, ::-1]
            t = out
        parts.append(t.reshape(-1))
    return _joined(parts, w.dtype)


def depth_slices(o_n: int, config: BlockConfig) -> list[tuple[int, int]]:
    """The [start, end) OFM channels of each depth slice of a layer with `o_n` output channels."""
    offs = list(config.depth_offsets) if config.depth_offsets else [0, o_n]
    offs = [min(max(x, 0), o_n) for x in offs]
    return [(a, b) for a, b in itertools.pairwise(offs) if b > a]


def decomposition(dilation: tuple[int, int]) -> tuple[int, int]:
    """Sub-kernel size (y, x) for a dilation: 8 // d, at least 1.

    A dilation above 8 leaves room for one kernel element per sub-kernel (a zero step made the
    reorder loop forever or fail).
    """
    return max(1, SUBKERNEL_MAX // max(1, dilation[0])), max(1, SUBKERNEL_MAX // max(1, dilation[1]))
