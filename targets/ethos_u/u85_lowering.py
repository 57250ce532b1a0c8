"""Ethos-U85 operators Vela runs as several NPU operations, each costed by Vela's U85 model (`u85_perf`).

A concatenation, PACK, PAD or copying reshape is a series of memory copies into its output (the U85
runs each as a 1x1 pooling pass at the output stage's rate, on the block of the U85 block search);
the copies run one after another, each the larger of its NPU cycles and each memory's access cycles.
"""

from __future__ import annotations

from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u import u85_perf as u85p
from hwopt.targets.ethos_u.cost_common import io_memories
from hwopt.targets.ethos_u.u85 import u85_macs
from hwopt.targets.ethos_u.u85_blocks import U85Op, U85Query, find_u85_block
from hwopt.targets.geometry import LayerCost, LayerGeometry

COPY_OPS = frozenset(["CONCATENATION", "PACK", "PAD", "PADV2"])


def copy_ops(g: LayerGeometry, target: Target) -> list[u85p.U85Operation]:
    """The memory copies Vela lowers a concatenation, PAD or reshape into (`LayerGeometry.copies`)."""
    bits = 8 * g.itemsize
    ifm_mem, ofm_mem = io_memories(g, target)
    rate = u85p.output_cycles_per_element(target, bits, bits)
    arena = target.arena_memory

    reshape = g.op not in COPY_OPS

    def memory(const: bool, io: bool, staged: str) -> str:
        # a constant from the constant memory; a reshape's copy of a graph input or output (kept
        # NHWC) reads or writes it in the arena
        return target.const_memory if const else arena if io and reshape else staged

    return [u85p.U85Operation(U85Op.POOL, u85p.Fm(shape, bits, ifm_nhwc, arena if ifm_nhwc and not const else
                                                  memory(const, ifm_nhwc, ifm_mem)),
                          u85p.Fm(shape, bits, ofm_nhwc, memory(False, ofm_nhwc, ofm_mem)), ao_per_element=rate)
            for shape, const, ifm_nhwc, ofm_nhwc in g.copies if min(shape) > 0]


def lowered_cost(g: LayerGeometry, target: Target) -> LayerCost | None:
    """The operator's cost as the NPU operations Vela lowers it into, or None when it is not one of them."""
    if g.chained or not (g.op in COPY_OPS or g.copies):
        return None
    total, compute = 0, 0
    mem_total: dict[str, int] = {}
    for q in copy_ops(g, target):
        blk = find_u85_block(U85Query(U85Op.MEMORY_COPY, q.ifm.shape, q.ofm.shape, ifm_bits=q.ifm.bits,
                                      ofm_bits=q.ofm.bits), u85_macs(target))
        cfg = u85p.U85Config(blk.ofm, blk.ifm, blk.ublock, False, blk.acc_bits == 64)
        op = u85p.op_cycles(q, cfg, target).total
        mem = u85p.access_cycles(target, u85p.feature_map_traffic(q, cfg, target, u85p.element_access(q, cfg)))
        total += max(op, max(mem.values(), default=0))
        compute += op
        for m, v in mem.items():
            mem_total[m] = mem_total.get(m, 0) + v
    bound = "compute" if total == compute else "memory"
    sram = (g.ifm_elements + g.ofm_elements) * g.itemsize if "Sram" in io_memories(g, target) else 0
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", total, compute, mem_total, 0, g.macs, None, sram, bound)
