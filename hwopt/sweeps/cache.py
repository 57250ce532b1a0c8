"""Content-addressed result cache: one small JSON file per job key, written atomically.

The key already names everything the result depends on (see `job.cache_key`), so a file
that exists is valid; a sweep killed mid-way leaves only whole files behind, and the next
run recomputes just the keys that have none. An unreadable file counts as missing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from hwopt.errors import OutputError
from hwopt.fileio import atomic_write_text
from hwopt.records import to_jsonable
from hwopt.sweeps.records import Outcome, Status, SweepFidelity, significant

log = logging.getLogger(__name__)

FORMAT = "hwopt.sweep-cache/1"


class ResultCache:
    """`get`/`put` job outcomes by key under one folder (`<key[:2]>/<key>.json`)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create cache folder {self.root}: {exc.strerror or exc}") from None

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Outcome | None:
        p = self.path(key)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            if doc.pop("format") != FORMAT or doc["key"] != key:
                return None
            return from_doc(doc)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable cache entry %s: %s", p, exc)
            return None

    def put(self, outcome: Outcome) -> None:
        if not outcome.cacheable:
            return
        p = self.path(outcome.key)
        p.parent.mkdir(exist_ok=True)
        # plain json.dumps: to_doc has already rounded, and latencies keep their significant digits
        atomic_write_text(p, json.dumps({"format": FORMAT, **to_doc(outcome)}, indent=2) + "\n")


def to_doc(outcome: Outcome) -> dict[str, Any]:
    """Plain JSON data of an outcome (floats rounded as in every hwopt report)."""
    doc = dict(to_jsonable(outcome))
    doc.pop("cacheable", None)
    doc.pop("cpu_s", None)
    doc["inference_s"] = significant(outcome.inference_s)
    return doc


def from_doc(doc: dict[str, Any]) -> Outcome:
    doc = dict(doc)
    fid = doc.pop("fidelity")
    return Outcome(status=Status(doc.pop("status")), fidelity=SweepFidelity(**fid) if fid else None, **doc)


def normalise(outcome: Outcome) -> Outcome:
    """The outcome as a cache read would give it back, so fresh and cached results are equal."""
    return dataclasses.replace(from_doc(to_doc(outcome)), cacheable=outcome.cacheable)
