"""Ethos-N78 performance formulas of Arm's support-library estimator (shared facts §3).

MCE cycles (direct and Winograd), MCE operations and PLE cycles as the library's estimator
computes them for a pass, given the plan's algorithm and block configuration (`plan.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .variants import MACS_PER_OG, N78Variant

PATCH = 4  # the PLE works on 4x4 patches
HALF_PATCH_W = 2  # the MCE rounds its output width to half a patch
MACS_PER_WINOGRAD_BLOCK = 16
WINOGRAD_WEIGHT_TRANSFORM_CYCLES = 2
WIDE_KERNEL = 3
PLE_BLOCK_OVERHEAD = 10
PLE_MULTIPLIED_BLOCK_OVERHEAD = 100


class PleOp(Enum):
    """PLE kernels of the library (value: its kernel name)."""

    ADDITION = "ADDITION"
    ADDITION_RESCALE = "ADDITION_RESCALE"
    AVGPOOL_3X3 = "AVGPOOL_3X3_1_1_UDMA"
    DOWNSAMPLE_2X2 = "DOWNSAMPLE_2X2"
    INTERLEAVE_2X2 = "INTERLEAVE_2X2_2_2"
    LEAKY_RELU = "LEAKY_RELU"
    MAXPOOL_2X2 = "MAXPOOL_2X2_2_2"
    MAXPOOL_3X3 = "MAXPOOL_3X3_2_2"
    MEAN_XY = "MEAN_XY"
    PASSTHROUGH = "PASSTHROUGH"
    SIGMOID = "SIGMOID"
    TRANSPOSE_XY = "TRANSPOSE_XY"
    MAXPOOL_1D = "MAXPOOL1D"

    @property
    def cycles_per_patch(self) -> int:
        return _PLE_COST[self][0]

    @property
    def stripe_overhead(self) -> int:
        """Cycles per PLE stripe in the library's plan metric."""
        return _PLE_COST[self][1]

    @property
    def uses_blocks(self) -> bool:
        """Additions have a block but not its overheads; standalone kernels (pooling, 1D) have none."""
        return self in PLE_KERNELS and self not in (PleOp.ADDITION, PleOp.ADDITION_RESCALE)


#: (cycles per patch, per-stripe overhead) from the library's estimator tables.
_PLE_COST = {
    PleOp.ADDITION: (15, 1500),
    PleOp.ADDITION_RESCALE: (35, 1500),
    PleOp.AVGPOOL_3X3: (97, 100),
    PleOp.DOWNSAMPLE_2X2: (10, 100),
    PleOp.INTERLEAVE_2X2: (13, 100),
    PleOp.LEAKY_RELU: (37, 100),
    PleOp.MAXPOOL_2X2: (13, 100),
    PleOp.MAXPOOL_3X3: (37, 100),
    PleOp.MEAN_XY: (37, 100),
    PleOp.PASSTHROUGH: (6, 100),
    PleOp.SIGMOID: (41, 100),
    PleOp.TRANSPOSE_XY: (14, 100),
    PleOp.MAXPOOL_1D: (40, 100),
}

_ELEMENTWISE = frozenset({(8, 8, 1), (8, 8, 2), (8, 8, 4), (8, 16, 1), (8, 32, 1), (16, 8, 1), (16, 8, 2),
                          (16, 16, 1), (32, 8, 1)})
_STRIDED_POOL = frozenset({(8, 8, 4), (16, 8, 2), (32, 8, 1)})
#: (block width, block height, block multiplier) of every block-based PLE kernel the 25.03 kernel
#: database holds (the same set on each of its N78 configurations); other kernels have no block.
PLE_KERNELS: dict[PleOp, frozenset[tuple[int, int, int]]] = {
    PleOp.ADDITION: frozenset({(16, 16, 1)}),
    PleOp.ADDITION_RESCALE: frozenset({(16, 16, 1)}),
    PleOp.DOWNSAMPLE_2X2: _ELEMENTWISE - {(8, 8, 1)},
    PleOp.INTERLEAVE_2X2: frozenset({(16, 16, 1)}),
    PleOp.LEAKY_RELU: _ELEMENTWISE,
    PleOp.MAXPOOL_2X2: _STRIDED_POOL | {(16, 16, 1)},
    PleOp.MAXPOOL_3X3: _STRIDED_POOL,
    PleOp.MEAN_XY: frozenset({(8, 8, 1)}),
    PleOp.PASSTHROUGH: _ELEMENTWISE,
    PleOp.SIGMOID: _ELEMENTWISE,
    PleOp.TRANSPOSE_XY: _ELEMENTWISE,
}


@dataclass(frozen=True)
class Block:
    """MCE/PLE block configuration (output elements per block)."""

    width: int
    height: int


#: The interleave PLE kernel exists for 16x16 blocks only (every N78 kernel set of the library).
INTERLEAVE_BLOCK = Block(16, 16)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _round(a: int, b: int) -> int:
    return _cdiv(a, b) * b


def mce_direct_cycles(
    v: N78Variant, kernel: tuple[int, int], ofm: tuple[int, int, int], in_channels: int, depthwise: bool
) -> int:
    """Direct convolution: kh*kw*OH'*OW'*I'*O' / MACs per cycle with the estimator's roundings."""
    kh, kw = kernel
    oh, ow, oc = ofm
    if depthwise:
        active, per_unit, ifms = v.ifm_parallel, 1, 1  # each IG lane works on its own channel
    else:
        active, per_unit, ifms = v.num_ogs, v.ifm_parallel, in_channels
    macs = kh * kw * _round(oh, PATCH) * _round(ow, HALF_PATCH_W) * _round(ifms, per_unit) * _round(oc, active)
    return macs // (per_unit * MACS_PER_OG * active)


def mce_winograd_cycles(
    v: N78Variant, kernel: tuple[int, int], ofm: tuple[int, int, int], in_channels: int, block: Block
) -> int:
    """2x2 Winograd: MAC cycles, or the weight transform when it dominates (the library's heuristic)."""
    kh, kw = kernel
    oh, ow, oc = ofm
    ofms_per_og = _cdiv(oc, v.num_ogs)
    blocks_per_og = ofms_per_og * _cdiv(oh, block.height) * _cdiv(ow, block.width)
    tile_w, tile_h = 2, 2
    if kw == 1:
        tile_w, tile_h = 2, 4
    if kh == 1:
        tile_w, tile_h = 4, 2
    outputs = _cdiv(ow, tile_w) * _cdiv(oh, tile_h)
    subfilters = _cdiv(kw, 1 if kw == 1 else WIDE_KERNEL) * _cdiv(kh, 1 if kh == 1 else WIDE_KERNEL)
    mac_ops = outputs * MACS_PER_WINOGRAD_BLOCK * subfilters
    per_ofm = _round(in_channels, v.ifm_parallel) * mac_ops // (v.ifm_parallel * MACS_PER_OG)
    transform = blocks_per_og * in_channels * subfilters * WINOGRAD_WEIGHT_TRANSFORM_CYCLES
    return max(per_ofm * ofms_per_og, transform)


def mce_operations(kernel: tuple[int, int], ofm: tuple[int, int, int], in_channels: int, depthwise: bool) -> int:
    """Operations = 2 x MACs of the original (uninterleaved) layer."""
    kh, kw = kernel
    oh, ow, oc = ofm
    return 2 * kh * kw * oh * ow * (1 if depthwise else in_channels) * oc


def has_kernel(op: PleOp, block: Block) -> bool:
    """Whether the PLE kernel of `op` exists for this block (always for kernels without blocks)."""
    kernels = PLE_KERNELS.get(op)
    return kernels is None or any((w, h) == (block.width, block.height) for w, h, _ in kernels)


def block_multiplier(op: PleOp, block: Block, stripe_width: int) -> int:
    """The library's pick: the first existing multiplier of 1, 2, 4 whose blocks cover the stripe
    width, else the largest existing one (1 for kernels without blocks or without this block)."""
    chosen = 0
    for m in (1, 2, 4):
        if (block.width, block.height, m) in PLE_KERNELS.get(op, ()):
            chosen = m
            if m * block.width >= stripe_width:
                break
    return chosen or 1


def ple_cycles(
    v: N78Variant,
    op: PleOp,
    inputs: tuple[tuple[int, int, int], ...],
    ofm: tuple[int, int, int],
    block: Block | None,
    multiplier: int = 1,
) -> tuple[int, int]:
    """(patches, cycles): patches*cycles-per-patch + 10 per block + 100 per multiplied block."""
    lanes = v.engines * v.ple_lanes
    blocked = block is not None and op.uses_blocks
    ph = pw = pc = 0
    for h, w, c in inputs:
        if blocked:
            assert block is not None
            h, w = _round(h, block.height), _round(w, block.width)
        ph, pw, pc = max(ph, _cdiv(h, PATCH)), max(pw, _cdiv(w, PATCH)), max(pc, _cdiv(c, lanes))
    patches = ph * pw * pc
    overhead = 0
    if blocked:
        assert block is not None
        blocks = _cdiv(ofm[0], block.height) * _cdiv(ofm[1], block.width) * pc
        overhead = PLE_BLOCK_OVERHEAD * blocks + PLE_MULTIPLIED_BLOCK_OVERHEAD * (blocks // multiplier)
    return patches, patches * op.cycles_per_patch + overhead
