"""Ethos-U operator-support tables (Vela 5.2): which TFLite operators each family takes, and the rules.

Data, not code paths: the operator lists, the bit-width exceptions and the limits below are
those of Vela's Regor core (its `tflite_operator_constraints` report lists the same operators;
a test checks the lists against it). `support_for(family)` returns the family's table.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from hwopt.ir import DType
from hwopt.targets.ethos_u import support_compute as cp
from hwopt.targets.ethos_u import support_movement as mv
from hwopt.targets.ethos_u import support_rules as g
from hwopt.targets.support import OperatorSupport, OpView, Rule

U55_OPS = frozenset(["ABS", "ADD", "ARG_MAX", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "ELU", "EXP", "EXPAND_DIMS", "FULLY_CONNECTED", "GELU", "HARD_SWISH", "LEAKY_RELU", "LOG", "LOGISTIC", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "NEG", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RELU_0_TO_1", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "REVERSE_V2", "RSQRT", "SLICE", "SOFTMAX", "SPLIT", "SPLIT_V", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TILE", "TRANSPOSE", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK"])
U85_OPS = U55_OPS | frozenset(["ASSIGN_VARIABLE", "CAST", "DIV", "EQUAL", "GATHER", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "NOT_EQUAL", "READ_VARIABLE", "REDUCE_ALL", "REDUCE_ANY", "SCATTER_ND", "SELECT", "SELECT_V2"])

# Operators whose tensors need no quantization parameters (index and shape manipulation).
NO_QUANT = frozenset(["ARG_MAX", "MIRROR_PAD", "QUANTIZE", "SHAPE", "TRANSPOSE", "GATHER_ND", "GATHER", "SELECT", "SELECT_V2", "SCATTER_ND", "PAD", "PADV2", "REDUCE_ALL", "REDUCE_ANY", "EXPAND_DIMS"])
# Ethos-U55/U65: the only operators that take 32-bit (and 64-bit) feature maps.
U55_32BIT = frozenset(["SUM", "ARG_MAX", "TRANSPOSE", "MIRROR_PAD", "ADD", "MUL", "SUB", "BATCH_MATMUL", "FULLY_CONNECTED", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "NEG"])
U55_64BIT = frozenset({"ARG_MAX"})
# Zero points are not checked for these (Vela follows the reference kernels there).
U55_IGNORE_ZP = frozenset({"AVERAGE_POOL_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
                           "UNIDIRECTIONAL_SEQUENCE_LSTM"})
U85_IGNORE_ZP = U55_IGNORE_ZP | {"DIV"}
CONVOLUTIONS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D"})
POOLING = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D"})
PARAM_CONST = ("SLICE", "STRIDED_SLICE", "MEAN", "PAD", "PADV2", "MIRROR_PAD", "TRANSPOSE")
FMT = frozenset({DType.UINT8, DType.INT8, DType.INT16, DType.INT32, DType.INT64})

FIX_SPLIT_KERNEL = "use stride <= 3, or VALID padding without dilation so Vela can unroll the stride"
FIX_REQUANT = "requantize the model so this tensor's zero point is in range (symmetric int8 is safest)"


def _r(rule_id: str, doc: str, fix: str, check: Callable[[OpView], str | None]) -> Rule:
    return Rule(rule_id, doc, fix, check)


def _unsupported_check(v: OpView) -> str:
    return f"{v.name} is not an operator Vela places on this NPU"


UNSUPPORTED = _r("operator-type", "The operator type must be one Vela supports on the NPU",
                 "replace it with supported operators, or accept that it runs on the CPU", _unsupported_check)
HAS_IFM = _r("has-ifm", "Operations must have at least one IFM.", "give the operator its input", g._has_ifm)
HAS_OFM = _r("has-ofm", "Operations must have at least one OFM.", "give the operator its output", g._has_ofm)
STATIC = _r("static-shape", "Only the first dimension of tensors can be dynamic.",
            "convert with a fixed input shape (only the batch dimension may be dynamic)", g._static_dims)
QUANTIZED = _r("quantized", "Input(s), Output and Weight tensors must have quantization parameters.",
               g.FIX_INT8, g._quantized)
SCALE = _r("scale-positive", "Quantization scale of any tensor must be positive.",
           "requantize with scales below 2^31", g._scale_positive)
PER_AXIS = _r("per-axis", "Per-axis quantization is not supported.", g.FIX_PER_TENSOR, g._per_axis)
W8 = _r("weights-8bit", "Weight tensors must be 8-bit precision",
        "quantize the weights to int8 (hwopt cannot run packed int4 weights on Ethos-U)", g._weights_8bit)
B_SHAPE = _r("bias-shape", "Bias values must be stored in the channel axis", "store the bias as a 1-D tensor",
             g._bias_shape)
B_CONST = _r("bias-constant", "Bias tensors must be constant", "fold the bias into a constant tensor",
             g._bias_constant)
B_TYPE = _r("bias-type", "Bias tensors precision must be Int32 or Int64", g.FIX_INT8, g._bias_type)
CONST_PARAMS = _r("const-params", "Parameter tensors must be constant",
                  "make the parameter a constant (fold the shape computation at conversion)", g._const_params)
MATCH_Q = _r("matching-quantization", "Both Input quantization parameters must match OFM quantization parameters",
             "quantize both inputs and the output with the same scale and zero point", g._matching_quant)
FC_SHAPE = _r("fc-weight-shape", "FullyConnected weights must be on the form O,1,1,..,1,I.",
              "reshape the weights to [out, in]", g._fc_weight_shape)
AVGPOOL = _r("avgpool-kernel", "AVERAGE_POOL_2D kernel: VALID padding up to 256 high and 65536 elements; "
             "SAME padding up to 8x8", "use VALID padding or split the pooling into smaller ones", g._avgpool_kernel)
MAXPOOL = _r("maxpool-kernel", "Kernel product must be <= 256*256 and kernel height <= 256",
             "split the pooling into smaller pooling operators", g._maxpool_kernel)
TCONV_SHAPE = _r("transpose-conv-shape", "TRANSPOSE_CONV: SAME padding needs OFM = IFM * stride; VALID needs "
                 "OFM = IFM * stride + (kernel - stride)", "set output_shape to what the padding mode implies",
                 g._transpose_conv_shape)
RSQRT = _r("rsqrt-type", "IFM must be Int8 or Int16", g.FIX_INT8, g._rsqrt_type)
SOFTMAX = _r("softmax-size", "The product of IFM width and height must be less than 65536",
             "reshape so that W x H <= 65536 (softmax works along the depth)", g._softmax_size)
PAD_PARAMS = _r("pad-params-type", "Params tensor must be Int32 or Int64", "store the paddings as int32",
                g._pad_params)
TRANSPOSE_RANK = _r("transpose-rank", "Tensor dimension must be <= 8", "reshape to at most 8 dimensions",
                    g._transpose_rank)
SAME_SHAPES = _r("same-shapes", "IFM and OFM shapes must match", "keep input and output shapes equal",
                 g._same_shapes)
LOG_TYPE = g.same_types_rule("log-type", (DType.INT8, DType.INT16))
GELU_TYPE = g.same_types_rule("gelu-type", (DType.INT8, DType.UINT8))
BATCH = _r("unit-batch", "Batch must be 1.", "run with batch 1", cp.unit_batch)
MEAN_DEPTH = _r("mean-depth", "Reduction over depth is only supported if any of h,w,c == 1",
                "reshape so that H, W or C is 1 before reducing the depth", cp.mean_depth)
MEAN_AXIS = _r("mean-axis", f"Reduced axis must be less than {cp.MAX_MEAN_KERNEL}",
               "reduce in two steps (e.g. average-pool first)", cp.mean_axis)
MEAN_TYPE = _r("mean-type", "IFM precision must be one of: (Int8, UInt8, Int16)", g.FIX_INT8, cp.mean_type)
MEAN_ELEMS = _r("mean-elements", "Amount of reduced elements cannot exceed: 16777216(Int8), 8388608(UInt8), "
                "65536(Int16).", "reduce in two steps", cp.mean_elements)
SSLICE = _r("strided-slice", "Slice must represent a volume. Stride must be non-negative (and over W or H).",
            "slice with positive strides along H or W only", mv.strided_slice)
LSTM = (
    _r("lstm-gates", "Implicit gate calculation is not supported.", "use an LSTM with all four gates",
       cp.lstm_gates),
    _r("lstm-peephole", "Peephole variant is not supported.", "train without peephole connections",
       cp.lstm_peephole),
    _r("lstm-projection", "Projection is not supported.", "train without a projection layer", cp.lstm_projection),
    _r("lstm-norm", "Gate normalization is not supported.", "train without layer normalisation", cp.lstm_norm),
)
SPLITS = _r("split-outputs", "num_splits must match the number of outputs.", "set num_splits to the output count",
            mv.splits_match)

# Ethos-U55/U65
REVERSE = _r("reverse-axis", "Axis attribute is not supported.", "avoid REVERSE_V2 on this target", mv.reverse_axis)
STRIDE = _r("kernel-stride", "Kernel stride must be in the range (1,3).", FIX_SPLIT_KERNEL, cp.stride_at_most_3)
UNROLL = _r("stride-unroll", "Stride>3 is only supported IF (dilation = 1 AND padding = VALID)", FIX_SPLIT_KERNEL,
            cp.unrolled_stride)
MM = (
    _r("matmul-reduced-axis", "IF Matmul or (FC with dynamic weights): Reduced axis must be <= 2^16",
       "split the reduction", cp.matmul_reduced),
    _r("matmul-depth", "IF Matmul or (FC with dynamic weights): OFM depth must be <= 2^16", "split the output",
       cp.matmul_depth),
    _r("matmul-type", "IF Matmul or (FC with dynamic weights): IFM precision must be Int8",
       "quantize the matmul inputs to int8", cp.matmul_type),
)
ARGMAX = (
    _r("argmax-depth", "IFM depth must be less than or equal to 127.", "reduce the depth before ARG_MAX",
       cp.argmax_depth),
    _r("argmax-axis", "Operation must be performed along the depth axis.", "transpose so ARG_MAX runs on the last axis",
       cp.argmax_axis),
)
TRANSPOSE = (
    _r("transpose-int32", "IF IFM is Int32: rank <= 4 and NHWC/NWHC/NHCW within size limits",
       "transpose 8- or 16-bit data instead", mv.transpose_32),
    _r("transpose-shape", "IF IFM is Int8 or Int16: supported permutations within 2^16 per axis product",
       "split the transpose into smaller ones", mv.transpose_8_16),
)
RESIZE_U55 = _r("resize-scale", "Resize: equal H and W scale factors of 2x/4x/8x (2x with half-pixel centres)",
                "resize by 2x, 4x or 8x (or use Ethos-U85)", mv.resize_u55)
TCONV_STRIDE = _r("transpose-conv-stride", "Stride values WxH must be: 1x1 OR 2x2 OR 2x1 (if IFM height and kernel "
                  "height is 1) OR 1x2 (if IFM width and kernel width is 1)", "use stride 1 or 2",
                  cp.transpose_conv_stride)
INT32_FM = _r("no-32bit", "32-bit feature-maps are not supported.", g.FIX_INT8, cp.precision_rule_check(32))
INT64_FM = _r("no-64bit", "64-bit feature-maps are not supported.", g.FIX_INT8, cp.precision_rule_check(64))
ZP_U55 = _r("zero-point", "Zero-points must be 0 for Int32 and non-negative for unsigned dataTypes", FIX_REQUANT,
            cp.zero_points_u55)

# Ethos-U85
ZP_IN = _r("ifm-zero-point", "IFM zero points: int8 -128..127, uint8 0..255, uint16 0 or 32768, others 0",
           FIX_REQUANT, cp.ifm_zero_points)
ZP_OUT = _r("ofm-zero-point", "OFM zero points: signed -128..127, unsigned 0..255 or 32768", FIX_REQUANT,
            cp.ofm_zero_points)
RESIZE_ACHPC = _r("resize-align-half-pixel", "align_corners and half_pixel_centers are mutually exclusive.",
                  "set only one of align_corners and half_pixel_centers", mv.resize_ac_hpc)
RESIZE_U85 = _r("resize-scale", "Scale-factor can be maximum 2048 (1024 with half-pixel centres)",
                "resize in two steps", mv.resize_scale_u85)
RESIZE_POW2 = _r("resize-power-of-two", "Scale-factor must be an integer power of two.",
                 "resize by a power of two (then crop or pad)", mv.resize_pow2)
GATHER = _r("gather-axis", "axis must be equal to batch_dims", "gather along the batch dimension", mv.gather_axis)
SCATTER = _r("scatter-indices", "Scatter shape and index tensors constant, channel 1, unique elements",
             "make the indices a constant with unique values", mv.scatter_checks)


def _table(family: str) -> dict[str, list[Rule]]:
    u85 = family == "ethos-u85"
    supported = U85_OPS if u85 else U55_OPS
    dtypes = FMT | {DType.BOOL} if u85 else FMT
    weight_sum = g.weight_sum_rule(127 << 16, (127 << 24) if u85 else (127 << 16))
    bias_range = g.bias_range_rule((1 << 48) - 1 if u85 else (1 << 40) - 1)
    dt = g.dtypes_rule(frozenset(dtypes))
    table: dict[str, list[Rule]] = {}
    for name in sorted(supported):
        rules = [dt, HAS_IFM, HAS_OFM, STATIC]
        if name not in NO_QUANT:
            rules += [QUANTIZED, SCALE]
        if name not in CONVOLUTIONS and name != "FULLY_CONNECTED":
            rules.append(PER_AXIS)
        if name in CONVOLUTIONS or name == "FULLY_CONNECTED":
            rules += [W8, weight_sum, B_SHAPE, B_CONST, B_TYPE, bias_range]
        table[name] = rules
    for name in PARAM_CONST:
        table[name].append(CONST_PARAMS)
    table["MINIMUM"].append(MATCH_Q)
    table["MAXIMUM"].append(MATCH_Q)
    table["FULLY_CONNECTED"].append(FC_SHAPE)
    table["AVERAGE_POOL_2D"].append(AVGPOOL)
    table["MAX_POOL_2D"].append(MAXPOOL)
    table["TRANSPOSE_CONV"].append(TCONV_SHAPE)
    table["RSQRT"].append(RSQRT)
    table["SOFTMAX"].append(SOFTMAX)
    table["TRANSPOSE"].append(TRANSPOSE_RANK)
    for name in ("PAD", "PADV2", "MIRROR_PAD"):
        table[name].append(PAD_PARAMS)
    table["GELU"] += [SAME_SHAPES, GELU_TYPE]
    table["LOG"] += [SAME_SHAPES, LOG_TYPE]
    table["MEAN"] += [BATCH, MEAN_DEPTH, MEAN_AXIS, MEAN_TYPE, MEAN_ELEMS]
    table["STRIDED_SLICE"].append(SSLICE)
    table["UNIDIRECTIONAL_SEQUENCE_LSTM"] += list(LSTM)
    table["SPLIT"].append(SPLITS)
    table["SPLIT_V"].append(SPLITS)
    if u85:
        for name in supported - U85_IGNORE_ZP:
            table[name] += [ZP_IN, ZP_OUT]
        table["SCATTER_ND"].append(SCATTER)
        table["GATHER"].append(GATHER)
        table["RESIZE_NEAREST_NEIGHBOR"] += [RESIZE_ACHPC, RESIZE_U85]
        table["RESIZE_BILINEAR"] += [RESIZE_ACHPC, RESIZE_U85, RESIZE_POW2]
        return table
    for name in supported:
        if name not in U55_IGNORE_ZP:
            table[name].append(ZP_U55)
        if name not in U55_32BIT:
            table[name].append(INT32_FM)
        if name not in U55_64BIT:
            table[name].append(INT64_FM)
        if name in ("CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
            table[name].append(UNROLL)
        elif name in CONVOLUTIONS - {"TRANSPOSE_CONV"} or name == "FULLY_CONNECTED":
            table[name].append(STRIDE)
    table["REVERSE_V2"].append(REVERSE)
    table["FULLY_CONNECTED"] += list(MM)
    table["BATCH_MATMUL"] += list(MM)
    table["ARG_MAX"] += list(ARGMAX)
    table["TRANSPOSE"] += list(TRANSPOSE)
    table["RESIZE_BILINEAR"].append(RESIZE_U55)
    table["RESIZE_NEAREST_NEIGHBOR"].append(RESIZE_U55)
    table["TRANSPOSE_CONV"].append(TCONV_STRIDE)
    return table


@cache
def support_for(family: str) -> OperatorSupport:
    """The support table of an Ethos-U family: "ethos-u55", "ethos-u65" (same rules as U55) or "ethos-u85"."""
    key = "ethos-u85" if family == "ethos-u85" else "ethos-u55"
    return OperatorSupport(key, _table(key), UNSUPPORTED)
