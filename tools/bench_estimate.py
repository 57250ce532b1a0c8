"""Speed of the analytic Ethos-U estimator against the Vela engine, in-process, measured in one run.

MobileNet-v2 (from ../shared/models or $HWOPT_SHARED_MODELS) is read once; then, in the same
process and run:
- one (model, target) pair on ethos-u55-128: `estimate(model, target)` with each engine;
- the 11 Ethos-U configurations: the Vela engine once per configuration, against one
  `estimate_batch` call of the analytic engine over all of them (geometry derived once per family).
Each timing is the best of `--repeat` runs. Accuracy is printed by tools/accuracy_estimate.py.

    python tools/bench_estimate.py [--models DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.corpus_common import ETHOS_U_CONFIGS, models_dir  # noqa: E402

SPEED_MODEL = "mobilenet_v2_1.0_224_INT8.tflite"


def best(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs)


def main(argv: list[str] | None = None) -> int:
    from hwopt.engines.estimate import estimate, estimate_batch
    from hwopt.format.tflite_io import read_model
    from hwopt.targets import resolve_target

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    path = models_dir(args.models) / SPEED_MODEL
    if not path.is_file():
        print(f"{path} not found", file=sys.stderr)
        return 2
    model = read_model(path)
    targets = [resolve_target(c) for c in ETHOS_U_CONFIGS]
    one = resolve_target("ethos-u55-128")
    estimate(model, one, "analytic")  # warm imports and caches of both engines
    estimate(model, one, "vela")
    vela_one = best(lambda: estimate(model, one, "vela"), args.repeat)
    ana_one = best(lambda: estimate(model, one, "analytic"), args.repeat)
    print(f"{SPEED_MODEL}, ethos-u55-128, one pair: vela {vela_one * 1e3:.0f} ms, analytic {ana_one * 1e3:.1f} ms, "
          f"ratio {vela_one / ana_one:.0f}x")
    vela_all = best(lambda: [estimate(model, t, "vela") for t in targets], args.repeat)
    ana_all = best(lambda: estimate_batch([(model, t) for t in targets], engine="analytic"), args.repeat)
    print(f"{SPEED_MODEL}, {len(targets)} Ethos-U configurations: vela {vela_all * 1e3:.0f} ms, analytic batch "
          f"{ana_all * 1e3:.1f} ms ({ana_all / len(targets) * 1e3:.1f} ms per pair), ratio {vela_all / ana_all:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
