"""Ethos-N78 whole-network estimate: which feature maps stay in SRAM between MCE layers.

The library cascades consecutive layers through SRAM. hwopt follows the pattern of its plans:
the network input and output, and the inputs of fully connected layers, go through DRAM (NHWC);
a cascade holds at most `MAX_CASCADE` MCE layers and ends after a layer with large weights,
spilling its output to DRAM in NHWCB (height/width rounded to 8, depth to 16); a layer next to
an operation the NPU does not run reads or writes DRAM; the direct layers of a cascade share the
block configuration of its first layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .passes import LayerEstimate, PassEstimate
from .perf import Block, PleOp, ple_cycles
from .plan import Kind, N78Layer, support
from .sizing import estimate_with_weights
from .variants import N78Variant
from .weight_codec import OfmRequant

MAX_CASCADE = 8  # MCE layers per SRAM cascade in the library's plans
LARGE_WEIGHTS = 32 * 1024  # a layer with more encoded weight bytes ends its cascade


@dataclass(frozen=True, eq=False)
class NetLayer:
    """One MCE layer of a network with its weights (HWIO, or HWIM for depthwise) and fused PLE."""

    layer: N78Layer
    weights: np.ndarray
    zero_point: int = 0
    requant: OfmRequant | None = None
    ple_op: PleOp = PleOp.PASSTHROUGH
    ple_ofm: tuple[int, int, int] | None = None  # output shape of a fused pooling
    input_from_npu: bool = True  # False when the producer is not an NPU MCE layer (network input, CPU op)
    output_to_npu: bool = True  # False when the consumer is not an NPU MCE layer


@dataclass(frozen=True)
class PleLayer:
    """A standalone PLE operation without MCE work (an elementwise addition): shapes are (H, W, C)."""

    op: PleOp
    inputs: tuple[tuple[int, int, int], ...]
    ofm: tuple[int, int, int]
    input_from_npu: bool = True
    output_to_npu: bool = True


@dataclass(frozen=True)
class NetLayerEstimate:
    """A layer's estimate, or the library's reason for only estimating it with zero cost."""

    estimate: LayerEstimate | None
    reason: str | None


def _nhwcb(shape: tuple[int, int, int]) -> int:
    h, w, c = shape
    return -(-h // 8) * 8 * (-(-w // 8) * 8) * (-(-c // 16) * 16)


def _ple_only(pl: PleLayer, v: N78Variant) -> LayerEstimate:
    patches, cycles = ple_cycles(v, pl.op, pl.inputs, pl.ofm, None)
    in_bytes = sum(h * w * c for h, w, c in pl.inputs)
    out_bytes = pl.ofm[0] * pl.ofm[1] * pl.ofm[2]
    in_dram = 0 if pl.input_from_npu else in_bytes
    out_dram = 0 if pl.output_to_npu else out_bytes
    p = PassEstimate(pl.op, 0, 0, cycles, patches, in_dram, out_dram, 0, in_bytes - in_dram, out_bytes - out_dram, 0)
    return LayerEstimate(None, (p,))


def _supported(layer: NetLayer | PleLayer | None) -> bool:
    return layer is not None and (isinstance(layer, PleLayer) or support(layer.layer) is None)


def estimate_network(layers: Sequence[NetLayer | PleLayer], v: N78Variant) -> list[NetLayerEstimate]:
    """Estimate every layer in order, deciding DRAM or SRAM for each feature map."""
    out: list[NetLayerEstimate] = []
    cascade = 0
    spill_in = False  # the previous layer spilled its output to DRAM in NHWCB
    cascade_block: Block | None = None
    for k, nl in enumerate(layers):
        if isinstance(nl, PleLayer):
            out.append(NetLayerEstimate(_ple_only(nl, v), None))
            continue
        reason = support(nl.layer)
        if reason is not None:
            out.append(NetLayerEstimate(None, reason))
            spill_in = False
            cascade = 0
            continue
        nxt = layers[k + 1] if k + 1 < len(layers) else None
        next_ok = nl.output_to_npu and _supported(nxt)
        in_dram = not nl.input_from_npu or nl.layer.kind is Kind.FULLY_CONNECTED or cascade == 0
        cascade = 1 if in_dram else cascade + 1
        out_dram = not next_ok or (isinstance(nxt, NetLayer) and nxt.layer.kind is Kind.FULLY_CONNECTED)
        shared = None if in_dram or max(nl.layer.kernel) > 3 else cascade_block
        est = estimate_with_weights(nl.layer, v, nl.weights, nl.zero_point, input_in_dram=in_dram,
                                    output_in_dram=out_dram, ple_op=nl.ple_op, ple_ofm=nl.ple_ofm,
                                    requant=nl.requant, block=shared)
        if in_dram and est.plan is not None:
            cascade_block = est.plan.block  # the layers of a cascade share its first layer's block
        spill = not out_dram and (cascade >= MAX_CASCADE or est.weight_dram > LARGE_WEIGHTS)
        if spill or (in_dram and spill_in):
            est = _with_spill(est, nl, spill_out=spill, spill_in=in_dram and spill_in)
        out.append(NetLayerEstimate(est, None))
        spill_in = spill
        if spill or out_dram:
            cascade = 0
    return out


def _with_spill(est: LayerEstimate, nl: NetLayer, *, spill_out: bool, spill_in: bool) -> LayerEstimate:
    """Move a cascade boundary's feature maps to DRAM in NHWCB."""
    passes = list(est.passes)
    first, last = passes[0], passes[-1]
    if spill_in:
        size = _nhwcb(nl.layer.ifm)
        passes[0] = type(first)(**{**first.__dict__, "input_dram": size, "input_sram": 0})
        last = passes[-1]
    if spill_out:
        size = _nhwcb(nl.ple_ofm or nl.layer.ofm)
        passes[-1] = type(last)(**{**last.__dict__, "output_dram": size, "output_sram": 0})
    return LayerEstimate(est.plan, tuple(passes))
