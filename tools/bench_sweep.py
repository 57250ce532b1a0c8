"""Benchmark `hwopt sweep`: worker scaling, the fully cached rerun, and Ray's overhead per job.

One run measures, on the same jobs (models × {none, prune 50%} × three targets):
  1. a process pool of 1 worker and of 2 workers, no cache, run in the order 1, 2, 2, 1:
     jobs/s and their ratio;
  2. the 2-worker run writing a fresh cache, then the same sweep again fully cached
     (both timings include writing sweep.json/csv/md/html): the speed-up;
  3. Ray (a local instance with 2 CPUs, started before timing): the same jobs, its start-up
     time on its own, and its dispatch cost per job against the pool's, on jobs that do no
     work (an unreadable model), so that the figure does not depend on the CPU share.
It checks that every run gives the same sweep.json. Run it on a quiet machine, niced:

    nice python tools/bench_sweep.py [--models DIR] [--parts scaling,cache,ray]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("ds_cnn_l_quantized.tflite", "ds_cnn_m_quantized.tflite", "har_int8.tflite", "mlperftiny_vww_96_int8.tflite",
          "mlperftiny_resnet8_int8.tflite", "kws_micronet_m.tflite", "mlperftiny_ad01_int8.tflite")
TARGETS = ("ethos-u55-128", "ethos-u65-256", "ethos-n78-1tops-2ple")
PIPELINES = {"base": "none", "p50": "prune{sparsity=0.5}"}
EMPTY_JOBS = 200


def models_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("HWOPT_SHARED_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "models"


def timed(fn: object) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()  # type: ignore[operator]
    return time.perf_counter() - t, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="folder of the shared models (default ../shared/models)")
    ap.add_argument("--parts", default="scaling,cache,ray", help="which measurements (default: %(default)s)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    folder = models_dir(args.models)
    paths = [str(folder / m) for m in MODELS if (folder / m).is_file()]
    if not paths:
        print(f"no benchmark models in {folder}", file=sys.stderr)
        return 2

    from hwopt.sweeps import build_spec, run_sweep
    from hwopt.sweeps.local import ProcessPoolEngine

    spec = build_spec(paths, list(TARGETS), PIPELINES)
    n = spec.jobs
    print(f"{n} jobs: {len(paths)} models × {len(PIPELINES)} pipelines × {len(TARGETS)} targets, {os.cpu_count()} CPUs")
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    ref = run_sweep(spec, engine=ProcessPoolEngine(2)).report.to_json() if "scaling" not in parts else ""
    # A B B A: a drift in the machine's load falls on both pool sizes alike
    times: dict[int, list[float]] = {1: [], 2: []}
    reports = []
    for workers in (1, 2, 2, 1) if "scaling" in parts else ():
        t, r = timed(lambda w=workers: run_sweep(spec, engine=ProcessPoolEngine(w)))  # type: ignore[misc]
        times[workers].append(t)
        reports.append(r.report.to_json())  # type: ignore[attr-defined]
        cpu = r.stats.cpu_seconds  # type: ignore[attr-defined]
        print(f"  {workers} worker(s): {t:7.2f} s, jobs' CPU {cpu:6.2f} s: {cpu / t:.2f} cores in use", flush=True)
    if reports:
        ref = reports[0]
        assert all(text == ref for text in reports), "the pool sizes gave different sweep.json"
        t1, t2 = sum(times[1]) / 2, sum(times[2]) / 2
        print(f"1 worker : {t1:7.2f} s  {n / t1:6.2f} jobs/s (mean of 2 runs)")
        print(f"2 workers: {t2:7.2f} s  {n / t2:6.2f} jobs/s   scaling {t1 / t2:.2f}x (target >= 1.7x)")
    if "cache" in parts:
        cached_rerun(spec, ref)
    if "ray" in parts:
        ray_overhead(spec, ref)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


def cached_rerun(spec: object, ref: str) -> None:
    from hwopt.sweeps import run_sweep
    from hwopt.sweeps.local import ProcessPoolEngine

    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        tf, _ = timed(lambda: run_sweep(spec, output=work / "out", engine=ProcessPoolEngine(2)))
        tc, rc = timed(lambda: run_sweep(spec, output=work / "out", engine=ProcessPoolEngine(2)))
        assert rc.stats.cached == len({r.key for r in rc.report.records}) and rc.stats.computed == 0  # type: ignore[attr-defined]
        assert (work / "out" / "sweep.json").read_text(encoding="utf-8") == ref
        print(f"first run with cache: {tf:7.2f} s; fully cached rerun: {tc:6.3f} s   speed-up {tf / tc:.1f}x (target >= 20x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert rc.report.to_json() == ref  # type: ignore[attr-defined]


def ray_overhead(spec: object, ref: str) -> None:
    from hwopt.sweeps import build_spec, run_sweep
    from hwopt.sweeps.local import ProcessPoolEngine

    try:
        import ray
    except ImportError:
        print("ray not installed (pip install 'hwopt[scale]'): Ray overhead not measured")
        return
    from hwopt.sweeps.ray_engine import RayEngine

    n = spec.jobs  # type: ignore[attr-defined]

    # Dispatch cost alone: jobs that fail at once (an unreadable model) cost no work, so the
    # time per job is what each engine spends moving a job and its result.
    with tempfile.TemporaryDirectory() as tmp:
        junk = Path(tmp) / "junk.tflite"
        junk.write_bytes(b"not a model" * 100)
        empty = build_spec([str(junk)], [TARGETS[0]], {f"j{i:03d}": f"prune{{sparsity={i / 1000}}}" for i in range(EMPTY_JOBS)})
        tp, _ = timed(lambda: run_sweep(empty, engine=ProcessPoolEngine(2)))
        ts, _ = timed(lambda: ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False))
        try:
            te, _ = timed(lambda: run_sweep(empty, engine=RayEngine()))
            tr, rr = timed(lambda: run_sweep(spec, engine=RayEngine()))
        finally:
            ray.shutdown()
    assert rr.report.to_json() == ref, "Ray gave another sweep.json"  # type: ignore[attr-defined]
    print(f"ray (local, 2 CPUs): {tr:7.2f} s  {n / tr:6.2f} jobs/s on the same jobs; start-up {ts:.2f} s (not included)")
    print(f"dispatch cost of an empty job ({EMPTY_JOBS} jobs): 2-worker pool {tp / EMPTY_JOBS * 1e3:.1f} ms, "
          f"ray {te / EMPTY_JOBS * 1e3:.1f} ms; ray overhead {(te - tp) / EMPTY_JOBS * 1e3:+.1f} ms per job")


if __name__ == "__main__":
    raise SystemExit(main())
