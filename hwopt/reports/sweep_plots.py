"""Sweep figures (inline SVG): per-target Pareto fronts and the cross-target choice per model.

Per target: encoded weight size against inference time, one marker shape per model, the
colour giving fidelity when data was measured; front points are ringed and joined. Across
targets: for each model the best inference time each target reaches (over pipelines), the
bar of the winning target/pipeline pair labelled.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_WIDTH_IN = 7.0  # inches


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


MARKERS = "os^Dv<>pXh*"
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")


@dataclass(frozen=True)
class Point:
    """One successful job as a point: size (bytes), latency (s), fidelity score or None."""

    model: str
    pipeline: str
    size: int
    latency_s: float
    fidelity: float | None
    on_front: bool


def front_figure(points: Sequence[Point], title: str) -> str:
    """Size vs latency of every (model, pipeline) on one target, the Pareto front highlighted."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(MIN_WIDTH_IN, 4.6))  # type: ignore[attr-defined]
    models = sorted({p.model for p in points})
    fid = [p.fidelity for p in points if p.fidelity is not None]
    norm = plt.Normalize(min(fid), max(fid) if max(fid) > min(fid) else min(fid) + 1e-9) if fid else None  # type: ignore[attr-defined]
    scatter = None
    for i, m in enumerate(models):
        pts = [p for p in points if p.model == m]
        x = np.array([p.size / 1024 for p in pts])
        y = np.array([p.latency_s * 1e3 for p in pts])
        if norm is not None:
            c = [p.fidelity if p.fidelity is not None else np.nan for p in pts]
            scatter = ax.scatter(x, y, c=c, cmap="viridis", norm=norm, marker=MARKERS[i % len(MARKERS)], s=46,
                                 label=m, edgecolors="none")
        else:
            ax.scatter(x, y, color=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)], s=46, label=m)
        for p, xi, yi in zip(pts, x, y, strict=True):
            ax.annotate(p.pipeline, (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7, color="#555")
    front = sorted((p for p in points if p.on_front), key=lambda p: (p.size, p.latency_s))
    if front:
        fx = [p.size / 1024 for p in front]
        fy = [p.latency_s * 1e3 for p in front]
        ax.scatter(fx, fy, s=150, facecolors="none", edgecolors="#C44E52", linewidths=1.4, label="Pareto front")
        ax.plot(fx, fy, color="#C44E52", linewidth=0.8, linestyle="--")
    if scatter is not None:
        fig.colorbar(scatter, ax=ax, label="fidelity (higher is better)")
    ax.set_xlabel("encoded weights (KiB)")
    ax.set_ylabel("inference time (ms)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _svg(fig)


@dataclass(frozen=True)
class Best:
    """The lowest latency one target reaches for one model, and with which pipeline."""

    model: str
    target: str
    pipeline: str
    latency_s: float
    winner: bool  # this model's fastest pair over all targets


def cross_target_figure(best: Sequence[Best], title: str) -> str:
    """Grouped bars: per model, the best latency on each target; the overall winner labelled."""
    plt = _pyplot()
    models = sorted({b.model for b in best})
    targets = sorted({b.target for b in best})
    fig, ax = plt.subplots(figsize=(max(MIN_WIDTH_IN, 1.6 + 1.1 * len(models) * max(len(targets), 1) / 3), 4.6))  # type: ignore[attr-defined]
    width = 0.8 / max(len(targets), 1)
    by = {(b.model, b.target): b for b in best}
    for j, t in enumerate(targets):
        xs, ys = [], []
        for i, m in enumerate(models):
            b = by.get((m, t))
            if b is None:
                continue
            xs.append(i + (j - (len(targets) - 1) / 2) * width)
            ys.append(b.latency_s * 1e3)
            if b.winner:
                ax.annotate(f"best: {b.pipeline}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(0, 3),
                            ha="center", fontsize=7, rotation=90)
        ax.bar(xs, ys, width=width * 0.95, color=PALETTE[j % len(PALETTE)], label=t)
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("best inference time (ms)")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _svg(fig)
