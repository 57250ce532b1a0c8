"""Run the whole tree: validate inputs, train, convert, measure every leaf, write the output folder."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hwopt._quiet import quiet_fds
from hwopt.engines.audit import Expectations
from hwopt.errors import OutputError, UsageError
from hwopt.fileio import staged_directory
from hwopt.records import dumps
from hwopt.targets import Target, resolve_target
from hwopt.tree import _tf, training
from hwopt.tree.data import TreeDataset, load_dataset
from hwopt.tree.integrate import enforce_leaf
from hwopt.tree.measure import (
    NpuFigures,
    broken_layers,
    check_ethos_u,
    global_sparsity_broken,
    int8_top1,
    layer_label,
    npu_figures,
    pruned_zeros,
    structure_audit,
)
from hwopt.tree.report import SCHEMA, LeafReport, TreeReport, pareto_front, tree_markdown
from hwopt.tree.techniques import BY_NAME, LEAVES, SPARSITY_SLACK, Technique, sparsity_exempt
from hwopt.tree.training import REPRESENTATIVE_SAMPLES

log = logging.getLogger(__name__)

DEFAULT_TARGET = "ethos-u55-128"
METRICS = ("auto", "hwopt", "vela")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TreeOptions:
    """The inputs of a tree run (the flags of `hwopt tree`)."""

    model: str | None = None
    data: str | None = None
    target: Target = field(default_factory=lambda: resolve_target(DEFAULT_TARGET))
    epochs: int | None = None
    quick: bool = False
    seed: int = 0
    sparsity: float = 0.5
    clusters: int = 16
    metrics: str = "auto"
    leaves: tuple[str, ...] = ()  # empty: all

    def __post_init__(self) -> None:
        if not 0.0 < self.sparsity < 1.0:
            raise UsageError(f"sparsity must lie in (0, 1), got {self.sparsity}")
        if not 2 <= self.clusters <= 256:
            raise UsageError(f"clusters must lie in 2..256, got {self.clusters}")
        if self.epochs is not None and self.epochs < 1:
            raise UsageError(f"--epochs must be a positive count, got {self.epochs}")
        if self.metrics not in METRICS:
            raise UsageError(f"metrics must be one of {', '.join(METRICS)}, got {self.metrics!r}")
        unknown = [n for n in self.leaves if n not in BY_NAME]
        if unknown:
            raise UsageError(f"unknown leaf {unknown[0]!r} (one of {', '.join(BY_NAME)})")


@dataclass(frozen=True)
class TreeResult:
    """The report plus every leaf's int8 .tflite, keyed by leaf name."""

    report: TreeReport
    files: dict[str, bytes] = field(default_factory=dict)
    seconds: float = 0.0  # wall time (not in the report, which must be deterministic)


def validate(options: TreeOptions) -> TreeDataset:
    """Everything checkable before TensorFlow loads: files, dataset arrays, target; returns the dataset."""
    if options.model is not None:
        p = Path(options.model)
        if not p.is_file():
            raise UsageError(f"model file not found: {p}")
        if p.suffix.lower() not in (".keras", ".h5", ".hdf5"):
            raise UsageError(f"--model must be a .keras or .h5 Keras model, got {p.name}")
    check_ethos_u(options.target)
    data = load_dataset(options.data, options.seed)
    if options.model is None and data.x_train.ndim != 4:
        raise UsageError("the built-in DS-CNN needs images [N, H, W, C]; give --model for other inputs")
    return data


def _expectations(t: Technique, options: TreeOptions) -> Expectations:
    """The audit's per-layer expectations; a global sparsity promise is checked over the pruned layers instead."""
    per_layer = t.sparsity and t.sparsity_scope == "layer"
    return Expectations(sparsity=_sparsity_target(options) if per_layer else None,
                        clusters=options.clusters if t.clusters else None, per_channel=True, int8=True)


def _sparsity_target(options: TreeOptions) -> float:
    return max(0.0, options.sparsity - SPARSITY_SLACK)


def _not_available(t: Technique, note: str) -> LeafReport:
    return LeafReport(t.name, t.title, t.recipe, t.parent, False, note, None, None, None, None, None, None, None,
                      None, None, None, None, None, None)


def measure_leaf(t: Technique, tflite: bytes, data: TreeDataset, options: TreeOptions,
                 keras_top1: float | None, keras_kind: str | None, note: str = "") -> tuple[LeafReport, str]:
    """LiteRT accuracy, audit against the promise, DEFLATE size and NPU figures of one leaf (and their source)."""
    exp = _expectations(t, options)
    audit = structure_audit(tflite, t.name, exp)
    exempt = sparsity_exempt(t, [(la.subgraph, la.op_index, la.op) for la in audit.layers])
    broken = broken_layers(audit, exempt)
    pruned: float | None = None
    if t.sparsity:
        zeros, total = pruned_zeros(audit, exempt)
        pruned = zeros / total if total else None
        if t.sparsity_scope == "global":
            broken += global_sparsity_broken(audit, exempt, _sparsity_target(options))
    clusterable = [la.max_unique_per_channel for la in audit.layers if la.op != "DEPTHWISE_CONV_2D"]
    figures: NpuFigures = npu_figures(tflite, options.target, options.metrics)
    return LeafReport(
        name=t.name, title=t.title, recipe=t.recipe, parent=t.parent, available=True, note=note,
        file=f"{t.name}.tflite", keras_top1=keras_top1, keras_kind=keras_kind,
        int8_top1=int8_top1(tflite, data.x_test, data.y_test), tflite_bytes=len(tflite),
        deflate_bytes=audit.model.deflate_bytes, encoded_weight_bytes=figures.encoded_weight_bytes,
        cycles=figures.cycles, sparsity=audit.summary.sparsity, max_unique_per_channel=max(clusterable, default=0),
        expect_sparsity=_sparsity_target(options) if t.sparsity else None, expect_clusters=exp.clusters,
        structure_ok=not broken, broken=broken, sparsity_scope=t.sparsity_scope if t.sparsity else None,
        pruned_sparsity=pruned,
        sparsity_exempt=[layer_label(la) for la in audit.layers if (la.subgraph, la.op_index) in exempt],
    ), figures.source


def run_tree(options: TreeOptions, progress: Progress | None = None) -> TreeResult:
    """Train the float model, grow every requested leaf, convert, measure and build the report."""
    say = progress or (lambda msg: log.info("%s", msg))
    start = time.monotonic()
    data = validate(options)
    quiet = not os.environ.get("HWOPT_DEBUG")
    with quiet_fds(enabled=quiet):
        mods = _tf.load()

    schedule = training.schedule_for(options.quick, options.epochs, options.model is not None)
    with quiet_fds(enabled=quiet):
        user_model = training.load_keras_model(mods, options.model) if options.model else None
    say(f"training the float model ({schedule.base_epochs} epochs on {data.x_train.shape[0]} {data.name} examples)")
    with quiet_fds(enabled=quiet):
        base = training.train_base(mods, user_model, data, schedule, options.seed)
    trainer = training.TreeTrainer(mods, base, data, schedule, options.seed, options.sparsity, options.clusters)
    wanted = [t for t in LEAVES if not options.leaves or t.name in options.leaves]
    if any(t.name == "enforce" for t in wanted) and not any(t.name == "baseline" for t in wanted):
        wanted.insert(0, BY_NAME["baseline"])
    files: dict[str, bytes] = {}
    leaves: list[LeafReport] = []
    sources: set[str] = set()
    for t in wanted:
        t0 = time.monotonic()
        tflite: bytes | None
        if t.trained:
            say(f"leaf {t.name}: {t.recipe}")
            with quiet_fds(enabled=quiet):
                leaf = trainer.build(t.name)
            tflite, k_top1, k_kind, note = leaf.tflite, leaf.keras_top1, leaf.keras_kind, ""
        else:
            say(f"leaf {t.name}: {t.recipe}")
            tflite, note = _enforce(files.get("baseline"), data, options)
            k_top1, k_kind = None, None
        if tflite is None:
            leaves.append(_not_available(t, note))
            continue
        files[t.name] = tflite
        leaf_report, source = measure_leaf(t, tflite, data, options, k_top1, k_kind, note)
        sources.add(source)
        leaves.append(leaf_report)
        log.info("leaf %s done in %.1f s", t.name, time.monotonic() - t0)
    front = pareto_front(leaves)
    leaves = [_with_pareto(lf, lf.name in front) for lf in leaves]
    model_name = Path(options.model).name if options.model else "built-in DS-CNN (digits)"
    report = TreeReport(SCHEMA, model_name, data.name, int(data.x_train.shape[0]), int(data.x_test.shape[0]),
                        options.target.name, _source_text(sources), schedule.base_epochs, schedule.finetune_epochs,
                        options.seed, leaves, front)
    return TreeResult(report, files, time.monotonic() - start)


def _with_pareto(leaf: LeafReport, flag: bool) -> LeafReport:
    import dataclasses

    return dataclasses.replace(leaf, pareto=flag)


def _source_text(sources: set[str]) -> str:
    names = {"hwopt": "hwopt encode + hwopt estimate", "vela": "Vela totals (perf_report)"}
    return " and ".join(names.get(s, s) for s in sorted(sources)) or "-"


def _enforce(baseline: bytes | None, data: TreeDataset, options: TreeOptions) -> tuple[bytes | None, str]:
    if baseline is None:
        return None, "not available: the baseline leaf failed"
    calib = data.x_train[: min(REPRESENTATIVE_SAMPLES, data.x_train.shape[0])]
    result = enforce_leaf(baseline, calib, data.x_test, data.y_test, sparsity=options.sparsity,
                          clusters=options.clusters, target=options.target)
    return result.tflite, f"pipeline {result.pipeline}"


def check_output_dir(out_dir: str | os.PathLike[str]) -> Path:
    """OutputError unless `out_dir` is (or can become) a directory: checked before minutes of training."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path exists and is not a directory: {out}")
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write to {parent}")
    return out


def write_tree(result: TreeResult, out_dir: str | os.PathLike[str], *,
               protect: tuple[str | os.PathLike[str] | None, ...] = ()) -> Path:
    """Write every leaf's .tflite, tree.json and tree.md into `out_dir` atomically (never over `protect`)."""
    out = check_output_dir(out_dir)
    with staged_directory(out, protect=[p for p in protect if p is not None]) as stage:
        for name, data in sorted(result.files.items()):
            (stage / f"{name}.tflite").write_bytes(data)
        (stage / "tree.json").write_text(dumps(result.report), encoding="utf-8")
        (stage / "tree.md").write_text(tree_markdown(result.report), encoding="utf-8")
    return out
