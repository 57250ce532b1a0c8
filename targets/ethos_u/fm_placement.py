"""Ethos-U85 feature-map placement: which intermediate feature maps Vela keeps in the fast staging memory.

When the arena is off-chip (the Dedicated_Sram modes), Vela first puts every intermediate output of an NPU
pass in SRAM, then evicts to the arena what does not fit: live ranges that cross a CPU operator, those
that could never fit, and, among those competing for the same time steps, the ones with the least
feature-map traffic (an exhaustive search over each group of overlapping live ranges). An elementwise
pass reading one operand from the arena has its other operands evicted too. Before that, Vela cascades
runs of passes whose feature maps do not fit whole: their intermediates become rolling buffers in SRAM,
and the cascade's output stays in the arena.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u.cost_common import BRICK, fm_memories
from hwopt.targets.geometry import LayerGeometry, OpKind, round_up

COMPONENT = 20  # live ranges searched together at most (Vela's MAX_COMPONENT_SIZE)
_PLACED_KINDS = frozenset([OpKind.CONV, OpKind.DEPTHWISE, OpKind.FULLY_CONNECTED, OpKind.POOL,
                           OpKind.ELEMENTWISE, OpKind.LUT])


@dataclass
class _Range:
    """One intermediate feature map's live range in execution positions, its storage and its traffic."""

    op: int  # index into the geometry list of the pass writing it
    start: int
    end: int
    size: int
    access: int


def _storage(g: LayerGeometry) -> int:
    """Bytes of an intermediate feature map, stored in 16-channel bricks."""
    h, w, c = g.ofm
    return h * w * round_up(c, BRICK) * g.itemsize


class _Usage:
    """Bytes in the fast memory at each execution position."""

    def __init__(self, n: int) -> None:
        self.at = [0] * n

    def add(self, r: _Range, sign: int = 1) -> None:
        for t in range(r.start, r.end + 1):
            self.at[t] += sign * r.size

    def peak(self, r: _Range) -> int:
        return max(self.at[r.start:r.end + 1])


def _search(ranges: list[_Range], base: _Usage, most: _Usage, limit: int) -> list[bool]:
    """The live ranges to keep (True) of one group, maximising the traffic kept in the fast memory."""
    best: tuple[int, list[bool]] = (-1, [False] * len(ranges))
    keep = [False] * len(ranges)

    def visit(i: int, score: int) -> None:
        nonlocal best
        if i == len(ranges):
            if score > best[0]:
                best = (score, keep.copy())
            return
        r = ranges[i]
        fits = base.peak(r) + r.size <= limit
        always = fits and most.peak(r) <= limit
        if fits:
            keep[i] = True
            base.add(r)
            visit(i + 1, score + r.access)
            base.add(r, -1)
        if not always:
            keep[i] = False
            most.add(r, -1)
            visit(i + 1, score)
            most.add(r)

    visit(0, 0)
    return best[1]


def _kept(ranges: list[_Range], n: int, cpu: list[int], base: _Usage, limit: int) -> set[int]:
    """The passes whose output stays in the fast memory."""
    ranges = [r for r in ranges if not any(r.start < t < r.end for t in cpu)]  # a CPU op may reuse it
    most = _Usage(n)
    most.at = base.at.copy()
    for r in ranges:
        most.add(r)
    if max(most.at, default=0) <= limit:
        return {r.op for r in ranges}
    kept: set[int] = set()
    competing = []
    for r in ranges:
        if base.peak(r) + r.size > limit:
            most.add(r, -1)  # can never fit
        elif most.peak(r) <= limit:
            kept.add(r.op)
            base.add(r)
        else:
            competing.append(r)
    competing.sort(key=lambda r: (r.start, r.end))
    groups: list[list[_Range]] = []
    end = -1
    for r in competing:
        if groups and r.start <= end and len(groups[-1]) < COMPONENT:
            groups[-1].append(r)
            end = max(end, r.end)
        else:
            groups.append([r])
            end = r.end
    for group in groups:
        for r, keep in zip(group, _search(group, base, most, limit), strict=True):
            if keep:
                kept.add(r.op)
                base.add(r)
            else:
                most.add(r, -1)
    return kept


_CASCADABLE = frozenset([OpKind.CONV, OpKind.DEPTHWISE, OpKind.POOL, OpKind.ELEMENTWISE, OpKind.LUT])


def _cascades(passes: list[LayerGeometry], readers: dict[int, list[LayerGeometry]], limit: int) -> list[list[int]]:
    """Runs of passes Vela cascades (op indices, in execution order): from a pass, each next pass that
    alone reads its output, in its shape, joins while its whole input and output would not fit the
    fast memory; a cascade's intermediates become rolling buffers of a few rows."""
    out: list[list[int]] = []
    n = 0
    while n < len(passes):
        run = [passes[n]]
        while n + 1 < len(passes):
            prod, cur = run[-1], passes[n + 1]
            if (readers.get(prod.op_index, []) != [cur] or cur.kind not in _CASCADABLE or prod.kind not in _CASCADABLE
                    or cur.ofm[0] < 2 or prod.ofm[0] < 2 or cur.ifm != prod.ofm or cur.sources[:1] != (prod.op_index,)):
                break
            if _storage_of(cur.ifm, cur.itemsize) + _storage(cur) < limit:
                break  # it fits whole: the cascade ends before it
            run.append(cur)
            n += 1
        if len(run) > 1:
            out.append([g.op_index for g in run])
        n += 1
    return out


def _storage_of(shape: tuple[int, int, int], itemsize: int) -> int:
    h, w, c = shape
    return h * w * round_up(c, BRICK) * itemsize


def place_feature_maps(geometry: list[LayerGeometry], target: Target) -> list[LayerGeometry]:
    """Each pass with the memories of its input and output as Vela places the model's feature maps
    (unchanged when the arena already is the fast memory)."""
    arena, fast = target.arena_memory, target.staging_memory
    if arena == fast or not any(g.sources for g in geometry):
        return geometry
    out = list(geometry)
    for sg in sorted({g.subgraph for g in geometry}):
        idx = [n for n, g in enumerate(geometry) if g.subgraph == sg]
        by_op = {geometry[n].op_index: n for n in idx}
        n_pos = max((geometry[n].position for n in idx), default=0) + 1
        cpu = [geometry[n].position for n in idx if geometry[n].kind is OpKind.CPU]
        readers: dict[int, list[LayerGeometry]] = {}
        for n in idx:
            for s in geometry[n].sources:
                readers.setdefault(s, []).append(geometry[n])
        passes = sorted((geometry[n] for n in idx if geometry[n].kind is not OpKind.CPU and not geometry[n].chained
                         and (geometry[n].kind is not OpKind.NOP or geometry[n].copies)), key=lambda g: g.position)
        cascades = _cascades(passes, readers, target.arena_limit)
        rolling = {by_op[i] for c in cascades for i in c[:-1]}  # intermediates: rolling buffers in SRAM
        cascaded = {by_op[i] for c in cascades for i in c}  # a cascade's output stays where it was
        ranges = []
        for n in idx:
            g = geometry[n]
            if g.kind is OpKind.CPU or g.chained or g.ofm_in_arena or g.last_read < 0 or n in cascaded:
                continue
            size = _storage(g)
            reads = sum(r.ofm_elements for r in readers.get(g.op_index, []))
            ranges.append(_Range(n, g.position, g.last_read, size, g.ofm_elements + reads))
        kept = _kept(ranges, n_pos, cpu, _Usage(n_pos), target.arena_limit) | rolling
        candidates = {r.op for r in ranges} | cascaded
        # an elementwise pass reads all its operands from one memory: one in the arena evicts the others
        for n in idx:
            g = geometry[n]
            if g.kind is not OpKind.ELEMENTWISE or g.chained or len(g.sources) < 2:
                continue
            if any(s < 0 or by_op[s] not in kept for s in g.sources):
                for s in g.sources:
                    if s >= 0 and all(r.kind is OpKind.ELEMENTWISE for r in readers.get(s, [])):
                        kept.discard(by_op[s])
        for n in idx:
            g = geometry[n]
            if g.kind not in _PLACED_KINDS or g.chained or g.copies or not g.sources:
                continue
            src = g.sources[0]
            if g.ifm_in_arena or src < 0:
                ifm = arena
            elif by_op[src] in candidates:
                ifm = fast if by_op[src] in kept else arena
            else:  # written by a pass this placement does not cover (a copy into the arena)
                ifm = fm_memories(g, target)[0]
            ofm = arena if g.ofm_in_arena or n not in kept else fast
            out[n] = replace(g, ifm_memory=ifm, ofm_memory=ofm)
    return out
