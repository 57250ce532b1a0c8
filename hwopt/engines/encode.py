"""`hwopt encode`: re-encode every weight layer in the NPU's own weight format, check each round trip
and measure it; the per-family encoders are in encode_ethos_u.py and encode_n78.py."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hwopt import isolation
from hwopt.analysis.layers import WeightLayer, weight_layers
from hwopt.analysis.validate import Engine, operator_problem
from hwopt.background import Background
from hwopt.engines.encode_ethos_u import (
    OFFLOAD_MIN_WEIGHTS,
    WORKER_PRELOAD,
    Offload,
    encode_u,
    expect_u,
    finish_u,
    plan_of,
    prepare_u,
    vela_dilates_weights,
)
from hwopt.engines.encode_layer import INT_WEIGHTS, LayerEncoding, not_encodable, raw_symbol_counts, weight_problem
from hwopt.engines.encode_n78 import encode_or_report_n78, n78_problem
from hwopt.errors import CompileError, OutputError, UnsupportedModelError, UsageError
from hwopt.fileio import refuse_inputs, staged_directory
from hwopt.format.tflite_io import read_model
from hwopt.ir import Model
from hwopt.preloads import VELA_PRELOAD
from hwopt.records import dumps
from hwopt.targets import Family, Target
from hwopt.targets.ethos_n.variants import N78Variant
from hwopt.targets.ethos_u import vela_blocks as vb
from hwopt.targets.ethos_u import vela_weights as vw
from hwopt.targets.ethos_u import weights as wu
from hwopt.targets.ethos_u.block_plan import LayerPlan, search_plans
from hwopt.targets.ethos_u.vela_engine import RegorOutput

log = logging.getLogger(__name__)

SCHEMA = "hwopt.encode/1"
BLOCK_SOURCES = ("rule", "vela")
STREAM_SOURCES = ("vela", "hwopt")


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


def encode_model(model: Model, target: Target, *, block_source: str = "rule", path: str = "",
                 vela_compiled: object | None = None, streams: str = "vela", keep_worker: bool = True) -> EncodeReport:
    """Encode every weight layer of `model` for `target`; pure, no output written.

    With `block_source="rule"` an Ethos-U layer takes the block configuration hwopt's block searches
    pick (the one Vela picks, `block_plan`), with no Vela compile. With `block_source="vela"` the
    model is compiled with Vela to read its block configurations, unless `vela_compiled` (a Regor
    result with its database) is given. The compile already holds Vela's streams: with
    `streams="vela"` each layer Vela put on the NPU takes them (checked against hwopt's brick
    order) instead of being encoded again; `streams="hwopt"` encodes every layer with hwopt's own encoder.
    `keep_worker=False` (a command that ends after this encode) stops the shared worker as soon as Vela's
    compile has answered when no stream is expected to need Vela's decoder (`vela_weights.decoded_whole`):
    its exit then overlaps the checks, and it loads no codec for nothing; a decode still needed starts it again.
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
        reasons = [weight_problem(la, model) or operator_problem(model, la.subgraph, la.op_index, Engine.MLW) for la in layers]
    int_layers = [la for la in layers if la.weights(model).dtype in INT_WEIGHTS]
    if not int_layers:
        if any(la.weights(model).dtype.is_float for la in layers):
            raise UnsupportedModelError("the model has float weights only; quantize it to int8 first")
        raise UnsupportedModelError("the model has no int8/uint8 weight layers to encode")
    vela_total: int | None = None
    symbols: dict[int, tuple[np.ndarray, int] | None] = {}  # per layer, from the raw bytes (see raw_symbol_counts)
    vela_infos: dict[int, vb.VelaLayerInfo] = {}
    plans: dict[tuple[int, int], LayerPlan] = {}
    located: vw.CompiledStreams | None = None
    expected: vw.Expectations | None = None
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
                    if streams == "vela" and len(model.subgraphs) == 1 and not arch.is_u85:
                        expected = vw.Expectations()
                    vela_compiled = _compile_beside(model, path, target, layers, reasons, symbols, arch, expected)
                    if not keep_worker and not any(vw.decoded_whole(la.weights(model).elements, arch)
                                                   for la, r in zip(layers, reasons, strict=True) if r is None):
                        _stop_worker()  # nothing left for it: it ends while the streams are checked
                infos, vela_total = vb.configs_from_compiled(vela_compiled)
                vela_infos = dict(infos)
                # Vela's streams are located by operator index, which subgraphs share: one subgraph only.
                if streams == "vela" and len(model.subgraphs) == 1:
                    located = vw.compiled_streams(vela_compiled, u85=arch.is_u85)
            except CompileError as exc:
                # Documented fallback: without Vela's schedule the block configuration comes from the rule.
                log.warning("Vela could not compile the model (%s); using hwopt's block search", exc)
                block_source = "rule"
        if block_source == "rule":
            plans = search_plans(model, target, [la for la, r in zip(layers, reasons, strict=True) if r is None])
    out: list[LayerEncoding | None] = []
    pending = vw.PendingDecodes()
    offload = None
    if arch is not None and plans and isolation.uses_worker() and sum(
            la.weights(model).elements for la, r in zip(layers, reasons, strict=True) if r is None) >= OFFLOAD_MIN_WEIGHTS:
        offload = Offload(arch, target)
    try:
        _encode_layers(model, target, layers, reasons, out, arch, variant, vela_infos, plans, located, pending, symbols,
                       offload, expected)
        done = offload.collect(wait=True) if offload is not None else None
        if done is not None:
            out[done[0]] = finish_u(done[1], model, done[2])
    except BaseException:
        if offload is not None:
            offload.cancel()
        raise
    result = [la for la in out if la is not None]
    assert len(result) == len(out)
    for la in result:
        if not la.roundtrip_ok:
            log.error("round trip failed for subgraph %d op %d (%s)", la.subgraph, la.op_index, la.op)
    for i in sorted(pending.failed()):  # Vela's streams that do not decode to the layer's weights
        la = result[i]
        log.error("Vela's stream does not decode to the weights of subgraph %d op %d (%s)", la.subgraph, la.op_index,
                  la.op)
        result[i] = replace(la, roundtrip_ok=False)
    return EncodeReport(SCHEMA, path, target.name, target.family.value, block_source, result,
                        _summary(result, vela_total))


def _encode_layers(model: Model, target: Target, layers: list[WeightLayer], reasons: list[str | None], out: list[LayerEncoding | None],
                   arch: wu.EthosUArch | None, variant: N78Variant | None, vela_infos: dict[int, vb.VelaLayerInfo],
                   plans: dict[tuple[int, int], LayerPlan], located: vw.CompiledStreams | None,
                   pending: vw.PendingDecodes, symbols: dict[int, tuple[np.ndarray, int] | None],
                   offload: Offload | None, expected: vw.Expectations | None = None) -> None:
    """Encode each layer into `out`, in order; a layer handed to `offload` holds its place with None."""
    for layer, reason in zip(layers, reasons, strict=True):
        if offload is not None and (done := offload.collect(wait=False)) is not None:
            out[done[0]] = finish_u(done[1], model, done[2])
        if variant is not None:
            enc = encode_or_report_n78(layer, model, variant, reason)
        elif reason is not None:
            enc = not_encodable(layer, model, reason)
        else:
            assert arch is not None

            info = vela_infos.get(layer.op_index) if layer.subgraph == 0 else None
            plan = plan_of(info) if info is not None else plans.get((layer.subgraph, layer.op_index))
            vela = (info.encoded_bytes, info.weight_format) if info is not None else None
            vela_layer = located.layers.get(layer.op_index) if located is not None and info is not None \
                and not vela_dilates_weights(model, layer) else None
            with isolation.subject(f"operator {layer.op} #{layer.op_index}"):
                if vela_layer is not None and located is not None:
                    pending.owner = len(out)
                    enc = encode_u(layer, model, arch, plan, vela_layer.data(located.read_only), vela_layer.fast,
                                   pending, vela=vela, symbols=symbols.get(len(out)), expected=expected)
                elif offload is not None:
                    job = prepare_u(layer, model, arch, plan, vela=vela, symbols=symbols.get(len(out)))
                    if offload.take(len(out), job):
                        out.append(None)  # the worker encodes it
                        continue
                    enc = finish_u(job, model, wu.encode_parts(job.parts, arch, job.ifm_bits, target))
                else:
                    enc = encode_u(layer, model, arch, plan, vela=vela, symbols=symbols.get(len(out)), target=target)
        out.append(enc)


def _stop_worker() -> None:
    """Stop the shared worker in a thread beside the caller's work; a call made meanwhile waits for it to
    be gone, then starts a new one."""
    threading.Thread(target=isolation.worker().close, name="hwopt-stop-worker", daemon=True).start()


def _file_bytes(path: str) -> bytes:
    return Path(path).read_bytes() if path else b""


def _compile_beside(model: Model, path: str, target: Target, layers: list[WeightLayer], reasons: list[str | None],
                    symbols: dict[int, tuple[np.ndarray, int] | None], arch: wu.EthosUArch,
                    expected: vw.Expectations | None) -> RegorOutput:
    """Vela's compile (with its database) in the worker, while this thread fills `symbols`: each
    encodable layer's weight histogram, which needs nothing of Vela's; then, until the compile ends,
    `expected`: the streams hwopt's block plan predicts (what checking Vela's streams needs). The compile
    validates its own reading of the bytes, so the two threads share no lazily read model."""
    compiling = Background(lambda: vb.compile_with_db(model.source or _file_bytes(path), target))
    try:
        encodable = [la for la, r in zip(layers, reasons, strict=True) if r is None]
        for i, (layer, reason) in enumerate(zip(layers, reasons, strict=True)):
            if reason is None:
                symbols[i] = raw_symbol_counts(layer.weights(model))
        if expected is not None and not compiling.done():
            try:
                plans = search_plans(model, target, encodable)
            except Exception:  # no plan only means no head start: the checks run after the compile
                log.debug("no block plan to work out Vela's streams from", exc_info=True)
                plans = {}
            for layer in encodable:
                plan = plans.get((layer.subgraph, layer.op_index))
                if compiling.done():
                    break  # what is left is worked out after the compile, as without a plan
                if plan is not None and not vela_dilates_weights(model, layer):
                    expect_u(layer, model, arch, plan, expected)
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
           streams: str = "vela", keep_worker: bool = True) -> EncodeReport:
    """Read a .tflite file and encode its weights for `target`.

    By default ("vela") an Ethos-U model is compiled with Vela and takes Vela's own block
    configurations and streams (each checked against hwopt's brick order): faster than hwopt's
    encoder and exact. "rule" encodes with the configurations hwopt's block searches pick,
    without compiling (also the fallback when Vela cannot compile the model). `keep_worker`: see `encode_model`.
    """
    if block_source is None:
        block_source = "vela" if target.family.is_ethos_u else "rule"
    if block_source == "rule" and target.family.is_ethos_u and _large(path):
        isolation.prestart(*WORKER_PRELOAD)  # it encodes every other layer: started while the model is read
    if block_source == "vela" and target.family.is_ethos_u:
        isolation.prestart(*VELA_PRELOAD)  # the worker starts while the model is read
    model = read_model(Path(path))
    return encode_model(model, target, block_source=block_source, path=str(path), streams=streams,
                        keep_worker=keep_worker)


def _large(path: str | os.PathLike[str]) -> bool:
    """A file with enough weights that encoding on two cores pays for the worker's start."""
    try:
        return os.stat(path).st_size >= OFFLOAD_MIN_WEIGHTS
    except OSError:
        return False


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
