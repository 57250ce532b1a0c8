"""Build (or top up) the Vela-labelled corpus of generated models for the analytic cost model.

Generates `--count` models from `--seed` (deterministic), labels each on every Ethos-U configuration
with the Vela engine, and stores the labels in the content-hash cache (`--cache`); models already
labelled for the same Vela version and descriptor are skipped. The shared models are labelled too
(`--models`), so the accuracy table can be printed for them. Run it niced: it keeps one core busy.

    nice python tools/build_corpus.py [--seed 1] [--count 1000] [--cache .hwopt-cache/labels]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.corpus_common import DEFAULT_CACHE, ETHOS_U_CONFIGS, shared_models  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from hwopt.targets import resolve_target
    from hwopt.testing.corpus import label
    from hwopt.testing.generator import corpus

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--models", type=Path, default=None, help="folder of real models (default ../shared/models)")
    ap.add_argument("--configs", default=",".join(ETHOS_U_CONFIGS))
    args = ap.parse_args(argv)
    targets = [resolve_target(t) for t in args.configs.split(",")]
    items = [(m.name, m.data) for m in corpus(args.seed, args.count)]
    items += [(p.stem, p.read_bytes()) for p in shared_models(args.models)]
    start, fresh, cached, failed = time.monotonic(), 0, 0, 0
    for n, (name, data) in enumerate(items, 1):
        for t in targets:
            labels, hit = label(name, data, t, args.cache)
            cached += hit
            fresh += not hit
            failed += labels.error is not None
        if n % 25 == 0 or n == len(items):
            print(f"{n}/{len(items)} models, {fresh} compiled, {cached} cached, {failed} rejected, "
                  f"{time.monotonic() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
