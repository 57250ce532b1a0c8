"""A TFLite flatbuffer run in LiteRT, one sample at a time (batch 1, as deployed).

LiteRT is native code, so the interpreter (`LocalRunner`) lives in the isolation worker and
`Runner` is the caller's proxy; the model is validated first, so what LiteRT would crash on is
refused before it loads. Used by the fidelity engine and by passes that need activations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwopt import isolation
from hwopt._quiet import quiet_fds
from hwopt.analysis.validate import check_for_native
from hwopt.errors import UnsupportedModelError
from hwopt.format.tflite_io import read_model


@dataclass(frozen=True)
class InputSpec:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    scale: float
    zero_point: int


class LocalRunner:
    """A LiteRT interpreter over model bytes, run one sample at a time (batch 1 as deployed).

    It lives in the isolation worker (LiteRT is native code); `Runner` is the caller's proxy.
    """

    def __init__(self, model: bytes, *, preserve_all_tensors: bool = False) -> None:
        from ai_edge_litert.interpreter import Interpreter

        with warnings.catch_warnings(), quiet_fds((2,)):  # LiteRT's delegate banner
            warnings.simplefilter("ignore")
            try:
                self.interp = Interpreter(model_content=model, experimental_preserve_all_tensors=preserve_all_tensors)
                self.interp.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                raise UnsupportedModelError(f"LiteRT cannot load the model: {exc}") from None
            except MemoryError as exc:  # a C++ std::bad_alloc: what the model asked for cannot be allocated
                raise UnsupportedModelError(f"LiteRT cannot load the model: out of memory ({exc})") from None
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

    def __init__(self, model: bytes, *, preserve_all_tensors: bool = False,
                 worker: isolation.Worker | None = None) -> None:
        """`worker`: a worker of the caller's own (e.g. LiteRT beside a Vela compile in the shared one)."""
        check_for_native(read_model(model), "litert")
        self._handle = (worker or isolation.worker()).new("hwopt.analysis.litert:LocalRunner", model,
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
