"""A small SVG chart canvas for the compile report's figures: axes, ticks, bars, steps, legends.

Written directly rather than through matplotlib: importing matplotlib (~0.5 s) and drawing one
figure with it (0.3-1 s, more with hundreds of layers) costs more than Vela's whole compile
of a small model, while these figures are bars and step lines whose SVG is a few hundred
elements of text. The output is deterministic (no ids, no dates) and its text stays text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

CHAR_W = 0.6  # average glyph width of a sans-serif font, as a share of the font size
FONT = "font-family:DejaVu Sans,Helvetica,Arial,sans-serif"


def _f(x: float) -> str:
    """A coordinate with two decimals and no trailing zeros (small, deterministic SVG)."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def text_width(text: str, size: float) -> float:
    return CHAR_W * size * len(text)


def nice_ticks(hi: float, count: int = 5) -> list[float]:
    """Ticks from 0 to at least `hi` on a 1-2-5 step."""
    if hi <= 0:
        return [0.0, 1.0]
    raw = hi / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(hi / step - 1e-9)
    return [i * step for i in range(n + 1)]


def tick_label(v: float) -> str:
    """0, 500, 2.5k, 1.2M: short labels for counts and bytes."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.4g}{suffix}"
    return f"{v:.4g}"


def log_label(exp: int) -> str:
    return f"1e{exp}" if exp < -2 or exp > 3 else f"{10.0 ** exp:g}"


@dataclass
class Axes:
    """A plot area inside a figure, mapping data to pixels; linear or log10 in y."""

    x0: float
    y0: float
    width: float
    height: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    ylog: bool = False

    def x(self, v: float) -> float:
        lo, hi = self.xlim
        return self.x0 + (v - lo) / (hi - lo or 1.0) * self.width

    def y(self, v: float) -> float:
        lo, hi = self.ylim
        if self.ylog:
            v, lo, hi = (math.log10(max(a, 1e-300)) for a in (v, lo, hi))
        return self.y0 + self.height - (v - lo) / (hi - lo or 1.0) * self.height


@dataclass
class Canvas:
    """SVG elements in drawing order; `svg()` wraps them in one root element."""

    width: float
    height: float
    parts: list[str] = field(default_factory=list)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, *, title: str | None = None,
             opacity: float | None = None) -> None:
        op = f' fill-opacity="{opacity}"' if opacity is not None else ""
        tip = f"<title>{escape(title)}</title>" if title else ""
        end = f">{tip}</rect>" if tip else "/>"
        self.parts.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(max(w, 0))}" height="{_f(max(h, 0))}" '
                          f'fill="{fill}"{op}{end}')

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str, width: float = 1.0, dash: str = "") -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{stroke}" '
                          f'stroke-width="{_f(width)}"{d}/>')

    def path(self, points: Sequence[tuple[float, float]], *, stroke: str = "none", fill: str = "none",
             width: float = 1.0, opacity: float | None = None, close: bool = False) -> None:
        if not points:
            return
        d = "M" + " L".join(f"{_f(x)} {_f(y)}" for x, y in points) + (" Z" if close else "")
        op = f' fill-opacity="{opacity}"' if opacity is not None else ""
        self.parts.append(f'<path d="{d}" stroke="{stroke}" fill="{fill}" stroke-width="{_f(width)}"{op}/>')

    def marker(self, x: float, y: float, colour: str, size: float = 4.0) -> None:
        """A downward triangle whose tip sits on (x, y)."""
        self.parts.append(f'<path d="M{_f(x - size)} {_f(y - 1.6 * size)} L{_f(x + size)} {_f(y - 1.6 * size)} '
                          f'L{_f(x)} {_f(y)} Z" fill="{colour}"/>')

    def text(self, x: float, y: float, text: str, size: float = 9.0, *, anchor: str = "start", rotate: float = 0.0,
             weight: str = "normal") -> None:
        rot = f' transform="rotate({_f(rotate)} {_f(x)} {_f(y)})"' if rotate else ""
        bold = ' font-weight="bold"' if weight != "normal" else ""
        self.parts.append(f'<text x="{_f(x)}" y="{_f(y)}" font-size="{_f(size)}" text-anchor="{anchor}"{bold}{rot}>'
                          f'{escape(text)}</text>')

    def svg(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(self.width)}" height="{_f(self.height)}" '
                f'viewBox="0 0 {_f(self.width)} {_f(self.height)}" style="{FONT}">'
                f'<rect width="100%" height="100%" fill="#ffffff"/>' + "".join(self.parts) + "</svg>")


def frame(c: Canvas, ax: Axes, yticks: Sequence[float], labels: Sequence[str], ylabel: str, title: str,
          size: float = 9.0) -> None:
    """Axes box, y grid and tick labels, the y label and the title."""
    for v, lbl in zip(yticks, labels, strict=True):
        y = ax.y(v)
        c.line(ax.x0, y, ax.x0 + ax.width, y, "#e6e6e6")
        c.line(ax.x0 - 3, y, ax.x0, y, "#333333")
        c.text(ax.x0 - 5, y + size * 0.35, lbl, size, anchor="end")
    c.path([(ax.x0, ax.y0), (ax.x0, ax.y0 + ax.height), (ax.x0 + ax.width, ax.y0 + ax.height)], stroke="#333333")
    widest = max((text_width(lbl, size) for lbl in labels), default=0.0)
    mid = ax.y0 + ax.height / 2
    c.text(ax.x0 - widest - 12, mid, ylabel, size, anchor="middle", rotate=-90)
    c.text(ax.x0 + ax.width / 2, ax.y0 - 8, title, size + 1, anchor="middle")


def x_labels(c: Canvas, ax: Axes, positions: Sequence[float], labels: Sequence[str], size: float = 7.0) -> None:
    """Rotated category labels under the axis, thinned so neighbours never overlap."""
    if not labels:
        return
    spacing = ax.width / max(len(labels), 1)
    every = max(1, math.ceil(1.3 * size / max(spacing, 1e-9)))
    base = ax.y0 + ax.height + 4
    for i in range(0, len(labels), every):
        x = ax.x(positions[i])
        c.line(x, ax.y0 + ax.height, x, base - 1, "#333333")
        c.text(x + size * 0.35, base, labels[i], size, anchor="end", rotate=-90)


def legend(c: Canvas, x: float, y: float, entries: Sequence[tuple[str, str, str]], size: float = 8.0) -> None:
    """Entries (kind, colour, label) with kind "box", "line", "dash" or "marker", stacked down from (x, y)."""
    for i, (kind, colour, label) in enumerate(entries):
        cy = y + i * (size + 5)
        if kind == "box":
            c.rect(x, cy - size * 0.8, 14, size * 0.8, colour)
        elif kind == "marker":
            c.marker(x + 7, cy, colour, 3.5)
        else:
            c.line(x, cy - size * 0.35, x + 14, cy - size * 0.35, colour, 1.5, "4 2" if kind == "dash" else "")
        c.text(x + 19, cy, label, size)


def legend_width(entries: Sequence[tuple[str, str, str]], size: float = 8.0) -> float:
    return 24 + max((text_width(e[2], size) for e in entries), default=0.0)
