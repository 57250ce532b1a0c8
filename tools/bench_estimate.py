"""Validate the analytic Ethos-U cost model against Vela, and time both engines.

For every int8 model in ../shared/models (or $HWOPT_SHARED_MODELS) and each of ethos-u55-128,
ethos-u65-256 and ethos-u85-256, compares per-operator cycles of `--engine analytic` with
`--engine vela` on the operators Vela places on the NPU and spends cycles on: median absolute
relative error and Spearman rank correlation. Then times both engines on MobileNet-v2 in the
same run and prints the speed ratio.

    python tools/bench_estimate.py [--models DIR] [--per-model] [--configs T1,T2,...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

CONFIGS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")
SPEED_MODEL = "mobilenet_v2_1.0_224_INT8.tflite"


def models_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("HWOPT_SHARED_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "models"


def int8_models(folder: Path) -> list[Path]:
    """Models whose activations are int8 and that Vela has not compiled yet."""
    from hwopt.format.tflite_io import read_model
    from hwopt.ir import DType

    out = []
    for p in sorted([*folder.glob("*.tflite"), *folder.glob("derived/*.tflite")]):
        m = read_model(p)
        if m.vela_compiled:
            continue
        dtypes = {t.dtype for sg in m.subgraphs for op in sg.operators for i in op.outputs
                  if (t := sg.tensor(i)) is not None}
        if DType.INT8 in dtypes and not dtypes & {DType.INT16, DType.UINT8} and not all(d.is_float for d in dtypes):
            out.append(p)
    return out


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def compare(path: Path, target_name: str) -> tuple[list[float], list[float]]:
    """(vela cycles, analytic cycles) of the operators Vela runs on the NPU with non-zero cycles."""
    from hwopt import estimate

    vela = estimate(path, target_name, engine="vela")
    ana = estimate(path, target_name, engine="analytic")
    a_by = {(la.subgraph, la.op_index): la for la in ana.layers}
    v, e = [], []
    for la in vela.layers:
        if la.placement != "npu" or la.cycles <= 0:
            continue
        other = a_by[(la.subgraph, la.op_index)]
        v.append(float(la.cycles))
        e.append(float(other.cycles))
    return v, e


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="folder of .tflite models (default ../shared/models)")
    ap.add_argument("--per-model", action="store_true", help="also print per-model figures")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated targets (default: %(default)s)")
    args = ap.parse_args(argv)
    folder = models_dir(args.models)
    if not folder.is_dir():
        print(f"models folder {folder} not found", file=sys.stderr)
        return 2
    models = int8_models(folder)
    print(f"{len(models)} int8 models from {folder.name}/")
    print(f"{'config':16} {'layers':>6} {'median |rel err|':>17} {'spearman':>9} {'total err':>10}")
    for cfg in args.configs.split(","):
        all_v: list[float] = []
        all_e: list[float] = []
        tot_err = []
        for p in models:
            v, e = compare(p, cfg)
            if not v:
                continue
            all_v += v
            all_e += e
            tot_err.append(abs(sum(e) - sum(v)) / sum(v))
            if args.per_model:
                rel = [abs(x - y) / y for x, y in zip(e, v, strict=True)]
                print(f"  {p.name:50} {len(v):4} med {statistics.median(rel):6.1%} rho {spearman(v, e):5.2f} "
                      f"total {sum(e) / sum(v):5.2f}x")
        rel = [abs(x - y) / y for x, y in zip(all_e, all_v, strict=True)]
        print(f"{cfg:16} {len(rel):6} {statistics.median(rel):17.1%} {spearman(all_v, all_e):9.3f} "
              f"{statistics.median(tot_err):10.1%}")

    speed = folder / SPEED_MODEL
    if speed.is_file():
        from hwopt import estimate

        timings = {}
        for engine in ("vela", "analytic"):
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                estimate(speed, "ethos-u55-128", engine=engine)
                runs.append(time.perf_counter() - t0)
            timings[engine] = min(runs)
        print(f"speed on {SPEED_MODEL} (ethos-u55-128, best of 3): vela {timings['vela'] * 1e3:.0f} ms, "
              f"analytic {timings['analytic'] * 1e3:.0f} ms, ratio {timings['vela'] / timings['analytic']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
