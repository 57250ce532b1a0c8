"""The tree's use of hwopt's own engines: `hwopt.engines.enforce` as a post-training leaf, and
`hwopt.engines.encode` + `hwopt.engines.estimate` for the NPU columns."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hwopt.analysis.layers import weight_layers
from hwopt.engines.enforce import enforce_model
from hwopt.engines.fidelity import Dataset
from hwopt.format.tflite_io import read_model
from hwopt.ir import Model
from hwopt.targets import Target
from hwopt.tree.techniques import BY_NAME, sparsity_exempt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnforceResult:
    """The enforced model and the pipeline that made it."""

    tflite: bytes
    pipeline: str


def prune_skip(model: Model) -> list[str]:
    """The prune pass's skip list for the enforce leaf: its dense operator types, then the op index of
    its dense input layer (`techniques.sparsity_exempt`, so the structure check sees the same layers)."""

    t = BY_NAME["enforce"]
    layers = [(wl.subgraph, wl.op_index, wl.op) for wl in weight_layers(model)]
    exempt = sparsity_exempt(t, layers)
    by_type = {op for sg, i, op in layers if (sg, i) in exempt and op in t.sparsity_exempt_ops}
    by_index = sorted(i for sg, i, op in layers if (sg, i) in exempt and op not in t.sparsity_exempt_ops)
    # the pass skips an index in every subgraph; a converted Keras model has one
    return sorted(by_type) + [str(i) for i in by_index]


def leaf_pipeline(model: Model, sparsity: float, clusters: int, target: Target) -> str:
    """The enforce leaf's pass pipeline: global magnitude pruning of every layer not exempt, `clusters`
    values per Ethos-U weight stream keeping the zeros, then bias correction."""
    prune = f"sparsity={sparsity!r},scope={BY_NAME['enforce'].sparsity_scope},skip=[{','.join(prune_skip(model))}]"
    return (f"prune{{{prune}}},cluster{{k={clusters},granularity=stream,preserve_zero=true,target={target.spec}}},bias-correct")


def enforce_leaf(baseline: bytes, x_calib: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *,
                 sparsity: float, clusters: int, target: Target, pipeline: str | None = None) -> EnforceResult:
    """`hwopt enforce` on the baseline int8 model with `leaf_pipeline` (bias correction calibrated on
    training images, no retraining); `pipeline` replaces that recipe (used for ablations)."""

    model = read_model(baseline)
    pipeline = pipeline or leaf_pipeline(model, sparsity, clusters, target)
    spec = _input_quantization(model)
    calib = Dataset([_quantize(x_calib, *spec)], None, "data")
    held_out = Dataset([_quantize(x_test, *spec)], y_test.astype(np.int64), "data")
    _, new_bytes, _report = enforce_model(model, pipeline, data=held_out, calibration=calib, target=target,
                                          measure_encoded=False, input_name="baseline.tflite")
    return EnforceResult(bytes(new_bytes), pipeline)


def _input_quantization(model: object) -> tuple[float, int, np.dtype]:
    sg = model.subgraphs[0]  # type: ignore[attr-defined]
    t = sg.tensor(sg.inputs[0])
    q = t.quantization
    scale = float(q.scale[0]) if q is not None and len(q.scale) else 1.0
    zp = int(q.zero_point[0]) if q is not None and len(q.zero_point) else 0
    return scale, zp, t.dtype.numpy


def _quantize(x: np.ndarray, scale: float, zp: int, dtype: np.dtype) -> np.ndarray:
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zp), info.min, info.max).astype(dtype)
