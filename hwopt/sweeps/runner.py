"""Run a sweep: make the jobs, serve what the cache has, hand the rest to an execution engine, report.

The report depends only on the spec and the results, never on which engine ran the jobs,
how many workers there were or which results came from the cache: the same spec gives a
byte-identical sweep.json on one core, on a process pool and on a Ray cluster.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hwopt.errors import OutputError, UsageError
from hwopt.fileio import atomic_write_text
from hwopt.sweeps.cache import ResultCache, normalise
from hwopt.sweeps.job import Job, cache_key, engine_for, read_bytes, sha256
from hwopt.sweeps.local import Engine, ProcessPoolEngine, SerialEngine
from hwopt.sweeps.pareto import pareto
from hwopt.sweeps.ray_engine import RayEngine
from hwopt.sweeps.records import SCHEMA, Outcome, Status, SweepRecord, SweepReport, SweepStats
from hwopt.sweeps.render import write_outputs
from hwopt.sweeps.spec import SweepSpec, spec_from_json, spec_to_json

log = logging.getLogger(__name__)

SPEC_COPY = "sweep.spec.json"
CACHE_DIR = "cache"


@dataclass(frozen=True)
class Progress:
    """Where a running sweep stands; handed to the progress callback after every finished job."""

    total: int
    done: int
    cached: int
    failed: int


@dataclass(frozen=True)
class SweepResult:
    report: SweepReport
    stats: SweepStats
    output: Path | None


@dataclass(frozen=True)
class _Cell:
    model: str
    pipeline: str
    target: str
    key: str


def default_engine(workers: int | None = None, ray: bool | str | None = None) -> Engine:
    """Ray when asked (True: local or RAY_ADDRESS; a string: that cluster), else a pool of `workers` processes."""
    if ray:
        return RayEngine(ray if isinstance(ray, str) else None)
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise UsageError(f"--workers must be at least 1, got {n}")
    return SerialEngine() if n == 1 else ProcessPoolEngine(n)


def _jobs(spec: SweepSpec) -> tuple[list[_Cell], dict[str, Job], dict[str, bytes]]:
    blobs: dict[str, bytes] = {}
    model_sha: dict[str, str] = {}
    for m in sorted(spec.models, key=lambda m: m.label):
        data = read_bytes(m.path)
        model_sha[m.label] = sha256(data)
        blobs[model_sha[m.label]] = data
    data_sha = None
    if spec.data is not None:
        data = read_bytes(spec.data)
        data_sha = sha256(data)
        blobs[data_sha] = data
    cells: list[_Cell] = []
    jobs: dict[str, Job] = {}
    pipelines = sorted(spec.pipelines)
    for m in sorted(spec.models, key=lambda m: m.label):
        for pname, ptext in pipelines:
            for t in sorted(spec.targets, key=lambda t: t.label):
                engine = engine_for(t.target, spec.engine)
                if engine == "vela" and not t.target.family.is_ethos_u:
                    raise UsageError(f"target {t.label} is an Ethos-N78: Vela does not compile for it; "
                                     "use engine = \"auto\" or \"analytic\"")
                key = cache_key(model_sha[m.label], ptext, t.target, engine, data_sha)
                cells.append(_Cell(m.label, pname, t.label, key))
                jobs.setdefault(key, Job(key, model_sha[m.label], ptext, t.target, engine, data_sha))
    return cells, jobs, blobs


def build_report(cells: list[_Cell], outcomes: dict[str, Outcome]) -> SweepReport:
    records = [SweepRecord.of(c.model, c.pipeline, c.target, outcomes[c.key]) for c in cells]
    records.sort(key=lambda r: (r.model, r.pipeline, r.target))
    return SweepReport(SCHEMA, len(records), records, pareto(records))


def load_resume_spec(output: str | os.PathLike[str]) -> SweepSpec:
    """The spec an interrupted sweep in `output` was started with."""
    p = Path(output) / SPEC_COPY
    try:
        text = p.read_text(encoding="utf-8")
    except OSError:
        raise UsageError(f"--resume: {output} holds no sweep to resume (no {SPEC_COPY})") from None
    return spec_from_json(text, str(p))


def run_sweep(spec: SweepSpec, *, output: str | os.PathLike[str] | None = None,
              cache: str | os.PathLike[str] | None = None, engine: Engine | None = None,
              progress: Callable[[Progress], None] | None = None) -> SweepResult:
    """Run every job of `spec` not already in the cache; write the reports into `output` when given."""
    out = Path(output) if output is not None else None
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
        atomic_write_text(out / SPEC_COPY, spec_to_json(spec))
    cache_dir = Path(cache) if cache is not None else (out / CACHE_DIR if out is not None else None)
    store = ResultCache(cache_dir) if cache_dir is not None else None
    cells, jobs, blobs = _jobs(spec)
    eng = engine or default_engine()
    started = time.perf_counter()
    outcomes: dict[str, Outcome] = {}
    for key in jobs:
        hit = store.get(key) if store else None
        if hit is not None:
            outcomes[key] = hit
    cached_keys = set(outcomes)
    per_key = Counter(c.key for c in cells)  # records per job: the same bytes under two names share one

    def report_progress() -> None:
        if progress is not None:
            failed = sum(per_key[k] for k, o in outcomes.items() if o.status is Status.FAILED)
            progress(Progress(len(cells), sum(per_key[k] for k in outcomes), sum(per_key[k] for k in cached_keys),
                              failed))

    report_progress()

    cpu = 0.0

    def done(outcome: Outcome) -> None:
        nonlocal cpu
        cpu += outcome.cpu_s
        outcome = normalise(outcome)
        if store is not None:
            store.put(outcome)
        outcomes[outcome.key] = outcome
        report_progress()

    # largest models first: the long jobs start early and the pool does not wait on one at the end
    todo = sorted((j for k, j in jobs.items() if k not in outcomes), key=lambda j: -len(blobs[j.model_sha]))
    if todo:
        eng.run(todo, blobs, done)
    missing = [k for k in jobs if k not in outcomes]
    if missing:  # an engine must answer every job; this is a bug, not a user error
        raise RuntimeError(f"execution engine {eng.name} returned no result for {len(missing)} job(s)")
    report = build_report(cells, outcomes)
    stats = SweepStats(computed=len(todo), cached=len(cached_keys), retried=eng.retried, failed=len(report.failures),
                       seconds=time.perf_counter() - started, cpu_seconds=cpu, engine=eng.name)
    if out is not None:
        write_outputs(report, out)
    return SweepResult(report, stats, out)
