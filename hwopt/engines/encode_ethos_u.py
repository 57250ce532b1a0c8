"""Ethos-U per-layer weight encoding: MLW (U55/U65) or U85 brick-order streams, MLW or Fast Weight as
Vela's Size strategy picks, taken from Vela's compile where it holds them, else hwopt's encoder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwopt import isolation
from hwopt.analysis.layers import WeightLayer, to_ohwi, zero_corrected
from hwopt.background import Background
from hwopt.engines.encode_layer import LayerEncoding, finish, pack_streams
from hwopt.ir import DType, Model, Operator, Subgraph
from hwopt.targets.ethos_u import vela_blocks as vb
from hwopt.targets.ethos_u import vela_weights as vw
from hwopt.targets.ethos_u import weights as wu
from hwopt.targets.ethos_u.block_plan import LayerPlan
from hwopt.targets.target import Target


def _opt(op: Operator, name: str, default: int = 1) -> int:
    value = getattr(op.options, name, default) if op.options is not None else default
    return int(value) if value else default


def _ifm_bits(sg: Subgraph, op: Operator) -> int:
    t = sg.tensor(op.inputs[2 if op.op == "TRANSPOSE_CONV" else 0]) if op.inputs else None
    return 16 if t is not None and t.dtype == DType.INT16 else 8


def plan_of(info: vb.VelaLayerInfo) -> LayerPlan:
    """The block configurations Vela's compile chose for one layer, as the encoder takes them."""
    return LayerPlan(info.parts or ((info.config, info.stride, info.dilation),))


@dataclass
class LayerJob:
    """One layer ready to encode: the weights of each NPU operation that reads them with its block
    configuration, and Vela's streams where they were adopted (`encs`)."""

    layer: WeightLayer
    corrected: np.ndarray | None  # None: Vela's streams were checked without the weights' values (see prepare_u)
    parts: list[wu.Part]
    ifm_bits: int
    plan: LayerPlan | None
    vela: tuple[int, str] | None
    symbols: tuple[np.ndarray, int] | None
    encs: list[wu.EncodedWeights] | None = None

    @property
    def weights(self) -> int:
        return sum(int(p[0].size) for p in self.parts)


def encode_u(layer: WeightLayer, model: Model, arch: wu.EthosUArch, plan: LayerPlan | None,
             vela_parts: list[wu.StreamBytes] | None = None, vela_fast: bool = False,
             pending: vw.PendingDecodes | None = None, *, vela: tuple[int, str] | None = None,
             symbols: tuple[np.ndarray, int] | None = None, target: Target | None = None,
             expected: vw.Expectations | None = None) -> LayerEncoding:
    """One layer's streams for the block configurations of `plan` (None: hwopt's shape rule); `vela_parts`
    are Vela's own streams to adopt when they decode to the layer's weights, `vela` Vela's (bytes, format);
    `target` lets a U85 layer without Vela's format take the one Vela's default strategy picks."""
    job = prepare_u(layer, model, arch, plan, vela_parts, vela_fast, pending, vela=vela, symbols=symbols,
                    expected=expected)
    return finish_u(job, model, job.encs if job.encs is not None else
                    wu.encode_parts(job.parts, arch, job.ifm_bits, target))


def prepare_u(layer: WeightLayer, model: Model, arch: wu.EthosUArch, plan: LayerPlan | None,
              vela_parts: list[wu.StreamBytes] | None = None, vela_fast: bool = False,
              pending: vw.PendingDecodes | None = None, *, vela: tuple[int, str] | None = None,
              symbols: tuple[np.ndarray, int] | None = None, expected: vw.Expectations | None = None) -> LayerJob:
    """Everything of `encode_u` before hwopt's own encoding (which `wu.encode_parts` does, here or in a worker).

    When `expected` holds the streams of every part of the layer (worked out from its weights during the
    compile), Vela's streams are checked against those and the weights are not corrected a second time."""
    adopting = vela_parts is not None and pending is not None
    if adopting and expected is not None and not arch.is_u85 and (layer.subgraph, layer.op_index) in expected:
        parts, ifm_bits = _parts(layer, model, arch, plan, _shape_only(layer, model))
        known = expected.take_all((layer.subgraph, layer.op_index), parts, ifm_bits)
        if known is not None:
            assert vela_parts is not None and pending is not None
            job = LayerJob(layer, None, parts, ifm_bits, plan, vela, symbols)
            _adopt(job, arch, vela_parts, vela_fast, pending, known)
            return job
        # Vela's configuration is not the plan's: the streams are worked out from the weights, as below.
    corrected = zero_corrected(model, layer)
    parts, ifm_bits = _parts(layer, model, arch, plan, corrected)
    job = LayerJob(layer, corrected, parts, ifm_bits, plan, vela, symbols)
    if vela_parts is not None and pending is not None:
        _adopt(job, arch, vela_parts, vela_fast, pending, None)
    return job


def _adopt(job: LayerJob, arch: wu.EthosUArch, vela_parts: list[wu.StreamBytes], vela_fast: bool, pending: vw.PendingDecodes,
           known: list[list[vw.Expected]] | None) -> None:
    queued = len(pending.items)
    job.encs = vw.adopt_layer(job.parts, arch, job.ifm_bits, vela_parts, vela_fast, pending, known=known)
    if job.encs is None:
        del pending.items[queued:]  # hwopt encodes the layer itself: nothing of Vela's to decode


def _shape_only(layer: WeightLayer, model: Model) -> np.ndarray:
    """A stand-in for the layer's corrected weights with their shape and type and no values (no memory):
    what locating the expected streams of its parts needs; nothing is read from it."""
    return np.broadcast_to(np.zeros((), dtype=np.int32), layer.weights(model).shape)


def _parts(layer: WeightLayer, model: Model, arch: wu.EthosUArch, plan: LayerPlan | None,
           corrected: np.ndarray) -> tuple[list[wu.Part], int]:
    """(weights, config, stride, dilation) of each NPU operation that reads the layer's weights, and the IFM bits."""
    sg = model.subgraphs[layer.subgraph]
    op = sg.operators[layer.op_index]
    w = to_ohwi(corrected, layer.layout)
    depthwise = layer.op == "DEPTHWISE_CONV_2D"
    ifm_bits = _ifm_bits(sg, op)
    stride = (_opt(op, "strideH"), _opt(op, "strideW"))
    dilation = (_opt(op, "dilationHFactor"), _opt(op, "dilationWFactor"))
    out = sg.tensor(op.outputs[0]) if op.outputs else None
    if out is not None and len(out.shape) == 4 and out.shape[1] == 1 and out.shape[2] == 1:
        stride = (1, 1)  # a single output position: the stride phases collapse
    if depthwise:
        ifm = sg.tensor(op.inputs[0])
        if ifm is not None and ifm.shape and ifm.shape[-1] == 1 and w.shape[0] > 1:
            # Channel multiplier on a 1-channel IFM: the NPU runs it as an ordinary convolution.
            depthwise = False
    phases: list[np.ndarray] = []
    if layer.op == "TRANSPOSE_CONV":
        if arch.is_u85:
            phases = vb.transpose_conv_parts(w, stride)
        # U55/U65 run a transposed convolution as a convolution with the kernel rotated by 180 degrees.
        w = np.ascontiguousarray(w[:, ::-1, ::-1, :])
    parts: list[wu.Part]
    if plan is not None:
        mult = w.shape[0] // max(1, _ifm_depth(sg, op)) if depthwise else 1
        if depthwise and mult > 1 and len(plan.parts) == mult:
            # Vela runs a channel multiplier M as M depthwise convolutions: part m reads channels m, m+M, ...
            parts = [(np.ascontiguousarray(w[m::mult]), c, s, d) for m, (c, s, d) in enumerate(plan.parts)]
        elif phases and len(phases) == len(plan.parts):
            parts = [(pw, c, s, d) for pw, (c, s, d) in zip(phases, plan.parts, strict=True)]
        else:
            parts = [(w, plan.config, plan.stride, plan.dilation)]
    else:
        parts = [(w, wu.default_config(arch, w.shape, depthwise=depthwise, ifm_bits=ifm_bits), stride, dilation)]
    return parts, ifm_bits


def expect_u(layer: WeightLayer, model: Model, arch: wu.EthosUArch, plan: LayerPlan, expected: vw.Expectations) -> None:
    """Work out, into `expected`, the U55/U65 streams Vela's compile should hold for `layer` if it picks `plan`."""
    job = prepare_u(layer, model, arch, plan)
    expected.add((layer.subgraph, layer.op_index), job.parts, arch, job.ifm_bits)


def finish_u(job: LayerJob, model: Model, encs: list[wu.EncodedWeights]) -> LayerEncoding:
    """The layer's record from its encoded parts."""
    streams: list[tuple[wu.StreamBytes, int, int, int]] = []
    ok = True
    coded = 0
    fmt = ""
    for enc in encs:
        streams += [(s.data, s.weights, s.core, s.depth_offset) for s in enc.streams]
        ok = ok and enc.roundtrip_ok
        coded += enc.coded_weights
        fmt = fmt or enc.fmt.value
    config = job.parts[0][1]
    data, infos = pack_streams(streams)
    return finish(job.layer, model, job.corrected, data, infos, fmt=fmt, traversal=config.traversal.value,
                  source=config.source, coded=coded, ok=ok, vela=job.vela,
                  stream_source="vela" if job.encs is not None else "hwopt", symbols=job.symbols,
                  note=job.plan.note if job.plan is not None else None)


#: Below this many weights the worker's start-up costs more than the second core saves.
OFFLOAD_MIN_WEIGHTS = 1 << 20
WORKER_ENCODE = "hwopt.targets.ethos_u.weights:encode_parts"
WORKER_PRELOAD = ("hwopt.targets.ethos_u.weights", "ethosu.mlw_codec")


class Offload:
    """The isolation worker encodes one layer at a time (on the other core) while this process encodes
    the next ones: the streams do not depend on where they are encoded."""

    def __init__(self, arch: wu.EthosUArch, target: Target) -> None:
        self.arch, self.target = arch, target
        self.inflight: tuple[int, LayerJob, Background[list[wu.EncodedWeights]]] | None = None

    def take(self, index: int, job: LayerJob) -> bool:
        """Hand `job` (the layer at `index`) to the worker if it is free."""
        if self.inflight is not None:
            return False
        arch, target = self.arch, self.target
        self.inflight = (index, job, Background(
            lambda: isolation.call(WORKER_ENCODE, job.parts, arch, job.ifm_bits, target,
                                   library="hwopt's weight encoder")))
        return True

    def collect(self, *, wait: bool) -> tuple[int, LayerJob, list[wu.EncodedWeights]] | None:
        """The worker's layer once it is encoded (with `wait`, waiting for it)."""
        if self.inflight is None or (not wait and not self.inflight[2].done()):
            return None
        index, job, running = self.inflight
        self.inflight = None
        return index, job, running.result()

    def cancel(self) -> None:
        if self.inflight is not None:
            self.inflight[2].cancel()
            self.inflight = None


def vela_dilates_weights(model: Model, layer: WeightLayer) -> bool:
    """Dilation above 2: Vela writes the zeros of the dilated kernel into its weights (a larger kernel than
    hwopt's plan), so its streams are not the layer's; hwopt's encoder takes the layer."""
    op = model.subgraphs[layer.subgraph].operators[layer.op_index]
    return max(_opt(op, "dilationHFactor"), _opt(op, "dilationWFactor")) > 2


def _ifm_depth(sg: Subgraph, op: Operator) -> int:
    ifm = sg.tensor(op.inputs[0]) if op.inputs else None
    return int(ifm.shape[-1]) if ifm is not None and ifm.shape else 0
