"""Vela's block configurations and operator rewrites, read back from its optimisation database.

The weight streams of a layer depend on scheduler decisions (traversal, OFM/IFM block,
micro-block, depth slices, U85 weight format) and on how Vela rewrites some operators into
several NPU operations. Both are read from a Regor compile with its database on, keyed by
the input model's operator index (`source.ext_key`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hwopt.ir import Model
from hwopt.targets.ethos_u.u85_arch import U85Op
from hwopt.targets.ethos_u.u85_blocks import OFM_BLOCK_MAX, U85Query
from hwopt.targets.ethos_u.vela_config import CompilerOptions
from hwopt.targets.ethos_u.vela_engine import RegorOutput, regor_compile
from hwopt.targets.ethos_u.weight_layout import DEFAULT_OFM_BLOCK_DEPTH, BlockConfig, Traversal, WeightFormat
from hwopt.targets.target import Target


@dataclass(frozen=True)
class VelaLayerInfo:
    """What Vela's optimisation database says about one input operator's weights."""

    op_index: int
    operator: str  # Vela's (lowered) operator name
    config: BlockConfig
    weight_format: str
    encoded_bytes: int
    distinct: int
    zeros: int
    stride: tuple[int, int] = (1, 1)  # (y, x) as Vela lowered the kernel
    dilation: tuple[int, int] = (1, 1)
    # Every NPU operation Vela made of the operator, in order: (config, stride, dilation). More
    # than one when Vela splits it (a depthwise convolution with a channel multiplier M runs as
    # M depthwise convolutions, one per multiplier, each with its own streams).
    parts: tuple[tuple[BlockConfig, tuple[int, int], tuple[int, int]], ...] = ()


def transpose_conv_parts(w: np.ndarray, stride: tuple[int, int]) -> list[np.ndarray]:
    """The OHWI weights of the convolutions Vela runs for a U85 transposed convolution.

    Vela splits it by output phase (oy, ox) (row-major, fewer phases when the kernel is
    smaller than the stride): the phase's sub-kernel holds the taps oy, oy + stride, ...
    (and the same along x), reversed. When the stride exceeds the kernel, a 1x1 convolution
    with zero weights that clears the output comes first. (TFLite's output padding never
    shifts the phases: it only crops.)
    """
    o, kh, kw, i = w.shape
    sy, sx = stride
    parts = []
    if sy > kh or sx > kw:
        parts.append(np.zeros((o, 1, 1, i), dtype=w.dtype))
    for oy in range(min(kh, sy)):
        for ox in range(min(kw, sx)):
            parts.append(np.ascontiguousarray(w[:, oy::sy, ox::sx, :][:, ::-1, ::-1, :]))
    return parts


def vela_format(text: str) -> WeightFormat | None:
    """Vela's `weight_format` column ("Default", "Fast", "Default|Sparse2_4", ...)."""
    flags = set(text.split("|"))
    fast, sparse = "Fast" in flags, "Sparse2_4" in flags
    if not flags & {"Default", "Fast"}:
        return None
    return {(False, False): WeightFormat.DEFAULT, (True, False): WeightFormat.FAST,
            (False, True): WeightFormat.DEFAULT_SPARSE, (True, True): WeightFormat.FAST_SPARSE}[(fast, sparse)]


def vela_configs(model_bytes: bytes, target: Target) -> tuple[dict[int, VelaLayerInfo], int]:
    """Compile with Vela (Regor, in-process) and read back each weight op's block config and size.

    Returns {TFLite operator index of subgraph 0: info} and Vela's `encodedWeights` total.
    """

    return configs_from_compiled(compile_with_db(model_bytes, target))


def compile_with_db(model_bytes: bytes, target: Target, model: Model | None = None) -> RegorOutput:
    """One Vela compile with its optimisation database on (block configurations and stream owners)."""
    compiled, _ = regor_compile(model_bytes, target, CompilerOptions(enable_db=True), model=model)
    return compiled


def configs_from_compiled(compiled: object) -> tuple[dict[int, VelaLayerInfo], int]:
    """`vela_configs` from a model Vela already compiled with its optimisation database enabled."""
    tables = compiled.opt_database.tables  # type: ignore[attr-defined]

    def rows(name: str) -> list[dict[str, str]]:
        t = tables.get(name)
        return [] if t is None else [dict(zip(t.header, r, strict=False)) for r in t.data]

    perf = {r["id"]: r for r in rows("perf")}
    main = {r["id"]: r for r in rows("perf_debug_main")}
    source = {r["id"]: r for r in rows("source")}
    out: dict[int, VelaLayerInfo] = {}
    for r in rows("perf_debug"):
        size = int(r.get("weight_total_bytes") or 0)
        p = perf.get(r["id"])
        if not size or p is None or p.get("source_id") not in source:
            continue
        key = int(source[p["source_id"]]["ext_key"])
        m = main.get(r["id"], {})
        offsets = tuple(int(x) for x in str(r.get("ofm_depth_slices", "")).split("|") if x != "")
        cfg = BlockConfig(
            traversal=Traversal(m.get("traversal", "DepthFirst")),
            ofm_block_depth=int(m.get("ofm_block_c") or DEFAULT_OFM_BLOCK_DEPTH),
            depth_offsets=offsets or None,
            ifm_block_depth=int(m.get("ifm_block_c") or 0),
            ofm_ublock_depth=int(m.get("ofm_ublock_c") or 0),
            source="vela",
            weight_format=vela_format(str(r.get("weight_format", ""))),
        )
        info = VelaLayerInfo(key, p.get("operator", ""), cfg, str(r.get("weight_format", "")), size,
                             int(r.get("weight_distinct") or 0), int(r.get("weight_zero") or 0),
                             (int(r.get("kernel_stride_y") or 1), int(r.get("kernel_stride_x") or 1)),
                             (int(r.get("kernel_dilation_y") or 1), int(r.get("kernel_dilation_x") or 1)))
        part = (info.config, info.stride, info.dilation)
        if key in out:  # an operator Vela split in several: the first part's config, all parts, summed sizes
            prev = out[key]
            info = replace(prev, encoded_bytes=prev.encoded_bytes + size, zeros=prev.zeros + info.zeros,
                           parts=(*prev.parts, part))
        else:
            info = replace(info, parts=(part,))
        out[key] = info
    return out, int(compiled.perf_report.encodedWeights)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class VelaOpBlock:
    """One NPU operation of a Vela compile with its block configuration (optimisation database rows
    `perf`, `perf_debug`, `perf_debug_main`): the query the block search saw and what it chose."""

    op_id: int
    op_index: int  # input model operator (subgraph 0) it came from, -1 if unknown
    operator: str  # Vela's operator name after lowering ("Conv2D", "Add", "AvgPool", ...)
    ifm: tuple[int, int, int]  # the stripe the block was chosen for (H, W, C)
    ifm2: tuple[int, int, int] | None
    ofm: tuple[int, int, int]
    kernel: tuple[int, int]  # (H, W), undilated
    stride: tuple[int, int]
    dilation: tuple[int, int]
    ifm_bits: int
    ofm_bits: int
    weight_format: str
    transposed: bool  # the OFM is written transposed or reversed
    cascaded: bool  # the stripe is smaller than the OFM (Vela cascaded the operation)
    ofm_block: tuple[int, int, int]
    ifm_block: tuple[int, int, int]
    ublock: tuple[int, int, int]
    traversal: str
    transpose: str = "None"  # Vela's transpose of the OFM ("NCWH": OFM H, W, C are the IFM's C, W, H)
    ofm_format: str = "NHWC"


DTYPE_BITS = {"Int8": 8, "UInt8": 8, "Int16": 16, "UInt16": 16, "Int32": 32, "UInt32": 32, "Int48": 64, "Int64": 64,
              "Bool8": 8}


def vela_op_blocks(compiled: object) -> list[VelaOpBlock]:
    """Every NPU operation Vela ran with its own block configuration, in the order of the database."""
    tables = compiled.opt_database.tables  # type: ignore[attr-defined]

    def rows(name: str) -> dict[str, dict[str, str]]:
        t = tables.get(name)
        return {} if t is None else {r[0]: dict(zip(t.header, r, strict=False)) for r in t.data}

    debug, main, source = rows("perf_debug"), rows("perf_debug_main"), rows("source")

    def shape(r: dict[str, str], name: str) -> tuple[int, int, int]:
        s = tuple(int(r.get(f"{name}_stripe_{a}") or 0) for a in "hwc")
        return s if min(s) > 0 else tuple(int(r.get(f"{name}_shape_{a}") or 0) for a in "hwc")  # type: ignore[return-value]

    def triple(r: dict[str, str], name: str) -> tuple[int, int, int]:
        return tuple(int(r.get(f"{name}_{a}") or 0) for a in "hwc")  # type: ignore[return-value]

    out = []
    for pid, p in rows("perf").items():
        m, d = main.get(pid), debug.get(pid)
        if m is None or d is None or not m.get("ofm_block_h"):
            continue
        ifm2 = shape(d, "ifm2")
        ofm = shape(d, "ofm")
        full = tuple(int(d.get(f"ofm_shape_{a}") or 0) for a in "hwc")
        src = source.get(p.get("source_id", ""), {})
        out.append(VelaOpBlock(
            int(pid), int(src.get("ext_key") or -1), p.get("operator", ""), shape(d, "ifm"),
            ifm2 if min(ifm2) > 0 else None, ofm,
            (int(d.get("kernel_size_y") or 1), int(d.get("kernel_size_x") or 1)),
            (int(d.get("kernel_stride_y") or 1), int(d.get("kernel_stride_x") or 1)),
            (int(d.get("kernel_dilation_y") or 1), int(d.get("kernel_dilation_x") or 1)),
            DTYPE_BITS.get(d.get("ifm_dtype", ""), 8), DTYPE_BITS.get(d.get("ofm_dtype", ""), 8),
            d.get("weight_format", ""), d.get("transpose_type", "None") not in ("None", "")
            or d.get("reverse_type", "None") not in ("None", ""), ofm != full,
            triple(m, "ofm_block"), triple(m, "ifm_block"), triple(m, "ofm_ublock"), m.get("traversal", ""),
            d.get("transpose_type") or "None", d.get("ofm_format") or "NHWC"))
    return out


@dataclass(frozen=True)
class VelaFm:
    """A feature map of one Vela operation as its performance database records it."""

    shape: tuple[int, int, int]  # (H, W, C) of the operation's slice
    bits: int
    nhwc: bool
    memory: str  # "" when the tensor needs no allocation (a chained operation's internal buffer)


@dataclass(frozen=True)
class VelaOpPerf:
    """One Vela NPU operation's block configuration and its own cycle and access figures
    (`perf`, `perf_debug`, `perf_debug_main`), keyed by Vela's scheduled operation id."""

    op_id: str
    operator: str  # Vela's operator name (Conv2D, DepthwiseConv2D, MaxPool, Add, ...)
    op_index: int | None  # the input model's operator (subgraph 0), None for Vela's own operations
    ifm: VelaFm
    ifm2: VelaFm | None
    ofm: VelaFm
    kernel: tuple[int, int]  # (H, W), undilated
    ofm_block: tuple[int, int, int]
    ifm_block: tuple[int, int, int]
    ublock: tuple[int, int, int]
    traversal: str  # DepthFirst | PartKernel | Depthwise
    weight_format: str
    weight_buffering: str  # "" when the weights are read in place
    mac_cycles: int  # MAC cycles per block x blocks + one block's output stage
    ao_cycles: int
    cmd_cycles: int  # command-issue floor per block
    npu_cycles: int
    op_cycles: int  # max(NPU cycles, each memory's access cycles)
    access_cycles: dict[str, int]
    chained: tuple[str, ...] = ()  # operators chained onto this one's output stage (Vela's op group)


def op_perf_from_compiled(compiled: object) -> list[VelaOpPerf]:
    """Every NPU operation with a block configuration in a compile made with the optimisation
    database on (U85: `perf_debug_main` has the block and the per-block cycle terms)."""
    tables = compiled.opt_database.tables  # type: ignore[attr-defined]

    def by_id(name: str) -> dict[str, dict[str, str]]:
        t = tables.get(name)
        return {} if t is None else {r[0]: dict(zip(t.header, r, strict=False)) for r in t.data}

    def num(d: dict[str, str], key: str, default: int = 0) -> int:
        return int(d.get(key) or default)

    def shape(d: dict[str, str], key: str) -> tuple[int, int, int]:
        return (num(d, f"{key}_h"), num(d, f"{key}_w"), num(d, f"{key}_c"))

    def fm(d: dict[str, str], key: str) -> VelaFm:
        s = shape(d, f"{key}_slice")
        return VelaFm(s if any(s) else shape(d, f"{key}_shape"), DTYPE_BITS.get(d.get(f"{key}_dtype", ""), 8),
                      d.get(f"{key}_format") == "NHWC", d.get(f"{key}_memory", ""))

    perf, debug, main = by_id("perf"), by_id("perf_debug"), by_id("perf_debug_main")
    source = {r["id"]: r for r in by_id("source").values()}
    chained: dict[str, list[str]] = {}
    for sub_id, g in by_id("group").items():
        chained.setdefault(g["group_id"], []).append(perf.get(sub_id, {}).get("operator", ""))
    mems = [h.removesuffix("_ac") for h in (tables["perf"].header if "perf" in tables else []) if h.endswith("_ac")]
    out = []
    for op_id, m in main.items():
        p, d = perf.get(op_id), debug.get(op_id)
        if p is None or d is None:
            continue
        src = source.get(p.get("source_id", ""))
        key = src.get("ext_key", "") if src else ""
        out.append(VelaOpPerf(
            op_id, p.get("operator", ""), int(key) if key else None, fm(d, "ifm"),
            fm(d, "ifm2") if d.get("ifm2_dtype") else None, fm(d, "ofm"),
            (num(d, "kernel_size_y", 1), num(d, "kernel_size_x", 1)),
            shape(m, "ofm_block"), shape(m, "ifm_block"), shape(m, "ofm_ublock"), m.get("traversal", ""),
            d.get("weight_format", ""), "" if d.get("weight_buffering", "None") in ("", "None") else d["weight_buffering"],
            num(m, "mac_cycles"), num(m, "ao_cycles"), num(m, "cmd_cycles"), num(p, "npu_cycles"), num(p, "op_cycles"),
            {mem: num(p, f"{mem}_ac") for mem in mems if num(p, f"{mem}_ac")}, tuple(chained.get(op_id, ()))))
    return out


_ELEMENTWISE_NAMES = frozenset((
    "Add", "Sub", "Abs", "Mul", "Minimum", "Maximum", "LeakyRelu", "CLZ", "SHL", "SHR", "Div", "LogicalAnd", "LogicalOr",
    "LogicalXor", "LogicalNot", "And", "Or", "Xor", "Not", "Asr", "Equal", "Greater", "GreaterEqual", "NotEqual",
    "AndNot"))
_NAMED_OPS = {
    "Conv2D": U85Op.CONV, "DepthwiseConv2D": U85Op.DEPTHWISE, "FullyConnected": U85Op.VECTOR_PRODUCT,
    "ReduceSum": U85Op.REDUCE_SUM, "ReduceMin": U85Op.REDUCE_MINMAX, "ReduceMax": U85Op.REDUCE_MINMAX,
    "ReduceAny": U85Op.REDUCE_MINMAX, "ReduceAll": U85Op.REDUCE_MINMAX, "ArgMax": U85Op.ARGMAX,
    "Resize": U85Op.RESIZE, "MemoryCopy": U85Op.MEMORY_COPY,
}


def u85_op_of(vela_operator: str) -> U85Op:
    """The U85 operation one of Vela's lowered operators ("Conv2D", "Add", "AvgPool", "Sigmoid"...) runs as:
    pooling, activations, LUTs and rescales all run as pooling operations."""
    if vela_operator in _ELEMENTWISE_NAMES:
        return U85Op.ELEMENTWISE
    return _NAMED_OPS.get(vela_operator, U85Op.POOL)


def vela_query(r: VelaOpBlock) -> U85Query:
    """The U85 block-search query of one of Vela's operations (a transpose searches its OFM in the IFM's
    axis order, the order Vela's block search sees it in)."""
    ofm, limit, brick = r.ofm, OFM_BLOCK_MAX, "C"
    if r.operator == "Transpose" and len(r.transpose) == 4:
        ofm, perm = r.ifm, r.transpose[1:]  # the IFM axis each OFM axis (H, W, C) comes from
        limit = tuple(OFM_BLOCK_MAX[perm.index(a)] if a in perm else m
                      for a, m in zip("HWC", OFM_BLOCK_MAX, strict=True))  # type: ignore[assignment]
        brick = perm[2] if r.ofm_format == "NHCWB16" else "C"
    return U85Query(u85_op_of(r.operator), r.ifm, ofm, r.kernel, r.stride, r.dilation, r.ifm_bits, r.ofm_bits,
                    r.ifm2, "Sparse2_4" in r.weight_format, resize_scale_x=(r.ofm[1], r.ifm[1]), block_max=limit,
                    brick_axis=brick)
