"""One sweep job, (model, pipeline, target): enforce → encode → estimate → fidelity, on hwopt's engines.

`execute` runs in whatever process the execution engine picked (the driver, a pool worker,
a Ray task) and never raises for a problem with the job: a model Vela rejects or a bad
pipeline becomes a failed `Outcome` carrying the error line, so the sweep goes on.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from hwopt._version import __version__
from hwopt.engines.encode import encode_model
from hwopt.engines.enforce import check_enforceable
from hwopt.engines.estimate import estimate
from hwopt.engines.fidelity import Dataset, FidelityReport, Runner, compare, load_data
from hwopt.errors import HwoptError, NativeCodeError
from hwopt.format.tflite_io import read_model, serialize
from hwopt.ir import Model
from hwopt.passes.manager import PassContext, PassManager, parse_pipeline
from hwopt.sweeps.records import Outcome, Status, SweepFidelity, significant
from hwopt.sweeps.spec import NO_PIPELINE, fingerprint
from hwopt.targets.descriptor import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs besides the model (and data) bytes, which travel once per worker."""

    key: str
    model_sha: str
    pipeline: str  # the pipeline string ("none": the model as it is)
    target: Target
    engine: str  # "vela" | "analytic"
    data_sha: str | None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@lru_cache(maxsize=1)
def versions() -> tuple[str, str]:
    """(hwopt, Vela) versions: a new release of either invalidates every cached result."""

    try:
        vela = version("ethos-u-vela")
    except PackageNotFoundError:  # pragma: no cover - Vela is a hard dependency
        vela = "none"
    return __version__, vela


def engine_for(target: Target, engine: str) -> str:
    """The estimate engine of a job: Vela for Ethos-U, analytic for Ethos-N78 unless one is chosen."""
    return target.default_engine if engine == "auto" else engine


def cache_key(model_sha: str, pipeline: str, target: Target, engine: str, data_sha: str | None) -> str:
    """Content address of a job: model bytes, pipeline string, resolved descriptor, engine, data, versions."""
    hw, vela = versions()
    doc = {"model": model_sha, "pipeline": pipeline, "target": fingerprint(target), "engine": engine,
           "data": data_sha, "hwopt": hw, "vela": vela}
    return sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


def _enforce(model: Model, pipeline: str, target: Target, data: Dataset | None) -> Model:
    """Run the pipeline on a copy of the model, as `hwopt enforce` does; the result must still run in LiteRT."""
    check_enforceable(model)
    original = model.source or serialize(model)
    calibration = None if data is None else {str(i): a for i, a in enumerate(data.inputs)}
    ctx = PassContext(reference=original, calibration=calibration, target=target)
    passes = [p.with_context(ctx) for p in parse_pipeline(pipeline)]
    result = PassManager(passes).run(read_model(original))
    new_bytes = serialize(result.model)
    Runner(new_bytes)
    return read_model(new_bytes)


@lru_cache(maxsize=4)
def _data_file(data: bytes) -> str:
    """The data bytes as a file in this worker's temporary folder (the fidelity engine reads .npz files)."""
    fd, path = tempfile.mkstemp(prefix="hwopt-sweep-", suffix=".npz")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    atexit.register(_remove, path)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _fidelity(rep: FidelityReport) -> SweepFidelity:
    snrs = [o.snr_db for o in rep.outputs]
    finite = [s for s in snrs if s == s and s not in (float("inf"), float("-inf"))]
    return SweepFidelity(rep.samples, rep.top1_agreement, rep.accuracy_before, rep.accuracy_after,
                         min((o.cosine for o in rep.outputs), default=1.0), min(finite) if finite else None)


def _measure(job: Job, model_bytes: bytes, data: bytes | None) -> Outcome:
    model = read_model(model_bytes)
    dataset = load_data(_data_file(data), Runner(model_bytes).inputs) if data is not None else None
    if job.pipeline.strip().lower() == NO_PIPELINE:
        new_model = model
    else:
        new_model = _enforce(model, job.pipeline, job.target, dataset)
    new_bytes = bytes(new_model.source) if new_model.source else serialize(new_model)
    est = estimate(new_model, job.target, engine=job.engine)
    # Ethos-U weights: Vela's own streams from the estimate's compile when it ran Vela; otherwise the
    # block configurations of hwopt's searches, as `hwopt encode` does by default (no compile for it).
    compiled = est._vela.compiled if est._vela is not None else None
    enc = encode_model(new_model, job.target, block_source="vela" if compiled is not None and
                       job.target.family.is_ethos_u else "rule", vela_compiled=compiled)
    s = est.summary
    if est._vela is not None:
        flash = int(est._vela.perf.read_only_peak_bytes)  # Vela's read-only (flash) area of the compiled model
    else:  # constants of the graph with the weights replaced by their encoded streams
        flash = s.read_only_bytes - enc.summary.raw_bytes + enc.summary.encoded_bytes
    fid = _fidelity(compare(model_bytes, new_bytes, dataset)) if dataset is not None else None
    return Outcome(job.key, Status.OK, None, s.cycles, significant(s.inference_s), enc.summary.encoded_bytes, s.peak_sram_bytes,
                   flash, s.cpu_ops, fid)


def execute(job: Job, model_bytes: bytes, data: bytes | None = None) -> Outcome:
    """Run one job; a failure becomes a failed Outcome (cached only when it is the job's own fault)."""
    start = time.process_time()
    try:
        outcome = _measure(job, model_bytes, data)
    except NativeCodeError as exc:  # a crash, hang or memory limit in native code: may not recur, not cached
        outcome = Outcome.failure(job.key, str(exc), cacheable=False)
    except HwoptError as exc:
        outcome = Outcome.failure(job.key, str(exc), cacheable=True)
    except MemoryError:
        outcome = Outcome.failure(job.key, "out of memory", cacheable=False)
    except Exception as exc:  # a bug in hwopt or a dependency: report it, keep the sweep going
        log.debug("job %s failed", job.key, exc_info=True)
        outcome = Outcome.failure(job.key, f"internal error: {type(exc).__name__}: {exc}", cacheable=False)
    return dataclasses.replace(outcome, cpu_s=time.process_time() - start)


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise HwoptError(f"cannot read {path}: {exc.strerror or exc}") from None
