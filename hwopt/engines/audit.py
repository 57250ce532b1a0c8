"""`hwopt audit`: does the int8 file still carry the sparsity and clusters training put in?

Measures every weight layer of the deployed model relative to its zero points (per output
channel, since per-channel scales make clusters visible only there), and turns unmet
expectations into error findings.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwopt.analysis.deflate import DeflateSize
from hwopt.analysis.deflate import deflate_size as deflate_size  # re-exported: part of the audit API
from hwopt.analysis.deflate_core import Compressing
from hwopt.analysis.deflate_job import DeflateJob
from hwopt.analysis.histogram import histogram_stats_many
from hwopt.analysis.layers import WeightLayer, weight_layers, zero_corrected
from hwopt.analysis.stats import WeightStats, palette_fit, weight_stats
from hwopt.errors import UsageError
from hwopt.format.reader import read_model
from hwopt.ir import DType, Model, Tensor
from hwopt.records import Finding, OpRef, Severity

SCHEMA = "hwopt.audit/1"
# Edge ops that convert float I/O to the integer graph; float tensors there are expected.
EDGE_OPS = {"QUANTIZE", "DEQUANTIZE"}


@dataclass(frozen=True)
class Expectations:
    """What the user says the model should show; unmet ones become error findings."""

    sparsity: float | None = None
    clusters: int | None = None
    per_channel: bool = False
    int8: bool = False

    def __post_init__(self) -> None:
        if self.sparsity is not None and not 0.0 <= self.sparsity <= 1.0:
            raise UsageError(f"expect_sparsity must lie in [0, 1], got {self.sparsity}")
        if self.clusters is not None and not 1 <= self.clusters <= 65536:
            raise UsageError(f"expect_clusters must be a positive count, got {self.clusters}")


@dataclass(frozen=True)
class LayerAudit(OpRef):
    """The audit of one weight layer: structure of its stored weights and the MACs of its operator."""

    weight_tensor: str
    shape: list[int]
    dtype: str
    quantization: str
    sparsity: float
    zero_channels: int
    unique_values: int
    max_unique_per_channel: int
    macs: int
    elements: int
    channels: int
    zero_points: list[int]
    sparse_2_4: bool | None
    groups_2_4_ok: float | None
    palette: int | None
    entropy_bits_per_weight: float


@dataclass(frozen=True)
class ModelInfo:
    """The audited file: sizes, operators, and what runs in floating point."""

    path: str
    bytes: int
    deflate_bytes: int | None  # None: not measured (callers that report no compressed size skip the zlib pass)
    deflate: DeflateSize | None  # the same figure with its method (exact or sampled) and error bound
    subgraphs: int
    operators: int
    vela_compiled: bool
    description: str
    operator_counts: dict[str, int]
    float_operators: list[str]
    activation_dtypes: list[str]


@dataclass(frozen=True)
class Summary:
    """Totals and maxima over every weight layer of the model."""

    weight_elements: int
    weight_bytes: int
    sparsity: float
    max_unique_per_channel: int
    max_unique_per_tensor: int
    layers: int
    macs: int
    zero_channels: int


@dataclass(frozen=True)
class AuditReport:
    """The `hwopt.audit/1` report: the model, one record per weight layer, the summary and findings."""

    schema: str
    model: ModelInfo
    layers: list[LayerAudit]
    summary: Summary
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)


def _row_zero_points(layer: WeightLayer, t: Tensor) -> np.ndarray | None:
    """Zero points per output channel of 8-bit weights (one for all), or None for other tensors."""
    if t.dtype not in (DType.INT8, DType.UINT8) or t.data is None:
        return None
    q = t.quantization
    zp = np.zeros(1, np.int64) if q is None or q.zero_point.size == 0 else q.zero_point.astype(np.int64)
    if int(zp.min()) == int(zp.max()):
        return zp[:1]
    if layer.out_axis is not None and q is not None and q.quantized_dimension == layer.out_axis:
        return zp
    return None  # zero points along another axis: the general path handles them


def _layer_stats(model: Model, layers: list[WeightLayer]) -> list[WeightStats]:
    """Structure of every layer's stored weights; the 8-bit ones from histograms, measured together."""
    stats: list[WeightStats | None] = [None] * len(layers)
    jobs, where = [], []
    for i, layer in enumerate(layers):
        t = layer.weights(model)  # resolved here: the lazy IR is read on this thread only
        row_zps = _row_zero_points(layer, t)
        if row_zps is not None:
            # One 256-bin histogram per channel of the stored bytes gives every figure.
            jobs.append((np.asarray(t.data), row_zps, layer.out_axis, layer.in_axis))
            where.append(i)
        else:
            corrected = zero_corrected(model, layer) if t.dtype.is_integer else np.asarray(t.data)
            stats[i] = weight_stats(corrected, layer.out_axis, layer.in_axis)
    for i, st in zip(where, histogram_stats_many(jobs), strict=True):
        stats[i] = st
    return [st for st in stats if st is not None]


def _audit_layer(model: Model, layer: WeightLayer, st: WeightStats) -> LayerAudit:
    t = layer.weights(model)
    q = t.quantization
    quant = "none" if q is None or t.dtype.is_float else q.granularity
    zps = sorted(set(q.zero_point.tolist())) if q is not None else []
    return LayerAudit(
        subgraph=layer.subgraph, op_index=layer.op_index, op=layer.op, weight_tensor=t.name,
        shape=list(t.shape), dtype=t.dtype.label, quantization=quant, sparsity=st.sparsity,
        zero_channels=st.zero_channels, unique_values=st.unique_values,
        max_unique_per_channel=st.max_unique_per_channel, macs=layer.macs, elements=st.elements,
        channels=st.channels, zero_points=zps[:8], sparse_2_4=st.sparse_2_4, groups_2_4_ok=st.groups_2_4_ok,
        palette=palette_fit(st.unique_values), entropy_bits_per_weight=st.entropy_bits,
    )


def _structure_findings(layers: list[LayerAudit]) -> list[Finding]:
    out = []
    for la in layers:
        per_ch_elems = la.elements // max(la.channels, 1)
        if la.zero_channels:
            out.append(Finding(Severity.INFO, "zero-channels",
                               f"{la.op} #{la.op_index}: {la.zero_channels} of {la.channels} output channels are all zero",
                               la.subgraph, la.op_index))
        # Clusters survive per channel but per-channel scales spread them over many int8
        # values per tensor: an Ethos-U weight stream (palette <= 32) gains nothing.
        if la.max_unique_per_channel <= 16 < per_ch_elems and la.unique_values > 32:
            out.append(Finding(Severity.WARNING, "clusters-split-by-quantization",
                               f"{la.op} #{la.op_index}: <= {la.max_unique_per_channel} values per channel but "
                               f"{la.unique_values} per tensor; the Ethos-U palette (32 per stream) cannot use the clusters "
                               "(hwopt enforce --granularity stream restores them)",
                               la.subgraph, la.op_index))
    return out


def _dtype_findings(model: Model, exp: Expectations, layers: list[LayerAudit], info: ModelInfo) -> list[Finding]:
    out = []
    for name in info.float_operators:
        sev = Severity.ERROR if exp.int8 else Severity.WARNING
        out.append(Finding(sev, "float-operator", f"operator {name} computes in floating point (CPU fallback on an NPU)"))
    if exp.int8:
        for la in layers:
            if la.dtype != "int8":
                out.append(Finding(Severity.ERROR, "expect-int8",
                                   f"{la.op} #{la.op_index}: weights are {la.dtype}, expected int8",
                                   la.subgraph, la.op_index))
    if "int16" in info.activation_dtypes:
        out.append(Finding(Severity.INFO, "int16-activations",
                           "activations are int16 (16x8 quantization); Ethos-U runs it, Ethos-N does not"))
    if model.vela_compiled:
        out.append(Finding(Severity.WARNING, "vela-compiled",
                           "model was already compiled by Vela (CUSTOM ethos-u op): its weights are an opaque "
                           "command stream and cannot be audited; audit the model given to Vela instead"))
    return out


def _expectation_findings(exp: Expectations, layers: list[LayerAudit]) -> list[Finding]:
    out = []
    for la in layers:
        where = f"{la.op} #{la.op_index} ({la.weight_tensor})"
        if exp.sparsity is not None and la.sparsity + 1e-9 < exp.sparsity:
            out.append(Finding(Severity.ERROR, "expect-sparsity",
                               f"{where}: sparsity {la.sparsity:.4f} < expected {exp.sparsity:.4f}",
                               la.subgraph, la.op_index))
        if exp.clusters is not None:
            if la.op == "DEPTHWISE_CONV_2D":
                # TFMOT registers DepthwiseConv2D as non-clusterable, so it is never clustered.
                continue
            measured = la.max_unique_per_channel if exp.per_channel else la.unique_values
            scope = "per channel" if exp.per_channel else "per tensor"
            if measured > exp.clusters:
                out.append(Finding(Severity.ERROR, "expect-clusters",
                                   f"{where}: {measured} distinct values {scope} > expected {exp.clusters}",
                                   la.subgraph, la.op_index))
    return out


def _model_info(model: Model, data: bytes, path: str, deflate: DeflateSize | None) -> ModelInfo:
    counts: Counter[str] = Counter()
    floats: list[str] = []
    act: set[str] = set()
    for sg in model.subgraphs:
        for op in sg.operators:
            counts[op.op] += 1
            tensors = [sg.tensor(i) for i in op.inputs + op.outputs]
            live = [t for t in tensors if t is not None and not t.is_constant]
            for t in live:
                act.add(t.dtype.label)
            if op.op not in EDGE_OPS and any(t.dtype.is_float for t in live):
                floats.append(f"{op.op}#{op.index}" + (f"@sg{sg.index}" if sg.index else ""))
    return ModelInfo(
        path=path, bytes=len(data), deflate_bytes=None if deflate is None else deflate.bytes, deflate=deflate,
        subgraphs=len(model.subgraphs), operators=sum(len(sg.operators) for sg in model.subgraphs),
        vela_compiled=model.vela_compiled, description=model.description,
        operator_counts=dict(sorted(counts.items())), float_operators=floats,
        activation_dtypes=sorted(act),
    )


def audit_model(model: Model, data: bytes, path: str, expect: Expectations | None = None, *,
                deflate: DeflateJob | None = None, with_deflate: bool = True,
                exact_deflate: bool = False) -> AuditReport:
    """Audit an already-read model; `data` are its file bytes (for size and DEFLATE).

    `deflate` is a DeflateJob already started on `data` (the CLI starts one early);
    `with_deflate=False` skips the DEFLATE size for callers that do not report it, leaving
    `model.deflate_bytes` None; `exact_deflate=True` compresses the whole file even where a
    sampled estimate would do (large files).
    """
    exp = expect or Expectations()
    if with_deflate and (deflate is None or deflate.data is not data or (exact_deflate and not deflate.exact)):
        deflate = DeflateJob(data, Path(path).name or "model.tflite", exact=exact_deflate)
    wls = weight_layers(model)
    layers = [_audit_layer(model, wl, st) for wl, st in zip(wls, _layer_stats(model, wls), strict=True)]
    info = _model_info(model, data, path, deflate.result() if with_deflate and deflate is not None else None)
    elements = sum(la.elements for la in layers)
    zeros = sum(round(la.sparsity * la.elements) for la in layers)
    wbytes = 0
    for wl in wls:
        t = wl.weights(model)
        if t.data is not None:
            wbytes += int(t.data.nbytes)
    summary = Summary(
        weight_elements=elements, weight_bytes=wbytes, sparsity=zeros / elements if elements else 0.0,
        max_unique_per_channel=max((la.max_unique_per_channel for la in layers), default=0),
        max_unique_per_tensor=max((la.unique_values for la in layers), default=0),
        layers=len(layers), macs=sum(la.macs for la in layers),
        zero_channels=sum(la.zero_channels for la in layers),
    )
    findings = _dtype_findings(model, exp, layers, info) + _structure_findings(layers) + _expectation_findings(exp, layers)
    if (exp.sparsity is not None or exp.clusters is not None) and not layers:
        findings.append(Finding(Severity.ERROR, "no-weights", "expectations given but the model has no weight layers to check"))
    return AuditReport(SCHEMA, info, layers, summary, findings)


def audit(path: str | os.PathLike[str], expect: Expectations | None = None, *,
          prefetched: DeflateJob | Compressing | None = None, with_deflate: bool = True,
          exact_deflate: bool = False) -> AuditReport:
    """Read and audit a .tflite file (the Python API behind `hwopt audit`).

    `prefetched` is a DEFLATE size the caller started on this file's bytes (a DeflateJob, or the
    child `deflate_core.compress_file` forked); `with_deflate=False` leaves out the DEFLATE size
    (`model.deflate_bytes` is None); `exact_deflate=True` asks for the exact size where a large
    file would get a sampled estimate.
    """
    job = DeflateJob.adopt(prefetched) if isinstance(prefetched, Compressing) else prefetched
    if job is None or not with_deflate:
        if job is not None:
            job.cancel()
        model = read_model(path)
        return audit_model(model, model.source, str(path), expect, with_deflate=with_deflate,
                           exact_deflate=exact_deflate)
    model = read_model(job.data)
    model.path = Path(path)
    return audit_model(model, job.data, str(path), expect, deflate=job, exact_deflate=exact_deflate)
