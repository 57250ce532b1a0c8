"""Speed of the analytic Ethos-U estimator against the Vela engine, in-process, measured in one run.

MobileNet-v2 (from ../shared/models or $HWOPT_SHARED_MODELS) is timed, in the same process and run:
- one (model, target) pair on ethos-u55-128: `estimate(model, target)` with each engine;
- the 11 Ethos-U configurations: the Vela engine once per configuration, against one
  `estimate_batch` call of the analytic engine over all of them (geometry derived once for U55/U65, once for U85).
What is reused across timed calls: the file's bytes, read from disk once, and the resolved targets.
Before every timed call the bytes are parsed afresh into a new `Model` and every memo of the cost
models (functools caches: block searches, the calibration table) is cleared, untimed, so nothing
derived from the model (operator options, weight statistics, geometry, blocks, memory plan) carries
over from one call to the next; the imports and Vela's warm worker process are shared, as in any
long-running caller.
The four measurements alternate, round after round; each figure is the best of `--repeat` rounds,
as wall time and as CPU time (this process plus the Vela worker's, read from /proc), with the
load average beside the ratios. Last, a cold batch is timed by part (model checks, geometry with
weight statistics, memory plan, each family's cost models). Accuracy: tools/accuracy_estimate.py.

    python tools/bench_estimate.py [--models DIR] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.bench_common import worker_cpu_seconds  # noqa: E402
from tools.corpus_common import ETHOS_U_CONFIGS, models_dir  # noqa: E402

SPEED_MODEL = "mobilenet_v2_1.0_224_INT8.tflite"


def cold_caches() -> None:
    """Clear the functools caches of hwopt's cost-model modules (not target resolution), as a first call finds them."""
    for name, module in list(sys.modules.items()):
        if not name.startswith(("hwopt.targets.ethos_u.", "hwopt.targets.ethos_n.", "hwopt.targets.geometry",
                                "hwopt.analysis.", "hwopt.engines.")):
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and getattr(value, "__module__", None) == name:
                clear()


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; CPU includes the Vela worker's."""
    c0, w0, t0 = time.process_time(), worker_cpu_seconds(), time.perf_counter()
    fn()
    t1, c1, w1 = time.perf_counter(), time.process_time(), worker_cpu_seconds()
    return t1 - t0, (c1 - c0) + (w1 - w0)


def breakdown(data: bytes, targets: list[Any], repeat: int) -> dict[str, float]:
    """Where a cold analytic batch spends its CPU time (the fastest of `repeat`): the per-model preparation
    (checks, geometry with weight statistics, memory plan) and the cost models per target family."""
    import hwopt.engines.estimate as engine
    from hwopt.format.tflite_io import read_model

    spent: dict[str, float] = {}
    best: dict[str, float] = {}

    def counted(name: str, label: Callable[..., str]) -> Callable[..., object]:
        real = getattr(engine, name)

        def call(*a: Any, **k: Any) -> object:
            t0 = time.process_time()
            try:
                return real(*a, **k)
            finally:
                key = label(*a)
                spent[key] = spent.get(key, 0.0) + time.process_time() - t0
        return call

    patches = {"check_for_native": lambda *a: "model checks", "ethos_u_geometry": lambda *a: "geometry + weight stats",
               "estimate_memory": lambda *a: "memory plan",
               "costs_of": lambda g, t: f"cost models, all {t.family.value} targets"}
    saved = {name: getattr(engine, name) for name in patches}
    try:
        for name, label in patches.items():
            setattr(engine, name, counted(name, label))
        for _ in range(repeat):
            model = read_model(data)
            cold_caches()
            spent.clear()
            t0 = time.process_time()
            engine.estimate_batch([(model, t) for t in targets], engine="analytic")
            spent["total"] = time.process_time() - t0
            if spent["total"] < best.get("total", float("inf")):
                best = dict(spent)
    finally:
        for name, real in saved.items():
            setattr(engine, name, real)
    return best


def main(argv: list[str] | None = None) -> int:
    from hwopt.engines.estimate import estimate, estimate_batch
    from hwopt.format.tflite_io import read_model
    from hwopt.ir import Model
    from hwopt.targets import resolve_target

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    path = models_dir(args.models) / SPEED_MODEL
    if not path.is_file():
        print(f"{path} not found", file=sys.stderr)
        return 2
    data = path.read_bytes()
    targets = [resolve_target(c) for c in ETHOS_U_CONFIGS]
    one = resolve_target("ethos-u55-128")
    estimate(read_model(data), one, "analytic")  # warm imports and Vela's worker
    estimate(read_model(data), one, "vela")
    cases: dict[str, Callable[[Model], object]] = {
        "vela_one": lambda m: estimate(m, one, "vela"),
        "ana_one": lambda m: estimate(m, one, "analytic"),
        "vela_all": lambda m: [estimate(m, t, "vela") for t in targets],
        "ana_all": lambda m: estimate_batch([(m, t) for t in targets], engine="analytic"),
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, case in cases.items():
            model = read_model(data)  # parsed afresh, outside the timer
            cold_caches()
            runs[name].append(timed(lambda: case(model)))  # noqa: B023 (called at once)
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in runs.items()}
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    n = len(targets)

    def line(label: str, vela: tuple[float, float], ana: tuple[float, float], per: int) -> str:
        return (f"{label}: vela {vela[0] * 1e3:.0f} ms wall / {vela[1] * 1e3:.0f} ms CPU; analytic "
                f"{ana[0] * 1e3:.1f} ms wall / {ana[1] * 1e3:.1f} ms CPU ({ana[1] / per * 1e3:.1f} ms CPU per pair); "
                f"ratio {vela[0] / ana[0]:.0f}x wall, {vela[1] / ana[1]:.0f}x CPU (load average {load})")

    print(f"{SPEED_MODEL}, best of {args.repeat} alternating rounds")
    print(line("one pair, ethos-u55-128", best["vela_one"], best["ana_one"], 1))
    print(line(f"{n} Ethos-U configurations, analytic as one batch", best["vela_all"], best["ana_all"], n))
    parts = breakdown(data, targets, args.repeat)
    total = parts.pop("total")
    print(f"where a cold analytic batch's CPU time goes (fastest of {args.repeat}, {total * 1e3:.1f} ms in all):")
    parts["reports and the rest"] = max(total - sum(parts.values()), 0.0)
    for key in sorted(parts, key=lambda k: -parts[k]):
        print(f"  {key:42s} {parts[key] * 1e3:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
