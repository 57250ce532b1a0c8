"""The gate baseline is checked field by field: bad types, ranges, sizes and nesting are exit 2 naming the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, CliRunner

EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"


@pytest.fixture(scope="module")
def baseline_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    from hwopt.cli import main

    path = tmp_path_factory.mktemp("base") / "b.json"
    assert main(["gate", str(EXAMPLE), "--target", "ethos-u55-128", "--baseline", str(path), "--update-baseline"]) == 0
    return path.read_text()


def _gate(run_cli: CliRunner, tmp_path: Path, text: str):
    path = tmp_path / "b.json"
    path.write_text(text)
    return run_cli("gate", EXAMPLE, "--target", "ethos-u55-128", "--baseline", path)


def test_the_written_baseline_passes(run_cli: CliRunner, tmp_path: Path, baseline_text: str) -> None:
    assert _gate(run_cli, tmp_path, baseline_text).code == 0


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["totals"].update(cycles="x"), "field 'totals.cycles' must be a whole number, got \"x\""),
    (lambda d: d["totals"].update(cycles=None), "field 'totals.cycles' must be a whole number, got null"),
    (lambda d: d["totals"].update(cycles=-5), "field 'totals.cycles' must lie in 0.."),
    (lambda d: d["totals"].update(flash_bytes=-1), "field 'totals.flash_bytes' must lie in 0.."),
    (lambda d: d["totals"].update(sparsity=1.5), "field 'totals.sparsity' must lie in [0, 1], got 1.5"),
    (lambda d: d["totals"].update(cycles=True), "field 'totals.cycles' must be a whole number, got true"),
    (lambda d: d["totals"].pop("macs"), "field 'totals.macs' is missing"),
    (lambda d: d["totals"].update(bogus=1), "field 'totals.bogus' is not a baseline field"),
    (lambda d: d["layers"][0].update(cycles=-3), "field 'layers[0].cycles' must lie in 0.."),
    (lambda d: d["layers"][0].update(op=7), "field 'layers[0].op' must be a string, got 7"),
    (lambda d: d["layers"][0].update(placement="gpu"), "field 'layers[0].placement' must be \"npu\" or \"cpu\""),
    (lambda d: d.update(layers={"a": 1}), "field 'layers' must be a list"),
    (lambda d: d.update(model=None), "field 'model' must be a string, got null"),
])
def test_bad_fields_are_named(run_cli: CliRunner, tmp_path: Path, baseline_text: str, edit, message: str) -> None:
    data = json.loads(baseline_text)
    edit(data)
    r = _gate(run_cli, tmp_path, json.dumps(data))
    assert r.code == 2, r.err
    assert message in r.err and r.err.startswith("hwopt: error: --baseline ") and len(r.err.splitlines()) == 1


@pytest.mark.parametrize(("pattern", "new", "message"), [
    (r'"cycles": \d+', '"cycles": 1' + "0" * 400, "'layers[0].cycles' must lie in 0..4611686018427387904, got a 401-digit"),
    (r'"sparsity": [0-9.]+', '"sparsity": NaN', "NaN is not a number"),
    (r'"sparsity": [0-9.]+', '"sparsity": -Infinity', "-Infinity is not a number"),
])
def test_huge_and_non_finite_numbers(run_cli: CliRunner, tmp_path: Path, baseline_text: str, pattern: str, new: str,
                                     message: str) -> None:
    text = re.sub(pattern, new, baseline_text, count=1)
    assert text != baseline_text
    r = _gate(run_cli, tmp_path, text)
    assert r.code == 2 and message in r.err, r.err


@pytest.mark.parametrize("depth", [20, 100_000])
def test_deep_nesting(run_cli: CliRunner, tmp_path: Path, baseline_text: str, depth: int) -> None:
    data = json.loads(baseline_text)
    text = json.dumps(data).replace('"layers": [', '"layers": [' + "[" * depth + "]" * depth + ",", 1)
    r = _gate(run_cli, tmp_path, text)
    assert r.code == 2 and "nested deeper than" in r.err, r.err


def test_a_negative_total_is_never_a_pass(run_cli: CliRunner, tmp_path: Path, baseline_text: str) -> None:
    """Negative totals made every relative check pass: a gate bypass."""
    data = json.loads(baseline_text)
    for key in ("cycles", "sram_bytes", "flash_bytes", "encoded_weight_bytes"):
        data["totals"][key] = -(10**9)
    r = _gate(run_cli, tmp_path, json.dumps(data))
    assert r.code == 2 and "must lie in 0.." in r.err
