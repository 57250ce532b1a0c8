"""Fidelity of a changed model: run the original and the new model in LiteRT on the same inputs.

Inputs come from an .npz file (arrays by input name or in order, batch first, plus an
optional `labels` array) or, without data, from random values over each input's quantized
range (with a logged warning: agreement on noise says little about accuracy). Reports per
output cosine similarity and SNR of the dequantized outputs, top-1 agreement, and accuracy
of both models when labels are given.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwopt import isolation
from hwopt.analysis.litert import InputSpec, Runner
from hwopt.errors import DataError, UnsupportedModelError
from hwopt.fileio import load_npz

__all__ = ["Dataset", "FidelityReport", "InputSpec", "OutputFidelity", "Runner", "accuracy", "compare",
           "dequantize", "load_data", "make_dataset", "predict_top1", "random_dataset", "top1"]

log = logging.getLogger(__name__)

LABELS_KEY = "labels"
RANDOM_SAMPLES = 16
# Random inputs are held in memory with both models' outputs: bound them (a batch-65536 input
# would otherwise ask for gigabytes) by running fewer samples, never by truncating a sample.
RANDOM_INPUT_BYTES = 64 << 20
RANDOM_SEED = 0


@dataclass(frozen=True)
class Dataset:
    """Inputs for a model: one array [N, ...] per input (in model order) and optional labels."""

    inputs: list[np.ndarray]
    labels: np.ndarray | None
    source: str  # "data" or "random"

    @property
    def samples(self) -> int:
        return int(self.inputs[0].shape[0]) if self.inputs else 0

    def sample(self, i: int) -> list[np.ndarray]:
        return [a[i : i + 1] for a in self.inputs]


@dataclass(frozen=True)
class OutputFidelity:
    name: str
    cosine: float
    snr_db: float  # inf (JSON null) when the outputs are identical
    max_abs_diff: float


@dataclass(frozen=True)
class FidelityReport:
    source: str  # "data" or "random"
    samples: int
    outputs: list[OutputFidelity]
    top1_agreement: float | None
    accuracy_before: float | None
    accuracy_after: float | None

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_before is None or self.accuracy_after is None:
            return None
        return self.accuracy_before - self.accuracy_after

    @property
    def drop(self) -> float | None:
        """The figure --max-drop bounds: accuracy drop with labels, else 1 − top-1 agreement."""
        if self.accuracy_drop is not None:
            return self.accuracy_drop
        return None if self.top1_agreement is None else 1.0 - self.top1_agreement


def dequantize(arr: np.ndarray, spec: InputSpec) -> np.ndarray:
    if spec.scale and np.issubdtype(arr.dtype, np.integer):
        return (arr.astype(np.float64) - spec.zero_point) * spec.scale
    return arr.astype(np.float64)


def load_data(path: str | os.PathLike[str], inputs: list[InputSpec]) -> Dataset:
    """Read an .npz of model inputs (by input name, else in order) and optional `labels`; DataError on mismatch."""
    p = Path(path)
    arrays = load_npz(p)
    labels = arrays.pop(LABELS_KEY, None)
    names = [s.name for s in inputs]
    if all(n in arrays for n in names):
        ordered = [arrays[n] for n in names]
    elif len(arrays) == len(inputs):
        ordered = list(arrays.values())
    else:
        raise DataError(f"{p}: the model has inputs {names}; the file holds {sorted(arrays)} "
                        f"(give one array per input, by name or in order, plus optional '{LABELS_KEY}')")
    return make_dataset(ordered, labels, inputs, str(p))


def make_dataset(arrays: list[np.ndarray], labels: np.ndarray | None, inputs: list[InputSpec], where: str = "data") -> Dataset:
    """Check arrays against the model's inputs (batch first, exact dtype) and build a Dataset."""
    if not inputs:
        raise DataError(f"{where}: the model declares no inputs")
    if len(arrays) != len(inputs):
        raise DataError(f"{where}: {len(arrays)} arrays for {len(inputs)} model inputs")
    out = []
    n: int | None = None
    for spec, arr in zip(inputs, arrays, strict=True):
        arr = np.asarray(arr)
        sample_shape = spec.shape[1:] if len(spec.shape) > 0 and spec.shape[0] == 1 else spec.shape
        if arr.shape == spec.shape and spec.shape[:1] == (1,):
            arr = arr.reshape((1, *tuple(sample_shape)))
        if arr.ndim != len(sample_shape) + 1 or tuple(arr.shape[1:]) != tuple(sample_shape):
            raise DataError(f"{where}: input {spec.name!r} needs arrays of shape [N, {', '.join(map(str, sample_shape))}], "
                            f"got {list(arr.shape)}")
        if arr.dtype != spec.dtype:
            raise DataError(f"{where}: input {spec.name!r} is {spec.dtype.name}, got {arr.dtype.name} data "
                            "(quantize the data with the input's scale and zero point)")
        if n is not None and arr.shape[0] != n:
            raise DataError(f"{where}: inputs hold different sample counts ({n} and {arr.shape[0]})")
        n = int(arr.shape[0])
        out.append(np.ascontiguousarray(arr))
    if n == 0:
        raise DataError(f"{where}: no samples")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != n or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{where}: '{LABELS_KEY}' must be {n} integer class indices, got {labels.dtype.name} {list(labels.shape)}")
    return Dataset(out, labels, "data")


def random_dataset(inputs: list[InputSpec], samples: int = RANDOM_SAMPLES, seed: int = RANDOM_SEED) -> Dataset:
    """Uniform random inputs over each input's quantized range (floats: over [-1, 1]).

    Fewer than `samples` samples when they would exceed RANDOM_INPUT_BYTES; an input whose one
    sample alone exceeds it is an UnsupportedModelError.
    """
    shapes = [(spec.shape[1:] if spec.shape[:1] == (1,) else spec.shape) for spec in inputs]
    per_sample = sum(math.prod(int(d) for d in shape) * np.dtype(spec.dtype).itemsize
                     for shape, spec in zip(shapes, inputs, strict=True))
    if per_sample > RANDOM_INPUT_BYTES:
        raise UnsupportedModelError(f"one input sample is {per_sample} bytes; random fidelity data is limited to "
                                    f"{RANDOM_INPUT_BYTES} bytes (give --data with real samples)")
    samples = max(1, min(samples, RANDOM_INPUT_BYTES // max(per_sample, 1)))
    rng = np.random.default_rng(seed)
    arrays = []
    for shape, spec in zip(shapes, inputs, strict=True):
        size = (samples, *shape)
        if np.issubdtype(spec.dtype, np.integer):
            info = np.iinfo(spec.dtype)
            arr = np.empty(size, spec.dtype)
            for i in range(samples):  # one sample at a time: the int64 draw never holds the whole set
                arr[i] = rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64)
            arrays.append(arr)
        else:
            arrays.append(rng.uniform(-1.0, 1.0, size=size).astype(spec.dtype))
    return Dataset(arrays, None, "random")


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def _snr_db(ref: np.ndarray, new: np.ndarray) -> float:
    noise = float(np.sum((ref - new) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def top1(outputs: np.ndarray) -> np.ndarray:
    """The top-1 class of each sample of a batch of outputs [N, ...]: hwopt's one top-1."""
    arr = np.asarray(outputs)
    return arr.reshape(arr.shape[0], -1).argmax(axis=1)


def predict_top1(runner: Runner, data: Dataset) -> np.ndarray:
    """Top-1 class of the model's first output for every sample, run one sample at a time as deployed."""
    return top1(runner.invoke_all(data.inputs)[0])


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Share of predictions equal to the labels (class indices)."""
    return float(np.mean(np.asarray(predictions) == np.asarray(labels).reshape(-1)))


def compare(original: bytes, changed: bytes, data: Dataset | None = None, *,
            worker: isolation.Worker | None = None) -> FidelityReport:
    """Run both models on the same inputs and compare their outputs (in `worker`, else the shared worker)."""
    ref, new = Runner(original, worker=worker), Runner(changed, worker=worker)
    if not ref.inputs:  # nothing to feed: no samples, no outputs to compare
        raise UnsupportedModelError("the model declares no inputs: its fidelity cannot be measured")
    if data is None:
        data = random_dataset(ref.inputs)
        log.warning("no data given: fidelity measured on %d random inputs over the quantized input range, "
                    "not on real data (accuracy not measured)", data.samples)
    if [(s.shape, s.dtype) for s in ref.inputs] != [(s.shape, s.dtype) for s in new.inputs]:
        raise UnsupportedModelError("the original and the changed model have different inputs")
    outs_ref = ref.invoke_all(data.inputs)
    outs_new = new.invoke_all(data.inputs)
    reports = []
    first_ref: np.ndarray | None = None
    first_new: np.ndarray | None = None
    for spec_r, spec_n, rs, ns in zip(ref.outputs, new.outputs, outs_ref, outs_new, strict=True):
        r = dequantize(rs, spec_r).reshape(len(rs), -1)
        n = dequantize(ns, spec_n).reshape(len(ns), -1)
        if first_ref is None:
            first_ref, first_new = r, n
        reports.append(OutputFidelity(spec_r.name, _cosine(r.ravel(), n.ravel()), _snr_db(r, n),
                                      float(np.max(np.abs(r - n))) if r.size else 0.0))
    agreement = acc_b = acc_a = None
    if first_ref is not None and first_new is not None and first_ref.shape[1] > 1:
        pr, pn = top1(first_ref), top1(first_new)
        agreement = accuracy(pr, pn)
        if data.labels is not None:
            acc_b, acc_a = accuracy(pr, data.labels), accuracy(pn, data.labels)
    return FidelityReport(data.source, data.samples, reports, agreement, acc_b, acc_a)
