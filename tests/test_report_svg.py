"""The compile report's figures: well-formed SVG, one bar per layer, thinned labels, determinism."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from hwopt.reports import svg
from hwopt.reports.plots import CycleBar, cycles_figure, density_figure, sram_figure

NS = "{http://www.w3.org/2000/svg}"


def _parse(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == NS + "svg" and float(root.get("width", 0)) > 300 and float(root.get("height", 0)) > 150
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(NS + "text")]


def test_cycles_figure_has_a_bar_per_layer_with_its_figures() -> None:
    bars = [CycleBar(f"{i}:CONV_2D", 100 * i, 10, 100 * i + 50 * (i % 2), "memory" if i % 2 else "compute")
            for i in range(1, 6)]
    text = cycles_figure(bars, "cycles <per> layer")
    root = _parse(text)
    tips = [t.text or "" for t in root.iter(NS + "title")]
    # the NPU part of every bar and the memory part of the odd ones, each with the layer's figures
    assert len(tips) == 5 + 3  # layers 1, 3 and 5 have memory cycles above compute
    assert "5:CONV_2D: 550 cycles (NPU 500, memory 10), bound by memory" in tips
    labels = _texts(root)
    assert "cycles <per> layer" in labels  # escaped in the SVG, the title text itself
    assert [f"{i}:CONV_2D" for i in range(1, 6)] == [s for s in labels if s.endswith(":CONV_2D")]
    assert "bound: compute" in labels and "bound: memory" in labels
    assert text == cycles_figure(bars, "cycles <per> layer")  # deterministic


def test_many_layers_thin_their_labels_but_keep_every_bar() -> None:
    bars = [CycleBar(f"{i}:ADD", 1000, 0, 1000, "compute") for i in range(600)]
    root = _parse(cycles_figure(bars, "t"))
    assert len(list(root.iter(NS + "title"))) == 600
    shown = [s for s in _texts(root) if s.endswith(":ADD")]
    assert 50 < len(shown) < 600 and shown[0] == "0:ADD"


def test_density_histogram_is_exact() -> None:
    before = np.array([-2, -2, 0, 0, 0, 0, 1, 3], dtype=np.int16)
    after = np.array([-2, -2, 0, 0, 0, 0, 0, 3], dtype=np.int16)
    root = _parse(density_figure([("L", before, after)], "density"))
    paths = [p.get("d", "") for p in root.iter(NS + "path")]
    assert len(paths) >= 2  # the filled "before" outline and the "after" line
    labels = _texts(root)
    assert "density (log)" in labels and "before" in labels and "after" in labels
    # decades from the floor (1/16, half the smallest density 1/8) up to 1
    assert {"0.1", "1"} <= set(labels)


def test_sram_figure_draws_the_limit() -> None:
    root = _parse(sram_figure(["0:A", "1:B"], [2048, 4096], 8192, "sram"))
    assert "SRAM size 8 KiB" in _texts(root)
    assert any(ln.get("stroke-dasharray") for ln in root.iter(NS + "line"))
    assert "1:B: 4,096 bytes" in [t.text for t in root.iter(NS + "title")]


@pytest.mark.parametrize("hi, expected", [(0.0, [0.0, 1.0]), (7.0, [0, 2, 4, 6, 8]), (950.0, [0, 200, 400, 600, 800, 1000])])
def test_nice_ticks(hi: float, expected: list[float]) -> None:
    assert svg.nice_ticks(hi) == expected


def test_tick_labels() -> None:
    assert [svg.tick_label(v) for v in (0, 500, 2500, 1_200_000)] == ["0", "500", "2.5k", "1.2M"]
    assert [svg.log_label(e) for e in (-5, -1, 0, 2)] == ["1e-5", "0.1", "1", "100"]
