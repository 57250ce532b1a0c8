"""Weight statistics (histogram fast path and sort fallback) against a brute force per channel."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwopt.analysis.stats import check_2_4, entropy_bits, unique_per_row, weight_stats


def brute(w: np.ndarray, out_axis: int | None, in_axis: int | None) -> dict[str, object]:
    """The same figures with Python sets and loops, no vectorised tricks."""
    chans = [w] if out_axis is None else [np.take(w, c, axis=out_axis) for c in range(w.shape[out_axis])]
    values = w.ravel().tolist()
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    ent = -sum(c / len(values) * math.log2(c / len(values)) for c in counts.values()) if values else 0.0
    groups_ok: float | None = None
    if in_axis is not None:
        moved = np.moveaxis(w, in_axis, -1).reshape(-1, w.shape[in_axis]).tolist()
        flags = []
        for row in moved:
            row = row + [0] * ((-len(row)) % 4)
            flags += [sum(1 for x in row[i:i + 4] if x == 0) >= 2 for i in range(0, len(row), 4)]
        groups_ok = sum(flags) / len(flags) if flags else None
    return {
        "zeros": sum(1 for v in values if v == 0),
        "zero_channels": sum(1 for c in chans if not np.any(c)),
        "unique_values": len(counts),
        "max_unique_per_channel": max(len(set(c.ravel().tolist())) for c in chans),
        "entropy": ent,
        "groups_2_4_ok": groups_ok,
    }


CASES = [
    ("int8 OHWI", (8, 3, 3, 6), 0, 3, np.int8, 0),
    ("int8 depthwise", (1, 3, 3, 10), 3, None, np.int8, 0),
    ("uint8 with zero point", (5, 2, 2, 4), 0, 3, np.uint8, 128),
    ("FC odd depth", (7, 13), 0, 1, np.int8, 0),
    ("wide int32 (sort path)", (6, 40), 0, 1, np.int32, 0),
    ("int16", (4, 1, 1, 9), 0, 3, np.int16, 0),
    ("no channel axis", (3, 5), None, None, np.int8, 0),
]


@pytest.mark.parametrize(("shape", "out_axis", "in_axis", "dtype", "zp"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_weight_stats_match_brute_force(shape: tuple[int, ...], out_axis: int | None, in_axis: int | None,
                                        dtype: type, zp: int) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    lo, hi = (max(info.min, -(1 << 30)), min(info.max, 1 << 30)) if dtype is np.int32 else (info.min, info.max)
    raw: np.ndarray = rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    raw[rng.random(shape) < 0.4] = zp  # plenty of zeros
    if out_axis is not None:
        idx: list[int | slice] = [slice(None)] * len(shape)
        idx[out_axis] = 1
        raw[tuple(idx)] = zp  # an all-zero channel
    w = raw.astype(np.int64 if dtype is np.int32 else np.int32) - zp
    st = weight_stats(w, out_axis, in_axis)
    ref = brute(w, out_axis, in_axis)
    assert st.elements == w.size
    assert st.zeros == ref["zeros"]
    assert st.zero_channels == ref["zero_channels"]
    assert st.unique_values == ref["unique_values"]
    assert st.max_unique_per_channel == ref["max_unique_per_channel"]
    assert st.entropy_bits == pytest.approx(ref["entropy"], abs=1e-9)
    if ref["groups_2_4_ok"] is None:
        assert st.groups_2_4_ok is None and st.sparse_2_4 is None
    else:
        assert st.groups_2_4_ok == pytest.approx(ref["groups_2_4_ok"])
        assert st.sparse_2_4 == (ref["groups_2_4_ok"] == 1.0)


def test_float_weights_use_the_sort_path() -> None:
    w = np.array([[0.0, 0.5, 0.5, -1.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    st = weight_stats(w, 0, 1)
    assert (st.zeros, st.zero_channels, st.unique_values, st.max_unique_per_channel) == (5, 1, 3, 3)
    assert st.sparse_2_4 is False and st.groups_2_4_ok == 0.5


def test_exact_2_4_pattern() -> None:
    w = np.tile(np.array([0, 3, 0, -2], np.int32), (4, 2))  # every group of 4 has two zeros
    assert check_2_4(w, 1) == (True, 1.0)
    w[0, 0] = 1
    assert check_2_4(w, 1) == (False, 7 / 8)


def test_empty_and_degenerate() -> None:
    st = weight_stats(np.zeros((0, 4), np.int32), 0, 1)
    assert (st.elements, st.channels, st.zero_channels, st.max_unique_per_channel) == (0, 0, 0, 0)
    assert unique_per_row(np.zeros((3, 0), np.int32)).tolist() == [0, 0, 0]
    assert entropy_bits(np.zeros(0, np.int8)) == 0.0
    assert entropy_bits(np.array([1, 1, 2, 2], np.int8)) == 1.0
    st = weight_stats(np.array(5, np.int32), None, None)
    assert (st.elements, st.unique_values, st.zeros) == (1, 1, 0)


def test_statistics_on_two_threads_equal_one_thread_in_order() -> None:
    """histogram_stats_many splits the tensors between two threads; the results and their order must not change."""
    from hwopt.analysis.histogram import histogram_stats, histogram_stats_many

    rng = np.random.default_rng(7)
    jobs = []
    for i, shape in enumerate([(64, 3, 3, 32), (1, 3, 3, 48), (300, 700), (16, 1, 1, 8), (1000, 1024), (5, 7)]):
        w = rng.integers(-128, 128, size=shape).astype(np.int8)
        w[rng.random(shape) < 0.3 + 0.1 * i] = 0
        out_axis, in_axis = (3, None) if shape[0] == 1 else (0, len(shape) - 1)
        zps = np.zeros(1, np.int64) if i % 2 else rng.integers(-3, 4, size=shape[out_axis]).astype(np.int64)
        jobs.append((w, zps, out_axis, in_axis))
    expected = [histogram_stats(*job) for job in jobs]
    assert histogram_stats_many(jobs, threads=1) == expected
    assert histogram_stats_many(jobs, threads=2) == expected
    assert histogram_stats_many(jobs) == expected  # over PARALLEL_MIN_WEIGHTS: two threads where two cores are free
    assert histogram_stats_many([], threads=2) == []


def test_an_error_on_the_statistics_thread_reaches_the_caller() -> None:
    from hwopt.analysis.histogram import histogram_stats_many

    good = (np.zeros((4, 8), np.int8), np.zeros(1, np.int64), 0, 1)
    bad = (np.zeros((4, 8), np.int8), np.zeros(1, np.int64), 5, 1)  # no axis 5
    with pytest.raises(IndexError):  # the second job of two runs on the worker thread
        histogram_stats_many([good, bad], threads=2)
