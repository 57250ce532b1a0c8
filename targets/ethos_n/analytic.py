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

from .graph import NetOp, NetworkLayers, OpClass, network_layers, pool_kernel
from .network import NetLayer, NetLayerEstimate, estimate_network
from .passes import LayerEstimate, PassEstimate
from .perf import PleOp, ple_cycles
from .plan import support
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
        if g is None or g.op not in MCE_OPS:
            continue
        try:
            out[(wl.subgraph, wl.op_index)] = n78_weights(model, wl)
        except ValueError:
            continue  # no N78 weight layout: costed as a plain NPU pass (or on the CPU) below
    return out


RELUS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1"})
RESHAPES = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})


def _same_quant(sg: Subgraph, op: Operator) -> bool:
    """Whether every input of an addition has the output's quantization (the library then needs no rescale)."""
    def q(i: int) -> tuple[tuple[float, ...], tuple[int, ...]] | None:
        t = sg.tensor(i)
        if t is None or t.quantization is None:
            return None
        return tuple(t.quantization.scale.ravel().tolist()), tuple(t.quantization.zero_point.ravel().tolist())

    out = q(op.outputs[0]) if op.outputs else None
    return out is not None and all(q(i) == out for i in op.inputs)


def _net_op(sg: Subgraph, op: Operator, g: LayerGeometry, w: N78Weights | None, sources: tuple[int, ...],
            edges: tuple[bool, bool]) -> NetOp:
    """One TFLite operator as the planner's front end takes it."""
    graph_input, graph_output = edges
    if w is not None and (g.kind is not OpKind.CPU or support(w.layer) is not None):
        # An MCE layer; one the library would only estimate stays in the list, as it does in the library.
        cls = OpClass.MCE
    elif g.kind is OpKind.CPU:
        cls = OpClass.CPU
    elif op.op in RELUS:
        cls = OpClass.RELU
    elif op.op in RESHAPES:
        cls = OpClass.RESHAPE
    elif op.op == "ADD":
        add = PleOp.ADDITION if _same_quant(sg, op) else PleOp.ADDITION_RESCALE
        ifms = (g.ifm, g.ifm2 or g.ifm)
        return NetOp(OpClass.ADD, g.ifm, g.ofm, sources, ple=add, ifms=ifms, graph_input=graph_input,
                     graph_output=graph_output)
    elif op.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN"):
        pool = "MAX" if op.op == "MAX_POOL_2D" else "AVG"
        kernel = g.ifm[:2] if op.op == "MEAN" else g.kernel
        stride = kernel if op.op == "MEAN" else g.stride
        ple = pool_kernel(pool, kernel, stride, g.ifm)
        if ple is None:  # a pooling the reference has no plan for (e.g. a stride-1 max pool): own PLE pass
            return NetOp(OpClass.OTHER, g.ifm, g.ofm, sources, graph_input=graph_input, graph_output=graph_output)
        return NetOp(OpClass.POOL, g.ifm, g.ofm, sources, ple=ple, graph_input=graph_input, graph_output=graph_output)
    else:
        cls = OpClass.OTHER
    layer = NetLayer(w.layer, w.weights, w.zero_point, w.requant) if cls is OpClass.MCE and w is not None else None
    return NetOp(cls, g.ifm, g.ofm, sources, layer=layer, reason=g.cpu_reason, graph_input=graph_input,
                 graph_output=graph_output)


def _network(model: Model, sg: Subgraph, mce: dict[tuple[int, int], N78Weights],
             geos: dict[tuple[int, int], LayerGeometry], v: N78Variant) -> tuple[NetworkLayers, list[NetLayerEstimate]]:
    """A subgraph's operators through the planner's front end and network plan, in execution order
    (operator index = list index)."""
    producer = {t: op.index for op in sg.operators for t in op.outputs}
    graph_out = set(sg.outputs)
    ops = []
    for op in sg.operators:
        acts = [i for i in op.inputs if i >= 0 and (t := sg.tensor(i)) is not None and t.data is None]
        sources = tuple(dict.fromkeys(producer[i] for i in acts if i in producer))
        edges = (any(i not in producer for i in acts), any(i in graph_out for i in op.outputs))
        ops.append(_net_op(sg, op, geos[(sg.index, op.index)], mce.get((sg.index, op.index)), sources, edges))
    planned = network_layers(ops)
    return planned, estimate_network(planned.layers, v)


def n78_layer_costs(model: Model, target: Target) -> list[LayerCost]:
    """Analytic per-operator costs of a whole model on an Ethos-N78 variant."""
    v = target.n78
    assert v is not None
    placement = n78_placement(model)
    geometry = layer_geometry(model, placement)
    geos = {(g.subgraph, g.op_index): g for g in geometry}
    mce = _mce_layers(model, geos)
    plans = {sg.index: _network(model, sg, mce, geos, v) for sg in model.subgraphs}
    out = []
    for g in geometry:
        planned, ests = plans[g.subgraph]
        k = planned.owner.get(g.op_index)
        if g.kind is OpKind.CPU and k is None:
            out.append(LayerCost(g.subgraph, g.op_index, g.op, "cpu", 0, 0, {}, 0, 0, None, 0, "cpu"))
        elif k is not None:
            est = ests[k].estimate
            if est is None:  # the library only estimates it, with zero cost
                out.append(LayerCost(g.subgraph, g.op_index, g.op, "cpu", 0, 0, {}, 0, 0, None, 0, "cpu"))
            else:
                out.append(_cost(g, est, g.macs))
        elif g.op_index in planned.fused or g.op in RELUS or g.op in RESHAPES:
            # Rides on the pass of the MCE layer (or operation) before it, or only reinterprets.
            out.append(LayerCost(g.subgraph, g.op_index, g.op, "npu", 0, 0, {}, 0, 0, None, 0, "none"))
        else:
            out.append(_ple_only(g, v))
    return out
