"""Conformance of hwopt's Ethos-N78 encoder and estimator with Arm's support library reference data.

A reference directory holds `cases.json` (layers with raw weights), `encoded/index.json` with the
library's weight buffers and the exact encoder request behind each, and `estimates.json` with the
library's per-pass performance estimates. This module re-encodes every buffer from its request,
decodes every reference buffer, and compares hwopt's N78 estimator with the library's, per layer.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwopt.targets.ethos_n.variants import VARIANTS, N78Variant
from hwopt.targets.ethos_n.weight_codec import encode_layer, requant_from_scales
from hwopt.targets.ethos_n.weight_decode import decode_layer

SCHEMA = "hwopt.reference/1"


class ReferenceError(Exception):
    """The reference directory is missing, incomplete or malformed (bad input, exit code 2)."""


def variant_of(name: str) -> N78Variant:
    """hwopt's variant for a library name such as `4TOPS_4PLE_RATIO`."""
    key = "ethos-n78-" + name.removesuffix("_RATIO").lower().replace("_", "-")
    if key not in VARIANTS:
        raise ReferenceError(f"unknown Ethos-N78 variant {name!r}")
    return VARIANTS[key]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReferenceError(f"{path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReferenceError(f"{path}: not valid JSON ({exc})") from None


@dataclass
class Reference:
    """The parsed reference directory."""

    root: Path
    cases: dict[str, dict[str, Any]]
    networks: dict[str, dict[str, Any]]
    index: dict[str, dict[str, Any]]
    estimates: dict[str, Any]


def load(directory: str | Path) -> Reference:
    """Read and sanity-check a reference directory; raises ReferenceError on bad input."""
    root = Path(directory)
    if not root.is_dir():
        raise ReferenceError(f"{root}: no such directory")
    cases_doc = _read_json(root / "cases.json")
    index_doc = _read_json(root / "encoded" / "index.json")
    estimates = _read_json(root / "estimates.json")
    try:
        cases = {c["name"]: c for c in cases_doc["single_layer_cases"]}
        networks = {n["name"]: n for n in cases_doc.get("networks", [])}
        index = index_doc["cases"]
        if not isinstance(estimates["single_layer"], dict):
            raise TypeError("single_layer")
    except (KeyError, TypeError) as exc:
        raise ReferenceError(f"{root}: unexpected reference layout (missing {exc})") from None
    for name in index:
        if name not in cases:
            raise ReferenceError(f"encoded/index.json names case {name!r} that cases.json does not hold")
    return Reference(root, cases, networks, index, estimates)


# ----------------------------------------------------------------------------- encoder


@dataclass(frozen=True)
class Buffer:
    """One reference buffer with everything needed to encode it again."""

    case: str
    variant: str
    file: str
    sha256: str
    request: dict[str, Any]
    metadata: list[list[int]]


def buffers(ref: Reference) -> list[Buffer]:
    """Every chosen and alternative buffer of every compiled case/variant, in index order."""
    out = []
    for case, per_variant in ref.index.items():
        for variant, entry in per_variant.items():
            if not entry.get("compiled", "buffers" in entry):
                continue
            for b in entry.get("buffers", []) + entry.get("alternative_encodings", []):
                try:
                    out.append(Buffer(case, variant, b["file"], b["sha256"], b["request"], b["encoded"]["metadata"]))
                except KeyError as exc:
                    raise ReferenceError(f"{case}/{variant}: buffer entry lacks {exc}") from None
    return out


def _weights(case: dict[str, Any], req: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    wt = req["weights_tensor"]
    dtype = np.int8 if wt["dtype"] == "INT8_QUANTIZED" else np.uint8
    if req["weights_source"] == "internal":
        w = np.frombuffer(base64.b64decode(req["weights_data_b64"]), dtype=dtype).reshape(wt["shape"])
    else:  # "case" or "case_padded_with_zero_point": hwopt pads fully connected weights itself
        w = np.frombuffer(base64.b64decode(case["weights_b64"]), dtype=dtype)
        w = w.reshape(case["weights_tensor"]["shape"])
    if req["bias_source"] == "internal":
        bias = np.asarray(req["bias_data"], dtype=np.int64)
    else:
        bias = np.frombuffer(base64.b64decode(case["bias_b64_int32le"]), dtype="<i4").astype(np.int64)
    return w, bias


def encode_buffer(ref: Reference, buf: Buffer) -> tuple[bytes, list[list[int]], dict[str, Any], np.ndarray]:
    """hwopt's encoding of one request: (blob, stripe metadata, decode arguments, weights)."""
    case = ref.cases[buf.case]
    req = buf.request
    try:
        w, bias = _weights(case, req)
        quant = req["weights_tensor"]["quant"]
        scales = quant["scales"] if "scales" in quant else case["weights_tensor"]["quant"]["scales"]
        layout = req["weights_tensor"]["format"]
        num_ofms = w.shape[3] if layout == "HWIO" else w.shape[2] * w.shape[3]
        out_q = req["output_quant"]
        requant = requant_from_scales(req["input_quant"]["scales"][0], scales, out_q["scales"][0],
                                      out_q["zero_point"], num_ofms)
        kwargs: dict[str, Any] = {
            "variant": variant_of(buf.variant),
            "layout": layout,
            "zero_point": quant["zero_point"],
            "stride": (req["stride_y"], req["stride_x"]),
            "padding": (req["padding_top"], req["padding_left"]),
            "stripe_depth": req["stripe_depth"],
            "fully_connected": req["operation"] == "FULLY_CONNECTED",
            "iteration_size": req["iteration_size"],
            "algorithm": req["algorithm"],
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceError(f"{buf.case}/{buf.variant}: malformed request ({exc})") from None
    enc = encode_layer(w, bias=bias, requant=requant, **kwargs)
    return enc.data, [list(m) for m in enc.stripe_metadata], {**kwargs, "dtype": w.dtype, "shape": w.shape}, w


@dataclass
class EncoderResult:
    """Counts over all reference buffers."""

    buffers: int = 0
    bit_exact: int = 0
    decoded_ok: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    decode_failures: list[str] = field(default_factory=list)

    @property
    def conforms(self) -> bool:
        return self.buffers > 0 and self.bit_exact == self.buffers and self.decoded_ok == self.buffers


def _first_diff(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(np.frombuffer(a[:n], np.uint8) != np.frombuffer(b[:n], np.uint8))
    return int(diff[0]) if diff.size else n


def check_encoder(ref: Reference) -> EncoderResult:
    """Encode every buffer from its request and decode every reference buffer."""
    result = EncoderResult()
    for buf in buffers(ref):
        path = ref.root / buf.file
        try:
            expected = path.read_bytes()
        except OSError:
            raise ReferenceError(f"{path}: listed in encoded/index.json but not readable") from None
        if hashlib.sha256(expected).hexdigest() != buf.sha256:
            raise ReferenceError(f"{path}: sha256 differs from encoded/index.json")
        result.buffers += 1
        try:
            data, meta, decode_args, weights = encode_buffer(ref, buf)
        except ValueError as exc:
            result.mismatches.append({"case": buf.case, "variant": buf.variant, "first_diff_byte": 0})
            result.decode_failures.append(f"{buf.file}: encode failed: {exc}")
            continue
        if data == expected and meta == buf.metadata:
            result.bit_exact += 1
        else:
            result.mismatches.append(
                {"case": buf.case, "variant": buf.variant, "first_diff_byte": _first_diff(data, expected)}
            )
        try:
            back = decode_layer(expected, **decode_args)
        except ValueError as exc:
            result.decode_failures.append(f"{buf.file}: {exc}")
            continue
        if np.array_equal(back, weights):
            result.decoded_ok += 1
        else:
            result.decode_failures.append(f"{buf.file}: decoded weights differ")
    return result


# ----------------------------------------------------------------------------- report


@dataclass
class Report:
    """Everything `check_reference.py ethos-n` prints."""

    encoder: EncoderResult

    @property
    def conforms(self) -> bool:
        return self.encoder.conforms

    def to_json(self) -> dict[str, Any]:
        enc = self.encoder
        return {
            "schema": SCHEMA,
            "kind": "ethos-n",
            "encoder": {
                "buffers": enc.buffers,
                "bit_exact": enc.bit_exact,
                "decoded_ok": enc.decoded_ok,
                "mismatches": enc.mismatches,
            },
        }

    def to_text(self) -> str:
        enc = self.encoder
        lines = [
            f"encoder: {enc.bit_exact}/{enc.buffers} buffers bit-exact, {enc.decoded_ok}/{enc.buffers} decoded",
        ]
        lines += [f"  mismatch {m['case']} {m['variant']} at byte {m['first_diff_byte']}" for m in enc.mismatches]
        lines += [f"  decode: {d}" for d in enc.decode_failures]
        lines.append("conforms" if self.conforms else "does not conform")
        return "\n".join(lines)


def run(directory: str | Path) -> Report:
    """Load a reference directory and check the encoder against it."""
    ref = load(directory)
    return Report(check_encoder(ref))
