"""Benchmark `hwopt encode`: bits/weight against the entropy bound, and agreement with Vela.

Prints markdown tables: (1) bits/weight and the order-0 entropy bound for the derived ResNet-8
variants of ../shared/models on u55-128, u65-512, u85-256 and n78-4tops-4ple; (2) hwopt's
encoded totals against Vela's `encodedWeights` on every int8 shared model (u55-128 and u65-512
with hwopt's block searches, the default, u85-256 per layer with Vela's block configs).

Usage: python tools/bench_encode.py [--models DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("ethos-u55-128", "ethos-u65-512", "ethos-u85-256", "ethos-n78-4tops-4ple")


def _models_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("HWOPT_SHARED_MODELS")
    return Path(env) if env else ROOT.parent / "shared" / "models"


def _int8_models(folder: Path) -> list[Path]:
    from hwopt.analysis.layers import weight_layers
    from hwopt.format.tflite_io import read_model

    out = []
    for p in sorted(folder.rglob("*.tflite")):
        m = read_model(p)
        if not m.vela_compiled and not any(la.weights(m).dtype.is_float for la in weight_layers(m)):
            out.append(p)
    return out


def bits_table(folder: Path) -> None:
    from hwopt import encode

    print("### bits/weight vs the order-0 entropy bound (derived ResNet-8 variants)\n")
    print("| model | entropy | " + " | ".join(t.replace("ethos-", "") for t in TARGETS) + " |")
    print("|---|---|" + "---|" * len(TARGETS))
    for path in sorted((folder / "derived").glob("*.tflite")):
        cells = []
        ent = 0.0
        for t in TARGETS:
            s = encode(path, t).summary
            ent = s.entropy_bits_per_weight
            cells.append(f"{s.bits_per_weight:.2f} ({s.bits_per_weight / ent:.2f}x)" if ent else f"{s.bits_per_weight:.2f}")
        print(f"| {path.stem} | {ent:.2f} | " + " | ".join(cells) + " |")
    print()


def vela_table(folder: Path) -> None:
    from hwopt import encode
    from hwopt.engines.encode import encode_model
    from hwopt.format.tflite_io import read_model
    from hwopt.targets import resolve_target

    print("### encoded weight bytes: hwopt vs Vela 5.2.0 `encodedWeights`\n")
    print("| model | u55-128 Vela | hwopt | Δ | u65-512 Vela | hwopt | Δ | u85-256 Vela | hwopt (Vela blocks) | Δ | u85 layers ±5% |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    sums = {k: [0, 0] for k in ("u55", "u65", "u85")}
    layers_close = layers_all = 0
    for path in _int8_models(folder):
        row = [path.stem]
        for key, name in (("u55", "ethos-u55-128"), ("u65", "ethos-u65-512")):
            vela = encode_model(read_model(path), resolve_target(name), block_source="vela", path=str(path))
            ours = encode(path, name).summary.encoded_bytes
            ref = vela.summary.vela_encoded_bytes or 0
            sums[key][0] += ref
            sums[key][1] += ours
            row += [f"{ref:,}", f"{ours:,}", f"{100 * (ours - ref) / ref:+.2f}%"]
        rep = encode_model(read_model(path), resolve_target("ethos-u85-256"), block_source="vela", path=str(path))
        ref = rep.summary.vela_encoded_bytes or 0
        ours = rep.summary.encoded_bytes
        sums["u85"][0] += ref
        sums["u85"][1] += ours
        close = [abs(la.encoded_bytes - la.vela_encoded_bytes) <= max(0.05 * la.vela_encoded_bytes, 32)
                 for la in rep.layers if la.vela_encoded_bytes]
        layers_close += sum(close)
        layers_all += len(close)
        row += [f"{ref:,}", f"{ours:,}", f"{100 * (ours - ref) / ref:+.2f}%", f"{sum(close)}/{len(close)}"]
        print("| " + " | ".join(row) + " |")
    tot = ["**total**"]
    for key in ("u55", "u65", "u85"):
        ref, ours = sums[key]
        tot += [f"{ref:,}", f"{ours:,}", f"{100 * (ours - ref) / ref:+.2f}%"]
    tot.append(f"{layers_close}/{layers_all}")
    print("| " + " | ".join(tot) + " |\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="shared models folder (default ../shared/models)")
    args = ap.parse_args(argv)
    folder = _models_dir(args.models)
    if not folder.is_dir():
        print(f"shared models folder not found: {folder}", file=sys.stderr)
        return 2
    import logging

    logging.disable(logging.WARNING)
    bits_table(folder)
    vela_table(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
