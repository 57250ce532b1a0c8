"""The type checker sees across hwopt ↔ targets ↔ passes: a planted wrong call is reported, never hidden as Any.

A copy of the package (with its `hwopt/passes` and `hwopt/targets` links) gets two planted
modules: one in hwopt/engines calling into hwopt.targets with an argument of the wrong type,
one in passes/ calling into hwopt.analysis the same way. mypy, run with the project's own
configuration, must report both.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ENGINE_PLANT = '''"""Planted: a Target is required, an int is given."""
from hwopt.targets import Target
from hwopt.targets.ethos_u.weights import arch_of


def planted_engine_call(target: Target) -> None:
    arch_of(128)
'''

PASS_PLANT = '''"""Planted: a Model is required, a str is given."""
from hwopt.analysis.layers import weight_layers


def planted_pass_call() -> None:
    weight_layers("model.tflite")
'''


def _copy_tree(dst: Path) -> None:
    shutil.copy2(ROOT / "pyproject.toml", dst / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")
    for folder in ("passes", "targets"):
        shutil.copytree(ROOT / folder, dst / folder, ignore=ignore)
    # symlinks=True keeps hwopt/passes and hwopt/targets as links into the copy's own folders
    shutil.copytree(ROOT / "hwopt", dst / "hwopt", symlinks=True, ignore=ignore)


def test_links_are_links() -> None:
    for name in ("passes", "targets"):
        link = ROOT / "hwopt" / name
        assert link.is_symlink() and os.readlink(link).rstrip("/") == f"../{name}"


def test_planted_cross_boundary_errors_are_reported(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install hwopt[test])")
    _copy_tree(tmp_path)
    (tmp_path / "hwopt" / "engines" / "_planted.py").write_text(ENGINE_PLANT, encoding="utf-8")
    (tmp_path / "passes" / "_planted.py").write_text(PASS_PLANT, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / ".mypy_cache")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    engine = [e for e in errors if "engines/_planted.py" in e]
    passes = [e for e in errors if "passes/_planted.py" in e]
    assert engine and '"arch_of" has incompatible type "int"; expected "Target"' in engine[0], out
    assert passes and '"weight_layers" has incompatible type "str"; expected "Model"' in passes[0], out
    # nothing else: the copy of the project is otherwise clean
    assert len(errors) == 2, out
