"""Checks a model must pass before native code (Vela, its weight codec, LiteRT) sees it.

Those libraries crash (SIGSEGV, SIGFPE) or loop forever on some valid-looking inputs: packed
or unusual tensor types, weight zero points outside their type, non-finite scales, unknown
operator codes, an omitted required input, zero strides or dilations, another operator's
options table, FULLY_CONNECTED weights Regor cannot fold. Only what crashes is refused: what Vela merely leaves to the CPU stays Vela's
call. Names that are not UTF-8 or very long are fine (nothing downstream limits them). Each
check names the operator and field; the analytic estimator runs the structural checks too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from hwopt._generated.tflite.BuiltinOptions import BuiltinOptions
from hwopt.errors import UnsupportedModelError
from hwopt.ir import VELA_CUSTOM_CODE, DType, Model, Operator, Subgraph, Tensor

MAX_VELA_BATCH = 256  # Vela unrolls a 4-D feature map's batch into one NPU operation per item
MAX_OPTION = 1 << 16
# Weights of a kernel Vela dilates by hand (dilation > 2): it takes ~0.1 s per MiB, so 64 MiB is
# seconds while atrous networks stay far below (3x3, 256 to 256 channels, rate 24: 40 MiB).
MAX_DILATED_WEIGHTS = 64 << 20
# Quantization scales of real int8 models lie within ~1e-13..1e1; beyond these bounds the
# requantisation multipliers overflow (infinite or beyond int64) in every cost model.
MIN_SCALE, MAX_SCALE = 1e-30, 1e10  # strides, dilations and filter sizes beyond this describe no real network


class Engine(Enum):
    """Who will consume the model next; each has its own set of hazards."""

    VELA = "Vela"  # Regor compile (also the Vela estimate engine)
    MLW = "Vela's weight encoder"  # mlw_codec on one layer's weights
    LITERT = "LiteRT"
    ANALYTIC = "the analytic estimator"


@dataclass(frozen=True)
class Problem:
    """One reason a model must not be passed to an engine."""

    subgraph: int
    op_index: int | None
    op: str
    message: str

    def __str__(self) -> str:
        if self.op_index is None:
            return self.message
        sg = f" in subgraph {self.subgraph}" if self.subgraph else ""
        return f"{self.op} #{self.op_index}{sg}: {self.message}"


# Inputs each weight operator needs (an omitted optional input, -1, is not allowed there).
REQUIRED_INPUTS = {"CONV_2D": (0, 1), "DEPTHWISE_CONV_2D": (0, 1), "FULLY_CONNECTED": (0, 1),
                   "TRANSPOSE_CONV": (0, 1, 2), "CONV_3D": (0, 1), "BATCH_MATMUL": (0, 1)}
WEIGHT_AT = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "CONV_3D": 1}
# the weights' axis of output channels, which must match the output's depth (a mismatch makes Vela
# read the weights in another order than the model declares)
WEIGHT_OUT_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0}
WEIGHT_RANK = {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 4, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 4, "CONV_3D": 5}
VELA_WEIGHT_TYPES = (DType.INT8, DType.UINT8)  # what Vela's weight encoder takes
# Weight types Regor handles (16-bit and float ones go to the CPU); others crash it (SIGSEGV).
VELA_ANY_WEIGHT_TYPES = (DType.INT8, DType.UINT8, DType.INT16, DType.FLOAT32, DType.FLOAT16)
SPATIAL = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "AVERAGE_POOL_2D", "MAX_POOL_2D"})
PACKED_TYPES = (DType.INT4, DType.UINT4, DType.INT2)
# Tensor types Regor handles (the NPU's, plus what CPU fallback ops carry); others crash it (SIGFPE).
VELA_TYPES = (DType.FLOAT32, DType.FLOAT16, DType.INT32, DType.UINT8, DType.INT64, DType.BOOL, DType.INT16, DType.INT8)
# Option fields that divide in shape arithmetic (Regor dies with SIGFPE on a zero).
POSITIVE_OPTIONS = ("strideW", "strideH", "strideD", "dilationWFactor", "dilationHFactor", "dilationDFactor",
                    "filterWidth", "filterHeight", "filterDepth")
# Operators whose quantized LiteRT kernels derive a requantisation multiplier from their tensors'
# scales: a quantized activation without a scale there makes LiteRT abort the process (SIGABRT).
RESCALING = frozenset({"ADD", "SUB", "MUL", "SQUARED_DIFFERENCE", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                       "TRANSPOSE_CONV", "BATCH_MATMUL", "MEAN", "SUM", "SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH",
                       "HARD_SWISH", "LEAKY_RELU", "PRELU", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE", "AVERAGE_POOL_2D",
                       "CONCATENATION"})
# Data-movement operators: LiteRT's kernels copy the input's bytes into the output, sized by the output's
# type, so an input of another type overruns it (SIGSEGV).
SAME_TYPE = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "SLICE", "STRIDED_SLICE", "PAD", "PADV2",
                       "TILE", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "CONCATENATION", "PACK", "SPLIT", "UNPACK"})
QUANTIZED_ACTIVATIONS = (DType.INT8, DType.UINT8, DType.INT16)
ZP_RANGE = {DType.INT8: (-128, 127), DType.UINT8: (0, 255), DType.INT16: (-32768, 32767),
            DType.INT4: (-8, 7), DType.UINT4: (0, 15), DType.INT2: (-2, 1), DType.UINT16: (0, 65535),
            DType.INT32: (-(1 << 31), (1 << 31) - 1)}


def _operator(sg: Subgraph, op: Operator, engine: Engine, scales: dict[int, str | None] | None = None) -> list[Problem]:
    p = lambda msg: Problem(sg.index, op.index, op.op, msg)  # noqa: E731
    out: list[Problem] = []
    if op.custom_code == VELA_CUSTOM_CODE:
        return out
    if op.op.startswith("BUILTIN_"):
        if engine is not Engine.ANALYTIC:
            out.append(p(f"unknown builtin operator code {op.builtin_code} (newer than hwopt's schema)"))
        return out
    for at in REQUIRED_INPUTS.get(op.op, ()):
        if at >= len(op.inputs) or op.inputs[at] < 0:
            out.append(p(f"required input {at} is missing" + (" (-1)" if at < len(op.inputs) else "")))
    if any(i < 0 for i in op.outputs) or not op.outputs:
        out.append(p("an output is missing"))
    opts = op.options
    bad = _options_mismatch(op)
    if bad is not None:
        out.append(p(bad))
        return out
    if opts is not None:
        for name in POSITIVE_OPTIONS:
            value = getattr(opts, name, None)
            if isinstance(value, int) and not 1 <= value <= MAX_OPTION:
                out.append(p(f"{name} = {value} (must lie in 1..{MAX_OPTION})"))
    w_at = WEIGHT_AT.get(op.op)
    if w_at is not None and w_at < len(op.inputs) and op.inputs[w_at] >= 0:
        w = sg.tensor(op.inputs[w_at])
        if w is not None:
            rank = WEIGHT_RANK[op.op]
            # A convolution's weights of another rank kill Regor (SIGFPE); other shapes it leaves to the CPU.
            if len(w.shape) != rank and (engine is Engine.MLW or (op.op in SPATIAL and engine is Engine.VELA)):
                out.append(p(f"weights {w.name!r} have shape {list(w.shape)} (need {rank} dimensions)"))
            elif any(d < 1 for d in w.shape):
                out.append(p(f"weights {w.name!r} have an empty dimension in shape {list(w.shape)}"))
            elif (bad := _weight_depth_problem(sg, op, w)) is not None:
                out.append(p(bad))
            if engine is Engine.MLW and w.dtype not in VELA_WEIGHT_TYPES and not w.dtype.is_float:
                out.append(p(f"weights {w.name!r} are {w.dtype.name}; the weight encoder takes int8/uint8 only"))
            if engine is Engine.VELA and w.dtype not in VELA_ANY_WEIGHT_TYPES:
                out.append(p(f"weights {w.name!r} are {w.dtype.name}, a weight type Vela does not handle"))
            bad = _zero_point_problem(w)
            if bad:
                out.append(p(bad))
    if engine is Engine.VELA and op.op in ("CONV_2D", "DEPTHWISE_CONV_2D") and opts is not None:
        bad = _dilated_weights_problem(sg, op)
        if bad:
            out.append(p(bad))
    if engine is Engine.VELA and op.op == "FULLY_CONNECTED":
        bad = _fully_connected_problem(sg, op)
        if bad:
            out.append(p(bad))
    if engine is Engine.LITERT and op.custom_code is None and op.op not in MANY_OPTIONAL:
        for at, i in enumerate(op.inputs):
            if i < 0 and at not in OPTIONAL_INPUTS.get(op.op, ()) and at not in REQUIRED_INPUTS.get(op.op, ()):
                out.append(p(f"input {at} is omitted (-1), but {op.op} has no optional input there"))
    if engine is Engine.LITERT and op.op in SAME_TYPE:
        data_inputs = op.inputs if op.op in ("CONCATENATION", "PACK") else op.inputs[1:2] if op.op == "SPLIT" \
            else op.inputs[:1]
        types = {t.dtype for t in _present(sg, (*data_inputs, *op.outputs))}
        if len(types) > 1:
            out.append(p(f"moves data between tensors of types {', '.join(sorted(d.name for d in types))}; "
                         f"LiteRT's {op.op} copies it unconverted"))
    if engine is Engine.LITERT and op.op in RESCALING:
        for t in _present(sg, (*op.inputs, *op.outputs)):
            if not t.is_constant and t.dtype in QUANTIZED_ACTIVATIONS and (
                    t.quantization is None or t.quantization.scale.size == 0):
                out.append(p(f"tensor {t.name!r} ({t.dtype.name}) has no quantization scale, which {op.op} "
                             "rescales with"))
                break
    if engine is Engine.VELA and op.op in SPATIAL:
        ifm_at = 2 if op.op == "TRANSPOSE_CONV" else 0
        for role, i in (("input", op.inputs[ifm_at] if ifm_at < len(op.inputs) else -1),
                        ("output", op.outputs[0] if len(op.outputs) else -1)):
            fm = sg.tensor(i) if 0 <= i < len(sg.tensors) else None
            if fm is not None and len(fm.shape) != 4:
                out.append(p(f"{role} {fm.name!r} has shape {list(fm.shape)} (a 2-D operator needs 4 dimensions)"))
    for t in _present(sg, (*op.inputs, *op.outputs)):  # requantisation divides by these scales
        bad = _scale_of(t, scales)
        if bad:
            out.append(p(bad))
            break
    return out


def _present(sg: Subgraph, indices: tuple[int, ...]) -> list[Tensor]:
    """The tensors at `indices`, without omitted (-1) or out-of-range ones (reported by the index checks)."""
    return [sg.tensors[i] for i in indices if 0 <= i < len(sg.tensors)]


def _weight_depth_problem(sg: Subgraph, op: Operator, w: Tensor) -> str | None:
    """Weights of the declared rank whose output channels are not the output's depth."""
    axis = WEIGHT_OUT_AXIS.get(op.op)
    out_t = sg.tensor(op.outputs[0]) if op.outputs and 0 <= op.outputs[0] < len(sg.tensors) else None
    if axis is None or out_t is None or len(w.shape) != WEIGHT_RANK[op.op] or not len(out_t.shape):
        return None
    if int(w.shape[axis]) == int(out_t.shape[-1]):
        return None
    return (f"weights {w.name!r} have {int(w.shape[axis])} output channels (shape {list(w.shape)}), "
            f"the output {out_t.name!r} has {int(out_t.shape[-1])}")


def _scale_of(t: Tensor, scales: dict[int, str | None] | None) -> str | None:
    """`_scale_problem`, remembered per tensor in `scales` (one subgraph's check, by object id)."""
    if scales is None:
        return _scale_problem(t)
    key = id(t)
    if key not in scales:
        scales[key] = _scale_problem(t)
    return scales[key]


def _fully_connected_problem(sg: Subgraph, op: Operator) -> str | None:
    """What makes Regor divide by zero on a FULLY_CONNECTED with constant weights (SIGFPE).

    Regor folds weights [O, ..., I] whose middle dimensions are all 1 to [O, 1, 1, I]; it sums
    unfolded ones per output channel taken from the fourth dimension from the right, which is
    missing below four dimensions. Folded, the input is cut into batches of I values: fewer
    than I make a batch of 0.
    """
    w = sg.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if w is None or not w.is_constant or any(d < 1 for d in w.shape):
        return None
    shape = [int(d) for d in w.shape]
    folds = len(shape) >= 2 and int(np.prod(shape[1:-1], dtype=np.int64)) == 1
    if not folds:
        if len(shape) >= 4:
            return None  # Vela leaves it to the CPU
        return (f"weights {w.name!r} have shape {shape} (need [outputs, inputs], "
                "or only 1s between the two)")
    x = sg.tensor(op.inputs[0])
    if x is None or any(d < 0 for d in x.shape):
        return None
    n = int(np.prod(x.shape, dtype=np.int64))
    if n < shape[-1]:
        return f"input {x.name!r} has {n} values, fewer than one row of weights ({shape[-1]})"
    return None


def _dilated_weights_problem(sg: Subgraph, op: Operator) -> str | None:
    """Regor runs dilation above 2 by writing the dilated kernel's zeros into the weights (dilation d
    becomes a kernel of (k - 1) * d' + 1 taps, d' = d / 2 when d is even): bounded, it takes seconds."""
    w = sg.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    dh, dw = (int(getattr(op.options, f, 1) or 1) for f in ("dilationHFactor", "dilationWFactor"))
    if w is None or len(w.shape) != 4 or max(dh, dw) <= 2 or any(d < 1 for d in w.shape):
        return None
    o, kh, kw, i = (int(d) for d in w.shape)
    size = [(k - 1) * (d // 2 if d % 2 == 0 else d) + 1 if d > 2 else k for k, d in ((kh, dh), (kw, dw))]
    total = o * size[0] * size[1] * i
    if total <= MAX_DILATED_WEIGHTS:
        return None
    return (f"dilation {dh}x{dw} (HxW) makes Vela expand the {kh}x{kw} kernel to {size[0]}x{size[1]} "
            f"({total / (1 << 20):.0f} MiB of weights; at most {MAX_DILATED_WEIGHTS >> 20} MiB)")


# Inputs TFLite lets a model omit (-1), by operator; LiteRT's other kernels read the missing
# tensor without checking it (SIGSEGV). Recurrent operators omit many of theirs: not checked.
OPTIONAL_INPUTS = {"FULLY_CONNECTED": (2,), "CONV_2D": (2,), "DEPTHWISE_CONV_2D": (2,), "TRANSPOSE_CONV": (3,),
                   "CONV_3D": (2,), "CONV_3D_TRANSPOSE": (3,), "SVDF": (3,), "LSH_PROJECTION": (2,)}
MANY_OPTIONAL = frozenset({"LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM",
                           "BIDIRECTIONAL_SEQUENCE_RNN"})


# Operators whose parameters live only in their options table: Regor reads it unconditionally.
NEEDS_OPTIONS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                           "L2_POOL_2D", "SOFTMAX", "CONCATENATION", "SPLIT", "SPLIT_V", "PACK",
                           "UNPACK", "STRIDED_SLICE", "LEAKY_RELU", "GATHER", "RESIZE_BILINEAR",
                           "RESIZE_NEAREST_NEIGHBOR", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN",
                           "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "MIRROR_PAD", "BATCH_MATMUL", "ARG_MAX", "ARG_MIN"})
# Operators whose options table is not named after the operator (schema: builtin_options union).
OPTIONS_OF = {"AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
              "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions",
              "REDUCE_MIN": "ReducerOptions", "REDUCE_PROD": "ReducerOptions", "REDUCE_ANY": "ReducerOptions",
              "REDUCE_ALL": "ReducerOptions", "L2_NORMALIZATION": "L2NormOptions", "CONV_3D_TRANSPOSE": "Conv3DOptions",
              "LSH_PROJECTION": "LSHProjectionOptions", "SPLIT_V": "SplitVOptions",
              "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
              "RANDOM_STANDARD_NORMAL": "RandomOptions", "RANDOM_UNIFORM": "RandomOptions",
              "MULTINOMIAL": "RandomOptions", "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions"}


def _options_names() -> dict[str, str]:
    """Options table names of the builtin_options union, by lower-case name."""
    return {k.lower(): k for k in vars(BuiltinOptions) if not k.startswith("_")}


def _options_mismatch(op: Operator) -> str | None:
    """The operator carries another operator's options table (Regor reads it as its own: SIGSEGV)."""
    opts = op.options
    declared = op.options_type
    if opts is None and declared != 0:
        return f"declares options type {declared} but holds no options table"
    if opts is None and op.op in NEEDS_OPTIONS:
        return "has no options table (its strides, axes or sizes live there)"
    if op.custom_code is not None:
        return None if opts is None else f"a custom operator carrying builtin options ({type(opts).__name__.removesuffix('T')})"
    if opts is None:
        return None
    actual = type(opts).__name__.removesuffix("T")
    expected = OPTIONS_OF.get(op.op, op.op.replace("_", "") + "Options")
    if actual.lower() == expected.lower():
        return None
    names = _options_names()
    if expected.lower() not in names:  # an operator without a table in this union (RELU, StableHLO)
        return f"carries {actual}, but takes no such options"
    return f"carries {actual} instead of {names[expected.lower()]}"


def _zero_point_problem(t: Tensor) -> str | None:
    q = t.quantization
    lim = ZP_RANGE.get(t.dtype)
    if q is None or lim is None or q.zero_point.size == 0:
        return None
    lo, hi = int(q.zero_point.min()), int(q.zero_point.max())
    if lo >= lim[0] and hi <= lim[1]:
        return None
    return f"tensor {t.name!r} ({t.dtype.name}) has zero point {lo if lo < lim[0] else hi}, outside {lim[0]}..{lim[1]}"


def _signature_problem(t: Tensor) -> str | None:
    """shape_signature gives -1 (dynamic) or the static size per axis; anything else is a lie."""
    sig = t.shape_signature
    if sig is None or len(sig) == 0:
        return None
    if len(sig) != len(t.shape) or any(s != -1 and s != d for s, d in zip(sig, t.shape, strict=False)):
        return f"tensor {t.name!r} has shape_signature {list(sig)} for shape {list(t.shape)}"
    return None


def _scale_problem(t: Tensor) -> str | None:
    q = t.quantization
    if q is None or q.scale.size == 0:
        return None
    # the extremes decide every check (min and max propagate NaN); one pass each, not six
    lo, hi = (float(q.scale[0]),) * 2 if q.scale.size == 1 else (float(q.scale.min()), float(q.scale.max()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"tensor {t.name!r} has a quantization scale that is not finite"
    if lo < 0:
        return f"tensor {t.name!r} has a negative quantization scale"
    has_zero = lo == 0  # no scale is negative here: a zero is the minimum
    if has_zero and hi > 0:  # the smallest non-zero scale
        lo = float(q.scale[q.scale != 0].min())
    if hi > 0 and (lo < MIN_SCALE or hi > MAX_SCALE):
        return f"tensor {t.name!r} has a quantization scale outside [{MIN_SCALE:g}, {MAX_SCALE:g}]"
    if not t.is_constant and has_zero:
        return f"tensor {t.name!r} has a quantization scale of 0"
    return None


def operator_problem(model: Model, subgraph: int, op_index: int, engine: Engine | str) -> str | None:
    """Why one operator must not reach `engine` (None: it may), e.g. for a per-layer encoder."""
    eng = engine if isinstance(engine, Engine) else Engine[engine.upper()]
    sg = model.subgraphs[subgraph]
    found = _operator(sg, sg.operators[op_index], eng)
    return found[0].message if found else None


def _tensors(sg: Subgraph, engine: Engine, scales: dict[int, str | None]) -> list[Problem]:
    out: list[Problem] = []
    for t in sg.tensors:
        if engine is Engine.VELA and not t.is_constant and len(t.shape) == 4 and t.shape[0] > MAX_VELA_BATCH:
            out.append(Problem(sg.index, None, "", f"tensor {t.name!r} has batch {t.shape[0]}; Vela compiles one "
                                                   f"operation per batch item (at most {MAX_VELA_BATCH})"))
            break
        if engine is Engine.LITERT and not t.is_constant and len(t.shape) == 4 and t.shape[0] > MAX_VELA_BATCH:
            # LiteRT sizes its arena and scratch (im2col, packing) for the whole batch: gigabytes at 65536.
            out.append(Problem(sg.index, None, "", f"tensor {t.name!r} has batch {t.shape[0]}; a fidelity run "
                                                   f"takes the model's own batch (at most {MAX_VELA_BATCH})"))
            break
        if engine in (Engine.VELA, Engine.MLW) and t.dtype in PACKED_TYPES:
            out.append(Problem(sg.index, None, "", f"tensor {t.name!r} is {t.dtype.name}: packed types are not "
                                                   "supported by Vela"))
            break
        if engine is Engine.VELA and t.dtype not in VELA_TYPES:
            out.append(Problem(sg.index, None, "", f"tensor {t.name!r} is {t.dtype.name}, a type Vela does not handle"))
            break
        bad = _scale_of(t, scales) or _signature_problem(t)  # weight zero points: checked per operator
        if bad:
            out.append(Problem(sg.index, None, "", bad))
            break
    return out


def problems(model: Model, engine: Engine | str) -> list[Problem]:
    """Everything in `model` that `engine` must not be given, in model order."""
    eng = engine if isinstance(engine, Engine) else Engine[engine.upper()]
    out: list[Problem] = []
    for sg in model.subgraphs:
        scales: dict[int, str | None] = {}  # each tensor's scales checked once, though operators share tensors
        out.extend(_tensors(sg, eng, scales))
        for op in sg.operators:
            out.extend(_operator(sg, op, eng, scales))
    return out


def check_for_native(model: Model, engine: Engine | str) -> None:
    """UnsupportedModelError naming the first problem, before `engine` runs on the model."""
    found = problems(model, engine)
    if found:
        eng = engine if isinstance(engine, Engine) else Engine[engine.upper()]
        more = f" (and {len(found) - 1} more problem{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
        raise UnsupportedModelError(f"{eng.value} cannot take this model: {found[0]}{more}")
