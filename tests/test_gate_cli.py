"""`hwopt gate` end to end: baselines, regressions on real models, JUnit, budgets, fidelity, errors.

Golden figures: Vela 5.2.0's flash use of the ResNet-8 pair in ../shared/models/MANIFEST.md,
and top-1 predictions computed here directly with the LiteRT interpreter.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CliResult

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"
TARGET = "ethos-u55-128"


@pytest.fixture(scope="module")
def example() -> Path:
    assert EXAMPLE.is_file(), "the bundled example model is part of hwopt (tools/make_example_model.py)"
    return EXAMPLE


def gate(run_cli, model: Path, baseline: Path, *extra: object, target: str = TARGET) -> CliResult:
    return run_cli("gate", model, "--target", target, "--baseline", baseline, *(str(e) for e in extra))


def one_error_line(res: CliResult) -> str:
    assert res.code == 2, (res.code, res.out, res.err)
    assert res.err.startswith("hwopt: error: ") and res.err.count("\n") == 1 and "Traceback" not in res.err, res.err
    return res.err


def _sorted_everywhere(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    assert keys == sorted(keys), keys
    return dict(pairs)


# --- baselines -----------------------------------------------------------------------------------

def test_passes_against_its_own_baseline(run_cli, example, tmp_path) -> None:
    base = tmp_path / "baseline.json"
    res = gate(run_cli, example, base, "--update-baseline")
    assert res.code == 0 and base.is_file(), res.err
    res = gate(run_cli, example, base)
    assert res.code == 0, res.out
    m = re.search(r"gate passed: (\d+) of (\d+) checks passed", res.out)
    assert m and m.group(1) == m.group(2)


def test_baseline_format_is_deterministic_and_atomic(run_cli, example, tmp_path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert gate(run_cli, example, a, "--update-baseline").code == 0
    assert gate(run_cli, example, b, "--update-baseline").code == 0
    assert a.read_bytes() == b.read_bytes()
    data = json.loads(a.read_text(), object_pairs_hook=_sorted_everywhere)
    assert data["schema"] == "hwopt.baseline/1" and data["target"] == TARGET and data["model"] == example.name
    assert set(data) == {"schema", "model", "target", "totals", "layers"}
    assert not re.search(r"\d{4}-\d{2}-\d{2}|time|date", a.read_text())
    # Rewritten by rename: a reader holding the old file still sees it whole.
    a.write_text('{"old": true}\n')
    with a.open() as old:
        assert gate(run_cli, example, a, "--update-baseline").code == 0
        assert old.read() == '{"old": true}\n'
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_baseline_totals_equal_vela_figures(run_cli, shared_models, tmp_path) -> None:
    """Flash of the two ResNet-8 models on ethos-u55-128 as MANIFEST.md records them (KiB)."""
    for name, flash_kib in (("mlperftiny_resnet8_int8", 77.39), ("derived/ic_resnet8_pruned50_clustered16_int8", 38.72)):
        base = tmp_path / f"{Path(name).name}.json"
        assert gate(run_cli, shared_models / f"{name}.tflite", base, "--update-baseline").code == 0
        totals = json.loads(base.read_text())["totals"]
        assert round(totals["flash_bytes"] / 1024, 2) == flash_kib
        assert (totals["npu_operators"], totals["cpu_operators"]) == (42, 0)


# --- a real regression ---------------------------------------------------------------------------

@pytest.fixture
def regression(run_cli, shared_models, tmp_path) -> tuple[Path, Path]:
    base = tmp_path / "baseline.json"
    opt = shared_models / "derived" / "ic_resnet8_pruned50_clustered16_int8.tflite"
    assert gate(run_cli, opt, base, "--update-baseline").code == 0
    return shared_models / "mlperftiny_resnet8_int8.tflite", base


def test_unoptimised_model_fails_against_optimised_baseline(run_cli, regression) -> None:
    model, base = regression
    baseline = json.loads(base.read_text())
    res = gate(run_cli, model, base)
    assert res.code == 1
    lines = [ln for ln in res.out.splitlines() if ln.startswith("FAIL ")]
    js = gate(run_cli, model, base, "--json")
    assert js.code == 1
    report = json.loads(js.out)
    violations = [c for c in report["checks"] if not c["passed"]]
    assert len(lines) == len(violations) > 10
    assert f"gate failed: {len(report['checks']) - len(violations)} of {len(report['checks'])} checks passed" in res.out
    for c in violations:
        (line,) = [ln for ln in lines if ln == f"FAIL {c['message']}"]
        if c["layer"] is not None:  # the layer and both numbers are on the line
            assert line.startswith(f"FAIL {c['layer']}: ")
            for v in (c["baseline"], c["measured"]):
                text = f"{int(v):,}" if float(v).is_integer() and v > 1 else f"{v:.4f}"
                assert text in line, (text, line)
    # Flash grew from Vela's 38.72 KiB (baseline) to 77.39 KiB, both in the message.
    flash = next(c for c in violations if c["name"] == "total.flash_bytes")
    assert round(flash["baseline"] / 1024, 2) == 38.72 and round(flash["measured"] / 1024, 2) == 77.39
    assert f"{baseline['totals']['flash_bytes']:,}" in flash["message"]
    layers = {c["layer"] for c in violations if c["layer"]}
    assert {f"sg0.op{i}.CONV_2D" for i in (0, 1, 2, 4, 5, 6, 8, 9, 10)} <= layers
    assert "sg0.op14.FULLY_CONNECTED" in layers
    sparsity = next(c for c in violations if c["name"] == "sg0.op9.CONV_2D.sparsity")
    assert sparsity["baseline"] == pytest.approx(0.5) and sparsity["measured"] < 0.05


def test_junit_has_one_testcase_per_check(run_cli, regression, tmp_path) -> None:
    model, base = regression
    junit = tmp_path / "gate.xml"
    res = gate(run_cli, model, base, "--json", "--junit", junit)
    assert res.code == 1
    checks = json.loads(res.out)["checks"]
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(checks) == int(root.get("tests", "-1"))
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == sum(not c["passed"] for c in checks) == int(root.get("failures", "-1"))
    names = [f"{c.get('classname')}.{c.get('name')}" for c in cases]
    assert names == [f"hwopt.engines.gate.{c['name']}" for c in checks]
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props == {"model": model.name, "target": TARGET, "baseline": str(base)}
    # A passing run: every testcase passes.
    ok = gate(run_cli, model, tmp_path / "own.json", "--update-baseline")
    assert ok.code == 0
    assert gate(run_cli, model, tmp_path / "own.json", "--junit", junit).code == 0
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and root.findall(".//failure") == []


# --- budgets and tolerances ----------------------------------------------------------------------

@pytest.fixture
def own(run_cli, example, tmp_path) -> tuple[Path, dict]:
    base = tmp_path / "own.json"
    assert gate(run_cli, example, base, "--update-baseline").code == 0
    return base, json.loads(base.read_text())


@pytest.mark.parametrize("flag, value, check", [
    ("--max-sram", lambda t: t["sram_bytes"] - 1, "budget.sram_bytes"),
    ("--max-flash", lambda t: t["flash_bytes"] - 1, "budget.flash_bytes"),
    ("--min-sparsity", lambda t: min(t["sparsity"] + 0.1, 1.0), "budget.min_sparsity"),
    ("--max-unique-per-channel", lambda t: 4, ".unique_budget"),
])
def test_each_budget_triggers(run_cli, example, own, flag, value, check) -> None:
    base, data = own
    limit = value(data["totals"])
    res = gate(run_cli, example, base, flag, limit, "--json")
    assert res.code == 1, res.out
    failed = [c for c in json.loads(res.out)["checks"] if not c["passed"]]
    assert failed and all(c["name"].endswith(check) or c["name"] == check for c in failed)
    assert all(c["limit"] == pytest.approx(limit) for c in failed)
    generous = {"--max-sram": data["totals"]["sram_bytes"], "--max-flash": data["totals"]["flash_bytes"],
                "--min-sparsity": data["totals"]["sparsity"], "--max-unique-per-channel": 256}[flag]
    assert gate(run_cli, example, base, flag, generous).code == 0


def test_unique_budget_names_layers_with_both_numbers(run_cli, example, own) -> None:
    base, data = own
    res = gate(run_cli, example, base, "--max-unique-per-channel", 4)
    assert res.code == 1
    for la in data["layers"]:
        if la["max_unique_per_channel"] is not None and la["op"] != "DEPTHWISE_CONV_2D" and la["max_unique_per_channel"] > 4:
            key = f"sg{la['subgraph']}.op{la['op_index']}.{la['op']}"
            assert f"FAIL {key}: {la['max_unique_per_channel']} distinct values per channel vs budget 4" in res.out


def test_tolerance_of_a_shrunk_baseline(run_cli, example, own, tmp_path) -> None:
    """Cycles 10% above a (hand-lowered) baseline fail at 5% and pass at 15%."""
    _, data = own
    data["totals"]["cycles"] = round(data["totals"]["cycles"] / 1.10)
    lowered = tmp_path / "lowered.json"
    lowered.write_text(json.dumps(data, indent=2, sort_keys=True))
    res = gate(run_cli, example, lowered, "--json")
    assert res.code == 1
    (failed,) = [c for c in json.loads(res.out)["checks"] if not c["passed"]]
    assert failed["name"] == "total.cycles"
    assert gate(run_cli, example, lowered, "--max-cycles-increase", 15).code == 0


# --- fidelity ------------------------------------------------------------------------------------

def _inputs(model: Path, n: int, seed: int) -> tuple[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model))
    (d,) = interp.get_input_details()
    info = np.iinfo(d["dtype"])
    rng = np.random.default_rng(seed)
    x = rng.integers(info.min, int(info.max) + 1, size=(n, *d["shape"][1:])).astype(d["dtype"])
    return d["name"], x


def _arrays(named: dict[str, np.ndarray]) -> dict[str, Any]:
    return dict(named)


def _top1(model: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model))
    interp.allocate_tensors()
    (d,) = interp.get_input_details()
    out = interp.get_output_details()[0]
    preds = []
    for sample in x:
        interp.set_tensor(d["index"], sample.reshape(d["shape"]))
        interp.invoke()
        preds.append(int(np.argmax(interp.get_tensor(out["index"]).reshape(-1))))
    return np.asarray(preds)


def test_fidelity_with_labels(run_cli, shared_models, tmp_path) -> None:
    base_model = shared_models / "derived" / "ic_resnet8_baseline_int8.tflite"
    pruned = shared_models / "derived" / "ic_resnet8_pruned50_int8.tflite"
    name, x = _inputs(base_model, 24, seed=1)
    labels = np.random.default_rng(2).integers(0, 10, size=24)
    data = tmp_path / "data.npz"
    np.savez(data, **_arrays({name: x, "labels": labels}))
    baseline = tmp_path / "b.json"
    assert gate(run_cli, base_model, baseline, "--update-baseline", "--data", data).code == 0
    acc_base = float(np.mean(_top1(base_model, x) == labels))
    assert json.loads(baseline.read_text())["totals"]["accuracy"] == pytest.approx(acc_base, abs=1e-6)
    acc_pruned = float(np.mean(_top1(pruned, x) == labels))
    drop = acc_base - acc_pruned
    res = gate(run_cli, pruned, baseline, "--data", data, "--max-fidelity-drop", max(drop, 0) + 0.01, "--json")
    check = next(c for c in json.loads(res.out)["checks"] if c["name"] == "fidelity.accuracy")
    assert check["passed"] and check["measured"] == pytest.approx(acc_pruned) and check["baseline"] == pytest.approx(acc_base, abs=1e-6)
    if drop > 0:
        res = gate(run_cli, pruned, baseline, "--data", data, "--max-fidelity-drop", drop / 2, "--json")
        check = next(c for c in json.loads(res.out)["checks"] if c["name"] == "fidelity.accuracy")
        assert not check["passed"] and res.code == 1


def test_fidelity_without_labels_compares_predictions(run_cli, shared_models, tmp_path) -> None:
    base_model = shared_models / "derived" / "ic_resnet8_baseline_int8.tflite"
    other = shared_models / "derived" / "ic_resnet8_pruned50_clustered16_int8.tflite"
    name, x = _inputs(base_model, 32, seed=3)
    data = tmp_path / "data.npz"
    np.savez(data, **_arrays({name: x}))
    baseline = tmp_path / "b.json"
    assert gate(run_cli, base_model, baseline, "--update-baseline", "--data", data).code == 0
    stored = json.loads(baseline.read_text())["totals"]
    assert stored["accuracy"] is None and stored["predictions"] == _top1(base_model, x).tolist()
    agree = float(np.mean(_top1(other, x) == _top1(base_model, x)))
    res = gate(run_cli, other, baseline, "--data", data, "--max-fidelity-drop", 1.0, "--json")
    check = next(c for c in json.loads(res.out)["checks"] if c["name"] == "fidelity.top1_agreement")
    assert check["measured"] == pytest.approx(agree, abs=1e-6) and check["passed"]
    same = gate(run_cli, base_model, baseline, "--data", data, "--max-fidelity-drop", 0.0)
    assert same.code == 0, same.out
    if agree < 1.0:
        res = gate(run_cli, other, baseline, "--data", data, "--max-fidelity-drop", 0.0, "--json")
        check = next(c for c in json.loads(res.out)["checks"] if c["name"] == "fidelity.top1_agreement")
        assert not check["passed"]


def test_fidelity_needs_data_now_and_in_the_baseline(run_cli, example, own, tmp_path) -> None:
    base, _ = own
    res = gate(run_cli, example, base, "--max-fidelity-drop", 0.1)
    assert "--data" in one_error_line(res)
    name, x = _inputs(example, 4, seed=0)
    data = tmp_path / "d.npz"
    np.savez(data, **_arrays({name: x}))
    res = gate(run_cli, example, base, "--max-fidelity-drop", 0.1, "--data", data)
    assert res.code == 1 and "needs --data both now and when the baseline was made" in res.out
    bad = tmp_path / "bad.npz"
    np.savez(bad, wrong=np.zeros((2, 3), np.float32))
    assert "bad.npz" in one_error_line(gate(run_cli, example, base, "--max-fidelity-drop", 0.1, "--data", bad))


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("content, expect", [
    (None, "baseline not found"),
    ("{ corrupt", "not valid JSON"),
    ('{"schema": "hwopt.compile/1"}', "is not a hwopt.baseline/1 file"),
    ('{"schema": "hwopt.baseline/1", "model": "m", "target": "ethos-u55-128", "totals": {"cycles": 1}, "layers": []}',
     "field 'totals.sram_bytes' is missing"),
    (b"\xff\xfe\x00garbage", "cannot read baseline"),
])
def test_bad_baselines(run_cli, example, tmp_path, content, expect) -> None:
    base = tmp_path / "b.json"
    if isinstance(content, bytes):
        base.write_bytes(content)
    elif content is not None:
        base.write_text(content)
    junit = tmp_path / "j.xml"
    res = gate(run_cli, example, base, "--junit", junit)
    assert expect in one_error_line(res)
    assert not junit.exists()


def test_baseline_of_another_target(run_cli, example, own) -> None:
    base, _ = own
    assert "ethos-u55-128" in one_error_line(gate(run_cli, example, base, target="ethos-u85-256"))


@pytest.mark.parametrize("case", ["ethos-n", "unknown-target", "corrupt-model", "bad-option"])
def test_bad_input_keeps_the_baseline(run_cli, example, own, tmp_path, case) -> None:
    base, _ = own
    before = base.read_bytes()
    model, target = example, TARGET
    extra: tuple[str, ...] = ()
    if case == "ethos-n":
        target = "ethos-n78-4tops-4ple"
    elif case == "unknown-target":
        target = "no-such-npu"
    elif case == "corrupt-model":
        (tmp_path / "m").mkdir()
        model = tmp_path / "m" / "c.tflite"
        model.write_bytes(b"TFL3" * 100)
    else:
        extra = ("--min-sparsity", "1.5")
    res = gate(run_cli, model, base, "--update-baseline", *extra, target=target)
    one_error_line(res)
    assert base.read_bytes() == before
    assert not [p for p in base.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_vela_compiled_model(run_cli, shared_models, tmp_path) -> None:
    res = gate(run_cli, shared_models / "person_detect_vela.tflite", tmp_path / "b.json", "--update-baseline")
    assert "already compiled by Vela" in one_error_line(res)
    assert not (tmp_path / "b.json").exists()


def test_update_into_missing_directory(run_cli, example, tmp_path) -> None:
    res = gate(run_cli, example, tmp_path / "nope" / "b.json", "--update-baseline")
    assert "does not exist" in one_error_line(res)
    assert os.listdir(tmp_path) == []
