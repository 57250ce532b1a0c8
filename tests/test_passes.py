"""Pass infrastructure (pipeline parser, registry, manager contracts) and the prune/repair/bias passes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwopt.analysis.layers import zero_corrected_tensor
from hwopt.analysis.stats import check_2_4
from hwopt.errors import PassError, UsageError
from hwopt.format.tflite_io import read_model, serialize
from hwopt.ir import Model
from hwopt.passes import cluster as cluster_module
from hwopt.passes._common import layers_to_process, scales
from hwopt.passes.bias_correction import BiasCorrectionPass, mean_patches
from hwopt.passes.cluster import ClusterPass, distinct_per_group, max_unique_per_group
from hwopt.passes.manager import (
    Pass,
    PassContext,
    PassManager,
    PassResult,
    copy_model,
    format_pipeline,
    get_pass_class,
    parse_pipeline,
    register_pass,
)
from hwopt.passes.prune import PrunePass, _smallest, _smallest_magnitudes, pruned_8bit
from hwopt.passes.repair import RepairPass, snap_to_popular
from hwopt.targets import resolve_target
from tests.modelgen import int8_conv_model

# --------------------------------------------------------------------------- parser


def test_parse_example_pipeline() -> None:
    passes = parse_pipeline("prune{sparsity=0.5,pattern=2:4},cluster{k=16,granularity=stream,preserve_zero=true}")
    assert passes == [PrunePass(sparsity=0.5, pattern="2:4"), ClusterPass(k=16, granularity="stream", preserve_zero=True)]
    assert parse_pipeline("prune") == [PrunePass()]
    assert parse_pipeline(" prune { sparsity = 0.25 } , repair{} ") == [PrunePass(sparsity=0.25), RepairPass()]
    assert parse_pipeline("prune{skip=[0,DEPTHWISE_CONV_2D]}") == [PrunePass(skip=("0", "DEPTHWISE_CONV_2D"))]
    assert parse_pipeline("cluster{target=none}") == [ClusterPass(target=None)]
    assert parse_pipeline('cluster{target="ethos-u65-512"}') == [ClusterPass(target=resolve_target("ethos-u65-512"))]


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.0, 1.0, allow_nan=False),
    st.sampled_from(["unstructured", "block"]),
    st.integers(2, 16),
    st.sampled_from(["layer", "global"]),
    st.integers(1, 256),
    st.sampled_from(["tensor", "channel", "stream"]),
    st.booleans(),
    st.lists(st.sampled_from(["0", "3", "CONV_2D", "FULLY_CONNECTED"]), max_size=3),
    st.sampled_from([None, "ethos-u55-128", "ethos-u85-512"]),
)
def test_pipeline_round_trip(sparsity: float, pattern: str, block: int, scope: str, k: int, gran: str, pz: bool,
                             skip: list[str], target: str | None) -> None:
    passes: list[Pass] = [
        PrunePass(sparsity=sparsity, pattern=pattern, block=block, scope=scope, skip=tuple(skip)),  # type: ignore[arg-type]
        ClusterPass(k=k, granularity=gran, preserve_zero=pz, target=None if target is None else resolve_target(target)),  # type: ignore[arg-type]
        RepairPass(k=k % 33, zero_tolerance=2),
        BiasCorrectionPass(samples=7),
    ]
    text = format_pipeline(passes)
    assert parse_pipeline(text) == passes
    assert format_pipeline(parse_pipeline(text)) == text


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty pipeline"),
    ("frobnicate", "unknown pass 'frobnicate'"),
    ("prune{density=0.5}", "unknown option 'density'"),
    ("prune{sparsity=abc}", "expected a number"),
    ("prune{sparsity=1.5}", r"\[0, 1\]"),
    ("prune{sparsity=nan}", "finite"),
    ("prune{pattern=3:4}", "not one of"),
    ("prune{pattern=2:4,sparsity=0.7}", "2:4 fixes sparsity"),
    ("cluster{k=0}", "1..256"),
    ("cluster{k=300}", "1..256"),
    ("cluster{k=1.5}", "expected an integer"),
    ("cluster{preserve_zero=maybe}", "true or false"),
    ("cluster{k=[1,2]}", "got a list"),
    ("cluster{k=4,k=5}", "given twice"),
    ("cluster{k=4", "expected"),
    ("cluster{k=4},", "expected a name"),
    ("cluster k=4", "expected"),
    ("cluster{k}", "expected '='"),
    ("cluster{target=ethos-u99}", "unknown target"),
])
def test_pipeline_errors(text: str, message: str) -> None:
    from hwopt.errors import HwoptError

    with pytest.raises(HwoptError, match=message) as info:
        parse_pipeline(text)
    assert info.value.exit_code == 2


def test_registry_is_lazy_and_extensible() -> None:
    @dataclass(frozen=True)
    class Noop(Pass):
        name = "noop-test"
        level: int = 1

        def run(self, model: Model) -> PassResult:
            return PassResult(model, False, {"level": self.level})

    register_pass("noop-test", Noop)
    assert parse_pipeline("noop-test{level=3}") == [Noop(level=3)]
    assert get_pass_class("cluster") is ClusterPass
    with pytest.raises(UsageError, match="known passes"):
        get_pass_class("nope")


# --------------------------------------------------------------------------- manager


@dataclass(frozen=True)
class _Returns(Pass):
    name = "returns-test"
    mode: str = "same"

    def run(self, model: Model) -> PassResult:
        if self.mode == "copy":
            return PassResult(copy_model(model), True)
        if self.mode == "boom":
            raise ZeroDivisionError("boom")
        if self.mode == "break":
            t = model.subgraphs[0].tensors[1]
            t.data = np.zeros(3, dtype=np.int8)  # wrong size for its shape
            return PassResult(model, True)
        return PassResult(model, False)


@dataclass(frozen=True)
class _Functional(_Returns):
    name = "functional-test"
    in_place = False


@dataclass(frozen=True)
class _Picky(Pass):
    name = "picky-test"
    fail: str = "requires"

    def requires(self, model: Model) -> None:
        if self.fail == "requires":
            raise PassError("needs something")

    def ensures(self, model: Model) -> None:
        if self.fail == "ensures":
            raise PassError("promise broken")

    def run(self, model: Model) -> PassResult:
        return PassResult(model, False)


@pytest.fixture
def small_model() -> Model:
    return read_model(int8_conv_model())


def test_manager_contracts(small_model: Model) -> None:
    assert PassManager([_Returns()]).run(small_model).records[0].name == "returns-test"
    assert PassManager([_Functional(mode="copy")]).run(small_model).model is not small_model
    with pytest.raises(PassError, match=r"returns-test.*in-place.*different model"):
        PassManager([_Returns(mode="copy")]).run(small_model)
    with pytest.raises(PassError, match=r"functional-test.*functional.*its input"):
        PassManager([_Functional(mode="same")]).run(small_model)
    with pytest.raises(PassError, match=r"returns-test.*failed: ZeroDivisionError"):
        PassManager([_Returns(mode="boom")]).run(small_model)
    with pytest.raises(PassError, match=r"picky-test.*precondition failed: needs something"):
        PassManager([_Picky(fail="requires")]).run(small_model)
    with pytest.raises(PassError, match=r"picky-test.*postcondition failed: promise broken"):
        PassManager([_Picky(fail="ensures")]).run(small_model)


def test_manager_verifies_between_passes(small_model: Model) -> None:
    with pytest.raises(PassError, match=r"returns-test\{mode=break\} left an invalid model"):
        PassManager([PrunePass(), _Returns(mode="break"), ClusterPass()]).run(small_model)


# --------------------------------------------------------------------------- prune


def _magnitudes(model: Model, op_index: int) -> np.ndarray:
    wl = next(w for w in layers_to_process(model)[0] if w.op_index == op_index)
    t = wl.weights(model)
    return np.abs(zero_corrected_tensor(t)).astype(np.float64) * scales(t)


def test_prune_unstructured_per_layer_is_magnitude_order() -> None:
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(8, 3, 3, 4)).astype(np.int8)
    w[0, 0, 0, :] = 0  # existing zeros
    before = read_model(int8_conv_model(w))
    after = copy_model(before)
    res = PassManager([PrunePass(sparsity=0.6)]).run(after)
    for wl in layers_to_process(before)[0]:
        mb = _magnitudes(before, wl.op_index).ravel()
        qa = zero_corrected_tensor(wl.weights(after)).ravel()
        zero = qa == 0
        assert zero.sum() == round(0.6 * qa.size)
        # Every pruned weight is no larger (dequantized) than every kept one.
        assert mb[zero].max() <= mb[~zero].min()
        assert np.all(zero_corrected_tensor(wl.weights(before)).ravel()[~zero] == qa[~zero])
    assert np.all(zero_corrected_tensor(layers_to_process(after)[0][0].weights(after))[0, 0, 0, :] == 0)
    assert int(res.records[0].stats["weights_zeroed"]) > 0  # type: ignore[arg-type]


def test_prune_uses_per_channel_scales() -> None:
    # Channel 0 has large ints but (see the generated scales) the order must follow int · scale.
    w = np.ones((2, 3, 3, 4), dtype=np.int8)
    w[0] *= 100
    w[1] *= 10
    data = int8_conv_model(w, fc=False)
    model = read_model(data)
    t = layers_to_process(model)[0][0].weights(model)
    s = t.quantization.scale  # type: ignore[union-attr]
    smaller = 0 if 100 * s[0] < 10 * s[1] else 1
    PassManager([PrunePass(sparsity=0.5)]).run(model)
    q = zero_corrected_tensor(layers_to_process(model)[0][0].weights(model))
    assert np.all(q[smaller] == 0) and np.all(q[1 - smaller] != 0)


def test_prune_global_and_skip(small_model: Model) -> None:
    before = copy_model(small_model)
    PassManager([PrunePass(sparsity=0.5, scope="global")]).run(small_model)
    layers = layers_to_process(small_model)[0]
    zeros = sum(int(np.sum(zero_corrected_tensor(wl.weights(small_model)) == 0)) for wl in layers)
    total = sum(wl.weights(small_model).elements for wl in layers)
    assert zeros == round(0.5 * total)
    # Skip by type and by op index leave the layers untouched.
    for skip in (("FULLY_CONNECTED",), ("1",)):
        m = copy_model(before)
        PassManager([PrunePass(sparsity=0.5, skip=skip)]).run(m)
        fc_b, fc_a = (zero_corrected_tensor(layers_to_process(x)[0][1].weights(x)) for x in (before, m))
        assert np.array_equal(fc_b, fc_a)
        assert np.mean(zero_corrected_tensor(layers_to_process(m)[0][0].weights(m)) == 0) == pytest.approx(0.5, abs=0.01)


def test_prune_2_4_keeps_two_largest(small_model: Model) -> None:
    before = copy_model(small_model)
    PassManager([PrunePass(pattern="2:4")]).run(small_model)
    for wl in layers_to_process(before)[0]:
        qa = zero_corrected_tensor(wl.weights(small_model))
        assert check_2_4(qa, wl.in_axis)[0] is True
        mb = _magnitudes(before, wl.op_index)
        assert wl.in_axis is not None
        g_mag = np.moveaxis(mb, wl.in_axis, -1).reshape(-1, 4)
        g_new = np.moveaxis(qa, wl.in_axis, -1).reshape(-1, 4)
        kept_min = np.where(g_new != 0, g_mag, np.inf).min(axis=1)
        dropped_max = np.where(g_new == 0, g_mag, -np.inf).max(axis=1)
        assert np.all(dropped_max <= kept_min)
        assert np.all((g_new != 0).sum(axis=1) <= 2)


def test_prune_blocks() -> None:
    model = read_model(int8_conv_model(channels=8, in_channels=8))
    PassManager([PrunePass(sparsity=0.5, pattern="block", block=4)]).run(model)
    q = zero_corrected_tensor(layers_to_process(model)[0][0].weights(model))
    blocks = q.reshape(8, 3, 3, 2, 4)
    allzero = ~blocks.any(axis=-1)
    assert allzero.sum() == round(0.5 * allzero.size)
    assert np.all(blocks[~allzero].any(axis=-1))  # kept blocks are untouched (random weights, no zeros)


def test_prune_2_4_skips_depthwise(shared_models: Path) -> None:
    model = read_model(shared_models / "micro_speech_quantized.tflite")
    res = PassManager([PrunePass(pattern="2:4")]).run(model)
    assert int(res.records[0].stats["skipped"]) >= 1  # type: ignore[arg-type]


# --------------------------------------------------------------------------- repair


def test_snap_to_popular() -> None:
    v = np.array([0, 0, 0, 5, 5, 6, 9, 9, 9, 9, 20])
    # top-3 by count: 9 (4), 0 (3), 5 (2); 6 → 5, 20 → 9.
    assert snap_to_popular(v, 3, keep_zero=False).tolist() == [0, 0, 0, 5, 5, 5, 9, 9, 9, 9, 9]
    assert snap_to_popular(v, 8, keep_zero=False).tolist() == v.tolist()
    # keep_zero forces 0 into a size-1 palette.
    assert snap_to_popular(np.array([3, 3, 3, 0]), 1, keep_zero=True).tolist() == [0, 0, 0, 0]


def test_repair_rezero_and_recluster() -> None:
    rng = np.random.default_rng(5)
    w = rng.choice(np.array([-60, -20, 20, 60], dtype=np.int8), size=(8, 3, 3, 4))
    mask = rng.random(w.shape) < 0.5
    w[mask] = 0
    drift = mask & (rng.random(w.shape) < 0.2)
    w[drift] = 1  # pruned zeros drifted to ±1
    split = (~mask) & (rng.random(w.shape) < 0.1)
    w[split] += 3  # requantization split some clusters
    model = read_model(int8_conv_model(w, fc=False))
    res = PassManager([RepairPass(k=5)]).run(model)
    q = zero_corrected_tensor(layers_to_process(model)[0][0].weights(model))
    assert np.all(q[mask] == 0)
    assert np.unique(q).size <= 5
    stats = res.records[0].stats
    assert stats["rezeroed"] == int(drift.sum())
    assert stats["weights_moved"] == int(drift.sum() + split.sum())


def test_repair_infers_k_from_channels(shared_models: Path) -> None:
    model = read_model(shared_models / "derived" / "ic_resnet8_clustered16_int8.tflite")
    res = PassManager([RepairPass(k=0)]).run(model)
    assert res.modified
    for wl in layers_to_process(model)[0]:
        assert np.unique(zero_corrected_tensor(wl.weights(model))).size <= 16


# --------------------------------------------------------------------------- bias correction


def test_mean_patches_matches_explicit_windows() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 7, 6, 3))
    for stride, dil, same in (((1, 1), (1, 1), True), ((2, 2), (1, 1), True), ((2, 1), (1, 2), False)):
        kh, kw = 3, 3
        if same:
            oh, ow = -(-7 // stride[0]), -(-6 // stride[1])
        else:
            oh = (7 - (kh - 1) * dil[0] - 1) // stride[0] + 1
            ow = (6 - (kw - 1) * dil[1] - 1) // stride[1] + 1
        got = mean_patches(x, kh, kw, (oh, ow), stride, dil, same)
        pt = max((oh - 1) * stride[0] + (kh - 1) * dil[0] + 1 - 7, 0) // 2 if same else 0
        pl = max((ow - 1) * stride[1] + (kw - 1) * dil[1] + 1 - 6, 0) // 2 if same else 0
        want = np.zeros((kh, kw, 3))
        for i in range(kh):
            for j in range(kw):
                acc = np.zeros(3)
                for a in range(oh):
                    for b in range(ow):
                        r, c = a * stride[0] + i * dil[0] - pt, b * stride[1] + j * dil[1] - pl
                        if 0 <= r < 7 and 0 <= c < 6:
                            acc += x[:, r, c, :].sum(axis=0)
                want[i, j] = acc / (2 * oh * ow)
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_bias_correction_reduces_mean_shift() -> None:
    from hwopt.engines.fidelity import Runner, dequantize, random_dataset

    original = int8_conv_model(seed=4)
    runner = Runner(original)
    calib = random_dataset(runner.inputs, samples=32, seed=1)
    ctx = PassContext(reference=original, calibration={"0": calib.inputs[0]})

    def mean_out(data: bytes) -> np.ndarray:
        r = Runner(data)
        outs = [dequantize(r.invoke(calib.sample(i))[0], r.outputs[0]) for i in range(calib.samples)]
        return np.mean(outs, axis=0)

    plain = read_model(original)
    PassManager([ClusterPass(k=2)]).run(plain)
    corrected_model = read_model(original)
    res = PassManager([ClusterPass(k=2), BiasCorrectionPass().with_context(ctx)]).run(corrected_model)
    assert res.records[1].modified
    ref = mean_out(original)
    err_plain = np.abs(mean_out(serialize(plain)) - ref).sum()
    err_bc = np.abs(mean_out(serialize(corrected_model)) - ref).sum()
    assert err_bc < err_plain


def test_bias_correction_needs_data(small_model: Model) -> None:
    with pytest.raises(PassError, match=r"bias-correct.*calibration"):
        PassManager([PrunePass(), BiasCorrectionPass()]).run(small_model)
    with pytest.raises(UsageError):
        BiasCorrectionPass(samples=0)
    # with_context leaves context-free passes alone.
    p = PrunePass()
    assert p.with_context(PassContext()) is p
    assert dataclasses.replace(BiasCorrectionPass(), samples=3).spec() == "bias-correct{samples=3}"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5, float("nan")]), min_size=1, max_size=60), st.integers(-1, 62))
def test_smallest_equals_a_stable_sort(values: list[float], count: int) -> None:
    """The linear-time selection keeps exactly what a stable argsort would (ties by position, NaN last)."""
    scores = np.array(values)
    expected = np.zeros(scores.size, dtype=bool)
    if count > 0:
        expected[np.argsort(scores, kind="stable")[:count]] = True
    assert np.array_equal(_smallest(scores, count), expected)


def test_max_unique_per_group_counts_distinct_values_per_group() -> None:
    rng = np.random.default_rng(5)
    rows = rng.integers(-255, 256, size=(12, 40))
    groups = np.array([0, 0, 1, 1, 1, 3, 3, 0, 1, 3, 0, 1])  # group 2 is empty
    expected = max(np.unique(rows[groups == g]).size for g in (0, 1, 3))
    assert max_unique_per_group(rows, groups) == expected
    assert max_unique_per_group(rows * 300, groups) == max(np.unique(rows[groups == g] * 300).size for g in (0, 1, 3))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["tensor", "rows", "columns", "zero"]), st.floats(0.0, 1.0))
def test_smallest_magnitudes_equals_sorting_the_scores(seed: int, scale_kind: str, share: float) -> None:
    """The histogram path selects exactly what sorting the float64 scores |q - zp| * scale selects."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 9)), int(rng.integers(1, 30)))
    mag = np.abs(rng.integers(-255, 256, size=shape)) * (rng.random(shape) < 0.6)
    scale = {"tensor": np.full((1, 1), rng.random() + 1e-3), "rows": rng.choice([0.5, 0.25, 0.0, 1.5], size=(shape[0], 1)),
             "columns": rng.random((1, shape[1])), "zero": np.zeros((1, 1))}[scale_kind]
    count = round(share * mag.size)
    expected = _smallest((mag.astype(np.float64) * scale).reshape(-1), count)
    assert np.array_equal(_smallest_magnitudes(mag, scale, count), expected)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["tensor", "rows", "columns", "zero", "ties"]), st.floats(0.0, 1.0),
       st.sampled_from(["int8", "uint8"]), st.booleans())
def test_pruned_8bit_equals_sorting_the_scores(seed: int, scale_kind: str, share: float, dtype: str,
                                               per_row_zp: bool) -> None:
    """The 8-bit prune (thresholds per scale, int16 arithmetic) zeroes exactly the weights a stable
    sort of the float64 scores |q - zp| * scale selects, and nothing else."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 9)), int(rng.integers(1, 40)))
    info = np.iinfo(dtype)
    q = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    zp = (rng.integers(info.min, int(info.max) + 1, size=(shape[0], 1)) if per_row_zp
          else np.full((1, 1), 0 if dtype == "int8" else int(rng.integers(0, 256)))).astype(np.int64)
    q = np.where(rng.random(shape) < 0.3, zp, q).astype(dtype)  # existing zeros rank first
    scale = {"tensor": np.full((1, 1), rng.random() + 1e-3), "rows": rng.choice([0.5, 0.25, 0.0, 1.5], size=(shape[0], 1)),
             "columns": rng.random((1, shape[1])), "zero": np.zeros((1, 1)),
             "ties": np.full((1, 1), 0.1)}[scale_kind]  # one scale: every equal magnitude ties
    count = round(share * q.size)
    mag = np.abs(q.astype(np.int64) - zp)
    out = pruned_8bit(q, zp, scale, count, int(info.min), int(info.max))
    if count <= 0 or count >= q.size:
        assert out is None  # the general path decides these
        return
    assert out is not None and out.dtype == q.dtype
    mask = _smallest((mag.astype(np.float64) * scale).reshape(-1), count).reshape(shape)
    assert np.array_equal(out, np.where(mask, np.broadcast_to(zp, shape), q))


def test_pruned_8bit_leaves_hostile_quantization_to_the_general_path() -> None:
    q = np.arange(-8, 8, dtype=np.int8).reshape(2, 8)
    assert pruned_8bit(q, np.zeros((1, 1), np.int64), np.full((1, 1), -0.5), 4, -128, 127) is None  # negative scale
    assert pruned_8bit(q, np.zeros((1, 1), np.int64), np.full((1, 1), np.nan), 4, -128, 127) is None
    assert pruned_8bit(q, np.full((1, 1), 300, np.int64), np.ones((1, 1)), 4, -128, 127) is None  # zero point out of range


def _cluster_both_ways(data: bytes, p: ClusterPass, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes, dict, dict]:
    """The cluster pass on the stored bytes (its 8-bit path) and on int32 zero-corrected copies."""
    fast = read_model(data)
    fast_stats = p.run(fast).stats
    with monkeypatch.context() as m:
        m.setattr(cluster_module, "byte_rows", lambda *_args: None)
        slow = read_model(data)
        slow_stats = p.run(slow).stats
    return serialize(fast), serialize(slow), fast_stats, slow_stats


@pytest.mark.parametrize("granularity", ["tensor", "channel", "stream"])
@pytest.mark.parametrize(("metric", "preserve_zero", "k"), [("real", True, 16), ("int", False, 4), ("real", False, 3)])
def test_cluster_on_bytes_equals_the_int32_path(granularity: str, metric: str, preserve_zero: bool, k: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Same centroids, stored weights, moved counts, errors and distinct values either way, on per-channel
    (conv) and per-tensor (FC) scales, with and without a stream layout."""
    target = resolve_target("ethos-u55-128") if granularity == "stream" else None
    p = ClusterPass(k=k, granularity=granularity, metric=metric, preserve_zero=preserve_zero, target=target)  # type: ignore[arg-type]
    for seed in range(3):
        data = int8_conv_model(seed=seed, channels=24, in_channels=20)
        pruned = read_model(data)
        PrunePass(0.4).run(pruned)
        fast, slow, fast_stats, slow_stats = _cluster_both_ways(serialize(pruned), p, monkeypatch)
        assert fast == slow
        assert fast_stats == slow_stats and fast_stats["weights_moved"] > 0


def test_cluster_on_bytes_with_a_zero_point(shared_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uint8 weights with non-zero zero points (TF1 MobileNet-v2): the byte path maps values through the zero point."""
    data = (shared_models / "mobilenet_v2_1.0_224_quantized_1_default_1.tflite").read_bytes()
    p = ClusterPass(k=8, granularity="tensor", preserve_zero=False)
    fast, slow, fast_stats, slow_stats = _cluster_both_ways(data, p, monkeypatch)
    assert fast == slow and fast_stats == slow_stats
    for wl in layers_to_process(read_model(fast))[0]:
        assert distinct_per_group(read_model(fast), wl, "tensor", None) <= 8


def test_verification_frees_its_re_read_copy_and_returns_the_bytes(small_model: Model,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The manager's verification re-reads the serialized model; that copy holds reference cycles,
    and a young collection frees it before the next pass (the bytes are not kept twice)."""
    import weakref

    from hwopt.passes import manager

    copies: list[weakref.ref[Model]] = []
    real = manager.read_model

    def read(data: bytes) -> Model:
        model = real(data)
        copies.append(weakref.ref(model))
        return model

    monkeypatch.setattr(manager, "read_model", read)
    data = manager.verify_model(small_model)
    assert data == serialize(small_model)
    assert len(copies) == 1 and copies[0]() is None
