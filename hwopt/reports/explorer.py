"""Google Model Explorer overlays: one node-data JSON file per metric, keyed by the viewer's own node ids.

Model Explorer's TFLite adapter names a subgraph's graph after the subgraph (an unnamed one
"main" for subgraph 0, "subgraph_<i>" otherwise) and gives operator i the node id "<i>", so the per-layer figures of an estimate
or a compile land on the operators of the input model. Numeric metrics carry a colour
gradient (light = low, dark = high); placement and bound-by are categories with fixed colours.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hwopt.analysis.layers import weight_layers, zero_corrected
from hwopt.analysis.stats import WeightStats, weight_stats
from hwopt.errors import OutputError
from hwopt.fileio import atomic_write_text
from hwopt.ir import Model

# Light yellow to dark red: the usual "hotter is costlier" ramp, readable behind black labels.
GRADIENT = ({"stop": 0, "bgColor": "#fff7bc"}, {"stop": 0.5, "bgColor": "#fe9929"}, {"stop": 1, "bgColor": "#cc4c02"})
PLACEMENT_COLOURS = {"npu": "#a6dba0", "cpu": "#f4a582"}
BOUND_COLOURS = {"compute": "#92c5de", "memory": "#f4a582", "weights": "#d6604d", "none": "#f0f0f0", "cpu": "#bababa"}


class LayerFigures(Protocol):
    """What an estimate or compile report says about one input operator."""

    @property
    def subgraph(self) -> int: ...
    @property
    def op_index(self) -> int: ...
    @property
    def op(self) -> str: ...
    @property
    def cycles(self) -> int: ...
    @property
    def placement(self) -> str: ...
    @property
    def bound(self) -> str: ...
    @property
    def encoded_weight_bytes(self) -> int | None: ...


@dataclass(frozen=True)
class NodeFigures:
    """Every overlaid metric of one operator (None where it does not apply, e.g. no weights)."""

    graph: str  # Model Explorer graph id of the operator's subgraph
    op_index: int
    cycles: int
    cycle_share: float
    encoded_weight_bytes: int | None
    bits_per_weight: float | None
    sparsity: float | None
    distinct_per_channel: int | None
    placement: str
    bound: str


@dataclass(frozen=True)
class Metric:
    """One overlay file: its file stem, the name shown in Model Explorer, and the figure it shows."""

    key: str
    title: str
    categorical: bool = False


METRICS = (
    Metric("cycles", "cycles"),
    Metric("cycle_share", "share of total cycles"),
    Metric("encoded_weight_bytes", "encoded weight bytes"),
    Metric("bits_per_weight", "bits per weight"),
    Metric("sparsity", "weight sparsity"),
    Metric("distinct_per_channel", "distinct values per channel"),
    Metric("placement", "placement", categorical=True),
    Metric("bound", "bound by", categorical=True),
)


def graph_id(subgraph: int, name: str = "") -> str:
    """The graph id Model Explorer's TFLite adapter gives subgraph `subgraph` named `name`."""
    if name:
        return name
    return "main" if subgraph == 0 else f"subgraph_{subgraph}"


def node_figures(model: Model, layers: Sequence[LayerFigures]) -> list[NodeFigures]:
    """Per-operator figures: costs from the report, weight structure measured on the model itself."""
    total = sum(la.cycles for la in layers)
    weights: dict[tuple[int, int], WeightStats] = {}
    for wl in weight_layers(model):
        t = wl.weights(model)
        if not t.dtype.is_integer:
            continue
        weights[(wl.subgraph, wl.op_index)] = weight_stats(zero_corrected(model, wl), wl.out_axis, wl.in_axis)
    names = {sg.index: sg.name or "" for sg in model.subgraphs}
    out = []
    for la in layers:
        st = weights.get((la.subgraph, la.op_index))
        enc = la.encoded_weight_bytes
        # a compile report measures sparsity and distinct values after its enforce pipeline: prefer those
        measured_sparsity = getattr(la, "sparsity", None)
        measured_distinct = getattr(la, "max_unique_per_channel", None)
        out.append(NodeFigures(
            graph=graph_id(la.subgraph, names.get(la.subgraph, "")), op_index=la.op_index, cycles=la.cycles,
            cycle_share=la.cycles / total if total else 0.0, encoded_weight_bytes=enc,
            bits_per_weight=8 * enc / st.elements if st is not None and enc is not None and st.elements else None,
            sparsity=measured_sparsity if measured_sparsity is not None else st.sparsity if st is not None else None,
            distinct_per_channel=(measured_distinct if measured_distinct is not None
                                  else st.max_unique_per_channel if st is not None else None),
            placement=la.placement, bound=la.bound,
        ))
    return out


def overlay(metric: Metric, figures: Sequence[NodeFigures], model_name: str) -> dict[str, object]:
    """The Model Explorer model node data (graph id -> graph node data) of one metric."""
    graphs: dict[str, dict[str, object]] = {}
    for f in figures:
        value = getattr(f, metric.key)
        if value is None:
            continue
        g = graphs.setdefault(f.graph, {"results": {}})
        result: dict[str, object] = {"value": value}
        if metric.categorical:
            colours = PLACEMENT_COLOURS if metric.key == "placement" else BOUND_COLOURS
            result["bgColor"] = colours.get(str(value), "#ffffff")
        g["results"][str(f.op_index)] = result  # type: ignore[index]
    for g in graphs.values():
        g["name"] = f"{model_name}: {metric.title}"
        if not metric.categorical:
            g["gradient"] = [dict(s) for s in GRADIENT]
        else:
            g["showExpandedSummaryOnGroupNode"] = True
    return dict(sorted(graphs.items()))


def write_overlays(out_dir: str | os.PathLike[str], model: Model, layers: Sequence[LayerFigures],
                   protect: tuple[Path, ...] = ()) -> list[Path]:
    """Write `<metric>.json` for every metric into `out_dir` (created if needed); the paths written."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--explorer path exists and is not a directory: {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror or exc}") from None
    figures = node_figures(model, layers)
    name = Path(str(model.path)).stem if model.path else "model"
    paths = []
    for metric in METRICS:
        text = json.dumps(overlay(metric, figures, name), indent=1, sort_keys=True) + "\n"
        paths.append(atomic_write_text(out / f"{metric.key}.json", text, protect=protect))
    return paths
