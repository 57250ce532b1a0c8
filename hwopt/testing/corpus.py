"""A Vela-labelled corpus of generated models, cached on disk by content hash, split by seed.

Each (model, Ethos-U configuration) pair is compiled once with Vela's Regor core; its per-operator
cycles, NPU cycles, access cycles per memory and staging SRAM, and the network totals, are stored
as JSON under a key hashing the model bytes, the target descriptor, the exact system and compiler
configuration text Vela receives and Vela's version. Re-labelling is incremental, and a new Vela or
an edited descriptor gets new keys. The fitting/validation split depends only on the split seed and
the model's name, so a model never changes sides.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from pathlib import Path

from hwopt.errors import HwoptError
from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u.vela_config import options_text, regor_arch, system_config_text
from hwopt.targets.ethos_u.vela_engine import compile_model

LABEL_SCHEMA = "hwopt.label/1"
VALIDATION_SHARE = 0.25


@dataclass(frozen=True)
class LayerLabel:
    """Vela's figures for one input operator."""

    op_index: int
    op: str
    placement: str
    cycles: int
    npu_cycles: int
    access_cycles: dict[str, int]
    staging_bytes: int
    encoded_weight_bytes: int | None


@dataclass(frozen=True)
class Labels:
    """Vela's labels of one model on one target (`error` set when Vela rejected the model)."""

    model: str
    target: str
    vela_version: str
    cycles: int
    npu_cycles: int
    sram_peak_bytes: int
    layers: tuple[LayerLabel, ...]
    error: str | None = None


def vela_version() -> str:
    return version("ethos-u-vela")


def label_key(model_bytes: bytes, target: Target) -> str:
    """Content hash of everything a label depends on.

    The descriptor's file path is left out (the same descriptor in another checkout is the same
    target); its content is in via the Target's fields and the Vela configuration text.
    """
    h = hashlib.sha256()
    for part in (LABEL_SCHEMA, vela_version(), repr(replace(target, source=None)), regor_arch(target), system_config_text(target),
                 options_text(target, None)):
        h.update(part.encode())
        h.update(b"\0")
    h.update(hashlib.sha256(model_bytes).digest())
    return h.hexdigest()


def is_validation(name: str, split_seed: int) -> bool:
    """The fixed held-out side of the split for a model name."""
    digest = hashlib.sha256(f"{split_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 < VALIDATION_SHARE


def _labels_from_json(doc: dict[str, object]) -> Labels:
    layers = tuple(LayerLabel(**la) for la in doc["layers"])  # type: ignore[arg-type, attr-defined]
    fields = {k: v for k, v in doc.items() if k not in ("layers", "schema")}
    return Labels(layers=layers, **fields)  # type: ignore[arg-type]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def vela_labels(name: str, model_bytes: bytes, target: Target) -> Labels:
    """Compile with Vela now (no cache) and keep the per-operator figures."""
    try:
        res = compile_model(model_bytes, target)
    except HwoptError as exc:
        return Labels(name, target.name, vela_version(), 0, 0, 0, (), str(exc))
    layers = tuple(LayerLabel(r.op_index, r.op, r.placement, r.cycles, r.npu_cycles, dict(r.access_cycles),
                              r.staging_bytes, r.encoded_weight_bytes) for r in res.ops)
    return Labels(name, target.name, vela_version(), res.perf.cycles, res.perf.npu_cycles,
                  res.perf.peak_bytes("Sram"), layers)


def label(name: str, model_bytes: bytes, target: Target, cache_dir: Path) -> tuple[Labels, bool]:
    """(labels, True when they came from the cache); compiles and stores them on a miss."""
    key = label_key(model_bytes, target)
    path = cache_dir / key[:2] / f"{key}.json"
    if path.is_file():
        return replace(_labels_from_json(json.loads(path.read_text())), model=name), True
    labels = vela_labels(name, model_bytes, target)
    _write_atomic(path, json.dumps({"schema": LABEL_SCHEMA, **asdict(labels)}, sort_keys=True))
    return labels, False
