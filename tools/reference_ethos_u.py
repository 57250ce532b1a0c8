"""Conformance of hwopt's Ethos-U weight streams with the streams Vela puts in its compiled models.

Each model is compiled with Vela (Regor, in-process, debug database on). Vela's stream for
every layer is located by replaying the register command stream of the compiled model
(`hwopt.targets.ethos_u.vela_streams`); hwopt encodes the same model with the block
configuration read from that compile. Per layer: are the bytes identical (all streams of the
layer concatenated, in the order Vela uses them), and do Vela's streams decode to the same
weights as hwopt's (which decode to the source weights in the NPU's order)?
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "hwopt.reference/1"


class ReferenceError(Exception):
    """A model or target that cannot be checked (bad input, exit code 2)."""


@dataclass(frozen=True)
class Mismatch:
    case: str  # model:op<index>
    variant: str  # the target
    first_diff_byte: int
    detail: str = ""


@dataclass
class Result:
    """Counts over all layers of all models checked, and the layers that differ."""

    target: str
    buffers: int = 0
    bit_exact: int = 0
    decoded_ok: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    per_model: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, layers, exact, decoded

    @property
    def conforms(self) -> bool:
        return self.bit_exact == self.buffers and self.decoded_ok == self.buffers

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "kind": "ethos-u", "encoder": {
            "buffers": self.buffers, "bit_exact": self.bit_exact, "decoded_ok": self.decoded_ok,
            "mismatches": [{"case": m.case, "variant": m.variant, "first_diff_byte": m.first_diff_byte}
                           for m in self.mismatches]}}

    def to_text(self) -> str:
        lines = [f"{name}: {exact}/{n} layers byte-identical, {dec}/{n} decode alike" for name, n, exact, dec
                 in self.per_model]
        lines += [f"  differs: {m.case} at byte {m.first_diff_byte}{' (' + m.detail + ')' if m.detail else ''}"
                  for m in self.mismatches]
        share = 100.0 * self.bit_exact / self.buffers if self.buffers else 100.0
        lines.append(f"{self.target}: {self.bit_exact}/{self.buffers} layers byte-identical to Vela ({share:.1f} %), "
                     f"{self.decoded_ok}/{self.buffers} decode alike")
        return "\n".join(lines)


def first_difference(a: bytes, b: bytes) -> int:
    """Index of the first differing byte (the shorter length when one is a prefix of the other)."""
    n = min(len(a), len(b))
    x = np.frombuffer(a[:n], dtype=np.uint8)
    y = np.frombuffer(b[:n], dtype=np.uint8)
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if diff.size else n


def _decode_all(parts: list[bytes], fast: bool) -> list[np.ndarray] | None:
    from hwopt.targets.ethos_u import fwd
    from hwopt.targets.ethos_u.weights import decode_standard

    out = []
    try:
        for p in parts:
            if fast:
                count = (len(p) - fwd.HEADER_BYTES) * 8 // _fwd_bits(p)
                out.append(fwd.decode(p, [count])[0])
            else:
                out.append(decode_standard(p))
    except (ValueError, fwd.FwdError):
        return None
    return out


def _fwd_bits(p: bytes) -> int:
    return 8 if p[0] & 1 else (2 if p[0] & 2 else 4)


def _decoded_alike(vela: list[bytes], ours: list[bytes], counts: list[int], fast: bool) -> bool:
    """Vela's streams decode to the weights hwopt's streams decode to (padding codes excluded)."""
    if len(vela) != len(ours):
        return False
    a, b = _decode_all(vela, fast), _decode_all(ours, fast)
    if a is None or b is None:
        return False
    # FWD streams are padded to 32 bytes with zero codes: compare the coded weights only.
    return all(x.size >= n and y.size >= n and np.array_equal(x[:n], y[:n])
               for x, y, n in zip(a, b, counts, strict=True))


def check_model(path: Path, target: Any, result: Result) -> None:
    """Compile one model with Vela, encode it with hwopt, compare layer by layer into `result`."""
    from hwopt.engines.encode import encode_model
    from hwopt.errors import HwoptError
    from hwopt.format.tflite_io import read_model
    from hwopt.targets.ethos_u import vela_streams
    from hwopt.targets.ethos_u.vela_config import CompilerOptions
    from hwopt.targets.ethos_u.vela_engine import regor_compile

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReferenceError(f"{path}: {exc.strerror or exc}") from None
    try:
        model = read_model(data)
        if model.vela_compiled:
            raise ReferenceError(f"{path}: already compiled by Vela; give the model Vela was given")
        compiled, _ = regor_compile(data, target, CompilerOptions(enable_db=True))
        report = encode_model(model, target, block_source="vela", path=str(path), vela_compiled=compiled,
                              streams="hwopt")
    except HwoptError as exc:
        raise ReferenceError(f"{path}: {exc}") from None
    out = read_model(bytes(compiled.model))
    sg = out.subgraphs[0]
    custom = [op for op in sg.operators if op.op.startswith("CUSTOM")]
    if not custom:
        raise ReferenceError(f"{path}: Vela put no operator on the NPU")
    payload = bytes(sg.tensor(custom[0].inputs[0]).data)
    read_only = bytes(sg.tensor(custom[0].inputs[1]).data)
    located = vela_streams.layer_streams(payload, compiled.opt_database.tables, u85=target.family.value == "ethos-u85")
    name = path.stem
    n = exact = decoded = 0
    for layer in report.layers:
        if not layer.encodable or layer.subgraph != 0 or layer.op_index not in located:
            continue
        vela_layer = located[layer.op_index]
        vela_parts = vela_layer.data(read_only)
        ours = layer._data
        our_parts = [ours[s.offset:s.offset + s.length] for s in layer.streams]
        n += 1
        same = b"".join(vela_parts) == ours
        exact += same
        fast = bool(layer.format and layer.format.startswith("Fast"))
        alike = same or (fast == vela_layer.fast and _decoded_alike(
            vela_parts, our_parts, [s.weights for s in layer.streams], fast))
        decoded += alike and layer.roundtrip_ok
        if not same:
            detail = f"{layer.op} {layer.format}, Vela {'Fast' if vela_layer.fast else 'Default'}" + (
                "|Sparse2_4" if vela_layer.sparse else "") + f", {len(ours)} vs {sum(map(len, vela_parts))} bytes"
            result.mismatches.append(Mismatch(f"{name}:op{layer.op_index}", result.target,
                                              first_difference(b"".join(vela_parts), ours), detail))
    result.buffers += n
    result.bit_exact += exact
    result.decoded_ok += decoded
    result.per_model.append((name, n, exact, decoded))


def run(models: list[str], target_name: str) -> Result:
    """Check every model for one target; raises ReferenceError on bad input."""
    from hwopt.errors import HwoptError
    from hwopt.targets import resolve_target

    try:
        target = resolve_target(target_name)
    except HwoptError as exc:
        raise ReferenceError(str(exc)) from None
    if not target.family.is_ethos_u:
        raise ReferenceError(f"{target_name} is not an Ethos-U target")
    result = Result(target.name)
    for m in models:
        check_model(Path(m), target, result)
    return result


def run_generated(count: int, target_name: str, result: Result | None = None) -> tuple[Result, int]:
    """Check the models of `hwopt.testing.generator` seeds 0..count-1; returns (result, models skipped).

    A generated model Vela rejects, or one without an NPU weight layer, is skipped, not an error.
    """
    import tempfile

    from hwopt.targets import resolve_target
    from hwopt.testing.generator import generate

    target = resolve_target(target_name)
    result = result or Result(target.name)
    skipped = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(count):
            model = generate(seed)
            path = Path(tmp) / f"{model.name}.tflite"
            path.write_bytes(model.data)
            try:
                check_model(path, target, result)
            except ReferenceError:
                skipped += 1
    return result, skipped


def main(args: argparse.Namespace) -> int:
    """Entry point of `check_reference.py ethos-u`: 0 conforming, 1 not, 2 bad input."""
    import sys

    generated = int(getattr(args, "generated", 0) or 0)
    try:
        if not args.models and generated <= 0:
            raise ReferenceError("give MODEL files or --generated N")
        result = run(list(args.models), args.target)
        skipped = 0
        if generated > 0:
            result, skipped = run_generated(generated, args.target, result)
    except ReferenceError as exc:
        print(f"check_reference: error: {exc}", file=sys.stderr)
        return 2
    if skipped and not args.json:
        print(f"{skipped} generated models skipped (Vela rejects them or they have no NPU weight layer)")
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.to_text())
    return 0 if result.conforms else 1
