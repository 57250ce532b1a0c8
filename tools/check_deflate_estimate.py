#!/usr/bin/env python3
"""How close the audit's sampled DEFLATE size comes to what `zipfile` writes, and its bound.

For every model given (default: ../shared/models and the scale ladders of
tools/scale_models.py) prints the file size, how `hwopt audit` sizes it (exact or sampled),
the error of its figure against the ZIP_DEFLATED archive `zipfile` itself builds, the stated
bound (`max_error`) and the time of both. `--forced` also estimates every model large enough
with a quarter of the sample (8 blocks), so smaller models test the estimator too.
Exits 1 when an error exceeds its bound.

Usage: python tools/check_deflate_estimate.py [MODEL ...] [--ladder fc|conv|all|none] [--forced]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_models import build_ladders  # a sibling script

from hwopt.analysis.deflate import measure_deflate, sampled_deflated_bytes, zip_size

ROOT = Path(__file__).resolve().parent.parent


def zipfile_size(data: bytes, name: str) -> int:
    buf = io.BytesIO()
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, data)
    return len(buf.getvalue())


def shared_models() -> list[Path]:
    folder = Path(os.environ.get("HWOPT_SHARED_MODELS", ROOT.parent / "shared" / "models"))
    return sorted(folder.rglob("*.tflite")) if folder.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--ladder", choices=("fc", "conv", "all", "none"), default="all")
    ap.add_argument("--forced", action="store_true", help="also estimate smaller models with an 8-block sample")
    args = ap.parse_args(argv)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="hwopt-deflate-") as tmp:
        paths = list(args.models) or shared_models()
        if args.ladder != "none":
            paths += build_ladders(Path(tmp), args.ladder)
        print("| model | bytes | method | error | bound | audit time | exact time |" + (" forced: error / bound |" if args.forced else ""))
        print("|---|---|---|---|---|---|---|" + ("---|" if args.forced else ""))
        for path in paths:
            data = path.read_bytes()
            start = time.perf_counter()
            size = measure_deflate(data, path.name)
            took = time.perf_counter() - start
            start = time.perf_counter()
            exact = zipfile_size(data, path.name)
            exact_took = time.perf_counter() - start
            error = (size.bytes - exact) / exact
            failed += abs(size.bytes - exact) > size.max_error * size.bytes
            row = (f"| {path.stem} | {len(data):,} | {size.method.value} | {100 * error:+.2f} % | "
                   f"{100 * size.max_error:.2f} % | {1e3 * took:.0f} ms | {1e3 * exact_took:.0f} ms |")
            if args.forced:
                forced = sampled_deflated_bytes(data, blocks=8)
                if forced is None:
                    row += " - |"
                else:
                    stream, bound = forced
                    est = zip_size(path.name, len(data), stream)
                    failed += abs(est - exact) > bound
                    row += f" {100 * (est - exact) / exact:+.2f} % / {100 * bound / est:.2f} % |"
            print(row, flush=True)
    print(f"\n{failed} figure(s) outside their bound", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
