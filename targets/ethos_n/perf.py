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
    """PLE kernels with (cycles per patch, per-stripe overhead) from the library's estimator table."""

    ADDITION = (15, 1500)
    ADDITION_RESCALE = (35, 1500)
    AVGPOOL_3X3 = (97, 100)
    DOWNSAMPLE_2X2 = (10, 100)
    INTERLEAVE_2X2 = (13, 100)
    LEAKY_RELU = (37, 100)
    MAXPOOL_2X2 = (13, 100)
    MAXPOOL_3X3 = (37, 100)
    MEAN_XY = (37, 100)
    PASSTHROUGH = (6, 100)
    SIGMOID = (41, 100)
    TRANSPOSE_XY = (14, 100)
    MAXPOOL_1D = (40, 100)

    @property
    def cycles_per_patch(self) -> int:
        return self.value[0]

    @property
    def uses_blocks(self) -> bool:
        """Additions run without the MCE block structure (no per-block overhead)."""
        return self not in (PleOp.ADDITION, PleOp.ADDITION_RESCALE)


@dataclass(frozen=True)
class Block:
    """MCE/PLE block configuration (output elements per block)."""

    width: int
    height: int


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


def block_multiplier(block: Block, stripe_width: int) -> int:
    """The PLE kernel's block multiplier: first of 1, 2, 4 that covers the stripe width."""
    for m in (1, 2, 4):
        if m * block.width >= stripe_width:
            return m
    return 4


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
