"""`hwopt compile`: audit, optional enforce pipeline, Vela, and a report a person can read.

Writes, into one output directory and only when every step succeeded:
`<model>_<target>.tflite` (the target is in the name, so two targets never overwrite each
other), `report.json`, `report.md`, `report.html` (self-contained, with plots) and
`per_layer.csv` (RFC 4180 quoting).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwopt import isolation
from hwopt.analysis.deflate import DeflateSize
from hwopt.analysis.layers import weight_layers, zero_corrected
from hwopt.engines.audit import AuditReport
from hwopt.engines.check import VELA_RULE, operator_support
from hwopt.engines.measure import Measurement, measure
from hwopt.errors import UsageError
from hwopt.ir import Model
from hwopt.preloads import VELA_COMPILE_PRELOAD
from hwopt.records import Finding, OpRef, Severity
from hwopt.targets import Target
from hwopt.targets.support import Reason, place_model

log = logging.getLogger(__name__)

SCHEMA = "hwopt.compile/1"
OUTPUT_FILES = ("report.json", "report.md", "report.html", "per_layer.csv")  # besides the compiled model
EXAMPLE_MODEL = Path(__file__).resolve().parent.parent / "example" / "example_int8.tflite"
DENSITY_LAYERS = 3  # weight-density panels in the report: the layers with most weights

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CompileLayer(OpRef):
    """One input operator after compilation: where it runs, what it costs, what it holds."""

    name: str  # the operator's first output tensor name (what Vela's per-layer CSV calls Name)
    placement: str
    cycles: int
    npu_cycles: int
    sram_access_cycles: int
    dram_access_cycles: int
    on_chip_flash_access_cycles: int
    off_chip_flash_access_cycles: int
    bound: str
    macs: int
    mac_utilisation: float | None
    staging_bytes: int
    encoded_weight_bytes: int | None
    weight_format: str | None
    sparsity: float | None
    unique_values: int | None
    max_unique_per_channel: int | None


@dataclass(frozen=True)
class CpuOperator(OpRef):
    """An operator left on the CPU, with every failing support rule and its fix (as `hwopt check` gives them)."""

    reasons: list[Reason]


@dataclass(frozen=True)
class EncodedLayer(OpRef):
    """One weight layer as Vela encoded it: its stream bytes against the order-0 entropy bound."""

    weight_tensor: str
    elements: int
    encoded_bytes: int
    bits_per_weight: float
    entropy_bits_per_weight: float  # the audit's order-0 entropy of the zero-corrected values
    entropy_ratio: float | None  # bits/weight over the entropy bound
    format: str | None


@dataclass(frozen=True)
class CompileEncoding:
    """The encoded weights of the compiled model, per layer and in total, as Vela wrote them.

    Taken from the compile itself (Vela's per-operator `weight_total_bytes` and format) and the
    audit's entropy: re-encoding with hwopt's encoder would repeat Vela's work (`hwopt encode`
    gives the streams themselves).
    """

    source: str
    layers: list[EncodedLayer]
    elements: int
    encoded_bytes: int
    bits_per_weight: float
    entropy_bits_per_weight: float


@dataclass(frozen=True)
class CompileTotals:
    cycles: int
    npu_cycles: int
    inference_s: float
    inferences_per_second: float
    macs: int
    peak_sram_bytes: int
    flash_bytes: int
    encoded_weight_bytes: int
    original_weight_bytes: int
    npu_operators: int
    cpu_operators: int
    input_bytes: int
    input_deflate_bytes: int
    output_bytes: int
    input_deflate: DeflateSize | None = None  # the DEFLATE figure with its method (exact or sampled) and bound


@dataclass(frozen=True)
class CompileReport:
    schema: str
    model: str
    target: str
    accelerator: str
    system_config: str
    memory_mode: str
    clock_hz: float
    sram_size_bytes: int | None
    pipeline: str | None
    output_model: str
    totals: CompileTotals
    layers: list[CompileLayer]
    cpu_operators: list[str]
    cpu_reasons: list[CpuOperator]
    audit_before: AuditReport
    audit_after: AuditReport | None
    enforce: Any | None
    encode: CompileEncoding | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)


@dataclass(frozen=True)
class CompileResult:
    """The report plus what the caller may want to keep in memory."""

    report: CompileReport
    model_bytes: bytes = field(repr=False)
    density: list[tuple[str, np.ndarray, np.ndarray]] = field(repr=False, default_factory=list)
    output_dir: Path | None = None  # set by `hwopt.reports.compile_outputs.write_outputs`
    files: tuple[str, ...] = ()


def cpu_operator_reasons(model: Model, target: Target, where: list[tuple[int, int]]) -> list[CpuOperator]:
    """The support model's reasons for operators Vela left on the CPU (a named fallback when no rule fails)."""
    if not where:
        return []
    placed = place_model(model, operator_support(target.family))
    out = []
    for sg, idx in where:
        op = model.subgraphs[sg].operators[idx]
        reasons = placed.get((sg, idx)) or [Reason(VELA_RULE, "Vela places it on the CPU; no rule of hwopt's support "
                                                   "model explains why", "report this model to the hwopt maintainers")]
        out.append(CpuOperator(sg, idx, op.op, reasons))
    return out


def _memory_cycles(row: Any, name: str) -> int:
    return int(row.access_cycles.get(name, 0))


def _output_name(model: Model, subgraph: int, op_index: int) -> str:
    sg = model.subgraphs[subgraph]
    op = sg.operators[op_index] if op_index < len(sg.operators) else None
    t = sg.tensor(op.outputs[0]) if op is not None and len(op.outputs) else None
    return "" if t is None else t.name


def _layers(measured: Measurement, model: Model) -> list[CompileLayer]:
    rows = []
    for r, la in measured.rows():
        rows.append(CompileLayer(
            subgraph=r.subgraph, op_index=r.op_index, op=r.op, name=_output_name(model, r.subgraph, r.op_index),
            placement=r.placement, cycles=r.cycles,
            npu_cycles=r.npu_cycles, sram_access_cycles=_memory_cycles(r, "Sram"),
            dram_access_cycles=_memory_cycles(r, "Dram"), on_chip_flash_access_cycles=_memory_cycles(r, "OnChipFlash"),
            off_chip_flash_access_cycles=_memory_cycles(r, "OffChipFlash"), bound=r.bound, macs=r.macs,
            mac_utilisation=r.mac_utilisation, staging_bytes=r.staging_bytes,
            encoded_weight_bytes=r.encoded_weight_bytes, weight_format=r.weight_format,
            sparsity=None if la is None else la.sparsity, unique_values=None if la is None else la.unique_values,
            max_unique_per_channel=None if la is None else la.max_unique_per_channel,
        ))
    return rows


def _encoding(measured: Measurement, target: Target) -> CompileEncoding:
    """Per-layer encoded weights from Vela's rows joined with the audit's weight structure."""
    layers = []
    for r, la in measured.rows():
        if la is None or not r.encoded_weight_bytes or not la.elements:
            continue
        bpw = 8.0 * r.encoded_weight_bytes / la.elements
        ent = la.entropy_bits_per_weight
        layers.append(EncodedLayer(r.subgraph, r.op_index, r.op, la.weight_tensor, la.elements, r.encoded_weight_bytes,
                                   bpw, ent, bpw / ent if ent > 0 else None, r.weight_format))
    n = sum(la.elements for la in layers)
    encoded = sum(la.encoded_bytes for la in layers)
    ent_all = sum(la.entropy_bits_per_weight * la.elements for la in layers) / n if n else 0.0
    return CompileEncoding(f"vela-regor:{target.name}", layers, n, encoded, 8.0 * encoded / n if n else 0.0, ent_all)


def _density(before: Model, after: Model) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Zero-point-corrected weights of the largest layers, before and after the pipeline."""
    pairs = []
    after_layers = {(wl.subgraph, wl.op_index): wl for wl in weight_layers(after)}
    for wl in weight_layers(before):
        t = wl.weights(before)
        if not t.dtype.is_integer or (wl.subgraph, wl.op_index) not in after_layers:
            continue
        pairs.append((t.elements, wl))
    pairs.sort(key=lambda p: (-p[0], p[1].subgraph, p[1].op_index))
    out = []
    for _, wl in pairs[:DENSITY_LAYERS]:
        label = f"{wl.op} #{wl.op_index} ({wl.weights(before).name[-40:]})"
        values = zero_corrected(before, wl)
        # Without a pipeline the model is its own "after": its values are corrected once.
        out.append((label, values, values if after is before else
                    zero_corrected(after, after_layers[(wl.subgraph, wl.op_index)])))
    return out


def output_name(model_path: Path, target: Target) -> str:
    """`<model stem>_<target>.tflite`: the target (its name, or a user descriptor file's stem) is in the name."""
    user_toml = target.source is not None and target.source.suffix.lower() == ".toml" and target.spec != target.name
    return f"{model_path.stem}_{target.source.stem if user_toml and target.source else target.name}.tflite"


def run_compile(model: str | os.PathLike[str] | None, target: Target, *, pipeline: str | None = None,
                  data: str | os.PathLike[str] | None = None, progress: Progress | None = None,
                  exact_deflate: bool = False) -> CompileResult:
    """The compile pipeline for an Ethos-U target: audit, optional enforce pipeline, Vela.

    `exact_deflate=True` makes the input's DEFLATE size exact where a large file gets a sampled estimate.

    Returns the report, the compiled model and the density panels; nothing is written (the
    outputs are rendered and written by `hwopt.reports.compile_outputs`).
    """
    step = progress or (lambda _msg: None)
    path = Path(model) if model is not None else EXAMPLE_MODEL
    tgt = target
    if not tgt.family.is_ethos_u:
        raise UsageError(f"compile drives Vela, which targets Ethos-U only; {tgt.name} is {tgt.family.value} "
                         "(use the analytic estimate or the encoder for Ethos-N)")
    if data is not None and not pipeline:
        raise UsageError("data is used by the pipeline (fidelity of the changed model): give a pipeline or no data")
    isolation.prestart(*VELA_COMPILE_PRELOAD)
    compiling = f"compiling with Vela for {tgt.name}"

    def announce(name: str) -> None:
        step("reading and auditing the model" if name == "audit" else compiling)

    measured = measure(path, tgt, action="compile", vela=not pipeline, label=str(path), progress=announce,
                       exact_deflate=exact_deflate)
    original, audit_before = measured.model, measured.audit
    assert audit_before is not None
    findings: list[Finding] = []
    working = original
    enforce_report = None
    if pipeline:
        from hwopt.engines import enforce, fidelity  # lazy: passes, encoders, fidelity (~0.1 s) only for a pipeline

        step("running the enforce pipeline")
        dataset = fidelity.load_data(data, fidelity.Runner(original.source).inputs) if data is not None else None
        working, work_bytes, enforce_report = enforce.enforce_model(original, pipeline, data=dataset, target=tgt,
                                                                    measure_encoded=False, input_name=str(path))
        findings.extend(enforce_report.findings)
        measured = measure(work_bytes, tgt, action="compile", label=str(path), exact_deflate=exact_deflate,
                           progress=lambda name: step(compiling) if name == "vela" else None)
        working = measured.model
    audit_after = measured.audit if pipeline else None
    # Findings describe the model Vela compiles: what the pipeline fixed stays in audit_before only.
    findings[:0] = (audit_after or audit_before).findings
    vela = measured.vela
    assert vela is not None
    encode_report = _encoding(measured, tgt)
    layers = _layers(measured, working)
    perf = vela.perf
    clock = float(tgt.clock_hz)
    cpu_rows = [r for r in vela.ops if r.placement == "cpu"]
    cpu_ops = [f"{r.op}#{r.op_index}" for r in cpu_rows]
    cpu_reasons = cpu_operator_reasons(working, tgt, [(r.subgraph, r.op_index) for r in cpu_rows])
    for c in cpu_reasons:
        first = c.reasons[0]
        findings.append(Finding(Severity.WARNING, "cpu-fallback", f"{c.op}#{c.op_index} runs on the CPU: {first.message} "
                                f"({first.rule}); fix: {first.fix}", c.subgraph, c.op_index))
    flash = perf.read_only_peak_bytes
    totals = CompileTotals(
        cycles=perf.cycles, npu_cycles=perf.npu_cycles, inference_s=perf.cycles / clock,
        inferences_per_second=clock / perf.cycles if perf.cycles else 0.0, macs=perf.macs,
        peak_sram_bytes=perf.peak_bytes("Sram"), flash_bytes=flash, encoded_weight_bytes=perf.encoded_weight_bytes,
        original_weight_bytes=perf.original_weight_bytes, npu_operators=perf.npu_ops, cpu_operators=perf.cpu_ops,
        input_bytes=len(original.source), input_deflate_bytes=audit_before.model.deflate_bytes or 0,
        output_bytes=len(vela.model_bytes), input_deflate=audit_before.model.deflate,
    )
    out_name = output_name(path, tgt)
    report = CompileReport(
        schema=SCHEMA, model=str(path), target=tgt.name, accelerator=vela.accelerator, system_config=vela.system_config,
        memory_mode=vela.memory_mode, clock_hz=clock, sram_size_bytes=tgt.sram_bytes, pipeline=pipeline,
        output_model=out_name, totals=totals, layers=layers, cpu_operators=cpu_ops, cpu_reasons=cpu_reasons,
        audit_before=audit_before,
        audit_after=audit_after, enforce=enforce_report, encode=encode_report, findings=findings,
    )
    return CompileResult(report, vela.model_bytes, _density(original, working))

