"""Ethos-N78 layer planning: what Arm's support library decides for an MCE layer.

Support checks come from the library's support queries; the MCE algorithm from its cost rule;
stripe depth, IFM iteration size and block configuration follow the plans its combiner picked for
single layers (fitted on its reference output, see docs/targets.md). The whole OFM depth and IFM
depth stay in one stripe unless the weights would not fit the SRAM, which the reference never hit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .layout import Algorithm
from .perf import (
    INTERLEAVE_BLOCK,
    Block,
    PleOp,
    block_multiplier,
    has_kernel,
    mce_direct_cycles,
    mce_winograd_cycles,
    ple_cycles,
)
from .raw_order import FC_BRICK
from .variants import N78Variant

KERNEL_SIZES = frozenset({1, 2, 3, 5, 7, 9})  # the library's supported convolution kernel sizes
MAX_STRIDED_KERNEL = 7
BRICK_DEPTH = 16  # NHWCB bricks hold 16 channels
BRICK_GROUP = (8, 8, 16)
#: MCE/PLE block configurations (width x height) the N78 PLE kernels exist for, in preference order.
BLOCKS = (Block(16, 16), Block(8, 8), Block(8, 16), Block(16, 8), Block(8, 32), Block(32, 8))


class Kind(Enum):
    """MCE operation kinds the N78 runs."""

    CONV = "CONVOLUTION"
    DEPTHWISE = "DEPTHWISE_CONVOLUTION"
    FULLY_CONNECTED = "FULLY_CONNECTED"


@dataclass(frozen=True)
class N78Layer:
    """One MCE layer: shapes are (height, width, channels)."""

    kind: Kind
    ifm: tuple[int, int, int]
    ofm: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)  # top, left

    @property
    def strided(self) -> bool:
        return self.stride != (1, 1)


@dataclass(frozen=True)
class LayerPlan:
    """The compiler's choices for one layer."""

    algorithm: Algorithm
    stripe_depth: int
    iteration_size: int
    block: Block
    interleave: bool  # a PLE interleave pass (identity depthwise) runs before a strided layer
    identity_stripe_depth: int = 0  # stripe depth of the interleave pass's identity weights


def support(layer: N78Layer) -> str | None:
    """Why the library would only estimate this layer (its own wording), or None when supported."""
    kh, kw = layer.kernel
    sy, sx = layer.stride
    if layer.kind is Kind.FULLY_CONNECTED:
        return None
    if kh not in KERNEL_SIZES or kw not in KERNEL_SIZES or (layer.kind is Kind.DEPTHWISE and kh != kw):
        return f"Unsupported kernel size. Width({kw})/height({kh}) must be in {{ 1, 2, 3, 5, 7, 9 }}"
    if sx != sy or sx not in (1, 2):
        return "Unsupported stride. Stride X and Y must be equal and in { 1, 2 }"
    if sx > 1 and max(kh, kw) > MAX_STRIDED_KERNEL:
        return "Unsupported stride for kernel width/height > 7. Stride X and Y must be 1"
    if layer.kind is Kind.DEPTHWISE and sx > 1 and (kh, kw) == (1, 1):
        return "Unsupported stride >1 with kernel size 1x1."
    return None


def _round(a: int, b: int) -> int:
    return -(-a // b) * b


def fc_input_shape(channels: int) -> tuple[int, int, int]:
    """The library reinterprets a fully connected input vector as an NHWCB-friendly tensor."""
    bh, bw, bc = BRICK_GROUP
    patches = -(-channels // 16)
    per_group = (bh // 4) * (bw // 4) * bc
    width = 4 if patches <= bc * (bh // 4) else bw
    height = 4 if patches <= bc else bh
    depth = bc * (patches // per_group) + min(bc, patches % per_group)
    return height, width, depth


def choose_algorithm(layer: N78Layer, v: N78Variant) -> Algorithm:
    """Winograd for stride-1 convolutions where it beats direct (3x3 only on the 16-IFM variants)."""
    kh, kw = layer.kernel
    if layer.kind is not Kind.CONV or layer.strided or (kh, kw) == (1, 1):
        return Algorithm.DIRECT
    if kh * kw <= 9 and v.ifm_parallel < 16 and max(layer.ofm[:2]) > 8:
        # On 8-IFM variants the library keeps 3x3 direct when a 16x16 direct block serves the output better.
        return Algorithm.DIRECT
    direct = mce_direct_cycles(v, layer.kernel, layer.ofm, layer.ifm[2], False)
    winograd = mce_winograd_cycles(v, layer.kernel, layer.ofm, layer.ifm[2], Block(8, 8))
    return Algorithm.WINOGRAD if winograd < direct else Algorithm.DIRECT


def choose_block(layer: N78Layer, v: N78Variant, algorithm: Algorithm, ple_op: PleOp = PleOp.PASSTHROUGH,
                 ple_ofm: tuple[int, int, int] | None = None) -> Block:
    """Block configuration of the layer's MCE+PLE pass (fitted to the library's single-layer plans),
    among the blocks the fused PLE kernel exists for."""
    block = _preferred_block(layer, v, algorithm)
    if has_kernel(ple_op, block):
        return block
    return _cheapest_ple_block(layer, v, ple_op, ple_ofm)


def _preferred_block(layer: N78Layer, v: N78Variant, algorithm: Algorithm) -> Block:
    oh, ow, _ = layer.ofm
    if algorithm is Algorithm.WINOGRAD or layer.kind is Kind.FULLY_CONNECTED:
        return Block(8, 8)
    if layer.strided:
        # A section shares the block of its first part, and the interleave pass before a strided
        # layer only has a 16x16 PLE kernel (a network may spill the interleave to change that).
        return INTERLEAVE_BLOCK
    if oh <= 8 and ow <= 8:
        return Block(8, 8)
    if max(layer.kernel) > 3:
        return Block(8, 8)
    if v.ifm_parallel == 8 or (ow <= 8 and v.engines <= 4):
        return _cheapest_ple_block(layer, v)
    return Block(8, 8)


def interleaved_shape(layer: N78Layer, v: N78Variant) -> tuple[int, int, int]:
    """The interleave pass's output: 2x2 phases moved into channels, bank-aligned per SRAM."""
    ih, iw, ic = layer.ifm
    sy, sx = layer.stride
    banks = v.num_srams
    # The MCE reads each phase from its own SRAM bank offset: channels are padded to the bank
    # count per phase, except after the last phase (the library's submap channel count).
    channels = ic * sx * sy if ic % banks == 0 else _round(ic, banks) * sx * sy - (banks - ic % banks)
    return -(-ih // sy), -(-iw // sx), channels


def _cheapest_ple_block(layer: N78Layer, v: N78Variant, ple_op: PleOp = PleOp.PASSTHROUGH,
                        ple_ofm: tuple[int, int, int] | None = None) -> Block:
    """The block with the fewest PLE cycles (what the plans of narrow layers and 1TOPS pick)."""
    best: tuple[int, int, Block] | None = None
    for order, block in enumerate(BLOCKS):
        if not has_kernel(ple_op, block):
            continue
        m = block_multiplier(ple_op, block, layer.ofm[1])
        cycles = ple_cycles(v, ple_op, (layer.ofm,), ple_ofm or layer.ofm, block, m)[1]
        if best is None or (cycles, order) < best[:2]:
            best = (cycles, order, block)
    assert best is not None
    return best[2]


def stripe_depth(layer: N78Layer, v: N78Variant) -> int:
    """OFMs per weight stripe: the whole depth, except that a depth not a multiple of 16 is split."""
    oc = layer.ofm[2]
    if layer.kind is Kind.DEPTHWISE:
        return _round(oc, v.num_srams)
    if layer.kind is Kind.FULLY_CONNECTED:
        return _round(oc, v.num_ogs)
    if oc % BRICK_DEPTH == 0:
        return oc
    if oc < BRICK_DEPTH:
        return _round(oc, min(BRICK_DEPTH, v.num_ogs))
    return max(v.num_ogs, oc // BRICK_DEPTH * BRICK_DEPTH)


def plan_layer(layer: N78Layer, v: N78Variant, ple_op: PleOp = PleOp.PASSTHROUGH,
               ple_ofm: tuple[int, int, int] | None = None) -> LayerPlan:
    """The library's plan for a single supported layer (with the PLE operation fused into it)."""
    algorithm = choose_algorithm(layer, v)
    sy, sx = layer.stride
    cin = layer.ifm[2]
    if layer.kind is Kind.FULLY_CONNECTED:
        iteration = _round(cin, FC_BRICK)
    elif layer.kind is Kind.DEPTHWISE:
        iteration = _round(cin, v.ifm_parallel) * sy * sx
    else:
        iteration = _round(cin, v.ifm_parallel) * sy * sx
    depth = stripe_depth(layer, v)
    depth = _fit_sram(layer, v, depth, iteration)
    identity = _round(cin, v.num_srams) if layer.strided else 0
    return LayerPlan(algorithm, depth, iteration, choose_block(layer, v, algorithm, ple_op, ple_ofm), layer.strided,
                     identity)


def _fit_sram(layer: N78Layer, v: N78Variant, depth: int, iteration: int) -> int:
    """Halve the stripe depth (keeping whole OG sets) until a double-buffered weight stripe fits half the SRAM."""
    kh, kw = layer.kernel
    sy, sx = layer.stride
    unit = v.num_srams if layer.kind is Kind.DEPTHWISE else v.num_ogs
    per_ofm = kh * kw * (1 if layer.kind is Kind.DEPTHWISE else iteration // (sy * sx))
    while depth > unit and 2 * per_ofm * depth > v.sram_bytes // 2:
        depth = max(unit, _round(depth // 2, unit))
    return depth
