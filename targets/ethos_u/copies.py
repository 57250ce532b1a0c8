"""Ethos-U operators Vela runs as memory copies (concatenation, pack, pad, reshapes it cannot alias),
with what each copies; and which producers write straight into another tensor instead of being copied."""

from __future__ import annotations

from hwopt.ir import Subgraph
from hwopt.targets.geometry import KIND_OF, LayerGeometry, OpKind, Placement, evolve, hwc

# NPU passes that write an output of their own (a table lookup included), which can write it
# straight into part of another tensor
PASS_KINDS = frozenset([OpKind.CONV, OpKind.DEPTHWISE, OpKind.FULLY_CONNECTED, OpKind.POOL, OpKind.ELEMENTWISE,
                        OpKind.LUT])
Graph = tuple[dict[int, list[int]], set[int]]
"""A subgraph's readers of each tensor (`consumers`) and the tensors NPU passes write (`_writers`)."""


def writers_of(sg: Subgraph, placed: Placement) -> set[int]:
    """Tensors written by an NPU pass, which can write straight into part of another tensor."""
    return {o for p in sg.operators if KIND_OF.get(p.op, OpKind.ELEMENTWISE) in PASS_KINDS
            and not placed(sg, p) for o in p.outputs if o >= 0}


def in_place(sg: Subgraph, tensor: int, reader: int, writers: set[int], readers: dict[int, list[int]]) -> bool:
    """Whether a tensor's producer writes it straight into the reader's output (it is read by nothing
    else and is neither a graph input nor output)."""
    return (tensor in writers and tensor not in sg.inputs and tensor not in sg.outputs
            and readers.get(tensor) == [reader])


def with_concat_copies(g: LayerGeometry, sg: Subgraph, graph: Graph) -> LayerGeometry:
    """A concatenation's inputs Vela copies into the output (a graph input or constant, a tensor
    something else reads too, or one no NPU pass writes); the others' producers write their part of
    the output directly."""
    op = sg.operators[g.op_index]
    readers, writers = graph
    inputs = set(sg.inputs)
    # a channel offset off the 16-channel bricks makes Vela store the output NHWC
    out_t = sg.tensor(op.outputs[0]) if op.outputs else None
    rank = len(out_t.shape) if out_t is not None else 4
    axis = int(getattr(op.options, "axis", -1))
    on_channels = axis in (-1, rank - 1)
    depths = [hwc(t.shape)[2] for i in op.inputs if (t := sg.tensor(i)) is not None]
    ofm_nhwc = g.ofm_in_arena or (on_channels and any(d % 16 for d in depths[:-1]))
    copies = []
    for i in op.inputs:
        t = sg.tensor(i)
        if t is None:
            continue
        if op.op != "PACK" and in_place(sg, i, op.index, writers, readers):
            continue  # (a PACK's inputs gain an axis: no producer writes into its output)
        copies.append((hwc(t.shape), t.data is not None, i in inputs or t.data is not None, ofm_nhwc))
    return evolve(g, copies=tuple(copies))


_RESHAPES = frozenset(["RESHAPE", "SQUEEZE", "EXPAND_DIMS"])


def shared_inputs_staged(g: LayerGeometry, sg: Subgraph, graph: Graph) -> LayerGeometry:
    """U85: a concatenation copies a graph input straight from the arena (NHWC), unless a reshape reads it
    too: Vela then copies from the reshape's staged (SRAM, brick-format) copy of it."""
    op = sg.operators[g.op_index]
    readers, writers = graph
    copied = [i for i in op.inputs if sg.tensor(i) is not None
              and not in_place(sg, i, op.index, writers, readers)]
    if len(copied) != len(g.copies):
        return g
    reshaped = {i for i in copied if any(sg.operators[r].op in _RESHAPES for r in readers.get(i, []))}
    copies = tuple((shape, const, io and (const or i not in reshaped), ofm_nhwc)
                   for i, (shape, const, io, ofm_nhwc) in zip(copied, g.copies, strict=True))
    return evolve(g, copies=copies)


def with_reshape_copy(g: LayerGeometry, sg: Subgraph, graph: Graph) -> LayerGeometry:
    """A reshape Vela removes, after copying its input when it cannot alias the two tensors: the
    input is a graph input or output or a constant and the output a graph output, or the input has
    other readers that keep its shape."""
    op = sg.operators[g.op_index]
    src, dst = sg.tensor(op.inputs[0]), sg.tensor(op.outputs[0]) if op.outputs else None
    if src is None or dst is None:
        return g
    i, o = op.inputs[0], op.outputs[0]
    io_src = i in sg.inputs or i in sg.outputs or src.data is not None
    # the reshape of a shared input Vela's optimiser meets first (the last in execution order) gets
    # the copy, and the copy its shape: the others alias it
    readers = graph[0].get(i, [])
    first = max((r for r in readers if sg.operators[r].op in COPYING and COPYING[sg.operators[r].op]
                 is with_reshape_copy), default=op.index)
    shared = len(readers) > 1 and tuple(src.shape) != tuple(dst.shape) and first == op.index
    if not ((io_src and o in sg.outputs) or shared):
        return g
    return evolve(g, copies=((hwc(src.shape), src.data is not None, io_src, o in sg.outputs),))


def with_pad_copies(g: LayerGeometry, sg: Subgraph, graph: Graph) -> LayerGeometry:
    """A PAD as Vela runs it: the input copied into the output (unless its producer writes it there),
    and one copy of the constant fill per padded side (left/right: output height x pad; top/bottom:
    pad x output width)."""
    op = sg.operators[g.op_index]
    pads = sg.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if pads is None or pads.data is None or pads.data.size < 4 or pads.data.ndim != 2:
        return g
    p = [[int(x) for x in row] for row in pads.data.reshape(-1, 2)]
    (top, bottom), (left, right) = (p[-3], p[-2]) if len(p) >= 3 else ((0, 0), p[-2])
    oh, ow, c = g.ofm
    copies = [] if in_place(sg, op.inputs[0], op.index, graph[1], graph[0]) else [
        (g.ifm, False, g.ifm_in_arena, g.ofm_in_arena)]
    copies += [((oh, n, c), True, True, g.ofm_in_arena) for n in (left, right) if n > 0]
    copies += [((n, ow, c), True, True, g.ofm_in_arena) for n in (top, bottom) if n > 0]
    return evolve(g, copies=tuple(copies))


# operators Vela runs as copies (or removes), with what they copy
COPYING = {"CONCATENATION": with_concat_copies, "PACK": with_concat_copies, "PAD": with_pad_copies,
           "PADV2": with_pad_copies, "RESHAPE": with_reshape_copy, "SQUEEZE": with_reshape_copy,
           "EXPAND_DIMS": with_reshape_copy}
