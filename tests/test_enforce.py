"""`hwopt enforce`: API, CLI, error paths, fidelity, and that outputs run in LiteRT and compile with Vela.

Encoded bytes are checked against Vela's own summary CSV (`total_npu_encoded_weights`), written
by the `vela` command line run in-process on the enforced file.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwopt.analysis.layers import weight_layers, zero_corrected
from hwopt.analysis.litert import InputSpec
from hwopt.cli.enforce import EnforceOptions, build_pipeline
from hwopt.engines import fidelity
from hwopt.engines.encode import encode_model
from hwopt.engines.enforce import enforce, hwopt_encoded_sizes
from hwopt.engines.fidelity import Runner, compare
from hwopt.errors import DataError, OutputError, UnsupportedModelError, UsageError
from hwopt.format.tflite_io import read_model
from hwopt.targets import resolve_target
from tests.conftest import CliRunner
from tests.modelgen import int8_conv_model

ROOT = Path(__file__).resolve().parent.parent


def vela_encoded_bytes(path: Path, tmp: Path, accel: str = "ethos-u55-128") -> int:
    """Compile with the `vela` CLI (in-process) and read total_npu_encoded_weights from its summary CSV."""
    from ethosu.vela.vela import main as vela_main

    out = tmp / f"vela-{path.stem}-{accel}"
    rc = vela_main([str(path), "--accelerator-config", accel, "--output-dir", str(out)])
    assert rc == 0
    assert (out / f"{path.stem}_vela.tflite").exists()
    (summary,) = out.glob(f"{path.stem}_summary_*.csv")
    with summary.open() as fh:
        row = next(csv.DictReader(fh))
    return int(row["total_npu_encoded_weights"])


def runs_in_litert(path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    interp.invoke()


@pytest.fixture
def small(tmp_path: Path) -> Path:
    p = tmp_path / "small.tflite"
    p.write_bytes(int8_conv_model(seed=7))
    return p


def test_build_pipeline() -> None:
    assert build_pipeline(EnforceOptions(sparsity=0.5, clusters=16, preserve_sparsity=True)) == \
        "prune{sparsity=0.5},cluster{k=16,granularity=stream,preserve_zero=true}"
    assert build_pipeline(EnforceOptions(pattern="2:4")) == "prune{pattern=2:4}"
    assert build_pipeline(EnforceOptions(clusters=8, granularity="channel", repair=True, bias_correction=True)) == \
        "cluster{k=8,granularity=channel},repair{k=8,granularity=channel},bias-correct"
    with pytest.raises(UsageError, match="nothing to enforce"):
        build_pipeline(EnforceOptions())
    with pytest.raises(UsageError, match=r"1..256"):
        EnforceOptions(clusters=0)


def _entropy_bytes(q: np.ndarray) -> int:
    """Order-0 entropy bound of a layer's values in bytes, from np.unique counts."""
    p = np.unique(q, return_counts=True)[1] / q.size
    return int(np.ceil(-(p * np.log2(p)).sum() * q.size / 8))


def test_enforce_encodes_and_compiles_once(small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default only the new model is compiled (Vela's compile is the encode on Ethos-U); the
    input gets its entropy bound, not a second encode and Vela run."""
    import hwopt.engines.enforce as enforce_engine
    import hwopt.engines.measure as measure_engine

    compiled: list[int] = []
    real = measure_engine.compile_model
    monkeypatch.setattr(measure_engine, "compile_model", lambda data, *a, **k: compiled.append(len(data)) or real(data, *a, **k))
    monkeypatch.setattr(enforce_engine, "encode_layers_n78", lambda *a, **k: pytest.fail("hwopt's encoder ran on Ethos-U"))
    out = tmp_path / "out.tflite"
    rep = enforce(small, out, "prune{sparsity=0.5},cluster{k=8,preserve_zero=true}", target=resolve_target("ethos-u55-128"))
    assert compiled == [out.stat().st_size]
    e = rep.encoded
    assert e is not None and e.before is None and e.vela_before is None and e.ratio is None
    assert e.after == e.vela_after == vela_encoded_bytes(out, tmp_path) and e.source == "vela-regor:ethos-u55-128"
    assert sum(la.encoded_bytes_after or 0 for la in rep.layers) == e.after
    assert all(la.encoded_bytes_before is None for la in rep.layers)
    old, new = read_model(small), read_model(out)
    for la, wb, wa in zip(rep.layers, weight_layers(old), weight_layers(new), strict=True):
        assert la.entropy_bytes_before == _entropy_bytes(zero_corrected(old, wb))
        assert la.entropy_bytes_after == _entropy_bytes(zero_corrected(new, wa))
    assert e.entropy_before == sum(la.entropy_bytes_before for la in rep.layers) > e.entropy_after


def test_fidelity_failure_stops_the_compile_beside_it(small: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteRT's fidelity check runs beside Vela's compile: when it fails, its error is the one
    raised, the compile is stopped and nothing is written."""
    import hwopt.engines.enforce as enforce_engine
    from hwopt import background

    cancelled: list[bool] = []
    real_cancel = background.Background.cancel
    monkeypatch.setattr(background.Background, "cancel", lambda self: cancelled.append(True) or real_cancel(self))

    def refuse(*_a: object, **_k: object) -> None:
        raise UnsupportedModelError("LiteRT cannot run the model: planted")

    monkeypatch.setattr(enforce_engine, "compare", refuse)
    out = tmp_path / "out.tflite"
    with pytest.raises(UnsupportedModelError, match="planted"):
        enforce(small, out, "prune{sparsity=0.5}", target=resolve_target("ethos-u55-128"))
    assert cancelled and not out.exists()


def test_enforce_small_model_end_to_end(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.tflite"
    rep = enforce(small, out, "prune{sparsity=0.5},cluster{k=8,preserve_zero=true}", target=resolve_target("ethos-u55-128"),
                  measure_input=True)
    assert rep.written and out.exists()
    runs_in_litert(out)
    new = read_model(out)
    for wl in weight_layers(new):
        q = zero_corrected(new, wl)
        assert np.mean(q == 0) >= 0.5 - 1e-9
        assert np.unique(q).size <= 8
    # Per-layer figures agree with the files; encoded totals with Vela's own CSV.
    old = read_model(small)
    for la, wl in zip(rep.layers, weight_layers(old), strict=True):
        assert la.unique_before == np.unique(zero_corrected(old, wl)).size
        assert la.sparsity_after >= 0.5 - 1e-9
    assert rep.encoded is not None
    assert rep.encoded.vela_before == vela_encoded_bytes(small, tmp_path)
    assert rep.encoded.vela_after == vela_encoded_bytes(out, tmp_path)
    assert sum(la.encoded_bytes_after or 0 for la in rep.layers) == rep.encoded.after
    assert sum(la.encoded_bytes_before or 0 for la in rep.layers) == rep.encoded.before
    assert rep.encoded.after < rep.encoded.before and rep.encoded.vela_after < rep.encoded.vela_before


def test_enforce_is_deterministic(small: Path, tmp_path: Path) -> None:
    from hwopt.records import dumps

    a = enforce(small, tmp_path / "a.tflite", "cluster{k=4,granularity=channel}", measure_encoded=False)
    b = enforce(small, tmp_path / "b.tflite", "cluster{k=4,granularity=channel}", measure_encoded=False)
    assert (tmp_path / "a.tflite").read_bytes() == (tmp_path / "b.tflite").read_bytes()
    ja, jb = json.loads(dumps(a)), json.loads(dumps(b))
    ja.pop("output"), jb.pop("output")
    assert ja == jb


@pytest.mark.slow
@pytest.mark.parametrize(("name", "flags", "accel"), [
    ("derived/ic_resnet8_clustered8_perchannel_int8.tflite", ["--clusters", "16", "--granularity", "stream"], "ethos-u55-128"),
    ("mlperftiny_resnet8_int8.tflite", ["--sparsity", "0.5", "--clusters", "16", "--preserve-sparsity"], "ethos-u55-128"),
    ("mlperftiny_resnet8_int8.tflite", ["--pattern", "2:4", "--target", "ethos-u85-256"], "ethos-u85-256"),
    ("derived/ic_resnet8_clustered16_int8.tflite", ["--repair"], "ethos-u55-128"),
    ("micro_speech_quantized.tflite", ["--clusters", "16", "--target", "ethos-u65-512"], "ethos-u65-512"),
])
def test_cli_on_shared_models(shared_models: Path, tmp_path: Path, run_cli: CliRunner, name: str, flags: list[str],
                              accel: str) -> None:
    out = tmp_path / "out.tflite"
    res = run_cli("enforce", shared_models / name, "-o", out, *flags, "--measure-input", "--json")
    assert res.code == 0, res.err
    rep = json.loads(res.out)
    assert rep["written"] and out.exists()
    runs_in_litert(out)
    assert rep["encoded"]["vela_after"] == vela_encoded_bytes(out, tmp_path, accel)
    assert rep["encoded"]["vela_after"] < rep["encoded"]["vela_before"]
    assert rep["encoded"]["after"] < rep["encoded"]["before"]
    assert "random inputs" in res.err  # no --data: the warning says fidelity ran on random inputs


def test_data_by_name_and_order_with_labels(small: Path, tmp_path: Path) -> None:
    runner = Runner(small.read_bytes())
    x = np.random.default_rng(0).integers(-128, 128, size=(10, 8, 8, 4)).astype(np.int8)
    labels = np.array([np.argmax(runner.invoke([x[i : i + 1]])[0]) for i in range(10)])
    np.savez(tmp_path / "byname.npz", input=x, labels=labels)
    np.savez(tmp_path / "byorder.npz", x, labels=labels)
    for f in ("byname.npz", "byorder.npz"):
        rep = enforce(small, tmp_path / "o.tflite", "cluster{k=32}", data=tmp_path / f, measure_encoded=False)
        assert rep.fidelity is not None and rep.fidelity.source == "data" and rep.fidelity.samples == 10
        assert rep.fidelity.accuracy_before == 1.0
        assert rep.fidelity.accuracy_after is not None and rep.fidelity.top1_agreement == rep.fidelity.accuracy_after


def test_identical_models_have_perfect_fidelity(small: Path) -> None:
    data = small.read_bytes()
    rep = compare(data, data)
    assert rep.source == "random"
    assert rep.outputs[0].cosine == pytest.approx(1.0) and rep.outputs[0].snr_db == float("inf")
    assert rep.top1_agreement == 1.0 and rep.drop == 0.0


def test_bias_correction_cli(small: Path, tmp_path: Path, run_cli: CliRunner) -> None:
    x = np.random.default_rng(1).integers(-128, 128, size=(16, 8, 8, 4)).astype(np.int8)
    np.savez(tmp_path / "d.npz", input=x)
    out = tmp_path / "bc.tflite"
    res = run_cli("enforce", small, "-o", out, "--clusters", "4", "--bias-correction", "--data", tmp_path / "d.npz", "--json")
    assert res.code == 0, res.err
    rep = json.loads(res.out)
    assert rep["passes"][-1]["name"] == "bias-correct" and rep["passes"][-1]["modified"]
    runs_in_litert(out)


# --------------------------------------------------------------------------- error paths


@pytest.mark.parametrize(("extra", "message"), [
    (["--clusters", "0"], "1..256"),
    (["--clusters", "257"], "1..256"),
    (["--sparsity", "1.5"], r"\[0, 1\]"),
    (["--pipeline", "cluster{bogus=1}"], "unknown option 'bogus'"),
    (["--pipeline", "cluster{k=4}", "--clusters", "4"], "either --pipeline or"),
    (["--pipeline", "nosuchpass"], "unknown pass"),
    (["--clusters", "4", "--target", "ethos-u99-7"], "unknown target"),
    (["--clusters", "4", "--bias-correction"], "needs the original model and calibration"),
    (["--clusters", "4", "--max-drop", "2"], "--max-drop"),
    ([], "nothing to enforce"),
])
def test_cli_usage_errors(small: Path, tmp_path: Path, run_cli: CliRunner, extra: list[str], message: str) -> None:
    out = tmp_path / "never.tflite"
    res = run_cli("enforce", small, "-o", out, *extra)
    assert res.code == 2, res.err
    assert res.err.startswith("hwopt: error:") and "Traceback" not in res.err
    assert re.search(message, res.err), res.err
    assert not out.exists()


def test_cli_data_errors(small: Path, tmp_path: Path, run_cli: CliRunner) -> None:
    out = tmp_path / "never.tflite"
    cases = {
        "shape.npz": {"input": np.zeros((3, 8, 8, 3), np.int8)},
        "dtype.npz": {"input": np.zeros((3, 8, 8, 4), np.float32)},
        "labels.npz": {"input": np.zeros((3, 8, 8, 4), np.int8), "labels": np.zeros(2, np.int64)},
        "count.npz": {"a": np.zeros((3, 8, 8, 4), np.int8), "b": np.zeros((3, 8, 8, 4), np.int8)},
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)  # type: ignore[arg-type]
        res = run_cli("enforce", small, "-o", out, "--clusters", "4", "--data", tmp_path / name)
        assert res.code == 2 and res.err.startswith("hwopt: error:"), (name, res.err)
        assert not out.exists()
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert run_cli("enforce", small, "-o", out, "--clusters", "4", "--data", tmp_path / "bad.npz").code == 2
    assert run_cli("enforce", small, "-o", out, "--clusters", "4", "--data", tmp_path / "missing.npz").code == 2
    assert not out.exists()
    with pytest.raises(DataError):
        enforce(small, out, "cluster{k=4}", data=tmp_path / "shape.npz")


def test_unsupported_models(shared_models: Path, tmp_path: Path, run_cli: CliRunner) -> None:
    out = tmp_path / "never.tflite"
    for name in ("mlperftiny_resnet8_float32.tflite", "person_detect_vela.tflite"):
        res = run_cli("enforce", shared_models / name, "-o", out, "--clusters", "4")
        assert res.code == 2 and ("float model" in res.err or "compiled by Vela" in res.err), res.err
        assert not out.exists()
    with pytest.raises(UnsupportedModelError, match="float model"):
        enforce(shared_models / "hello_world_float.tflite", out, "cluster")


def test_output_never_over_input(small: Path, run_cli: CliRunner) -> None:
    before = small.read_bytes()
    res = run_cli("enforce", small, "-o", small, "--clusters", "4")
    assert res.code == 2 and "refusing to overwrite" in res.err
    assert small.read_bytes() == before
    with pytest.raises(OutputError):
        enforce(small, small, "cluster")


def test_missing_input_and_bad_output_dir(tmp_path: Path, small: Path, run_cli: CliRunner) -> None:
    assert run_cli("enforce", tmp_path / "nope.tflite", "-o", tmp_path / "o.tflite", "--clusters", "4").code == 2
    res = run_cli("enforce", small, "-o", tmp_path / "no" / "dir.tflite", "--clusters", "4")
    assert res.code == 2 and "does not exist" in res.err


def test_max_drop_exceeded_writes_nothing(small: Path, tmp_path: Path, run_cli: CliRunner) -> None:
    out = tmp_path / "o.tflite"
    res = run_cli("enforce", small, "-o", out, "--pipeline", "prune{sparsity=0.95},cluster{k=1}", "--max-drop", "0",
                  "--json")
    rep = json.loads(res.out)
    assert rep["fidelity"]["top1_agreement"] < 1.0
    assert res.code == 1 and not out.exists() and rep["written"] is False
    assert any(f["rule"] == "max-drop" for f in rep["findings"])
    # The same pipeline with a generous bound writes the model.
    res = run_cli("enforce", small, "-o", out, "--pipeline", "prune{sparsity=0.95},cluster{k=1}", "--max-drop", "1")
    assert res.code == 0 and out.exists()


def test_cli_text_output(small: Path, tmp_path: Path, run_cli: CliRunner) -> None:
    res = run_cli("enforce", small, "-o", tmp_path / "o.tflite", "--sparsity", "0.5", "--clusters", "8")
    assert res.code == 0, res.err
    assert "pipeline: prune{sparsity=0.5,pattern=unstructured},cluster{k=8,granularity=stream,preserve_zero=true}" in res.out
    assert "Vela encoded weights (ethos-u55-128)" in res.out and "top-1 agreement" in res.out


# --------------------------------------------------------------------------- accuracy (train extra)


@pytest.mark.train
@pytest.mark.slow
def test_digits_accuracy_within_one_point(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="needs the train extra (tensorflow, tf-keras)")
    pytest.importorskip("tf_keras", reason="needs the train extra (tensorflow, tf-keras)")
    sys.path.insert(0, str(ROOT / "tools"))
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from digits_model import build_digits_model

    dm = build_digits_model()
    (tmp_path / "d.tflite").write_bytes(dm.tflite)
    np.savez(tmp_path / "test.npz", x=dm.x_test, labels=dm.y_test)
    np.savez(tmp_path / "cal.npz", x=dm.x_calib)
    out = tmp_path / "o.tflite"
    rep = enforce(tmp_path / "d.tflite", out, build_pipeline(EnforceOptions(sparsity=0.5, clusters=16, bias_correction=True)),
                  data=tmp_path / "test.npz", calibration=tmp_path / "cal.npz", max_drop=0.01)
    assert rep.written, rep.findings
    f = rep.fidelity
    assert f is not None and f.accuracy_before is not None and f.accuracy_after is not None
    assert f.accuracy_before - f.accuracy_after <= 0.01
    # And the structure really is there.
    new = read_model(out)
    for wl in weight_layers(new):
        q = zero_corrected(new, wl)
        assert np.mean(q == 0) >= 0.5 - 1e-9 and np.unique(q).size <= 16


def test_ethos_n_target_uses_hwopt_encoder(small: Path, tmp_path: Path) -> None:
    rep = enforce(small, tmp_path / "n.tflite", "cluster{k=8}", target=resolve_target("ethos-n78-1tops-2ple"),
                  measure_input=True)
    assert rep.encoded is not None
    assert rep.encoded.source == "hwopt.encode:ethos-n78-1tops-2ple"
    assert rep.encoded.before is not None and rep.encoded.vela_before is not None
    assert rep.encoded.vela_target == "ethos-u55-128"  # Vela still proves the file compiles for Ethos-U
    from hwopt.errors import TargetError

    with pytest.raises(TargetError):
        enforce(small, tmp_path / "n.tflite", "cluster{k=8}", target=resolve_target("ethos-n99"))


@pytest.mark.parametrize("name", ["micro_speech_quantized.tflite", "mlperftiny_resnet8_int8.tflite"])
def test_n78_sizes_are_the_encode_commands(shared_models: Path, name: str) -> None:
    """Enforce sizes N78 weights with the layer encoder alone (not encode_model, whose Ethos-U
    modules it no longer loads): per layer and in total what `hwopt encode` reports."""
    model = read_model(shared_models / name)
    target = resolve_target("ethos-n78-4tops-4ple")
    rep = encode_model(model, target)
    sizes = hwopt_encoded_sizes(model, target)
    assert sizes.per_op == {la.op_index: la.encoded_bytes for la in rep.layers if la.encodable and la.subgraph == 0}
    assert sizes.total == rep.summary.encoded_bytes > 0
    with pytest.raises(UsageError):
        hwopt_encoded_sizes(model, resolve_target("ethos-u55-128"))


def test_enforce_does_not_load_what_it_does_not_use(small: Path, tmp_path: Path) -> None:
    """A whole `hwopt enforce` on Ethos-U runs without hwopt.engines.encode and its block searches
    (~0.1 s of imports) and without numpy.ma (~0.03 s, which a plain np.unique imports)."""
    unused = ("hwopt.engines.encode", "hwopt.targets.ethos_u.block_plan", "numpy.ma")
    code = ("import sys; from hwopt.cli import main; "
            f"code = main(['enforce', {str(small)!r}, '--sparsity', '0.5', '--clusters', '16', "
            f"'-o', {str(tmp_path / 'o.tflite')!r}, '--json']); "
            f"print(code, sorted(m for m in {unused!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "HWOPT_WORKER": "inline"})
    assert run.stdout.strip().splitlines()[-1] == "0 []"


def test_random_fidelity_data_is_bounded_and_drawn_as_before() -> None:
    """Random inputs: the same values as one int64 draw per input, fewer samples when large, an error when one is too big."""
    small = [InputSpec("a", 0, (1, 49, 10, 1), np.dtype(np.int8), 0.1, 0)]
    rng = np.random.default_rng(fidelity.RANDOM_SEED)
    expected = rng.integers(-128, 128, size=(fidelity.RANDOM_SAMPLES, 49, 10, 1), dtype=np.int64).astype(np.int8)
    got = fidelity.random_dataset(small)
    assert got.inputs[0].dtype == np.int8 and np.array_equal(got.inputs[0], expected)
    per_sample = fidelity.RANDOM_INPUT_BYTES // 4  # four samples fit
    wide = [InputSpec("b", 0, (1, per_sample), np.dtype(np.int8), 0.1, 0)]
    assert fidelity.random_dataset(wide).samples == 4
    huge = [InputSpec("c", 0, (65536, 16, 16, 8), np.dtype(np.int8), 0.1, 0)]
    with pytest.raises(UnsupportedModelError, match="random fidelity data is limited"):
        fidelity.random_dataset(huge)
