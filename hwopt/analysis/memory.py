"""Tensor live ranges and arena planning: how much working memory an inference needs.

Every non-constant tensor lives from the operator that writes it (or the start, for graph
inputs) to the last operator that reads it (or the end, for graph outputs). A greedy-by-size
planner (the strategy of TensorFlow Lite Micro's GreedyMemoryPlanner) places the largest
buffers first at the lowest offset that does not collide with a buffer alive at the same
time; the highest end offset is the arena the runtime needs for activations. Constant data
(weights, biases) is read-only: it stays in flash.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hwopt.ir import Model, Subgraph

ALIGNMENT = 16  # TFLM aligns every planned buffer to 16 bytes


@dataclass(frozen=True)
class LiveRange:
    """One buffer: its aligned size and the first/last operator (inclusive) that needs it."""

    tensor: int
    size: int
    first: int
    last: int

    def overlaps(self, other: LiveRange) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class ArenaPlan:
    """Offsets of every buffer and the resulting arena size."""

    offsets: dict[int, int]
    peak_bytes: int
    lower_bound: int  # the most bytes alive at one step: no plan can do better


@dataclass(frozen=True)
class MemoryEstimate:
    """Working memory and read-only bytes of one subgraph."""

    subgraph: int
    arena_bytes: int
    live_lower_bound: int
    read_only_bytes: int
    buffers: int


def align(n: int, alignment: int = ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


def tensor_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    return int(np.prod(shape, dtype=np.int64)) * itemsize if shape else itemsize


def live_ranges(sg: Subgraph, alignment: int = ALIGNMENT) -> list[LiveRange]:
    """Live ranges of the subgraph's non-constant tensors over its execution order."""
    n = len(sg.operators)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i in sg.inputs:
        if i >= 0:
            first[i] = 0
            last[i] = max(last.get(i, 0), 0)
    for step, op in enumerate(sg.operators):
        for i in op.outputs:
            if i >= 0:
                first.setdefault(i, step)
                last[i] = max(last.get(i, step), step)
        for i in op.inputs:
            if i >= 0:
                first.setdefault(i, step)
                last[i] = max(last.get(i, step), step)
    for i in sg.outputs:
        if i >= 0:
            first.setdefault(i, max(n - 1, 0))
            last[i] = max(n - 1, 0)
    out = []
    for t_index in sorted(first):
        t = sg.tensors[t_index]
        if t.data is not None:
            continue  # constants live in the flatbuffer (flash), not the arena
        if t.is_variable:
            first[t_index], last[t_index] = 0, max(n - 1, 0)  # state persists across steps
        itemsize = t.dtype.numpy.itemsize if t.dtype.numpy is not None else 1
        out.append(LiveRange(t_index, align(tensor_bytes(t.shape, itemsize), alignment), first[t_index], last[t_index]))
    return out


def lower_bound(ranges: Sequence[LiveRange]) -> int:
    """Largest total size of buffers alive at one step."""
    if not ranges:
        return 0
    steps = max(r.last for r in ranges) + 1
    alive = np.zeros(steps + 1, dtype=np.int64)
    for r in ranges:
        alive[r.first] += r.size
        alive[r.last + 1] -= r.size
    return int(np.cumsum(alive).max())


def _first_fit(order: Sequence[LiveRange]) -> tuple[dict[int, int], int]:
    """Place buffers in `order`, each at the lowest offset free for its whole lifetime."""
    placed: list[tuple[int, int, LiveRange]] = []  # (offset, end, range)
    offsets: dict[int, int] = {}
    peak = 0
    for r in order:
        busy = sorted((o, e) for o, e, p in placed if p.overlaps(r))
        offset = 0
        for o, e in busy:
            if offset + r.size <= o:
                break
            offset = max(offset, e)
        offsets[r.tensor] = offset
        placed.append((offset, offset + r.size, r))
        peak = max(peak, offset + r.size)
    return offsets, peak


def plan_greedy(ranges: Sequence[LiveRange]) -> ArenaPlan:
    """Greedy-by-size placement: largest first (ties: earliest first, then tensor index)."""
    order = sorted(ranges, key=lambda r: (-r.size, r.first, r.tensor))
    offsets, peak = _first_fit(order)
    return ArenaPlan(offsets, peak, lower_bound(ranges))


def plan_optimal(ranges: Sequence[LiveRange], max_buffers: int = 8) -> ArenaPlan:
    """Exact minimum arena by trying first-fit in every order (any optimum is first-fit in some order)."""
    if len(ranges) > max_buffers:
        raise ValueError(f"brute force is limited to {max_buffers} buffers, got {len(ranges)}")
    best: tuple[dict[int, int], int] = ({}, 0)
    for i, perm in enumerate(itertools.permutations(ranges)):
        offsets, peak = _first_fit(perm)
        if i == 0 or peak < best[1]:
            best = (offsets, peak)
    return ArenaPlan(best[0], best[1], lower_bound(ranges))


def read_only_bytes(model: Model, sg: Subgraph) -> int:
    """Bytes of constant tensor data a subgraph reads (weights, biases, tables)."""
    seen: set[int] = set()
    total = 0
    for t in sg.tensors:
        if t.data is not None and t.buffer not in seen:
            seen.add(t.buffer)
            total += int(t.data.nbytes)
    return total


def estimate_memory(model: Model, alignment: int = ALIGNMENT) -> list[MemoryEstimate]:
    """Arena (greedy plan) and read-only bytes of every subgraph."""
    out = []
    for sg in model.subgraphs:
        ranges = live_ranges(sg, alignment)
        plan = plan_greedy(ranges)
        out.append(MemoryEstimate(sg.index, plan.peak_bytes, plan.lower_bound, read_only_bytes(model, sg), len(ranges)))
    return out
