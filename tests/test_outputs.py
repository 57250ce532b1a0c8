"""Outputs never replace inputs, multi-file outputs appear all at once, signals leave no debris."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, CliRunner

from hwopt.errors import OutputError
from hwopt.fileio import StagedWrite, refuse_inputs, staged_directory

EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    p = tmp_path / "m.tflite"
    shutil.copy(EXAMPLE, p)
    return p


def _unchanged(path: Path) -> bool:
    return path.read_bytes() == EXAMPLE.read_bytes()


def test_gate_never_writes_the_baseline_over_the_model(run_cli: CliRunner, model: Path) -> None:
    r = run_cli("gate", model, "--target", "ethos-u55-128", "--baseline", model, "--update-baseline")
    assert r.code == 2 and "refusing to overwrite the input file" in r.err
    assert _unchanged(model)


def test_gate_never_writes_junit_over_an_input(run_cli: CliRunner, model: Path, tmp_path: Path) -> None:
    base = tmp_path / "b.json"
    assert run_cli("gate", model, "--target", "ethos-u55-128", "--baseline", base, "--update-baseline").code == 0
    before = base.read_bytes()
    r = run_cli("gate", model, "--target", "ethos-u55-128", "--baseline", base, "--junit", model)
    assert r.code == 2 and "refusing to overwrite" in r.err and _unchanged(model)
    r = run_cli("gate", model, "--target", "ethos-u55-128", "--baseline", base, "--junit", base)
    assert r.code == 2 and base.read_bytes() == before


def test_compile_refuses_an_output_over_an_input_inside_the_folder(run_cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "D"
    out.mkdir()
    victim = out / "report.json"
    shutil.copy(EXAMPLE, victim)
    r = run_cli("compile", victim, "--target", "ethos-u55-128", "-o", out)
    assert r.code == 2 and "refusing to overwrite the input file" in r.err
    assert _unchanged(victim) and sorted(p.name for p in tmp_path.iterdir()) == ["D"]


def test_encode_emit_refuses_its_input(run_cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "E"
    out.mkdir()
    victim = out / "index.json"
    shutil.copy(EXAMPLE, victim)
    r = run_cli("encode", victim, "--target", "ethos-u55-128", "--emit", out)
    assert r.code == 2 and "refusing to overwrite the input file" in r.err and _unchanged(victim)


def test_enforce_refuses_every_input_as_output(run_cli: CliRunner, model: Path, tmp_path: Path) -> None:
    r = run_cli("enforce", model, "--sparsity", "0.5", "-o", model)
    assert r.code == 2 and _unchanged(model)
    link = tmp_path / "link.tflite"
    link.symlink_to(model)
    r = run_cli("enforce", model, "--sparsity", "0.5", "-o", link)
    assert r.code == 2 and _unchanged(model)


def test_refuse_inputs_sees_through_relative_paths_and_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a"
    a.write_text("x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError):
        refuse_inputs([Path("sub/../a")], [a])
    refuse_inputs([tmp_path / "b", None], [a, None])


def test_a_new_folder_appears_in_one_step(tmp_path: Path) -> None:
    out = tmp_path / "new"
    with staged_directory(out) as stage:
        (stage / "a").write_text("1")
        (stage / "b").write_text("2")
        assert not out.exists() and stage.parent == tmp_path
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_an_existing_folder_keeps_other_files_and_a_failure_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "old"
    out.mkdir()
    (out / "keep").write_text("k")
    (out / "a").write_text("old")
    with pytest.raises(RuntimeError), staged_directory(out) as stage:
        (stage / "a").write_text("new")
        raise RuntimeError("boom")
    assert (out / "a").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    with staged_directory(out) as stage:
        (stage / "a").write_text("new")
    assert (out / "a").read_text() == "new" and (out / "keep").read_text() == "k"


def test_sigterm_inside_staging_removes_the_stage(tmp_path: Path) -> None:
    from hwopt.cli import _install_signal_handlers, _TerminatedError

    out = tmp_path / "out"
    previous = _install_signal_handlers()
    try:
        with pytest.raises(_TerminatedError), staged_directory(out) as stage:
            (stage / "a").write_text("1")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("delay", [0.8, 1.6])
def test_sigterm_during_compile_leaves_no_debris(tmp_path: Path, delay: float) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    proc = subprocess.Popen([sys.executable, "-m", "hwopt", "compile", str(EXAMPLE), "--target", "ethos-u55-128",
                             "-o", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    names = sorted(p.name for p in out.iterdir())
    # A signal that lands after the command finished (handlers restored, interpreter exiting)
    # ends the process the default way: acceptable only with the whole output set in place.
    finished_then_killed = proc.returncode == -signal.SIGTERM and len(names) == 6
    assert proc.returncode in (0, 1, 128 + signal.SIGTERM) or finished_then_killed, err
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".hwopt-stage-") or p.name.endswith(".tmp")]
    assert leftovers == []
    assert names == ["mine.txt"] or len(names) == 6  # nothing, or the whole set


def test_a_staged_write_lands_whole_or_not_at_all(tmp_path: Path) -> None:
    """StagedWrite: written beside the target in a thread; commit renames it, discard removes it,
    and a write error surfaces at commit with atomic_write_bytes's message."""
    kept = StagedWrite(tmp_path / "a.bin", b"abc" * 1000)
    assert kept.commit() == tmp_path / "a.bin" and (tmp_path / "a.bin").read_bytes() == b"abc" * 1000
    kept.discard()  # after commit: nothing to remove
    dropped = StagedWrite(tmp_path / "b.bin", b"xyz")
    dropped.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    missing = StagedWrite(tmp_path / "no" / "c.bin", b"1")
    with pytest.raises(OutputError, match="output directory does not exist"):
        missing.commit()
    guarded = StagedWrite(tmp_path / "a.bin", b"2", protect=(tmp_path / "a.bin",))
    with pytest.raises(OutputError, match="refusing to overwrite the input file"):
        guarded.commit()
    assert (tmp_path / "a.bin").read_bytes() == b"abc" * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_enforce_with_a_failed_check_leaves_nothing(model: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """enforce writes its output beside Vela's compile; a failed check discards it: no file, no temporary."""
    import hwopt.engines.enforce as enforce_engine
    from hwopt.engines.enforce import enforce
    from hwopt.records import Finding, Severity

    monkeypatch.setattr(enforce_engine, "check_promises",
                        lambda *_a: [Finding(Severity.ERROR, "promise-not-kept", "planted")])
    out = tmp_path / "o.tflite"
    report = enforce(model, out, "prune{sparsity=0.5}")
    assert report.failed and not report.written
    assert sorted(p.name for p in tmp_path.iterdir()) == [model.name]


def test_sigterm_during_enforce_leaves_no_debris(tmp_path: Path) -> None:
    out = tmp_path / "o.tflite"
    proc = subprocess.Popen([sys.executable, "-m", "hwopt", "enforce", str(EXAMPLE), "--sparsity", "0.5",
                             "--clusters", "16", "-o", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    time.sleep(1.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 1, 128 + signal.SIGTERM, -signal.SIGTERM), err
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    if out.exists():  # the command had finished: the whole model
        assert proc.returncode in (0, -signal.SIGTERM) and out.read_bytes()[4:8] == b"TFL3"
