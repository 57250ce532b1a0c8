"""Compile report figures, returned as SVG text to inline in HTML.

Three figures: per-layer cycles split by what bounds them, weight-value density of chosen
layers before and after the pipeline (as in the TFMOT collaborative-optimization guide),
and SRAM in use over the layers. SVG keeps the HTML one self-contained file with no
scripts, and text in it stays searchable. They are drawn on `hwopt.reports.svg`'s canvas
(see there why not with matplotlib); each bar and step carries its figures as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hwopt.reports import svg

PX_PER_IN = 72.0
MIN_WIDTH_IN = 7.0  # inches; narrower figures of small models leave titles wider than the axes
MAX_WIDTH_IN = 18.0
BOUND_COLOURS = {"compute": "#4C72B0", "memory": "#DD8452", "weights": "#55A868", "cpu": "#8C8C8C", "other": "#C44E52"}
NPU_COLOUR, MEMORY_COLOUR, BEFORE_COLOUR, AFTER_COLOUR, LIMIT_COLOUR = "#4C72B0", "#DD8452", "#8C8C8C", "#C44E52", "#C44E52"


@dataclass(frozen=True)
class CycleBar:
    label: str
    npu_cycles: int
    memory_cycles: int  # the largest memory's access cycles
    cycles: int
    bound: str


def _width_px(n: int) -> float:
    return min(max(2 + 0.28 * n, MIN_WIDTH_IN), MAX_WIDTH_IN) * PX_PER_IN


def _label_room(labels: Sequence[str], size: float = 7.0) -> float:
    """Pixels below the axis for rotated labels (capped: very long names are clipped by the figure)."""
    return min(max((svg.text_width(s, size) for s in labels), default=0.0), 220.0) + 10


def _layer_axes(labels: Sequence[str], yticks: Sequence[str], height_in: float, legend_w: float, n: int,
                ylim: tuple[float, float]) -> tuple[svg.Canvas, svg.Axes]:
    """A figure for one value per layer: room for the y labels left, the legend right, the names below."""
    left = 24 + max((svg.text_width(t, 9) for t in yticks), default=0.0)
    bottom = _label_room(labels)
    width = _width_px(n)
    plot_h = height_in * PX_PER_IN
    c = svg.Canvas(width + legend_w, plot_h + 28 + bottom)
    ax = svg.Axes(left, 24, width - left - 8, plot_h, (-0.6, max(n, 1) - 0.4), ylim)
    return c, ax


def cycles_figure(bars: Sequence[CycleBar], title: str) -> str:
    """Stacked bars per layer: NPU compute cycles, then the memory cycles above them; a marker in the
    colour of what bounds the layer sits on each total."""
    top = float(max((b.cycles for b in bars), default=0))
    ticks = svg.nice_ticks(max(top, 1.0) * 1.08)
    labels = [svg.tick_label(t) for t in ticks]
    entries = [("box", NPU_COLOUR, "NPU (compute)"), ("box", MEMORY_COLOUR, "memory above compute")]
    entries += [("marker", BOUND_COLOURS.get(b, BOUND_COLOURS["other"]), f"bound: {b}") for b in sorted({b.bound for b in bars})]
    lw = svg.legend_width(entries)
    c, ax = _layer_axes([b.label for b in bars], labels, 3.2, lw + 10, len(bars), (0.0, ticks[-1]))
    svg.frame(c, ax, ticks, labels, "cycles", title)
    half = 0.4 * ax.width / max(len(bars), 1)
    base = ax.y(0)
    for i, b in enumerate(bars):
        x = ax.x(i)
        npu = min(b.npu_cycles, b.cycles) if b.cycles else b.npu_cycles
        tip = f"{b.label}: {b.cycles:,} cycles (NPU {b.npu_cycles:,}, memory {b.memory_cycles:,}), bound by {b.bound}"
        c.rect(x - half, ax.y(npu), 2 * half, base - ax.y(npu), NPU_COLOUR, title=tip)
        if b.cycles > npu:
            c.rect(x - half, ax.y(b.cycles), 2 * half, ax.y(npu) - ax.y(b.cycles), MEMORY_COLOUR, title=tip)
        c.marker(x, ax.y(b.cycles), BOUND_COLOURS.get(b.bound, BOUND_COLOURS["other"]), min(4.0, max(half, 2.0)))
    svg.x_labels(c, ax, list(range(len(bars))), [b.label for b in bars])
    svg.legend(c, ax.x0 + ax.width + 14, ax.y0 + 8, entries)
    return c.svg()


def _histogram(values: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Density of each integer in [lo, hi] (one bincount, not a float histogram)."""
    flat = values.ravel()
    if flat.size == 0:
        return np.zeros(hi - lo + 1)
    counts = np.bincount(np.subtract(flat, lo, dtype=np.intp), minlength=hi - lo + 1)
    return counts / float(flat.size)


def _steps(ax: svg.Axes, lo: int, dens: np.ndarray, floor: float) -> list[tuple[float, float]]:
    """Outline of a histogram with unit bins centred on the integers (the empty bins on the floor)."""
    pts: list[tuple[float, float]] = [(ax.x(lo - 0.5), ax.y(floor))]
    for i, d in enumerate(np.maximum(dens, floor).tolist()):
        y = ax.y(d)
        pts += [(ax.x(lo + i - 0.5), y), (ax.x(lo + i + 0.5), y)]
    pts.append((ax.x(lo + len(dens) - 0.5), ax.y(floor)))
    return pts


def density_figure(layers: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str, *, compare: bool = True) -> str:
    """Weight-value density per chosen layer: before (grey) and after (colour) the pipeline.

    Values are the zero-point-corrected integers, so clusters show as spikes and pruned
    weights as the spike at zero. The density axis is logarithmic: next to a pruning spike
    holding half the weights, the spread of the original values would be a flat line.
    Without `compare` (no pipeline) only the model's own values are drawn.
    """
    k = max(len(layers), 1)
    panel_w, panel_h = 4.2 * PX_PER_IN, 3.4 * PX_PER_IN
    c = svg.Canvas(panel_w * k, panel_h + 26)
    c.text(panel_w * k / 2, 14, title, 10, anchor="middle")
    entries = [("box", BEFORE_COLOUR, "before" if compare else "weights")]
    if compare:
        entries.append(("line", AFTER_COLOUR, "after"))
    for j, (label, before, after) in enumerate(layers):
        drawn = (before, after) if compare else (before,)  # without a pipeline only the model's own values show
        lo = int(min(v.min(initial=0) for v in drawn))
        hi = int(max(v.max(initial=0) for v in drawn))
        h_before = _histogram(before, lo, hi)
        h_after = _histogram(after, lo, hi) if compare else h_before
        shown = np.concatenate([h_before, h_after]) if compare else h_before
        positive = shown[shown > 0]
        floor = float(positive.min()) / 2 if positive.size else 0.5  # log axis: empty bins sit on this floor
        top = float(shown.max(initial=floor * 2))
        e_lo, e_hi = math.floor(math.log10(floor)), math.ceil(math.log10(max(top, floor * 10)))
        decades = list(range(e_lo + (10.0 ** e_lo < floor), e_hi + 1))
        ticks = [10.0 ** e for e in decades]
        tick_labels = [svg.log_label(e) for e in decades]
        left = 30 + max((svg.text_width(t, 7) for t in tick_labels), default=0.0)
        ax = svg.Axes(panel_w * j + left, 48, panel_w - left - 10, panel_h - 84, (lo - 0.5, hi + 0.5),
                      (floor, 10.0 ** e_hi), ylog=True)
        svg.frame(c, ax, ticks, tick_labels, "density (log)", "", size=7)
        c.text(ax.x0 + ax.width / 2, ax.y0 - 8, label, 8, anchor="middle")
        c.path(_steps(ax, lo, h_before, floor), fill=BEFORE_COLOUR, opacity=0.6, close=True)
        if compare:
            c.path(_steps(ax, lo, h_after, floor)[1:-1], stroke=AFTER_COLOUR, width=1.2)
        step = svg.nice_ticks(float(max(hi - lo, 1)), 4)[1]
        for v in np.arange(math.ceil(lo / step) * step, hi + 1e-9, step).tolist():  # multiples of the step
            x = ax.x(v)
            c.line(x, ax.y0 + ax.height, x, ax.y0 + ax.height + 3, "#333333")
            c.text(x, ax.y0 + ax.height + 12, f"{v:g}", 7, anchor="middle")
        c.text(ax.x0 + ax.width / 2, ax.y0 + ax.height + 24, "weight (q - zero point)", 7, anchor="middle")
        svg.legend(c, ax.x0 + ax.width - svg.legend_width(entries, 7), ax.y0 + 10, entries, 7)
    return c.svg()


def sram_figure(labels: Sequence[str], sram_bytes: Sequence[int], limit: int | None, title: str) -> str:
    """SRAM in use at each layer, with the target's SRAM size as a dashed line when known."""
    kib = [b / 1024 for b in sram_bytes]
    top = max(max(kib, default=0.0), (limit or 0) / 1024, 1.0)
    ticks = svg.nice_ticks(top * 1.05)
    tick_labels = [f"{t:g}" for t in ticks]
    entries = [("dash", LIMIT_COLOUR, f"SRAM size {limit / 1024:.0f} KiB")] if limit else []
    lw = svg.legend_width(entries) + 10 if entries else 0.0
    c, ax = _layer_axes(labels, tick_labels, 2.4, lw, len(labels), (0.0, ticks[-1]))
    svg.frame(c, ax, ticks, tick_labels, "KiB", title)
    pts: list[tuple[float, float]] = []
    for i, v in enumerate(kib):  # steps centred on the layers, as matplotlib's where="mid"
        y = ax.y(v)
        pts += [(ax.x(max(i - 0.5, 0)), y), (ax.x(min(i + 0.5, len(kib) - 1)), y)]
    if pts:
        c.path([(pts[0][0], ax.y(0)), *pts, (pts[-1][0], ax.y(0))], fill=NPU_COLOUR, opacity=0.3, close=True)
        c.path(pts, stroke=NPU_COLOUR, width=1.5)
    for i, (lbl, b) in enumerate(zip(labels, sram_bytes, strict=True)):  # tooltips over each layer's step
        x0, x1 = ax.x(max(i - 0.5, 0)), ax.x(min(i + 0.5, len(kib) - 1))
        c.rect(x0, ax.y0, max(x1 - x0, 1.0), ax.height, "#ffffff", opacity=0.0, title=f"{lbl}: {b:,} bytes")
    if limit:
        y = ax.y(limit / 1024)
        c.line(ax.x0, y, ax.x0 + ax.width, y, LIMIT_COLOUR, 1.0, "5 3")
        svg.legend(c, ax.x0 + ax.width + 14, ax.y0 + 8, entries)
    svg.x_labels(c, ax, list(range(len(labels))), list(labels))
    return c.svg()
