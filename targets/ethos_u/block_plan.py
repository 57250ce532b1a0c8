"""Ethos-U block configurations from hwopt's own block searches, without a Vela compile.

A layer's weight streams depend on the block configuration Vela's scheduler picks (traversal, OFM
block depth, U85 IFM block and micro-block) and on how Vela splits the operator into NPU operations
(a depthwise channel multiplier M runs as M depthwise convolutions, a U85 transposed convolution as
one convolution per output phase). The searches of `u55_perf.find_block` and
`u85_blocks.find_u85_block` reproduce Vela's block choice from the feature-map shapes; this module
turns their choice into the `LayerPlan` the weight encoder takes.

One thing the shapes do not decide: where the weights live in a memory other than the staging SRAM,
Vela's scheduler may buffer them in OFM-depth slices (one stream per slice) when its cycle estimates
say buffering pays. hwopt encodes one slice and says so in the plan (`note`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hwopt.analysis.layers import WeightLayer
from hwopt.ir import Model
from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u.placement import ethos_u_geometry
from hwopt.targets.ethos_u.u55 import u55_block
from hwopt.targets.ethos_u.u55_perf import OFM_SPLIT_DEPTH
from hwopt.targets.ethos_u.u85 import u85_block, u85_macs, u85_query
from hwopt.targets.ethos_u.u85_blocks import find_u85_block
from hwopt.targets.ethos_u.u85_ops import transpose_phases
from hwopt.targets.ethos_u.weight_layout import BlockConfig, Traversal
from hwopt.targets.geometry import LayerGeometry, OpKind

Part = tuple[BlockConfig, tuple[int, int], tuple[int, int]]  # (config, stride, dilation) of one NPU operation

SEARCH = "search"
SLICE_NOTE = ("one OFM-depth slice: Vela's scheduler may split these weights into several streams for weight "
              "buffering (a decision of its cycle estimates)")


@dataclass(frozen=True)
class LayerPlan:
    """The block configuration of every NPU operation that reads one layer's weights, in Vela's order."""

    parts: tuple[Part, ...]
    note: str | None = None  # what the plan cannot know about Vela's streams

    @property
    def config(self) -> BlockConfig:
        return self.parts[0][0]

    @property
    def stride(self) -> tuple[int, int]:
        return self.parts[0][1]

    @property
    def dilation(self) -> tuple[int, int]:
        return self.parts[0][2]


def _weights_staged(target: Target) -> bool:
    """Whether the weights already sit in the memory the scheduler stages into (then nothing is buffered)."""
    mm, sc = target.memory_mode, target.system
    assert mm is not None and sc is not None  # an Ethos-U target has both
    return sc.port_memory(mm.const_mem_area) == sc.port_memory(mm.cache_mem_area)


def _op_stride(g: LayerGeometry) -> tuple[int, int]:
    # an axis with one output position has no stride (Vela sets it to 1)
    return (1 if g.ofm[0] == 1 else g.stride[0], 1 if g.ofm[1] == 1 else g.stride[1])


def _u55_plan(g: LayerGeometry, target: Target) -> LayerPlan | None:
    if g.kind is OpKind.DEPTHWISE and g.ifm[2] == 1 < g.ofm[2]:
        g = replace(g, kind=OpKind.CONV)  # a channel multiplier on one input channel runs as a convolution
    blk = u55_block(g, target)
    if blk is None or blk.ofm[2] < 1:
        return None
    trav = (Traversal.DEPTHWISE if g.kind is OpKind.DEPTHWISE else Traversal.PART_KERNEL if blk.part_kernel else Traversal.DEPTH_FIRST)
    cfg = BlockConfig(trav, blk.ofm[2], source=SEARCH)
    part = (cfg, _op_stride(g), g.dilation)
    mult = g.ofm[2] // g.ifm[2] if trav is Traversal.DEPTHWISE and g.ifm[2] else 1
    return LayerPlan((part,) * max(mult, 1), _note(g, target))


def _u85_plan(g: LayerGeometry, target: Target) -> LayerPlan | None:
    q = u85_query(g)
    if q is None:
        return None
    if g.op == "TRANSPOSE_CONV":
        return _u85_transpose_plan(g, target)
    blk = u85_block(g, target)
    if min(blk.ofm[2], blk.ifm[2], blk.ublock[2]) < 1:
        return None  # no block fits (e.g. a stride far beyond the NPU's): the shape rule takes the layer
    cfg = BlockConfig(blk.traversal, blk.ofm[2], None, blk.ifm[2], blk.ublock[2], SEARCH)
    part = (cfg, _op_stride(g), g.dilation)
    mult = g.ofm[2] // g.ifm[2] if g.kind is OpKind.DEPTHWISE and g.ifm[2] > 1 else 1
    return LayerPlan((part,) * max(mult, 1), _note(g, target))


def _u85_transpose_plan(g: LayerGeometry, target: Target) -> LayerPlan:
    """One convolution per output phase (`u85_ops.transpose_phases`), each searched with its own sub-kernel,
    as `vela_blocks.transpose_conv_parts` cuts the weights."""
    base = u85_query(g)
    assert base is not None
    parts = []
    for phase in transpose_phases(g):
        blk = find_u85_block(replace(base, kernel=phase.kernel), u85_macs(target))
        cfg = BlockConfig(blk.traversal, blk.ofm[2], None, blk.ifm[2], blk.ublock[2], SEARCH)
        parts.append((cfg, (1, 1), (1, 1)))
    return LayerPlan(tuple(parts), _note(g, target))


def _note(g: LayerGeometry, target: Target) -> str | None:
    """Slices are at least OFM_SPLIT_DEPTH deep: a shallower layer, or weights already in the staging
    memory, have one stream per core for certain."""
    return None if _weights_staged(target) or g.ofm[2] <= OFM_SPLIT_DEPTH else SLICE_NOTE


def search_plans(model: Model, target: Target, layers: list[WeightLayer] | None = None) -> dict[tuple[int, int], LayerPlan]:
    """{(subgraph, operator index): plan} for every weight layer the NPU runs, from hwopt's block searches."""
    want = None if layers is None else {(la.subgraph, la.op_index) for la in layers}
    u85 = target.family.value == "ethos-u85"  # type: ignore[attr-defined]
    out: dict[tuple[int, int], LayerPlan] = {}
    for g in ethos_u_geometry(model, target.family):
        key = (g.subgraph, g.op_index)
        if g.cpu_reason or g.weights is None or (want is not None and key not in want):
            continue
        plan = _u85_plan(g, target) if u85 else _u55_plan(g, target)
        if plan is not None:
            out[key] = plan
    return out
