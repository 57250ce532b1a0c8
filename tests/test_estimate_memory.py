"""Arena planning: live ranges, greedy planner against a brute-force optimum and TFLite Micro."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from hwopt.analysis.memory import LiveRange, align, estimate_memory, live_ranges, lower_bound, plan_greedy, plan_optimal
from hwopt.format.tflite_io import read_model


def valid(plan_offsets: dict[int, int], ranges: list[LiveRange]) -> bool:
    """No two buffers alive at the same step share a byte."""
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            if a.overlaps(b):
                oa, ob = plan_offsets[a.tensor], plan_offsets[b.tensor]
                if oa < ob + b.size and ob < oa + a.size:
                    return False
    return True


def test_chain_by_hand() -> None:
    """in(64) -> op0 -> t1(128) -> op1 -> t2(32): peaks are 64+128 and 128+32; the arena is 192."""
    ranges = [LiveRange(0, 64, 0, 0), LiveRange(1, 128, 0, 1), LiveRange(2, 32, 1, 1)]
    plan = plan_greedy(ranges)
    assert plan.peak_bytes == 192 and plan.lower_bound == 192 and valid(plan.offsets, ranges)
    assert plan_optimal(ranges).peak_bytes == 192


def test_greedy_is_not_always_optimal_but_close() -> None:
    """A case where largest-first loses to the optimum (found by brute force, checked by hand)."""
    ranges = [LiveRange(0, 48, 0, 1), LiveRange(1, 32, 1, 2), LiveRange(2, 32, 2, 3), LiveRange(3, 48, 3, 4),
              LiveRange(4, 16, 0, 4)]
    greedy, best = plan_greedy(ranges), plan_optimal(ranges)
    assert valid(greedy.offsets, ranges) and valid(best.offsets, ranges)
    assert (greedy.peak_bytes, best.peak_bytes, best.lower_bound) == (128, 96, 96)


@pytest.mark.parametrize("seed", range(40))
def test_greedy_against_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 6)
    ranges = []
    for i in range(n):
        a, b = sorted((rng.randint(0, 5), rng.randint(0, 5)))
        ranges.append(LiveRange(i, 16 * rng.randint(1, 5), a, b))
    greedy, best = plan_greedy(ranges), plan_optimal(ranges)
    assert valid(greedy.offsets, ranges) and valid(best.offsets, ranges)
    assert lower_bound(ranges) <= best.peak_bytes <= greedy.peak_bytes
    if n <= 4:  # the optimum is a true minimum: exhaustive search over 16-byte-grid offsets agrees
        assert best.peak_bytes == _grid_optimum(ranges, best.peak_bytes)


def _grid_optimum(ranges: list[LiveRange], upper: int) -> int:
    """Independent brute force: smallest arena (16-byte grid) that admits a valid placement."""
    import itertools

    for arena in range(16, upper + 16, 16):
        choices = [range(0, arena - r.size + 1, 16) for r in ranges]
        if any(r.size > arena for r in ranges):
            continue
        for offs in itertools.product(*choices):
            if valid({r.tensor: o for r, o in zip(ranges, offs, strict=True)}, ranges):
                return arena
    return upper


def test_plan_optimal_refuses_big_graphs() -> None:
    with pytest.raises(ValueError):
        plan_optimal([LiveRange(i, 16, 0, 0) for i in range(9)])


def test_align() -> None:
    assert (align(1), align(16), align(17)) == (16, 16, 32)


def test_live_ranges_hello_world(shared_models: Path) -> None:
    """hello_world: input (1x1 int8) -> FC -> 16 -> FC -> 16 -> FC -> 1; each buffer 16 bytes after alignment."""
    model = read_model(shared_models / "hello_world_int8.tflite")
    ranges = live_ranges(model.subgraphs[0])
    assert sorted((r.first, r.last) for r in ranges) == [(0, 0), (0, 1), (1, 2), (2, 2)]
    assert all(r.size == 16 for r in ranges)
    est = estimate_memory(model)[0]
    assert est.arena_bytes == 32 and est.read_only_bytes > 0


TFLM_MODELS = ["mlperftiny_resnet8_int8.tflite", "micro_speech_quantized.tflite", "ds_cnn_m_quantized.tflite",
               "hello_world_int8.tflite", "person_detect.tflite"]


@pytest.mark.parametrize("name", TFLM_MODELS)
def test_arena_matches_tflite_micro(shared_models: Path, name: str) -> None:
    """TFLite Micro's recording allocator reports the planned (head) arena; ours plans the same bytes."""
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    from hwopt._quiet import captured_fds

    path = shared_models / name
    with captured_fds() as text:
        interp = runtime.Interpreter.from_file(str(path))
        interp.print_allocations()
    m = re.search(r"Arena allocation head (\d+) bytes", text[0])
    assert m, text[0][:400]
    assert estimate_memory(read_model(path))[0].arena_bytes == int(m.group(1))
