#!/usr/bin/env python3
"""Check hwopt against vendor reference data: Arm's Ethos-N78 support library or Vela's streams.

  check_reference.py ethos-n DIR [--json]                    N78 encoder (bit-exact) and estimator
  check_reference.py ethos-u MODEL... --target NAME [--json] Ethos-U streams vs Vela, stream by stream
  check_reference.py ethos-u --generated N --target NAME     the same on N generated models (seeds 0..N-1)

Prints a summary (or JSON with schema hwopt.reference/1). Exit 0 when everything conforms, 1 when
something does not, 2 on bad input (one error line on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROG = "check_reference"


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _ethos_n(args: argparse.Namespace) -> int:
    import reference_ethos_n as rn  # the tools folder is on sys.path (above)

    try:
        report = rn.run(args.directory)
    except rn.ReferenceError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=False))
    else:
        print(report.to_text())
    return 0 if report.conforms else 1


def _ethos_u(args: argparse.Namespace) -> int:
    try:
        # Owned by the Ethos-U stream work; imported lazily so the ethos-n check never needs Vela.
        ru: Any = importlib.import_module("reference_ethos_u")
    except ImportError as exc:
        return _fail(f"the ethos-u check is not available ({exc})")
    result: int = ru.main(args)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    n = sub.add_parser("ethos-n", help="Arm Ethos-N support library reference directory")
    n.add_argument("directory")
    n.add_argument("--json", action="store_true", help="print hwopt.reference/1 JSON")
    n.set_defaults(func=_ethos_n)
    u = sub.add_parser("ethos-u", help="compile with Vela and compare weight streams")
    u.add_argument("models", nargs="*", metavar="MODEL")
    u.add_argument("--generated", type=int, default=0, metavar="N",
                   help="also check N models of hwopt.testing.generator (seeds 0..N-1; ones Vela rejects are skipped)")
    u.add_argument("--target", required=True)
    u.add_argument("--json", action="store_true", help="print hwopt.reference/1 JSON")
    u.set_defaults(func=_ethos_u)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return 2 if exc.code else 0
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
