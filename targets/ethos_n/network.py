"""Ethos-N78 whole-network estimate: which feature maps stay in SRAM between MCE layers.

The library cascades consecutive layers through SRAM. hwopt follows the pattern of its plans:
the network input and output, and the inputs of fully connected layers, go through DRAM (NHWC);
a cascade holds at most `MAX_CASCADE` MCE layers and ends after a layer with large weights,
spilling its output to DRAM in NHWCB (height and width rounded to 8); a layer next to an
operation the NPU does not run reads or writes DRAM; the direct layers of a cascade share the
block configuration of its first layer, so a layer whose PLE kernel lacks that block (an
interleave needs 16x16) starts a new cascade, unless the library's plan metric prefers another
block for the whole cascade (`estimate_network`); inside a cascade an interleave runs on the
PLE of the MCE layer before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .passes import LayerEstimate, PassEstimate, dram_bytes, pass_metric
from .perf import INTERLEAVE_BLOCK, Block, PleOp, has_kernel, ple_cycles
from .plan import BLOCKS, Kind, N78Layer, support
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
    """Estimate every layer in order, deciding DRAM or SRAM for each feature map.

    A cascade shares the block of its first pass, and the interleave before a strided layer only
    has a 16x16 PLE kernel. Like the library's plan search (which ranks whole plans by its metric),
    each cascade start in turn may take another block: a strided layer by spilling its interleaved
    input to DRAM, a cascade that a later layer could not join (an interleave, a fused PLE kernel
    missing for the block) by taking a block that layer has.
    """
    run = _Runner(layers, v)
    choice = _Choice({}, frozenset())
    est, starts = run(choice)
    total = _metric(est)
    done: set[int] = set()
    while (todo := [k for k in starts if k not in done]):
        k = todo[0]
        done.add(k)
        first = est[k].estimate
        if first is None or first.plan is None:
            continue
        options = []
        nl = layers[k]
        assert isinstance(nl, NetLayer)
        blocks = [b for b in BLOCKS if has_kernel(nl.ple_op, b)]
        if first.plan.interleave:  # spill the interleaved input to free the cascade's block
            options += [_Choice({**choice.blocks, k: b}, choice.spilled | {k}) for b in blocks]
        if starts[k]:  # a later layer could not join the cascade: try the other blocks
            options += [_Choice({**choice.blocks, k: b}, choice.spilled) for b in blocks if b != first.plan.block]
        for option in options:
            t_est, t_starts = run(option)
            t_total = _metric(t_est)
            if t_total < total:
                choice, est, starts, total = option, t_est, t_starts, t_total
    return est


@dataclass(frozen=True)
class _Choice:
    """Plan decisions: a block per cascade start, and strided layers whose interleave goes to DRAM."""

    blocks: dict[int, Block]
    spilled: frozenset[int]


def _joins(nl: NetLayer, block: Block) -> bool:
    """Whether a layer can continue a cascade of this block: an interleave before it needs 16x16
    blocks, and a layer that shares the block needs its fused PLE kernel to exist for it."""
    if nl.layer.strided and block != INTERLEAVE_BLOCK:
        return False
    return max(nl.layer.kernel) > 3 or has_kernel(nl.ple_op, block)


def _metric(est: list[NetLayerEstimate]) -> float:
    return sum(pass_metric(p) for e in est if e.estimate is not None for p in e.estimate.passes)


class _Runner:
    """Estimates a network under plan decisions; layer estimates are remembered across decisions."""

    def __init__(self, layers: Sequence[NetLayer | PleLayer], v: N78Variant) -> None:
        self.layers, self.v = layers, v
        self.memo: dict[tuple[object, ...], LayerEstimate] = {}

    def layer(self, k: int, nl: NetLayer, in_dram: bool, out_dram: bool, block: Block | None,
              spilled: bool) -> LayerEstimate:
        key = (k, in_dram, out_dram, block, spilled)
        hit = self.memo.get(key)
        if hit is None:
            hit = self._estimate(nl, in_dram, out_dram, block, spilled)
            if hit.plan is not None and hit.plan.interleave and hit.plan.block != INTERLEAVE_BLOCK and not spilled:
                # The interleave cannot share this layer's block: it runs in a section of its own.
                hit = self._estimate(nl, in_dram, out_dram, block, True)
            self.memo[key] = hit
        return hit

    def _estimate(self, nl: NetLayer, in_dram: bool, out_dram: bool, block: Block | None,
                  spilled: bool) -> LayerEstimate:
        return estimate_with_weights(nl.layer, self.v, nl.weights, nl.zero_point, input_in_dram=in_dram,
                                     output_in_dram=out_dram, ple_op=nl.ple_op, ple_ofm=nl.ple_ofm,
                                     requant=nl.requant, block=block, interleave_in_dram=spilled)

    def __call__(self, choice: _Choice) -> tuple[list[NetLayerEstimate], dict[int, bool]]:
        """The estimate, and each cascade start with whether an interleave ended its cascade early."""
        out: list[NetLayerEstimate] = []
        starts: dict[int, bool] = {}
        start = -1
        cascade = 0
        spill_in = False  # the previous layer spilled its output to DRAM in NHWCB
        cascade_block: Block | None = None
        v, layers = self.v, self.layers
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
            if in_dram:
                start = k
                starts[k] = False
            out_dram = not next_ok or (isinstance(nxt, NetLayer) and nxt.layer.kind is Kind.FULLY_CONNECTED)
            shared = None if in_dram or max(nl.layer.kernel) > 3 else cascade_block
            if in_dram and k in choice.blocks:
                shared = choice.blocks[k]
            est = self.layer(k, nl, in_dram, out_dram, shared, in_dram and k in choice.spilled)
            if in_dram and est.plan is not None:
                cascade_block = est.plan.block  # the layers of a cascade share its first layer's block
            blocked = isinstance(nxt, NetLayer) and cascade_block is not None and not _joins(nxt, cascade_block)
            spill = not out_dram and (cascade >= MAX_CASCADE or est.weight_dram > LARGE_WEIGHTS or blocked)
            if spill and blocked and cascade < MAX_CASCADE and est.weight_dram <= LARGE_WEIGHTS:
                starts[start] = True
            if spill or (in_dram and spill_in):
                est = _with_spill(est, nl, spill_out=spill, spill_in=in_dram and spill_in)
            before = layers[k - 1] if k > 0 else None
            prev = out[k - 1].estimate if isinstance(before, NetLayer) and before.ple_op is PleOp.PASSTHROUGH else None
            if not in_dram and prev is not None:
                est, fused = _fuse_interleave(est)
                if fused is not None:
                    out[k - 1] = NetLayerEstimate(LayerEstimate(prev.plan, (*prev.passes[:-1], fused(prev.passes[-1]))),
                                                  None)
            out.append(NetLayerEstimate(est, None))
            spill_in = spill
            if spill or out_dram:
                cascade = 0
        return out, starts


def _fuse_interleave(est: LayerEstimate) -> tuple[LayerEstimate, Callable[[PassEstimate], PassEstimate] | None]:
    """An interleave that follows an MCE layer in its cascade runs on that layer's PLE (the library
    gives the MCE layer an MCE-only plan and the interleave a PLE-only one): no identity pass."""
    first = est.passes[0]
    if est.plan is None or not est.plan.interleave or first.ple_op is not PleOp.INTERLEAVE_2X2 or first.output_dram:
        return est, None

    def fused(p: PassEstimate) -> PassEstimate:
        return replace(p, ple_op=first.ple_op, ple_cycles=first.ple_cycles, ple_patches=first.ple_patches,
                       output_sram=first.output_sram)

    return LayerEstimate(est.plan, est.passes[1:]), fused


def _with_spill(est: LayerEstimate, nl: NetLayer, *, spill_out: bool, spill_in: bool) -> LayerEstimate:
    """Move a cascade boundary's feature maps to DRAM in NHWCB."""
    passes = list(est.passes)
    first, last = passes[0], passes[-1]
    if spill_in:
        size = dram_bytes(nl.layer.ifm)
        passes[0] = type(first)(**{**first.__dict__, "input_dram": size, "input_sram": 0})
        last = passes[-1]
    if spill_out:
        size = dram_bytes(nl.ple_ofm or nl.layer.ofm)
        passes[-1] = type(last)(**{**last.__dict__, "output_dram": size, "output_sram": 0})
    return LayerEstimate(est.plan, tuple(passes))
