"""Ethos-U85 depthwise convolution with a channel multiplier M > 1, as Vela lowers it.

Vela runs M depthwise convolutions, each over all IFM channels with every M-th filter, writing the
M results as the batches of one [M, H, W, C] tensor (NHWC), then transposes that to [H, W, C, M]
(the TFLite channel order). The U85 transposes only within three axes, so Vela sorts the four axes
by swapping two at a time, each swap a chain of 3-D transposes between reshapes of the tensor; the
number of transposes and their shapes follow from the shape alone. Every operation is costed by the
U85 per-operation model (`u85_perf`) on the block of the U85 block search.
"""

from __future__ import annotations

import math
from dataclasses import replace

from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u import u85_perf as u85p
from hwopt.targets.ethos_u.cost_common import io_memories
from hwopt.targets.ethos_u.u85 import is_multiplier
from hwopt.targets.ethos_u.u85_blocks import OFM_BLOCK_MAX, U85Op, U85Query
from hwopt.targets.ethos_u.u85_ops import intermediate_memory, pool_pass, vela_style_cost
from hwopt.targets.geometry import LayerCost, LayerGeometry

Shape3 = tuple[int, int, int]
# a 3-D transpose by the two axes it swaps: the OFM's axes as IFM axes (Vela's transpose types)
_SWAP_TYPE = {(0, 1): "WHC", (1, 2): "HCW", (0, 2): "CWH"}
_HALF_RATE = frozenset(["WHC", "CWH"])  # H <-> W moves run the output stage at half rate


def _prod(s: list[int], lo: int, hi: int) -> int:
    return math.prod(s[lo:hi]) if hi > lo else 1


def _to3d(shape: list[int], axes: tuple[int, int, int]) -> Shape3:
    """Vela's reshape of an N-D shape to 3-D, the axes grouped `axes[0]`, `axes[1]`, `axes[2]` from the left."""
    a, b = axes[0], axes[0] + axes[1]
    return (_prod(shape, 0, a), _prod(shape, a, b), _prod(shape, b, len(shape)))


def _swap3d(shape3: Shape3, a: int, b: int) -> tuple[Shape3, str]:
    return shape3, _SWAP_TYPE[(a, b)]


def swap_axes(shape: list[int], a: int, b: int) -> list[tuple[Shape3, str]]:
    """The 3-D transposes (IFM shape, OFM axes) Vela emits to swap axes a < b of `shape` (updated)."""
    n = len(shape)
    if n <= 3 or (a >= n - 3 and _prod(shape, 0, n - 3) == 1):
        s3 = (*[1] * (3 - n), *shape[-3:])  # the three innermost axes (all else is ones)
        ops = [_swap3d((s3[0], s3[1], s3[2]), a - (n - 3), b - (n - 3))]
        shape[a], shape[b] = shape[b], shape[a]
        return ops
    if a == 0 and b == 1:  # left-anchored: (A, B, rest)
        ops = [_swap3d(_to3d(shape, (1, 1, n - 2)), 0, 1)]
        shape[a], shape[b] = shape[b], shape[a]
        return ops
    if a == n - 2 and b == n - 1:  # right-anchored: (rest, A, B)
        ops = [_swap3d(_to3d(shape, (n - 2, 1, 1)), 1, 2)]
        shape[a], shape[b] = shape[b], shape[a]
        return ops
    if a != 0:  # move A leftmost, swap, move it back
        ops = [_swap3d(_to3d(shape, (a, 1, n - a - 1)), 0, 1)]
        shape.insert(0, shape.pop(a))
        ops += swap_axes(shape, 0, b)
        ops.append(_swap3d(_to3d(shape, (1, a, n - a - 1)), 0, 1))
        shape.insert(a, shape.pop(0))
        return ops
    if b != n - 1:  # move B rightmost, swap, move it back
        ops = [_swap3d(_to3d(shape, (b, 1, n - b - 1)), 1, 2)]
        shape.append(shape.pop(b))
        ops += swap_axes(shape, 0, n - 1)
        ops.append(_swap3d(_to3d(shape, (b, n - b - 1, 1)), 1, 2))
        shape.insert(b, shape.pop())
        return ops
    ops = [_swap3d(_to3d(shape, (1, n - 2, 1)), 0, 2)]  # leftmost <-> rightmost
    shape[a], shape[b] = shape[b], shape[a]
    return ops


def transpose_chain(shape: list[int], perm: list[int]) -> list[tuple[Shape3, str]]:
    """Vela's decomposition of a transpose (OFM axis i is IFM axis perm[i]) into 3-D transposes: a
    selection sort of the axes, each swap `swap_axes`."""
    shape, at = list(shape), list(range(len(perm)))  # the IFM axis now at each position
    ops: list[tuple[Shape3, str]] = []
    for axis in range(len(perm)):
        i = at.index(perm[axis])
        if i != axis:
            ops += swap_axes(shape, axis, i)
            at[axis], at[i] = at[i], at[axis]
    return ops


def _permute(shape: Shape3, axes: str) -> Shape3:
    return tuple(shape["HWC".index(a)] for a in axes)  # type: ignore[return-value]


def _same_bricks(a: Shape3, b: Shape3) -> bool:
    """Two views of one tensor address it alike in 16-channel bricks (same width and depth; heights
    and batches stack): only then may Vela store it NHCWB16."""
    return a[1:] == b[1:]


def _transpose_cost(ifm: u85p.Fm, ofm: u85p.Fm, axes: str, act_rate: float, target: Target
                    ) -> tuple[int, int, dict[str, int]]:
    """(cycles, NPU cycles, access cycles per memory) of one 3-D transpose, a 1x1 pooling pass whose
    block is searched in the IFM's axis order."""
    limit = (OFM_BLOCK_MAX[axes.index("H")], OFM_BLOCK_MAX[axes.index("W")], OFM_BLOCK_MAX[axes.index("C")])
    brick = "C" if ofm.nhwc else axes[2]
    query = U85Query(U85Op.POOL, ifm.shape, ifm.shape, ifm_bits=ifm.bits, ofm_bits=ofm.bits, block_max=limit,
                     brick_axis=brick)
    return pool_pass(ifm, ofm, act_rate, target, query)


def multiplier_cost(g: LayerGeometry, target: Target) -> LayerCost | None:
    """A depthwise convolution with channel multiplier M > 1 as the M depthwise convolutions and the
    transposes Vela runs it as (one input channel: a plain convolution, costed elsewhere)."""
    if g.chained or not is_multiplier(g):
        return None
    oh, ow, c = g.ofm[0], g.ofm[1], g.ifm[2]
    m = g.ofm[2] // c
    bits = 8 * g.itemsize
    ifm_mem, ofm_mem = io_memories(g, target)
    mid = intermediate_memory(m * oh * ow * c * g.itemsize, target)
    weights = g.weights and replace(g.weights, count=max(1, g.weights.count // m))
    part = replace(g, ofm=(oh, ow, c), weights=weights, macs=g.macs // m, chain=())
    chain = transpose_chain([m, oh, ow, c], [1, 2, 3, 0])
    written: Shape3 = (m * oh, ow, c)  # each part writes its batch of the intermediate [M, H, W, C] tensor
    nhwc = not _same_bricks(written, chain[0][0])
    p = vela_style_cost(part, target, ofm=u85p.Fm(part.ofm, bits, nhwc, mid))  # M alike parts
    if p is None:
        return None
    total, npu = m * p.cycles, m * p.compute_cycles
    mem_total = {k: m * v for k, v in p.memory_cycles.items()}
    hw = u85p.hardware(target)
    for n, (shape, axes) in enumerate(chain):
        out = _permute(shape, axes)
        last = n == len(chain) - 1
        reader = chain[n + 1][0] if not last else (oh, ow, m * c)
        in_fm = u85p.Fm(shape, bits, not _same_bricks(written, shape), mid)
        out_nhwc = not _same_bricks(out, reader) or (last and g.ofm_in_arena)
        out_fm = u85p.Fm(out, bits, out_nhwc, ofm_mem if last else mid)
        rate = hw.activation_cycles[1 if axes in _HALF_RATE else 0]
        cycles, op, mem = _transpose_cost(in_fm, out_fm, axes, rate, target)
        total, npu = total + cycles, npu + op
        for k, v in mem.items():
            mem_total[k] = mem_total.get(k, 0) + v
        written = out
    bound = "compute" if total == npu else "memory"
    sram = (g.ifm_elements + g.ofm_elements) * g.itemsize if "Sram" in (ifm_mem, ofm_mem) else 0
    encoded = m * p.encoded_weight_bytes if p.encoded_weight_bytes else None
    return LayerCost(g.subgraph, g.op_index, g.op, "npu", total, npu, mem_total, m * p.weight_cycles, g.macs,
                     encoded, sram, bound)
