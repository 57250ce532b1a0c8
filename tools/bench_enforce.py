"""Acceptance figures of `hwopt enforce`, each measured in this run and printed.

1. ic_resnet8_clustered8_perchannel_int8 + `--clusters 16 --granularity stream`: Vela
   encoded weight bytes (ethos-u55-128) drop by >= 35 %.
2. mlperftiny_resnet8_int8 + `--sparsity 0.5 --clusters 16 --preserve-sparsity`: encoded
   weight bytes at least 2x smaller.
3. A digits conv net (tools/digits_model.py) + `--sparsity 0.5 --clusters 16` (with bias
   correction): held-out int8 accuracy within 1 point of the unmodified int8 model.
4. Clustering a 1M-element int8 tensor to 16 values >= 50x faster than scikit-learn
   KMeans(n_clusters=16, n_init=10) on the same data.

Usage: python tools/bench_enforce.py [--models DIR] [--skip-train]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGET = "ethos-u55-128"


def _models_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("HWOPT_SHARED_MODELS")
    return Path(env) if env else ROOT.parent / "shared" / "models"


def bench_encoded(models: Path) -> bool:
    from hwopt.cli.enforce import EnforceOptions, build_pipeline
    from hwopt.engines.enforce import enforce
    from hwopt.targets import resolve_target

    ok = True
    cases = [
        ("derived/ic_resnet8_clustered8_perchannel_int8.tflite",
         EnforceOptions(clusters=16, granularity="stream"), "drop", 0.35),
        ("mlperftiny_resnet8_int8.tflite",
         EnforceOptions(sparsity=0.5, clusters=16, preserve_sparsity=True), "ratio", 2.0),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, opts, kind, goal in cases:
            src = models / name
            if not src.exists():
                print(f"SKIP {name}: not found under {models}")
                ok = False
                continue
            pipeline = build_pipeline(opts)
            rep = enforce(src, Path(tmp) / "out.tflite", pipeline, target=resolve_target(TARGET), measure_input=True)
            assert rep.encoded is not None
            assert rep.encoded.vela_before is not None and rep.encoded.vela_after is not None
            before, after = rep.encoded.vela_before, rep.encoded.vela_after
            drop = 1.0 - after / before
            ratio = before / after
            hit = drop >= goal if kind == "drop" else ratio >= goal
            ok &= hit
            print(f"{name} [{pipeline}]: Vela encoded weights ({TARGET}) {before:,} -> {after:,} bytes, "
                  f"drop {100 * drop:.1f}%, {ratio:.2f}x smaller "
                  f"(goal {'>= ' + format(goal, '.0%') + ' drop' if kind == 'drop' else '>= ' + str(goal) + 'x'}) "
                  f"{'PASS' if hit else 'FAIL'}; entropy bound {rep.encoded.entropy_before:,} -> "
                  f"{rep.encoded.entropy_after:,} bytes")
    return ok


def bench_digits() -> bool:
    sys.path.insert(0, str(ROOT / "tools"))
    from digits_model import build_digits_model

    from hwopt.engines.enforce import enforce

    dm = build_digits_model()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "in.tflite").write_bytes(dm.tflite)
        np.savez(t / "test.npz", x=dm.x_test, labels=dm.y_test)
        np.savez(t / "cal.npz", x=dm.x_calib)
        plain = enforce(t / "in.tflite", t / "a.tflite", "prune{sparsity=0.5},cluster{k=16,granularity=stream}",
                        data=t / "test.npz", measure_encoded=False)
        corrected = enforce(t / "in.tflite", t / "b.tflite",
                            "prune{sparsity=0.5},cluster{k=16,granularity=stream},bias-correct",
                            data=t / "test.npz", calibration=t / "cal.npz", measure_encoded=False)
    fp, fc = plain.fidelity, corrected.fidelity
    assert fp is not None and fc is not None and fp.accuracy_before is not None and fc.accuracy_after is not None
    assert fp.accuracy_after is not None
    drop = fc.accuracy_before - fc.accuracy_after if fc.accuracy_before is not None else 1.0
    hit = drop <= 0.01
    print(f"digits ({len(dm.y_test)} held-out): float {100 * dm.float_test_accuracy:.2f}%, int8 {100 * fp.accuracy_before:.2f}%, "
          f"--sparsity 0.5 --clusters 16: {100 * fp.accuracy_after:.2f}%, with bias correction: "
          f"{100 * fc.accuracy_after:.2f}% (drop {100 * drop:.2f} points, goal <= 1) {'PASS' if hit else 'FAIL'}")
    return hit


def bench_speed() -> bool:
    from sklearn.cluster import KMeans

    from hwopt.passes.kmeans1d import kmeans_1d

    rng = np.random.default_rng(0)
    w = np.clip(np.rint(rng.normal(0, 30, 1_000_000)), -128, 127).astype(np.int8)
    t0 = time.perf_counter()
    hist = np.bincount(w.astype(np.int64) + 128, minlength=256)  # int8: histogram of 256 bins, then exact DP
    vals = np.flatnonzero(hist) - 128
    res = kmeans_1d(vals, hist[vals + 128].astype(np.float64), 16)
    lut = np.arange(-128, 128)
    lut[vals + 128] = res.assigned
    ours = lut[w.astype(np.int64) + 128]  # every weight mapped through a 256-entry table
    t_ours = time.perf_counter() - t0
    mse_ours = float(np.mean((ours - w.astype(np.float64)) ** 2))
    t0 = time.perf_counter()
    km = KMeans(n_clusters=16, n_init=10, random_state=0).fit(w.reshape(-1, 1).astype(np.float64))
    t_sk = time.perf_counter() - t0
    mse_sk = float(km.inertia_ / w.size)
    ratio = t_sk / t_ours
    hit = ratio >= 50
    print(f"clustering 1M int8 to 16: hwopt {1000 * t_ours:.1f} ms (MSE {mse_ours:.4f}, integer centroids), "
          f"scikit-learn KMeans(n_init=10) {1000 * t_sk:.0f} ms (MSE {mse_sk:.4f}, float centroids): "
          f"{ratio:.0f}x faster (goal >= 50x) {'PASS' if hit else 'FAIL'}")
    return hit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="shared models folder (default ../shared/models)")
    ap.add_argument("--skip-train", action="store_true", help="skip the digits accuracy figure (needs tensorflow)")
    args = ap.parse_args()
    ok = bench_encoded(_models_dir(args.models))
    if not args.skip_train:
        ok &= bench_digits()
    ok &= bench_speed()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
