"""A Vela compile started ahead of need (hwopt.targets.ethos_u.vela_start and the CLI's early step):
taken only by the very same request, stopped otherwise, and never changing what a command reports."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRunner

from hwopt import isolation
from hwopt.engines.compile import EXAMPLE_MODEL
from hwopt.errors import NativeCodeError
from hwopt.preloads import LATER, VELA_COMPILE_PRELOAD, VELA_PRELOAD
from hwopt.targets import resolve_target
from hwopt.targets.ethos_u import vela_start
from hwopt.targets.ethos_u.vela_config import CompilerOptions
from hwopt.targets.ethos_u.vela_engine import regor_compile

U55 = "ethos-u55-128"


@pytest.fixture
def regor_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bytes]]:
    """Every Regor compile sent to the worker, as (architecture, model bytes)."""
    calls: list[tuple[str, bytes]] = []
    real = isolation.Worker.call

    def counting(self: isolation.Worker, target: str, *args: Any, library: str, **kwargs: Any) -> Any:
        if target == vela_start.REGOR_CALL:
            calls.append((args[0], bytes(args[1])))
        return real(self, target, *args, library=library, **kwargs)

    monkeypatch.setattr(isolation.Worker, "call", counting)
    yield calls
    vela_start.discard()


def test_the_same_request_takes_the_started_compile(regor_calls: list[tuple[str, bytes]]) -> None:
    data = EXAMPLE_MODEL.read_bytes()
    target = resolve_target(U55)
    assert vela_start.start(data, target)
    assert not vela_start.start(data, target)  # one at a time
    started, _ = regor_compile(data, target)
    assert len(regor_calls) == 1  # the engine took the compile started first instead of compiling again
    vela_start.discard()
    again, _ = regor_compile(data, target)
    assert len(regor_calls) == 2
    assert started.model == again.model and started.perf == again.perf


@pytest.mark.parametrize("change", ["bytes", "target", "options"])
def test_another_request_compiles_anew(regor_calls: list[tuple[str, bytes]], change: str) -> None:
    data = EXAMPLE_MODEL.read_bytes()
    target = resolve_target(U55)
    vela_start.start(data + b"\0" * 16 if change == "bytes" else data, target)
    want_target = resolve_target("ethos-u85-256") if change == "target" else target
    options = CompilerOptions(optimise="Size") if change == "options" else None
    out, _ = regor_compile(data, want_target, options)
    assert len(regor_calls) == 2  # the started compile was not this request
    assert regor_calls[-1][1] == data
    fresh, _ = regor_compile(data, want_target, options)
    assert out.model == fresh.model


def test_the_worker_starts_at_once_while_a_call_is_in_flight() -> None:
    """`start` (as the engines call it) does not wait for a compile another thread has in flight."""
    started = threading.Event()

    def run() -> None:
        started.set()
        with contextlib.suppress(NativeCodeError):
            isolation.call("time:sleep", 30, library="test")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    started.wait()
    time.sleep(0.3)
    t0 = time.monotonic()
    isolation.worker().start()  # a call is in flight: start returns at once, it does not wait for the call
    assert time.monotonic() - t0 < 5
    isolation.interrupt()
    t.join(10)
    assert not t.is_alive()


def test_inline_mode_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(isolation.ENV_MODE, "inline")
    assert not vela_start.start(EXAMPLE_MODEL.read_bytes(), resolve_target(U55))
    assert vela_start.take(vela_start.request_of(resolve_target(U55)), EXAMPLE_MODEL.read_bytes()) is None


def test_compile_and_encode_run_vela_once_and_report_as_before(tmp_path: Path, run_cli: CliRunner,
                                                               regor_calls: list[tuple[str, bytes]],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(EXAMPLE_MODEL.read_bytes())
    early = run_cli("compile", model, "--target", U55, "-o", tmp_path / "a", "--json")
    assert early.code == 0 and len(regor_calls) == 1
    early_enc = run_cli("encode", model, "--target", U55, "--json")  # --blocks vela is the Ethos-U default
    assert early_enc.code == 0 and len(regor_calls) == 2
    # The same commands with the early step switched off: the same reports and files.
    monkeypatch.setattr("hwopt.cli.early.vela_start.start", lambda *a, **k: False)
    late = run_cli("compile", model, "--target", U55, "-o", tmp_path / "b", "--json")
    late_enc = run_cli("encode", model, "--target", U55, "--json")
    assert len(regor_calls) == 4
    assert json.loads(early.out) | {"output_model": ""} == json.loads(late.out) | {"output_model": ""}
    assert early_enc.out == late_enc.out
    for name in sorted(p.name for p in (tmp_path / "a").iterdir()):
        if name != "report.json":
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_discard_stops_a_compile_nobody_takes(regor_calls: list[tuple[str, bytes]]) -> None:
    assert vela_start.start(EXAMPLE_MODEL.read_bytes(), resolve_target(U55))
    vela_start.discard()
    assert vela_start.take(vela_start.request_of(resolve_target(U55)), EXAMPLE_MODEL.read_bytes()) is None
    out, _ = regor_compile(EXAMPLE_MODEL.read_bytes(), resolve_target(U55))  # the worker serves the next call
    assert out.model and len(regor_calls) == 2


def test_only_an_ethos_u_encode_with_vela_blocks_starts_the_worker_and_it_is_the_default() -> None:
    from hwopt.cli import build_parser, early, wants_worker

    def started(*argv: str) -> bool:
        args = build_parser("encode").parse_args(["encode", str(EXAMPLE_MODEL), *argv])
        if wants_worker(args):  # as the CLI does right after parsing the flags, before the early step
            isolation.prestart(*args.worker)
        early.start_encode(args)
        try:
            return isolation.worker()._proc is not None
        finally:
            vela_start.discard()
            isolation.shutdown()

    assert not started("--target", "ethos-n78-4tops-4ple", "--blocks", "vela")
    assert not started("--target", "ethos-n78-4tops-4ple")
    assert not started("--target", U55, "--blocks", "rule")  # the search path compiles nothing
    assert started("--target", U55, "--blocks", "vela")
    assert started("--target", U55)  # Vela's blocks and streams are the Ethos-U default


def test_the_rule_encode_never_compiles(tmp_path: Path, run_cli: CliRunner, regor_calls: list[tuple[str, bytes]],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`--blocks rule` takes its block configurations from hwopt's searches: no Vela compile at all."""
    from hwopt.targets.ethos_u import vela_engine

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("Vela compiled on the --blocks rule encode path")

    monkeypatch.setattr(vela_engine, "regor_compile", refuse)
    monkeypatch.setattr("hwopt.targets.ethos_u.vela_blocks.regor_compile", refuse)
    for target in (U55, "ethos-u65-512", "ethos-u85-256"):
        out = run_cli("encode", EXAMPLE_MODEL, "--target", target, "--json", "--blocks", "rule")
        assert out.code == 0, out.err
        doc = json.loads(out.out)
        assert doc["block_source"] == "rule" and doc["summary"]["vela_encoded_bytes"] is None
        assert {la["block_source"] for la in doc["layers"] if la["encodable"]} == {"search"}
    assert regor_calls == []


def test_the_worker_imports_later_modules_after_its_first_answer() -> None:
    """Vela's codec (it imports numpy) is no part of the compile: the worker loads it once the compile is answered."""
    w = isolation.Worker()
    try:
        w.start(("math", LATER, "xml.dom.minidom"))
        probe = "'xml.dom.minidom' in __import__('sys').modules"
        assert w.call("builtins:eval", probe, library="test") is False
        assert w.call("builtins:eval", probe, library="test") is True
    finally:
        w.close()
    assert VELA_PRELOAD.index(LATER) < VELA_PRELOAD.index("ethosu.mlw_codec")
    assert VELA_PRELOAD.index("ethosu.regor") < VELA_PRELOAD.index(LATER)


def test_the_early_step_loads_no_numpy() -> None:
    """The compile is sent before numpy loads: resolving the target and starting the request need none."""
    code = ("import sys; from hwopt.cli import early; from hwopt.targets import resolve_target; "
            "resolve_target('ethos-u55-128'); resolve_target('ethos-n78-4tops-4ple'); "
            "print(sorted(m for m in sys.modules if m == 'numpy' or m.startswith(('hwopt.engines', 'hwopt.format'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_a_compile_worker_never_loads_the_weight_codec() -> None:
    from hwopt.cli import build_parser

    args = build_parser("compile").parse_args(["compile", str(EXAMPLE_MODEL), "--target", U55])
    assert args.worker == VELA_COMPILE_PRELOAD and "ethosu.mlw_codec" not in VELA_COMPILE_PRELOAD
    w = isolation.Worker()
    try:
        w.start(VELA_COMPILE_PRELOAD)
        probe = "sorted(m for m in ('numpy', 'ethosu.mlw_codec', 'ethosu.regor') if m in __import__('sys').modules)"
        assert w.call("builtins:eval", probe, library="test") == ["ethosu.regor"]
        assert w.call("builtins:eval", probe, library="test") == ["ethosu.regor"]  # nothing loads after the first call
    finally:
        w.close()


@pytest.mark.parametrize("kind", ["fifo", "device", "missing", "directory"])
def test_the_early_step_never_reads_what_the_command_refuses(tmp_path: Path, kind: str) -> None:
    """A pipe or a device is never read (it could block or never end); the command refuses it as before."""
    from hwopt.cli import build_parser, early

    path = {"fifo": tmp_path / "pipe.tflite", "device": Path("/dev/zero"), "missing": tmp_path / "no.tflite",
            "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    for command, extra in (("compile", ["-o", str(tmp_path / "out")]), ("encode", [])):
        args = build_parser(command).parse_args([command, str(path), "--target", U55, *extra])
        t0 = time.monotonic()
        getattr(early, f"start_{command}")(args)
        assert time.monotonic() - t0 < 10
        assert vela_start.take(vela_start.request_of(resolve_target(U55)), b"") is None  # nothing was started
