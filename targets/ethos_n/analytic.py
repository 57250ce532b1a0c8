"""hwopt's Ethos-N78 cost model: per operator, Arm's estimator formulas under the library's plan.

MCE layers (convolution, depthwise, fully connected) are planned like the support library
(`plan.py`), their weights encoded by hwopt's N78 encoder, and costed pass by pass (`passes.py`):
MCE and PLE cycles, DRAM bytes for input, output and weights, SRAM bytes, stripes; feature maps
cascade through SRAM as in `network.py`. Other NPU operators are PLE passes; operators the N78
support table rejects run on the CPU. A pass takes max(DMA, MCE, PLE) cycles with the combiner's
per-stripe overheads and its 2500-cycle floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from hwopt.analysis.layers import weight_layers
from hwopt.ir import Model, Operator, Subgraph
from hwopt.targets.descriptor import Target
from hwopt.targets.geometry import LayerCost, LayerGeometry, OpKind, PassCost, layer_geometry
from hwopt.targets.support import place_model

from .graph import NetOp, NetworkLayers, network_layers
from .network import NetLayerEstimate, estimate_network
from .passes import LayerEstimate, PassEstimate
from .perf import PleOp, ple_cycles
from .support import n78_support
from .tflite import MCE_OPS, N78Weights, n78_weights
from .tflite_graph import RELUS, RESHAPES, net_ops
from .variants import N78Variant

MIN_CYCLES_PER_STRIPE = 2500
OVERHEAD_PER_STRIPE = 100
DMA_BYTES_PER_CYCLE = 16  # the estimator's DMA model
#: PLE kernels of the NPU operators that are not MCE layers.
PLE_OF = {
    "ADD": PleOp.ADDITION_RESCALE,
    "SUB": PleOp.ADDITION_RESCALE,
    "MUL": PleOp.ADDITION_RESCALE,
    "AVERAGE_POOL_2D": PleOp.AVGPOOL_3X3,
    "MAX_POOL_2D": PleOp.MAXPOOL_3X3,
    "MEAN": PleOp.MEAN_XY,
    "LEAKY_RELU": PleOp.LEAKY_RELU,
    "LOGISTIC": PleOp.SIGMOID,
    "TANH": PleOp.SIGMOID,
    "TRANSPOSE": PleOp.TRANSPOSE_XY,
    "SPACE_TO_DEPTH": PleOp.INTERLEAVE_2X2,
    "DEPTH_TO_SPACE": PleOp.INTERLEAVE_2X2,
}
#: Operators that only reinterpret or copy a tensor (no pass of their own).
REINTERPRET = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "RELU", "RELU6", "RELU_N1_TO_1",
                         "CONCATENATION", "SPLIT", "PAD"})


def n78_placement(model: Model) -> Callable[[Subgraph, Operator], str | None]:
    """CPU-fallback reasons from the N78 operator-support table (the support library's queries)."""
    placed = place_model(model, n78_support())

    def placement(sg: Subgraph, op: Operator) -> str | None:
        reasons = placed.get((sg.index, op.index), [])
        return "; ".join(r.message for r in reasons) if reasons else None

    return placement


def _pass_cost(p: PassEstimate) -> PassCost:
    return PassCost(p.ple_op.name if p.ple_op is not None else "CONVERSION", p.mce_cycles, p.mce_operations,
                    p.ple_cycles, p.input_dram, p.output_dram, p.weight_dram, p.input_sram + p.output_sram,
                    p.weight_stripes)


def _pass_cycles(p: PassEstimate) -> tuple[int, int, int]:
    """(pass cycles, compute cycles, DMA cycles) with the combiner's overheads and floors."""
    stripes = max(1, p.weight_stripes)
    floor = MIN_CYCLES_PER_STRIPE * stripes
    dma = max(math.ceil(p.dram_bytes / DMA_BYTES_PER_CYCLE) + OVERHEAD_PER_STRIPE * stripes, floor) if p.dram_bytes else 0
    mce = max(p.mce_cycles + OVERHEAD_PER_STRIPE * stripes, floor) if p.mce_cycles else 0
    ple = max(p.ple_cycles + OVERHEAD_PER_STRIPE * stripes, floor) if p.ple_cycles else 0
    return max(dma, mce, ple), max(mce, ple), dma


def _cost(g: LayerGeometry, est: LayerEstimate, macs: int) -> LayerCost:
    cycles = compute = dma = 0
    for p in est.passes:
        c, k, d = _pass_cycles(p)
        cycles, compute, dma = cycles + c, compute + k, dma + d
    weight_dma = math.ceil(est.weight_dram / DMA_BYTES_PER_CYCLE)
    bound = "compute" if compute >= dma else ("weights" if 2 * weight_dma >= dma else "memory")
    dram = sum(p.dram_bytes for p in est.passes)
    mem = {"Dram": math.ceil(dram / DMA_BYTES_PER_CYCLE)} if dram else {}
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", cycles, compute, mem, weight_dma, macs,
                     est.weight_dram or None, est.sram_bytes, bound, tuple(_pass_cost(p) for p in est.passes))


def _ple_only(g: LayerGeometry, v: N78Variant) -> LayerCost:
    if g.op in REINTERPRET or g.kind is OpKind.NOP:
        return LayerCost(g.subgraph, g.op_index, g.op, "npu", 0, 0, {}, 0, 0, None, 0, "none")
    op = PLE_OF.get(g.op, PleOp.PASSTHROUGH)
    patches, ple = ple_cycles(v, op, (g.ifm,), g.ofm, None)
    sram = (g.ifm_elements + g.ofm_elements) * g.itemsize
    dram = (g.ifm_elements if g.ifm_in_arena else 0) + (g.ofm_elements if g.ofm_in_arena else 0)
    p = PassEstimate(op, 0, 0, ple, patches, dram, 0, 0, sram, 0, 1)
    cycles, compute, dma = _pass_cycles(p)
    mem = {"Dram": math.ceil(dram / DMA_BYTES_PER_CYCLE)} if dram else {}
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", cycles, compute, mem, 0, g.macs, None, sram,
                     "compute" if compute >= dma else "memory", (_pass_cost(p),))


def _mce_layers(model: Model, geos: dict[tuple[int, int], LayerGeometry]) -> dict[tuple[int, int], N78Weights]:
    out = {}
    for wl in weight_layers(model):
        g = geos.get((wl.subgraph, wl.op_index))
        if g is None or g.op not in MCE_OPS:
            continue
        try:
            out[(wl.subgraph, wl.op_index)] = n78_weights(model, wl)
        except ValueError:
            continue  # no N78 weight layout: costed as a plain NPU pass (or on the CPU) below
    return out


def _network(sg: Subgraph, mce: dict[tuple[int, int], N78Weights], geos: dict[tuple[int, int], LayerGeometry],
             v: N78Variant) -> tuple[NetworkLayers, list[int], list[NetLayerEstimate]]:
    """A subgraph's operators through the planner's front end and network plan, in execution order:
    the planned layers, the operator index of each planner operation, and the layer estimates."""
    producer = {t: op.index for op in sg.operators for t in op.outputs}
    graph_out = set(sg.outputs)
    ops: list[NetOp] = []
    origin: list[int] = []
    last: dict[int, int] = {}  # operator index -> index of its last planner operation
    for op in sg.operators:
        acts = [i for i in op.inputs if i >= 0 and (t := sg.tensor(i)) is not None and t.data is None]
        sources = tuple(dict.fromkeys(last[producer[i]] for i in acts if i in producer and producer[i] in last))
        edges = (any(i not in producer for i in acts), any(i in graph_out for i in op.outputs))
        for n in net_ops(sg, op, geos[(sg.index, op.index)], mce.get((sg.index, op.index)), sources, edges):
            if n.sources == (-1,):
                n = replace(n, sources=(len(ops) - 1,))
            ops.append(n)
            origin.append(op.index)
        last[op.index] = len(ops) - 1
    planned = network_layers(ops)
    return planned, origin, estimate_network(planned.layers, v)


def _op_cost(g: LayerGeometry, planned: NetworkLayers, ests: list[NetLayerEstimate], mine: list[int],
             v: N78Variant) -> LayerCost:
    """One operator's cost from the layers its planner operations own (or ride on)."""
    owned = [planned.owner[j] for j in mine if j in planned.owner]
    cpu = LayerCost(g.subgraph, g.op_index, g.op, "cpu", 0, 0, {}, 0, 0, None, 0, "cpu")
    if owned:
        layer_ests = [ests[k].estimate for k in owned]
        first = layer_ests[0]
        if first is None:  # the library only estimates it, with zero cost
            return cpu
        passes = tuple(p for e in layer_ests if e is not None for p in e.passes)
        return _cost(g, LayerEstimate(first.plan, passes), g.macs)
    if g.kind is OpKind.CPU:
        return cpu
    if all(j in planned.fused or _reinterprets(g) for j in mine):
        # Rides on the pass of the layer before it (a fused PLE kernel or clamp), or only reinterprets.
        return LayerCost(g.subgraph, g.op_index, g.op, "npu", 0, 0, {}, 0, 0, None, 0, "none")
    return _ple_only(g, v)


def _reinterprets(g: LayerGeometry) -> bool:
    """A ReLU in a clamp, or a reshape: no pass of its own."""
    return g.op in RELUS or g.op in RESHAPES


def n78_layer_costs(model: Model, target: Target) -> list[LayerCost]:
    """Analytic per-operator costs of a whole model on an Ethos-N78 variant."""
    v = target.n78
    assert v is not None
    placement = n78_placement(model)
    geometry = layer_geometry(model, placement)
    geos = {(g.subgraph, g.op_index): g for g in geometry}
    mce = _mce_layers(model, geos)
    plans = {sg.index: _network(sg, mce, geos, v) for sg in model.subgraphs}
    per_op: dict[tuple[int, int], list[int]] = {}
    for sgi, (_, origin, _) in plans.items():
        for j, i in enumerate(origin):
            per_op.setdefault((sgi, i), []).append(j)
    out = []
    for g in geometry:
        planned, _, ests = plans[g.subgraph]
        out.append(_op_cost(g, planned, ests, per_op.get((g.subgraph, g.op_index), []), v))
    return out
