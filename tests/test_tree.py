"""`hwopt tree`: input validation, report arithmetic and (with the train extra) the whole quick tree."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwopt.engines.audit import Expectations, audit, audit_model
from hwopt.errors import DataError, ModelFormatError, OutputError, TargetError, UnsupportedModelError, UsageError
from hwopt.targets import resolve_target
from hwopt.tree import _tf
from hwopt.tree.data import TreeDataset, _stratified_split, load_digits_dataset, load_npz
from hwopt.tree.integrate import leaf_pipeline, prune_skip
from hwopt.tree.measure import broken_layers, check_ethos_u, global_sparsity_broken, pruned_zeros
from hwopt.tree.report import SCHEMA, LeafReport, TreeReport, pareto_front, tree_markdown
from hwopt.tree.runner import TreeOptions, check_output_dir, validate
from hwopt.tree.techniques import BY_NAME, FAMILIES, LEAVES, sparsity_exempt
from tests.conftest import CliRunner, run_cli_subprocess

TRAIN_SKIP = "needs the train extra (tensorflow, tf-keras, tensorflow-model-optimization): pip install hwopt[train]"


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _good_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"x_train": rng.random((20, 8, 8), dtype=np.float32), "y_train": np.arange(20) % 4,
            "x_test": rng.random((8, 8, 8), dtype=np.float32), "y_test": np.arange(8) % 4}


# ------------------------------------------------------------------ no TensorFlow needed


def test_import_paths_do_not_load_tensorflow() -> None:
    code = ("import sys, hwopt, hwopt.engines.audit, hwopt.tree, hwopt.tree.runner, hwopt.tree.measure, hwopt.cli.tree;"
            "import hwopt.cli; hwopt.cli.build_parser();"
            "bad = [m for m in ('tensorflow', 'tf_keras', 'tensorflow_model_optimization') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_digits_split_is_stratified_and_fixed() -> None:
    a, b = load_digits_dataset(0), load_digits_dataset(0)
    assert a.x_train.shape == (1438, 8, 8, 1) and a.x_test.shape == (359, 8, 8, 1)
    assert np.array_equal(a.y_test, b.y_test) and np.array_equal(a.x_train, b.x_train)
    assert a.x_train.dtype == np.float32 and a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0
    counts = np.bincount(a.y_test, minlength=10)
    full = np.bincount(np.concatenate([a.y_train, a.y_test]), minlength=10)
    # each class contributes round(20%) of its own examples to the held-out set
    assert np.array_equal(counts, np.round(full * 0.2).astype(int))


def test_stratified_split_partitions_indices() -> None:
    y = np.array([0] * 10 + [1] * 5 + [2] * 3)
    tr, te = _stratified_split(y, 0.2, seed=3)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(18))
    assert np.bincount(y[te]).tolist() == [2, 1, 1]  # round(2.0), round(1.0), round(0.6)


def test_npz_adds_channel_axis_and_decodes_one_hot(tmp_path: Path) -> None:
    arr = _good_arrays()
    arr["y_train"] = np.eye(4)[arr["y_train"]]
    d = load_npz(_npz(tmp_path / "d.npz", **arr))
    assert d.x_train.shape == (20, 8, 8, 1) and d.input_shape == (8, 8, 1)
    assert d.y_train.tolist() == (np.arange(20) % 4).tolist() and d.classes == 4


@pytest.mark.parametrize(("change", "message"), [
    ({"y_test": None}, "lacks the arrays y_test"),
    ({"x_test": np.zeros((8, 4, 4), np.float32)}, "differ in shape"),
    ({"y_train": np.arange(19)}, "one label per example (20)"),
    ({"y_train": np.full(20, 0.5)}, "integer class labels"),
    ({"y_train": np.full(20, -1)}, "negative class labels"),
    ({"x_train": np.full((20, 8, 8), np.nan, np.float32)}, "NaN or infinite"),
    ({"x_train": np.zeros((0, 8, 8), np.float32), "y_train": np.zeros(0, np.int64)}, "non-empty batch"),
])
def test_npz_errors(tmp_path: Path, change: dict[str, np.ndarray | None], message: str) -> None:
    arr = {k: v for k, v in {**_good_arrays(), **change}.items() if v is not None}
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_npz(_npz(tmp_path / "d.npz", **arr))


def test_npz_not_an_archive(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"as an \.npz archive"):
        load_npz(bad)


def test_options_and_target_validation(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--epochs"):
        TreeOptions(epochs=0)
    with pytest.raises(UsageError, match="unknown leaf"):
        TreeOptions(leaves=("nope",))
    with pytest.raises(UsageError, match="model file not found"):
        validate(TreeOptions(model=str(tmp_path / "missing.keras")))
    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"\.keras or \.h5"):
        validate(TreeOptions(model=str(tmp_path / "m.tflite")))
    with pytest.raises(TargetError, match="Ethos-U"):
        validate(TreeOptions(target=resolve_target("ethos-n78")))
    with pytest.raises(TargetError, match="known"):
        resolve_target("ethos-u55-100")
    assert check_ethos_u(resolve_target("Ethos-U85-256")).name == "ethos-u85-256"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        check_output_dir(tmp_path / "file")
    assert check_output_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "{tmp}/missing.keras"], "model file not found"),
    (["--data", "{tmp}/missing.npz"], "dataset file not found"),
    (["--data", "{tmp}/partial.npz"], "lacks the arrays x_test, y_test"),
    (["--target", "ethos-u55-7"], "ethos-u55-7"),
    (["--epochs", "0"], "--epochs must be a positive count"),
    (["-o", "{tmp}/afile"], "not a directory"),
])
def test_cli_bad_input_exits_2_in_one_line(run_cli: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    _npz(tmp_path / "partial.npz", x_train=np.zeros((2, 8, 8)), y_train=np.zeros(2))
    (tmp_path / "afile").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out")]
    res = run_cli("tree", *argv)
    assert res.code == 2, res.err
    assert res.err.count("\n") == 1 and res.err.startswith("hwopt: error:") and message in res.err
    assert not (tmp_path / "out").exists()  # nothing written, and nothing trained


def test_cli_without_train_extra(run_cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tf, "_REQUIRED", (*_tf._REQUIRED, "hwopt_absent_module_for_test"))
    assert not _tf.available()
    with pytest.raises(UnsupportedModelError, match=r"install hwopt\[train\]"):
        _tf.load()
    res = run_cli("tree", "--quick", "-o", tmp_path / "out")
    assert res.code == 2 and "install hwopt[train]" in res.err and res.err.count("\n") == 1


def _leaf(name: str, size: int | None, cycles: int | None, acc: float | None, available: bool = True) -> LeafReport:
    t = BY_NAME[name]
    return LeafReport(t.name, t.title, t.recipe, t.parent, available, "", f"{name}.tflite", 0.9, "fp32", acc,
                      1000, 750, size, cycles, 0.5, 16, None, None, True)


def test_pareto_front_by_hand() -> None:
    leaves = [
        _leaf("baseline", 100, 50, 0.98),  # most accurate: optimal
        _leaf("pruned", 60, 40, 0.97),  # smaller and faster than baseline: optimal
        _leaf("clustered", 80, 45, 0.96),  # beaten by pruned on all three
        _leaf("pcqat", 40, 40, 0.90),  # smallest: optimal
        _leaf("cqat", 40, 40, 0.90),  # ties pcqat everywhere: neither dominates, both optimal
        _leaf("qat", None, None, None, available=False),
    ]
    assert pareto_front(leaves) == ["baseline", "pruned", "pcqat", "cqat"]


def test_compression_text_matches_tfmot_layout() -> None:
    # TFMOT's published DS-CNN-L row: 528,128 -> 434,879 (17.66%)
    leaf = LeafReport("baseline", "Baseline", "", None, True, "", None, None, None, None, 528_128, 434_879,
                      None, None, None, None, None, None, None)
    assert leaf.compression == "528,128 -> 434,879 (17.66%)"


def test_markdown_has_every_family_and_failure() -> None:
    broken = LeafReport("pcqat", "PCQAT", BY_NAME["pcqat"].recipe, "pruned_clustered", True, "", "pcqat.tflite",
                        0.9, "fake-int8", 0.9, 1000, 600, 300, 20, 0.5, 17, 0.49, 16, False,
                        ["CONV_2D #2 (w): 17 distinct values per channel > expected 16"])
    report = TreeReport(SCHEMA, "m", "d", 10, 5, "ethos-u55-128", "Vela totals", 1, 1, 0,
                        [_leaf("baseline", 500, 30, 0.95), broken], ["baseline"])
    assert report.failed
    md = tree_markdown(report)
    for title, _names in FAMILIES:
        assert f"## {title}" in md
    assert "(fake INT8) 90.00%" in md and "FAIL (1 layer)" in md and "17 distinct values per channel" in md
    assert "Pareto-optimal leaves: **Baseline**" in md


def test_markdown_lists_the_sparsity_promise_and_dense_layers() -> None:
    enforce = dataclasses.replace(_leaf("enforce", 300, 20, 0.97), expect_sparsity=0.49, sparsity_scope="global",
                                  pruned_sparsity=0.5004, sparsity_exempt=["CONV_2D #0 (c0)", "DEPTHWISE_CONV_2D #1 (d1)"])
    pruned = dataclasses.replace(_leaf("pruned", 400, 25, 0.98), expect_sparsity=0.49, sparsity_scope="layer",
                                 pruned_sparsity=0.5, sparsity_exempt=["DEPTHWISE_CONV_2D #1 (d1)"])
    report = TreeReport(SCHEMA, "m", "d", 10, 5, "ethos-u55-128", "Vela totals", 1, 1, 0,
                        [_leaf("baseline", 500, 30, 0.98), pruned, enforce], ["baseline"])
    md = tree_markdown(report)
    assert ("- **hwopt enforce**: at least 49% zeros over the pruned layers together (measured 50.0% over them); "
            "left dense: `CONV_2D #0 (c0)`, `DEPTHWISE_CONV_2D #1 (d1)`") in md
    assert ("- **Pruned 50%**: at least 49% zeros in every pruned layer (measured 50.0% over them); "
            "left dense: `DEPTHWISE_CONV_2D #1 (d1)`") in md
    assert "**Baseline**:" not in md


def test_broken_layers_exempts_only_named_layers(shared_models: Path) -> None:
    dense = shared_models / "derived" / "ic_resnet8_baseline_int8.tflite"
    report = audit(dense, Expectations(sparsity=0.49))
    assert len(broken_layers(report)) == len(report.layers)  # nothing pruned: every layer flagged
    keys = [(la.subgraph, la.op_index) for la in report.layers]
    assert broken_layers(report, frozenset(keys)) == []
    assert len(broken_layers(report, frozenset(keys[1:]))) == 1  # only the layer not exempt is named
    pruned = audit(shared_models / "derived" / "ic_resnet8_pruned50_int8.tflite", Expectations(sparsity=0.49))
    assert broken_layers(pruned) == []


def test_sparsity_exempt_by_hand() -> None:
    ds_cnn = [(0, 0, "CONV_2D"), (0, 1, "DEPTHWISE_CONV_2D"), (0, 2, "CONV_2D"), (0, 3, "DEPTHWISE_CONV_2D"),
              (0, 4, "CONV_2D"), (0, 6, "FULLY_CONNECTED")]
    assert sparsity_exempt(BY_NAME["enforce"], ds_cnn) == {(0, 0), (0, 1), (0, 3)}
    assert sparsity_exempt(BY_NAME["pruned"], ds_cnn) == {(0, 1), (0, 3)}  # TFMOT: depthwise only
    assert sparsity_exempt(BY_NAME["clustered"], ds_cnn) == frozenset()  # promises no sparsity
    # the input layer is the first layer left after the depthwise ones, in operator order
    assert sparsity_exempt(BY_NAME["enforce"], [(0, 5, "FULLY_CONNECTED"), (0, 0, "DEPTHWISE_CONV_2D"),
                                                (0, 2, "CONV_2D")]) == {(0, 0), (0, 2)}
    # ... and stays prunable when it is the only layer left, so the leaf still prunes something
    assert sparsity_exempt(BY_NAME["enforce"], [(0, 0, "DEPTHWISE_CONV_2D"), (0, 1, "CONV_2D")]) == {(0, 0)}
    assert BY_NAME["enforce"].sparsity_scope == "global" and BY_NAME["pcqat"].sparsity_scope == "layer"


def _first_conv(model: object) -> int:
    """Operator index of the first CONV_2D, walking the operator list by hand."""
    ops = model.subgraphs[0].operators  # type: ignore[attr-defined]
    return next(op.index for op in ops if op.op == "CONV_2D")


def test_leaf_pipeline_skips_depthwise_and_the_input_conv(shared_models: Path) -> None:
    from hwopt.format.tflite_io import read_model
    from hwopt.passes.manager import format_pipeline, parse_pipeline

    model = read_model(shared_models / "ds_cnn_m_quantized.tflite")
    first = _first_conv(model)
    assert first == 2  # behind the input RESHAPE, so the index is really looked up
    assert prune_skip(model) == ["DEPTHWISE_CONV_2D", "2"]
    text = leaf_pipeline(model, 0.5, 16, resolve_target("ethos-u55-128"))
    assert text == ("prune{sparsity=0.5,scope=global,skip=[DEPTHWISE_CONV_2D,2]},"
                    "cluster{k=16,granularity=stream,preserve_zero=true,target=ethos-u55-128},bias-correct")
    assert [p.name for p in parse_pipeline(format_pipeline(parse_pipeline(text)))] == ["prune", "cluster",
                                                                                      "bias-correct"]


def test_global_sparsity_check_counts_the_pruned_layers(shared_models: Path) -> None:
    from hwopt.analysis.layers import weight_layers, zero_corrected
    from hwopt.engines.enforce import enforce_model
    from hwopt.format.tflite_io import read_model

    src = shared_models / "ds_cnn_m_quantized.tflite"
    model = read_model(src)
    prune = leaf_pipeline(model, 0.5, 16, resolve_target("ethos-u55-128")).split("},")[0] + "}"
    new, data, _ = enforce_model(model, prune, measure_encoded=False)
    after = audit_model(new, data, "pruned.tflite", Expectations())
    exempt = sparsity_exempt(BY_NAME["enforce"], [(la.subgraph, la.op_index, la.op) for la in after.layers])
    assert {(la.op, la.op_index) for la in after.layers if (la.subgraph, la.op_index) in exempt} == {
        ("CONV_2D", 2), ("DEPTHWISE_CONV_2D", 3), ("DEPTHWISE_CONV_2D", 5), ("DEPTHWISE_CONV_2D", 7),
        ("DEPTHWISE_CONV_2D", 9)}
    # zeros counted straight from the weights: half of the 4 pointwise convs and the dense layer together,
    # exempt layers untouched
    zeros = total = 0
    for before_wl, wl in zip(weight_layers(model), weight_layers(new), strict=True):
        w = zero_corrected(new, wl)
        if (wl.subgraph, wl.op_index) in exempt:
            assert np.array_equal(w, zero_corrected(model, before_wl))
        else:
            zeros, total = zeros + int((w == 0).sum()), total + w.size
    assert total == 4 * 172 * 172 + 12 * 172 and zeros >= round(0.5 * total)
    assert pruned_zeros(after, exempt) == (zeros, total)
    assert global_sparsity_broken(after, exempt, 0.49) == []
    # per layer the global ranking is free to differ from 50%
    assert len({round(la.sparsity, 2) for la in after.layers if (la.subgraph, la.op_index) not in exempt}) > 1
    # the unpruned model breaks the promise: one message naming every pruned layer and no exempt one
    dense = audit(src, Expectations())
    [msg] = global_sparsity_broken(dense, exempt, 0.49)
    assert "< expected 0.4900" in msg
    assert all(f"CONV_2D #{i} " in msg for i in (4, 6, 8, 10)) and "FULLY_CONNECTED #13 " in msg
    assert "#2 " not in msg and "DEPTHWISE" not in msg
    every = frozenset((la.subgraph, la.op_index) for la in dense.layers)
    assert global_sparsity_broken(dense, every, 0.49) == ["no weight layer left to prune: every layer is exempt"]


def test_every_family_names_known_leaves() -> None:
    names = {t.name for t in LEAVES}
    assert all(set(group) <= names for _title, group in FAMILIES)
    assert all(t.parent is None or t.parent in names for t in LEAVES)


# ------------------------------------------------------------------ the whole tree (train extra)


@pytest.mark.train
@pytest.mark.slow
@pytest.mark.skipif(not _tf.available(), reason=TRAIN_SKIP)
def test_quick_tree_end_to_end(tmp_path: Path) -> None:
    from hwopt.analysis.layers import weight_layers, zero_corrected
    from hwopt.format.tflite_io import read_model

    out = tmp_path / "tree"
    res = run_cli_subprocess("tree", "--quick", "-o", out, "--json", timeout=3600)
    report = json.loads(res.out)
    assert res.code == (1 if any(lf["structure_ok"] is False for lf in report["leaves"]) else 0), res.err
    assert report["schema"] == SCHEMA and report["test_examples"] == 359
    assert json.loads((out / "tree.json").read_text()) == report
    assert "## Sparsity-preserving clustering and PCQAT" in (out / "tree.md").read_text()
    by_name = {lf["name"]: lf for lf in report["leaves"]}
    assert list(by_name) == [t.name for t in LEAVES]
    for t in LEAVES:
        leaf = by_name[t.name]
        assert leaf["available"], leaf["note"]
        model = read_model(out / f"{t.name}.tflite")
        sg = model.subgraphs[0]
        # fully int8: input, output and every weight tensor
        io = [sg.tensor(i) for i in (*sg.inputs, *sg.outputs)]
        assert [tensor.dtype.label for tensor in io if tensor is not None] == ["int8", "int8"]
        assert {la.dtype for la in audit(out / f"{t.name}.tflite").layers} == {"int8"}
        assert leaf["encoded_weight_bytes"] > 0 and leaf["cycles"] > 0
        assert leaf["deflate_bytes"] < leaf["tflite_bytes"]
        # honest quick-mode accuracy on 359 held-out digits; the enforce leaf keeps its sensitive layers
        # dense and ranks the rest globally, so post-training 50% pruning stays usable without retraining
        assert leaf["int8_top1"] > 0.8, t.name
    # PCQAT keeps its structure in the int8 file: >= 49% zeros and <= 16 values per output channel
    # in every layer TFMOT optimises (it leaves DepthwiseConv2D unpruned and unclustered).
    pcqat = audit(out / "pcqat.tflite", Expectations(clusters=16, per_channel=True))
    assert not pcqat.failed
    tfmot_layers = [la for la in pcqat.layers if la.op != "DEPTHWISE_CONV_2D"]
    assert len(tfmot_layers) == 5  # conv0, three pointwise convs, the dense layer
    assert all(la.sparsity >= 0.49 and la.max_unique_per_channel <= 16 for la in tfmot_layers)
    assert by_name["pcqat"]["structure_ok"] and by_name["pruned"]["structure_ok"]
    # the enforce leaf keeps the input conv and the depthwise layers dense and promises 49% zeros over
    # the rest together: counted here straight from the int8 weights
    leaf = by_name["enforce"]
    assert leaf["structure_ok"] and leaf["sparsity_scope"] == "global" and leaf["expect_sparsity"] == 0.49
    enforced = audit(out / "enforce.tflite", Expectations(clusters=16, per_channel=True))
    assert not enforced.failed
    model = read_model(out / "enforce.tflite")
    layers = weight_layers(model)
    first = _first_conv(model)
    dense = [wl for wl in layers if wl.op == "DEPTHWISE_CONV_2D" or wl.op_index == first]
    assert [f"{wl.op} #{wl.op_index}" for wl in dense] == [s.split(" (")[0] for s in leaf["sparsity_exempt"]]
    assert [wl.op for wl in dense] == ["CONV_2D"] + ["DEPTHWISE_CONV_2D"] * 3
    pruned = [zero_corrected(model, wl) for wl in layers if wl not in dense]
    zeros, total = sum(int((w == 0).sum()) for w in pruned), sum(w.size for w in pruned)
    assert total == 3 * 64 * 64 + 10 * 64 and zeros >= 0.49 * total
    assert leaf["pruned_sparsity"] == pytest.approx(zeros / total, abs=1e-6)
    # compressed leaves are smaller on the NPU than the baseline
    base = by_name["baseline"]["encoded_weight_bytes"]
    assert all(by_name[n]["encoded_weight_bytes"] < base for n in ("pruned", "pqat", "clustered", "cqat", "pcqat"))
    assert set(report["pareto"]) <= set(by_name) and report["pareto"]


@pytest.mark.train
@pytest.mark.skipif(not _tf.available(), reason=TRAIN_SKIP)
def test_user_model_and_npz(tmp_path: Path) -> None:
    from hwopt.tree import run_tree, write_tree

    mods = _tf.load()
    keras = mods.keras
    mods.keras.utils.set_random_seed(0)
    inp = keras.layers.Input((6, 6, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inp, keras.layers.Dense(3)(x))  # logits: the loss must add the softmax
    model.save(tmp_path / "m.keras")
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    stripes = np.zeros((3, 6, 6), np.float32)  # class c: rows 2c and 2c+1 bright, linearly separable
    for c in range(3):
        stripes[c, 2 * c : 2 * c + 2] = 1.0
    xs = (rng.normal(0, 0.1, (90, 6, 6)) + stripes[y]).astype(np.float32)
    _npz(tmp_path / "d.npz", x_train=xs[:60], y_train=y[:60], x_test=xs[60:], y_test=y[60:])
    opts = TreeOptions(model=str(tmp_path / "m.keras"), data=str(tmp_path / "d.npz"), epochs=20,
                       leaves=("pruned", "enforce"))
    result = run_tree(opts)
    report = result.report
    assert [lf.name for lf in report.leaves] == ["baseline", "pruned", "enforce"]  # enforce pulls in its baseline
    assert report.model == "m.keras" and report.dataset == "d" and report.base_epochs == 20
    assert report.leaf("pruned").structure_ok  # type: ignore[union-attr]
    base = report.leaf("baseline")
    assert base is not None and base.keras_top1 is not None and base.int8_top1 is not None
    assert base.keras_top1 > 0.9 and base.int8_top1 > 0.9, (base.keras_top1, base.int8_top1)  # separable toy classes
    out = write_tree(result, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["baseline.tflite", "enforce.tflite", "pruned.tflite",
                                                    "tree.json", "tree.md"]
    # examples that do not fit the model's input
    _npz(tmp_path / "bad.npz", x_train=xs[:60, :5, :5], y_train=y[:60], x_test=xs[60:, :5, :5], y_test=y[60:])
    with pytest.raises(DataError, match="model expects"):
        run_tree(TreeOptions(model=str(tmp_path / "m.keras"), data=str(tmp_path / "bad.npz"), leaves=("baseline",)))
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelFormatError, match="cannot load Keras model"):
        run_tree(TreeOptions(model=str(tmp_path / "broken.h5"), data=str(tmp_path / "d.npz")))


@pytest.mark.skipif(_tf.available(), reason="checks the message shown when the train extra is absent")
def test_train_extra_absent_message() -> None:
    with pytest.raises(UnsupportedModelError, match=r"install hwopt\[train\]"):
        _tf.require()


def test_dataset_properties() -> None:
    d = TreeDataset("t", np.zeros((3, 2, 2, 1), np.float32), np.array([0, 2, 1]), np.zeros((1, 2, 2, 1), np.float32),
                np.array([4]))
    assert d.classes == 5 and d.input_shape == (2, 2, 1)
