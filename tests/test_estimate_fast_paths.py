"""The analytic estimator's shortcuts give exactly what the general computations give: weight
statistics from one byte histogram, scale checks from the extremes, an operator's options read
alone from the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwopt.analysis.layers import zero_corrected_tensor
from hwopt.analysis.validate import MAX_SCALE, MIN_SCALE, _scale_problem
from hwopt.format.tflite_io import read_model, serialize
from hwopt.ir import DType, Quantization, Tensor
from hwopt.targets.descriptor import Family
from hwopt.targets.ethos_u.placement import ethos_u_geometry
from hwopt.targets.geometry import byte_histogram, tensor_weight_info, weight_info
from hwopt.testing.generator import layer_model, network_model


def _tensor(values: np.ndarray, dtype: DType, zero_point: np.ndarray, scale: np.ndarray | None = None) -> Tensor:
    q = Quantization(np.ones(zero_point.size, np.float32) if scale is None else scale, zero_point.astype(np.int64),
                     quantized_dimension=0)
    return Tensor(0, "w", tuple(values.shape), dtype, 1, q, data=values)


@pytest.mark.parametrize("seed", range(12))
def test_byte_histogram_statistics_equal_the_general_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 9)), 3, 3, int(rng.integers(1, 40)))
    unsigned = seed % 3 == 2
    lo, hi = (0, 256) if unsigned else (-128, 128)
    values = rng.integers(lo, hi, size=shape)
    if seed % 2:  # sparse: many zeros (of the corrected values), so the 2:4 check runs too
        values[rng.random(shape) < 0.6] = 0
    if seed % 4 == 1:  # few distinct values (clustered)
        values = rng.choice(np.array([-3, 0, 5, 17]) + (128 if unsigned else 0), size=shape)
    dtype, np_type = (DType.UINT8, np.uint8) if unsigned else (DType.INT8, np.int8)
    data = values.astype(np_type)
    zp = np.array([int(rng.integers(lo, hi))]) if seed % 3 else np.zeros(1, np.int64)
    if seed % 5 == 0:  # per-channel zero points that are all equal: still one constant
        zp = np.full(shape[0], int(zp[0]))
    t = _tensor(data, dtype, zp)
    for axis in (None, 3):
        assert tensor_weight_info(t, axis) == weight_info(zero_corrected_tensor(t), axis)


@pytest.mark.parametrize("size", [0, 1, 4097, (1 << 17) - 1, 1 << 17, (1 << 17) + 1, 300_001])
def test_byte_histogram_counts_every_byte(size: int) -> None:
    rng = np.random.default_rng(size)
    raw = rng.integers(0, 256, size=size + 1).astype(np.uint8)
    raw[: size // 3] = 7  # a skewed distribution: one frequent value, as in pruned weights
    flat = raw[1:]  # one byte in: the pairs are read unaligned
    hist = byte_histogram(flat)
    assert hist.shape == (256,)
    assert hist.tolist() == [int((flat == v).sum()) for v in range(256)]


def test_general_path_for_varying_zero_points_and_wide_types() -> None:
    rng = np.random.default_rng(7)
    data = rng.integers(-128, 128, size=(4, 1, 1, 8)).astype(np.int8)
    t = _tensor(data, DType.INT8, np.array([0, 1, -2, 3]))
    assert tensor_weight_info(t, 3) == weight_info(zero_corrected_tensor(t), 3)
    wide = _tensor(rng.integers(-300, 300, size=(4, 8)).astype(np.int16), DType.INT16, np.zeros(1, np.int64))
    assert tensor_weight_info(wide, 1) == weight_info(zero_corrected_tensor(wide), 1)
    empty = _tensor(np.zeros((0, 4), np.int8), DType.INT8, np.zeros(1, np.int64))
    assert tensor_weight_info(empty, 1) == weight_info(zero_corrected_tensor(empty), 1)


def _scale_problem_reference(t: Tensor) -> str | None:
    """The check written out element by element, as the messages define it."""
    q = t.quantization
    if q is None or q.scale.size == 0:
        return None
    s = [float(x) for x in q.scale]
    if not all(np.isfinite(x) for x in s):
        return f"tensor {t.name!r} has a quantization scale that is not finite"
    if any(x < 0 for x in s):
        return f"tensor {t.name!r} has a negative quantization scale"
    nonzero = [x for x in s if x != 0]
    if nonzero and (min(nonzero) < MIN_SCALE or max(nonzero) > MAX_SCALE):
        return f"tensor {t.name!r} has a quantization scale outside [{MIN_SCALE:g}, {MAX_SCALE:g}]"
    if not t.is_constant and any(x == 0 for x in s):
        return f"tensor {t.name!r} has a quantization scale of 0"
    return None


@pytest.mark.parametrize("scales", [
    [0.5], [0.0], [-0.0], [-1e-3], [np.nan], [np.inf], [1e-31], [1e11], [1e-20, 0.0, 3.0], [0.0, 0.0],
    [0.1, np.nan, 0.2], [0.1, -np.inf], [0.0, 1e-31], [2.0, 1e10], [0.25, 0.5, 0.75], [3.0, -0.0],
])
@pytest.mark.parametrize("constant", [False, True])
def test_scale_checks_from_the_extremes(scales: list[float], constant: bool) -> None:
    scale = np.array(scales, dtype=np.float32)
    t = _tensor(np.zeros(scale.size, np.int8), DType.INT8, np.zeros(scale.size, np.int64), scale)
    if not constant:
        t.data = None  # a feature map
    assert _scale_problem(t) == _scale_problem_reference(t)


def _same_options(data: bytes) -> None:
    """Every operator's options read alone equal those of the whole operator's unpacking."""
    lone, full = read_model(data), read_model(data)
    for sg_a, sg_b in zip(lone.subgraphs, full.subgraphs, strict=True):
        for a, b in zip(sg_a.operators, sg_b.operators, strict=True):
            opts = a.options  # before anything else is unpacked
            assert a.__dict__.get("_raw") is None
            assert a.options_type == int(b.raw.builtinOptionsType or 0)
            assert (opts is None) == (b.raw.builtinOptions is None)
            if opts is not None:
                mine, theirs = vars(opts), vars(b.raw.builtinOptions)
                assert mine.keys() == theirs.keys()
                assert all(np.array_equal(np.asarray(mine[k]), np.asarray(theirs[k])) for k in mine)
                assert a.raw.builtinOptions is opts  # unpacking the operator keeps the object read first


@pytest.mark.parametrize("seed", range(40))
def test_options_read_alone_on_generated_models(seed: int) -> None:
    _same_options(layer_model(seed).data if seed % 4 else network_model(seed).data)


def test_options_read_alone_on_the_shared_models(all_models: list[Path]) -> None:
    for path in all_models:
        _same_options(path.read_bytes())


def test_options_edited_before_the_model_is_packed_survive() -> None:
    data = network_model(1).data
    edited = read_model(data)
    conv = next(op for op in edited.subgraphs[0].operators if op.op == "CONV_2D")
    conv.options.strideW = 2  # through the lone read, then the whole model is packed
    again = read_model(serialize(edited))
    assert again.subgraphs[0].operators[conv.index].options.strideW == 2


@pytest.mark.parametrize("seed", range(6))
def test_u65_geometry_is_u55_geometry(seed: int) -> None:
    """The batch derives one geometry for U55 and U65: they share support rules and have no chaining."""
    for data in (network_model(seed).data, layer_model(seed).data):
        model = read_model(data)
        assert ethos_u_geometry(model, Family.ETHOS_U65) == ethos_u_geometry(model, Family.ETHOS_U55)
