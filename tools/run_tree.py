"""Run the full collaborative-optimization tree on the digits example and write docs/collaborative-optimization.md.

    python tools/run_tree.py                 # full schedule, writes the doc (several minutes on 2 cores)
    python tools/run_tree.py --quick --doc out/tree-doc.md -o out/tree   # CI-sized check of the script

Every number in the document is measured in this run: the tree (hwopt.tree), plus a small
ablation of hwopt enforce's recipe on the same baseline int8 model.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hwopt.targets import Target

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "collaborative-optimization.md"


def _progress(message: str) -> None:
    sys.stderr.write(f"run_tree: {message}\n")
    sys.stderr.flush()


def _ablation(files: dict[str, bytes], target: Target, sparsity: float, clusters: int) -> list[list[str]]:
    """hwopt enforce's recipe beside its variants, each on the baseline int8 model (no retraining)."""
    from hwopt.engines.audit import Expectations
    from hwopt.format.tflite_io import read_model
    from hwopt.tree.data import load_digits_dataset
    from hwopt.tree.integrate import enforce_leaf, prune_skip
    from hwopt.tree.measure import int8_top1, npu_figures, structure_audit
    from hwopt.tree.report import num, pct
    from hwopt.tree.training import REPRESENTATIVE_SAMPLES

    data = load_digits_dataset(0)
    base = files["baseline"]
    leaf_skip = prune_skip(read_model(base))
    depthwise = [s for s in leaf_skip if not s.isdigit()]
    cluster = f"cluster{{k={clusters},granularity=stream,preserve_zero=true,target={target.spec}}},bias-correct"

    def prune(skip: list[str], scope: str = "layer") -> str:
        args = [f"sparsity={sparsity}"] + ([f"scope={scope}"] if scope != "layer" else [])
        return "prune{" + ",".join(args + ([f"skip=[{','.join(skip)}]"] if skip else [])) + "}"

    recipes: list[tuple[str, str | None, list[str]]] = [
        ("clusters per stream only + bias correction",
         f"cluster{{k={clusters},granularity=stream,target={target.spec}}},bias-correct", []),
        ("prune every layer, per layer + clusters + bias correction", f"{prune([])},{cluster}", []),
        ("prune all but depthwise, per layer + clusters + bias correction", f"{prune(depthwise)},{cluster}", depthwise),
        ("prune all but depthwise and the input conv, per layer + clusters + bias correction",
         f"{prune(leaf_skip)},{cluster}", leaf_skip),
        ("the leaf's prune step alone (no clusters, no bias correction)", prune(leaf_skip, "global"), leaf_skip),
        ("tree leaf: prune all but depthwise and the input conv, global + clusters + bias correction", None, leaf_skip),
    ]
    rows = []
    for label, pipeline, skip in recipes:
        res = enforce_leaf(base, data.x_train[:REPRESENTATIVE_SAMPLES], data.x_test, data.y_test,
                           sparsity=sparsity, clusters=clusters, target=target, pipeline=pipeline)
        audit = structure_audit(res.tflite, "ablation", Expectations())
        pruned = [la for la in audit.layers if la.op not in skip and str(la.op_index) not in skip]
        spread = "-"
        if pruned and (pipeline is None or "prune" in pipeline):
            zeros = sum(round(la.sparsity * la.elements) for la in pruned) / max(1, sum(la.elements for la in pruned))
            spread = (f"{pct(zeros, 1)} ({pct(min(la.sparsity for la in pruned), 1)} - "
                      f"{pct(max(la.sparsity for la in pruned), 1)})")
        fig = npu_figures(res.tflite, target)
        rows.append([label, f"`{res.pipeline}`", pct(int8_top1(res.tflite, data.x_test, data.y_test)),
                     pct(audit.summary.sparsity, 1), spread, num(fig.encoded_weight_bytes), num(fig.cycles)])
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _per_channel_note(report: object) -> str:
    """What per-tensor and per-channel clustering save on the NPU, from this run's numbers."""
    from hwopt.tree.report import TreeReport

    rep: TreeReport = report  # type: ignore[assignment]
    base, per_tensor, per_channel = rep.leaf("baseline"), rep.leaf("clustered"), rep.leaf("clustered_per_channel")
    sizes = [lf.encoded_weight_bytes if lf else None for lf in (base, per_tensor, per_channel)]
    if None in sizes or not sizes[0]:
        return ""
    b, t, c = (int(s or 0) for s in sizes)
    return (f"- Both clustered leaves hold at most 16 values per channel, but on the NPU per-tensor clustering "
            f"saves {100 * (b - t) / b:.1f}% of the encoded weights and per-channel clustering "
            f"{100 * (b - c) / b:.1f}%: an Ethos-U weight stream spans many output channels and its palette holds "
            "at most 32 values, so 16 different values per channel do not make a small palette per stream.")


def build_doc(result: object, ablation: list[list[str]], seconds: float, quick: bool, sparsity: float) -> str:
    from hwopt.tree.report import LEAF_COLUMNS, TreeReport, family_rows, leaf_rows, num, pct, sparsity_promises
    from hwopt.tree.techniques import BY_NAME, FAMILIES

    report: TreeReport = result.report  # type: ignore[attr-defined]
    base = report.leaf("baseline")
    assert base is not None
    lines = [
        "# Collaborative optimization end to end",
        "",
        "`hwopt tree` grows the deployment tree of TensorFlow Model Optimization's *collaborative optimization* "
        "(pruning, clustering and quantization-aware training combined so that each keeps the structure of the "
        "one before), converts every leaf to a fully-int8 TFLite model and checks each file on the NPU side: "
        "LiteRT top-1, TFMOT's DEFLATE \"compression\", Ethos-U encoded weight bytes, estimated cycles, and "
        "whether the int8 file still shows the sparsity and clusters the technique promises.",
        "",
        "```",
        "hwopt tree -o out/                       # built-in DS-CNN on scikit-learn's digits",
        "hwopt tree --quick -o out/ --json        # CI-sized schedule, JSON report on stdout",
        "hwopt tree --model m.keras --data d.npz --target ethos-u65-256 -o out/",
        "```",
        "",
        "It needs the optional extra `hwopt[train]` (TensorFlow, tf-keras, tensorflow-model-optimization). TFMOT "
        "0.8 works only with Keras 2, so `hwopt tree` sets `TF_USE_LEGACY_KERAS=1` before it imports TensorFlow; "
        "set it yourself too if your own code imports TensorFlow first. No other hwopt command imports TensorFlow. "
        "Without the extra, `hwopt tree` stops with `install hwopt[train]` and exit code 2.",
        "",
        "Outputs in the folder (written atomically): one `<leaf>.tflite` per leaf, `tree.json` (schema "
        "`hwopt.tree/1`) and `tree.md`. Exit codes: 0 every leaf keeps its structure, 1 a leaf lost structure "
        "it promises (the report names the layers), 2 bad input (missing files, an `.npz` without `x_train`, "
        "`y_train`, `x_test`, `y_test`, an unknown target, no TensorFlow).",
        "",
        "## The run below",
        "",
        f"Model: a small DS-CNN (Conv 3x3 - BN - ReLU, three depthwise-separable blocks of DepthwiseConv 3x3 - BN - "
        f"ReLU - Conv 1x1 - BN - ReLU, 64 channels, global average pooling, Dense 10 softmax) on scikit-learn's "
        f"bundled 8x8 digits: {report.train_examples} training and {report.test_examples} held-out images, a fixed "
        f"stratified 80/20 split. Schedule: {report.base_epochs} float epochs, {report.finetune_epochs} epochs per "
        f"fine-tuning step (Adam), seed {report.seed}, deterministic TensorFlow ops. Every leaf is converted with "
        f"`Optimize.DEFAULT`, a representative set of 256 training images and int8 input and output. Target "
        f"{report.target}; encoded weights and cycles from {report.metrics_source}."
        + (" (quick schedule)" if quick else ""),
        "",
        f"Runtime of this run: {seconds / 60:.1f} min on {platform.machine()} with {os.cpu_count()} CPU cores; "
        "`--quick` runs the "
        "same tree with 12 float and 3 fine-tuning epochs.",
        "",
        "Columns, as in TFMOT's published tables: FP32 top-1 of the float model (fake-quant top-1 of the QAT "
        "model for QAT variants), INT8 top-1 of the full-integer file on LiteRT, and \"compression\" as "
        "`.tflite bytes -> DEFLATE bytes (reduction)`. hwopt adds Ethos-U encoded weight bytes, estimated cycles, "
        "sparsity (zeros among all weights of the int8 file), the largest number of distinct int8 values in one "
        "output channel over the layers clustering may touch (DepthwiseConv2D excluded) and the structure check.",
        "",
    ]
    for title, names in FAMILIES:
        header, rows = family_rows(report, names)
        lines += [f"### {title}", "", _table(header, rows)]
    lines += ["### All leaves", "", _table(list(LEAF_COLUMNS), leaf_rows(report))]
    lines += ["Recipes:", ""]
    lines += [f"- **{lf.title}** (`{lf.name}.tflite`): {BY_NAME[lf.name].recipe}" for lf in report.leaves]
    lines.append("")

    lines += ["## Pareto summary", "",
              "Objectives: Ethos-U encoded weight bytes (lower), estimated cycles (lower), INT8 top-1 (higher). A leaf "
              "is Pareto-optimal when no other leaf is at least as good on all three and better on one.", ""]
    avail = sorted((lf for lf in report.leaves if lf.available), key=lambda lf: (lf.encoded_weight_bytes or 0, lf.name))
    rows = []
    for lf in avail:
        size = lf.encoded_weight_bytes or 0
        ratio = (base.encoded_weight_bytes or 0) / size if size else 0.0
        rows.append([lf.title, num(lf.encoded_weight_bytes), f"{ratio:.2f}x", num(lf.cycles), pct(lf.int8_top1),
                     "**yes**" if lf.pareto else ""])
    lines += [_table(["Leaf", "Encoded weights", "vs baseline", "Cycles", "INT8 top-1", "Pareto-optimal"], rows)]
    lines += ["Pareto-optimal leaves: " + ", ".join(f"**{BY_NAME[n].title}**" for n in report.pareto) + ".", ""]

    lines += ["## Structure check", ""]
    failed = [lf for lf in report.leaves if lf.broken]
    if failed:
        for lf in failed:
            lines.append(f"- **{lf.title}** lost structure in conversion:")
            lines += [f"  - {msg}" for msg in lf.broken]
    else:
        lines.append("Every leaf keeps, in its int8 file, the structure it promises: the sparsity below for the "
                     "pruned leaves and at most 16 distinct values per output channel in every clustered layer "
                     "(DepthwiseConv2D excluded).")
    lines += ["", "Sparsity promises, measured over the layers each leaf prunes, and the layers it leaves dense:", "",
              *sparsity_promises(report)]
    lines += [
        "",
        "What the check takes into account (TFMOT 0.8.1 facts visible in these files):",
        "",
        "- TFMOT's pruning registry lists no prunable weights for `DepthwiseConv2D`, and its clustering registry "
        "none either: the three depthwise layers stay dense and unclustered in every TFMOT leaf, so the pruned "
        "leaves' whole-model sparsity stays below 50% and the check exempts depthwise layers. hwopt enforce "
        "leaves them dense as well (it still clusters them) and also keeps the input convolution dense; its "
        "global promise is checked from the audit's per-layer weight and zero counts of the layers it prunes.",
        "- BatchNorm folding and per-channel int8 scales keep clusters only per output channel; the audit counts "
        "distinct values per output channel.",
        _per_channel_note(report),
        "- `cluster_weights(..., cluster_per_channel=True)` takes the channel count from the layer's last trainable "
        "weight; on a `Conv2D(use_bias=False)` that is the kernel itself, and TFMOT then skips the layer with a "
        "warning (\"does not have enough weights\"). The example model keeps conv biases for this reason.",
        "",
        "## hwopt enforce without retraining",
        "",
        "The `enforce` leaf applies hwopt's post-training recipe to the baseline int8 model: magnitude pruning to "
        f"{pct(sparsity, 0)} by one global ranking of the dequantized weights over every layer except the "
        "depthwise convolutions (9 weights per output channel; TFMOT leaves them dense too) and the input "
        "convolution (few weights, and every later layer sees its errors), then 16 "
        "values per Ethos-U weight stream keeping the zeros, then bias correction on 256 training images. A "
        "global ranking lets the layers that tolerate it give more zeros than the sensitive ones, so the leaf "
        "promises the sparsity over its pruned layers together, not in each. The recipe and its variants, "
        "measured on the same baseline in this run (\"pruned layers\" are the layers the row's prune step "
        "touches; min - max per layer in brackets):",
        "",
        _table(["Recipe", "Pipeline", "INT8 top-1", "Sparsity", "Pruned layers: sparsity (min - max)",
                "Encoded weights", "Cycles"], ablation),
        "Without retraining, pruning the depthwise layers and the input convolution is what costs accuracy on "
        "this small network; leaving them dense and ranking the rest globally keeps the leaf close to the "
        "baseline, while the 16 values per weight stream shrink the encoded weights. Restoring the last points "
        "needs the fine-tuning of the TFMOT branches.",
        "",
        "## Reproduce",
        "",
        "`python tools/run_tree.py` reruns everything and rewrites this file; `hwopt tree -o DIR` produces the "
        "tables and the leaves. The same seed gives the same files.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized schedule")
    parser.add_argument("--target", default="ethos-u55-128")
    parser.add_argument("-o", "--output", help="folder for the leaves (default: a temporary folder)")
    parser.add_argument("--doc", default=str(DOC), help="Markdown file to write (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="run_tree: %(levelname)s: %(message)s")

    from hwopt.fileio import atomic_write_text
    from hwopt.targets import resolve_target
    from hwopt.tree import TreeOptions, run_tree, write_tree

    options = TreeOptions(target=resolve_target(args.target), quick=args.quick)
    start = time.monotonic()
    result = run_tree(options, progress=_progress)
    seconds = time.monotonic() - start
    with tempfile.TemporaryDirectory() as tmp:
        out = write_tree(result, args.output or tmp)
        _progress(f"tree written to {out} in {seconds:.0f} s")
        ablation = _ablation(result.files, options.target, options.sparsity, options.clusters)
    atomic_write_text(args.doc, build_doc(result, ablation, seconds, args.quick, options.sparsity))
    _progress(f"wrote {args.doc}")
    return 1 if result.report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
