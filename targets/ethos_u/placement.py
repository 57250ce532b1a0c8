"""Ethos-U operator placement (which operators Vela puts on the NPU) and U85 operator chaining.

Placement stays behind one function, `cpu_reason`, so a fuller operator-support model can replace it
without touching the cost models.
"""

from __future__ import annotations

import math
from functools import partial

from hwopt.ir import DType, Model, Operator, Subgraph
from hwopt.targets.descriptor import Family
from hwopt.targets.ethos_u.copies import COPYING, PASS_KINDS, Graph, in_place, shared_inputs_staged, writers_of
from hwopt.targets.ethos_u.support_tables import support_for
from hwopt.targets.geometry import (
    KIND_OF,
    LayerGeometry,
    OpKind,
    Placement,
    WeightInfo,
    consumers,
    evolve,
    hwc,
    layer_geometry,
)
from hwopt.targets.support import op_view


def cpu_reason(sg: Subgraph, op: Operator, family: Family) -> str | None:
    """Why Vela leaves `op` on the CPU (the first failing rule of the family's support model), or None."""
    reasons = support_for(family.value).reasons(op_view(sg, op))
    return f"{reasons[0].message} ({reasons[0].rule})" if reasons else None


def placement_of(family: Family) -> Placement:
    """`cpu_reason` for one family and one model, each operator checked once: deriving a model's
    geometry asks about most operators several times (their own pass, chaining, fusing, copies)."""
    seen: dict[tuple[int, int], str | None] = {}

    def reason(sg: Subgraph, op: Operator) -> str | None:
        key = (sg.index, op.index)
        if key not in seen:
            seen[key] = cpu_reason(sg, op, family)
        return seen[key]

    return reason


def execution_order(sg: Subgraph) -> list[int]:
    """The operators in the order Vela runs them: a depth-first walk back from the graph outputs that
    visits an operator's last input first, each operator emitted once all its producers are. A branch
    therefore runs before its sibling, and the operator after a producer may not be the next in the file.
    Operators no graph output depends on follow in file order."""
    writer = {o: op.index for op in sg.operators for o in op.outputs if o >= 0}
    done: set[int] = set()
    order: list[int] = []
    stack = [(False, writer[t]) for t in sg.outputs if t in writer]
    while stack:
        emit, n = stack.pop()
        if emit:
            order.append(n)
        elif n not in done:
            done.add(n)
            stack.append((True, n))
            stack.extend((False, writer[i]) for i in sg.operators[n].inputs if i in writer and writer[i] not in done)
    return order + [op.index for op in sg.operators if op.index not in done]


def previous_ops(sg: Subgraph) -> dict[int, int]:
    """Each operator's predecessor in Vela's execution order (`execution_order`)."""
    order = execution_order(sg)
    return dict(zip(order[1:], order[:-1], strict=True))


# Binary elementwise ops the U85 output stage can apply to a chained producer's output.
CHAINABLE = frozenset(["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"])


def chained_ops(sg: Subgraph, family: Family, reason: Placement | None = None) -> dict[int, int]:
    """U85 operators chained onto the previous NPU pass (op -> producer): a binary elementwise op whose input is the
    output of the operator just before it (in Vela's `execution_order`), read by nothing else, with the same shape as its own output.

    The U85 output stage keeps that intermediate in its chaining buffer and applies the elementwise
    op as the producer's results are written, so the op costs no pass (and no feature-map traffic) of
    its own; U55/U65 have no chaining buffer. Every generation also fuses activations into their
    producer (`fused_activations`). `reason` is the family's placement (default: `cpu_reason`).
    """
    placed = reason or partial(cpu_reason, family=family)
    if family is not Family.ETHOS_U85:
        return fused_activations(sg, family, placed)
    readers = consumers(sg)
    producer = {o: op.index for op in sg.operators for o in op.outputs if o >= 0}
    before = previous_ops(sg)
    graph_outputs, graph_inputs = set(sg.outputs), set(sg.inputs)
    out: dict[int, int] = {}  # chained op -> the op whose pass it rides on
    for op in sg.operators:
        if op.op not in CHAINABLE or placed(sg, op) or not op.outputs:
            continue
        ofm = sg.tensor(op.outputs[0])
        acts = [i for i in op.inputs if (t := sg.tensor(i)) is not None and t.data is None]
        for i in acts:
            src = producer.get(i)
            t = sg.tensor(i)
            if src is None or src != before.get(op.index) or t is None or ofm is None:
                continue
            prev = sg.operators[src]
            if (placed(sg, prev) or KIND_OF.get(prev.op) in (OpKind.NOP, OpKind.MEMORY, OpKind.SOFTMAX)
                    or src in out):
                continue
            # the other operand must be on-chip already: Vela does not chain onto a graph input's stream
            others_ok = all(j not in graph_inputs for j in acts if j != i)
            if deepened(sg, op) and not (KIND_OF.get(prev.op) is OpKind.ELEMENTWISE and deepened(sg, prev)):
                continue  # reshaped deeper, it no longer fits its producer's output
            if (readers.get(i) == [op.index] and i not in graph_outputs and tuple(t.shape) == tuple(ofm.shape)
                    and others_ok):
                out[op.index] = src
                break
    out.update({a: p for a, p in fused_activations(sg, family, placed).items() if a not in out})
    return out




def deepened(sg: Subgraph, op: Operator) -> bool:
    """Whether Vela reshapes an elementwise operation to a deeper shape before grouping operations: its
    output is shallow (depth < 8, more than 16 elements), its inputs do not broadcast (scalars aside)
    and its output has one scale."""
    ofm = sg.tensor(op.outputs[0]) if op.outputs else None
    if ofm is None:
        return False
    h, w, c = hwc(ofm.shape)
    if h * w * c <= 16 or c >= 8:
        return False
    q = ofm.quantization
    if q is not None and q.scale is not None and len(q.scale) > 1:
        return False
    shapes = {hwc(t.shape) for i in op.inputs if (t := sg.tensor(i)) is not None and math.prod(hwc(t.shape)) > 1}
    return len(shapes) <= 1


# Activations Vela fuses into the operation producing their input (a clamp or table lookup in its
# output stage), so they run no pass of their own.
RELUS = frozenset(["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"])
FUSABLE_ACTIVATIONS = RELUS | {"TANH", "LOGISTIC", "HARD_SWISH", "LEAKY_RELU"}
FUSING_KINDS = PASS_KINDS - {OpKind.LUT}  # a table lookup takes no fused activation


def fused_activations(sg: Subgraph, family: Family, reason: Placement | None = None) -> dict[int, int]:
    """Activations fused into their producer (activation -> producer): the producer is the
    operator just before it in Vela's execution order, runs on the NPU as a convolution, pooling or elementwise pass, and its
    output is read by nothing else and is not a graph output."""
    placed = reason or partial(cpu_reason, family=family)
    readers = consumers(sg)
    producer = {o: op.index for op in sg.operators for o in op.outputs if o >= 0}
    before = previous_ops(sg)
    outputs = set(sg.outputs)
    out: dict[int, int] = {}
    for op in sg.operators:
        if op.op not in FUSABLE_ACTIVATIONS or not op.inputs or placed(sg, op):
            continue
        i = op.inputs[0]
        src = producer.get(i)
        if src is None or src != before.get(op.index) or readers.get(i) != [op.index] or i in outputs:
            continue
        prev = sg.operators[src]
        t = sg.tensor(i)
        if t is None or (op.op not in RELUS and t.dtype is not DType.INT8):
            continue  # 16-bit table lookups run as passes of their own
        h, w, c = hwc(t.shape)
        if h * w * c > 16 and c < 8:
            continue  # Vela first deepens a shallow activation's shape, which then no longer fits its producer
        if KIND_OF.get(prev.op, OpKind.ELEMENTWISE) in FUSING_KINDS and prev.op not in FUSABLE_ACTIVATIONS \
                and not placed(sg, prev):
            out[op.index] = src
    return out


def geometry_family(family: Family) -> Family:
    """The family whose geometry `family` shares: U65 runs U55's operator-support rules and, like it, has
    no chaining buffer, so a model's U55 and U65 geometries are the same."""
    return Family.ETHOS_U55 if family is Family.ETHOS_U65 else family


_UNRESHAPED = frozenset([OpKind.CONV, OpKind.DEPTHWISE, OpKind.FULLY_CONNECTED, OpKind.POOL])  # keep their shape
_CLAMP_CODES = frozenset([1, 2, 3])  # TFLite fused RELU, RELU_N1_TO_1, RELU6


def ethos_u_geometry(model: Model, family: Family,
                     stats: dict[tuple[int, int], WeightInfo | None] | None = None) -> list[LayerGeometry]:
    """Every operator as a `LayerGeometry` with Ethos-U placement (and U85 chaining); `stats` memoises
    weight statistics across families for one model."""
    placed = placement_of(family)
    geo = layer_geometry(model, placed, partial(chained_ops, family=family, reason=placed), stats)
    graphs: dict[int, Graph] = {}
    out = []
    for g in geo:
        if g.kind is not OpKind.CPU and g.op in COPYING:
            sg = model.subgraphs[g.subgraph]
            if sg.index not in graphs:
                graphs[sg.index] = (consumers(sg), writers_of(sg, placed))
            g = COPYING[g.op](g, sg, graphs[sg.index])
            if family is Family.ETHOS_U85 and g.op == "CONCATENATION":
                g = shared_inputs_staged(g, sg, graphs[sg.index])
        elif g.op in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
            opts = model.subgraphs[g.subgraph].operators[g.op_index].options
            g = evolve(g, flags=frozenset(f for f, a in (("align_corners", "alignCorners"),
                                                          ("half_pixel_centers", "halfPixelCenters"))
                                           if getattr(opts, a, False)))
        elif family is Family.ETHOS_U85 and g.kind in _UNRESHAPED and g.op != "TRANSPOSE_CONV":
            opts = model.subgraphs[g.subgraph].operators[g.op_index].options
            h, w, c = g.ofm
            if getattr(opts, "fusedActivationFunction", 0) in _CLAMP_CODES and h * w * c > 16 and c < 8:
                # the clamp, split off and deepened like a standalone one, no longer fits the operation's
                # output: Vela runs it as a pass of its own
                g = evolve(g, flags=g.flags | {"activation_pass"})
        out.append(g)
    out = _arena_boundaries(model, _concat_slices(model, out, placed), placed)
    position = {(sg.index, op): n for sg in model.subgraphs for n, op in enumerate(execution_order(sg))}
    out = [evolve(g, position=position[(g.subgraph, g.op_index)]) for g in out]
    return _live_ranges(model, _chain_outputs(model, out, family, placed), family, placed)


def _live_ranges(model: Model, geo: list[LayerGeometry], family: Family, placed: Placement) -> list[LayerGeometry]:
    """Each pass's feature-map sources and the last pass reading its output, a chain of passes taken
    as its first pass (the others ride on it) and removed reshapes as the tensor they alias."""
    pos = {(g.subgraph, g.op_index): n for n, g in enumerate(geo)}
    for sg in model.subgraphs:
        _subgraph_live_ranges(sg, geo, pos, chained_ops(sg, family, placed))
    return geo


def _subgraph_live_ranges(sg: Subgraph, geo: list[LayerGeometry], pos: dict[tuple[int, int], int],
                          riders: dict[int, int]) -> None:
    """`_live_ranges` of one subgraph, in place."""
    writer = {o: op.index for op in sg.operators for o in op.outputs if o >= 0}

    def root(i: int) -> int:
        while i in riders:
            i = riders[i]
        return i

    def source(t: int) -> int:
        """The pass writing tensor `t` (through removed reshapes), -1 for a graph input or a CPU op."""
        while t in writer:
            g = geo[pos[(sg.index, writer[t])]]
            if g.kind is OpKind.NOP and not g.copies and sg.operators[g.op_index].inputs:
                t = sg.operators[g.op_index].inputs[0]
                continue
            return -1 if g.kind is OpKind.CPU else root(g.op_index)
        return -1

    last: dict[int, int] = {}
    for op in sg.operators:
        g = geo[pos[(sg.index, op.index)]]
        if g.kind in (OpKind.CPU, OpKind.NOP) and not g.copies:
            continue
        own = root(op.index)  # a rider reads its pass's output inside the pass: not a source
        fms = [source(i) for i in op.inputs if (t := sg.tensor(i)) is not None and t.data is None]
        srcs = tuple(s for s in fms if s != own or own == op.index)
        # an input a CPU operator writes (or the graph input), through removed reshapes: in the arena
        geo[pos[(sg.index, op.index)]] = evolve(g, sources=srcs, ifm_in_arena=g.ifm_in_arena or srcs[:1] == (-1,))
        for s in srcs:
            if s >= 0:
                last[s] = max(last.get(s, -1), geo[pos[(sg.index, own)]].position)
    for s, p in last.items():
        geo[pos[(sg.index, s)]] = evolve(geo[pos[(sg.index, s)]], last_read=p)


def _chain_outputs(model: Model, geo: list[LayerGeometry], family: Family, placed: Placement) -> list[LayerGeometry]:
    """A pass whose output an activation or chained operator takes over writes that operator's output:
    when it is a graph output, the pass writes to the arena, NHWC."""
    pos = {(g.subgraph, g.op_index): n for n, g in enumerate(geo)}
    for sg in model.subgraphs:
        riders = chained_ops(sg, family, placed)
        for rider in sorted(riders, key=lambda r: -geo[pos[(sg.index, r)]].position):  # chain ends first
            src = pos[(sg.index, riders[rider])]
            if geo[pos[(sg.index, rider)]].ofm_in_arena and not geo[src].ofm_in_arena:
                geo[src] = evolve(geo[src], ofm_in_arena=True)
    return geo


def _concat_slices(model: Model, geo: list[LayerGeometry], placed: Placement) -> list[LayerGeometry]:
    """Flag the passes that write their output straight into part of a concatenation's output
    ("ofm_slice"): Vela then keeps their shape (a slice is not reshaped to a deeper one)."""
    pos = {(g.subgraph, g.op_index): n for n, g in enumerate(geo)}
    for sg in model.subgraphs:
        writers: dict[int, int] = {}
        graph: Graph | None = None
        for op in sg.operators:
            if op.op != "CONCATENATION" or (sg.index, op.index) not in pos or geo[pos[(sg.index, op.index)]].kind \
                    is OpKind.CPU:
                continue
            if graph is None:
                graph = (consumers(sg), writers_of(sg, placed))
                writers = {o: p.index for p in sg.operators for o in p.outputs if o >= 0}
            for i in op.inputs:
                n = pos.get((sg.index, writers.get(i, -1)))
                if n is not None and in_place(sg, i, op.index, graph[1], graph[0]):
                    geo[n] = evolve(geo[n], flags=geo[n].flags | {"ofm_slice"})
    return geo


def _arena_boundaries(model: Model, geo: list[LayerGeometry], placed: Placement) -> list[LayerGeometry]:
    """Feature maps a CPU operator reads or writes stay in the arena, NHWC, like graph inputs and
    outputs; so does what a producer writes straight into one: through a reshape Vela removes, or as
    its part of a concatenation."""
    pos = {(g.subgraph, g.op_index): n for n, g in enumerate(geo)}
    for sg in model.subgraphs:
        cpu = [op for op in sg.operators if placed(sg, op)]
        arena = set(sg.outputs) | {i for op in cpu for i in op.inputs}
        cpu_out = {o for op in cpu for o in op.outputs}
        graph = (consumers(sg), writers_of(sg, placed))
        for op in reversed(sg.operators):
            n = pos.get((sg.index, op.index))
            if n is None or geo[n].kind is OpKind.CPU or not op.outputs or not op.inputs:
                continue
            g = geo[n]
            out_arena = op.outputs[0] in arena
            if (out_arena and not g.ofm_in_arena) or (op.inputs[0] in cpu_out and not g.ifm_in_arena):
                geo[n] = g = evolve(g, ofm_in_arena=g.ofm_in_arena or out_arena,
                                     ifm_in_arena=g.ifm_in_arena or op.inputs[0] in cpu_out)
            if not out_arena:
                continue
            if g.kind is OpKind.NOP and not g.copies:  # a removed reshape: its input is the output
                arena.add(op.inputs[0])
            elif g.op == "CONCATENATION":
                arena.update(i for i in op.inputs if in_place(sg, i, op.index, graph[1], graph[0]))
    return geo
