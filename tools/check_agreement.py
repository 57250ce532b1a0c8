#!/usr/bin/env python3
"""Agreement of hwopt's operator-support model with Vela's actual placement, over every Ethos-U config.

    python tools/check_agreement.py [--models DIR] [--configs ethos-u55-128,...] [--json]

For every shipped Ethos-U configuration it compiles, with Vela in-process, each model of the
shared model folder, each single-rule violation model of tests/support_cases.py and a set of models from
hwopt's generator (hwopt.testing.generator); then it compares every
operator's placement with the support model's and checks that every CPU operator carries a
rule naming its failing value. Each compile runs in a child process, so a Vela crash is
counted, not fatal. Prints one row per configuration.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


@dataclass
class Tally:
    models: int = 0
    operators: int = 0
    agree: int = 0
    cpu: int = 0
    cpu_with_rule: int = 0
    rejected: int = 0
    crashed: int = 0


def _one(config: str, source: str | bytes) -> tuple[str, list[tuple[int, str, str, bool]]]:
    """(status, [(op_index, vela placement, hwopt placement, has a named rule)]) for one model."""
    from hwopt.errors import HwoptError
    from hwopt.format.tflite_io import read_model
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u.support_tables import support_for
    from hwopt.targets.ethos_u.vela_engine import compile_model
    from hwopt.targets.support import place_model

    data = Path(source).read_bytes() if isinstance(source, str) else source
    model = read_model(data)
    if model.vela_compiled:
        return "skipped", []
    target = resolve_target(config)
    placed = place_model(model, support_for(target.family.value))
    try:
        result = compile_model(data, target)
    except HwoptError:
        return "rejected", []
    rows = []
    for row in result.ops:
        reasons = placed[(0, row.op_index)]
        rows.append((row.op_index, row.placement, "cpu" if reasons else "npu", bool(reasons)))
    return "ok", rows


def _sources(models: Path, generated: int) -> list[tuple[str, str | bytes]]:
    out: list[tuple[str, str | bytes]] = [(p.name, str(p)) for p in sorted(models.rglob("*.tflite"))]
    from support_cases import CASES

    out += [(f"case:{name}", case.build()) for name, case in CASES.items()]
    from hwopt.testing.generator import generate

    out += [(f"gen:{seed}", generate(seed).data) for seed in range(generated)]
    return out


def main() -> int:
    from hwopt.targets.descriptor import list_targets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models")
    ap.add_argument("--configs", default=",".join(n for n in list_targets() if n.startswith("ethos-u")))
    ap.add_argument("--generated", type=int, default=50, help="generated models per config")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sources = _sources(args.models, args.generated)
    table: dict[str, Tally] = {}
    disagreements: list[str] = []
    for config in args.configs.split(","):
        t = table.setdefault(config, Tally())
        pool = cf.ProcessPoolExecutor(max_workers=1)
        for name, src in sources:
            try:
                status, rows = pool.submit(_one, config, src).result(timeout=300)
            except (cf.process.BrokenProcessPool, cf.TimeoutError):
                t.crashed += 1
                pool.shutdown(cancel_futures=True)
                pool = cf.ProcessPoolExecutor(max_workers=1)
                continue
            if status == "rejected":
                t.rejected += 1
            if status != "ok":
                continue
            t.models += 1
            for idx, vela, ours, named in rows:
                t.operators += 1
                t.agree += vela == ours
                if vela == "cpu":
                    t.cpu += 1
                    t.cpu_with_rule += named
                if vela != ours:
                    disagreements.append(f"{config} {name} op {idx}: vela {vela}, hwopt {ours}")
        pool.shutdown()
    if args.json:
        print(json.dumps({"configs": {k: vars(v) for k, v in table.items()}, "disagreements": disagreements},
                         indent=1))
    else:
        print(f"{'config':16} {'models':>6} {'operators':>9} {'agree':>7} {'cpu ops':>7} {'with rule':>9} "
              f"{'rejected':>8} {'crashed':>7}")
        for k, v in table.items():
            print(f"{k:16} {v.models:6} {v.operators:9} {v.agree / max(v.operators, 1):7.2%} {v.cpu:7} "
                  f"{v.cpu_with_rule:9} {v.rejected:8} {v.crashed:7}")
        for d in disagreements:
            print("disagrees:", d)
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
