"""`hwopt enforce`: impose sparsity and cluster structure on an int8 TFLite model, and prove it.

The pipeline of passes (prune, cluster, repair, bias-correct) runs on the IR; the result
is checked to run in LiteRT and compile with Vela, compared against the original for
fidelity, and measured per layer (sparsity, distinct values, the order-0 entropy bound
before and after; encoded bytes after). The output model is encoded and compiled once: on
an Ethos-U target Vela's compile gives the encoded bytes, on Ethos-N78 hwopt's encoder does
and Vela (ethos-u55-128) proves the file compiles. The input's encoded bytes are measured
only when asked (`measure_input`): it costs a second encode and Vela run. The output is
written atomically, and only when everything succeeded and the accuracy drop stays within
`max_drop`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwopt import isolation
from hwopt.analysis.layers import weight_layers, zero_corrected
from hwopt.analysis.stats import WeightStats, weight_stats
from hwopt.analysis.validate import Engine, check_for_native
from hwopt.background import Background
from hwopt.engines.encode_n78 import encode_layers_n78
from hwopt.engines.fidelity import Dataset, FidelityReport, Runner, compare, load_data
from hwopt.engines.measure import measure
from hwopt.engines.promises import check_promises, keep_pruned_zeros
from hwopt.errors import UnsupportedModelError, UsageError
from hwopt.fileio import StagedWrite, atomic_write_bytes, refuse_inputs
from hwopt.format.tflite_io import read_model, serialize
from hwopt.ir import Model
from hwopt.passes.manager import Pass, PassContext, PassManager, PassRecord, format_pipeline, parse_pipeline
from hwopt.preloads import LITERT_PRELOAD
from hwopt.records import Finding, OpRef, Severity
from hwopt.targets import Target, resolve_target

log = logging.getLogger(__name__)

SCHEMA = "hwopt.enforce/1"
DEFAULT_ENCODE_TARGET = "ethos-u55-128"


@dataclass(frozen=True)
class LayerChange(OpRef):
    """One weight layer before and after the pipeline."""

    weight_tensor: str
    sparsity_before: float
    sparsity_after: float
    unique_before: int
    unique_after: int
    max_unique_per_channel_before: int
    max_unique_per_channel_after: int
    weights_changed: int
    entropy_bytes_before: int  # order-0 entropy bound of the weight values (what a per-symbol code can reach)
    entropy_bytes_after: int
    encoded_bytes_before: int | None  # None unless the input was measured (`measure_input`)
    encoded_bytes_after: int | None


@dataclass(frozen=True)
class EncodedTotals:
    """Encoded weight bytes of the whole model after (and, when measured, before), Vela's own
    totals, and the order-0 entropy bound of both."""

    target: str
    source: str  # which encoder measured `before`/`after` (and the per-layer figures)
    before: int | None  # None: the input was not encoded (`measure_input` off)
    after: int
    vela_target: str | None  # the Ethos-U configuration Vela compiled the model(s) for
    vela_before: int | None  # Vela's perf_report.encodedWeights; None: the input was not compiled
    vela_after: int | None
    entropy_before: int  # bytes: sum over the layers of their order-0 entropy bound
    entropy_after: int

    @property
    def ratio(self) -> float | None:
        return self.before / self.after if self.before and self.after else None

    @property
    def vela_ratio(self) -> float | None:
        return self.vela_before / self.vela_after if self.vela_before and self.vela_after else None


@dataclass(frozen=True)
class EnforceReport:
    schema: str
    input: str
    output: str | None
    pipeline: str
    passes: list[PassRecord]
    layers: list[LayerChange]
    encoded: EncodedTotals | None
    fidelity: FidelityReport | None
    max_drop: float | None
    written: bool
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)


# --------------------------------------------------------------------------- encoded bytes


@dataclass(frozen=True)
class EncodedSizes:
    """Encoded weight-stream bytes per TFLite operator index (subgraph 0) and in total."""

    per_op: dict[int, int]
    total: int
    source: str


def vela_encoded_sizes(model_bytes: bytes, target: Target) -> EncodedSizes:
    """Vela's own encoded weight-stream bytes per operator (`weight_total_bytes`) and in total."""
    result = measure(model_bytes, target, action="enforce", audit=False).vela
    assert result is not None
    per_op = {r.op_index: r.encoded_weight_bytes for r in result.ops if r.encoded_weight_bytes and r.subgraph == 0}
    return EncodedSizes(per_op, result.perf.encoded_weight_bytes, f"vela-regor:{target.name}")


def hwopt_encoded_sizes(model: Model, target: Target) -> EncodedSizes:
    """The one place enforce measures per-layer encoded weight bytes (hwopt's encoder, for an Ethos-N78
    target: on Ethos-U, Vela's compile is the encode). The N78 layer encoder alone, not `encode_model`,
    whose Ethos-U machinery would load with every enforce."""
    if target.n78 is None:
        raise UsageError(f"hwopt's encoder sizes weights for Ethos-N78 targets here, not {target.name}")
    layers = [la for la in encode_layers_n78(model, target.n78) if la.encodable]
    per_op = {la.op_index: la.encoded_bytes for la in layers if la.subgraph == 0}
    return EncodedSizes(per_op, sum(la.encoded_bytes for la in layers), f"hwopt.encode:{target.name}")


# --------------------------------------------------------------------------- the command


def check_enforceable(model: Model) -> None:
    """Enforce needs an int8/uint8 model with weights: UnsupportedModelError otherwise."""
    if model.vela_compiled:
        raise UnsupportedModelError("model was already compiled by Vela; enforce the model given to Vela instead")
    layers = weight_layers(model)
    if not layers:
        raise UnsupportedModelError("model has no weight layers to enforce structure on")
    if any(wl.weights(model).dtype.is_float for wl in layers):
        raise UnsupportedModelError("float model: enforce works on int8 (quantized) models; quantize it first")


def _entropy_bytes(stats: WeightStats) -> int:
    return math.ceil(stats.entropy_bits * stats.elements / 8)


def _layer_changes(before: Model, after: Model) -> list[LayerChange]:
    """Structure of every weight layer before and after (encoded bytes are filled in by the caller)."""
    out = []
    after_layers = {(wl.subgraph, wl.op_index): wl for wl in weight_layers(after)}
    for wl in weight_layers(before):
        wa = after_layers.get((wl.subgraph, wl.op_index))
        if wa is None:
            continue
        cb, ca = zero_corrected(before, wl), zero_corrected(after, wa)
        sb = weight_stats(cb, wl.out_axis, wl.in_axis)
        sa = weight_stats(ca, wa.out_axis, wa.in_axis)
        out.append(LayerChange(
            wl.subgraph, wl.op_index, wl.op, wl.weights(before).name, sb.sparsity, sa.sparsity,
            sb.unique_values, sa.unique_values, sb.max_unique_per_channel, sa.max_unique_per_channel,
            int(np.count_nonzero(cb != ca)) if cb.shape == ca.shape else -1,
            _entropy_bytes(sb), _entropy_bytes(sa),
            None, None,
        ))
    return out


def _encoded(model: Model, model_bytes: bytes, enc_target: Target, vela_target: Target) -> tuple[EncodedSizes, int]:
    """One encode and one Vela compile of a model: (per-layer encoded sizes, Vela's total).

    On an Ethos-U target Vela's compile is the encode (hwopt's encoder gives the same streams);
    on Ethos-N78 hwopt's encoder sizes the weights and Vela proves the file compiles for Ethos-U.
    """
    vela = vela_encoded_sizes(model_bytes, vela_target)
    if enc_target.family.is_ethos_u:
        return vela, vela.total
    return hwopt_encoded_sizes(model, enc_target), vela.total


@contextlib.contextmanager
def litert_worker() -> Iterator[isolation.Worker]:
    """A worker of enforce's own for LiteRT (the fidelity check), so that LiteRT runs beside Vela's
    compile in the shared worker; started at once, it loads LiteRT while the caller works."""
    worker = isolation.Worker()
    if isolation.uses_worker():
        worker.start(LITERT_PRELOAD)
    try:
        yield worker
    finally:
        worker.close()


def enforce_model(model: Model, pipeline: str | Sequence[Pass], *, data: Dataset | None = None,
                  calibration: Dataset | None = None, target: Target | None = None, max_drop: float | None = None,
                  measure_encoded: bool = True, measure_input: bool = False, input_name: str = "",
                  litert: isolation.Worker | None = None,
                  source_bytes: bytes | None = None,
                  on_bytes: Callable[[bytes], None] | None = None) -> tuple[Model, bytes, EnforceReport]:
    """Run the pipeline on a copy of `model`; return the new model, its bytes and the report (nothing written).

    `measure_encoded` encodes and compiles the new model (once); `measure_input` also the input,
    for encoded bytes before and after from the same encoder and Vela. `litert`: the worker
    LiteRT runs in (default: one of its own, see `litert_worker`). `source_bytes`: the flatbuffer
    `model` was read from, when the caller knows it is unedited (else its state is serialized).
    `on_bytes` hears the new model's bytes as soon as they exist (the caller may start writing them).
    """
    if litert is None:
        with litert_worker() as own:
            return enforce_model(model, pipeline, data=data, calibration=calibration, target=target,
                                 max_drop=max_drop, measure_encoded=measure_encoded, measure_input=measure_input,
                                 input_name=input_name, litert=own, source_bytes=source_bytes,
                                 on_bytes=on_bytes)
    if max_drop is not None and not 0.0 <= max_drop <= 1.0:
        raise UsageError(f"max_drop must lie in [0, 1], got {max_drop}")
    check_enforceable(model)
    # Fail before the passes run: the result goes to LiteRT (fidelity) and, when measured, to Vela;
    # the passes change weights, never what those two refuse (shapes, types, operators).
    check_for_native(model, Engine.LITERT)
    if measure_encoded:
        check_for_native(model, Engine.VELA)
    passes = parse_pipeline(pipeline) if isinstance(pipeline, str) else list(pipeline)
    original = source_bytes if source_bytes is not None else serialize(model)
    calib = calibration or data
    ctx = PassContext(reference=original,
                      calibration=None if calib is None else {str(i): a for i, a in enumerate(calib.inputs)},
                      target=target)

    passes = [p.with_context(ctx) for p in keep_pruned_zeros(passes)]
    work = read_model(original)
    work.path = model.path
    result = PassManager(passes).run(work)
    records = result.records
    new_bytes = result.model_bytes or serialize(result.model)  # the last verification's bytes
    del work, result  # the new model is read back from its bytes: the passes' copy of the weights goes
    new_model = read_model(new_bytes)
    enc_target = target or resolve_target(DEFAULT_ENCODE_TARGET)
    vela_target = enc_target if enc_target.family.is_ethos_u else resolve_target(DEFAULT_ENCODE_TARGET)
    # Vela compiles the new model in the shared worker while LiteRT runs both models in its own
    # (the result must run there too) and this process measures the layers.
    compiling = Background(lambda: _encoded(new_model, new_bytes, enc_target, vela_target)) if measure_encoded else None
    fidelity = Background(lambda: compare(original, new_bytes, data, worker=litert))
    try:
        if on_bytes is not None:
            on_bytes(new_bytes)
        layers = _layer_changes(model, new_model)
        findings: list[Finding] = check_promises(new_model, passes)
        fid = fidelity.result()
    except BaseException:
        litert.interrupt()  # a LiteRT call still running stops at once
        with contextlib.suppress(BaseException):
            fidelity.result()
        if compiling is not None:
            compiling.cancel()
        raise
    totals = None
    if compiling is not None:
        enc_a, vela_a = compiling.result()
        enc_b, vela_b = _encoded(model, original, enc_target, vela_target) if measure_input else (None, None)
        layers = [dataclasses.replace(la, encoded_bytes_before=enc_b.per_op.get(la.op_index) if enc_b else None,
                                      encoded_bytes_after=enc_a.per_op.get(la.op_index))
                  if la.subgraph == 0 else la for la in layers]
        totals = EncodedTotals(enc_target.name, enc_a.source, enc_b.total if enc_b else None, enc_a.total,
                               vela_target.name, vela_b, vela_a, sum(la.entropy_bytes_before for la in layers),
                               sum(la.entropy_bytes_after for la in layers))
    if fid.source == "random":
        findings.append(Finding(Severity.WARNING, "random-data",
                                "fidelity measured on random inputs over the quantized range, not on real data"))
    drop = fid.drop
    if max_drop is not None and drop is not None and drop > max_drop + 1e-12:
        what = "accuracy drop" if fid.accuracy_drop is not None else "top-1 disagreement"
        findings.append(Finding(Severity.ERROR, "max-drop", f"{what} {drop:.4f} exceeds --max-drop {max_drop:.4f}; nothing written"))
    report = EnforceReport(
        schema=SCHEMA, input=input_name, output=None, pipeline=format_pipeline(passes), passes=records,
        layers=layers,
        encoded=totals,
        fidelity=fid, max_drop=max_drop, written=False, findings=findings,
    )
    return new_model, new_bytes, report


def enforce(model_path: str | os.PathLike[str], output: str | os.PathLike[str], pipeline: str | Sequence[Pass], *,
            data: str | os.PathLike[str] | None = None, calibration: str | os.PathLike[str] | None = None,
            target: Target | None = None, max_drop: float | None = None, measure_encoded: bool = True,
            measure_input: bool = False) -> EnforceReport:
    """Read, enforce and (when nothing failed) atomically write the model; the API behind `hwopt enforce`."""
    src, out = Path(model_path), Path(output)
    inputs = (src, data, calibration)
    refuse_inputs([out], inputs)
    protect = tuple(Path(p) for p in inputs if p is not None)
    # The new model is written to a temporary file while Vela compiles it, and put in place only
    # when everything passed.
    staged: list[StagedWrite] = []
    try:
        with litert_worker() as litert:
            model = read_model(src)
            runner_inputs = Runner(model.source, worker=litert).inputs if (data or calibration) else []
            ds = load_data(data, runner_inputs) if data else None
            cal = load_data(calibration, runner_inputs) if calibration else None
            _, new_bytes, report = enforce_model(
                model, pipeline, data=ds, calibration=cal, target=target, max_drop=max_drop,
                measure_encoded=measure_encoded, measure_input=measure_input, input_name=str(src), litert=litert,
                source_bytes=model.source or None,
                on_bytes=lambda new: staged.append(StagedWrite(out, new, protect=protect)))
        if report.failed:
            return report
        if staged:
            staged[0].commit()
        else:
            atomic_write_bytes(out, new_bytes, protect=protect)
    finally:
        for write in staged:
            write.discard()  # nothing once committed
    return dataclasses.replace(report, output=str(out), written=True)
