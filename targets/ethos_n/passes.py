"""Ethos-N78 passes of one MCE layer as Arm's estimator reports them: cycles, DRAM/SRAM bytes, stripes.

A strided layer first runs an interleave pass (an identity 1x1 depthwise whose PLE interleaves
2x2 phases into channels), then the layer itself with a passthrough PLE (or a fused pooling PLE);
the interleaved tensor stays in SRAM unless the network plan spills it to DRAM (`network.py`).
A convolution whose OFM depth is split into stripes but is not a multiple of 16 channels writes
NHWCB and needs one more DRAM-to-DRAM conversion pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layout import Algorithm
from .perf import (
    INTERLEAVE_BLOCK,
    PleOp,
    block_multiplier,
    mce_direct_cycles,
    mce_operations,
    mce_winograd_cycles,
    ple_cycles,
)
from .plan import BRICK_DEPTH, Kind, LayerPlan, N78Layer, fc_input_shape, interleaved_shape
from .variants import N78Variant

BRICK_GROUP_HW = 8  # DRAM feature maps (NHWCB) are stored in 8x8 brick groups


@dataclass(frozen=True)
class PassEstimate:
    """One pass of the library's performance stream."""

    ple_op: PleOp | None  # None for a DRAM-to-DRAM conversion
    mce_cycles: int
    mce_operations: int
    ple_cycles: int
    ple_patches: int
    input_dram: int
    output_dram: int
    weight_dram: int
    input_sram: int
    output_sram: int
    weight_stripes: int

    @property
    def dram_bytes(self) -> int:
        return self.input_dram + self.output_dram + self.weight_dram


@dataclass(frozen=True)
class LayerEstimate:
    """All passes of one layer plus the plan they follow."""

    plan: LayerPlan | None  # None for a standalone PLE operation
    passes: tuple[PassEstimate, ...]

    @property
    def mce_cycles(self) -> int:
        return sum(p.mce_cycles for p in self.passes)

    @property
    def ple_cycles(self) -> int:
        return sum(p.ple_cycles for p in self.passes)

    @property
    def dram_bytes(self) -> int:
        return sum(p.dram_bytes for p in self.passes)

    @property
    def weight_dram(self) -> int:
        return sum(p.weight_dram for p in self.passes)

    @property
    def sram_bytes(self) -> int:
        return sum(p.input_sram + p.output_sram for p in self.passes)


def _volume(shape: tuple[int, int, int]) -> int:
    return shape[0] * shape[1] * shape[2]


def dram_bytes(shape: tuple[int, int, int]) -> int:
    """Bytes the estimator counts for a feature map in DRAM (NHWCB): height and width rounded to
    the brick group, channels as they are."""
    h, w, c = shape
    return -(-h // BRICK_GROUP_HW) * BRICK_GROUP_HW * (-(-w // BRICK_GROUP_HW) * BRICK_GROUP_HW) * c


def _interleave_pass(layer: N78Layer, v: N78Variant, identity_bytes: int, input_in_dram: bool,
                     output_in_dram: bool) -> PassEstimate:
    ic = layer.ifm[2]
    out = interleaved_shape(layer, v)
    patches, ple = ple_cycles(v, PleOp.INTERLEAVE_2X2, (layer.ifm,), out, INTERLEAVE_BLOCK)
    mce = mce_direct_cycles(v, (1, 1), layer.ifm, ic, True)
    fm = _volume(layer.ifm)
    out_dram = dram_bytes(out) if output_in_dram else 0
    return PassEstimate(PleOp.INTERLEAVE_2X2, mce, 2 * fm, ple, patches, fm if input_in_dram else 0, out_dram,
                        identity_bytes, 0 if input_in_dram else fm, 0 if output_in_dram else _volume(out), 1)


def estimate_layer(
    layer: N78Layer,
    v: N78Variant,
    plan: LayerPlan,
    *,
    weight_bytes: int,
    weight_stripes: int = 1,
    identity_bytes: int = 0,
    input_in_dram: bool = True,
    output_in_dram: bool = True,
    ple_op: PleOp = PleOp.PASSTHROUGH,
    ple_ofm: tuple[int, int, int] | None = None,
    interleave_in_dram: bool = False,
) -> LayerEstimate:
    """The passes of one layer; weight sizes come from hwopt's N78 encoder under `plan`.

    `ple_op`/`ple_ofm` describe a pooling fused into the layer's PLE (its output shape);
    `interleave_in_dram`: the interleave pass writes its output to DRAM and the layer reads it back.
    """
    passes = []
    depthwise = layer.kind is Kind.DEPTHWISE
    in_channels = layer.ifm[2]
    mce_ifm = layer.ifm
    if layer.kind is Kind.FULLY_CONNECTED:
        mce_ifm = fc_input_shape(in_channels)
        in_channels = mce_ifm[2]
    if plan.interleave:
        passes.append(_interleave_pass(layer, v, identity_bytes, input_in_dram, interleave_in_dram))
        mce_ifm = interleaved_shape(layer, v)
    if plan.algorithm is Algorithm.WINOGRAD:
        mce = mce_winograd_cycles(v, layer.kernel, layer.ofm, in_channels, plan.block)
    else:
        mce = mce_direct_cycles(v, layer.kernel, layer.ofm, in_channels, depthwise)
    kernel = layer.kernel
    ops = mce_operations(kernel, layer.ofm, layer.ifm[2], depthwise)
    out = ple_ofm or layer.ofm
    multiplier = block_multiplier(ple_op, plan.block, layer.ofm[1])
    patches, ple = ple_cycles(v, ple_op, (layer.ofm,), out, plan.block, multiplier)
    from_dram = interleave_in_dram if plan.interleave else input_in_dram
    in_bytes = dram_bytes(mce_ifm) if plan.interleave and from_dram else _volume(mce_ifm)
    out_bytes = _volume(out)
    passes.append(PassEstimate(ple_op, mce, ops, ple, patches, in_bytes if from_dram else 0,
                               out_bytes if output_in_dram else 0, weight_bytes,
                               0 if from_dram else in_bytes, 0 if output_in_dram else out_bytes, weight_stripes))
    split = plan.stripe_depth < layer.ofm[2] and layer.ofm[2] % BRICK_DEPTH
    if layer.kind is Kind.CONV and split and output_in_dram:
        passes.append(PassEstimate(None, 0, 0, 0, 0, out_bytes, out_bytes, 0, 0, 0, 0))
    return LayerEstimate(plan, tuple(passes))


STRIPE_OVERHEAD_CYCLES = 100
MIN_STRIPE_CYCLES = 2500  # the estimator's floor per stripe of any unit
DMA_BYTES_PER_CYCLE = 16


def _dma_cycles(nbytes: int, stripes: int) -> float:
    return max(nbytes / DMA_BYTES_PER_CYCLE + stripes * STRIPE_OVERHEAD_CYCLES, MIN_STRIPE_CYCLES * stripes)


def pass_metric(p: PassEstimate) -> float:
    """The library's plan-ranking metric for one pass with whole-tensor stripes: DMA without
    double buffering serialises with compute, and MCE and PLE overlap."""
    dma = sum(_dma_cycles(n, s) for n, s in ((p.input_dram, 1), (p.weight_dram, max(1, p.weight_stripes)),
                                              (p.output_dram, 1)) if n)
    if p.ple_op is None:
        return dma
    mce = max(p.mce_cycles + STRIPE_OVERHEAD_CYCLES, MIN_STRIPE_CYCLES)
    ple = max(p.ple_cycles + p.ple_op.stripe_overhead, MIN_STRIPE_CYCLES)
    return dma + max(mce, ple)
