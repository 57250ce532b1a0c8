"""Gate comparison logic on hand-made metrics: every check, JUnit output, baseline errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from hwopt.engines.gate import (
    BASELINE_SCHEMA,
    GateOptions,
    LayerMetrics,
    Metrics,
    Totals,
    compare_metrics,
    load_baseline,
    run_gate,
    save_baseline,
    to_junit,
)
from hwopt.errors import BaselineError, UsageError


def _metrics(cycles: int = 100_000, flash: int = 50_000, sparsity: float = 0.5, uniq: int = 16) -> Metrics:
    layers = [
        LayerMetrics(0, 0, "CONV_2D", "npu", cycles // 2, 4096, flash // 2, sparsity, uniq),
        LayerMetrics(0, 1, "CONV_2D", "npu", cycles // 2, 8192, flash // 2, sparsity, uniq),
        LayerMetrics(0, 2, "SOFTMAX", "cpu", 0, 0, None, None, None),
    ]
    totals = Totals(cycles=cycles, sram_bytes=8192, flash_bytes=flash, encoded_weight_bytes=flash, macs=10**6,
                    sparsity=sparsity, max_unique_per_channel=uniq, npu_operators=2, cpu_operators=1)
    return Metrics(BASELINE_SCHEMA, "m.tflite", "ethos-u55-128", totals, layers)


def test_identical_metrics_pass_every_check() -> None:
    checks = compare_metrics(_metrics(), _metrics(), GateOptions())
    assert checks and all(c.passed for c in checks)


def test_cycle_increase_within_and_beyond_tolerance() -> None:
    base = _metrics()
    ok = compare_metrics(_metrics(cycles=104_000), base, GateOptions(max_cycles_increase=5))
    assert all(c.passed for c in ok if "cycles" in c.name)
    bad = compare_metrics(_metrics(cycles=106_000), base, GateOptions(max_cycles_increase=5))
    failed = [c for c in bad if not c.passed]
    names = {c.name for c in failed}
    assert "total.cycles" in names
    assert "sg0.op0.CONV_2D.cycles" in names and "sg0.op1.CONV_2D.cycles" in names
    total = next(c for c in failed if c.name == "total.cycles")
    assert total.baseline == 100_000 and total.measured == 106_000
    assert "106,000" in total.message and "100,000" in total.message and "+6.0%" in total.message


def test_structure_regressions_fail() -> None:
    base = _metrics()
    bad = compare_metrics(_metrics(sparsity=0.2, uniq=40, flash=90_000), base, GateOptions())
    names = {c.name for c in bad if not c.passed}
    assert {"total.sparsity", "total.max_unique_per_channel", "total.flash_bytes", "total.encoded_weight_bytes"} <= names
    assert "sg0.op1.CONV_2D.sparsity" in names


def test_budgets() -> None:
    m = _metrics()
    checks = compare_metrics(m, m, GateOptions(max_sram=4096, max_flash=60_000, min_sparsity=0.6, max_unique_per_channel=8))
    failed = {c.name for c in checks if not c.passed}
    assert failed == {"budget.sram_bytes", "budget.min_sparsity", "sg0.op0.CONV_2D.unique_budget", "sg0.op1.CONV_2D.unique_budget"}


def test_changed_operators_fail_layer_match() -> None:
    base = _metrics()
    cur = replace(base, layers=[*base.layers[:2], LayerMetrics(0, 2, "MEAN", "npu", 0)])
    check = next(c for c in compare_metrics(cur, base, GateOptions()) if c.name == "layers.match")
    assert not check.passed and "sg0.op2.MEAN" in check.message and "sg0.op2.SOFTMAX" in check.message


def test_fidelity_checks() -> None:
    base = _metrics()
    base = replace(base, totals=replace(base.totals, accuracy=0.95))
    cur = replace(base, totals=replace(base.totals, accuracy=0.92))
    c = next(c for c in compare_metrics(cur, base, GateOptions(max_fidelity_drop=0.02)) if c.name.startswith("fidelity"))
    assert not c.passed
    c = next(c for c in compare_metrics(cur, base, GateOptions(max_fidelity_drop=0.05)) if c.name.startswith("fidelity"))
    assert c.passed
    b2 = replace(base, totals=replace(base.totals, accuracy=None, predictions=[0, 1, 2, 3]))
    c2 = replace(base, totals=replace(base.totals, accuracy=None, predictions=[0, 1, 2, 0]))
    c = next(c for c in compare_metrics(c2, b2, GateOptions(max_fidelity_drop=0.1)) if c.name.startswith("fidelity"))
    assert not c.passed and c.measured == pytest.approx(0.75)


def test_junit_has_one_testcase_per_check(tmp_path) -> None:
    base, junit = tmp_path / "b.json", tmp_path / "j.xml"
    save_baseline(_metrics(), base)
    report = run_gate(lambda: _metrics(cycles=150_000), base, GateOptions(), junit=junit)
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == len(report.checks)
    failures = root.findall(".//testcase/failure")
    assert len(failures) == len(report.violations) > 0
    assert root.find("testsuite").get("failures") == str(len(failures))
    assert to_junit(report) == junit.read_text()


def test_baseline_is_deterministic_and_sorted(tmp_path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    save_baseline(_metrics(), a)
    save_baseline(_metrics(), b)
    assert a.read_bytes() == b.read_bytes()
    data = json.loads(a.read_text())
    assert list(data) == sorted(data)
    assert load_baseline(a) == _metrics()


def test_update_baseline_then_pass(tmp_path) -> None:
    base = tmp_path / "b.json"
    r = run_gate(_metrics, base, GateOptions(), update=True)
    assert r.updated and not r.failed and base.exists()
    assert not run_gate(_metrics, base, GateOptions()).failed


@pytest.mark.parametrize("content, match", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ('{"schema": "other/1"}', "is not a hwopt.baseline/1"),
    ('{"schema": "hwopt.baseline/1", "model": "m", "target": "t", "totals": {}, "layers": []}', "'totals.cycles' is missing"),
])
def test_corrupt_baselines(tmp_path, content, match) -> None:
    p = tmp_path / "b.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(BaselineError, match=match):
        load_baseline(p)


def test_target_mismatch(tmp_path) -> None:
    p = tmp_path / "b.json"
    save_baseline(_metrics(), p)
    other = replace(_metrics(), target="ethos-u85-256")
    with pytest.raises(BaselineError, match="ethos-u55-128"):
        run_gate(lambda: other, p, GateOptions())


@pytest.mark.parametrize("kwargs", [{"max_cycles_increase": -1}, {"min_sparsity": 1.5}, {"max_fidelity_drop": 2}, {"max_sram": -5}])
def test_bad_options(kwargs) -> None:
    with pytest.raises(UsageError):
        GateOptions(**kwargs)


def test_operator_moving_to_the_cpu_fails_the_gate() -> None:
    """A layer on the NPU in the baseline that now runs on the CPU is a failed check naming it."""
    import dataclasses

    from hwopt.engines.gate import GateOptions, LayerMetrics, Metrics, Totals, compare_metrics

    totals = Totals(cycles=100, sram_bytes=10, flash_bytes=10, encoded_weight_bytes=5, macs=1, sparsity=0.0,
                    max_unique_per_channel=3, npu_operators=1, cpu_operators=0, accuracy=None, predictions=None)
    layer = LayerMetrics(subgraph=0, op_index=0, op="CONV_2D", placement="npu", cycles=100, sram_bytes=10,
                         encoded_weight_bytes=5, sparsity=0.0, max_unique_per_channel=3)
    base = Metrics("hwopt.baseline/1", "m.tflite", "ethos-u55-128", totals, [layer])
    moved = dataclasses.replace(base, layers=[dataclasses.replace(layer, placement="cpu")])
    checks = {c.name: c for c in compare_metrics(moved, base, GateOptions())}
    placement = [c for name, c in checks.items() if name.endswith(".placement")]
    assert len(placement) == 1 and not placement[0].passed and "runs on the CPU" in placement[0].message
    same = [c for c in compare_metrics(base, base, GateOptions()) if c.name.endswith(".placement")]
    assert len(same) == 1 and same[0].passed
