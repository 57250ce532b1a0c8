"""Ethos-N78 passes of one MCE layer as Arm's estimator reports them: cycles, DRAM/SRAM bytes, stripes.

A strided layer first runs an interleave pass (an identity 1x1 depthwise whose PLE interleaves
2x2 phases into channels), then the layer itself with a passthrough PLE (or a fused pooling PLE).
A convolution whose OFM depth is split into stripes but is not a multiple of 16 channels writes
NHWCB and needs one more DRAM-to-DRAM conversion pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layout import Algorithm
from .perf import Block, PleOp, block_multiplier, mce_direct_cycles, mce_operations, mce_winograd_cycles, ple_cycles
from .plan import BRICK_DEPTH, Kind, LayerPlan, N78Layer, fc_input_shape
from .variants import N78Variant

INTERLEAVE_BLOCK = Block(16, 16)


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


def _interleave_pass(layer: N78Layer, v: N78Variant, identity_bytes: int, input_in_dram: bool) -> PassEstimate:
    ih, iw, ic = layer.ifm
    out = (-(-ih // 2), -(-iw // 2), 4 * ic)
    patches, ple = ple_cycles(v, PleOp.INTERLEAVE_2X2, (layer.ifm,), out, INTERLEAVE_BLOCK)
    mce = mce_direct_cycles(v, (1, 1), layer.ifm, ic, True)
    fm = _volume(layer.ifm)
    return PassEstimate(PleOp.INTERLEAVE_2X2, mce, 2 * fm, ple, patches, fm if input_in_dram else 0, 0,
                        identity_bytes, 0 if input_in_dram else fm, _volume(out), 1)


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
) -> LayerEstimate:
    """The passes of one layer; weight sizes come from hwopt's N78 encoder under `plan`.

    `ple_op`/`ple_ofm` describe a pooling fused into the layer's PLE (its output shape).
    """
    passes = []
    depthwise = layer.kind is Kind.DEPTHWISE
    in_channels = layer.ifm[2]
    mce_ifm = layer.ifm
    if layer.kind is Kind.FULLY_CONNECTED:
        mce_ifm = fc_input_shape(in_channels)
        in_channels = mce_ifm[2]
    if plan.interleave:
        passes.append(_interleave_pass(layer, v, identity_bytes, input_in_dram))
    if plan.algorithm is Algorithm.WINOGRAD:
        mce = mce_winograd_cycles(v, layer.kernel, layer.ofm, in_channels, plan.block)
    else:
        mce = mce_direct_cycles(v, layer.kernel, layer.ofm, in_channels, depthwise)
    kernel = layer.kernel
    ops = mce_operations(kernel, layer.ofm, layer.ifm[2], depthwise)
    out = ple_ofm or layer.ofm
    multiplier = block_multiplier(plan.block, layer.ofm[1]) if not layer.strided else 1
    patches, ple = ple_cycles(v, ple_op, (layer.ofm,), out, plan.block, multiplier)
    from_dram = input_in_dram and not plan.interleave
    in_bytes = _volume(mce_ifm)
    out_bytes = _volume(out)
    passes.append(PassEstimate(ple_op, mce, ops, ple, patches, in_bytes if from_dram else 0,
                               out_bytes if output_in_dram else 0, weight_bytes,
                               0 if from_dram else in_bytes, 0 if output_in_dram else out_bytes, weight_stripes))
    split = plan.stripe_depth < layer.ofm[2] and layer.ofm[2] % BRICK_DEPTH
    if layer.kind is Kind.CONV and split and output_in_dram:
        passes.append(PassEstimate(None, 0, 0, 0, 0, out_bytes, out_bytes, 0, 0, 0, 0))
    return LayerEstimate(plan, tuple(passes))
