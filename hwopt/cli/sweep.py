"""`hwopt sweep SPEC -o DIR`: models × enforce pipelines × targets, cached and resumable, locally or on Ray."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("sweep", help="models × pipelines × targets in one command, with Pareto fronts",
                       description="Run every (model, enforce pipeline, target) job: enforce → encode → estimate "
                       "(Vela for Ethos-U, analytic for Ethos-N78) → fidelity when data is given. Results are cached "
                       "by content in DIR/cache, so a rerun or --resume computes only what is missing. Writes "
                       "sweep.json, sweep.csv, sweep.md and sweep.html (Pareto fronts) into DIR.")
    p.add_argument("spec", nargs="?", metavar="SPEC", help="TOML: models, targets, [pipelines], data, engine")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the reports and the cache")
    p.add_argument("--model", action="append", default=[], metavar="M", help="a model path, glob or hwopt tree folder (repeatable)")
    p.add_argument("--target", action="append", default=[], metavar="T", help="a target name or descriptor path (repeatable)")
    p.add_argument("--pipeline", action="append", default=[], metavar="NAME=SPEC",
                   help="a named enforce pipeline, e.g. p50='prune{sparsity=0.5}' (repeatable; default none=none)")
    p.add_argument("--data", metavar="NPZ", help="inputs (and labels) for fidelity")
    p.add_argument("--engine", choices=("auto", "vela", "analytic"), default=None,
                   help="estimate engine (default auto: vela for Ethos-U, analytic for Ethos-N78)")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: one per CPU; 1 runs in-process)")
    p.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                   help="run the jobs as Ray tasks: on ADDRESS, or RAY_ADDRESS, or a local Ray instance (needs hwopt[scale])")
    p.add_argument("--cache", metavar="DIR", help="result cache folder (default: DIR/cache; share it between sweeps)")
    p.add_argument("--resume", action="store_true", help="continue the sweep recorded in DIR (SPEC may be omitted)")
    p.add_argument("--json", action="store_true", help="print the hwopt.sweep/1 JSON report")
    p.set_defaults(func=run)


def _spec(args: argparse.Namespace) -> Any:
    from hwopt.errors import UsageError
    from hwopt.sweeps import build_spec, load_resume_spec, load_spec

    flags = bool(args.model or args.target or args.pipeline or args.data)
    if args.spec and flags:
        raise UsageError("give either SPEC or --model/--target/--pipeline/--data, not both")
    if args.spec:
        if args.engine is not None:
            raise UsageError("--engine goes with --model/--target; a SPEC sets it with engine = \"...\"")
        return load_spec(args.spec)
    if flags:
        pipelines: list[tuple[str, str]] = []
        for item in args.pipeline:
            name, sep, text = item.partition("=")
            if not sep or not name.strip():
                raise UsageError(f"--pipeline must be NAME=SPEC, got {item!r}")
            pipelines.append((name.strip(), text))
        return build_spec(args.model, args.target, pipelines, data=args.data, engine=args.engine or "auto")
    if args.resume:
        return load_resume_spec(args.output)
    raise UsageError("give a SPEC file, or --model and --target (or --resume with the DIR of a sweep)")


class _Lines:
    """Progress for logs and CI: a line at the start, every tenth of the jobs, and the end."""

    def __init__(self) -> None:
        self.last = -1

    def __call__(self, p: Any) -> None:
        step = max(p.total // 10, 1)
        if p.done // step != self.last // step or p.done == p.total:
            if p.done != self.last:
                sys.stderr.write(f"hwopt: sweep: {p.done}/{p.total} jobs ({p.cached} cached, {p.failed} failed)\n")
                sys.stderr.flush()
            self.last = p.done


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from hwopt.cli._common import console
    from hwopt.sweeps import default_engine, run_sweep

    if isinstance(args.ray, str) and args.spec is None and args.ray.endswith(".toml"):
        args.spec, args.ray = args.ray, True  # `--ray SPEC`: the optional ADDRESS took the SPEC
    spec = _spec(args)
    engine = default_engine(args.workers, args.ray)
    # a CI job cancelled with SIGTERM stops like Ctrl-C: workers stopped, finished results kept for --resume
    signal.signal(signal.SIGTERM, _interrupt)
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                       TimeRemainingColumn(), console=console(stderr=True), transient=True)
        task = bar.add_task("sweep", total=spec.jobs, note="")
        with bar:
            result = run_sweep(spec, output=args.output, cache=args.cache, engine=engine,
                               progress=lambda p: bar.update(task, completed=p.done,
                                                             note=f"{p.cached} cached, {p.failed} failed"))
    else:
        result = run_sweep(spec, output=args.output, cache=args.cache, engine=engine, progress=_Lines())
    report, stats = result.report, result.stats
    if args.json:
        sys.stdout.write(report.to_json())
        return 1 if report.failed else 0
    con = console()
    ok = report.jobs - len(report.failures)
    con.print(f"{report.jobs} jobs: {ok} ok, {len(report.failures)} failed; {stats.computed} computed, "
              f"{stats.cached} from the cache, {stats.retried} retried ({stats.engine}, {stats.seconds:.1f} s, "
              f"jobs' CPU {stats.cpu_seconds:.1f} s)")
    for model, best in report.pareto.fastest.items():
        con.print(f"  fastest for {model}: {best.pipeline} on {best.target}", markup=False)
    for r in report.failures:
        con.print(f"  failed: {r.model} / {r.pipeline} / {r.target}: {r.error}", markup=False)
    con.print(f"wrote sweep.json, sweep.csv, sweep.md, sweep.html to {args.output}", markup=False)
    return 1 if report.failed else 0
