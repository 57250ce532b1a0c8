"""The Python API mirrors the CLI: same reports, same numbers, same errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import hwopt
from hwopt.errors import TargetError, UsageError
from hwopt.records import to_jsonable


def test_import_is_cheap_and_lazy() -> None:
    code = "import sys, hwopt; bad = [m for m in ('tensorflow', 'ethosu', 'ai_edge_litert', 'matplotlib') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_audit_matches_cli_json(shared_models, capsys) -> None:
    model = shared_models / "derived" / "ic_resnet8_pruned50_int8.tflite"
    report = hwopt.audit(model, expect_sparsity=0.5)
    assert not report.failed
    assert all(la.sparsity == pytest.approx(0.5, abs=1e-3) for la in report.layers)
    from hwopt.cli import main

    assert main(["audit", str(model), "--json", "--expect-sparsity", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out) == to_jsonable(report)
    assert hwopt.audit(model, expect_sparsity=0.9).failed


def test_estimate_encode_compile_gate(shared_models, tmp_path) -> None:
    model = shared_models / "derived" / "ic_resnet8_pruned50_clustered16_int8.tflite"
    est = hwopt.estimate(model, "ethos-u55-128")
    assert est.engine == "vela" and est.summary.cycles == sum(la.cycles for la in est.layers)
    assert hwopt.estimate(model, "ethos-n78-4tops-4ple").engine == "analytic"
    enc = hwopt.encode(model, "ethos-u55-128")
    assert all(la.roundtrip_ok for la in enc.layers if la.encodable)
    res = hwopt.compile(model, "ethos-u55-128", tmp_path / "out")
    assert res.report.totals.cycles == est.summary.cycles
    assert (tmp_path / "out" / "ic_resnet8_pruned50_clustered16_int8_ethos-u55-128.tflite").exists()
    base = tmp_path / "baseline.json"
    assert not hwopt.gate(model, "ethos-u55-128", base, update_baseline=True).failed
    assert not hwopt.gate(model, "ethos-u55-128", base).failed
    dense = shared_models / "mlperftiny_resnet8_int8.tflite"
    assert hwopt.gate(dense, "ethos-u55-128", base, max_cycles_increase=5).failed


def test_api_errors(shared_models, tmp_path) -> None:
    model = shared_models / "hello_world_int8.tflite"
    with pytest.raises(TargetError):
        hwopt.estimate(model, "ethos-u99-1")
    with pytest.raises(UsageError):
        hwopt.gate(model, "ethos-u55-128", tmp_path / "b.json", no_such_tolerance=1)
