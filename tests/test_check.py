"""`hwopt check`: the operator-support rules against Vela's own placement, and the command's contract."""

from __future__ import annotations

import json

import pytest
from support_cases import CASES, N78, U55, U85

from hwopt.engines.check import check_model
from hwopt.errors import HwoptError
from hwopt.format.tflite_io import read_model
from hwopt.targets import resolve_target
from hwopt.targets.ethos_n.support import n78_support
from hwopt.targets.ethos_u.support_tables import U55_OPS, U85_OPS, support_for
from hwopt.targets.ethos_u.vela_engine import compile_model
from hwopt.targets.support import place_model

TARGET = {U55: "ethos-u55-128", U85: "ethos-u85-256"}
PAIRS = [(name, fam) for name, case in CASES.items() for fam in case.families]

@pytest.mark.parametrize(("name", "family"), PAIRS, ids=[f"{n}-{f}" for n, f in PAIRS])
def test_rule_fires_alone_and_vela_agrees(name: str, family: str) -> None:
    case = CASES[name]
    data = case.build()
    support = n78_support() if family == N78 else support_for(family)
    reasons = place_model(read_model(data), support)[(0, 0)]
    assert tuple(r.rule for r in reasons) == case.rules
    assert all(r.message and r.fix for r in reasons)
    if family == N78:  # no Vela for Ethos-N: the rule firing alone is the test
        return
    target = resolve_target(TARGET[family])
    if case.vela_rejects:
        with pytest.raises(HwoptError):  # refused before Vela (hwopt's own checks) or by Vela itself
            compile_model(data, target)
        return
    vela = compile_model(data, target).ops[0].placement
    assert vela == ("cpu" if case.rules else "npu")


def test_every_rule_has_a_case() -> None:
    covered = {r for c in CASES.values() for r in c.rules}
    for family in (U55, U85, N78):
        ids = {r.id for r in (n78_support() if family == N78 else support_for(family)).all_rules()}
        missing = ids - covered
        assert not missing, f"{family}: rules without a violating model: {sorted(missing)}"


def test_operator_lists_are_vela_s() -> None:
    from ethosu import regor

    def names(arch: str) -> set[str]:  # Vela's report spells the ARG_MAX builtin "ARGMAX"
        return {"ARG_MAX" if n == "ARGMAX" else n for n in regor.tflite_operator_constraints(arch)}

    assert names("EthosU55") == U55_OPS
    assert names("EthosU65") == U55_OPS
    assert names("EthosU85") == U85_OPS


def test_shared_models_agree_with_vela(int8_models) -> None:
    """On real models every operator's placement equals Vela's, for one config of each rule set."""
    for path in int8_models[:8]:
        for name in ("ethos-u55-64", "ethos-u65-256", "ethos-u85-512"):
            report = check_model(path, name)
            assert not [f for f in report.findings if f.rule == "support-model-disagrees"], (path, name)
            assert all(o.reasons for o in report.operators if o.placement == "cpu")


def test_check_json_and_expect_npu(run_cli, shared_models) -> None:
    model = shared_models / "dnn_s_quantized.tflite"
    res = run_cli("check", model, "--target", "ethos-u55-128", "--json", "--all-targets")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["schema"] == "hwopt.check/1"
    cpu = [o for o in doc["operators"] if o["placement"] == "cpu"]
    assert [o["op"] for o in cpu] == ["QUANTIZE", "DEQUANTIZE"]
    assert cpu[0]["reasons"][0]["rule"] == "feature-map-type" and "float32" in cpu[0]["reasons"][0]["message"]
    assert cpu[1]["reasons"][0]["rule"] == "operator-type"
    assert all(o["npu_on"] == [] for o in cpu)
    npu = [o for o in doc["operators"] if o["placement"] == "npu"]
    assert all("ethos-u55-32" in o["npu_on"] and "ethos-u85-2048" in o["npu_on"] for o in npu)
    # the Ethos-N78 takes the fully connected layers but not the softmax
    assert all(("ethos-n78-4tops-4ple" in o["npu_on"]) == (o["op"] == "FULLY_CONNECTED") for o in npu)
    assert doc["summary"] == {"npu_operators": 5, "cpu_operators": 2, "cpu_macs": 0, "edge_cpu_elements": 262}
    assert run_cli("check", model, "--target", "ethos-u55-128", "--expect-npu").code == 1
    ok = run_cli("check", model, "--target", "ethos-u55-128", "--expect-npu", "--allow-cpu", "QUANTIZE,DEQUANTIZE")
    assert ok.code == 0, ok.err


def test_check_bad_input(run_cli, tmp_path, shared_models) -> None:
    for args in (("check", tmp_path / "missing.tflite", "--target", "ethos-u55-128"),
                 ("check", shared_models / "dnn_s_quantized.tflite", "--target", "ethos-u99"),
                 ("check", shared_models / "person_detect_vela.tflite", "--target", "ethos-u55-128")):
        res = run_cli(*args)
        assert res.code == 2 and res.err.count("\n") == 1 and res.err.startswith("hwopt: error:"), res.err


def test_n78_rules_name_failing_values(shared_models) -> None:
    model = read_model(shared_models / "ds_cnn_s_quantized_int16.tflite")
    placed = place_model(model, n78_support())
    msgs = [r.message for reasons in placed.values() for r in reasons]
    assert msgs and any("int16" in m for m in msgs)


def test_vela_rejection_is_a_finding(tmp_path) -> None:
    path = tmp_path / "pad.tflite"
    path.write_bytes(CASES["const-params"].build())
    report = check_model(path, "ethos-u55-128")
    assert report.failed and report.findings[0].rule == "vela-rejects-model"
    assert report.operators[0].reasons[0].rule == "const-params"


def test_compile_reports_show_reasons_and_fixes(run_cli, shared_models, tmp_path) -> None:
    out = tmp_path / "out"
    res = run_cli("compile", shared_models / "dnn_s_quantized.tflite", "--target", "ethos-u55-128", "-o", out)
    assert res.code == 0, res.err
    report = json.loads((out / "report.json").read_text())
    reasons = {c["op"]: c["reasons"][0] for c in report["cpu_reasons"]}
    assert reasons["QUANTIZE"]["rule"] == "feature-map-type" and "float32" in reasons["QUANTIZE"]["message"]
    assert reasons["DEQUANTIZE"]["rule"] == "operator-type"
    md = (out / "report.md").read_text()
    assert "## Operators on the CPU" in md and "`feature-map-type`" in md
    html = (out / "report.html").read_text()
    assert "Operators on the CPU" in html and reasons["QUANTIZE"]["fix"] in html
    fallback = [f for f in report["findings"] if f["rule"] == "cpu-fallback"]
    assert len(fallback) == 2 and all("fix:" in f["message"] for f in fallback)
