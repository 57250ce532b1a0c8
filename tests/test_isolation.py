"""The isolation worker: native crashes, hangs and memory blow-ups become one error line, exit 2.

Crashes are real: a worker call that dereferences NULL (SIGSEGV), raises SIGFPE or aborts, and
crafted models that make Vela, its weight codec and LiteRT crash once hwopt's checks are off.
"""

from __future__ import annotations

import signal
from pathlib import Path

import hostile
import numpy as np
import pytest
from conftest import CliRunner

from hwopt import isolation
from hwopt._generated.tflite.TensorType import TensorType
from hwopt.errors import ModelFormatError, NativeCodeError, UnsupportedModelError


@pytest.fixture
def fresh() -> isolation.Worker:
    w = isolation.Worker()
    yield w
    w.close()


def test_call_returns_results_and_reuses_the_process(fresh: isolation.Worker) -> None:
    assert fresh.call("math:gcd", 12, 18, library="test") == 6
    pid = fresh.call("os:getpid", library="test")
    assert fresh.call("os:getpid", library="test") == pid  # warm: the same process serves every call
    arr = fresh.call("numpy:arange", 5, library="test")
    assert np.array_equal(arr, np.arange(5))


def test_a_hwopt_folder_in_the_working_directory_is_not_the_workers_hwopt(
        fresh: isolation.Worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `python -m` puts the working directory first on the path: run from another checkout, the
    # worker would import that checkout's hwopt (here one that dies at import) instead of this one.
    fake = tmp_path / "hwopt"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit(7)\n")
    monkeypatch.chdir(tmp_path)
    assert fresh.call("math:gcd", 12, 18, library="test") == 6
    assert Path(fresh.call("os:getcwd", library="test")) != tmp_path


def test_exceptions_cross_the_boundary_unchanged(fresh: isolation.Worker) -> None:
    with pytest.raises(ModelFormatError):
        fresh.call("hwopt.format.tflite_io:read_model", b"not a model", library="test")
    with pytest.raises(ValueError, match="invalid literal"):
        fresh.call("builtins:int", "x", library="test")


@pytest.mark.parametrize(("target", "args", "signame"), [
    ("ctypes:string_at", (0xFFFF_FFFF_FFFF_0000, 1), "SIGSEGV"),
    ("signal:raise_signal", (signal.SIGFPE,), "SIGFPE"),
    ("os:abort", (), "SIGABRT"),
])
def test_a_native_crash_is_one_line_and_the_next_call_works(fresh: isolation.Worker, target: str, args: tuple,
                                                            signame: str) -> None:
    with isolation.subject("operator CONV_2D #3"), pytest.raises(NativeCodeError) as info:
        fresh.call(target, *args, library="Vela")
    assert str(info.value) == f"Vela crashed on this model ({signame}) in operator CONV_2D #3"
    assert info.value.exit_code == 2
    assert fresh.call("math:gcd", 4, 6, library="test") == 2  # a new worker took over


def test_a_hang_is_stopped_at_the_time_limit() -> None:
    w = isolation.Worker(isolation.Limits(seconds=1.0))
    try:
        with pytest.raises(NativeCodeError, match=r"LiteRT did not finish within 1 s on this model .*HWOPT_WORKER_TIMEOUT"):
            w.call("time:sleep", 60, library="LiteRT")
        assert w.call("math:gcd", 4, 6, library="test") == 2
    finally:
        w.close()


def test_memory_beyond_the_limit_stops_the_worker() -> None:
    w = isolation.Worker(isolation.Limits(memory_bytes=256 << 20))
    try:
        with pytest.raises(NativeCodeError, match=r"used more than 256 MiB .*HWOPT_WORKER_MEMORY_MB"):
            w.call("numpy:ones", 200_000_000, library="Vela")  # 1.6 GB, touched page by page
    finally:
        w.close()


def test_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from hwopt.errors import UsageError

    monkeypatch.setenv(isolation.ENV_TIMEOUT, "2.5")
    monkeypatch.setenv(isolation.ENV_MEMORY, "512")
    assert isolation.Limits.from_env() == isolation.Limits(2.5, 512 << 20)
    monkeypatch.setenv(isolation.ENV_TIMEOUT, "soon")
    with pytest.raises(UsageError, match="HWOPT_WORKER_TIMEOUT must be a number"):
        isolation.Limits.from_env()
    monkeypatch.setenv(isolation.ENV_TIMEOUT, "0")
    with pytest.raises(UsageError, match="positive"):
        isolation.Limits.from_env()


def test_inline_mode_runs_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv(isolation.ENV_MODE, "inline")
    assert isolation.Worker().call("os:getpid", library="test") == os.getpid()


def _no_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch hwopt's own model checks off, so the crafted model reaches the native library."""
    import importlib

    # Import every user first: a module imported after the patch would keep the stand-in for good.
    modules = [importlib.import_module(name) for name in (
        "hwopt.analysis.validate", "hwopt.targets.ethos_u.vela_engine", "hwopt.analysis.litert",
        "hwopt.engines.estimate", "hwopt.engines.check", "hwopt.engines.encode")]
    for module in modules:
        if hasattr(module, "check_for_native"):
            monkeypatch.setattr(module, "check_for_native", lambda model, engine: None)
    monkeypatch.setattr(modules[0], "operator_problem", lambda model, sg, op, engine: None)


def test_vela_sigfpe_on_int4_weights_is_exit_2(tmp_path: Path, run_cli: CliRunner,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "int4.tflite"
    model.write_bytes(hostile.conv_model(weight_type=TensorType.INT4, seed=7))  # bytes no other test caches
    _no_checks(monkeypatch)
    r = run_cli("estimate", model, "--target", "ethos-u55-128")
    assert r.code == 2, r.err
    assert r.err.strip() == "hwopt: error: Vela crashed on this model (SIGFPE)"


def test_vela_sigsegv_on_a_zero_point_out_of_range_is_exit_2(tmp_path: Path, run_cli: CliRunner,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "zp.tflite"
    model.write_bytes(hostile.conv_model(weight_zp=1000, seed=7))  # bytes no other test caches
    _no_checks(monkeypatch)
    r = run_cli("encode", model, "--target", "ethos-u55-128", "--blocks", "vela")  # a Regor compile
    assert r.code == 2, r.err
    assert r.err.strip() == "hwopt: error: Vela crashed on this model (SIGSEGV)"


def test_litert_crash_on_a_missing_filter_is_exit_2(tmp_path: Path, run_cli: CliRunner,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from hwopt.analysis.litert import Runner

    _no_checks(monkeypatch)
    # LiteRT reads tensor -1 here: depending on what lies in memory it crashes (SIGSEGV) or reports
    # the missing tensor itself; either way hwopt gives one line and exit 2.
    with pytest.raises((NativeCodeError, UnsupportedModelError),
                       match=r"^LiteRT (crashed on this model \(SIG|cannot load the model)"):
        Runner(hostile.conv_model(filter_missing=True, seed=7))


def test_litert_out_of_memory_at_load_is_an_unsupported_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # LiteRT reports a failed C++ allocation (std::bad_alloc) as MemoryError: one error line, not a traceback.
    import ai_edge_litert.interpreter as interpreter

    from hwopt.analysis.litert import LocalRunner

    def bad_alloc(*args: object, **kwargs: object) -> None:
        raise MemoryError("std::bad_alloc")

    monkeypatch.setattr(interpreter, "Interpreter", bad_alloc)
    with pytest.raises(UnsupportedModelError, match=r"^LiteRT cannot load the model: out of memory \(std::bad_alloc\)$"):
        LocalRunner(b"")
