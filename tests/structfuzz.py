"""Structure-aware fuzzing: mutate the object tree of real models and run hwopt's commands on them.

A mutation edits the decoded flatbuffer (ModelT): tensor shapes, types, buffers and quantization,
operator inputs, options and opcodes, subgraph lists. Each case runs one or more commands
in-process through `hwopt.cli.main` and must end in exit 0, 1 or 2 with no traceback, no native
crash reported by the isolation worker, within the time limit, leaving its input file untouched.
Shared by the test suite (a sample) and tools/fuzz.py (a long campaign).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import os
import random
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from modelgen import pack

from hwopt._generated.tflite.Buffer import BufferT
from hwopt._generated.tflite.Model import Model as FbModel
from hwopt._generated.tflite.Model import ModelT

CASE_SECONDS = 30.0
HUGE = (1 << 31) - 1
DIMS = (0, 1, 2, 3, 7, 8, 9, 16, 64, -1, -2, 1000, 1 << 16, HUGE)
SMALL_INTS = (0, 1, 2, 3, -1, -2, 9, 16, 255, 256, 1 << 15, HUGE, -HUGE)

# Every command the fuzzer drives, by name.
COMMANDS: dict[str, tuple[str, ...]] = {
    "audit": ("audit", "--json", "--expect-sparsity", "0.3", "--expect-clusters", "16"),
    "check": ("check", "--target", "ethos-u55-128", "--json"),
    "estimate-analytic-u55": ("estimate", "--engine", "analytic", "--target", "ethos-u55-128", "--json"),
    "estimate-analytic-u85": ("estimate", "--engine", "analytic", "--target", "ethos-u85-256", "--json"),
    "estimate-analytic-n78": ("estimate", "--engine", "analytic", "--target", "ethos-n78-4tops-4ple", "--json"),
    "estimate-vela": ("estimate", "--target", "ethos-u55-128", "--json"),
    "encode-u55": ("encode", "--target", "ethos-u55-128", "--json"),
    "encode-u55-rule": ("encode", "--target", "ethos-u55-128", "--blocks", "rule", "--json"),
    "encode-u65-rule": ("encode", "--target", "ethos-u65-256", "--blocks", "rule", "--json"),
    "encode-u85": ("encode", "--target", "ethos-u85-256", "--json"),
    "encode-u85-rule": ("encode", "--target", "ethos-u85-256", "--blocks", "rule", "--json"),
    "encode-n78": ("encode", "--target", "ethos-n78-4tops-4ple", "--json"),
    "enforce": ("enforce", "--sparsity", "0.5", "--clusters", "16", "--json", "-o", "{out}/enforced.tflite"),
    "compile": ("compile", "--target", "ethos-u55-128", "-o", "{out}/compiled"),
    "gate": ("gate", "--target", "ethos-u55-128", "--baseline", "{out}/baseline.json", "--update-baseline"),
}
# Shares of cases per command. QUICK keeps the test suite's sample fast (cheap commands most
# often, Vela-backed ones in a few percent); FULL is the long campaign's balance.
QUICK = {"audit": 0.36, "check": 0.04, "estimate-analytic-u55": 0.14, "estimate-analytic-u85": 0.05,
         "estimate-analytic-n78": 0.10, "encode-u55-rule": 0.07, "encode-u65-rule": 0.02, "encode-u85-rule": 0.06,
         "encode-n78": 0.04, "estimate-vela": 0.06, "encode-u55": 0.01, "gate": 0.025, "enforce": 0.012,
         "compile": 0.005}
FULL = {"audit": 0.14, "check": 0.05, "estimate-analytic-u55": 0.08, "estimate-analytic-u85": 0.05,
        "estimate-analytic-n78": 0.07, "encode-u55-rule": 0.04, "encode-u65-rule": 0.03, "encode-u85-rule": 0.04,
        "encode-n78": 0.06, "estimate-vela": 0.12, "encode-u55": 0.06, "encode-u85": 0.05, "gate": 0.07,
        "enforce": 0.08, "compile": 0.06}


@dataclass(frozen=True)
class Case:
    source: str
    mutation: str
    data: bytes


@dataclass
class Outcome:
    case: Case
    command: str
    code: int
    seconds: float
    error: str  # the stderr line (or the defect) when the case misbehaved
    defect: bool


# ----------------------------------------------------------------------------- mutations
def _tensor(raw: ModelT, rng: random.Random) -> Any:
    sg = rng.choice(raw.subgraphs)
    return rng.choice(sg.tensors) if sg.tensors else None


def _op(raw: ModelT, rng: random.Random) -> tuple[Any, Any]:
    sg = rng.choice(raw.subgraphs)
    return sg, (rng.choice(sg.operators) if sg.operators else None)


def m_shape(raw: ModelT, rng: random.Random) -> str:
    t = _tensor(raw, rng)
    if t is None:
        return "shape:none"
    shape = list(np.asarray(t.shape if t.shape is not None else [], dtype=np.int64))
    kind = rng.choice(("dim", "rank+", "rank-", "swap", "signature"))
    if kind == "dim" and shape:
        shape[rng.randrange(len(shape))] = rng.choice(DIMS)
    elif kind == "rank+":
        shape.insert(rng.randrange(len(shape) + 1), rng.choice((1, 2, 3)))
    elif kind == "rank-" and shape:
        del shape[rng.randrange(len(shape))]
    elif kind == "swap" and len(shape) > 1:
        i, j = rng.sample(range(len(shape)), 2)
        shape[i], shape[j] = shape[j], shape[i]
    elif kind == "signature":
        t.shapeSignature = np.asarray([rng.choice((-1, 1, 0, 5)) for _ in shape], np.int32)
    t.shape = np.asarray(shape, dtype=np.int32) if all(-HUGE - 1 <= d <= HUGE for d in shape) else t.shape
    return f"shape:{kind}"


def m_type(raw: ModelT, rng: random.Random) -> str:
    t = _tensor(raw, rng)
    if t is not None:
        t.type = rng.choice((0, 1, 2, 3, 7, 9, 17, 19, 20, 16, 5, 6, 13, 14, 30, rng.randrange(0, 40)))
    return "type"


def m_indices(raw: ModelT, rng: random.Random) -> str:
    sg, op = _op(raw, rng)
    kind = rng.choice(("input", "output", "opcode", "buffer", "sg-io"))
    n = len(sg.tensors or [])
    if kind in ("input", "output") and op is not None:
        arr = list(np.asarray(op.inputs if kind == "input" else op.outputs, dtype=np.int64))
        if arr and rng.random() < 0.7:
            arr[rng.randrange(len(arr))] = rng.choice((-1, -2, 0, n - 1, n, n + 5, HUGE))
        elif arr:
            del arr[rng.randrange(len(arr))]
        new = np.asarray(arr, dtype=np.int32)
        if kind == "input":
            op.inputs = new
        else:
            op.outputs = new
    elif kind == "opcode" and op is not None:
        op.opcodeIndex = rng.choice((0, len(raw.operatorCodes) - 1, len(raw.operatorCodes), 255))
    elif kind == "buffer":
        t = _tensor(raw, rng)
        if t is not None:
            t.buffer = rng.choice((0, 1, len(raw.buffers) - 1, len(raw.buffers), HUGE))
    else:
        sg.inputs = np.asarray([rng.choice((-1, 0, n - 1, n, 3)) for _ in range(rng.randrange(3))], np.int32)
    return f"index:{kind}"


OPTION_FIELDS = ("strideW", "strideH", "dilationWFactor", "dilationHFactor", "filterWidth", "filterHeight",
                 "padding", "fusedActivationFunction", "depthMultiplier", "keepNumDims", "weightsFormat",
                 "adjX", "adjY", "axis", "alpha", "beta", "newShape", "numSplits")


def m_options(raw: ModelT, rng: random.Random) -> str:
    _, op = _op(raw, rng)
    if op is None:
        return "options:none"
    opts = op.builtinOptions
    if opts is None or rng.random() < 0.1:
        op.builtinOptionsType = rng.randrange(0, 130)  # a mismatching options type
        return "options:type"
    fields = [f for f in OPTION_FIELDS if hasattr(opts, f)]
    if not fields:
        return "options:nofield"
    f = rng.choice(fields)
    old = getattr(opts, f)
    if isinstance(old, bool):
        setattr(opts, f, not old)
    elif isinstance(old, float):
        setattr(opts, f, rng.choice((0.0, -1.0, float("nan"), float("inf"), 1e30)))
    elif isinstance(old, int):
        setattr(opts, f, rng.choice(SMALL_INTS) if f not in ("padding", "fusedActivationFunction", "weightsFormat")
                else rng.randrange(0, 12))
    else:
        setattr(opts, f, np.asarray([rng.choice(DIMS[:10]) for _ in range(rng.randrange(5))], np.int32))
    return f"options:{f}"


def m_quant(raw: ModelT, rng: random.Random) -> str:
    t = _tensor(raw, rng)
    if t is None:
        return "quant:none"
    q = t.quantization
    kind = rng.choice(("scale", "zp", "qdim", "drop", "perchannel"))
    if q is None or kind == "drop":
        t.quantization = None
        return "quant:drop"
    n = max(1, len(q.scale) if q.scale is not None else 1)
    if kind == "scale":
        q.scale = np.asarray([rng.choice((0.0, -1.0, float("nan"), float("inf"), 1e-38, 1e38, 0.5)) for _ in range(n)],
                             np.float32)
    elif kind == "zp":
        q.zeroPoint = np.asarray([rng.choice((0, 1, -128, 127, 128, -129, 255, 1000, -1000, 1 << 40)) for _ in range(n)],
                                 np.int64)
    elif kind == "qdim":
        q.quantizedDimension = rng.choice((-1, 0, 1, 3, 4, 9))
    else:
        m = rng.choice((0, 1, 2, 3, 8, 17))
        q.scale = np.full(m, 0.01, np.float32)
        q.zeroPoint = np.zeros(m, np.int64)
    return f"quant:{kind}"


def m_opcode(raw: ModelT, rng: random.Random) -> str:
    if not raw.operatorCodes:
        return "opcode:none"
    oc = rng.choice(raw.operatorCodes)
    kind = rng.choice(("builtin", "custom", "version"))
    if kind == "builtin":
        code = rng.choice((0, 1, 3, 4, 9, 17, 22, 25, 32, 40, 49, 67, 97, 126, 150, 205, 400, rng.randrange(0, 220)))
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
    elif kind == "custom":
        oc.builtinCode = oc.deprecatedBuiltinCode = 32
        oc.customCode = rng.choice((b"ethos-u", b"x", b"", b"\xff"))
    else:
        oc.version = rng.choice((0, -1, 1, 99, HUGE))
    return f"opcode:{kind}"


def m_buffer(raw: ModelT, rng: random.Random) -> str:
    if len(raw.buffers) < 2:
        return "buffer:none"
    b = raw.buffers[rng.randrange(1, len(raw.buffers))]
    data = np.asarray(b.data if b.data is not None else [], dtype=np.uint8)
    kind = rng.choice(("truncate", "extend", "empty", "zeros", "noise", "extreme", "constant"))
    if kind == "truncate" and data.size:
        data = data[: rng.randrange(data.size)]
    elif kind == "extend":
        data = np.concatenate([data, np.zeros(rng.choice((1, 3, 16, 1024)), np.uint8)])
    elif kind == "empty":
        data = np.zeros(0, np.uint8)
    elif kind == "zeros":
        data = np.zeros_like(data)
    elif kind == "noise":
        data = np.frombuffer(rng.randbytes(data.size), np.uint8).copy()
    elif kind == "extreme":
        data = np.full_like(data, rng.choice((0x80, 0x7F, 0xFF)))
    else:
        data = np.full_like(data, rng.randrange(256))
    b.data = data
    return f"buffer:{kind}"


def m_subgraph(raw: ModelT, rng: random.Random) -> str:
    kind = rng.choice(("duplicate", "drop-op", "dup-op", "swap-ops", "empty-sg", "drop-sg", "many-sg"))
    sg = raw.subgraphs[0]
    if kind == "duplicate":
        raw.subgraphs.append(copy.deepcopy(sg))
    elif kind == "drop-op" and sg.operators:
        del sg.operators[rng.randrange(len(sg.operators))]
    elif kind == "dup-op" and sg.operators:
        i = rng.randrange(len(sg.operators))
        sg.operators.insert(i, copy.deepcopy(sg.operators[i]))
    elif kind == "swap-ops" and len(sg.operators) > 1:
        i, j = rng.sample(range(len(sg.operators)), 2)
        sg.operators[i], sg.operators[j] = sg.operators[j], sg.operators[i]
    elif kind == "empty-sg":
        empty = copy.deepcopy(sg)
        empty.operators, empty.tensors = [], []
        empty.inputs = empty.outputs = np.zeros(0, np.int32)
        raw.subgraphs.insert(rng.randrange(len(raw.subgraphs) + 1), empty)
    elif kind == "drop-sg" and len(raw.subgraphs) > 1:
        del raw.subgraphs[rng.randrange(len(raw.subgraphs))]
    elif kind == "many-sg":
        raw.subgraphs.extend(copy.deepcopy(sg) for _ in range(rng.choice((3, 8))))
    return f"subgraph:{kind}"


def m_weights(raw: ModelT, rng: random.Random) -> str:
    """Valid models with unusual weights: all zero, one value, extremes, a weight shared by two ops."""
    sg = raw.subgraphs[0]
    consts = [t for t in sg.tensors if t.buffer and raw.buffers[t.buffer].data is not None
              and len(raw.buffers[t.buffer].data) >= 16]
    if not consts:
        return "weights:none"
    t = rng.choice(consts)
    kind = rng.choice(("share", "zeros", "extremes", "sparse"))
    b = raw.buffers[t.buffer]
    data = np.asarray(b.data, dtype=np.uint8).copy()
    if kind == "share":
        other = rng.choice(consts)
        other.buffer = t.buffer
    elif kind == "zeros":
        b.data = np.zeros_like(data)
    elif kind == "extremes":
        b.data = np.where(np.arange(data.size) % 2 == 0, 0x80, 0x7F).astype(np.uint8)
    else:
        data[np.arange(data.size) % 4 != 0] = 0
        b.data = data
    return f"weights:{kind}"


MUTATIONS: tuple[Callable[[ModelT, random.Random], str], ...] = (
    m_shape, m_type, m_indices, m_options, m_quant, m_opcode, m_buffer, m_subgraph, m_weights, m_weights,
)


def decode(data: bytes) -> ModelT:
    return ModelT.InitFromObj(FbModel.GetRootAs(data, 0))


def mutate(name: str, tree: ModelT, rng: random.Random) -> Case | None:
    """One case: a deep copy of `tree` with 1-3 mutations, packed; None when it cannot be packed."""
    raw = copy.deepcopy(tree)
    if raw.buffers is None:
        raw.buffers = [BufferT()]
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        try:
            done.append(rng.choice(MUTATIONS)(raw, rng))
        except (IndexError, TypeError, ValueError, AttributeError):  # an earlier mutation removed what this one edits
            done.append("skipped")
    try:
        return Case(name, "+".join(done), pack(raw))
    except (struct.error, TypeError, ValueError, OverflowError, AttributeError):
        return None


def cases(sources: dict[str, bytes], count: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    trees = {k: decode(v) for k, v in sources.items()}
    names = sorted(trees)
    out: list[Case] = []
    while len(out) < count:
        name = rng.choice(names)
        case = mutate(name, trees[name], rng)
        if case is not None:
            out.append(case)
    return out


# ----------------------------------------------------------------------------- running
class _CaseTimeoutError(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _CaseTimeoutError


def pick_commands(rng: random.Random, per_case: int, shares: dict[str, float]) -> list[tuple[str, tuple[str, ...]]]:
    names = sorted(shares)
    chosen = dict.fromkeys(rng.choices(names, weights=[shares[n] for n in names], k=per_case))
    return [(n, COMMANDS[n]) for n in chosen]


def run_command(argv: list[str]) -> tuple[int, str]:
    """hwopt.cli.main in-process; (exit code, stderr text)."""
    from hwopt.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def judge(code: int, err: str) -> str | None:
    """Why an outcome breaks the contract, or None."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    if code not in (0, 1, 2):
        return f"exit {code}: {lines[-1] if lines else ''}"
    if "Traceback" in err or "internal error" in err:
        return f"traceback: {lines[-1] if lines else ''}"
    if "crashed on this model" in err or "did not finish within" in err or "used more than" in err:
        return f"native failure not caught by validation: {lines[-1]}"
    if code == 2 and not any(ln.startswith("hwopt: error: ") for ln in lines):
        return f"exit 2 without an error line: {err[-200:]}"
    return None


def run_case(case: Case, workdir: Path, rng: random.Random, per_case: int = 1,
             shares: dict[str, float] = QUICK) -> list[Outcome]:
    """Write the case, run the sampled commands, check exit code, stderr, time and the input's bytes."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "case.tflite"
    path.write_bytes(case.data)
    digest = hashlib.sha256(case.data).hexdigest()
    results = []
    for name, args in pick_commands(rng, per_case, shares):
        argv = [args[0], str(path), *(a.replace("{out}", str(workdir)) for a in args[1:])]
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
        start = time.perf_counter()
        try:
            code, err = run_command(argv)
            problem = judge(code, err)
        except _CaseTimeoutError:
            code, err, problem = -1, "", f"no result within {CASE_SECONDS:g} s"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        seconds = time.perf_counter() - start
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problem = "the input file was modified"
        last = err.strip().splitlines()[-1] if err.strip() else ""
        results.append(Outcome(case, name, code, seconds, problem or last, problem is not None))
    return results


def load_sources(example: Path, shared: Path | None, names: tuple[str, ...]) -> dict[str, bytes]:
    out = {"example_int8.tflite": example.read_bytes()}
    if shared is not None:
        for n in names:
            if (shared / n).exists():
                out[n] = (shared / n).read_bytes()
    return out


def worker_limits() -> None:
    """The worker's per-call time limit below the case limit, so a native hang is the worker's to report."""
    os.environ.setdefault("HWOPT_WORKER_TIMEOUT", str(CASE_SECONDS - 5))
