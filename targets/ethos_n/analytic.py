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

from hwopt.analysis.layers import weight_layers
from hwopt.ir import Model, Operator, Subgraph
from hwopt.targets.descriptor import Target
from hwopt.targets.geometry import LayerCost, LayerGeometry, OpKind, PassCost, layer_geometry
from hwopt.targets.support import place_model

from .network import NetLayer, NetLayerEstimate, estimate_network
from .passes import LayerEstimate, PassEstimate
from .perf import PleOp, ple_cycles
from .support import n78_support
from .tflite import MCE_OPS, N78Weights, n78_weights
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
        if g is None or g.kind is OpKind.CPU or g.op not in MCE_OPS:
            continue
        try:
            out[(wl.subgraph, wl.op_index)] = n78_weights(model, wl)
        except ValueError:
            continue  # no N78 weight layout: costed as a plain NPU pass below
    return out


def _network(model: Model, sg: Subgraph, mce: dict[tuple[int, int], N78Weights], v: N78Variant,
             placement: Callable[[Subgraph, Operator], str | None]) -> dict[int, NetLayerEstimate]:
    """Estimate a subgraph's MCE layers in order, with producers/consumers deciding DRAM or SRAM."""
    producer = {t: op.index for op in sg.operators for t in op.outputs}
    readers: dict[int, list[int]] = {}
    for op in sg.operators:
        for t in op.inputs:
            readers.setdefault(t, []).append(op.index)
    order = [op.index for op in sg.operators if (sg.index, op.index) in mce]
    npu = {op.index for op in sg.operators if placement(sg, op) is None}
    layers = []
    for i in order:
        op = sg.operators[i]
        src = producer.get(op.inputs[0])
        outs = [r for t in op.outputs for r in readers.get(t, [])]
        w = mce[(sg.index, i)]
        layers.append(NetLayer(w.layer, w.weights, w.zero_point, w.requant,
                               input_from_npu=src is not None and src in npu,
                               output_to_npu=bool(outs) and all(r in npu for r in outs)))
    return dict(zip(order, estimate_network(layers, v), strict=True))


def n78_layer_costs(model: Model, target: Target) -> list[LayerCost]:
    """Analytic per-operator costs of a whole model on an Ethos-N78 variant."""
    v = target.n78
    assert v is not None
    placement = n78_placement(model)
    geometry = layer_geometry(model, placement)
    geos = {(g.subgraph, g.op_index): g for g in geometry}
    mce = _mce_layers(model, geos)
    nets: dict[tuple[int, int], NetLayerEstimate] = {}
    for sg in model.subgraphs:
        for i, est in _network(model, sg, mce, v, placement).items():
            nets[(sg.index, i)] = est
    out = []
    for g in geometry:
        key = (g.subgraph, g.op_index)
        if g.kind is OpKind.CPU:
            out.append(LayerCost(g.subgraph, g.op_index, g.op, "cpu", 0, 0, {}, 0, 0, None, 0, "cpu"))
        elif key in nets:
            ne = nets[key]
            if ne.estimate is None:  # the library only estimates it, with zero cost
                out.append(LayerCost(g.subgraph, g.op_index, g.op, "cpu", 0, 0, {}, 0, 0, None, 0, "cpu"))
            else:
                out.append(_cost(g, ne.estimate, g.macs))
        else:
            out.append(_ple_only(g, v))
    return out
