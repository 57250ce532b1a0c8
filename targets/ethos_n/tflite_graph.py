"""A TFLite subgraph as the N78 planner's operation list (`graph.NetOp`), in execution order.

Each TFLite operator gives one or more operations, all tagged with its index: an MCE layer with
its weights; a fused activation of an addition as a ReLU after it (the library's network has a
separate ReLU there, which needs an identity pass); a stride-1 max pool as the library's two 1D
max pools. Operators the library's network builder has no rule for in hwopt (SUB, MUL,
transposes, space/depth moves, concatenation, padding, requantisation) are `OTHER`: they run on
the NPU and are costed outside the network plan.
"""

from __future__ import annotations

from hwopt.ir import Operator, Subgraph
from hwopt.targets.geometry import LayerGeometry, OpKind

from .graph import NetOp, OpClass, pool_kernel
from .network import NetLayer
from .perf import PleOp
from .plan import support
from .tflite import N78Weights

RELUS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1"})
RESHAPES = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})
#: Fused-only PLE kernels of activation operators (tanh runs on the sigmoid kernel).
ACTIVATION_PLE = {"LEAKY_RELU": PleOp.LEAKY_RELU, "LOGISTIC": PleOp.SIGMOID, "TANH": PleOp.SIGMOID}
FUSED_RELU = frozenset({1, 2, 3})  # ActivationFunctionType RELU, RELU_N1_TO_1, RELU6


def _same_quant(sg: Subgraph, op: Operator) -> bool:
    """Whether every input of an addition has the output's quantization (no rescale needed)."""
    def q(i: int) -> tuple[tuple[float, ...], tuple[int, ...]] | None:
        t = sg.tensor(i)
        if t is None or t.quantization is None:
            return None
        return tuple(t.quantization.scale.ravel().tolist()), tuple(t.quantization.zero_point.ravel().tolist())

    out = q(op.outputs[0]) if op.outputs else None
    acts = [i for i in op.inputs if i >= 0 and (t := sg.tensor(i)) is not None and t.data is None]
    return out is not None and all(q(i) == out for i in acts)


def _pool(op: Operator, g: LayerGeometry, base: NetOp) -> list[NetOp]:
    pool = "MAX" if op.op == "MAX_POOL_2D" else "AVG"
    kernel = g.ifm[:2] if op.op == "MEAN" else g.kernel
    stride = kernel if op.op == "MEAN" else g.stride
    ple = pool_kernel(pool, kernel, stride, g.ifm)
    if ple is not None:
        return [NetOp(OpClass.PLE, g.ifm, g.ofm, base.sources, ple=ple, graph_input=base.graph_input,
                      graph_output=base.graph_output)]
    if pool == "MAX" and g.stride == (1, 1) and max(kernel) > 1:
        # Two standalone 1D max pools, first along X (to the output width), then along Y.
        mid = (g.ifm[0], g.ofm[1], g.ifm[2])
        first = NetOp(OpClass.PLE, g.ifm, mid, base.sources, ple=PleOp.MAXPOOL_1D, graph_input=base.graph_input)
        ops = [first] if kernel[1] > 1 else []
        if kernel[0] > 1:
            src_in = mid if ops else g.ifm
            ops.append(NetOp(OpClass.PLE, src_in, g.ofm, (-1,) if ops else base.sources, ple=PleOp.MAXPOOL_1D,
                             graph_input=base.graph_input and not ops))
        last = ops[-1]
        ops[-1] = NetOp(last.cls, last.ifm, g.ofm, last.sources, ple=last.ple, graph_input=last.graph_input,
                        graph_output=base.graph_output)
        return ops
    return [base]


def net_ops(sg: Subgraph, op: Operator, g: LayerGeometry, w: N78Weights | None, sources: tuple[int, ...],
            edges: tuple[bool, bool]) -> list[NetOp]:
    """The planner operations of one TFLite operator; a source of -1 means the operation before it."""
    graph_input, graph_output = edges
    base = NetOp(OpClass.OTHER, g.ifm, g.ofm, sources, reason=g.cpu_reason, graph_input=graph_input,
                 graph_output=graph_output)
    if w is not None and (g.kind is not OpKind.CPU or support(w.layer) is not None):
        # An MCE layer; one the library only estimates stays in the list, as in the library. Its
        # fused activation lands in the layer's own clamp.
        layer = NetLayer(w.layer, w.weights, w.zero_point, w.requant)
        return [NetOp(OpClass.MCE, g.ifm, g.ofm, sources, layer=layer, graph_input=graph_input,
                      graph_output=graph_output)]
    if g.kind is OpKind.CPU:
        return [NetOp(OpClass.CPU, g.ifm, g.ofm, sources, reason=g.cpu_reason, graph_input=graph_input,
                      graph_output=graph_output)]
    if op.op in RELUS:
        return [NetOp(OpClass.RELU, g.ifm, g.ofm, sources, graph_input=graph_input, graph_output=graph_output)]
    if op.op in RESHAPES:
        return [NetOp(OpClass.RESHAPE, g.ifm, g.ofm, sources, graph_input=graph_input, graph_output=graph_output)]
    if op.op in ACTIVATION_PLE:
        return [NetOp(OpClass.PLE, g.ifm, g.ofm, sources, ple=ACTIVATION_PLE[op.op], graph_input=graph_input,
                      graph_output=graph_output)]
    if op.op == "ADD":
        add = PleOp.ADDITION if _same_quant(sg, op) else PleOp.ADDITION_RESCALE
        act = int(getattr(op.options, "fusedActivationFunction", 0) or 0) if op.options is not None else 0
        first = NetOp(OpClass.PLE, g.ifm, g.ofm, sources, ple=add, ifms=(g.ifm, g.ifm2 or g.ifm),
                      graph_input=graph_input, graph_output=graph_output and act not in FUSED_RELU)
        if act not in FUSED_RELU:
            return [first]
        return [first, NetOp(OpClass.RELU, g.ofm, g.ofm, (-1,), graph_output=graph_output)]
    if op.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN"):
        return _pool(op, g, base)
    return [base]
