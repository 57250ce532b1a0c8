"""`hwopt encode`: re-encode every weight layer in the NPU's own weight format and measure it.

Ethos-U55/U65: MLW streams in brick order (one per OFM-depth slice and core); Ethos-U85:
U85 brick order, standard MLW or Fast Weight (FWD) per layer as Vela's Size strategy
picks; Ethos-N78: the driver stack's weight blob (targets/ethos_n/weight_codec.py). Each
layer's streams are decoded again and compared with the input, and the size is set
against the order-0 entropy of the weight symbols, the bound a per-symbol code can reach.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

import numpy as np

from hwopt import isolation
from hwopt.analysis.layers import WeightLayer, to_ohwi, weight_layers, zero_corrected, zero_corrected_tensor
from hwopt.analysis.stats import entropy_from_counts, value_counts
from hwopt.analysis.validate import Engine, operator_problem
from hwopt.errors import CompileError, OutputError, UnsupportedModelError, UsageError
from hwopt.fileio import refuse_inputs, staged_directory
from hwopt.format.tflite_io import read_model
from hwopt.ir import DType, Model, Operator, Subgraph, Tensor
from hwopt.isolation import Background
from hwopt.preloads import VELA_PRELOAD
from hwopt.records import OpRef, dumps
from hwopt.targets import Family, Target
from hwopt.targets.ethos_n.variants import N78Variant
from hwopt.targets.ethos_u import vela_blocks as vb
from hwopt.targets.ethos_u import vela_weights as vw
from hwopt.targets.ethos_u import weights as wu
from hwopt.targets.ethos_u.vela_engine import RegorOutput

log = logging.getLogger(__name__)

SCHEMA = "hwopt.encode/1"
BLOCK_SOURCES = ("rule", "vela")
STREAM_SOURCES = ("vela", "hwopt")
NPU_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
INT_WEIGHTS = (DType.INT8, DType.UINT8)


@dataclass(frozen=True)
class StreamInfo:
    """Where one stream of a layer sits in its emitted file."""

    offset: int
    length: int
    weights: int  # coded weights, padding included
    core: int
    depth_offset: int


@dataclass(frozen=True)
class LayerEncoding(OpRef):
    """One weight layer: sizes, structure, the bound, and whether its round trip held."""

    weight_tensor: str
    shape: list[int]
    dtype: str
    encodable: bool
    reason: str | None
    elements: int
    raw_bytes: int
    encoded_bytes: int
    bits_per_weight: float
    entropy_bits_per_weight: float
    entropy_ratio: float | None  # bits/weight over the order-0 entropy bound
    sparsity: float
    distinct_values: int
    format: str | None  # U85: Default / Fast; U55/U65: Default; N78: N78
    traversal: str | None
    block_source: str | None
    coded_weights: int  # weights in the streams, NPU zero padding included
    streams: list[StreamInfo]
    roundtrip_ok: bool
    vela_encoded_bytes: int | None = None
    vela_format: str | None = None
    stream_source: str | None = None  # "vela": taken from Vela's compiled model; "hwopt": hwopt's encoder
    _data: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class EncodeSummary:
    layers: int
    encodable_layers: int
    elements: int
    raw_bytes: int
    encoded_bytes: int
    bits_per_weight: float
    entropy_bits_per_weight: float
    roundtrip_ok: bool
    fast_layers: int
    vela_encoded_bytes: int | None = None  # Vela's model total (block source "vela")
    vela_delta: float | None = None  # (ours - Vela) / Vela


@dataclass(frozen=True)
class EncodeReport:
    schema: str
    model: str
    target: str
    family: str
    block_source: str
    layers: list[LayerEncoding]
    summary: EncodeSummary


def _opt(op: Operator, name: str, default: int = 1) -> int:
    value = getattr(op.options, name, default) if op.options is not None else default
    return int(value) if value else default


def _ifm_bits(sg: Subgraph, op: Operator) -> int:
    t = sg.tensor(op.inputs[2 if op.op == "TRANSPOSE_CONV" else 0]) if op.inputs else None
    return 16 if t is not None and t.dtype == DType.INT16 else 8


def _not_encodable(layer: WeightLayer, model: Model, reason: str) -> LayerEncoding:
    t = layer.weights(model)
    return LayerEncoding(layer.subgraph, layer.op_index, layer.op, t.name, list(t.shape), t.dtype.label, False, reason,
                         t.elements, t.data.nbytes if t.data is not None else 0, 0, 0.0, 0.0, None, 0.0, 0, None,
                         None, None, 0, [], True)


def _why_not(layer: WeightLayer, model: Model) -> str | None:
    t = layer.weights(model)
    if t.dtype.is_float:
        return f"{t.dtype.label} weights (not quantized)"
    if t.dtype not in INT_WEIGHTS:
        return f"{t.dtype.label} weights (the NPU weight decoders take int8/uint8)"
    if layer.op not in NPU_WEIGHT_OPS:
        return f"{layer.op} has no NPU weight stream"
    return None


def _n78_codec() -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """The N78 codec's modules (plan, sizing, tflite, weight_decode), loaded on first use."""
    from hwopt.targets.ethos_n import plan, sizing, tflite, weight_decode  # lazy: ~0.06 s, only for N78 targets

    return plan, sizing, tflite, weight_decode


def n78_problem(layer: WeightLayer, model: Model) -> str | None:
    """Why the N78 weight format cannot hold a layer, known without encoding it (the estimate uses it too)."""
    reason = _why_not(layer, model) or operator_problem(model, layer.subgraph, layer.op_index, Engine.ANALYTIC)
    if reason is not None:
        return reason
    plan, _, tflite, _ = _n78_codec()
    try:
        why = plan.support(tflite.n78_weights(model, layer).layer)
    except ValueError as exc:  # a geometry the N78 weight format has no layout for
        return f"ethos-n78: {exc}"
    return None if why is None else f"ethos-n78: the support library only estimates this layer: {why}"


def _pack_streams(parts: list[tuple[bytes, int, int, int]]) -> tuple[bytes, list[StreamInfo]]:
    infos, off = [], 0
    for data, weights, core, depth in parts:
        infos.append(StreamInfo(off, len(data), weights, core, depth))
        off += len(data)
    return b"".join(p[0] for p in parts), infos


#: Weights counted per bincount call (np.bincount widens its input to 8-byte integers).
HIST_BLOCK = 1 << 20


def _symbol_counts(t: Tensor, corrected: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Occurrences of each distinct corrected weight, and how many are zero (`corrected` None: the
    int32 copy is made only when the raw bytes cannot give the counts)."""
    raw = _raw_symbol_counts(t)
    if raw is not None:
        return raw
    if corrected is None:
        corrected = zero_corrected_tensor(t)
    return value_counts(corrected), int(corrected.size - np.count_nonzero(corrected))


def _raw_symbol_counts(t: Tensor) -> tuple[np.ndarray, int] | None:
    """`_symbol_counts` from the raw bytes alone, where that is possible (else None).

    When all channels share one zero point the correction only relabels the values, so one
    256-bin histogram of the raw bytes gives the same counts without touching the int32 copy.
    """
    data, q = t.data, t.quantization
    zp = q.zero_point.reshape(-1) if q is not None else np.zeros(1, dtype=np.int64)
    if data is not None and data.dtype.itemsize == 1 and data.size and (zp.size == 0 or (zp == zp[0]).all()):
        flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        hist = sum((np.bincount(flat[i : i + HIST_BLOCK], minlength=256) for i in range(0, flat.size, HIST_BLOCK)),
                   np.zeros(256, dtype=np.int64))
        zero_code = (int(zp[0]) if zp.size else 0) & 0xFF  # the byte that holds the zero point
        return hist[hist > 0], int(hist[zero_code])
    return None


def _finish(layer: WeightLayer, model: Model, corrected: np.ndarray | None, data: bytes, streams: list[StreamInfo],
            *, fmt: str, traversal: str | None, source: str | None, coded: int, ok: bool,
            vela: tuple[int, str] | None = None, stream_source: str | None = None,
            symbols: tuple[np.ndarray, int] | None = None) -> LayerEncoding:
    t = layer.weights(model)
    n = int(t.elements)
    bpw = 8.0 * len(data) / n if n else 0.0
    counts, zeros = symbols or _symbol_counts(t, corrected)  # one histogram: entropy, distinct values and zeros
    ent = entropy_from_counts(counts, n)
    return LayerEncoding(
        layer.subgraph, layer.op_index, layer.op, t.name, list(t.shape), t.dtype.label, True, None, n,
        t.data.nbytes if t.data is not None else n, len(data), bpw, ent, (bpw / ent) if ent > 0 else None,
        float(zeros) / n if n else 0.0, int(counts.size), fmt, traversal,
        source, coded, streams, ok, vela[0] if vela else None, vela[1] if vela else None, stream_source, data)


def _encode_u(layer: WeightLayer, model: Model, arch: wu.EthosUArch, vela_info: vb.VelaLayerInfo | None,
              vela_parts: list[bytes] | None = None, vela_fast: bool = False,
              pending: vw.PendingDecodes | None = None, *,
              symbols: tuple[np.ndarray, int] | None = None) -> LayerEncoding:
    sg = model.subgraphs[layer.subgraph]
    op = sg.operators[layer.op_index]
    corrected = zero_corrected(model, layer)
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
    vela = None
    # (weights, config, stride, dilation) of each NPU operation that reads this layer's weights.
    parts: list[tuple[np.ndarray, wu.BlockConfig, tuple[int, int], tuple[int, int]]]
    if vela_info is not None:
        vela = (vela_info.encoded_bytes, vela_info.weight_format)
        mult = w.shape[0] // max(1, _ifm_depth(sg, op)) if depthwise else 1
        if depthwise and mult > 1 and len(vela_info.parts) == mult:
            # Vela runs a channel multiplier M as M depthwise convolutions: part m reads channels m, m+M, ...
            parts = [(np.ascontiguousarray(w[m::mult]), c, s, d) for m, (c, s, d) in enumerate(vela_info.parts)]
        elif phases and len(phases) == len(vela_info.parts):
            parts = [(pw, c, s, d) for pw, (c, s, d) in zip(phases, vela_info.parts, strict=True)]
        else:
            parts = [(w, vela_info.config, vela_info.stride, vela_info.dilation)]
    else:
        parts = [(w, wu.default_config(arch, w.shape, depthwise=depthwise, ifm_bits=ifm_bits), stride, dilation)]
    encs = None
    if vela_parts is not None and pending is not None:
        queued = len(pending.items)
        encs = vw.adopt_layer(parts, arch, ifm_bits, vela_parts, vela_fast, pending)
        if encs is None:
            del pending.items[queued:]  # hwopt encodes the layer itself: nothing of Vela's to decode
    source = "vela" if encs is not None else "hwopt"
    if encs is None:
        encs = [wu.encode_u85(pw, arch, c, ifm_bits=ifm_bits, stride=s, dilation=d) if arch.is_u85 else
                wu.encode_u55(pw, arch, c, ifm_bits=ifm_bits, dilation=d) for pw, c, s, d in parts]
    streams: list[tuple[bytes, int, int, int]] = []
    ok = True
    coded = 0
    fmt = ""
    for enc in encs:
        streams += [(s.data, s.weights, s.core, s.depth_offset) for s in enc.streams]
        ok = ok and enc.roundtrip_ok
        coded += enc.coded_weights
        fmt = fmt or enc.fmt.value
    config = parts[0][1]
    data, infos = _pack_streams(streams)
    return _finish(layer, model, corrected, data, infos, fmt=fmt, traversal=config.traversal.value,
                   source=config.source, coded=coded, ok=ok, vela=vela, stream_source=source, symbols=symbols)


def _vela_dilates_weights(model: Model, layer: WeightLayer) -> bool:
    """Dilation above 2: Vela writes the zeros of the dilated kernel into its weights (a larger kernel than
    hwopt's plan), so its streams are not the layer's; hwopt's encoder takes the layer."""
    op = model.subgraphs[layer.subgraph].operators[layer.op_index]
    return max(_opt(op, "dilationHFactor"), _opt(op, "dilationWFactor")) > 2


def _ifm_depth(sg: Subgraph, op: Operator) -> int:
    ifm = sg.tensor(op.inputs[0]) if op.inputs else None
    return int(ifm.shape[-1]) if ifm is not None and ifm.shape else 0


def _encode_n78(layer: WeightLayer, model: Model, variant: N78Variant) -> LayerEncoding:
    """Encode as the Ethos-N support library would: its plan (stripe depth, IFM iteration size,
    Winograd or direct, fully connected padding) and the layer's requantisation in the headers."""
    plan, sizing, tflite, weight_decode = _n78_codec()
    nw = tflite.n78_weights(model, layer)
    reason = plan.support(nw.layer)
    if reason is not None:
        raise ValueError(f"the support library only estimates this layer: {reason}")
    layer_plan = plan.plan_layer(nw.layer, variant)
    enc = sizing.encode_planned(nw.weights, nw.zero_point, nw.layer, layer_plan, variant, bias=nw.bias,
                                requant=nw.requant)
    back = weight_decode.decode_weights(
        enc, shape=nw.weights.shape, variant=variant, layout=nw.layout,  # type: ignore[arg-type]
        zero_point=nw.zero_point, dtype=nw.weights.dtype, stride=nw.layer.stride, padding=nw.layer.padding,
        stripe_depth=layer_plan.stripe_depth, fully_connected=nw.layer.kind is plan.Kind.FULLY_CONNECTED,
        iteration_size=layer_plan.iteration_size, algorithm=layer_plan.algorithm)
    ok = bool(np.array_equal(np.asarray(back), nw.weights))
    del back
    data = bytes(enc.data)
    coded = int(enc.stream_bits.sum(dtype=np.int64))
    info = [StreamInfo(0, len(data), int(nw.weights.size), 0, 0)]
    # No int32 copy of the weights: the N78 takes one zero point per tensor, so the statistics come
    # from a histogram of the raw bytes.
    return _finish(layer, model, None, data, info, fmt="N78", traversal=layer_plan.algorithm.value, source=None,
                   coded=coded, ok=ok)


def encode_model(model: Model, target: Target, *, block_source: str = "rule", path: str = "",
                 vela_compiled: object | None = None, streams: str = "vela") -> EncodeReport:
    """Encode every weight layer of `model` for `target`; pure, no output written.

    With `block_source="vela"` the model is compiled with Vela to read its block
    configurations, unless `vela_compiled` (a Regor result with its database) is given. The
    compile already holds Vela's streams: with `streams="vela"` each layer Vela put on the NPU
    takes them (checked against hwopt's brick order) instead of being encoded again;
    `streams="hwopt"` encodes every layer with hwopt's own encoder.
    """

    if block_source not in BLOCK_SOURCES:
        raise UsageError(f"block source must be one of {', '.join(BLOCK_SOURCES)}, got {block_source!r}")
    if streams not in STREAM_SOURCES:
        raise UsageError(f"stream source must be one of {', '.join(STREAM_SOURCES)}, got {streams!r}")
    if model.vela_compiled:
        raise UnsupportedModelError("the model is already compiled by Vela; encode the model Vela was given")

    layers = weight_layers(model)
    family = target.family.value  # type: ignore[attr-defined]
    # What the native weight encoder (or, for N78, the layout rules) cannot take is reported per
    # layer, never passed on: mlw_codec crashes or loops on some of it.
    if family == "ethos-n78":
        reasons = [n78_problem(la, model) for la in layers]
    else:
        reasons = [_why_not(la, model) or operator_problem(model, la.subgraph, la.op_index, Engine.MLW) for la in layers]
    int_layers = [la for la in layers if la.weights(model).dtype in INT_WEIGHTS]
    if not int_layers:
        if any(la.weights(model).dtype.is_float for la in layers):
            raise UnsupportedModelError("the model has float weights only; quantize it to int8 first")
        raise UnsupportedModelError("the model has no int8/uint8 weight layers to encode")
    vela_total: int | None = None
    symbols: dict[int, tuple[np.ndarray, int] | None] = {}  # per layer, from the raw bytes (see _raw_symbol_counts)
    vela_infos: dict[int, vb.VelaLayerInfo] = {}
    located: vw.CompiledStreams | None = None
    variant, arch = target.n78, None
    if target.family is Family.ETHOS_N78:
        if block_source == "vela":
            raise UsageError("Vela block configurations apply to Ethos-U targets (Vela does not compile for Ethos-N)")
    else:
        arch = wu.arch_of(target)
        if block_source == "vela":
            if len(model.subgraphs) > 1:
                log.warning("Vela block configurations are read for subgraph 0 only")
            try:
                if vela_compiled is None:
                    vela_compiled = _compile_beside(model, path, target, layers, reasons, symbols)
                infos, vela_total = vb.configs_from_compiled(vela_compiled)
                vela_infos = dict(infos)
                # Vela's streams are located by operator index, which subgraphs share: one subgraph only.
                if streams == "vela" and len(model.subgraphs) == 1:
                    located = vw.compiled_streams(vela_compiled, u85=arch.is_u85)
            except CompileError as exc:
                # Documented fallback: without Vela's schedule the block configuration comes from the rule.
                log.warning("Vela could not compile the model (%s); using hwopt's block rule", exc)
                block_source = "rule"
    out: list[LayerEncoding] = []
    pending = vw.PendingDecodes()
    for layer, reason in zip(layers, reasons, strict=True):
        if reason is not None:
            out.append(_not_encodable(layer, model, reason))
            continue
        if variant is not None:
            try:
                enc = _encode_n78(layer, model, variant)
            except ValueError as exc:  # a geometry the N78 weight format has no layout for
                out.append(_not_encodable(layer, model, f"ethos-n78: {exc}"))
                continue
        else:
            assert arch is not None

            info = vela_infos.get(layer.op_index) if layer.subgraph == 0 else None
            vela_layer = located.layers.get(layer.op_index) if located is not None and info is not None \
                and not _vela_dilates_weights(model, layer) else None
            with isolation.subject(f"operator {layer.op} #{layer.op_index}"):
                if vela_layer is not None and located is not None:
                    pending.owner = len(out)
                    enc = _encode_u(layer, model, arch, info, vela_layer.data(located.read_only), vela_layer.fast,
                                    pending, symbols=symbols.get(len(out)))
                else:
                    enc = _encode_u(layer, model, arch, info, symbols=symbols.get(len(out)))
        if not enc.roundtrip_ok:
            log.error("round trip failed for subgraph %d op %d (%s)", layer.subgraph, layer.op_index, layer.op)
        out.append(enc)
    for i in sorted(pending.failed()):  # Vela's streams that do not decode to the layer's weights
        la = out[i]
        log.error("Vela's stream does not decode to the weights of subgraph %d op %d (%s)", la.subgraph, la.op_index,
                  la.op)
        out[i] = replace(la, roundtrip_ok=False)
    return EncodeReport(SCHEMA, path, target.name, target.family.value, block_source, out, _summary(out, vela_total))


def _file_bytes(path: str) -> bytes:
    return Path(path).read_bytes() if path else b""


def _compile_beside(model: Model, path: str, target: Target, layers: list[WeightLayer], reasons: list[str | None],
                    symbols: dict[int, tuple[np.ndarray, int] | None]) -> RegorOutput:
    """Vela's compile (with its database) in the worker, while this thread fills `symbols`: each
    encodable layer's weight histogram, which needs nothing of Vela's. The compile validates its own
    reading of the bytes, so the two threads share no lazily read model."""
    compiling = Background(lambda: vb.compile_with_db(model.source or _file_bytes(path), target))
    try:
        for i, (layer, reason) in enumerate(zip(layers, reasons, strict=True)):
            if reason is None:
                symbols[i] = _raw_symbol_counts(layer.weights(model))
    except BaseException:
        compiling.cancel()
        raise
    return compiling.result()


def _summary(layers: list[LayerEncoding], vela_total: int | None) -> EncodeSummary:
    enc = [la for la in layers if la.encodable]
    n = sum(la.elements for la in enc)
    encoded = sum(la.encoded_bytes for la in enc)
    ent = sum(la.entropy_bits_per_weight * la.elements for la in enc) / n if n else 0.0
    delta = (encoded - vela_total) / vela_total if vela_total else None
    return EncodeSummary(len(layers), len(enc), n, sum(la.raw_bytes for la in enc), encoded,
                         8.0 * encoded / n if n else 0.0, ent, all(la.roundtrip_ok for la in layers),
                         sum(1 for la in enc if la.format == "Fast"), vela_total, delta)


def encode(path: str | os.PathLike[str], target: Target, *, block_source: str | None = None,
           streams: str = "vela") -> EncodeReport:
    """Read a .tflite file and encode its weights for `target`.

    By default an Ethos-U model is encoded with the block configuration Vela chooses (so
    the streams are Vela's own), falling back to hwopt's rule when Vela cannot compile it.
    """
    if block_source is None:
        block_source = "vela" if target.family.is_ethos_u else "rule"
    if block_source == "vela" and target.family.is_ethos_u:
        isolation.prestart(*VELA_PRELOAD)  # the worker starts while the model is read
    model = read_model(Path(path))
    return encode_model(model, target, block_source=block_source, path=str(path), streams=streams)


def layer_file_name(layer: LayerEncoding) -> str:
    return f"sg{layer.subgraph}_op{layer.op_index:04d}_{layer.op.lower()}.bin"


def emit(report: EncodeReport, directory: str | os.PathLike[str], *, protect: tuple[Path, ...] = ()) -> Path:
    """Write one stream file per encoded layer and `index.json`, atomically, into `directory`."""
    out = Path(directory)
    for p in protect:
        if out.exists() and out.resolve() == Path(p).resolve():
            raise OutputError(f"refusing to write into the input path {p}")
    refuse_inputs([out / layer_file_name(la) for la in report.layers if la.encodable] + [out / "index.json"], protect)
    entries: list[dict[str, object]] = []
    index = {"schema": "hwopt.engines.encode.index/1", "target": report.target, "model": report.model, "layers": entries}
    with staged_directory(out, protect=protect) as stage:
        for la in report.layers:
            if not la.encodable:
                continue
            fname = layer_file_name(la)
            (stage / fname).write_bytes(la._data)
            entries.append({"subgraph": la.subgraph, "op_index": la.op_index, "op": la.op, "file": fname,
                                    "format": la.format, "bytes": la.encoded_bytes, "streams": la.streams})
        (stage / "index.json").write_text(dumps(index), encoding="utf-8")
    return out
