"""Fidelity of a changed model: run the original and the new model in LiteRT on the same inputs.

Inputs come from an .npz file (arrays by input name or in order, batch first, plus an
optional `labels` array) or, without data, from random values over each input's quantized
range (with a logged warning: agreement on noise says little about accuracy). Reports per
output cosine similarity and SNR of the dequantized outputs, top-1 agreement, and accuracy
of both models when labels are given.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwopt.errors import DataError, UnsupportedModelError

log = logging.getLogger(__name__)

LABELS_KEY = "labels"
RANDOM_SAMPLES = 16
RANDOM_SEED = 0


@dataclass(frozen=True)
class InputSpec:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    scale: float
    zero_point: int


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


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Silence C++ log lines (LiteRT's delegate banner) written straight to file descriptor 2."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class LocalRunner:
    """A LiteRT interpreter over model bytes, run one sample at a time (batch 1 as deployed).

    It lives in the isolation worker (LiteRT is native code); `Runner` is the caller's proxy.
    """

    def __init__(self, model: bytes, *, preserve_all_tensors: bool = False) -> None:
        from ai_edge_litert.interpreter import Interpreter

        with warnings.catch_warnings(), _quiet_fd2():
            warnings.simplefilter("ignore")
            try:
                self.interp = Interpreter(model_content=model, experimental_preserve_all_tensors=preserve_all_tensors)
                self.interp.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                raise UnsupportedModelError(f"LiteRT cannot load the model: {exc}") from None
        self.inputs = [_spec(d) for d in self.interp.get_input_details()]
        self.outputs = [_spec(d) for d in self.interp.get_output_details()]

    def specs(self) -> tuple[list[InputSpec], list[InputSpec]]:
        return self.inputs, self.outputs

    def invoke(self, sample: list[np.ndarray]) -> list[np.ndarray]:
        try:
            for spec, arr in zip(self.inputs, sample, strict=True):
                self.interp.set_tensor(spec.index, arr.reshape(spec.shape))
            self.interp.invoke()
            return [self.interp.get_tensor(o.index) for o in self.outputs]
        except (RuntimeError, ValueError) as exc:  # LiteRT's own checks (missing constant data, bad shapes)
            raise UnsupportedModelError(f"LiteRT cannot run the model: {exc}") from None

    def invoke_all(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Every sample of `inputs` ([N, ...] per input), outputs stacked to [N, ...] per output."""
        n = int(inputs[0].shape[0]) if inputs else 0
        outs: list[list[np.ndarray]] = [[] for _ in self.outputs]
        for i in range(n):
            for acc, arr in zip(outs, self.invoke([a[i : i + 1] for a in inputs]), strict=True):
                acc.append(arr.copy())
        return [np.stack(o) if o else np.zeros((0,)) for o in outs]

    def tensor(self, index: int) -> np.ndarray:
        return self.interp.get_tensor(index)


class Runner:
    """A LiteRT interpreter in the isolation worker: a LiteRT crash is an error line, not a dead hwopt.

    The model is validated first, so what LiteRT would crash on is rejected before it loads.
    """

    def __init__(self, model: bytes, *, preserve_all_tensors: bool = False) -> None:
        from hwopt import isolation
        from hwopt.analysis.validate import check_for_native
        from hwopt.format.tflite_io import read_model

        check_for_native(read_model(model), "litert")
        self._handle = isolation.worker().new("hwopt.engines.fidelity:LocalRunner", model,
                                              preserve_all_tensors=preserve_all_tensors, library="LiteRT")
        self.inputs, self.outputs = self._handle.call("specs")

    def invoke(self, sample: list[np.ndarray]) -> list[np.ndarray]:
        return self._handle.call("invoke", sample)  # type: ignore[no-any-return]

    def invoke_all(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self._handle.call("invoke_all", inputs)  # type: ignore[no-any-return]

    def tensor(self, index: int) -> np.ndarray:
        return self._handle.call("tensor", index)  # type: ignore[no-any-return]


def _spec(d: dict[str, Any]) -> InputSpec:
    scale, zp = d.get("quantization", (0.0, 0))
    return InputSpec(d["name"], int(d["index"]), tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]), float(scale), int(zp))


def dequantize(arr: np.ndarray, spec: InputSpec) -> np.ndarray:
    if spec.scale and np.issubdtype(arr.dtype, np.integer):
        return (arr.astype(np.float64) - spec.zero_point) * spec.scale
    return arr.astype(np.float64)


def load_data(path: str | os.PathLike[str], inputs: list[InputSpec]) -> Dataset:
    """Read an .npz of model inputs (by input name, else in order) and optional `labels`; DataError on mismatch."""
    from hwopt.fileio import load_npz

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
    """Uniform random inputs over each input's quantized range (floats: over [-1, 1])."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in inputs:
        shape = (samples,) + (spec.shape[1:] if spec.shape[:1] == (1,) else spec.shape)
        if np.issubdtype(spec.dtype, np.integer):
            info = np.iinfo(spec.dtype)
            arrays.append(rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64).astype(spec.dtype))
        else:
            arrays.append(rng.uniform(-1.0, 1.0, size=shape).astype(spec.dtype))
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


def compare(original: bytes, changed: bytes, data: Dataset | None = None) -> FidelityReport:
    """Run both models on the same inputs and compare their outputs."""
    ref, new = Runner(original), Runner(changed)
    if data is None:
        data = random_dataset(ref.inputs)
        log.warning("no --data given: fidelity measured on %d random inputs over the quantized input range, "
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
    top1 = acc_b = acc_a = None
    if first_ref is not None and first_new is not None and first_ref.shape[1] > 1:
        pr, pn = first_ref.argmax(axis=1), first_new.argmax(axis=1)
        top1 = float(np.mean(pr == pn))
        if data.labels is not None:
            acc_b = float(np.mean(pr == data.labels))
            acc_a = float(np.mean(pn == data.labels))
    return FidelityReport(data.source, data.samples, reports, top1, acc_b, acc_a)
