"""`hwopt compile`: outputs, Vela equivalence, every Ethos-U target, pipelines, progress, bad input.

Golden figures come from Vela itself: the `vela` CLI (run in a subprocess into a temporary
folder) writes `<model>_vela.tflite` and a summary CSV that the compile outputs must equal,
and ../shared/models/MANIFEST.md lists Vela 5.2.0's SRAM/flash figures for the shared models.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CliResult, model_id, run_cli_subprocess, shared_model_paths

from hwopt.errors import CompileError
from hwopt.targets import list_targets, resolve_target

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"
ETHOS_U = [t for t in list_targets() if t.startswith("ethos-u")]
OUTPUTS = {"report.json", "report.md", "report.html", "per_layer.csv"}
PIPELINE = "prune{sparsity=0.5},cluster{k=16,granularity=stream}"
VELA = Path(sys.executable).parent / "vela"


@pytest.fixture(scope="module")
def example() -> Path:
    assert EXAMPLE.is_file(), "the bundled example model is part of hwopt (tools/make_example_model.py)"
    return EXAMPLE


def vela_cli(model: Path, target: str, out: Path) -> tuple[bytes, dict[str, str]]:
    """Run the `vela` CLI with the target's Vela config; (compiled .tflite bytes, summary CSV row)."""
    if not VELA.is_file():
        pytest.skip("vela console script not installed next to the Python interpreter")
    t = resolve_target(target)
    assert t.system is not None and t.memory_mode is not None
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(VELA), str(model), "--accelerator-config", t.vela_accelerator(), "--config", "Arm/vela.ini",
                           "--system-config", t.system.name, "--memory-mode", t.memory_mode.name, "--output-dir", str(out)],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (summary,) = out.glob(f"{model.stem}_summary_*.csv")
    with summary.open(newline="") as fh:
        row = next(csv.DictReader(fh))
    return (out / f"{model.stem}_vela.tflite").read_bytes(), row


CSV_MEMORY = {"Sram": "sram_memory_used", "Dram": "dram_memory_used", "OnChipFlash": "on_chip_flash_memory_used",
              "OffChipFlash": "off_chip_flash_memory_used"}


def assert_totals_match_summary(totals: dict[str, float], row: dict[str, str], target: str) -> None:
    """hwopt's totals (bytes, cycles) against Vela's summary CSV (KiB, cycles)."""
    t = resolve_target(target)
    assert totals["cycles"] == int(row["cycles_total"])
    assert totals["npu_cycles"] == int(row["cycles_npu"])
    assert totals["encoded_weight_bytes"] == int(row["total_npu_encoded_weights"])
    assert totals["original_weight_bytes"] == int(row["total_original_weights"])
    assert totals["macs"] == int(row["nn_macs"])
    assert totals["peak_sram_bytes"] == round(float(row["sram_memory_used"]) * 1024)
    used = round(float(row[CSV_MEMORY[t.const_memory]]) * 1024)
    if t.const_memory == t.arena_memory:  # that memory also holds the arena: constants are part of it
        assert totals["flash_bytes"] <= used
    else:
        assert totals["flash_bytes"] == used
    assert totals["inferences_per_second"] == pytest.approx(float(row["inferences_per_second"]), rel=1e-6)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def one_error_line(res: CliResult) -> str:
    assert res.err.startswith("hwopt: error: "), res.err
    assert res.err.count("\n") == 1 and "Traceback" not in res.err, res.err
    return res.err


# --- outputs and Vela equivalence --------------------------------------------------------------

def test_default_model_outputs_equal_vela(run_cli, example, tmp_path) -> None:
    out = tmp_path / "out"
    res = run_cli("compile", "--target", "ethos-u55-128", "-o", out)
    assert res.code == 0, res.err
    name = "example_int8_ethos-u55-128.tflite"
    assert {p.name for p in out.iterdir()} == OUTPUTS | {name}
    vela_bytes, row = vela_cli(example, "ethos-u55-128", tmp_path / "vela")
    assert (out / name).read_bytes() == vela_bytes
    from hwopt.format.tflite_io import read_model

    compiled = read_model(out / name)
    assert compiled.vela_compiled and any(op.op == "CUSTOM:ethos-u" for op in compiled.subgraphs[0].operators)
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "hwopt.compile/1" and report["output_model"] == name
    assert report["pipeline"] is None and report["model"] == str(example)
    assert_totals_match_summary(report["totals"], row, "ethos-u55-128")
    assert report["totals"]["output_bytes"] == len(vela_bytes)
    assert report["totals"]["input_bytes"] == example.stat().st_size
    # The encoded weights are the compile's own (Vela's per-operator weight bytes), not a re-encode.
    enc = report["encode"]
    assert enc["encoded_bytes"] == int(row["total_npu_encoded_weights"])
    assert enc["source"] == "vela-regor:ethos-u55-128"
    audited = {(la["subgraph"], la["op_index"]): la for la in report["audit_before"]["layers"]}
    for la in enc["layers"]:
        a = audited[(la["subgraph"], la["op_index"])]
        assert la["elements"] == a["elements"] and la["entropy_bits_per_weight"] == a["entropy_bits_per_weight"]
        assert la["bits_per_weight"] == pytest.approx(8 * la["encoded_bytes"] / la["elements"], rel=1e-6)
    rows = read_csv(out / "per_layer.csv")
    assert len(rows) == len(report["layers"]) == len(read_model(example).subgraphs[0].operators)
    # Vela's per-layer op cycles add up to its network total (a property of its perf report).
    assert sum(int(r["cycles"]) for r in rows) == int(row["cycles_total"])
    md = (out / "report.md").read_text()
    assert f"{int(row['cycles_total']):,}" in md and name in md
    assert res.out.splitlines()[1].startswith(f"ethos-u55-128: {int(row['cycles_total']):,} cycles")
    assert not list(out.glob(".hwopt-stage-*"))


@pytest.mark.parametrize("target", ETHOS_U)
def test_engine_equals_vela_cli_on_every_target(example, tmp_path, target) -> None:
    from hwopt.targets.ethos_u.vela_engine import compile_model

    result = compile_model(example.read_bytes(), resolve_target(target))
    vela_bytes, row = vela_cli(example, target, tmp_path)
    assert result.model_bytes == vela_bytes
    p = result.perf
    totals = {"cycles": p.cycles, "npu_cycles": p.npu_cycles, "encoded_weight_bytes": p.encoded_weight_bytes,
              "original_weight_bytes": p.original_weight_bytes, "macs": p.macs, "peak_sram_bytes": p.peak_bytes("Sram"),
              "flash_bytes": p.read_only_peak_bytes, "inferences_per_second": resolve_target(target).clock_hz / p.cycles}
    assert_totals_match_summary(totals, row, target)


@pytest.mark.parametrize("model, sram_kib, flash_kib, npu_ops", [
    ("mlperftiny_resnet8_int8", 50.62, 77.39, 42),
    ("derived/ic_resnet8_pruned50_clustered16_int8", 49.44, 38.72, 42),
    ("micro_speech_quantized", 5.83, 19.80, 30),
])
def test_manifest_figures(run_cli, shared_models, tmp_path, model, sram_kib, flash_kib, npu_ops) -> None:
    """Vela 5.2.0 on ethos-u55-128 as recorded in ../shared/models/MANIFEST.md."""
    out = tmp_path / "out"
    res = run_cli("compile", shared_models / f"{model}.tflite", "--target", "ethos-u55-128", "-o", out, "--json")
    assert res.code == 0, res.err
    t = json.loads(res.out)["totals"]
    assert round(t["peak_sram_bytes"] / 1024, 2) == sram_kib
    assert round(t["flash_bytes"] / 1024, 2) == flash_kib
    assert (t["npu_operators"], t["cpu_operators"]) == (npu_ops, 0)
    assert json.loads((out / "report.json").read_text()) == json.loads(res.out)


SUBSET = [("hello_world_int8", "ethos-u55-32"), ("dnn_s_quantized", "ethos-u55-256"), ("kws_micronet_m", "ethos-u65-512"),
          ("ds_cnn_s_quantized_int16", "ethos-u85-128"), ("rnnoise_INT8", "ethos-u85-2048")]


@pytest.mark.parametrize("model, target", SUBSET, ids=[f"{m}-{t}" for m, t in SUBSET])
def test_full_command_on_a_subset(run_cli, shared_models, tmp_path, model, target) -> None:
    """The whole command (audit, Vela, plots, files) on a representative set of models and targets."""
    path = shared_models / f"{model}.tflite"
    res = run_cli("compile", path, "--target", target, "-o", tmp_path / "out")
    assert res.code in (0, 1), res.err
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert files == OUTPUTS | {f"{model}_{target}.tflite"}
    _, row = vela_cli(path, target, tmp_path / "vela")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert_totals_match_summary(report["totals"], row, target)
    assert report["totals"]["cpu_operators"] == len(report["cpu_operators"])


@pytest.mark.slow
@pytest.mark.parametrize("model", shared_model_paths(int8_only=True), ids=model_id)
def test_every_target_compiles_or_is_rejected_clearly(model) -> None:
    """The matrix (every int8 shared model x every Ethos-U target) through the Vela engine.

    The whole command adds plots on top of the same engine call; it is tested on a subset above.
    """
    from hwopt.format.tflite_io import read_model
    from hwopt.targets.ethos_u.vela_engine import compile_model

    data = model.read_bytes()
    n_ops = len(read_model(data).subgraphs[0].operators)
    for target in ETHOS_U:
        try:
            r = compile_model(data, resolve_target(target))
        except CompileError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("Vela rejected the model")
            continue
        assert len(r.ops) == n_ops and r.perf.cycles > 0
        assert sum(op.cycles for op in r.ops) + r.unmapped_cycles == r.perf.cycles
        assert r.perf.npu_ops + r.perf.cpu_ops > 0
        assert read_model(r.model_bytes).vela_compiled


# --- per_layer.csv ---------------------------------------------------------------------------------

AWKWARD = ['conv, "first"; relu', 'dw;conv\n<b>two</b>', "plain", 'a,b,"c"', "x;y;z", "quote\"d", "last, one"]


def _rename_outputs(src: Path, dst: Path) -> list[str]:
    """Copy of the model whose operator output tensors carry awkward names (commas, quotes, ; and newlines)."""
    from modelgen import pack

    from hwopt._generated.tflite.Model import Model as FbModel
    from hwopt._generated.tflite.Model import ModelT

    raw = ModelT.InitFromObj(FbModel.GetRootAs(src.read_bytes(), 0))
    sg = raw.subgraphs[0]
    names = []
    for i, op in enumerate(sg.operators):
        name = AWKWARD[i % len(AWKWARD)] + f" #{i}"
        sg.tensors[op.outputs[0]].name = name
        names.append(name)
    dst.write_bytes(pack(raw))
    return names


def test_per_layer_csv_round_trips_awkward_names(run_cli, example, tmp_path) -> None:
    model = tmp_path / "awkward.tflite"
    names = _rename_outputs(example, model)
    res = run_cli("compile", model, "--target", "ethos-u55-128", "-o", tmp_path / "out")
    assert res.code == 0, res.err
    text = (tmp_path / "out" / "per_layer.csv").read_text()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    assert len(body) == len(names) and all(len(r) == len(header) for r in body)
    assert [r[header.index("name")] for r in body] == names
    assert [int(r[header.index("op_index")]) for r in body] == list(range(len(names)))
    # Numbers stay unquoted: QUOTE_NONNUMERIC readers give floats for them.
    typed = list(csv.reader(io.StringIO(text, newline=""), quoting=csv.QUOTE_NONNUMERIC))[1:]
    assert all(isinstance(r[header.index("cycles")], float) for r in typed)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<b>two</b>" not in page and html.escape("<b>two</b>") in page
    assert [la["name"] for la in json.loads((tmp_path / "out" / "report.json").read_text())["layers"]] == names


# --- determinism, pipeline, progress ---------------------------------------------------------------

def test_two_runs_are_byte_identical(run_cli, example, tmp_path) -> None:
    for d in ("a", "b"):
        assert run_cli("compile", example, "--target", "ethos-u85-256", "-o", tmp_path / d).code == 0
    for name in ("report.json", "example_int8_ethos-u85-256.tflite", "per_layer.csv", "report.md", "report.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_pipeline_shrinks_encoded_weights_and_shows_density(run_cli, shared_models, tmp_path) -> None:
    model = shared_models / "mlperftiny_resnet8_int8.tflite"
    _, row = vela_cli(model, "ethos-u55-128", tmp_path / "vela")
    plain_bytes = int(row["total_npu_encoded_weights"])
    res = run_cli("compile", model, "--target", "ethos-u55-128", "-o", tmp_path / "out", "--pipeline", PIPELINE)
    assert res.code == 0, res.err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["pipeline"] == PIPELINE and report["enforce"] is not None
    # Half the weights zero and <= 16 values per stream: the MANIFEST's TF-MOT equivalent halves flash.
    assert report["totals"]["encoded_weight_bytes"] < 0.6 * plain_bytes
    after = {la["op_index"]: la for la in report["audit_after"]["layers"]}
    convs = [la for la in report["layers"] if la["op"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert convs and all(after[la["op_index"]]["sparsity"] >= 0.5 - 1e-9 for la in convs)
    assert all(la["sparsity"] >= 0.5 - 1e-9 for la in convs)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Weight values before and after the pipeline" in page and page.count("<svg") == 3
    plain = run_cli("compile", model, "--target", "ethos-u55-128", "-o", tmp_path / "plain")
    assert plain.code == 0
    plain_page = (tmp_path / "plain" / "report.html").read_text()
    assert "before and after the pipeline" not in plain_page


def test_non_tty_stderr_gets_no_progress(example, tmp_path) -> None:
    res = run_cli_subprocess("compile", "--target", "ethos-u55-128", "-o", tmp_path / "out")
    assert res.code == 0 and res.err == ""
    res = run_cli_subprocess("compile", example, "--target", "ethos-u55-128", "-o", tmp_path / "p", "--pipeline", PIPELINE)
    assert res.code == 0
    # Only log warnings (the pipeline ran on random data) reach stderr: no bar, no control codes.
    assert all(line.startswith("hwopt: warning:") for line in res.err.splitlines()), res.err
    assert "\x1b" not in res.err and "\r" not in res.err


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_tty_stderr_gets_a_progress_bar(example, tmp_path) -> None:
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "hwopt", "compile", "--target", "ethos-u55-128", "-o", str(tmp_path / "o")],
                              stdout=subprocess.PIPE, stderr=slave, cwd=ROOT, timeout=300, check=False,
                              env={**os.environ, "TERM": "xterm", "COLUMNS": "100"})
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    err = b"".join(chunks)
    assert proc.returncode == 0
    assert b"\x1b[" in err  # rich's live display (cursor control) went to the terminal
    assert b"\x1b" not in proc.stdout


# --- bad input: exit 2, one line, nothing left behind -----------------------------------------------

def _prepared_out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    return out


def _assert_untouched(out: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"


def _rejected_model(path: Path) -> Path:
    """A well-formed int8 model whose CONV_2D filter depth (3) does not divide the input depth (4)."""
    from modelgen import BuiltinOptions, ModelBuilder, conv_options, quantization

    mb = ModelBuilder()
    sg = mb.subgraph()
    x = sg.tensor("input", (1, 8, 8, 4), quant=quantization(0.05, -3))
    w = sg.tensor("w", (8, 3, 3, 3), data=np.ones((8, 3, 3, 3), np.int8), quant=quantization(np.full(8, 0.01), 0, 0))
    b = sg.tensor("b", (8,), "int32", data=np.zeros(8, np.int32), quant=quantization(np.full(8, 5e-4), 0, 0))
    y = sg.tensor("y", (1, 8, 8, 8), quant=quantization(0.08, -128))
    sg.op("CONV_2D", [x, w, b], [y], options=conv_options(), options_type=BuiltinOptions.Conv2DOptions, version=3)
    sg.io([x], [y])
    path.write_bytes(mb.build())
    return path


@pytest.mark.parametrize("case", ["unknown-target", "ethos-n", "corrupt", "truncated", "missing", "vela-rejects"])
def test_bad_input_exits_2_and_writes_nothing(run_cli, example, tmp_path, case) -> None:
    out = _prepared_out(tmp_path)
    model, target, expect = example, "ethos-u55-128", ""
    if case == "unknown-target":
        target, expect = "ethos-u99-7", "unknown target"
    elif case == "ethos-n":
        target, expect = "ethos-n78-1tops-2ple", "Ethos-U only"
    elif case == "corrupt":
        model = tmp_path / "corrupt.tflite"
        model.write_bytes(bytes(range(256)) * 8)
    elif case == "truncated":
        model = tmp_path / "truncated.tflite"
        model.write_bytes(example.read_bytes()[: example.stat().st_size // 2])
    elif case == "missing":
        model = tmp_path / "nope.tflite"
    else:
        model, expect = _rejected_model(tmp_path / "bad.tflite"), "Vela rejected the model"
    res = run_cli("compile", model, "--target", target, "-o", out)
    assert res.code == 2
    assert expect in one_error_line(res)
    _assert_untouched(out)


def test_vela_compiled_model_is_refused(run_cli, shared_models, tmp_path) -> None:
    out = _prepared_out(tmp_path)
    res = run_cli("compile", shared_models / "person_detect_vela.tflite", "--target", "ethos-u55-128", "-o", out)
    assert res.code == 2 and "already compiled by Vela" in one_error_line(res)
    _assert_untouched(out)


def test_regor_exception_becomes_one_line(run_cli, example, tmp_path, monkeypatch) -> None:
    from ethosu import regor

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("Compilation failed: Error: something odd\n - detail one\n   detail two\n")

    monkeypatch.setattr(regor, "compile", boom)
    monkeypatch.setenv("HWOPT_WORKER", "inline")  # the patched Regor lives in this process
    out = _prepared_out(tmp_path)
    res = run_cli("compile", example, "--target", "ethos-u55-128", "-o", out)
    assert res.code == 2
    assert "Vela rejected the model: Compilation failed: Error: something odd; detail one; detail two" in one_error_line(res)
    _assert_untouched(out)


def test_output_below_a_file_and_output_that_is_a_file(run_cli, example, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = run_cli("compile", example, "--target", "ethos-u55-128", "-o", blocker / "sub")
    assert res.code == 2 and "cannot create output directory" in one_error_line(res)
    res = run_cli("compile", example, "--target", "ethos-u55-128", "-o", blocker)
    assert res.code == 2 and "not a directory" in one_error_line(res)
    assert blocker.read_text() == "not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_write_failure_leaves_directory_as_it_was(run_cli, example, tmp_path, monkeypatch) -> None:
    real = Path.write_bytes

    def failing(self: Path, data: bytes) -> int:
        if self.name == "report.html":
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing)
    out = _prepared_out(tmp_path)
    res = run_cli("compile", example, "--target", "ethos-u55-128", "-o", out)
    assert res.code == 2 and "No space left on device" in one_error_line(res)
    _assert_untouched(out)


def test_data_without_pipeline_is_a_usage_error(run_cli, example, tmp_path) -> None:
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((2, 1), np.int8))
    out = _prepared_out(tmp_path)
    res = run_cli("compile", example, "--target", "ethos-u55-128", "-o", out, "--data", data)
    assert res.code == 2 and "--data" in one_error_line(res)
    _assert_untouched(out)


def test_existing_outputs_are_replaced_and_others_kept(run_cli, example, tmp_path) -> None:
    out = _prepared_out(tmp_path)
    (out / "report.json").write_text("old")
    assert run_cli("compile", example, "--target", "ethos-u55-128", "-o", out).code == 0
    assert json.loads((out / "report.json").read_text())["schema"] == "hwopt.compile/1"
    assert (out / "keep.txt").read_text() == "mine"
    assert not list(out.glob(".hwopt-stage-*"))



def test_findings_describe_the_compiled_model(example, tmp_path) -> None:
    """The example's per-channel clusters split across streams; a stream-clustering pipeline fixes that."""
    from hwopt import compile as compile_model

    plain = compile_model(example, "ethos-u55-128", tmp_path / "plain").report
    rule = "clusters-split-by-quantization"
    assert any(f.rule == rule for f in plain.findings)
    piped = compile_model(example, "ethos-u55-128", tmp_path / "piped", pipeline=PIPELINE).report
    assert piped.audit_after is not None and not any(f.rule == rule for f in piped.findings)
    assert any(f.rule == rule for f in piped.audit_before.findings)  # the input's findings stay on record
    assert piped.totals.encoded_weight_bytes < plain.totals.encoded_weight_bytes


def test_stride_zero_is_rejected_before_vela(tmp_path) -> None:
    """A zero stride would crash Vela's C++ core (SIGFPE); hwopt refuses it with one clear line."""
    import subprocess
    import sys

    from hwopt.format.tflite_io import read_model, write_model
    from tests.modelgen import int8_conv_model

    model = read_model(int8_conv_model())
    conv = next(op for op in model.subgraphs[0].operators if op.op == "CONV_2D")
    conv.options.strideW = 0
    bad = tmp_path / "stride0.tflite"
    write_model(model, bad)
    proc = subprocess.run([sys.executable, "-m", "hwopt", "compile", str(bad), "--target", "ethos-u55-128",
                           "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "strideW = 0" in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
