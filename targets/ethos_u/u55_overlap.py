"""Ethos-U55/U65 weight transfers as Vela schedules them: which weights it buffers in the staging memory,
and how much of each transfer the preceding NPU operation hides."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u.cost_common import encoded_weight_bytes
from hwopt.targets.ethos_u.u55 import (
    LUT_BYTES,
    follows_vela,
    is_lookup,
    mean_scaling,
    npu_query,
    vela_style_cost,
    weights_buffered,
)
from hwopt.targets.ethos_u.u55_perf import BIAS_BYTES, NpuOp, find_block, weight_refetch
from hwopt.targets.geometry import LayerCost, LayerGeometry, cdiv


@dataclass(frozen=True)
class WeightStream:
    """A buffered weight stream's DMA into the staging memory, in cycles."""

    full: float  # all weights and scales
    first: float  # the first depth slice (fetched before the operation can start)
    last_share: float  # share of the operation's cycles spent on the last depth slice
    refetch: int = 1  # times the operation reads them (once per OFM block in H x W)
    total: int = 0  # bytes of weights and scales
    slices: int = 1  # depth slices Vela expects (OFM depth over the block's)


def _last_pass_cycles(g: LayerGeometry, c: LayerCost, target: Target) -> int:
    """Cycles of the last NPU operation an operator runs as: the next operator's weight transfer hides
    under that one only (a spatial mean's scaling pass, not its depthwise sum)."""
    if g.op == "MEAN" and follows_vela(g) and npu_query(g) is not None:
        return min(mean_scaling(g, target), c.compute_cycles)
    return c.compute_cycles


def weight_stream(g: LayerGeometry, target: Target) -> WeightStream | None:
    """The DMA of an operator's weights into the staging memory, or None when they are read in place."""
    q = npu_query(g)
    const, staging = target.const_memory, target.staging_memory
    if q is None or q.op not in (NpuOp.CONV, NpuOp.DEPTHWISE, NpuOp.VECTOR) or const in (staging, "OnChipFlash"):
        return None
    blk = find_block(q, target)
    encoded = encoded_weight_bytes(g, target)
    if not encoded or not weights_buffered(g, q, blk, target):
        return None
    oc = g.ofm[2]
    depth = min(blk.ofm[2], oc)
    total = encoded + BIAS_BYTES * oc
    slices = cdiv(oc, depth)
    last = oc - (slices - 1) * depth
    return WeightStream(_mem_to_mem(target, total, staging), _mem_to_mem(target, total * depth / oc, staging),
                        last / oc, weight_refetch(q, blk), total, oc // max(blk.ofm[2], 1))


def _left_in_place(ws: WeightStream, prev: float, target: Target) -> bool:
    """Vela's choice for weights read once: it buffers them only when reading them from the staging
    memory after the transfer, less what the preceding operation hides, beats reading them where they
    are stored, or when they span more than two depth slices (then the slices overlap)."""
    if ws.refetch > 1 or ws.slices > 2:
        return False
    const, staging = target.const_memory, target.staging_memory

    def read(mem: str) -> float:
        return ws.total / target.bandwidth(mem) + target.memory_config(mem).read_latency

    return int(read(staging)) + max(int(ws.full) - int(prev), 0) >= int(read(const))


def _mem_to_mem(target: Target, n: float, dest: str | None = None) -> float:
    """Cycles of a DMA of `n` bytes from the constant memory: the slower of reading and writing them
    (into the shared buffer when `dest` is None: it is never the slower side)."""
    src = target.memory_config(target.const_memory)
    read = n / target.bandwidth(target.const_memory) + src.read_latency
    if dest is None:
        return read
    return max(read, n / target.bandwidth(dest) + target.memory_config(dest).write_latency)


def overlap_weight_streams(geometry: list[LayerGeometry], costs: list[LayerCost], target: Target) -> list[LayerCost]:
    """Add each buffered weight stream's visible DMA time, as Vela schedules it: the stream is fetched
    while the preceding NPU operation runs; what that does not hide delays the operation (the first
    slice before it starts, the rest while its slices run)."""
    out = []
    prev, sg = 0, -1
    for g, c in zip(geometry, costs, strict=True):
        if g.subgraph != sg:
            prev, sg = 0, g.subgraph
        active = c.placement == "npu" and c.cycles > 0
        ws = weight_stream(g, target) if active else None
        if ws is not None and _left_in_place(ws, prev, target):
            c, ws = vela_style_cost(g, target, in_place=True) or c, None
        op = c.compute_cycles
        npu = op
        if ws is not None:
            npu = int(max(ws.full - prev + ws.last_share * op, op + max(ws.first - prev, 0.0)))
        if active and follows_vela(g) and is_lookup(g) and g.itemsize == 1:
            # a standalone 8-bit lookup's table is copied into the shared buffer, under the preceding
            # operation when it can be (Vela's estimate charges no copy to a table fused into its
            # producer, nor to a 16-bit TANH/LOGISTIC, which the output stage computes itself)
            lut = _mem_to_mem(target, LUT_BYTES)
            npu += int(lut if ws is not None else max(lut - prev, 0.0))
        if npu > op:
            cycles = max(npu, max(c.memory_cycles.values(), default=0))
            c = replace(c, cycles=cycles, weight_cycles=npu, bound="weights" if cycles == npu else c.bound)
        if c.placement == "cpu":
            prev = 0
        elif c.cycles > 0:
            prev = _last_pass_cycles(g, c, target)
        out.append(c)
    return out
