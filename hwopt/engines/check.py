"""`hwopt check`: why each operator runs where it runs, the failing constraint, the fix, and where it would fit.

Placement comes from the family's operator-support model (named rules, each naming the values
that fail it). For Ethos-U, Vela itself also compiles the model and its actual placement is
what is reported; any operator where the support model and Vela disagree is flagged as an
internal finding, so a gap in hwopt's rules never hides behind a wrong answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from hwopt.analysis.layers import weight_layers
from hwopt.analysis.validate import Engine, check_for_native
from hwopt.engines.measure import load_source, measure, reject_compiled
from hwopt.errors import CompileError, UnsupportedModelError
from hwopt.ir import Model, Subgraph
from hwopt.records import Finding, OpRef, Severity
from hwopt.targets import Family, Target, list_targets, resolve_target
from hwopt.targets.ethos_n.support import n78_support
from hwopt.targets.ethos_u.support_tables import support_for
from hwopt.targets.support import OperatorSupport, Reason, place_model

log = logging.getLogger(__name__)

SCHEMA = "hwopt.check/1"
# CPU operators that only move or convert data: the hidden cost at the edges of NPU subgraphs.
EDGE_OPS = frozenset({"QUANTIZE", "DEQUANTIZE", "TRANSPOSE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "PACK",
                      "UNPACK", "CONCATENATION", "SPLIT", "SPLIT_V", "CAST", "PAD", "SLICE", "STRIDED_SLICE"})
VELA_RULE = "vela-placement"
PlacementMap = dict[tuple[int, int], list[Reason]]


@dataclass(frozen=True)
class OperatorCheck(OpRef):
    """One operator: where it runs, every failing rule with its fix, and the targets that would take it."""

    placement: str  # "npu" | "cpu"
    reasons: list[Reason]
    npu_on: list[str] | None
    macs: int
    elements: int  # output elements: the size of the work when it runs on the CPU
    edge: bool  # a CPU operator next to NPU work or a graph input/output (data movement the summary hides)


@dataclass(frozen=True)
class CheckSummary:
    npu_operators: int
    cpu_operators: int
    cpu_macs: int
    edge_cpu_elements: int


@dataclass(frozen=True)
class CheckReport:
    schema: str
    target: str
    engine: str
    model: str
    operators: list[OperatorCheck]
    summary: CheckSummary
    findings: list[Finding]

    @property
    def failed(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)


def operator_support(family: Family) -> OperatorSupport:
    """The operator-support model of a target family."""
    if family is Family.ETHOS_N78:
        return n78_support()
    return support_for(family.value)


def _placements_by_target(model: Model, names: list[str], known: tuple[OperatorSupport, PlacementMap]
                          ) -> dict[str, PlacementMap]:
    """The support model's placement for each shipped target, computed once per support table
    (U55 and U65 share one), reusing the placement already made for the checked target."""
    by_table: dict[str, PlacementMap] = {known[0].family: known[1]}
    out = {}
    for name in names:
        support = operator_support(resolve_target(name).family)
        if support.family not in by_table:
            by_table[support.family] = place_model(model, support)
        out[name] = by_table[support.family]
    return out


def _edges(sg: Subgraph, cpu: set[int]) -> set[int]:
    """CPU operators that touch NPU work or the graph's own inputs and outputs."""
    producer = {t: op.index for op in sg.operators for t in op.outputs}
    readers: dict[int, list[int]] = {}
    for op in sg.operators:
        for t in op.inputs:
            readers.setdefault(t, []).append(op.index)
    io = set(sg.inputs) | set(sg.outputs)
    out = set()
    for op in sg.operators:
        if op.index not in cpu:
            continue
        near = [producer[t] for t in op.inputs if t in producer]
        near += [r for t in op.outputs for r in readers.get(t, [])]
        if any(n not in cpu for n in near) or any(t in io for t in (*op.inputs, *op.outputs)):
            out.add(op.index)
    return out


def check_model(source: str | Path | bytes, target: Target | str, *, engine: str | None = None,
                all_targets: bool = False, allow_cpu: frozenset[str] = frozenset(),
                expect_npu: bool = False) -> CheckReport:
    """Placement of every operator on `target` with the reasons and fixes for CPU operators.

    engine "vela" (default for Ethos-U) cross-checks with Vela's own placement; "analytic" uses
    the support model alone (the only choice for Ethos-N78).
    """
    tgt = target if isinstance(target, Target) else resolve_target(str(target))
    model, model_bytes, label = load_source(source)
    reject_compiled(model, label, "check")
    check_for_native(model, Engine.ANALYTIC)  # the support rules compute requantisation from the scales
    engine = engine or ("vela" if tgt.family.is_ethos_u else "analytic")
    if engine == "vela" and not tgt.family.is_ethos_u:
        raise UnsupportedModelError(f"the vela engine needs an Ethos-U target, not {tgt.name}")
    support = operator_support(tgt.family)
    placed = place_model(model, support)
    findings: list[Finding] = []
    vela: dict[int, str] | None = None
    if engine == "vela":
        try:  # Vela's compile through the measurement pipeline (same reading, refusals and isolation)
            measured = measure(model_bytes, tgt, action="check", audit=False, label=label)
            vela = {row.op_index: row.placement for row in measured.vela.ops} if measured.vela else {}
        except CompileError as exc:  # the whole model is refused: say so, keep the support model's answer
            findings.append(Finding(Severity.ERROR, "vela-rejects-model", str(exc)))
    macs = {(wl.subgraph, wl.op_index): wl.macs for wl in weight_layers(model)}
    others = _placements_by_target(model, list_targets(), (support, placed)) if all_targets else {}
    rows: list[OperatorCheck] = []
    for sg in model.subgraphs:
        decided: dict[int, tuple[str, list[Reason]]] = {}
        for op in sg.operators:
            reasons = placed[(sg.index, op.index)]
            mine = "cpu" if reasons else "npu"
            actual = mine
            if vela is not None and sg.index == 0 and op.index in vela:
                actual = vela[op.index]
                if actual != mine:
                    findings.append(Finding(Severity.WARNING, "support-model-disagrees",
                                            f"{op.op} #{op.index}: Vela places it on the {actual.upper()}, hwopt's "
                                            f"support model on the {mine.upper()}", sg.index, op.index))
                    reasons = [Reason(VELA_RULE, "Vela places it on the CPU; no rule of hwopt's support model "
                                      "explains why", "report this model to the hwopt maintainers")] \
                        if actual == "cpu" else []
            decided[op.index] = (actual, reasons)
        cpu = {i for i, (p, _) in decided.items() if p == "cpu"}
        edges = _edges(sg, cpu)
        for op in sg.operators:
            where, reasons = decided[op.index]
            out = sg.tensor(op.outputs[0]) if op.outputs and op.outputs[0] >= 0 else None
            npu_on = [n for n, p in others.items() if not p[(sg.index, op.index)]] if all_targets else None
            rows.append(OperatorCheck(sg.index, op.index, op.op, where, reasons, npu_on,
                                      macs.get((sg.index, op.index), 0), out.elements if out is not None else 0,
                                      op.index in edges))
    cpu_rows = [r for r in rows if r.placement == "cpu"]
    for r in cpu_rows:
        if r.edge and r.op in EDGE_OPS:
            findings.append(Finding(Severity.INFO, "cpu-edge-work",
                                    f"{r.op} #{r.op_index} moves {r.elements} elements on the CPU next to NPU work",
                                    r.subgraph, r.op_index))
        if expect_npu and r.op not in allow_cpu:
            first = r.reasons[0] if r.reasons else None
            why = f": {first.message} ({first.rule})" if first else ""
            findings.append(Finding(Severity.ERROR, "expect-npu", f"{r.op} #{r.op_index} runs on the CPU{why}",
                                    r.subgraph, r.op_index))
    summary = CheckSummary(
        npu_operators=len(rows) - len(cpu_rows), cpu_operators=len(cpu_rows),
        cpu_macs=sum(r.macs for r in cpu_rows), edge_cpu_elements=sum(r.elements for r in cpu_rows if r.edge),
    )
    return CheckReport(SCHEMA, tgt.name, engine, label, rows, summary, findings)
