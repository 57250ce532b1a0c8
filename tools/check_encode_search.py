#!/usr/bin/env python3
"""How often the search-based Ethos-U encode (`--blocks rule`: block configurations from hwopt's block
searches, no Vela compile) gives byte for byte the weight streams Vela itself writes, per configuration.

For every model (a sample of the generated corpus and the shared real models) and configuration it
compiles with Vela (its optimisation database on), takes Vela's own streams of each layer Vela ran
on the NPU (`encode --blocks vela`, each checked to decode to the layer's weights), encodes the
model with `--blocks rule`, and compares the layer's bytes. Printed per configuration and set: the
fraction of layers with identical bytes, the same among the layers Vela wrote as one OFM-depth
slice (its weight buffering, a scheduler decision, can split a layer's weights into several
streams; hwopt's record marks the layers where it may), and the total encoded bytes against Vela's.

    nice python tools/check_encode_search.py [--count 40] [--set generated|shared|all]
                                             [--configs ethos-u55-128,...] [--verbose]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.corpus_common import ETHOS_U_CONFIGS, add_corpus_arguments, corpus_items, shared_models  # noqa: E402

if False:  # typing only: the tool imports hwopt lazily so that --help is quick
    from hwopt.targets import Target


@dataclass(frozen=True)
class LayerMatch:
    """One layer Vela ran on the NPU: its streams against the search-based encode's."""

    op_index: int
    op: str
    same: bool
    vela_bytes: int
    hwopt_bytes: int
    vela_sliced: bool  # Vela wrote the weights as several OFM-depth slices
    noted: bool  # hwopt's record says Vela may slice this layer
    fmt: tuple[str | None, str | None]  # (Vela's, hwopt's) U85 weight format


@dataclass
class Tally:
    models: int = 0
    rejected: int = 0
    layers: int = 0
    same: int = 0
    single: int = 0  # layers Vela wrote as one slice
    single_same: int = 0
    vela_bytes: int = 0
    hwopt_bytes: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, name: str, rows: list[LayerMatch]) -> None:
        self.models += 1
        for r in rows:
            self.layers += 1
            self.same += r.same
            self.single += not r.vela_sliced
            self.single_same += r.same and not r.vela_sliced
            self.vela_bytes += r.vela_bytes
            self.hwopt_bytes += r.hwopt_bytes
            if not r.same:
                self.misses.append(f"{name} op {r.op_index} {r.op}: Vela {r.vela_bytes} B, hwopt {r.hwopt_bytes} B"
                                   f"{' (Vela sliced)' if r.vela_sliced else ''} format {r.fmt}")


def compare(data: bytes, target: Target) -> list[LayerMatch]:
    """Per layer Vela ran on the NPU (subgraph 0), Vela's own streams against the search-based encode's."""
    from hwopt.engines.encode import encode_model
    from hwopt.format.tflite_io import read_model
    from hwopt.targets.ethos_u.vela_blocks import compile_with_db, configs_from_compiled

    model = read_model(data)
    compiled = compile_with_db(data, target)
    infos, _ = configs_from_compiled(compiled)
    vela = encode_model(model, target, block_source="vela", vela_compiled=compiled)
    ours = encode_model(model, target)
    out = []
    for a, b in zip(vela.layers, ours.layers, strict=True):
        if a.stream_source != "vela" or a.subgraph != 0:
            continue
        info = infos[a.op_index]
        sliced = any(len(c.depth_offsets or ()) > 2 for c, _, _ in info.parts)
        out.append(LayerMatch(a.op_index, a.op, a._data == b._data, a.encoded_bytes, b.encoded_bytes, sliced,
                              b.block_note is not None, (a.format, b.format)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(ap, split=False, models=True)
    ap.add_argument("--set", choices=("generated", "shared", "all"), default="all")
    ap.add_argument("--verbose", action="store_true", help="list every layer whose bytes differ")
    ap.set_defaults(count=40, configs="ethos-u55-128,ethos-u65-512,ethos-u85-256")
    args = ap.parse_args()

    from hwopt.errors import HwoptError
    from hwopt.targets import resolve_target

    sets: list[tuple[str, list[tuple[str, bytes]]]] = []
    if args.set in ("generated", "all"):
        sets.append(("generated", corpus_items(args)))
    if args.set in ("shared", "all"):
        sets.append(("shared", [(p.name, p.read_bytes()) for p in shared_models(args.models)]))
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in ETHOS_U_CONFIGS]
    if unknown:
        print(f"check_encode_search: not an Ethos-U configuration: {', '.join(unknown)}", file=sys.stderr)
        return 2
    print("| set | configuration | models | layers | identical | identical, one Vela slice | bytes vs Vela |")
    print("|---|---|---|---|---|---|---|")
    for side, items in sets:
        for config in configs:
            target = resolve_target(config)
            t = Tally()
            for name, data in items:
                try:
                    rows = compare(data, target)
                except HwoptError:  # Vela or hwopt refuses the model: nothing to compare
                    t.rejected += 1
                    continue
                t.add(name, rows)
            delta = (t.hwopt_bytes - t.vela_bytes) / t.vela_bytes if t.vela_bytes else 0.0
            print(f"| {side} | {config} | {t.models} | {t.layers} | {t.same}/{t.layers} "
                  f"({100 * t.same / max(t.layers, 1):.1f} %) | {t.single_same}/{t.single} "
                  f"({100 * t.single_same / max(t.single, 1):.1f} %) | {100 * delta:+.3f} % |", flush=True)
            if args.verbose:
                for m in t.misses:
                    print(f"    {m}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
