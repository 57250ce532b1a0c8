"""Conformance of hwopt's Ethos-N78 encoder and estimator with Arm's support library reference data.

A reference directory holds `cases.json` (layers with raw weights), `encoded/index.json` with the
library's weight buffers and the exact encoder request behind each, and `estimates.json` with the
library's per-pass performance estimates. This module re-encodes every buffer from its request,
decodes every reference buffer, and compares hwopt's N78 estimator with the library's, per layer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from reference_ethos_n_data import SCHEMA, Reference, ReferenceError, _weights, load, variant_of
from reference_ethos_n_estimate import METRICS, EstimatorResult, check_estimator, gauss_weights
from reference_ethos_n_tflite import TfliteResult, check_tflite

from hwopt.targets.ethos_n.weight_codec import encode_layer, requant_from_scales
from hwopt.targets.ethos_n.weight_decode import decode_layer

__all__ = [
    "Reference",
    "ReferenceError",
    "Report",
    "_weights",
    "check_encoder",
    "check_estimator",
    "gauss_weights",
    "load",
    "run",
    "variant_of",
]

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
    estimator: EstimatorResult
    tflite: TfliteResult | None = None  # reported in the text only (the JSON schema is fixed)

    @property
    def conforms(self) -> bool:
        return self.encoder.conforms and self.estimator.conforms

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
            "estimator": {
                "cases": len(self.estimator.cases),
                **self.estimator.stats(),
                "networks": self.estimator.network_errors(),
            },
        }

    def to_text(self) -> str:
        enc = self.encoder
        lines = [
            f"encoder: {enc.bit_exact}/{enc.buffers} buffers bit-exact, {enc.decoded_ok}/{enc.buffers} decoded",
        ]
        lines += [f"  mismatch {m['case']} {m['variant']} at byte {m['first_diff_byte']}" for m in enc.mismatches]
        lines += [f"  decode: {d}" for d in enc.decode_failures]
        est = self.estimator
        fit = [r for r in est.cases if r.fit]
        held = [r for r in est.cases if not r.fit]
        lines.append(f"estimator: {len(est.cases)} case/variant pairs ({len(fit)} fit, {len(held)} held out)")
        for label, rows in (("all", est.cases), ("fit", fit), ("held-out", held)):
            st = est.stats(rows)
            lines.append(f"  {label:9s} " + "  ".join(
                f"{m} median {st[m]['median']:.2%} p90 {st[m]['p90']:.2%}" for m in METRICS))
        for name, errs in est.network_errors().items():
            lines.append(f"  network {name}: " + "  ".join(f"{m} {e:.1%}" for m, e in errs.items()))
        lines += [f"  support: {d}" for d in est.disagreements]
        if self.tflite is not None:
            t = self.tflite
            lines.append(f"  tflite path: {t.equal_to_adapter}/{t.pairs} network/variant pairs pass by pass equal "
                         f"to the above, {t.equal_to_library}/{t.pairs} to the library")
            lines += [f"  tflite path differs: {d}" for d in t.differ]
            lines += [f"  tflite path skips {n}: {why}" for n, why in t.skipped.items()]
        lines.append("conforms" if self.conforms else "does not conform")
        return "\n".join(lines)


def run(directory: str | Path) -> Report:
    """Load a reference directory and check the encoder and the estimator against it."""
    ref = load(directory)
    return Report(check_encoder(ref), check_estimator(ref), check_tflite(ref))
