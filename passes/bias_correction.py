"""`bias-correct`: cancel the mean output shift that weight changes introduced.

For every layer whose weights differ from the original model, the expected change of each
output channel's accumulator is E[ΔW · x] over calibration inputs. In the integer domain
the int32 bias shares the accumulator's scale (s_in · s_w), so the correction is
−round(Σ Δq · E[x_q − zp_in]) per output channel. E[x] is taken per kernel position over
all output positions (with the zero padding the NPU inserts), from the layer's input
activations in the *original* model, read from LiteRT with all tensors preserved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwopt.analysis.layers import WeightLayer, zero_corrected_tensor
from hwopt.analysis.litert import Runner
from hwopt.errors import PassError, UsageError
from hwopt.format.tflite_io import read_model
from hwopt.ir import Model, Subgraph
from hwopt.passes._common import layers_to_process
from hwopt.passes.manager import Pass, PassContext, PassResult

SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
PADDING_SAME = 0  # tflite Padding enum


def _pads(size: int, out: int, k: int, stride: int, dil: int, same: bool) -> int:
    """Leading padding of one spatial axis (TFLite SAME puts the odd pixel at the end)."""
    if not same:
        return 0
    total = max((out - 1) * stride + (k - 1) * dil + 1 - size, 0)
    return total // 2


def mean_patches(x: np.ndarray, kh: int, kw: int, out_hw: tuple[int, int], stride: tuple[int, int],
                 dil: tuple[int, int], same: bool) -> np.ndarray:
    """Mean over samples and output positions of the input seen at each kernel position: [kh, kw, C]."""
    n, h, w, c = x.shape
    oh, ow = out_hw
    pt = _pads(h, oh, kh, stride[0], dil[0], same)
    pl = _pads(w, ow, kw, stride[1], dil[1], same)
    need_h = (oh - 1) * stride[0] + (kh - 1) * dil[0] + 1
    need_w = (ow - 1) * stride[1] + (kw - 1) * dil[1] + 1
    pad = np.zeros((n, max(need_h, pt + h), max(need_w, pl + w), c), dtype=np.float64)
    pad[:, pt : pt + h, pl : pl + w, :] = x
    out = np.empty((kh, kw, c))
    for i in range(kh):  # kernel positions only (≤ a few dozen), never per weight
        for j in range(kw):
            win = pad[:, i * dil[0] : i * dil[0] + (oh - 1) * stride[0] + 1 : stride[0],
                      j * dil[1] : j * dil[1] + (ow - 1) * stride[1] + 1 : stride[1], :]
            out[i, j] = win.mean(axis=(0, 1, 2))
    return out


def _shift(sg: Subgraph, wl: WeightLayer, dq: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """Expected accumulator change per output channel, in units of s_in · s_w."""
    op = sg.operators[wl.op_index]
    opts = op.options
    if wl.op == "FULLY_CONNECTED":
        mean = x.reshape(-1, dq.shape[1]).mean(axis=0)
        return dq.astype(np.float64) @ mean
    out = sg.tensor(op.outputs[0])
    if out is None or len(out.shape) != 4 or x.ndim != 4:
        return None
    same = int(getattr(opts, "padding", PADDING_SAME)) == PADDING_SAME
    stride = (int(getattr(opts, "strideH", 1)), int(getattr(opts, "strideW", 1)))
    dil = (int(getattr(opts, "dilationHFactor", 1) or 1), int(getattr(opts, "dilationWFactor", 1) or 1))
    kh, kw = dq.shape[1], dq.shape[2]
    mp = mean_patches(x, kh, kw, (out.shape[1], out.shape[2]), stride, dil, same)
    if wl.op == "CONV_2D":
        return np.einsum("ohwi,hwi->o", dq.astype(np.float64), mp)
    mult = dq.shape[3] // max(x.shape[3], 1)  # depthwise: output o reads input channel o // multiplier
    per_out = mp[:, :, np.arange(dq.shape[3]) // max(mult, 1)]
    return np.einsum("hwo,hwo->o", dq[0].astype(np.float64), per_out)


@dataclass(frozen=True)
class BiasCorrectionPass(Pass):
    """Adjust int32 biases of changed layers so their mean output matches the original model's."""

    name = "bias-correct"
    description = "cancel the mean output shift of changed layers through their int32 bias (needs calibration data)"

    samples: int = 128
    skip: tuple[str, ...] = ()
    context: PassContext | None = field(default=None, compare=False, repr=False, metadata={"option": False})

    def __post_init__(self) -> None:
        if not 1 <= self.samples <= 100000:
            raise UsageError(f"bias-correct: samples must lie in 1..100000, got {self.samples}")

    def requires(self, model: Model) -> None:
        if self.context is None or self.context.reference is None or self.context.calibration is None:
            raise PassError("bias-correct needs the original model and calibration inputs (give --data)")
        if len(model.subgraphs) != 1:
            raise PassError("bias-correct supports single-subgraph models only")

    def run(self, model: Model) -> PassResult:
        assert self.context is not None and self.context.reference is not None and self.context.calibration is not None
        ref = read_model(self.context.reference)
        ref_layers = {(wl.subgraph, wl.op_index): wl for wl in layers_to_process(ref, self.skip)[0]}
        sg = model.subgraphs[0]
        todo: list[tuple[WeightLayer, np.ndarray]] = []
        for wl in layers_to_process(model, self.skip)[0]:
            rl = ref_layers.get((wl.subgraph, wl.op_index))
            if rl is None or wl.op not in SUPPORTED or wl.bias_index < 0:
                continue
            dq = zero_corrected_tensor(wl.weights(model)) - zero_corrected_tensor(rl.weights(ref))
            if np.any(dq):
                todo.append((wl, dq))
        if not todo:
            return PassResult(model, False, {"layers": 0})
        runner = Runner(self.context.reference, preserve_all_tensors=True)
        arrays = list(self.context.calibration.values())
        n = min(int(arrays[0].shape[0]), self.samples)
        ins = {wl.op_index: sg.operators[wl.op_index].inputs[0] for wl, _ in todo}
        acts: dict[int, list[np.ndarray]] = {k: [] for k in ins}
        for i in range(n):  # per calibration sample, not per weight
            runner.invoke([a[i : i + 1] for a in arrays])
            for op_index, t_index in ins.items():
                acts[op_index].append(runner.tensor(t_index).copy())
        changed, per_layer = 0, []
        for wl, dq in todo:
            x_t = sg.tensor(ins[wl.op_index])
            assert x_t is not None
            zp_in = int(x_t.quantization.zero_point.reshape(-1)[0]) if x_t.quantization is not None else 0
            x = np.concatenate(acts[wl.op_index]).astype(np.float64) - zp_in
            shift = _shift(sg, wl, dq, x)
            bias_t = sg.tensor(wl.bias_index)
            ref_bias_t = ref.subgraphs[0].tensor(wl.bias_index)
            if shift is None or bias_t is None or ref_bias_t is None or ref_bias_t.data is None:
                continue
            s_in = float(x_t.quantization.scale.reshape(-1)[0]) if x_t.quantization is not None else 1.0
            wq = wl.weights(model).quantization
            s_w = np.broadcast_to(wq.scale.astype(np.float64), shift.shape) if wq is not None else np.ones_like(shift)
            bq = bias_t.quantization
            s_b = np.broadcast_to(bq.scale.astype(np.float64), shift.shape) if bq is not None else s_in * s_w
            delta = -np.rint(shift * s_in * s_w / s_b)
            info = np.iinfo(ref_bias_t.data.dtype)
            new_bias = np.clip(ref_bias_t.data.astype(np.float64) + delta, info.min, info.max)
            model.set_tensor_data(sg, bias_t, new_bias.astype(ref_bias_t.data.dtype))
            changed += 1
            per_layer.append({"op_index": wl.op_index, "max_abs_delta": float(np.max(np.abs(delta)))})
        return PassResult(model, changed > 0, {"layers": changed, "samples": n, "per_layer": per_layer})
