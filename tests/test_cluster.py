"""Exact integer 1-D k-means (passes.kmeans1d) and the `cluster` pass.

Optimality is checked against an independent brute force over every assignment of values
to k labels, and against scikit-learn's KMeans (its centroids put on the integer grid an
int8 tensor can hold) on real and random tensors.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwopt.analysis.layers import zero_corrected_tensor
from hwopt.analysis.stats import unique_per_row
from hwopt.errors import TargetError, UsageError
from hwopt.format.tflite_io import read_model
from hwopt.passes._common import layers_to_process
from hwopt.passes.cluster import ClusterPass
from hwopt.passes.kmeans1d import kmeans_1d
from hwopt.passes.manager import PassManager, copy_model, parse_pipeline
from hwopt.targets import resolve_target
from tests.modelgen import int8_conv_model


def brute_force(values: np.ndarray, weights: np.ndarray, k: int, fixed_zero: bool) -> float:
    """Least weighted SSE over all labelings of the values with k labels (best integer centroid per label)."""
    best = np.inf
    for labels in itertools.product(range(k), repeat=len(values)):
        lab = np.asarray(labels)
        total = 0.0
        for c in set(labels):
            sel = lab == c
            v, w = values[sel], weights[sel]
            if fixed_zero and np.any(v == 0):
                cen = 0.0
            else:
                # Best integer for a parabola: try both integers around the mean.
                m = float((w * v).sum() / w.sum())
                cands = [np.floor(m), np.ceil(m)]
                cen = min(cands, key=lambda c_: float((w * (v - c_) ** 2).sum()))
            total += float((w * (v - cen) ** 2).sum())
        best = min(best, total)
    return best


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(-30, 30), min_size=1, max_size=6, unique=True),
    st.lists(st.integers(1, 20), min_size=6, max_size=6),
    st.integers(1, 3),
    st.booleans(),
)
def test_optimal_against_brute_force(vals: list[int], wts: list[int], k: int, fixed_zero: bool) -> None:
    v = np.asarray(vals, dtype=np.int64)
    w = np.asarray(wts[: len(vals)], dtype=np.float64)
    res = kmeans_1d(v, w, k, fixed_zero=fixed_zero)
    assert res.cost == pytest.approx(brute_force(v, w, k, fixed_zero), abs=1e-9)
    assert np.unique(res.assigned).size <= k
    assert float(np.sum(w * (v - res.assigned) ** 2)) == pytest.approx(res.cost)
    if fixed_zero and 0 in vals:
        assert res.assigned[v == 0][0] == 0


def test_kmeans_small_cases() -> None:
    # k=1: the rounded weighted mean; {0: 1, 1: 1, 5: 2} → mean 2.75 → 3.
    res = kmeans_1d(np.array([0, 1, 5]), np.array([1.0, 1.0, 2.0]), 1)
    assert res.assigned.tolist() == [3, 3, 3]
    assert res.cost == 9 + 4 + 2 * 4
    # k >= number of values: identity.
    assert kmeans_1d(np.array([3, -1]), np.array([1.0, 1.0]), 5).assigned.tolist() == [3, -1]
    # fixed zero: {-1, 0, 1, 10} with k=2 keeps 0; -1, 1 join it, 10 alone.
    res = kmeans_1d(np.array([-1, 0, 1, 10]), np.ones(4), 2, fixed_zero=True)
    assert res.assigned.tolist() == [0, 0, 0, 10]
    with pytest.raises(ValueError):
        kmeans_1d(np.array([1, 1]), np.ones(2), 1)
    with pytest.raises(ValueError):
        kmeans_1d(np.array([1]), np.ones(1), 0)


def _sse_on_grid(values: np.ndarray, centroids: np.ndarray) -> float:
    grid = np.unique(np.rint(centroids))
    nearest = grid[np.argmin(np.abs(values[:, None] - grid[None, :]), axis=1)]
    return float(np.sum((values - nearest) ** 2))


def _check_vs_sklearn(data: np.ndarray, k: int) -> tuple[float, float]:
    from sklearn.cluster import KMeans

    vals, counts = np.unique(data, return_counts=True)
    ours = kmeans_1d(vals, counts.astype(np.float64), k)
    sse_ours = float(np.sum(counts * (vals - ours.assigned) ** 2))
    km = KMeans(n_clusters=min(k, vals.size), n_init=10, random_state=0).fit(data.reshape(-1, 1).astype(np.float64))
    sse_sk = _sse_on_grid(data.astype(np.float64), km.cluster_centers_.ravel())
    return sse_ours, sse_sk


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [4, 16])
def test_mse_not_above_sklearn_random(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    data = np.clip(np.rint(rng.normal(0, 10 + 20 * seed, 2000)), -127, 127).astype(np.int64)
    ours, sk = _check_vs_sklearn(data, k)
    assert ours <= sk + 1e-9


@pytest.mark.slow
def test_mse_not_above_sklearn_real_tensors(shared_models: Path) -> None:
    model = read_model(shared_models / "mlperftiny_resnet8_int8.tflite")
    layers = [wl for wl in layers_to_process(model)[0] if wl.weights(model).elements <= 10000]
    assert len(layers) >= 5
    for wl in layers:
        data = zero_corrected_tensor(wl.weights(model)).reshape(-1).astype(np.int64)
        ours, sk = _check_vs_sklearn(data, 16)
        assert ours <= sk + 1e-9, wl.op_index


def _conv_layer_rows(model_bytes: bytes, spec: ClusterPass) -> tuple[np.ndarray, np.ndarray]:
    model = read_model(model_bytes)
    before = zero_corrected_tensor(layers_to_process(model)[0][0].weights(model))
    PassManager([spec]).run(model)
    after = zero_corrected_tensor(layers_to_process(model)[0][0].weights(model))
    return before.reshape(before.shape[0], -1), after.reshape(after.shape[0], -1)


def test_cluster_granularities() -> None:
    data = int8_conv_model(channels=16, in_channels=8, seed=3)
    _, after = _conv_layer_rows(data, ClusterPass(k=8, granularity="tensor"))
    assert np.unique(after).size <= 8
    _, after = _conv_layer_rows(data, ClusterPass(k=4, granularity="channel"))
    assert unique_per_row(after).max() <= 4
    assert np.unique(after).size > 4  # each channel has its own centroids
    # u65-512: channels interleaved over 2 cores → even and odd channels each share 6 values.
    _, after = _conv_layer_rows(data, ClusterPass(k=6, granularity="stream", target=resolve_target("ethos-u65-512")))
    assert np.unique(after[0::2]).size <= 6 and np.unique(after[1::2]).size <= 6
    assert np.unique(after).size > 6
    # u85-1024: 4 decoders, OFM groups of 4 dealt round-robin → channels 0-3 form stream 0 (alone here).
    _, after = _conv_layer_rows(data, ClusterPass(k=5, granularity="stream", target=resolve_target("ethos-u85-1024")))
    for s in range(4):
        assert np.unique(after[s * 4 : s * 4 + 4]).size <= 5


def test_cluster_preserve_zero_and_range() -> None:
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, size=(8, 3, 3, 8)).astype(np.int8)
    w[rng.random(w.shape) < 0.5] = 0
    before, after = _conv_layer_rows(int8_conv_model(w), ClusterPass(k=8, preserve_zero=True))
    assert np.all(after[before == 0] == 0)
    assert after.min() >= -128 and after.max() <= 127
    assert np.unique(after).size <= 8


def test_cluster_pass_options() -> None:
    with pytest.raises(UsageError, match=r"1..256"):
        ClusterPass(k=0)
    with pytest.raises(UsageError):
        ClusterPass(k=257)
    with pytest.raises(TargetError):
        parse_pipeline("cluster{target=ethos-u99-1}")
    (p,) = parse_pipeline("cluster{k=4,granularity=stream,target=U65_512}")
    assert isinstance(p, ClusterPass) and p.target is resolve_target("ethos-u65-512")
    assert p.spec() == "cluster{k=4,granularity=stream,target=ethos-u65-512}"


def test_streams() -> None:
    assert resolve_target("ethos-n78").stream_of_channel(6).tolist() == [0] * 6
    assert resolve_target("ethos-u55-256").stream_of_channel(6).tolist() == [0] * 6
    assert resolve_target("ethos-u65-512").stream_of_channel(6).tolist() == [0, 1, 0, 1, 0, 1]
    assert resolve_target("ethos-u85-512").stream_of_channel(12).tolist() == [0] * 4 + [1] * 4 + [0] * 4
    assert resolve_target("ethos-u85-2048").stream_of_channel(20).tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4 + [0] * 4


def test_cluster_restores_palette_on_derived_model(shared_models: Path) -> None:
    model = read_model(shared_models / "derived" / "ic_resnet8_clustered8_perchannel_int8.tflite")
    out = copy_model(model)
    result = PassManager([ClusterPass(k=16, granularity="stream")]).run(out)
    assert result.modified
    for wl in layers_to_process(out)[0]:
        assert np.unique(zero_corrected_tensor(wl.weights(out))).size <= 16
