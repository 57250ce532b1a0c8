"""`hwopt gate`: fail a firmware build when a model regresses against a committed baseline.

Metrics (cycles, SRAM, flash, encoded weights, sparsity, distinct values, optionally
fidelity) are collected for one target, compared with a baseline JSON under tolerances
and turned into checks: every check is one JUnit testcase, every failed check one
violation line naming the layer and both numbers. Baselines are deterministic (sorted
keys, no timestamps) so that a diff of one is reviewable.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from hwopt.engines.baseline_schema import MAX_FILE_BYTES, parse
from hwopt.engines.fidelity import Runner, accuracy, load_data, predict_top1
from hwopt.engines.measure import measure
from hwopt.errors import BaselineError, UsageError
from hwopt.fileio import atomic_write_text, refuse_inputs
from hwopt.records import OpRef, to_jsonable
from hwopt.targets import Target

BASELINE_SCHEMA = "hwopt.baseline/1"
GATE_SCHEMA = "hwopt.gate/1"
# Layers below this share of the baseline's total cycles are judged through the total
# only: a 10 -> 12 cycle change in a tiny layer is +20% but no regression anyone feels.
LAYER_CYCLE_SHARE = 0.01


@dataclass(frozen=True)
class LayerMetrics(OpRef):
    """What the gate tracks for one operator; None where the source does not measure it."""

    placement: str = "npu"
    cycles: int | None = None
    sram_bytes: int | None = None
    encoded_weight_bytes: int | None = None
    sparsity: float | None = None
    max_unique_per_channel: int | None = None

    @property
    def key(self) -> str:
        return f"sg{self.subgraph}.op{self.op_index}.{self.op}"


@dataclass(frozen=True)
class Totals:
    cycles: int
    sram_bytes: int
    flash_bytes: int
    encoded_weight_bytes: int
    macs: int
    sparsity: float
    max_unique_per_channel: int
    npu_operators: int
    cpu_operators: int
    accuracy: float | None = None  # top-1 on the gate data, when it has labels
    predictions: list[int] | None = None  # top-1 class per sample, when it has no labels


@dataclass(frozen=True)
class Metrics:
    """A model's measured figures on one target: the content of a baseline file."""

    schema: str
    model: str
    target: str
    totals: Totals
    layers: list[LayerMetrics]

    def to_json(self) -> str:
        return json.dumps(to_jsonable(self), indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class GateOptions:
    """Tolerances; relative ones in percent, absolute budgets in bytes."""

    max_cycles_increase: float = 5.0
    max_sram_increase: float = 5.0
    max_flash_increase: float = 5.0
    max_sram: int | None = None
    max_flash: int | None = None
    min_sparsity: float | None = None
    max_unique_per_channel: int | None = None
    max_fidelity_drop: float | None = None
    sparsity_drop_tolerance: float = 0.01

    def __post_init__(self) -> None:
        for name in ("max_cycles_increase", "max_sram_increase", "max_flash_increase"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0")
        if self.min_sparsity is not None and not 0 <= self.min_sparsity <= 1:
            raise UsageError("min_sparsity must lie in [0, 1]")
        if self.max_fidelity_drop is not None and not 0 <= self.max_fidelity_drop <= 1:
            raise UsageError("max_fidelity_drop must lie in [0, 1] (a fraction of top-1)")
        for name in ("max_sram", "max_flash", "max_unique_per_channel"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0")


@dataclass(frozen=True)
class Check:
    """One gate check (one JUnit testcase)."""

    name: str
    passed: bool
    message: str
    layer: str | None = None
    baseline: float | None = None
    measured: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class GateReport:
    schema: str
    model: str
    target: str
    baseline: str
    updated: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def violations(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def failed(self) -> bool:
        return bool(self.violations)


def load_baseline(path: str | os.PathLike[str]) -> Metrics:
    """Parse a baseline file; BaselineError naming the field for anything missing, corrupt or out of range."""
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_FILE_BYTES:
            raise BaselineError(f"baseline {p} is larger than {MAX_FILE_BYTES >> 20} MiB")
        if p.exists() and not p.is_file():
            raise BaselineError(f"baseline {p} is not a regular file")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"baseline not found: {p} (create it by updating the baseline)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"cannot read baseline {p}: {exc}") from None
    data = parse(text, str(p), BASELINE_SCHEMA)
    totals = Totals(**data["totals"])
    layers = [LayerMetrics(**row) for row in data["layers"]]
    return Metrics(BASELINE_SCHEMA, data["model"], data["target"], totals, layers)


def save_baseline(metrics: Metrics, path: str | os.PathLike[str]) -> Path:
    return atomic_write_text(path, metrics.to_json())


def _pct(new: float, old: float) -> float:
    return 0.0 if old == new else (float("inf") if old == 0 else 100.0 * (new - old) / old)


def _relative(name: str, new: int, old: int, pct: float, layer: str | None = None, unit: str = "") -> Check:
    change = _pct(new, old)
    ok = change <= pct
    where = f"{layer}: " if layer else ""
    msg = f"{where}{name} {new:,}{unit} vs baseline {old:,}{unit} ({change:+.1f}%, limit +{pct:g}%)"
    return Check(f"{layer + '.' if layer else 'total.'}{name}", ok, msg, layer, old, new, old * (1 + pct / 100))


def _budget(name: str, new: int, limit: int) -> Check:
    return Check(f"budget.{name}", new <= limit, f"{name} {new:,} bytes vs budget {limit:,} bytes", None, None, new, limit)


def compare_metrics(current: Metrics, base: Metrics, opts: GateOptions) -> list[Check]:
    """All checks of `current` against `base` under `opts`, totals first, then per layer."""
    ct, bt = current.totals, base.totals
    checks = [
        _relative("cycles", ct.cycles, bt.cycles, opts.max_cycles_increase),
        _relative("sram_bytes", ct.sram_bytes, bt.sram_bytes, opts.max_sram_increase, unit=" B"),
        _relative("flash_bytes", ct.flash_bytes, bt.flash_bytes, opts.max_flash_increase, unit=" B"),
        _relative("encoded_weight_bytes", ct.encoded_weight_bytes, bt.encoded_weight_bytes, opts.max_flash_increase, unit=" B"),
        Check("total.cpu_operators", ct.cpu_operators <= bt.cpu_operators,
              f"CPU-fallback operators {ct.cpu_operators} vs baseline {bt.cpu_operators}", None,
              bt.cpu_operators, ct.cpu_operators, bt.cpu_operators),
        Check("total.sparsity", ct.sparsity + opts.sparsity_drop_tolerance >= bt.sparsity,
              f"weight sparsity {ct.sparsity:.4f} vs baseline {bt.sparsity:.4f} (may drop by {opts.sparsity_drop_tolerance:g})",
              None, bt.sparsity, ct.sparsity, bt.sparsity - opts.sparsity_drop_tolerance),
        Check("total.max_unique_per_channel", ct.max_unique_per_channel <= bt.max_unique_per_channel,
              f"max distinct values per channel {ct.max_unique_per_channel} vs baseline {bt.max_unique_per_channel}",
              None, bt.max_unique_per_channel, ct.max_unique_per_channel, bt.max_unique_per_channel),
    ]
    if opts.max_sram is not None:
        checks.append(_budget("sram_bytes", ct.sram_bytes, opts.max_sram))
    if opts.max_flash is not None:
        checks.append(_budget("flash_bytes", ct.flash_bytes, opts.max_flash))
    if opts.min_sparsity is not None:
        checks.append(Check("budget.min_sparsity", ct.sparsity >= opts.min_sparsity,
                            f"weight sparsity {ct.sparsity:.4f} vs required {opts.min_sparsity:.4f}",
                            None, None, ct.sparsity, opts.min_sparsity))
    if opts.max_fidelity_drop is not None:
        checks.append(_fidelity(ct, bt, opts.max_fidelity_drop))
    base_layers = {la.key: la for la in base.layers}
    cur_layers = {la.key: la for la in current.layers}
    missing = sorted(set(base_layers) - set(cur_layers))
    added = sorted(set(cur_layers) - set(base_layers))
    checks.append(Check("layers.match", not missing and not added,
                        "operators match the baseline" if not (missing or added) else
                        f"operators differ from the baseline: {len(added)} new ({', '.join(added[:3])}), "
                        f"{len(missing)} gone ({', '.join(missing[:3])}); review and run --update-baseline",
                        None, len(base_layers), len(cur_layers), None))
    floor = LAYER_CYCLE_SHARE * bt.cycles
    for key in sorted(set(base_layers) & set(cur_layers), key=lambda k: (cur_layers[k].subgraph, cur_layers[k].op_index)):
        b, c = base_layers[key], cur_layers[key]
        if b.placement == "npu" or c.placement == "cpu":  # operators on the CPU: none may leave the NPU
            checks.append(Check(f"{key}.placement", not (b.placement == "npu" and c.placement == "cpu"),
                                f"{key}: runs on the {c.placement.upper()} (baseline: {b.placement.upper()})",
                                key))
        if b.cycles is not None and c.cycles is not None and b.cycles >= floor:
            checks.append(_relative("cycles", c.cycles, b.cycles, opts.max_cycles_increase, key))
        if b.encoded_weight_bytes and c.encoded_weight_bytes is not None:
            checks.append(_relative("encoded_weight_bytes", c.encoded_weight_bytes, b.encoded_weight_bytes, opts.max_flash_increase, key, " B"))
        if b.sparsity is not None and c.sparsity is not None:
            checks.append(Check(f"{key}.sparsity", c.sparsity + opts.sparsity_drop_tolerance >= b.sparsity,
                                f"{key}: sparsity {c.sparsity:.4f} vs baseline {b.sparsity:.4f}", key, b.sparsity, c.sparsity,
                                b.sparsity - opts.sparsity_drop_tolerance))
        if b.max_unique_per_channel is not None and c.max_unique_per_channel is not None:
            limit = b.max_unique_per_channel if opts.max_unique_per_channel is None else max(b.max_unique_per_channel, opts.max_unique_per_channel)
            checks.append(Check(f"{key}.max_unique_per_channel", c.max_unique_per_channel <= limit,
                                f"{key}: {c.max_unique_per_channel} distinct values per channel vs baseline {b.max_unique_per_channel}",
                                key, b.max_unique_per_channel, c.max_unique_per_channel, limit))
    if opts.max_unique_per_channel is not None:
        for c in current.layers:
            if c.max_unique_per_channel is not None and c.op != "DEPTHWISE_CONV_2D":
                checks.append(Check(f"{c.key}.unique_budget", c.max_unique_per_channel <= opts.max_unique_per_channel,
                                    f"{c.key}: {c.max_unique_per_channel} distinct values per channel vs budget {opts.max_unique_per_channel}",
                                    c.key, None, c.max_unique_per_channel, opts.max_unique_per_channel))
    return checks


def _fidelity(ct: Totals, bt: Totals, drop: float) -> Check:
    if ct.accuracy is not None and bt.accuracy is not None:
        return Check("fidelity.accuracy", ct.accuracy >= bt.accuracy - drop,
                     f"top-1 accuracy {ct.accuracy:.4f} vs baseline {bt.accuracy:.4f} (may drop by {drop:g})",
                     None, bt.accuracy, ct.accuracy, bt.accuracy - drop)
    if ct.predictions is not None and bt.predictions is not None and len(ct.predictions) == len(bt.predictions):
        agree = sum(a == b for a, b in zip(ct.predictions, bt.predictions, strict=True)) / max(len(bt.predictions), 1)
        return Check("fidelity.top1_agreement", agree >= 1 - drop,
                     f"top-1 agreement with the baseline's predictions {agree:.4f} (may drop by {drop:g})",
                     None, 1.0, agree, 1 - drop)
    return Check("fidelity", False, "--max-fidelity-drop needs --data both now and when the baseline was made")


def to_junit(report: GateReport) -> str:
    """JUnit XML with one testcase per check (what CI servers render as a test report)."""
    suite = ET.Element("testsuite", name="hwopt.engines.gate", tests=str(len(report.checks)),
                       failures=str(len(report.violations)), errors="0", skipped="0")
    props = ET.SubElement(suite, "properties")
    for k, v in (("model", report.model), ("target", report.target), ("baseline", report.baseline)):
        ET.SubElement(props, "property", name=k, value=v)
    for c in report.checks:
        classname, _, name = c.name.rpartition(".")
        case = ET.SubElement(suite, "testcase", classname=f"hwopt.engines.gate.{classname or 'check'}", name=name, time="0")
        if not c.passed:
            fail = ET.SubElement(case, "failure", message=c.message, type="regression")
            fail.text = c.message
        else:
            ET.SubElement(case, "system-out").text = c.message
    root = ET.Element("testsuites", tests=suite.get("tests", "0"), failures=suite.get("failures", "0"))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


MetricsFn = Callable[[], Metrics]


def run_gate(collect: MetricsFn, baseline: str | os.PathLike[str], opts: GateOptions, *, update: bool = False,
             junit: str | os.PathLike[str] | None = None,
             inputs: tuple[str | os.PathLike[str] | None, ...] = ()) -> GateReport:
    """Collect metrics, then either rewrite the baseline or compare against it.

    `inputs` (the model, the data) are never overwritten: neither the updated baseline nor the
    JUnit file may land on one of them, nor the JUnit file on the baseline.
    """

    refuse_inputs([baseline] if update else [], inputs)
    refuse_inputs([junit], (*inputs, baseline))
    metrics = collect()
    if update:
        save_baseline(metrics, baseline)
        report = GateReport(GATE_SCHEMA, metrics.model, metrics.target, str(baseline), True,
                            [Check("baseline.updated", True, f"baseline written to {baseline}")])
    else:
        base = load_baseline(baseline)
        if base.target != metrics.target:
            raise BaselineError(f"baseline {baseline} was made for target {base.target}, not {metrics.target}")
        report = GateReport(GATE_SCHEMA, metrics.model, metrics.target, str(baseline), False, compare_metrics(metrics, base, opts))
    if junit is not None:
        atomic_write_text(junit, to_junit(report))
    return report


def with_fidelity(metrics: Metrics, accuracy: float | None, predictions: list[int] | None) -> Metrics:
    return replace(metrics, totals=replace(metrics.totals, accuracy=accuracy, predictions=predictions))


def _top1(model_bytes: bytes, data: str | os.PathLike[str]) -> tuple[float | None, list[int]]:
    """Top-1 predictions of the model's first output over the data (and accuracy with labels)."""
    runner = Runner(model_bytes)
    dataset = load_data(data, runner.inputs)
    preds = predict_top1(runner, dataset)
    acc = None if dataset.labels is None else accuracy(preds, dataset.labels)
    return acc, [int(p) for p in preds]


def collect_metrics(model: str | os.PathLike[str], target: Target, *,
                    data: str | os.PathLike[str] | None = None) -> Metrics:
    """Measure a model on an Ethos-U target: Vela's per-operator figures joined with the audit."""
    tgt = target
    if not tgt.family.is_ethos_u:
        raise UsageError(f"gate measures through Vela, which targets Ethos-U only; {tgt.name} is {tgt.family.value}")
    measured = measure(model, tgt, action="gate", label=str(model), deflate=False)  # no compressed size in gate
    audit_report, vela = measured.audit, measured.vela
    assert audit_report is not None and vela is not None
    layers = []
    for r, la in measured.rows():
        layers.append(LayerMetrics(
            subgraph=r.subgraph, op_index=r.op_index, op=r.op, placement=r.placement, cycles=int(r.cycles),
            sram_bytes=int(r.staging_bytes), encoded_weight_bytes=r.encoded_weight_bytes,
            sparsity=None if la is None else round(float(la.sparsity), 6),
            max_unique_per_channel=None if la is None else int(la.max_unique_per_channel),
        ))
    p = vela.perf
    totals = Totals(
        cycles=p.cycles, sram_bytes=p.peak_bytes("Sram"), flash_bytes=p.read_only_peak_bytes,
        encoded_weight_bytes=p.encoded_weight_bytes, macs=p.macs,
        sparsity=round(float(audit_report.summary.sparsity), 6),
        max_unique_per_channel=int(audit_report.summary.max_unique_per_channel),
        npu_operators=p.npu_ops, cpu_operators=p.cpu_ops,
    )
    metrics = Metrics(BASELINE_SCHEMA, Path(model).name, tgt.name, totals, layers)
    if data is not None:
        acc, preds = _top1(measured.model_bytes, data)
        metrics = with_fidelity(metrics, acc, None if acc is not None else preds)
    return metrics
