"""An 8-bit Ethos-U85 SOFTMAX as the NPU operations Vela lowers it into, each costed by `u85_perf`.

Vela runs it in three stages: the row maximum (a max pooling over the channels, after a transpose
that makes the pooled axis a kernel column when the rows are long), the exponentials (subtract the
maximum and look up exp, a shift, the channel sum), a reciprocal of each row's sum on the rows alone
(count leading zeros, a normalising shift and three Newton-Raphson steps, in 32-bit), and the final
scaling multiply with its output shift. Operators Vela chains onto one operation (the table lookup,
the shifts, the Newton-Raphson products) run through its output stage in the same pass: their
output-stage rates add up, with the chaining buffer's rate for every intermediate 32-bit result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u import u85_perf as u85p
from hwopt.targets.ethos_u.u85 import _deepen, u85_macs
from hwopt.targets.ethos_u.u85_blocks import OFM_BLOCK_MAX, U85Op, U85Query, find_u85_block
from hwopt.targets.ethos_u.weight_layout import Traversal
from hwopt.targets.geometry import LayerCost, LayerGeometry

Shape = tuple[int, int, int]
TRANSPOSE_MIN_DEPTH = 16  # Vela transposes the rows first when the pooled axis becomes at least this deep


@dataclass(frozen=True)
class Step:
    """One lowered operation: its block-search query, the operation to time, the inputs its chained
    operators read beside it, and whether its OFM write is counted (Vela counts none for a chain
    that ends in a shift to the narrow output)."""

    query: U85Query
    op: u85p.U85Operation
    chained_inputs: tuple[u85p.Fm, ...] = ()
    writes: bool = True


def _memory(target: Target, shape: Shape, bits: int, io: bool) -> str:
    """Where one of the lowered tensors lives: a graph input or output in the arena, an intermediate
    in the SRAM when it fits there."""
    if io or target.arena_memory == "Sram":
        return target.arena_memory
    return "Sram" if math.prod(shape) * bits // 8 <= target.arena_limit else target.arena_memory


class _Lowering:
    """Collects the operations of one lowered softmax: tensors placed by `_memory`, output-stage rates
    by element size (Vela's table for the configuration)."""

    def __init__(self, g: LayerGeometry, target: Target) -> None:
        self.target = target
        self.steps: list[Step] = []
        out = u85p.output_cycles_per_element
        self.r8, self.r16, self.r32 = out(target, 8, 8), out(target, 16, 16), out(target, 32, 32)
        self.r_cb = out(target, 32, 32, to_chain_buffer=True)  # a 32-bit result into the chaining buffer
        self.r_bin = out(target, 32, 32, True)  # a binary operation on 32-bit inputs, 32-bit result
        self.r_narrow = out(target, 32, 8, True)  # the same, narrowed to 8 or 16 bits
        self.r_act = u85p.hardware(target).activation_cycles[0]  # a fused table lookup
        self.scalar = u85p.Fm((1, 1, 1), 32, True, target.const_memory)
        # the reciprocal runs on the row sums alone (deepened; a reshaped row is stored NHWC)
        self.row = (g.ifm[0], g.ifm[1], 1)
        self.rows = _deepen(self.row)

    def fm(self, shape: Shape, bits: int, nhwc: bool, io: bool = False, memory: str | None = None) -> u85p.Fm:
        return u85p.Fm(shape, bits, nhwc, memory or _memory(self.target, shape, bits, io))

    def add(self, op: U85Op, ifm: u85p.Fm, ofm: u85p.Fm, ao: float, ifm2: u85p.Fm | None = None,
            kernel: tuple[int, int] = (1, 1), chained: tuple[u85p.Fm, ...] = (), writes: bool = True,
            block_max: Shape = OFM_BLOCK_MAX, brick_axis: str = "C", search_ofm: Shape | None = None) -> None:
        q = U85Query(op, ifm.shape, search_ofm or ofm.shape, kernel, ifm_bits=ifm.bits, ofm_bits=ofm.bits,
                     ifm2=ifm2.shape if ifm2 is not None else None, block_max=block_max, brick_axis=brick_axis)
        self.steps.append(Step(q, u85p.U85Operation(op, ifm, ofm, kernel, ifm2, ao_per_element=ao), chained, writes))

    def row_max(self, x: u85p.Fm, transpose: bool, rate: float) -> u85p.Fm:
        """The maximum of each row of channels: pooled along a row of channels, or (long rows of 8-bit
        data) after a transpose that makes the channels the height, pooled down a kernel column. The
        block search sees a transpose's OFM in its IFM's axis order."""
        h, w, c = x.shape
        if transpose:
            t_shape, perm = ((c, h, w), "CHW") if w > 1 else ((c, 1, h), "CWH")
            act = u85p.hardware(self.target).activation_cycles[0 if w > 1 else 1]
            limit = tuple(OFM_BLOCK_MAX[perm.index(a)] for a in "HWC")
            t = self.fm(t_shape, x.bits, False)
            self.add(U85Op.POOL, x, t, act, block_max=limit, brick_axis=perm[2],  # type: ignore[arg-type]
                     search_ofm=x.shape)
            self.add(U85Op.POOL, t, self.fm((1, t_shape[1], t_shape[2]), x.bits, True), rate, kernel=(c, 1))
        else:
            n = h * w
            self.add(U85Op.POOL, self.fm((n, c, 1), x.bits, True, memory=x.memory), self.fm((n, 1, 1), x.bits, True),
                     rate, kernel=(1, c))
        return self.fm(self.row, x.bits, True)


def _steps_int8(g: LayerGeometry, target: Target) -> list[Step]:
    """An 8-bit softmax: max; x - max with the exp table (fused) to 32 bits; a shift; the channel sum;
    count leading zeros, normalising shift, three Newton-Raphson steps; the scaling multiply."""
    lo = _Lowering(g, target)
    h, w, _ = g.ifm
    x = lo.fm(g.ifm, 8, True, g.ifm_in_arena)
    long_rows = w >= TRANSPOSE_MIN_DEPTH if w > 1 else h >= TRANSPOSE_MIN_DEPTH
    mx = lo.row_max(x, h * w > 1 and long_rows, lo.r8)
    e = lo.fm(g.ifm, 32, False)
    lo.add(U85Op.ELEMENTWISE, x, e, max(lo.r8, lo.r_act), ifm2=mx)
    brick = lo.fm(lo.rows, 32, False)
    flat = lo.fm(lo.rows, 32, True) if lo.rows != lo.row else brick
    e2 = lo.fm(g.ifm, 32, True)
    lo.add(U85Op.ELEMENTWISE, e, e2, lo.r_bin, ifm2=lo.scalar)
    total = lo.fm(lo.row, 32, flat.nhwc)
    lo.add(U85Op.REDUCE_SUM, e2, total, lo.r32)
    lo.add(U85Op.ELEMENTWISE, flat, brick, lo.r32)  # count leading zeros
    lo.add(U85Op.ELEMENTWISE, lo.scalar, flat, lo.r_bin, ifm2=brick)  # headroom
    # headroom - 1, then the sum shifted left by it (chained)
    lo.add(U85Op.ELEMENTWISE, brick, brick, lo.r_cb + lo.r_bin, ifm2=lo.scalar, chained=(flat,))
    lo.add(U85Op.ELEMENTWISE, brick, brick, lo.r_cb + lo.r_bin, ifm2=lo.scalar)  # x * -32/17 + 48/17
    for i in range(3):  # Newton-Raphson: x * d, 1 - ., x * ., * 4 (chained); + x
        lo.add(U85Op.ELEMENTWISE, brick, brick, 3 * lo.r_cb + lo.r_bin, ifm2=brick, chained=(brick,))
        lo.add(U85Op.ELEMENTWISE, brick, flat if i == 2 else brick, lo.r_bin, ifm2=brick)
    # the scaling multiply and its output shift by the row's headroom (chained) into the OFM
    out_mem = _memory(target, g.ofm, 8, g.ofm_in_arena)
    lo.add(U85Op.ELEMENTWISE, e, lo.fm(g.ofm, 32, False, memory=out_mem), lo.r_cb + lo.r_narrow, ifm2=total,
           chained=(total,), writes=False)
    return lo.steps


def _steps_int16(g: LayerGeometry, target: Target) -> list[Step]:
    """A 16-bit softmax: max; x - max, scaled and offset to 16 bits with the interpolating exp table
    (chained); the channel sum; the reciprocal's shifts and a 1 / (1 + x) table on the rows; the
    scaling multiply and its shift."""
    lo = _Lowering(g, target)
    x = lo.fm(g.ifm, 16, True, g.ifm_in_arena)
    mx = lo.row_max(x, False, lo.r16)
    e = lo.fm(g.ifm, 16, False)
    lo.add(U85Op.ELEMENTWISE, x, e, 2 * lo.r_cb + max(lo.r_cb, lo.r_act), ifm2=mx)  # -, *, + and the table
    brick = lo.fm(lo.rows, 32, False)
    flat = lo.fm(lo.rows, 32, True) if lo.rows != lo.row else brick
    total = lo.fm(lo.row, 32, flat.nhwc)
    lo.add(U85Op.REDUCE_SUM, e, total, lo.r32)
    lo.add(U85Op.ELEMENTWISE, flat, brick, lo.r32)  # count leading zeros
    lo.add(U85Op.ELEMENTWISE, lo.scalar, flat, lo.r_bin, ifm2=brick)  # 31 - headroom
    # 1 << that, the sum minus it, shifted left by the headroom and right by 15 (chained)
    lo.add(U85Op.ELEMENTWISE, lo.scalar, brick, 3 * lo.r_cb + lo.r_bin, ifm2=flat, chained=(flat, brick))
    recip = lo.fm(lo.rows, 16, lo.rows != lo.row)
    lo.add(U85Op.ELEMENTWISE, brick, recip, max(lo.r_narrow, lo.r_act), ifm2=lo.scalar)  # - 32768, 1/(1+x)
    out_mem = _memory(target, g.ofm, 16, g.ofm_in_arena)
    lo.add(U85Op.ELEMENTWISE, e, lo.fm(g.ofm, 32, False, memory=out_mem), lo.r_cb + lo.r_narrow,
           ifm2=lo.fm(lo.row, 16, recip.nhwc), chained=(total,), writes=False)
    return lo.steps


def softmax_steps(g: LayerGeometry, target: Target) -> list[Step]:
    """The operations of a softmax over the channels of `g.ifm` (batch folded into height)."""
    return _steps_int8(g, target) if g.itemsize == 1 else _steps_int16(g, target)


def softmax_cost(g: LayerGeometry, target: Target) -> LayerCost | None:
    """An 8-bit softmax over channels costed as its lowered operations one after another, each the
    larger of its NPU cycles and its busiest memory's access cycles; None for other softmaxes."""
    if g.op != "SOFTMAX" or g.itemsize not in (1, 2) or g.chained or min(*g.ifm) < 1 or g.ifm != g.ofm:
        return None
    total = memory_bound = 0
    mem_total: dict[str, int] = {}
    macs = u85_macs(target)
    for st in softmax_steps(g, target):
        blk = find_u85_block(st.query, macs)
        cfg = u85p.U85Config(blk.ofm, blk.ifm, blk.ublock, blk.traversal is Traversal.PART_KERNEL,
                             blk.acc_bits == 64)
        op = u85p.op_cycles(st.op, cfg, target).total
        traffic = [t for t in u85p.feature_map_traffic(st.op, cfg, target, u85p.element_access(st.op, cfg))
                   if st.writes or t.channel is not u85p.Channel.WRITE]
        for f in st.chained_inputs:  # a chained operator's scalar input is encoded, the rest are read
            if math.prod(f.shape) > 1:
                n = math.prod(f.shape[:2]) * (f.shape[2] if f.nhwc else -(-f.shape[2] // 16) * 16)
                traffic.append(u85p.Traffic(f.memory, u85p.Channel.IFM_STREAM, "fm",
                                            u85p.transfer_bytes(target, f, cfg.ifm, n, True)))
        mem = u85p.access_cycles(target, traffic)
        busiest = max(mem.values(), default=0)
        total += max(op, busiest)
        memory_bound += busiest if busiest > op else 0
        for m, v in mem.items():
            mem_total[m] = mem_total.get(m, 0) + v
    # the operations run one after another: the NPU is busy for all of it (compute = cycles); the
    # explanation names what bounds most of that time
    bound = "memory" if 2 * memory_bound > total else "compute"
    sram = (g.ifm_elements + g.ofm_elements) * g.itemsize if "Sram" in mem_total else 0
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", total, total, mem_total, 0, g.macs, None, sram,
                     bound)
