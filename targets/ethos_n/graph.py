"""Ethos-N78 network front end: operations in execution order become the planner's layer list.

As the support library converts its network: a ReLU updates the clamp of the MCE layer before it
when it is that layer's only reader, else it is an identity 1x1 depthwise pass; fused-only PLE
kernels (2x2 / 3x3 stride-2 max pool, 7x7/8x8 mean, leaky ReLU, sigmoid/tanh) ride on the PLE of
the MCE layer before them when they are its only reader, else on an identity depthwise;
standalone PLE kernels (additions, 3x3 average pool, 1D max pools) are passes without MCE work;
reshapes only reinterpret. The TFLite path (`analytic.py`) and the reference adapter both build
their layers here, so `estimate_network` plans the same network the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np

from .network import NetLayer, PleLayer
from .perf import PleOp
from .plan import Kind, N78Layer, support
from .sizing import IDENTITY_WEIGHT

Shape = tuple[int, int, int]
#: PLE kernels the library runs as a standalone part (no MCE work); every other one is a fused part.
STANDALONE = frozenset({PleOp.ADDITION, PleOp.ADDITION_RESCALE, PleOp.AVGPOOL_3X3, PleOp.MAXPOOL_1D})


class OpClass(Enum):
    """How the library's network builder treats one operation."""

    MCE = "mce"  # convolution, depthwise or fully connected (`NetOp.layer`)
    RELU = "relu"  # a ReLU / ReLU6 (bounded ReLU), standalone or an operator's fused activation
    PLE = "ple"  # a PLE kernel (`NetOp.ple`): fused-only (pools, mean, sigmoid...) or standalone (`STANDALONE`)
    RESHAPE = "reshape"  # reinterprets its input: no pass
    OTHER = "other"  # runs on the NPU but is costed outside the network plan
    CPU = "cpu"  # not run by the NPU (or only estimated by the library)


@dataclass(frozen=True, eq=False)
class NetOp:
    """One operation of a network, in execution order.

    `sources` are the list indices of the operations producing its feature-map inputs;
    `graph_input` / `graph_output` mark an input or output that crosses the network's boundary.
    """

    cls: OpClass
    ifm: Shape
    ofm: Shape
    sources: tuple[int, ...] = ()
    layer: NetLayer | None = None
    ple: PleOp | None = None
    ifms: tuple[Shape, ...] = ()  # standalone PLE kernel: every input shape (default: `ifm`)
    reason: str | None = None  # CPU: why the NPU does not run it
    graph_input: bool = False  # it also reads a network input
    graph_output: bool = False


@dataclass
class NetworkLayers:
    """The planner's layer list and how each operation maps onto it."""

    layers: list[NetLayer | PleLayer] = field(default_factory=list)
    owner: dict[int, int] = field(default_factory=dict)  # op index -> index of the layer carrying its cost
    fused: dict[int, int] = field(default_factory=dict)  # op index -> op index whose pass it rides on
    reasons: dict[int, str] = field(default_factory=dict)  # op index -> why only estimated / not on the NPU


def pool_kernel(pool: str, size: tuple[int, int], stride: tuple[int, int], ifm: Shape) -> PleOp | None:
    """The library's PLE kernel for a pooling ("MAX" | "AVG") window, or None if it has none in the plan."""
    if pool == "MAX" and size == (2, 2) and stride == (2, 2):
        return PleOp.MAXPOOL_2X2
    if pool == "MAX" and size == (3, 3) and stride == (2, 2):
        return PleOp.MAXPOOL_3X3
    if pool == "AVG" and size == (3, 3) and stride == (1, 1):
        return PleOp.AVGPOOL_3X3
    if pool == "AVG" and size == ifm[:2] and size in ((7, 7), (8, 8)):
        return PleOp.MEAN_XY
    return None


def identity_layer(shape: Shape, from_npu: bool, ple: PleOp = PleOp.PASSTHROUGH,
                   ple_ofm: Shape | None = None) -> NetLayer:
    """The identity 1x1 depthwise MCE pass the library runs for a PLE operation of its own."""
    ident_w = np.full((1, 1, shape[2], 1), IDENTITY_WEIGHT, dtype=np.uint8)
    return NetLayer(N78Layer(Kind.DEPTHWISE, shape, shape), ident_w, ple_op=ple, ple_ofm=ple_ofm,
                    input_from_npu=from_npu)


class _Builder:
    """Walks the operations once; `tail` follows an MCE layer's output through ReLUs and reshapes
    while its PLE is still free to take a pooling."""

    def __init__(self, ops: Sequence[NetOp]) -> None:
        self.ops = ops
        self.out = NetworkLayers()
        self.npu = [False] * len(ops)
        self.tail: dict[int, int] = {}  # op index -> MCE op index whose free PLE its output comes from
        self.end: dict[int, int] = {}  # layer index -> op index whose output is the layer's output
        self.readers: list[list[int]] = [[] for _ in ops]
        for i, op in enumerate(ops):
            for s in dict.fromkeys(op.sources):
                self.readers[s].append(i)

    def _sole(self, i: int) -> bool:
        return len(self.readers[i]) == 1 and not self.ops[i].graph_output

    def _add(self, i: int, layer: NetLayer | PleLayer) -> None:
        self.out.owner[i] = len(self.out.layers)
        self.end[len(self.out.layers)] = i
        self.out.layers.append(layer)

    def _transparent(self, i: int) -> bool:
        """A reshape, or a ReLU in an MCE layer's clamp: its readers are its producer's readers."""
        return self.ops[i].cls in (OpClass.RESHAPE, OpClass.RELU) and i not in self.out.owner

    def _consumers(self, i: int) -> tuple[list[int], bool]:
        """Readers of op i's output through transparent operations, and whether it leaves the network."""
        found: list[int] = []
        leaves = self.ops[i].graph_output
        for r in self.readers[i]:
            if self._transparent(r):
                sub, out = self._consumers(r)
                found += sub
                leaves = leaves or out
            else:
                found.append(r)
        return found, leaves

    def _fuse(self, i: int, m: int, ple: PleOp, ofm: Shape) -> None:
        k = self.out.owner[m]
        last = self.out.layers[k]
        assert isinstance(last, NetLayer)
        self.out.layers[k] = replace(last, ple_op=ple, ple_ofm=ofm)
        self.out.fused[i] = m
        self.end[k] = i

    def step(self, i: int, op: NetOp) -> None:
        src = op.sources
        from_npu = bool(src) and not op.graph_input and all(self.npu[s] for s in src)
        passes_tail = len(src) == 1 and src[0] in self.tail and self._sole(src[0])
        if op.cls is OpClass.MCE:
            assert op.layer is not None
            self._add(i, replace(op.layer, input_from_npu=from_npu))
            reason = support(op.layer.layer)
            self.npu[i] = reason is None
            if reason is None:
                self.tail[i] = i
            else:
                self.out.reasons[i] = reason
        elif op.cls is OpClass.RELU:
            self.npu[i] = True
            if from_npu and passes_tail:  # the MCE layer's clamp takes the bounds
                self.tail[i] = self.tail[src[0]]
                self.out.fused[i] = self.tail[src[0]]
            else:  # an identity depthwise applies them
                self._add(i, identity_layer(op.ofm, from_npu))
                self.tail[i] = i
        elif op.cls is OpClass.PLE:
            assert op.ple is not None
            self.npu[i] = True
            if op.ple in STANDALONE:
                self._add(i, PleLayer(op.ple, op.ifms or (op.ifm,), op.ofm, input_from_npu=from_npu))
            elif passes_tail:
                self._fuse(i, self.tail[src[0]], op.ple, op.ofm)
            else:
                self._add(i, identity_layer(op.ifm, from_npu, op.ple, op.ofm))
        elif op.cls is OpClass.RESHAPE:
            self.npu[i] = from_npu
            if passes_tail:
                self.tail[i] = self.tail[src[0]]
        elif op.cls is OpClass.OTHER:
            self.npu[i] = True
        else:
            self.npu[i] = False
            if op.reason is not None:
                self.out.reasons[i] = op.reason

    def finish(self) -> NetworkLayers:
        """Decide each layer's output: to the NPU when every consumer runs there and it stays inside."""
        for k, i in self.end.items():
            readers, leaves = self._consumers(i)
            to_npu = bool(readers) and not leaves and all(self.npu[r] for r in readers)
            layer = self.out.layers[k]
            if layer.output_to_npu != to_npu:
                self.out.layers[k] = replace(layer, output_to_npu=to_npu)
        return self.out


def network_layers(ops: Sequence[NetOp]) -> NetworkLayers:
    """The planner's layers for operations in execution order, with fused operations folded in."""
    b = _Builder(ops)
    for i, op in enumerate(ops):
        b.step(i, op)
    return b.finish()
