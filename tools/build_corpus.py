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

from tools.corpus_common import add_corpus_arguments, corpus_items, corpus_targets, shared_models  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from hwopt.testing.corpus import label

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_arguments(ap, split=False, models=True)
    args = ap.parse_args(argv)
    targets = corpus_targets(args)
    items = corpus_items(args)
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
