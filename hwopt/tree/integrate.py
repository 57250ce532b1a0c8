"""The tree's use of hwopt's own engines: `hwopt.enforcement` as a post-training leaf, and
`hwopt.encoding` + `hwopt.estimation` for the NPU columns.

Each entry point returns None (with the reason logged) when the engine is not installed
or cannot handle the target, so the caller falls back or reports the leaf "not available".
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

import numpy as np

from hwopt.errors import HwoptError
from hwopt.ir import Model
from hwopt.tree.measure import HWOPT_SOURCE, NpuFigures
from hwopt.tree.techniques import BY_NAME, sparsity_exempt

log = logging.getLogger(__name__)


def _module(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        log.info("%s not available: %s", name, exc)
        return None


def hwopt_figures(tflite: bytes, target: str) -> NpuFigures | None:
    """Encoded weight bytes from `hwopt.encoding` and total cycles from `hwopt.estimation`, or None."""
    encode, estimate, descriptor = (_module("hwopt.encoding"), _module("hwopt.estimation"),
                                    _module("hwopt.targets.descriptor"))
    if encode is None or estimate is None or descriptor is None:
        return None
    from hwopt.tflite_io import read_model

    try:
        tgt = descriptor.load_target(target)  # type: ignore[attr-defined]
        model = read_model(tflite)
        enc = encode.encode_model(model, tgt)  # type: ignore[attr-defined]
        est = estimate.estimate(model, tgt, engine="vela" if tgt.family.is_ethos_u else "analytic")  # type: ignore[attr-defined]
    except HwoptError:
        raise  # a bad target or model is the user's problem, not a missing engine
    except (AttributeError, TypeError) as exc:  # an engine whose API differs from what this module knows
        log.warning("hwopt encode/estimate unusable here (%s); falling back to Vela's totals", exc)
        return None
    return NpuFigures(int(enc.summary.encoded_bytes), int(est.summary.cycles), HWOPT_SOURCE)


@dataclass(frozen=True)
class EnforceResult:
    """The enforced model, or why there is none."""

    tflite: bytes | None
    pipeline: str
    note: str


def prune_skip(model: Model) -> list[str]:
    """The prune pass's skip list for the enforce leaf: its dense operator types, then the op index of
    its dense input layer (`techniques.sparsity_exempt`, so the structure check sees the same layers)."""
    from hwopt.layers import weight_layers

    t = BY_NAME["enforce"]
    layers = [(wl.subgraph, wl.op_index, wl.op) for wl in weight_layers(model)]
    exempt = sparsity_exempt(t, layers)
    by_type = {op for sg, i, op in layers if (sg, i) in exempt and op in t.sparsity_exempt_ops}
    by_index = sorted(i for sg, i, op in layers if (sg, i) in exempt and op not in t.sparsity_exempt_ops)
    # the pass skips an index in every subgraph; a converted Keras model has one
    return sorted(by_type) + [str(i) for i in by_index]


def leaf_pipeline(model: Model, sparsity: float, clusters: int, target: str) -> str:
    """The enforce leaf's pass pipeline: global magnitude pruning of every layer not exempt, `clusters`
    values per Ethos-U weight stream keeping the zeros, then bias correction."""
    prune = f"sparsity={sparsity!r},scope={BY_NAME['enforce'].sparsity_scope},skip=[{','.join(prune_skip(model))}]"
    return (f"prune{{{prune}}},cluster{{k={clusters},granularity=stream,preserve_zero=true,target={target}}},bias-correct")


def enforce_leaf(baseline: bytes, x_calib: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *,
                 sparsity: float, clusters: int, target: str, pipeline: str | None = None) -> EnforceResult:
    """`hwopt enforce` on the baseline int8 model with `leaf_pipeline` (bias correction calibrated on
    training images, no retraining); `pipeline` replaces that recipe (used for ablations)."""
    enforce = _module("hwopt.enforcement")
    fidelity = _module("hwopt.fidelity")
    if enforce is None or fidelity is None:
        return EnforceResult(None, "", "not available: hwopt.enforcement is not installed")
    from hwopt.tflite_io import read_model

    try:
        model = read_model(baseline)
        pipeline = pipeline or leaf_pipeline(model, sparsity, clusters, target)
        spec = _input_quantization(model)
        calib = fidelity.Dataset([_quantize(x_calib, *spec)], None, "data")  # type: ignore[attr-defined]
        held_out = fidelity.Dataset([_quantize(x_test, *spec)], y_test.astype(np.int64), "data")  # type: ignore[attr-defined]
        _, new_bytes, _report = enforce.enforce_model(model, pipeline, data=held_out, calibration=calib,  # type: ignore[attr-defined]
                                                      target=target, measure_encoded=False, input_name="baseline.tflite")
    except (AttributeError, TypeError, ImportError) as exc:  # an engine still in flux must not sink the tree
        return EnforceResult(None, "", f"not available: hwopt.enforcement failed ({type(exc).__name__}: {exc})")
    return EnforceResult(bytes(new_bytes), pipeline, "")


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
