"""Fuzz the reader and the audit with corrupted copies of real models.

Seeded random byte flips, 4-byte offset overwrites (random, huge, small, near the file size)
and truncations of the shared models must each end in a report or a clean HwoptError:
never another exception, never a hang (each case runs under a wall-clock alarm). A second
fuzzer corrupts fields of a well-formed flatbuffer (tensor types, shapes, quantization,
opcode and tensor indices) to reach the checks behind the verifier.
"""

from __future__ import annotations

import random
import signal
import struct
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np
import pytest
from conftest import ROOT, run_cli_subprocess
from modelgen import pack

from hwopt._generated.tflite.Model import Model as FbModel
from hwopt._generated.tflite.Model import ModelT
from hwopt.engines.audit import Expectations, audit_model
from hwopt.errors import HwoptError
from hwopt.format.tflite_io import read_model, serialize

SEED = 1234
CASE_SECONDS = 10  # generous: a clean case takes milliseconds
# (model, cases): small models get most cases so the whole test stays well under a minute.
PLAN = {
    "hello_world_int8.tflite": 700,
    "micro_speech_quantized.tflite": 500,
    "ds_cnn_s_quantized_int16.tflite": 300,
    "hello_world_float.tflite": 300,
    "derived/ic_resnet8_pruned50_clustered16_int8.tflite": 150,
    "person_detect_vela.tflite": 100,
}
EXAMPLE_CASES = 300
CLI_CASES = 24
FIELD_CASES = 600


class CaseTimeoutError(Exception):
    """Raised by the alarm when one case runs longer than CASE_SECONDS."""


@dataclass(frozen=True)
class Case:
    source: str
    kind: str
    detail: str
    data: bytes


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise CaseTimeoutError


def mutations(name: str, data: bytes, count: int, rng: random.Random) -> Iterator[Case]:
    """`count` corrupted copies of `data`: byte flips, offset overwrites, truncations."""
    n = len(data)
    huge = (0xFFFFFFFF, 0xFFFFFFF0, 0x80000000, 0x7FFFFFFF, 0x7FFFFFFC, 0x40000000)
    for i in range(count):
        kind = ("flip", "offset", "truncate")[i % 3]
        buf = bytearray(data)
        if kind == "flip":
            spots = [rng.randrange(n) for _ in range(rng.choice((1, 1, 2, 4, 8, 32)))]
            for p in spots:
                buf[p] ^= rng.randrange(1, 256)
            detail = f"flip {spots[:4]}"
        elif kind == "offset":
            pos = rng.randrange(0, max(n - 4, 1)) & ~3 if rng.random() < 0.8 else rng.randrange(0, n - 4)
            choice = rng.random()
            if choice < 0.35:
                value = rng.choice(huge)
            elif choice < 0.55:
                value = rng.randrange(0, 32)
            elif choice < 0.75:
                value = (n + rng.randrange(-64, 64)) & 0xFFFFFFFF
            else:
                value = rng.getrandbits(32)
            struct.pack_into("<I", buf, pos, value)
            detail = f"u32 {value:#x} at {pos}"
        else:
            cut = rng.randrange(0, n)
            del buf[cut:]
            detail = f"truncate at {cut}"
        yield Case(name, kind, detail, bytes(buf))


def run_case(case: Case) -> str:
    """'ok' for a report, the error class name for a clean HwoptError; other exceptions propagate."""
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        model = read_model(case.data)
        audit_model(model, case.data, "fuzz.tflite", Expectations(sparsity=0.1, clusters=16))
        serialize(model)  # a model that reads must also write back
        return "ok"
    except HwoptError as exc:
        assert str(exc), "an error without a message"
        return type(exc).__name__
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def all_cases(shared: Path) -> list[Case]:
    rng = random.Random(SEED)
    cases: list[Case] = []
    example = ROOT / "hwopt" / "example" / "example_int8.tflite"
    cases += mutations(example.name, example.read_bytes(), EXAMPLE_CASES, rng)
    for name, count in PLAN.items():
        path = shared / name
        if path.exists():
            cases += mutations(name, path.read_bytes(), count, rng)
    return cases


def run_all(cases: list[Case]) -> Counter[str]:
    """Outcome counts of every case; fails the test on any crash or hang."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    try:
        for case in cases:
            try:
                outcomes[run_case(case)] += 1
            except CaseTimeoutError:
                failures.append(f"{case.source} {case.detail}: no result within {CASE_SECONDS} s")
            except Exception:  # any other exception is the bug this test hunts
                failures.append(f"{case.source} {case.detail}:\n{traceback.format_exc(limit=6)}")
    finally:
        signal.signal(signal.SIGALRM, old)
    assert not failures, f"{len(failures)} of {len(cases)} cases crashed:\n" + "\n".join(failures[:5])
    return outcomes


@pytest.mark.slow
def test_fuzz_in_process(shared_models: Path) -> None:
    cases = all_cases(shared_models)
    assert len(cases) >= 2000
    outcomes = run_all(cases)
    # The corruptions must mostly be caught, and some must still read (flips in weight data).
    assert outcomes["ModelFormatError"] > len(cases) // 4
    assert outcomes["ok"] > 0


@pytest.mark.slow
def test_fuzz_through_cli(shared_models: Path, tmp_path: Path) -> None:
    """A few dozen corrupt files through the real entry point: exit 2 and one stderr line."""
    rng = random.Random(SEED + 1)
    data = (shared_models / "micro_speech_quantized.tflite").read_bytes()
    picked: list[Case] = []
    for case in mutations("micro_speech_quantized.tflite", data, 400, rng):
        try:
            read_model(case.data)
        except HwoptError:
            picked.append(case)
        if len(picked) == CLI_CASES:
            break
    assert len(picked) == CLI_CASES
    for i, case in enumerate(picked):
        path = tmp_path / f"case{i}.tflite"
        path.write_bytes(case.data)
        res = run_cli_subprocess("audit", "--json", path, timeout=60)
        lines = res.err.strip().splitlines()
        assert res.code == 2, (case.detail, res.err)
        assert len(lines) == 1 and lines[0].startswith("hwopt: error: "), (case.detail, res.err)
        assert res.out == ""


def _corrupt_fields(raw: ModelT, rng: random.Random) -> str:
    """Give one field of a decoded model a bad but encodable value; returns what changed."""
    sg = raw.subgraphs[0]
    t = rng.choice(sg.tensors)
    q = t.quantization
    what = rng.choice(("type", "shape", "zero-dim", "qdim", "scale", "zero-point", "no-quant", "opcode-index",
                       "builtin-code", "op-inputs", "buffer-index"))
    if what == "type":
        t.type = rng.randrange(0, 24)
    elif what == "shape":
        t.shape = np.asarray([rng.choice((0, 1, 2, 3, -1, 7, 16, 1 << 20)) for _ in range(rng.randrange(6))], np.int32)
    elif what == "zero-dim" and t.shape is not None and len(t.shape):
        t.shape = np.asarray(t.shape, np.int32).copy()
        t.shape[rng.randrange(len(t.shape))] = 0
    elif what == "qdim" and q is not None:
        q.quantizedDimension = rng.randrange(-2, 6)
    elif what == "scale" and q is not None:
        q.scale = np.asarray([rng.choice((0.0, -1.0, float("nan"), float("inf"), 1e-30, 0.5))
                              for _ in range(rng.choice((0, 1, 2, 3, 8, 16)))], np.float32)
    elif what == "zero-point" and q is not None:
        q.zeroPoint = np.asarray([rng.choice((0, 1, -128, 127, 1 << 40, -(1 << 62)))
                                  for _ in range(rng.choice((0, 1, 2, 3, 8, 16)))], np.int64)
    elif what == "no-quant":
        t.quantization = None
    elif what == "opcode-index":
        rng.choice(sg.operators).opcodeIndex = rng.randrange(len(raw.operatorCodes) + 2)
    elif what == "builtin-code":
        oc = rng.choice(raw.operatorCodes)
        oc.builtinCode = rng.choice((0, 3, 4, 9, 32, 67, 126, 150, 1000, -5))
        oc.deprecatedBuiltinCode = rng.choice((0, 3, 4, 9, 32, 127))
        oc.customCode = rng.choice((None, "ethos-u", "x"))
    elif what == "op-inputs":
        op = rng.choice(sg.operators)
        op.inputs = np.asarray([rng.randrange(-2, len(sg.tensors) + 1) for _ in range(rng.randrange(5))], np.int32)
    elif what == "buffer-index":
        t.buffer = rng.randrange(len(raw.buffers) + 1)
    return what


@pytest.mark.slow
def test_fuzz_fields(shared_models: Path) -> None:
    """Well-formed flatbuffers with nonsensical contents: still a report or a clean error."""
    rng = random.Random(SEED + 2)
    sources = {"example": (ROOT / "hwopt" / "example" / "example_int8.tflite").read_bytes()}
    for name in ("hello_world_int8.tflite", "micro_speech_quantized.tflite", "ds_cnn_s_quantized_int16.tflite"):
        if (shared_models / name).exists():
            sources[name] = (shared_models / name).read_bytes()
    cases = []
    for _ in range(FIELD_CASES):
        name = rng.choice(sorted(sources))
        raw = ModelT.InitFromObj(FbModel.GetRootAs(sources[name], 0))
        changed = [_corrupt_fields(raw, rng) for _ in range(rng.choice((1, 1, 2, 3)))]
        try:
            data = pack(raw)
        except (struct.error, TypeError, ValueError, OverflowError):
            continue  # a value the flatbuffers builder itself cannot encode
        cases.append(Case(name, "fields", ",".join(changed), data))
    assert len(cases) > FIELD_CASES * 0.9
    outcomes = run_all(cases)
    assert outcomes["ModelFormatError"] > 0 and outcomes["ok"] > 0
