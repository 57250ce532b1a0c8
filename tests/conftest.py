"""Shared fixtures: the shared model folder, its int8 models, and ways to run the CLI.

The real third-party models live outside the repository in `../shared/models` (relative to
the repository root; the environment variable HWOPT_SHARED_MODELS overrides it). Tests that
need them use the `shared_models` fixture and are skipped with a clear reason without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_ENV = "HWOPT_SHARED_MODELS"
SKIP_REASON = "shared models folder ../shared/models not found"


def shared_models_dir() -> Path | None:
    """The shared model folder, or None when it is absent."""
    env = os.environ.get(SHARED_ENV)
    path = Path(env) if env else ROOT.parent / "shared" / "models"
    return path if path.is_dir() else None


@lru_cache(maxsize=1)
def _model_kinds(folder: str) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """(all .tflite files, the int8 ones): int8 = readable, not Vela-compiled, no float weights."""
    from hwopt.analysis.layers import weight_layers
    from hwopt.format.tflite_io import read_model

    every = tuple(sorted(Path(folder).rglob("*.tflite")))
    int8 = []
    for path in every:
        model = read_model(path)
        if model.vela_compiled:
            continue
        if any(wl.weights(model).dtype.is_float for wl in weight_layers(model)):
            continue
        int8.append(path)
    return every, tuple(int8)


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """Path of ../shared/models; skips the test when the folder is not there."""
    path = shared_models_dir()
    if path is None:
        pytest.skip(SKIP_REASON)
    return path


@pytest.fixture(scope="session")
def all_models(shared_models: Path) -> list[Path]:
    """Every .tflite file under the shared folder (sorted, derived/ included)."""
    return list(_model_kinds(str(shared_models))[0])


@pytest.fixture(scope="session")
def int8_models(shared_models: Path) -> list[Path]:
    """The shared models with integer weights: float and Vela-compiled files left out."""
    return list(_model_kinds(str(shared_models))[1])


def shared_model_paths(int8_only: bool = False) -> list[Path]:
    """The same lists for `pytest.mark.parametrize` (empty without the shared folder)."""
    folder = shared_models_dir()
    if folder is None:
        return []
    every, int8 = _model_kinds(str(folder))
    return list(int8 if int8_only else every)


def model_id(path: Path) -> str:
    """A short test id for a shared model: its path relative to the shared folder."""
    folder = shared_models_dir()
    if folder is not None and path.is_relative_to(folder):
        return path.relative_to(folder).with_suffix("").as_posix()
    return path.stem


@dataclass(frozen=True)
class CliResult:
    """Exit code and captured text of one CLI run."""

    code: int
    out: str
    err: str


CliRunner = Callable[..., CliResult]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Run `hwopt ARGS...` in-process through `hwopt.cli.main` and capture its output."""
    from hwopt.cli import main

    def run(*argv: str | os.PathLike[str]) -> CliResult:
        capsys.readouterr()
        try:
            code = main([os.fspath(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors and --help/--version
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_cli_subprocess(*argv: str | os.PathLike[str], timeout: float = 300.0,
                       env: dict[str, str] | None = None, cwd: Path | None = None) -> CliResult:
    """Run `python -m hwopt ARGS...` in a fresh interpreter (the installed entry point path)."""
    cmd: Sequence[str] = [sys.executable, "-m", "hwopt", *(os.fspath(a) for a in argv)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd or ROOT, check=False)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run_cli_proc() -> Callable[..., CliResult]:
    """Fixture form of `run_cli_subprocess`."""
    return run_cli_subprocess
