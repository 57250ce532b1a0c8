"""The one measurement pipeline: read → reject a Vela-compiled model → audit → Vela → rows per operator.

estimate, compile, gate, enforce, check and tree all measure a model on a target through `measure`,
one named stage per line with the `Target` as context, so the join of Vela's per-operator rows
with the audit's per-layer structure exists once (on `OpRef.op_key`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hwopt.analysis.deflate_job import DeflateJob
from hwopt.background import Background
from hwopt.engines.audit import AuditReport, Expectations, LayerAudit, audit_model
from hwopt.errors import UnsupportedModelError
from hwopt.format.tflite_io import read_model, serialize
from hwopt.ir import Model
from hwopt.targets import Target
from hwopt.targets.ethos_u.vela_engine import VelaOpRow, VelaResult, compile_model

Source = Model | bytes | str | os.PathLike[str]


@dataclass(frozen=True)
class Measurement:
    """One model measured on one target: the model, the bytes Vela compiled, the audit, Vela's result."""

    model: Model
    model_bytes: bytes = field(repr=False)
    label: str  # the path (or "<bytes>") reports name the model by
    target: Target
    audit: AuditReport | None
    vela: VelaResult | None

    def rows(self) -> list[tuple[VelaOpRow, LayerAudit | None]]:
        """Vela's row of every input operator with the audit's structure of its weights (None: no weights)."""
        if self.vela is None:
            return []
        structure = {la.op_key: la for la in self.audit.layers} if self.audit is not None else {}
        return [(r, structure.get(r.op_key)) for r in self.vela.ops]


def load_source(source: Source) -> tuple[Model, bytes, str]:
    """(model, its flatbuffer bytes, its label) from a model, bytes or a path.

    An in-memory model may have been edited since it was read, so its current state is serialized.
    """
    if isinstance(source, Model):
        label = str(source.path) if source.path else "<bytes>"
        return source, bytes(serialize(source)), label
    if isinstance(source, (bytes, bytearray, memoryview)):
        model = read_model(bytes(source))
        return model, bytes(model.source), "<bytes>"
    model = read_model(Path(source))
    return model, bytes(model.source), str(source)


def reject_compiled(model: Model, label: str, action: str) -> None:
    """UnsupportedModelError for a model Vela already compiled: its weights are an opaque command stream."""
    if model.vela_compiled:
        where = "" if label == "<bytes>" else f"{label}: "
        raise UnsupportedModelError(f"{where}the model is already compiled by Vela (it holds an ethos-u custom "
                                    f"operator); {action} the model given to Vela")


def measure(source: Source, target: Target, *, action: str = "measure", audit: bool = True, vela: bool = True,
            label: str | None = None, check: Callable[[Model], None] | None = None,
            progress: Callable[[str], None] | None = None, deflate: bool = True,
            exact_deflate: bool = False) -> Measurement:
    """Measure a model on an Ethos-U target: the audit of its weights and Vela's compile, joined by `rows()`.

    `action` names the caller in the Vela-compiled error; `label` overrides how reports name the
    model; `check` is the caller's own test of the model, run before anything expensive; `progress`
    hears "audit" and "vela" as those stages start; `deflate=False` skips the audit's compressed size,
    `exact_deflate=True` makes it exact where a large file would get a sampled estimate.
    """
    stage = progress or (lambda _name: None)
    model, data, read_label = load_source(source)                                             # read
    label = label or read_label
    reject_compiled(model, label, action)                                              # reject Vela-compiled
    if check is not None:
        check(model)                                                                   # the caller's checks
    if audit:
        stage("audit")
    # The DEFLATE size (exact: a zlib pass over the whole file, ~1x Vela's time on large pruned
    # models) runs in a child process beside Vela's compile; the audit collects it after.
    job = (DeflateJob(data, Path(label).name or "model.tflite", process=True, exact=exact_deflate)
           if audit and deflate and vela else None)
    if vela:
        stage("vela")
    ops = [op.op for op in model.subgraphs[0].operators] if model.subgraphs else []
    vela_call = Background(lambda: compile_model(data, target, op_names=ops)) if vela else None  # Vela
    try:
        audited = (audit_model(model, data, label, Expectations(), deflate=job, with_deflate=deflate,
                               exact_deflate=exact_deflate)
                   if audit else None)                                                 # audit, beside Vela
        compiled = vela_call.result() if vela_call is not None else None
    except BaseException:
        if job is not None:
            job.cancel()
        if vela_call is not None:
            vela_call.cancel()
        raise
    return Measurement(model, data, label, target, audited, compiled)                  # rows() joins them
