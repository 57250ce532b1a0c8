"""Operators Vela runs on the U55/U65 as several NPU operations, each costed by the per-block model.

A concatenation or PAD is a series of 1x1 pooling copies into its output. A RESIZE, which these
NPUs cannot run as one operation, is legalised into pooling passes over an IFM the hardware
upscales 2x as it reads it (the last one with the bilinear kernel), or, for a 2x bilinear resize
with half-pixel centres, into copies that build a reflect-padded input and four interleaved 2x2
depthwise convolutions that each write every other output pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u.cost_common import fm_memories, io_memories
from hwopt.targets.ethos_u.u55_perf import NpuOp, Query, feature_map_bytes, find_block, mac_op_cycles
from hwopt.targets.geometry import LayerCost, LayerGeometry


class Where(Enum):
    """Where a pass reads or writes: the operator's IFM or OFM, an intermediate, or a constant."""

    IFM = "ifm"
    OFM = "ofm"
    INTERMEDIATE = "intermediate"
    CONST = "const"


@dataclass(frozen=True)
class NpuPass:
    """One NPU operation of a lowered operator."""

    query: Query
    src: Where
    dst: Where
    weighted: bool = False  # has its own (small) weights and scales, buffered in the staging memory


def copy_passes(g: LayerGeometry) -> list[NpuPass]:
    """A concatenation's or PAD's copies into the output (`LayerGeometry.copies`)."""
    bits = 8 * g.itemsize
    return [NpuPass(Query(NpuOp.POOL, shape, shape, (1, 1), (1, 1), bits, ifm_nhwc, ofm_nhwc),
                    Where.CONST if from_const else Where.IFM, Where.OFM)
            for shape, from_const, ifm_nhwc, ofm_nhwc in g.copies]


@dataclass(frozen=True)
class _Scale:
    """Vela's resize scale as reduced fractions n/d per axis, with the half-pixel offset."""

    hn: int
    hd: int
    wn: int
    wd: int
    oy: int
    ox: int


def _resize_scale(g: LayerGeometry, half_pixel: bool, align: bool) -> _Scale:
    (ih, iw, _), (oh, ow, _) = g.ifm, g.ofm
    hn, hd, wn, wd = oh, ih, ow, iw
    if align:  # align-corners scales by (n - 1) / (d - 1)
        if wd > 1:
            wn, wd = wn - 1, wd - 1
        if hd > 1:
            hn, hd = hn - 1, hd - 1
    gh, gw = math.gcd(hn, hd), math.gcd(wn, wd)
    hn, hd, wn, wd = hn // gh, hd // gh, wn // gw, wd // gw
    if not half_pixel:
        return _Scale(hn, hd, wn, wd, 0, 0)
    hn, hd, wn, wd = 2 * hn, 2 * hd, 2 * wn, 2 * wd
    return _Scale(hn, hd, wn, wd, hd // 2 - hn // 2, wd // 2 - wn // 2)


def resize_passes(g: LayerGeometry) -> list[NpuPass] | None:
    """The NPU operations Vela legalises a RESIZE into, or None when it cannot (the operator then
    does not run as NPU passes)."""
    (ih, iw, c), (oh, ow, _) = g.ifm, g.ofm
    bits = 8 * g.itemsize
    align = "align_corners" in g.flags
    bilinear = g.op == "RESIZE_BILINEAR" and (ih > 1 or iw > 1)
    # nearest neighbour without aligned corners follows the reference kernel's half-pixel centres
    half_pixel = "half_pixel_centers" in g.flags or (g.op == "RESIZE_NEAREST_NEIGHBOR" and not align)
    s = _resize_scale(g, half_pixel, align)
    hpc = (s.hd == 2 and s.wd == 2 and s.hn % 2 == 0 and s.wn % 2 == 0
           and s.ox == -(s.wn // 2 - 1) and s.oy == -(s.hn // 2 - 1))
    up_h, up_w = (s.hn // 2, s.wn // 2) if hpc else (s.hn, s.wn)
    remaining = max(up_h, up_w)
    aligned = (max((oh - 1) / max(ih - 1, 1), (ow - 1) / max(iw - 1, 1)) == remaining
               and not (ih == 1 and iw == 1))
    if remaining not in (2, 4, 8) or (up_h == 1 and ih != 1) or (up_w == 1 and iw != 1):
        return None
    if bilinear:
        if hpc and s.wn == 4 and s.hn == 4:
            return _half_pixel_bilinear(g)
        if s.ox or s.oy or s.wd != 1 or s.hd != 1:
            return None
    elif not (aligned or hpc):
        return None
    passes = []
    h, w, src = ih, iw, Where.IFM
    while remaining > 2:  # 2x nearest upscaling passes up to the last
        nh, nw = h * min(2, up_h), w * min(2, up_w)
        passes.append(NpuPass(Query(NpuOp.POOL, (h, w, c), (nh, nw, c), (1, 1), (1, 1), bits,
                                    g.ifm_in_arena and src is Where.IFM, False, upscale=2), src, Where.INTERMEDIATE))
        h, w, src, remaining = nh, nw, Where.INTERMEDIATE, remaining // 2
    ifm_nhwc = g.ifm_in_arena and src is Where.IFM
    if bilinear:  # an average over the upscaled neighbourhood
        last = NpuPass(Query(NpuOp.POOL, (h, w, c), g.ofm, (up_h, up_w), (1, 1), bits, ifm_nhwc, g.ofm_in_arena,
                             upscale=2), src, Where.OFM)
    elif aligned:  # a depthwise convolution picking the centre of each upscaled neighbourhood
        last = NpuPass(Query(NpuOp.DEPTHWISE, (h, w, c), g.ofm, (up_h, up_w), (1, 1), bits, ifm_nhwc,
                             g.ofm_in_arena, upscale=2), src, Where.OFM, True)
    else:
        last = NpuPass(Query(NpuOp.POOL, (h, w, c), g.ofm, (1, 1), (1, 1), bits, ifm_nhwc, g.ofm_in_arena,
                             upscale=2), src, Where.OFM)
    return [*passes, last]


def _half_pixel_bilinear(g: LayerGeometry) -> list[NpuPass]:
    """2x bilinear with half-pixel centres: the IFM copied into a 1-pixel reflect-padded buffer
    (centre, top and bottom rows, then left and right columns), then one 2x2 depthwise convolution
    per output phase over the padded buffer (all NHWC: the outputs interleave pixel by pixel)."""
    (ih, iw, c), (oh, ow, _) = g.ifm, g.ofm
    bits = 8 * g.itemsize

    def copy(shape: tuple[int, int, int], src: Where) -> NpuPass:
        ifm_nhwc = g.ifm_in_arena if src is Where.IFM else True
        return NpuPass(Query(NpuOp.POOL, shape, shape, (1, 1), (1, 1), bits, ifm_nhwc, True), src,
                       Where.INTERMEDIATE)

    phase = NpuPass(Query(NpuOp.DEPTHWISE, (ih + 1, iw + 1, c), (oh - 1, ow - 1, c), (2, 2), (1, 1), bits, True,
                          True), Where.INTERMEDIATE, Where.OFM, True)
    return [copy((ih, iw, c), Where.IFM), copy((1, iw, c), Where.IFM), copy((1, iw, c), Where.IFM),
            copy((ih + 2, 1, c), Where.INTERMEDIATE), copy((ih + 2, 1, c), Where.INTERMEDIATE), *[phase] * 4]


def lowered_passes(g: LayerGeometry) -> list[NpuPass] | None:
    """The NPU operations of an operator Vela runs as several (or as copies), else None."""
    if g.op in ("CONCATENATION", "PACK") or g.copies:
        return copy_passes(g)
    if g.op in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        return resize_passes(g)
    return None


def passes_cost(g: LayerGeometry, passes: list[NpuPass], target: Target) -> LayerCost:
    """The operations run one after another, each the larger of its NPU cycles and each memory's
    access cycles; their sum is the operator's own (compute) term."""
    ifm_mem, ofm_mem = io_memories(g, target)
    where = {Where.IFM: ifm_mem, Where.OFM: ofm_mem, Where.INTERMEDIATE: fm_memories(g, target)[1],
             Where.CONST: target.const_memory}
    latency = target.memory_config(target.staging_memory).read_latency
    total, compute = 0, 0
    mem_total: dict[str, int] = {}
    for p in passes:
        src, dst = where[p.src], where[p.dst]
        blk = find_block(p.query, target)
        op = mac_op_cycles(p.query, blk, target, src, dst, target.npu.output_stage.conv,
                           latency if p.weighted else None).total
        rd, wr = feature_map_bytes(p.query, blk, target, src, dst)
        mem = {src: rd / target.bandwidth(src)}
        mem[dst] = mem.get(dst, 0.0) + wr / target.bandwidth(dst)
        total += max(op, int(max(mem.values())))
        compute += op
        for m, v in mem.items():
            mem_total[m] = mem_total.get(m, 0) + int(v)
    bound = "compute" if total == compute else "memory"
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", total, total, mem_total, 0, g.macs, None, 0, bound)
