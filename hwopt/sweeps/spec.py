"""The sweep specification: which models, enforce pipelines and targets to cross, read from TOML or flags.

Everything a user can get wrong is checked here, before any job runs, so a bad SPEC is one
`UsageError` line (exit 2): an unknown key, a target that does not resolve, a model glob
that matches nothing, a pipeline table that is not name = "pipeline string".
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwopt.errors import HwoptError, UsageError
from hwopt.records import to_jsonable
from hwopt.targets import Target, resolve_target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SPEC_KEYS = ("models", "targets", "pipelines", "data", "engine")
ENGINES = ("auto", "vela", "analytic")
NO_PIPELINE = "none"
TREE_REPORT = "tree.json"
TREE_SCHEMA = "hwopt.tree/1"


@dataclass(frozen=True)
class ModelEntry:
    """One model of the sweep: the label records carry and the file it is read from."""

    label: str
    path: Path


@dataclass(frozen=True)
class TargetEntry:
    """One resolved target: its label (the descriptor's name), how the user spelt it, the Target."""

    label: str
    spec: str
    target: Target


@dataclass(frozen=True)
class SweepSpec:
    """The three axes of a sweep, resolved; jobs are their cross product."""

    models: tuple[ModelEntry, ...]
    pipelines: tuple[tuple[str, str], ...]  # (name, pipeline string), in the order given
    targets: tuple[TargetEntry, ...]
    data: Path | None = None
    engine: str = "auto"  # "auto": Vela for Ethos-U, analytic for Ethos-N

    @property
    def jobs(self) -> int:
        return len(self.models) * len(self.pipelines) * len(self.targets)


def _strings(where: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where} must be a list of non-empty strings")
    return list(value)


def _label(path: Path, base: Path) -> str:
    """A machine-independent label: the path relative to the SPEC's folder when it lies inside it."""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def tree_leaves(folder: Path) -> list[Path]:
    """The int8 leaves a `hwopt tree` output folder holds, in the order tree.json lists them."""
    report = folder / TREE_REPORT
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {report}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != TREE_SCHEMA or not isinstance(doc.get("leaves"), list):
        raise UsageError(f"{report} is not a {TREE_SCHEMA} report")
    files = [leaf.get("file") for leaf in doc["leaves"] if isinstance(leaf, dict) and leaf.get("available")]
    return [folder / f for f in files if isinstance(f, str) and (folder / f).is_file()]


def _expand_model(entry: str, base: Path) -> list[Path]:
    path = Path(entry).expanduser()
    if not path.is_absolute():
        path = base / path
    if path.is_dir():
        found = tree_leaves(path) if (path / TREE_REPORT).is_file() else sorted(path.glob("*.tflite"))
    elif glob.has_magic(str(path)):
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    else:
        found = [path] if path.is_file() else []
    if not found:
        raise UsageError(f"no models matched {entry!r}")
    return found


def _models(entries: Iterable[str], base: Path) -> tuple[ModelEntry, ...]:
    out: dict[str, ModelEntry] = {}
    for entry in entries:
        for path in _expand_model(entry, base):
            label = _label(path, base)
            out.setdefault(label, ModelEntry(label, path))
    return tuple(out.values())


def _targets(entries: Iterable[str], base: Path) -> tuple[TargetEntry, ...]:
    out: dict[str, TargetEntry] = {}
    for entry in entries:
        spec = entry
        if entry.endswith(".toml") or os.sep in entry or "/" in entry:
            p = Path(entry).expanduser()
            spec = str(p if p.is_absolute() else base / p)
        try:
            target = resolve_target(spec)
        except HwoptError as exc:
            raise UsageError(f"target {entry!r}: {exc}") from None
        known = out.get(target.name)
        if known is not None and fingerprint(known.target) != fingerprint(target):
            raise UsageError(f"two different targets are named {target.name!r} ({known.spec!r} and {entry!r})")
        out.setdefault(target.name, TargetEntry(target.name, spec, target))
    return tuple(out.values())


def _pipelines(table: Mapping[str, Any] | Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = list(table.items()) if isinstance(table, Mapping) else list(table)
    out: dict[str, str] = {}
    for name, text in items:
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"pipeline {name!r} must be a non-empty pipeline string (\"{NO_PIPELINE}\" for the model as it is)")
        if not name or "," in name:
            raise UsageError(f"pipeline name {name!r} must be non-empty and hold no comma")
        if name in out and out[name] != text:
            raise UsageError(f"pipeline {name!r} is given twice")
        out[name] = text.strip()
    return tuple(out.items())


def fingerprint(target: Target) -> str:
    """The resolved descriptor as canonical JSON (where its file lives does not matter)."""
    doc = to_jsonable(target)
    doc.pop("source", None)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def build_spec(models: Sequence[str], targets: Sequence[str], pipelines: Mapping[str, Any] | Sequence[tuple[str, str]],
               *, data: str | os.PathLike[str] | None = None, engine: str = "auto",
               base: str | os.PathLike[str] = ".") -> SweepSpec:
    """Resolve and check the three axes; relative paths are taken from `base`."""
    root = Path(base)
    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not models:
        raise UsageError("no models given")
    if not targets:
        raise UsageError("no targets given")
    pipes = _pipelines(pipelines) if pipelines else ((NO_PIPELINE, NO_PIPELINE),)
    data_path = None
    if data is not None:
        data_path = Path(data).expanduser()
        data_path = data_path if data_path.is_absolute() else root / data_path
        if not data_path.is_file():
            raise UsageError(f"no such data file: {data}")
    return SweepSpec(_models(models, root), pipes, _targets(targets, root), data_path, engine)


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read a SPEC TOML file; relative paths in it are taken from the file's folder."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no such SPEC file: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read SPEC {p}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{p}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - set(SPEC_KEYS))
    if unknown:
        raise UsageError(f"{p}: unknown key {unknown[0]!r} (known: {', '.join(SPEC_KEYS)})")
    for key in ("models", "targets"):
        if key not in doc:
            raise UsageError(f"{p}: missing key {key!r}")
    pipelines = doc.get("pipelines", {})
    if not isinstance(pipelines, dict):
        raise UsageError(f"{p}: [pipelines] must be a table of name = \"pipeline string\"")
    data, engine = doc.get("data"), doc.get("engine", "auto")
    if data is not None and not isinstance(data, str):
        raise UsageError(f"{p}: data must be the path of an .npz file")
    if not isinstance(engine, str):
        raise UsageError(f"{p}: engine must be one of {', '.join(ENGINES)}")
    try:
        return build_spec(_strings("models", doc["models"]), _strings("targets", doc["targets"]), pipelines,
                          data=data, engine=engine, base=p.parent)
    except UsageError as exc:
        raise UsageError(f"{p}: {exc}") from None


def spec_to_json(spec: SweepSpec) -> str:
    """The resolved spec as JSON, saved beside the results so `--resume` can run it again unchanged."""
    doc = {
        "models": [{"label": m.label, "path": str(m.path.resolve())} for m in spec.models],
        "pipelines": [[n, t] for n, t in spec.pipelines],
        "targets": [{"label": t.label, "spec": t.spec} for t in spec.targets],
        "data": str(spec.data.resolve()) if spec.data else None,
        "engine": spec.engine,
    }
    return json.dumps(doc, indent=2) + "\n"


def spec_from_json(text: str, where: str) -> SweepSpec:
    """Inverse of `spec_to_json`; UsageError when the saved spec is missing its files."""
    try:
        doc = json.loads(text)
        models = tuple(ModelEntry(m["label"], Path(m["path"])) for m in doc["models"])
        pipelines = tuple((str(n), str(t)) for n, t in doc["pipelines"])
        targets = [(t["label"], t["spec"]) for t in doc["targets"]]
        data, engine = doc["data"], doc["engine"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{where}: not a saved sweep spec ({exc})") from None
    for m in models:
        if not m.path.is_file():
            raise UsageError(f"{where}: model {m.label} is gone ({m.path})")
    try:
        resolved = tuple(TargetEntry(label, spec, resolve_target(spec)) for label, spec in targets)
    except HwoptError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return SweepSpec(models, pipelines, resolved, Path(data) if data else None, engine)
