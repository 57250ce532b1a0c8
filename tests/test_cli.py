"""The CLI contract: exit codes 0/1/2 and one clear stderr line for every bad input."""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, CliResult, run_cli_subprocess
from modelgen import ModelBuilder, int8_conv_model, quantization

EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"
Runner = Callable[..., CliResult]


def one_error_line(res: CliResult) -> str:
    """The single stderr line of a failed run (no traceback)."""
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert "Traceback" not in res.err and "error:" in lines[0]
    return lines[0]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _bad_buffer_index() -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    sg.tensor("w", (2, 2), "int8", buffer=99, quant=quantization(0.1, 0))
    sg.io([], [0])
    return mb.build()


def _absurd_shape() -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    sg.tensor("huge", (1 << 20, 1 << 20, 4), "int8")
    sg.io([0], [0])
    return mb.build()


def _negative_shape() -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    sg.tensor("neg", (1, -5, 3), "int8")
    sg.io([0], [0])
    return mb.build()


def _short_buffer() -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    sg.tensor("w", (4, 4), "int8", data=np.zeros(10, np.int8), quant=quantization(0.1, 0))
    sg.io([], [0])
    return mb.build()


def _root_offset(value: int) -> bytes:
    data = bytearray(int8_conv_model())
    struct.pack_into("<I", data, 0, value)
    return bytes(data)


def _bad_vector_offset() -> bytes:
    """The subgraphs vector offset of the root table points far past the end."""
    data = bytearray(int8_conv_model())
    root = struct.unpack_from("<I", data, 0)[0]
    vt = root - struct.unpack_from("<i", data, root)[0]
    field = struct.unpack_from("<H", data, vt + 4 + 2 * 2)[0]  # Model field 2: subgraphs
    struct.pack_into("<I", data, root + field, 0x7FFFFF00)
    return bytes(data)


BAD_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "text": (lambda: b"this is not a model at all, just some text\n" * 4, "not a TFLite flatbuffer"),
    "empty": (lambda: b"", "too short"),
    "identifier": (lambda: int8_conv_model()[:4] + b"XYZ1" + int8_conv_model()[8:], "file identifier"),
    "truncated": (lambda: int8_conv_model()[:700], "corrupt flatbuffer"),
    "root-offset": (lambda: _root_offset(0xFFFFFFF0), "corrupt flatbuffer"),
    "vector-offset": (_bad_vector_offset, "corrupt flatbuffer"),
    "buffer-index": (_bad_buffer_index, "buffer index 99 out of range"),
    "absurd-shape": (_absurd_shape, "absurd shape"),
    "negative-shape": (_negative_shape, "absurd shape"),
    "short-buffer": (_short_buffer, "needs 16 elements"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_model_files(kind: str, tmp_path: Path, run_cli: Runner) -> None:
    make, needle = BAD_FILES[kind]
    path = _write(tmp_path, f"{kind}.tflite", make())
    for extra in ((), ("--json",)):
        res = run_cli("audit", path, *extra)
        assert res.code == 2 and res.out == ""
        line = one_error_line(res)
        assert line.startswith("hwopt: error: ") and needle in line


def test_missing_file_and_directory(tmp_path: Path, run_cli: Runner) -> None:
    res = run_cli("audit", tmp_path / "absent.tflite")
    assert res.code == 2 and "no such file" in one_error_line(res)
    res = run_cli("audit", tmp_path)
    assert res.code == 2 and "is a directory" in one_error_line(res)


@pytest.mark.parametrize("args", [
    ["--expect-sparsity", "2"], ["--expect-sparsity", "-0.5"], ["--expect-sparsity", "abc"],
    ["--expect-clusters", "0"], ["--expect-clusters", "many"], ["--no-such-option"],
])
def test_bad_option_values(args: list[str], run_cli: Runner) -> None:
    res = run_cli("audit", EXAMPLE, *args)
    assert res.code == 2
    one_error_line(res)


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["audit"]])
def test_usage_errors(argv: list[str], run_cli: Runner) -> None:
    res = run_cli(*argv)
    assert res.code == 2 and res.out == ""
    if argv:
        assert one_error_line(res).startswith("hwopt: error: ")


@pytest.mark.parametrize("command", ["audit", "targets", "check", "estimate", "encode", "enforce", "compile", "gate",
                                     "tree", "sweep", "explore"])
def test_every_command_reports_a_usage_error_as_one_hwopt_error_line(command: str, run_cli: Runner) -> None:
    """An unknown flag on any command: exit 2 and the README's one `hwopt: error: ...` line."""
    from hwopt.cli import COMMANDS

    assert command in COMMANDS
    res = run_cli(command, "--no-such-flag")
    assert res.code == 2 and res.out == ""
    line = one_error_line(res)
    assert line.startswith("hwopt: error: ") and line.endswith("--help)")


def test_ok_and_findings_exit_codes(run_cli: Runner) -> None:
    res = run_cli("audit", EXAMPLE)
    assert res.code == 0 and "CONV_2D" in res.out and res.err == ""
    res = run_cli("audit", EXAMPLE, "--json", "--expect-sparsity", "0.5", "--expect-clusters", "16", "--per-channel")
    assert res.code == 0
    doc = json.loads(res.out)
    assert doc["schema"] == "hwopt.audit/1" and not any(f["severity"] == "error" for f in doc["findings"])
    res = run_cli("audit", EXAMPLE, "--json", "--expect-clusters", "16")
    assert res.code == 1
    assert any(f["rule"] == "expect-clusters" for f in json.loads(res.out)["findings"])
    res = run_cli("audit", EXAMPLE, "--expect-sparsity", "0.9")
    assert res.code == 1 and "expect-sparsity" in res.out


def test_float_model_expect_int8(shared_models: Path, run_cli: Runner) -> None:
    path = shared_models / "hello_world_float.tflite"
    assert run_cli("audit", path).code == 0
    res = run_cli("audit", path, "--expect-int8", "--json")
    assert res.code == 1
    assert {f["rule"] for f in json.loads(res.out)["findings"]} >= {"float-operator", "expect-int8"}


def test_version_and_help(run_cli: Runner) -> None:
    res = run_cli("--version")
    assert res.code == 0 and res.out.startswith("hwopt ")
    res = run_cli("audit", "--help")
    assert res.code == 0 and "--expect-sparsity" in res.out


def test_json_output_is_byte_identical_between_runs(run_cli: Runner) -> None:
    a = run_cli("audit", EXAMPLE, "--json").out
    b = run_cli("audit", EXAMPLE, "--json").out
    assert a == b and a.endswith("\n")


class TestSubprocess:
    def test_audit_json(self) -> None:
        res = run_cli_subprocess("audit", "--json", EXAMPLE)
        assert res.code == 0, res.err
        assert json.loads(res.out)["summary"]["layers"] == 5

    def test_bad_file(self, tmp_path: Path) -> None:
        res = run_cli_subprocess("audit", _write(tmp_path, "t.tflite", int8_conv_model()[:300]))
        assert res.code == 2
        assert one_error_line(res).startswith("hwopt: error: corrupt flatbuffer")

    def test_bad_option(self) -> None:
        res = run_cli_subprocess("audit", EXAMPLE, "--expect-sparsity", "2")
        assert res.code == 2 and "--expect-sparsity" in one_error_line(res)

    def test_audit_path_never_imports_tensorflow(self) -> None:
        code = (
            "import sys, io, contextlib\n"
            "import hwopt\n"
            "from hwopt.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main(['audit', '--json', {str(EXAMPLE)!r}])\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', "
            "'tensorflow_model_optimization', 'torch'))\n"
            "print(','.join(bad))\n"
        )
        import subprocess

        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == ""


def test_parser_for_one_command_has_that_commands_flags() -> None:
    """`hwopt CMD ...` builds only CMD's parser; its flags and defaults equal the full parser's."""
    import argparse

    from hwopt.cli import COMMANDS, build_parser, chosen_command

    def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return dict(sub.choices)

    full = subparsers(build_parser())
    for name in COMMANDS:
        one = subparsers(build_parser(name))
        assert list(one) == [name]
        assert [a.option_strings for a in one[name]._actions] == [a.option_strings for a in full[name]._actions]
        assert one[name].get_default("handler") == full[name].get_default("handler")
    assert chosen_command(["-v", "audit", "m.tflite"]) == "audit"
    assert chosen_command(["--help"]) is None and chosen_command(["audti", "x"]) is None


@pytest.mark.parametrize("columns", [None, "120", "0", "wide"])
def test_help_width_is_the_one_argparse_would_choose(columns: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI sizes help without importing shutil; the width must equal argparse's own choice."""
    import shutil

    from hwopt.cli import help_width

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert help_width() == shutil.get_terminal_size().columns - 2


def test_a_command_collects_young_objects_less_often_and_restores_the_threshold(
        run_cli: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a command runs the young-generation threshold is the CLI's; afterwards the caller's again."""
    import gc

    import hwopt.cli
    from hwopt.cli import GC_YOUNG_THRESHOLD

    seen = []
    real_load = hwopt.cli.load_handler

    def load_handler(handler: str) -> Callable[..., int]:
        seen.append(gc.get_threshold())
        return real_load(handler)

    monkeypatch.setattr(hwopt.cli, "load_handler", load_handler)
    model = tmp_path / "m.tflite"
    model.write_bytes(int8_conv_model())
    before = gc.get_threshold()
    assert run_cli("audit", "--json", model).code == 0
    assert seen == [(GC_YOUNG_THRESHOLD, *before[1:])] and gc.get_threshold() == before


def test_a_fast_exit_command_flushes_all_its_output_and_keeps_its_exit_code(run_cli: Runner) -> None:
    """`hwopt audit` ends its process without interpreter teardown: stdout must be complete and
    byte-identical to the in-process run, and a failed expectation must still exit 1."""
    args = ("audit", "--json", EXAMPLE, "--expect-sparsity", "0.99")
    inproc = run_cli(*args)
    proc = run_cli_subprocess(*args)
    assert inproc.code == proc.code == 1, proc.err
    assert proc.out == inproc.out and proc.out.endswith("}\n")


@pytest.mark.parametrize("form", [(), ("--json",)])
def test_encode_ends_fast_with_its_whole_report(run_cli: Runner, form: tuple[str, ...]) -> None:
    """`hwopt encode` also ends its process without interpreter teardown: its table or JSON is complete and the
    same as in-process, with its exit code."""
    args = ("encode", "--target", "ethos-u55-128", *form, EXAMPLE)
    inproc = run_cli(*args)
    proc = run_cli_subprocess(*args)
    assert inproc.code == proc.code == 0, proc.err
    assert proc.out == inproc.out
    assert proc.out.endswith("}\n") if form else "layers encoded" in proc.out


def test_exit_now_flushes_buffered_output_and_exits_with_the_code() -> None:
    import subprocess

    code = "import sys\nfrom hwopt.cli import exit_now\nsys.stdout.write('x' * 200_000)\nexit_now(3)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3
    assert proc.stdout == "x" * 200_000 and proc.stderr == ""


def test_the_audit_path_never_imports_logging() -> None:
    """The audit's flags say `logs=False`, so the CLI does not load logging for it: nothing on the path may log."""
    import subprocess

    code = ("import sys, io, contextlib\nfrom hwopt.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main(['audit', '--json', {str(EXAMPLE)!r}])\n"
            "print('logging' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
