"""The tree report: one record per leaf, the Pareto front, and its Markdown rendering."""

from __future__ import annotations

from dataclasses import dataclass, field

from hwopt.tree.techniques import BY_NAME, FAMILIES

SCHEMA = "hwopt.tree/1"


@dataclass(frozen=True)
class LeafReport:
    """Everything measured on one leaf; None where the leaf is not available."""

    name: str
    title: str
    recipe: str
    parent: str | None
    available: bool
    note: str
    file: str | None
    keras_top1: float | None
    keras_kind: str | None  # "fp32" or "fake-int8"
    int8_top1: float | None
    tflite_bytes: int | None
    deflate_bytes: int | None
    encoded_weight_bytes: int | None
    cycles: int | None
    sparsity: float | None
    max_unique_per_channel: int | None  # over layers that may be clustered (DepthwiseConv2D exempt)
    expect_sparsity: float | None
    expect_clusters: int | None
    structure_ok: bool | None
    broken: list[str] = field(default_factory=list)
    pareto: bool = False
    sparsity_scope: str | None = None  # "layer": each pruned layer holds expect_sparsity; "global": all together
    pruned_sparsity: float | None = None  # zeros among the weights of the layers the technique prunes
    sparsity_exempt: list[str] = field(default_factory=list)  # layers the technique leaves dense, as the audit names them

    @property
    def compression(self) -> str:
        """TFMOT's "a -> b (x%)": .tflite bytes, DEFLATE bytes and the reduction."""
        if self.tflite_bytes is None or self.deflate_bytes is None:
            return "-"
        cut = 100.0 * (self.tflite_bytes - self.deflate_bytes) / self.tflite_bytes
        return f"{self.tflite_bytes:,} -> {self.deflate_bytes:,} ({cut:.2f}%)"


@dataclass(frozen=True)
class TreeReport:
    schema: str
    model: str
    dataset: str
    train_examples: int
    test_examples: int
    target: str
    metrics_source: str
    base_epochs: int
    finetune_epochs: int
    seed: int
    leaves: list[LeafReport]
    pareto: list[str]

    @property
    def failed(self) -> bool:
        """True when a leaf lost structure it promises (exit code 1)."""
        return any(leaf.structure_ok is False for leaf in self.leaves)

    def leaf(self, name: str) -> LeafReport | None:
        return next((leaf for leaf in self.leaves if leaf.name == name), None)


def pareto_front(leaves: list[LeafReport]) -> list[str]:
    """Leaves no other leaf beats on all of encoded size, cycles (lower) and INT8 top-1 (higher)."""
    pts: list[tuple[str, int, int, float]] = []
    for lf in leaves:
        size = lf.encoded_weight_bytes if lf.encoded_weight_bytes is not None else lf.deflate_bytes
        if lf.available and size is not None and lf.int8_top1 is not None:
            pts.append((lf.name, size, lf.cycles if lf.cycles is not None else 0, lf.int8_top1))

    def dominates(p: tuple[str, int, int, float], q: tuple[str, int, int, float]) -> bool:
        no_worse = p[1] <= q[1] and p[2] <= q[2] and p[3] >= q[3]
        better = p[1] < q[1] or p[2] < q[2] or p[3] > q[3]
        return no_worse and better

    return [p[0] for p in pts if not any(dominates(q, p) for q in pts if q is not p)]


def pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def num(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def keras_cell(leaf: LeafReport) -> str:
    if leaf.keras_top1 is None:
        return "-" if leaf.available else "not available"
    return ("(fake INT8) " if leaf.keras_kind == "fake-int8" else "") + pct(leaf.keras_top1)


def structure_cell(leaf: LeafReport) -> str:
    if not leaf.available:
        return "not available"
    if leaf.structure_ok is None:
        return "-"
    if leaf.structure_ok:
        return "pass"
    return f"FAIL ({len(leaf.broken)} layer{'s' if len(leaf.broken) != 1 else ''})"


def family_rows(report: TreeReport, names: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    """TFMOT's published layout: one column per technique, one row per item (plus hwopt's rows)."""
    leaves = [report.leaf(n) for n in names]
    present = [lf for lf in leaves if lf is not None]
    header = ["Item", *[lf.title for lf in present]]
    rows = [
        ["FP32 top-1 (fake INT8 for QAT)", *[keras_cell(lf) for lf in present]],
        ["INT8 full-integer top-1", *[pct(lf.int8_top1) for lf in present]],
        ["Compression (DEFLATE)", *[lf.compression for lf in present]],
        ["Ethos-U encoded weights (bytes)", *[num(lf.encoded_weight_bytes) for lf in present]],
        ["Estimated cycles", *[num(lf.cycles) for lf in present]],
        ["Sparsity", *[pct(lf.sparsity, 1) for lf in present]],
        ["Max distinct values / channel", *[num(lf.max_unique_per_channel) for lf in present]],
        ["Structure check", *[structure_cell(lf) for lf in present]],
    ]
    return header, rows


def sparsity_promise(leaf: LeafReport) -> str:
    """What a pruned leaf promises, what its pruned layers hold, and which layers it leaves dense."""
    if leaf.expect_sparsity is None or not leaf.available:
        return ""
    where = "over the pruned layers together" if leaf.sparsity_scope == "global" else "in every pruned layer"
    dense = ", ".join(f"`{name}`" for name in leaf.sparsity_exempt) or "none"
    return (f"at least {pct(leaf.expect_sparsity, 0)} zeros {where} (measured {pct(leaf.pruned_sparsity, 1)} "
            f"over them); left dense: {dense}")


def sparsity_promises(report: TreeReport) -> list[str]:
    """One Markdown bullet per leaf that promises sparsity."""
    return [f"- **{lf.title}**: {text}" for lf in report.leaves if (text := sparsity_promise(lf))]


LEAF_COLUMNS = ("Leaf", "FP32 / fake-INT8 top-1", "INT8 top-1", "Compression (DEFLATE)", "Encoded weights",
                "Cycles", "Sparsity", "Max uniq/ch", "Structure", "Pareto")


def leaf_rows(report: TreeReport) -> list[list[str]]:
    return [[lf.title, keras_cell(lf), pct(lf.int8_top1), lf.compression, num(lf.encoded_weight_bytes), num(lf.cycles),
             pct(lf.sparsity, 1), num(lf.max_unique_per_channel), structure_cell(lf), "yes" if lf.pareto else ""]
            for lf in report.leaves]


def _md_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def tree_markdown(report: TreeReport, heading: str = "#") -> str:
    """tree.md: settings, the per-family tables, all leaves with hwopt's columns, failures and the Pareto front."""
    out = [f"{heading} Collaborative-optimization tree\n",
           f"Model: {report.model}; dataset: {report.dataset} ({report.train_examples} training, "
           f"{report.test_examples} held-out examples); target: {report.target}; NPU figures from "
           f"{report.metrics_source}; epochs: {report.base_epochs} float, {report.finetune_epochs} per fine-tuning step; "
           f"seed {report.seed}.\n"]
    for title, names in FAMILIES:
        header, rows = family_rows(report, names)
        out += [f"{heading}# {title}\n", _md_table(header, rows)]
    out += [f"{heading}# All leaves\n", _md_table(LEAF_COLUMNS, leaf_rows(report))]
    out.append(f"{heading}# Recipes\n")
    out += [f"- **{lf.title}** (`{lf.name}.tflite`): {BY_NAME[lf.name].recipe}" + (f" — {lf.note}" if lf.note else "")
            for lf in report.leaves]
    out.append("")
    broken = [lf for lf in report.leaves if lf.broken]
    out.append(f"{heading}# Structure check\n")
    if not broken:
        out.append("Every available leaf keeps, in its int8 file, the sparsity and clusters it promises.\n")
    for lf in broken:
        out.append(f"- **{lf.title}** does not keep what it promises:")
        out += [f"  - {msg}" for msg in lf.broken]
    if broken:
        out.append("")
    promises = sparsity_promises(report)
    if promises:
        out += ["Sparsity promises (the dense layers are exempt from them):\n", *promises, ""]
    out.append(f"{heading}# Pareto front\n")
    out.append("Objectives: Ethos-U encoded weight bytes (lower), estimated cycles (lower), INT8 top-1 (higher). "
               "Pareto-optimal leaves: " + (", ".join(f"**{BY_NAME[n].title}**" for n in report.pareto) or "none") + ".\n")
    return "\n".join(out)
