"""Accuracy of the analytic Ethos-U cost model against Vela's labels, held out from any fitting.

For the validation side of the generated corpus (split by `--split-seed`) and for the real models,
prints per configuration: NPU layers with non-zero Vela cycles, the median and 90th percentile of
|analytic - vela| / vela per layer, the Spearman rank correlation of layer cycles, and the median
|error| of network totals; then the same per operator type. Labels come from the corpus cache
(`tools/build_corpus.py` fills it; missing labels are compiled now).

    nice python tools/accuracy_estimate.py [--seed 1] [--count 1000] [--set validation|fitting|shared|all]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from hwopt.targets import Target

from tools.corpus_common import (  # noqa: E402
    add_corpus_arguments,
    corpus_items,
    corpus_targets,
    labelled,
    shared_models,
)


@dataclass
class Errors:
    """Per-layer (vela, analytic) cycle pairs and per-network totals for one group."""

    vela: list[float] = field(default_factory=list)
    ana: list[float] = field(default_factory=list)
    nets: list[float] = field(default_factory=list)
    ops: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def rel(self) -> np.ndarray:
        v, a = np.array(self.vela), np.array(self.ana)
        return np.abs(a - v) / v if v.size else np.zeros(0)


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def evaluate(items: Iterable[tuple[str, bytes]], targets: list[Target], cache: Path) -> dict[str, Errors]:
    """Compare analytic per-layer cycles with the cached Vela labels for each configuration."""
    from hwopt.targets.ethos_u.analytic import ethos_u_layer_costs

    out = {t.name: Errors() for t in targets}
    for name, model, pairs in labelled(items, targets, cache):
        for t, labels in pairs:
            ana = {c.op_index: c for c in ethos_u_layer_costs(model, t) if c.subgraph == 0}
            e = out[t.name]
            for la in labels.layers:
                if la.placement != "npu" or la.cycles <= 0:
                    continue
                a = float(ana[la.op_index].cycles)
                e.vela.append(float(la.cycles))
                e.ana.append(a)
                e.ops[la.op].append(abs(a - la.cycles) / la.cycles)
            total_v = sum(la.cycles for la in labels.layers)
            if total_v > 0 and not name.startswith("layer-"):  # network totals: whole networks only
                total_a = sum(c.cycles for c in ana.values())
                e.nets.append(abs(total_a - total_v) / total_v)
    return out


def print_tables(title: str, res: dict[str, Errors]) -> None:
    print(f"\n### {title}\n")
    print("| config | layers | median | p90 | Spearman | networks | network total median |")
    print("|---|---|---|---|---|---|---|")
    for cfg, e in res.items():
        r = e.rel()
        if not r.size:
            continue
        print(f"| {cfg.removeprefix('ethos-')} | {r.size} | {np.median(r):.1%} | {np.percentile(r, 90):.0%} | "
              f"{spearman(e.vela, e.ana):.3f} | {len(e.nets)} | {np.median(e.nets):.1%} |")
    ops: dict[str, list[float]] = defaultdict(list)
    for e in res.values():
        for op, errs in e.ops.items():
            ops[op].extend(errs)
    print("\n| operator (all configs) | layers | median | p90 |")
    print("|---|---|---|---|")
    for op, errs in sorted(ops.items(), key=lambda kv: -float(np.median(kv[1]))):
        print(f"| {op} | {len(errs)} | {np.median(errs):.1%} | {np.percentile(errs, 90):.0%} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_arguments(ap, models=True)
    ap.add_argument("--set", choices=("validation", "fitting", "shared", "all"), default="all")
    args = ap.parse_args(argv)
    targets = corpus_targets(args)
    if args.set in ("validation", "fitting", "all"):
        sides = ("validation",) if args.set == "all" else (args.set,)
        for side in sides:
            items = corpus_items(args, side)
            print_tables(f"Generated corpus, {side} set ({len(items)} models)", evaluate(items, targets, args.cache))
    if args.set in ("shared", "all"):
        paths = shared_models(args.models)
        print_tables(f"Real models ({len(paths)})",
                     evaluate([(p.stem, p.read_bytes()) for p in paths], targets, args.cache))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
