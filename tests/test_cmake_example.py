"""docs/cmake-example: a firmware build that compiles the model with hwopt and gates it under CTest."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"
SOURCE = ROOT / "docs" / "cmake-example"
HWOPT = Path(sys.executable).parent / "hwopt"
TARGET = "ethos-u55-128"

pytestmark = [
    pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("ctest") is None, reason="cmake/ctest not installed"),
    pytest.mark.skipif(not HWOPT.is_file(), reason="hwopt console script not installed next to the Python interpreter"),
]


def _run(*cmd: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, timeout=600, check=False)


def _configure(build: Path, model: Path, baseline: Path, *extra: str) -> None:
    res = _run("cmake", "-S", SOURCE, "-B", build, f"-DHWOPT_EXECUTABLE={HWOPT}", f"-DHWOPT_MODEL={model}",
               f"-DHWOPT_BASELINE={baseline}", f"-DHWOPT_TARGET={TARGET}", *extra)
    assert res.returncode == 0, res.stdout + res.stderr


def _ctest(build: Path) -> subprocess.CompletedProcess[str]:
    return _run("ctest", "--test-dir", build, "--output-on-failure")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert EXAMPLE.is_file(), "the bundled example model is part of hwopt (tools/make_example_model.py)"
    # Dots in the name: the build must name the output as hwopt does (up to the last suffix).
    path = tmp_path_factory.mktemp("model") / "example.v1_int8.tflite"
    path.write_bytes(EXAMPLE.read_bytes())
    return path


def test_build_compiles_and_ctest_gates(model, tmp_path) -> None:
    build, baseline = tmp_path / "build", tmp_path / "baseline.json"
    _configure(build, model, baseline)
    res = _run("cmake", "--build", build)
    assert res.returncode == 0, res.stdout + res.stderr
    npu = build / "npu" / f"example.v1_int8_{TARGET}.tflite"
    assert npu.is_file() and npu.read_bytes()[4:8] == b"TFL3"
    assert {"report.json", "report.html", "per_layer.csv", "report.md"} <= {p.name for p in npu.parent.iterdir()}
    # A second build is a no-op: the compiled model is up to date.
    again = _run("cmake", "--build", build)
    assert again.returncode == 0 and "hwopt: compiling" not in again.stdout

    # No baseline yet: the gate test fails with the hint to create one.
    first = _ctest(build)
    assert first.returncode != 0 and "--update-baseline" in first.stdout
    upd = _run(HWOPT, "gate", model, "--target", TARGET, "--baseline", baseline, "--update-baseline")
    assert upd.returncode == 0, upd.stderr
    ok = _ctest(build)
    assert ok.returncode == 0, ok.stdout
    junit = ET.parse(build / "hwopt-gate.xml").getroot()
    assert junit.get("failures") == "0" and int(junit.get("tests", "0")) > 5


def test_regressions_fail_ctest(model, tmp_path) -> None:
    build, baseline = tmp_path / "build", tmp_path / "sparse-baseline.json"
    # The baseline of a sparser model (80% pruned): the deployed model regresses against it.
    sparser = tmp_path / "sparser.tflite"
    res = _run(HWOPT, "enforce", model, "--pipeline", "prune{sparsity=0.8}", "-o", sparser)
    assert res.returncode == 0, res.stderr
    res = _run(HWOPT, "gate", sparser, "--target", TARGET, "--baseline", baseline, "--update-baseline")
    assert res.returncode == 0, res.stderr
    _configure(build, model, baseline)
    assert _run("cmake", "--build", build).returncode == 0
    failed = _ctest(build)
    assert failed.returncode != 0
    assert "FAIL" in failed.stdout and "sparsity" in failed.stdout
    junit = ET.parse(build / "hwopt-gate.xml").getroot()
    assert int(junit.get("failures", "0")) > 0

    # Its own baseline, but a flash budget that cannot hold.
    own = tmp_path / "own.json"
    assert _run(HWOPT, "gate", model, "--target", TARGET, "--baseline", own, "--update-baseline").returncode == 0
    _configure(build, model, own)
    assert _ctest(build).returncode == 0
    _configure(build, model, own, "-DHWOPT_GATE_ARGS=--max-flash;1024")
    budget = _ctest(build)
    assert budget.returncode != 0 and "vs budget 1,024 bytes" in budget.stdout


def test_documented_commands_use_real_options() -> None:
    """Every --option the CI workflow and the integration guide give compile/gate exists in the CLI."""
    import argparse
    import re

    from hwopt.cli import compile as compile_cli
    from hwopt.cli import gate as gate_cli

    known: dict[str, set[str]] = {}
    for name, mod in (("compile", compile_cli), ("gate", gate_cli)):
        sub = argparse.ArgumentParser().add_subparsers()
        mod.register(sub)
        parser = sub.choices[name]
        known[name] = {opt for action in parser._actions for opt in action.option_strings}
    texts = [(ROOT / "docs" / "ci-workflow.yml").read_text(), (ROOT / "docs" / "firmware-integration.md").read_text(),
             (SOURCE / "CMakeLists.txt").read_text()]
    found = 0
    for text in texts:
        for cmd, rest in re.findall(r"hwopt (compile|gate)\b([^\n]*(?:\n[ \t]+--[^\n]*)*)", text):
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", rest):
                assert opt in known[cmd], (cmd, opt)
                found += 1
    assert found > 20
