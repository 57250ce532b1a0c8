#!/usr/bin/env python3
"""Record every command's --json output on a model folder, or compare two recordings.

Used to prove a refactor changes no figure: record before, record after, diff.

    python tools/compare_outputs.py record OUTDIR [--models DIR] [--python PY]
    python tools/compare_outputs.py diff BEFORE AFTER

`record` runs audit, estimate (vela and analytic), encode and compile for a set of targets
on every .tflite under the model folder and stores stdout (parsed JSON, else text) with
the exit code. `diff` lists every (model, command) whose JSON differs, with the first
differing path; it exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

COMMANDS: list[tuple[str, list[str]]] = [
    ("audit", ["audit", "{model}", "--json"]),
    ("estimate-u55-128-vela", ["estimate", "{model}", "--target", "ethos-u55-128", "--json"]),
    ("estimate-u55-128-analytic", ["estimate", "{model}", "--target", "ethos-u55-128", "--engine", "analytic", "--json"]),
    ("estimate-u65-256-analytic", ["estimate", "{model}", "--target", "ethos-u65-256", "--engine", "analytic", "--json"]),
    ("estimate-u85-256-vela", ["estimate", "{model}", "--target", "ethos-u85-256", "--json"]),
    ("estimate-u85-256-analytic", ["estimate", "{model}", "--target", "ethos-u85-256", "--engine", "analytic", "--json"]),
    ("estimate-n78", ["estimate", "{model}", "--target", "ethos-n78-4tops-4ple", "--json"]),
    ("encode-u55-128", ["encode", "{model}", "--target", "ethos-u55-128", "--json"]),
    ("encode-u85-256", ["encode", "{model}", "--target", "ethos-u85-256", "--json"]),
    ("encode-n78", ["encode", "{model}", "--target", "ethos-n78-4tops-4ple", "--json"]),
    ("compile-u55-128", ["compile", "{model}", "--target", "ethos-u55-128", "-o", "{tmp}", "--json"]),
]


def _run(python: str, argv: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        args = [a.replace("{tmp}", os.path.join(tmp, "out")) for a in argv]
        proc = subprocess.run([python, "-m", "hwopt", *args], capture_output=True, text=True, timeout=600)
    try:
        out: Any = json.loads(proc.stdout)
    except json.JSONDecodeError:
        out = proc.stdout
    return {"exit": proc.returncode, "stdout": out, "stderr": proc.stderr.strip().splitlines()[-1:] if proc.stderr else []}


def record(outdir: Path, models: Path, python: str) -> int:
    outdir.mkdir(parents=True, exist_ok=True)
    for model in sorted(models.rglob("*.tflite")):
        rel = model.relative_to(models)
        for name, argv in COMMANDS:
            dest = outdir / f"{str(rel).replace('/', '__')}.{name}.json"
            if dest.exists():
                continue
            result = _run(python, [a.replace("{model}", str(model)) for a in argv])
            dest.write_text(json.dumps(result, indent=1, sort_keys=True))
            print(f"{rel} {name}: exit {result['exit']}", flush=True)
    return 0


def _first_diff(a: Any, b: Any, path: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"[:300]
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}: only in {'after' if key not in a else 'before'}"
            d = _first_diff(a[key], b[key], f"{path}.{key}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _first_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"[:300]


def diff(before: Path, after: Path) -> int:
    differ = 0
    for path in sorted(before.glob("*.json")):
        other = after / path.name
        if not other.exists():
            print(f"{path.name}: missing after")
            differ += 1
            continue
        d = _first_diff(json.loads(path.read_text()), json.loads(other.read_text()))
        if d:
            print(f"{path.name}: {d}")
            differ += 1
    total = len(list(before.glob("*.json")))
    print(f"{differ} of {total} outputs differ")
    return 1 if differ else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("outdir", type=Path)
    r.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models")
    r.add_argument("--python", default=sys.executable)
    d = sub.add_parser("diff")
    d.add_argument("before", type=Path)
    d.add_argument("after", type=Path)
    a = p.parse_args()
    if a.cmd == "record":
        return record(a.outdir, a.models, a.python)
    return diff(a.before, a.after)


if __name__ == "__main__":
    sys.exit(main())
