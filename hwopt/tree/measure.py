"""Measurements of one int8 leaf: LiteRT top-1, the structure audit, Ethos-U encoded weights and cycles.

No TensorFlow here: accuracy runs on LiteRT, structure on hwopt.engines.audit, NPU figures on hwopt's
encoder/estimator (`hwopt_figures`) or on Vela's own totals (`vela_figures`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hwopt.engines.audit import AuditReport, Expectations, LayerAudit, audit_model
from hwopt.engines.encode import encode_model
from hwopt.engines.estimate import estimate
from hwopt.engines.fidelity import Dataset, Runner, accuracy, predict_top1
from hwopt.engines.measure import measure
from hwopt.errors import TargetError
from hwopt.format.tflite_io import read_model
from hwopt.records import Severity
from hwopt.targets import Target
from hwopt.tree.techniques import LayerKey

log = logging.getLogger(__name__)

VELA_SOURCE = "vela"
HWOPT_SOURCE = "hwopt"


@dataclass(frozen=True)
class NpuFigures:
    """Encoded weight bytes and estimated cycles of one model, and which tool produced them."""

    encoded_weight_bytes: int | None
    cycles: int | None
    source: str


def int8_top1(tflite: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 of the full-integer model on LiteRT: inputs quantized with the model's own scale and zero point."""
    runner = Runner(tflite)
    inp = runner.inputs[0]
    info = np.iinfo(inp.dtype) if np.issubdtype(inp.dtype, np.integer) else None
    if info is not None and inp.scale:
        xq = np.clip(np.round(x / inp.scale + inp.zero_point), info.min, info.max).astype(inp.dtype)
    else:
        xq = x.astype(inp.dtype)
    return accuracy(predict_top1(runner, Dataset([xq], None, "data")), y)


def structure_audit(tflite: bytes, name: str, expect: Expectations) -> AuditReport:
    """hwopt's audit of the converted file against what the leaf promises.

    The DEFLATE size is exact: it is the "compression" row of TFMOT's tables, which the tree reproduces.
    """
    model = read_model(tflite)
    return audit_model(model, tflite, f"{name}.tflite", expect, exact_deflate=True)


def layer_label(la: LayerAudit) -> str:
    """How the audit names a layer in its findings: `CONV_2D #2 (tensor name)`."""
    return f"{la.op} #{la.op_index} ({la.weight_tensor})"


def broken_layers(report: AuditReport, exempt: frozenset[LayerKey] = frozenset()) -> list[str]:
    """The layers whose promised structure the conversion lost, one short text each.

    `exempt` holds the (subgraph, op index) of layers the technique never prunes (TFMOT 0.8 registers
    DepthwiseConv2D with no prunable weights), so a dense exempt layer is not a loss.
    """
    out = []
    for f in report.findings:
        if f.severity is not Severity.ERROR:
            continue
        if f.rule == "expect-sparsity" and (f.subgraph or 0, f.op_index or 0) in exempt:
            continue
        out.append(f.message)
    return out


def pruned_zeros(report: AuditReport, exempt: frozenset[LayerKey]) -> tuple[int, int]:
    """(zero weights, weights) over the audited layers not in `exempt`: what a global prune promises on."""
    layers = [la for la in report.layers if (la.subgraph, la.op_index) not in exempt]
    zeros = sum(round(la.sparsity * la.elements) for la in layers)
    return zeros, sum(la.elements for la in layers)


def global_sparsity_broken(report: AuditReport, exempt: frozenset[LayerKey], expected: float) -> list[str]:
    """One text naming every pruned layer when their zeros together fall below `expected`, else nothing."""
    zeros, total = pruned_zeros(report, exempt)
    if total == 0:
        return ["no weight layer left to prune: every layer is exempt"]
    if zeros / total + 1e-9 >= expected:
        return []
    layers = ", ".join(f"{layer_label(la)} {la.sparsity:.4f}" for la in report.layers
                       if (la.subgraph, la.op_index) not in exempt)
    return [f"pruned layers together hold {zeros:,} zeros in {total:,} weights: sparsity {zeros / total:.4f} "
            f"< expected {expected:.4f} (per layer: {layers})"]


def check_ethos_u(target: Target) -> Target:
    """The target itself when Vela compiles for it; TargetError otherwise (the tree measures through Vela)."""
    if not target.family.is_ethos_u:
        raise TargetError(f"hwopt tree measures Ethos-U targets; {target.name} is {target.family.value}")
    return target


def vela_figures(tflite: bytes, target: Target) -> NpuFigures:
    """Vela's own totals (encoded weights, total cycles) for the target's descriptor, via the Vela engine."""
    vela = measure(tflite, check_ethos_u(target), action="measure", audit=False).vela
    assert vela is not None
    perf = vela.perf
    return NpuFigures(perf.encoded_weight_bytes, perf.cycles, VELA_SOURCE)


def hwopt_figures(tflite: bytes, target: Target) -> NpuFigures:
    """Encoded weight bytes from `hwopt.engines.encode` and total cycles from `hwopt.engines.estimate`."""
    model = read_model(tflite)
    enc = encode_model(model, target)
    est = estimate(model, target)
    return NpuFigures(int(enc.summary.encoded_bytes), int(est.summary.cycles), HWOPT_SOURCE)


def npu_figures(tflite: bytes, target: Target, backend: str = "auto") -> NpuFigures:
    """Encoded weight bytes and cycles: hwopt's encoder and estimator (`auto`/`hwopt`) or Vela's totals (`vela`)."""
    if backend in ("auto", HWOPT_SOURCE):
        return hwopt_figures(tflite, target)
    return vela_figures(tflite, target)
