"""The Python API: one function per CLI command, returning the typed reports the CLI renders.

`import hwopt` loads this module on first use of one of its names (hwopt.__getattr__), so a
bare `import hwopt` stays cheap; importing it loads the engines but never Vela, LiteRT,
TensorFlow or matplotlib (those load inside the engine that runs them).
"""

from __future__ import annotations

import os

from hwopt.engines.audit import AuditReport, Expectations
from hwopt.engines.audit import audit as _audit
from hwopt.engines.compile import CompileResult, run_compile
from hwopt.engines.encode import EncodeReport
from hwopt.engines.encode import encode as _encode
from hwopt.engines.enforce import EnforceReport
from hwopt.engines.enforce import enforce as _enforce
from hwopt.engines.estimate import EstimateReport
from hwopt.engines.estimate import estimate as _estimate
from hwopt.engines.estimate import estimate_batch as _batch
from hwopt.engines.gate import GateOptions, GateReport, collect_metrics, run_gate
from hwopt.errors import UsageError
from hwopt.format.tflite_io import read_model as _read
from hwopt.format.tflite_io import write_model as _write
from hwopt.ir import Model
from hwopt.reports.compile_outputs import prepare_output_dir, write_compile_outputs
from hwopt.sweeps import SweepResult, build_spec, default_engine, load_spec, run_sweep
from hwopt.targets import Target, resolve_target

PathLike = str | os.PathLike[str]


def _target(spec: str | os.PathLike[str] | Target, system_config: str | None = None,
            memory_mode: str | None = None) -> Target:
    """The API's one edge where a target spelling becomes a Target."""
    return resolve_target(spec, system_config=system_config, memory_mode=memory_mode)


def read_model(source: PathLike | bytes) -> Model:
    """Read a .tflite file or bytes into the IR (`hwopt.format.tflite_io.read_model`)."""

    return _read(source)


def write_model(model: Model, path: PathLike) -> os.PathLike[str]:
    """Write a model atomically; never over its own input file."""
    return _write(model, path)


def audit(path: PathLike, *, expect_sparsity: float | None = None, expect_clusters: int | None = None,
          per_channel: bool = False, expect_int8: bool = False, deflate: bool = True,
          exact_deflate: bool = False) -> AuditReport:
    """`hwopt audit`: per-layer sparsity and cluster structure; `.failed` when expectations are unmet.

    `deflate=False` leaves out the DEFLATE size of the file (`model.deflate_bytes` is None);
    files over 1 MiB get a sampled estimate of it (`model.deflate` says so, with its error bound)
    unless `exact_deflate=True`.
    """
    return _audit(path, Expectations(expect_sparsity, expect_clusters, per_channel, expect_int8), with_deflate=deflate,
                  exact_deflate=exact_deflate)


def estimate(model: PathLike | bytes | Model, target: str | os.PathLike[str] | Target, *, engine: str | None = None,
             system_config: str | None = None, memory_mode: str | None = None) -> EstimateReport:
    """`hwopt estimate`: per-layer cycles and SRAM; the engine defaults to the target's (`Target.default_engine`)."""
    source = model if isinstance(model, (str, bytes)) or not isinstance(model, os.PathLike) else os.fspath(model)
    return _estimate(source, _target(target, system_config, memory_mode), engine=engine)


def estimate_batch(models: list[PathLike | bytes | Model], targets: list[str | os.PathLike[str] | Target], *,
                   engine: str | None = None) -> list[list[EstimateReport]]:
    """Every model on every target in one process (reports[model][target]); each model is read once and,
    with the analytic engine, reduced to its operator geometry once for all targets."""
    tgts = [_target(t) for t in targets]
    srcs = [m if isinstance(m, (str, bytes)) or not isinstance(m, os.PathLike) else os.fspath(m) for m in models]
    flat = _batch(((m, t) for m in srcs for t in tgts), engine=engine)
    return [flat[i * len(tgts):(i + 1) * len(tgts)] for i in range(len(srcs))]


def encode(path: PathLike, target: str | os.PathLike[str] | Target) -> EncodeReport:
    """`hwopt encode`: every layer's weights in the target's compressed format, round trip checked."""

    return _encode(path, _target(target))


def enforce(path: PathLike, output: PathLike, pipeline: str, *, data: PathLike | None = None,
            calibration: PathLike | None = None, target: str | os.PathLike[str] | Target | None = None,
            max_drop: float | None = None, measure_input: bool = False) -> EnforceReport:
    """`hwopt enforce`: run a pass pipeline on the int8 model and write it (unless fidelity fails).

    `measure_input` also encodes and compiles the input, for encoded bytes before and after."""
    return _enforce(path, output, pipeline, data=data, calibration=calibration,
                    target=None if target is None else _target(target), max_drop=max_drop, measure_input=measure_input)


def compile(model: PathLike | None, target: str | os.PathLike[str] | Target, output_dir: PathLike = "hwopt-out", *,
            pipeline: str | None = None, data: PathLike | None = None, system_config: str | None = None,
            memory_mode: str | None = None, exact_deflate: bool = False) -> CompileResult:
    """`hwopt compile`: audit, optional pipeline, Vela; writes the model and reports into output_dir.

    `exact_deflate=True`: the input's DEFLATE size is exact even where a large file gets a sampled estimate.
    """
    tgt = _target(target, system_config, memory_mode)
    prepare_output_dir(output_dir, model, tgt, data)
    return write_compile_outputs(run_compile(model, tgt, pipeline=pipeline, data=data, exact_deflate=exact_deflate),
                                 output_dir, data=data)


def gate(model: PathLike, target: str | os.PathLike[str] | Target, baseline: PathLike, *, update_baseline: bool = False,
         junit: PathLike | None = None, data: PathLike | None = None, system_config: str | None = None,
         memory_mode: str | None = None, **tolerances: float | int | None) -> GateReport:
    """`hwopt gate`: compare with a baseline; tolerances are GateOptions fields (e.g. max_cycles_increase=5)."""
    try:
        opts = GateOptions(**tolerances)  # type: ignore[arg-type]
    except TypeError as exc:

        raise UsageError(f"unknown gate tolerance: {exc}") from None
    tgt = _target(target, system_config, memory_mode)
    return run_gate(lambda: collect_metrics(model, tgt, data=data),
                    baseline, opts, update=update_baseline, junit=junit)


def sweep(spec: PathLike | None = None, *, models: list[str] | None = None, targets: list[str] | None = None,
          pipelines: dict[str, str] | None = None, data: PathLike | None = None, engine: str = "auto",
          output: PathLike | None = None, cache: PathLike | None = None, workers: int | None = None,
          ray: bool | str | None = None) -> SweepResult:
    """`hwopt sweep`: every (model, pipeline, target) job; `.report.records` are typed `SweepRecord`s.

    Give a SPEC TOML file, or the axes as lists (`pipelines` maps a name to a pipeline string,
    "none" for the model as it is). `workers` local processes (1: in this process), or Ray
    (`ray=True`, or a cluster address). With `output`, results are cached in output/cache
    and the reports written there; a rerun computes only what is missing.
    """
    if spec is not None:
        if models or targets or pipelines or data is not None:
            raise UsageError("give either a SPEC file or models/targets/pipelines, not both")
        resolved = load_spec(spec)
    else:
        resolved = build_spec(models or [], targets or [], pipelines or {}, data=data, engine=engine)
    return run_sweep(resolved, output=output, cache=cache, engine=default_engine(workers, ray))
