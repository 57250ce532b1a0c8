"""Typed results of a sweep: one `SweepRecord` per (model, pipeline, target) and the whole `SweepReport`.

`Outcome` is what a worker measures for one cache key (no labels: the same bytes under two
names share it); the driver turns it into labelled records. Everything here is plain data,
so results pickle to pool workers and Ray tasks and serialise to byte-identical JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hwopt.records import to_jsonable

SCHEMA = "hwopt.sweep/1"
MAX_ERROR_CHARS = 240  # an error line in a table stays readable; the cause is in its first words
TIME_DIGITS = 6  # significant digits of inference_s: a tiny model runs in microseconds


def significant(x: float | None, digits: int = TIME_DIGITS) -> float | None:
    """`x` rounded to significant digits (hwopt's JSON rounds to decimal places, which would
    leave one digit of a microsecond latency)."""
    return None if x is None else float(f"{x:.{digits}g}")


class Status(str, Enum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class SweepFidelity:
    """LiteRT fidelity of the enforced model against its input model on the SPEC's data."""

    samples: int
    top1_agreement: float | None
    accuracy_before: float | None  # with labels in the data
    accuracy_after: float | None
    min_cosine: float  # lowest output cosine similarity
    min_snr_db: float | None  # lowest output SNR; None when outputs are identical

    @property
    def score(self) -> float:
        """The figure the Pareto front maximises: accuracy, else top-1 agreement, else cosine."""
        if self.accuracy_after is not None:
            return self.accuracy_after
        return self.top1_agreement if self.top1_agreement is not None else self.min_cosine


@dataclass(frozen=True)
class Outcome:
    """What one job measured (or why it failed); `cacheable` is False for failures that may not recur."""

    key: str
    status: Status
    error: str | None = None
    cycles: int | None = None
    inference_s: float | None = None
    encoded_weight_bytes: int | None = None
    peak_sram_bytes: int | None = None
    flash_bytes: int | None = None
    cpu_operators: int | None = None
    fidelity: SweepFidelity | None = None
    cacheable: bool = True
    cpu_s: float = field(default=0.0, compare=False)  # CPU time the job took where it ran (not stored)

    @classmethod
    def failure(cls, key: str, error: str, *, cacheable: bool) -> Outcome:
        text = " ".join(error.split())
        if len(text) > MAX_ERROR_CHARS:
            text = text[: MAX_ERROR_CHARS - 1] + "…"
        return cls(key, Status.FAILED, text, cacheable=cacheable)


@dataclass(frozen=True)
class SweepRecord:
    """One job of the sweep as sweep.json lists it."""

    model: str
    pipeline: str
    target: str
    status: Status
    error: str | None
    key: str
    cycles: int | None
    inference_s: float | None
    encoded_weight_bytes: int | None
    peak_sram_bytes: int | None
    flash_bytes: int | None
    cpu_operators: int | None
    fidelity: SweepFidelity | None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @classmethod
    def of(cls, model: str, pipeline: str, target: str, o: Outcome) -> SweepRecord:
        return cls(model, pipeline, target, o.status, o.error, o.key, o.cycles, o.inference_s, o.encoded_weight_bytes,
                   o.peak_sram_bytes, o.flash_bytes, o.cpu_operators, o.fidelity)


@dataclass(frozen=True)
class ParetoPoint:
    model: str
    pipeline: str
    target: str


@dataclass(frozen=True)
class Pareto:
    """Fronts over encoded size and latency (lower) and fidelity (higher, when data was given).

    `per_target`: for each target, the (model, pipeline) pairs no other pair beats on it;
    `per_model`: for each model, the (pipeline, target) pairs no other pair beats across targets;
    `fastest`: for each model, the lowest-latency pair of its cross-target front.
    """

    objectives: list[str]
    per_target: dict[str, list[ParetoPoint]]
    per_model: dict[str, list[ParetoPoint]]
    fastest: dict[str, ParetoPoint]


@dataclass(frozen=True)
class SweepReport:
    schema: str
    jobs: int
    records: list[SweepRecord]
    pareto: Pareto

    @property
    def failures(self) -> list[SweepRecord]:
        return [r for r in self.records if not r.ok]

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def to_json(self) -> str:
        """sweep.json: hwopt's JSON conventions, with inference_s to significant digits."""
        doc = to_jsonable(self)
        for d, r in zip(doc["records"], self.records, strict=True):
            d["inference_s"] = significant(r.inference_s)
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class SweepStats:
    """How the jobs were served in this run (not part of sweep.json, which must not depend on it)."""

    computed: int = 0
    cached: int = 0
    retried: int = 0
    failed: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the jobs computed in this run, summed over the workers
    engine: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
