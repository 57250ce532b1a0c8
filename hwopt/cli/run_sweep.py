"""`hwopt sweep SPEC -o DIR`: models × enforce pipelines × targets, cached and resumable, locally or on Ray."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from hwopt.cli._common import console
from hwopt.errors import UsageError
from hwopt.sweeps import build_spec, default_engine, load_resume_spec, load_spec, run_sweep


def _spec(args: argparse.Namespace) -> Any:
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
