"""Report figures (matplotlib, Agg backend), returned as SVG text to inline in HTML.

Three figures: per-layer cycles split by what bounds them, weight-value density of chosen
layers before and after the pipeline (as in the TFMOT collaborative-optimization guide),
and SRAM in use over the layers. SVG keeps the HTML one self-contained file with no
scripts, and text in it stays searchable.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_WIDTH_IN = 7.0  # inches; narrower figures of small models leave titles wider than the axes
BOUND_COLOURS = {"compute": "#4C72B0", "memory": "#DD8452", "weights": "#55A868", "cpu": "#8C8C8C", "other": "#C44E52"}


@dataclass(frozen=True)
class CycleBar:
    label: str
    npu_cycles: int
    memory_cycles: int  # the largest memory's access cycles
    cycles: int
    bound: str


def _svg(fig: object, *, tight: bool = True) -> str:
    """The figure as SVG text; `tight=False` for figures whose layout engine already fits them
    (a tight bounding box costs one more full draw)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight" if tight else None, metadata={"Date": None})  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    text = buf.getvalue()
    return text[text.find("<svg"):]


def _pyplot() -> object:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "hwopt"  # deterministic element ids
    import matplotlib.pyplot as plt

    return plt


def cycles_figure(bars: Sequence[CycleBar], title: str) -> str:
    """Stacked bars per layer: NPU compute cycles, then the memory cycles above them."""
    plt = _pyplot()
    n = max(len(bars), 1)
    fig, ax = plt.subplots(figsize=(min(max(2 + 0.28 * n, MIN_WIDTH_IN), 18), 4.2))  # type: ignore[attr-defined]
    x = np.arange(len(bars))
    npu = np.array([b.npu_cycles for b in bars], dtype=float)
    mem_extra = np.array([max(b.cycles - b.npu_cycles, 0) for b in bars], dtype=float)
    colours = [BOUND_COLOURS.get(b.bound, BOUND_COLOURS["other"]) for b in bars]
    ax.bar(x, npu, color="#4C72B0", label="NPU (compute)")
    ax.bar(x, mem_extra, bottom=npu, color="#DD8452", label="memory above compute")
    for xi, c, b in zip(x, colours, bars, strict=True):
        ax.plot([xi], [b.cycles], marker="v", color=c, markersize=4)
    ax.set_xticks(x, [b.label for b in bars], rotation=90, fontsize=7)
    ax.set_ylabel("cycles")
    ax.set_ylim(0, max(float(max((b.cycles for b in bars), default=0)), 1.0) * 1.08)  # room for the bound markers
    ax.set_title(title, fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    for bound in sorted({b.bound for b in bars}):
        handles.append(plt.Line2D([], [], marker="v", linestyle="", color=BOUND_COLOURS.get(bound, BOUND_COLOURS["other"])))  # type: ignore[attr-defined]
        labels.append(f"bound: {bound}")
    # Outside the axes: inside, the legend hides the tallest bars.
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _svg(fig)


def density_figure(layers: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str, *, compare: bool = True) -> str:
    """Weight-value density per chosen layer: before (grey) and after (colour) the pipeline.

    Values are the zero-point-corrected integers, so clusters show as spikes and pruned
    weights as the spike at zero. The density axis is logarithmic: next to a pruning spike
    holding half the weights, the spread of the original values would be a flat line.
    Without `compare` (no pipeline) only the model's own values are drawn.
    """
    plt = _pyplot()
    k = max(len(layers), 1)
    fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 3.4), squeeze=False, layout="constrained")  # type: ignore[attr-defined]
    for ax, (label, before, after) in zip(axes[0], layers, strict=False):  # one empty panel when there are no layers
        lo = int(min(before.min(initial=0), after.min(initial=0)))
        hi = int(max(before.max(initial=0), after.max(initial=0)))
        bins = np.arange(lo - 0.5, hi + 1.5, 1.0)
        # One step artist per series (not a patch per bin): fast to draw, small SVG.
        h_before = np.histogram(before.ravel(), bins=bins, density=True)[0]
        h_after = np.histogram(after.ravel(), bins=bins, density=True)[0]
        shown = np.concatenate([h_before, h_after]) if compare else h_before
        floor = float(shown[shown > 0].min(initial=1.0)) / 2  # log axis: empty bins sit on this floor
        ax.stairs(np.maximum(h_before, floor), bins, baseline=floor, fill=True, color="#8C8C8C", alpha=0.6,
                  label="before" if compare else "weights")
        if compare:
            ax.stairs(np.maximum(h_after, floor), bins, baseline=floor, color="#C44E52", linewidth=1.2, label="after")
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(plt.NullLocator())  # type: ignore[attr-defined]  # minor log ticks: half the drawing time
        ax.set_ylim(floor, None)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("weight (q - zero point)", fontsize=7)
        ax.set_ylabel("density (log)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _svg(fig, tight=False)  # constrained layout keeps titles and labels inside


def sram_figure(labels: Sequence[str], sram_bytes: Sequence[int], limit: int | None, title: str) -> str:
    """SRAM in use at each layer, with the target's SRAM size as a line when known."""
    plt = _pyplot()
    n = max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(min(max(2 + 0.28 * n, MIN_WIDTH_IN), 18), 3.4))  # type: ignore[attr-defined]
    x = np.arange(len(labels))
    ax.step(x, np.asarray(sram_bytes, dtype=float) / 1024, where="mid", color="#4C72B0")
    ax.fill_between(x, np.asarray(sram_bytes, dtype=float) / 1024, step="mid", alpha=0.3, color="#4C72B0")
    if limit:
        ax.axhline(limit / 1024, color="#C44E52", linestyle="--", linewidth=1, label=f"SRAM size {limit / 1024:.0f} KiB")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_xticks(x, list(labels), rotation=90, fontsize=7)
    ax.set_ylabel("KiB")
    ax.set_title(title, fontsize=10)
    return _svg(fig)
