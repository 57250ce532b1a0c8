"""How often hwopt's Ethos-U85 block configuration is exactly the one Vela picks, per configuration and
per operation kind, on the validation side of the generated corpus and on the real models.

Two rates per cell:
- search: Vela's own operations (after its lowering, as its optimisation database lists them) given
  to `find_u85_block`; the OFM block, IFM block, micro-block and traversal must all equal Vela's.
  Operations Vela cascaded (blocks chosen for a stripe) or wrote transposed are counted apart.
- layer: hwopt's own view of each model operator (`u85.u85_block` on its geometry), for operators
  Vela ran as one NPU operation.

    nice python tools/check_u85_blocks.py [--count 200] [--set validation|shared|all]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwopt.format.tflite_io import read_model  # noqa: E402
from hwopt.targets import Target  # noqa: E402
from hwopt.targets.ethos_u.placement import ethos_u_geometry  # noqa: E402
from hwopt.targets.ethos_u.u85 import u85_block, u85_query  # noqa: E402
from hwopt.targets.ethos_u.u85_blocks import find_u85_block  # noqa: E402
from hwopt.targets.ethos_u.vela_blocks import VelaOpBlock, compile_with_db, vela_op_blocks, vela_query  # noqa: E402
from tools.corpus_common import add_corpus_arguments, corpus_items, corpus_targets, shared_models  # noqa: E402

U85_CONFIGS = "ethos-u85-128,ethos-u85-256,ethos-u85-512,ethos-u85-1024,ethos-u85-2048"
Tally = Counter[tuple[str, str, str, bool]]  # (set, config, kind, matched) -> operations


def _want(r: VelaOpBlock) -> tuple[object, ...]:
    return (r.ofm_block, r.ifm_block, r.ublock, r.traversal)


def check(data: bytes, target: Target, side: str, search: Tally, layer: Tally, verbose: bool = False) -> None:
    """Tally one model on one configuration."""
    rows = vela_op_blocks(compile_with_db(data, target))
    for r in rows:
        kind = r.operator + (" (cascaded)" if r.cascaded else "") + (" (transposed)" if r.transposed else "")
        try:
            b = find_u85_block(vela_query(r), target.npu.macs)
            got: tuple[object, ...] = (b.ofm, b.ifm, b.ublock, b.traversal.value)
        except Exception:  # a search failure counts as a mismatch
            got = ()
        search[(side, target.name, kind, got == _want(r))] += 1
    per_op = Counter(r.op_index for r in rows)
    by_op = {r.op_index: r for r in rows}
    for g in ethos_u_geometry(read_model(data), target.family):
        r = by_op.get(g.op_index)
        if g.subgraph or r is None or per_op[g.op_index] != 1 or r.cascaded or u85_query(g) is None:
            continue
        blk = u85_block(g, target)
        got = (blk.ofm, blk.ifm, blk.ublock, blk.traversal.value)
        layer[(side, target.name, g.op, got == _want(r))] += 1
        if verbose and got != _want(r):
            print(f"{target.name} {g.op} {u85_query(g)}\n  hwopt {got}\n  Vela  {_want(r)} for {r}", file=sys.stderr)


def report(title: str, tally: Tally) -> None:
    print(f"\n## {title}: exact match (OFM block, IFM block, micro-block, traversal)")
    cells: dict[tuple[str, str], list[int]] = {}
    for (side, config, kind, ok), n in tally.items():
        for key in ((side, config), (side, f"{config} {kind}")):
            cells.setdefault(key, [0, 0])
            cells[key][0] += n * ok
            cells[key][1] += n
    print(f"{'set':<11} {'config / operation':<48} {'match':>7} {'ops':>6}")
    for (side, name), (hit, n) in sorted(cells.items()):
        print(f"{side:<11} {name:<48} {100 * hit / n:6.1f}% {n:6d}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(ap, models=True)
    ap.set_defaults(count=200, configs=U85_CONFIGS)
    ap.add_argument("--set", choices=("validation", "shared", "all"), default="all")
    ap.add_argument("--verbose", action="store_true", help="print every layer whose configuration differs")
    args = ap.parse_args()
    items = []
    if args.set in ("validation", "all"):
        items += [("validation", name, data) for name, data in corpus_items(args, "validation")]
    if args.set in ("shared", "all"):
        items += [("shared", p.name, p.read_bytes()) for p in shared_models(args.models)]
    search: Tally = Counter()
    layer: Tally = Counter()
    for target in corpus_targets(args):
        for side, name, data in items:
            try:
                check(data, target, side, search, layer, args.verbose)
            except Exception as exc:  # a model Vela or hwopt refuses: reported, skipped
                print(f"skipped {name} on {target.name}: {exc}", file=sys.stderr)
    report("search (Vela's operations)", search)
    report("layer (hwopt's geometry)", layer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
