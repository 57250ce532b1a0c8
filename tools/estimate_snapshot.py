"""Record the analytic estimator's JSON reports on a model folder, or compare two recordings.

Used to show that a speed change moves no figure: record before, record after, diff. Every
.tflite under the folder is estimated on the 11 Ethos-U configurations and Ethos-N78, in-process,
both one pair at a time (`estimate`) and as one `estimate_batch` per model; the two must agree, and
an error is recorded as its message.

    python tools/estimate_snapshot.py record OUT.json [--models DIR]
    python tools/estimate_snapshot.py diff BEFORE.json AFTER.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.corpus_common import ETHOS_U_CONFIGS, models_dir  # noqa: E402

CONFIGS = (*ETHOS_U_CONFIGS, "ethos-n78-4tops-4ple")


def _json(report: Any) -> Any:
    from hwopt.records import dumps

    return json.loads(dumps(report))


def record(out: Path, models: Path) -> int:
    from hwopt.engines.estimate import estimate, estimate_batch
    from hwopt.errors import HwoptError
    from hwopt.targets import resolve_target

    targets = [resolve_target(c) for c in CONFIGS]
    found: dict[str, Any] = {}
    mismatches = 0
    for path in sorted(models.rglob("*.tflite")):
        rel = str(path.relative_to(models))
        for t in targets:
            try:
                found[f"{rel}|{t.name}"] = _json(estimate(path, t, "analytic"))
            except HwoptError as e:
                found[f"{rel}|{t.name}"] = f"{type(e).__name__}: {e}"
        try:
            batch = [_json(r) for r in estimate_batch([(path, t) for t in targets], engine="analytic")]
        except HwoptError as e:
            batch = [f"{type(e).__name__}: {e}"] * len(targets)
        for t, b in zip(targets, batch, strict=True):
            if b != found[f"{rel}|{t.name}"] and not isinstance(found[f"{rel}|{t.name}"], str):
                print(f"{rel} on {t.name}: the batch report differs from the single one")
                mismatches += 1
        print(f"{rel}: {len(targets)} targets", file=sys.stderr)
    out.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    return 1 if mismatches else 0


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if type(a) is not type(b):
        return f"{where or '/'}: {a!r:.80} != {b!r:.80}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}/{k}: present on one side only"
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], f"{where}/{k}")
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}/{i}")
    return f"{where or '/'}: {a!r:.80} != {b!r:.80}"


def diff(before: Path, after: Path) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    differ = 0
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            differ += 1
            print(f"{key}: {_first_difference(a.get(key), b.get(key))}")
    print(f"{len(set(a) | set(b))} (model, target) reports, {differ} differ")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("out", type=Path)
    r.add_argument("--models", type=Path, default=None)
    d = sub.add_parser("diff")
    d.add_argument("before", type=Path)
    d.add_argument("after", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "record":
        return record(args.out, models_dir(args.models))
    return diff(args.before, args.after)


if __name__ == "__main__":
    raise SystemExit(main())
