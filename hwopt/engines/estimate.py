"""`hwopt estimate`: per-layer cycles, SRAM and off-chip traffic of a model on a target descriptor.

Two engines: "vela" compiles the model with Vela's Regor core in-process and maps its
performance report back to the input operators (Ethos-U only); "analytic" is hwopt's own
cost model from the descriptor alone (Ethos-U and Ethos-N78), much faster and usable where
Vela is not. Both produce the same `EstimateReport`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwopt.analysis.layers import weight_layers
from hwopt.analysis.memory import MemoryEstimate, estimate_memory
from hwopt.analysis.validate import Engine, check_for_native
from hwopt.engines.encode_layer import NPU_WEIGHT_OPS
from hwopt.engines.encode_n78 import n78_problem
from hwopt.engines.measure import Measurement, measure, reject_compiled
from hwopt.errors import UnsupportedModelError, UsageError
from hwopt.format.tflite_io import read_model
from hwopt.ir import Model
from hwopt.records import OpRef
from hwopt.targets import Family, Target
from hwopt.targets.ethos_n.analytic import n78_layer_costs
from hwopt.targets.ethos_u.analytic import costs_of
from hwopt.targets.ethos_u.placement import ethos_u_geometry, geometry_family
from hwopt.targets.geometry import LayerCost, LayerGeometry, PassCost, WeightInfo

log = logging.getLogger(__name__)

SCHEMA = "hwopt.estimate/1"
ENGINES = ("vela", "analytic")
ON_CHIP = ("Sram", "OnChipFlash", "shram", "lutram")


@dataclass(frozen=True)
class LayerEstimate(OpRef):
    """One input operator: where it runs and what it costs."""

    placement: str  # "npu" | "cpu"
    cycles: int
    npu_cycles: int
    macs: int
    sram_bytes: int
    encoded_weight_bytes: int | None
    bound: str  # "compute" | "memory" | "weights" | "none" (no cycles) | "cpu"
    mac_utilisation: float | None
    memory_cycles: dict[str, int]
    weight_format: str | None = None
    passes: tuple[PassCost, ...] = ()  # Ethos-N78 analytic: MCE/PLE cycles, DRAM and SRAM bytes per pass


@dataclass(frozen=True)
class EstimateSummary:
    """Network totals."""

    cycles: int
    inference_s: float
    inferences_per_second: float
    peak_sram_bytes: int
    macs: int
    npu_cycles: int
    off_chip_bytes: int
    mac_utilisation: float | None
    encoded_weight_bytes: int
    arena_bytes: int  # greedy tensor-arena plan of the input graph (TFLite Micro style)
    read_only_bytes: int  # constant data of the input graph
    npu_ops: int
    cpu_ops: int


@dataclass(frozen=True)
class EstimateReport:
    schema: str
    target: str
    engine: str
    model: str
    family: str
    system_config: str | None
    memory_mode: str | None
    clock_hz: float
    layers: list[LayerEstimate]
    summary: EstimateSummary
    _vela: Any = field(default=None, repr=False, compare=False)  # the VelaResult (compiled model), vela engine only

    def top_layers(self, n: int = 5) -> list[LayerEstimate]:
        """The n most expensive layers by cycles."""
        return sorted((la for la in self.layers if la.cycles > 0), key=lambda la: (-la.cycles, la.op_index))[:n]


def _check_model(model: Model) -> None:
    """Estimate needs a model with quantized operators (a Vela-compiled one is refused before this)."""
    outputs = [t for sg in model.subgraphs for op in sg.operators for i in op.outputs if (t := sg.tensor(i)) is not None]
    if not outputs:
        raise UnsupportedModelError("the model has no operators")
    if all(t.dtype.is_float for t in outputs):
        raise UnsupportedModelError("float model: every operator would run on the CPU; quantize it to int8 first")


def _summary(target: Target, layers: list[LayerEstimate], cycles: int, npu_cycles: int, macs: int, peak_sram: int,
             off_chip: int, encoded: int, mem: list[MemoryEstimate]) -> EstimateSummary:
    seconds = cycles / target.clock_hz
    util = macs / (cycles * target.npu.total_macs) if cycles and macs else None
    return EstimateSummary(
        cycles=cycles, inference_s=seconds, inferences_per_second=1.0 / seconds if seconds > 0 else 0.0,
        peak_sram_bytes=peak_sram, macs=macs, npu_cycles=npu_cycles, off_chip_bytes=off_chip, mac_utilisation=util,
        encoded_weight_bytes=encoded, arena_bytes=max((m.arena_bytes for m in mem), default=0),
        read_only_bytes=sum(m.read_only_bytes for m in mem),
        npu_ops=sum(1 for la in layers if la.placement == "npu"), cpu_ops=sum(1 for la in layers if la.placement == "cpu"),
    )


def _estimate_vela(m: Measurement) -> EstimateReport:
    model, target, res = m.model, m.target, m.vela
    assert res is not None
    if len(model.subgraphs) > 1:
        log.warning("Vela maps only the first subgraph's operators; %d more subgraph(s) are not itemised",
                    len(model.subgraphs) - 1)
    layers = []
    for r in res.ops:
        layers.append(LayerEstimate(
            subgraph=r.subgraph, op_index=r.op_index, op=r.op, placement=r.placement, cycles=r.cycles,
            npu_cycles=r.npu_cycles, macs=r.macs, sram_bytes=r.staging_bytes, encoded_weight_bytes=r.encoded_weight_bytes,
            bound=r.bound, mac_utilisation=r.mac_utilisation, memory_cycles=dict(r.access_cycles),
            weight_format=r.weight_format,
        ))
    p = res.perf
    off_chip = sum(t.bytes_read + t.bytes_written for t in p.traffic if t.memory not in ON_CHIP)
    summary = _summary(target, layers, p.cycles, p.npu_cycles, p.macs, p.peak_bytes("Sram"), off_chip,
                       p.encoded_weight_bytes, estimate_memory(model))
    return _report(model, target, "vela", layers, summary, res)


@dataclass
class _Prepared:
    """What the analytic engine derives from a model once, whatever the target: the operator geometry
    per geometry family (U55 and U65 share one), the weight statistics and the TFLite Micro arena."""

    model: Model
    geometry: dict[Family, list[LayerGeometry]] = field(default_factory=dict)
    weight_stats: dict[tuple[int, int], WeightInfo | None] = field(default_factory=dict)
    memory: list[MemoryEstimate] | None = None
    native_checked: bool = False  # the model passed the checks Vela would apply (once per model)

    def costs(self, target: Target) -> list[LayerCost]:
        if target.family is Family.ETHOS_N78:
            return _n78_placeable(self.model, n78_layer_costs(self.model, target))
        family = geometry_family(target.family)
        if family not in self.geometry:
            self.geometry[family] = ethos_u_geometry(self.model, family, self.weight_stats)
        return costs_of(self.geometry[family], target)

    def memory_plan(self) -> list[MemoryEstimate]:
        if self.memory is None:
            self.memory = estimate_memory(self.model)
        return self.memory


def _estimate_analytic(model: Model, target: Target, prepared: _Prepared | None = None) -> EstimateReport:
    prep = prepared or _Prepared(model)
    if not prep.native_checked:  # what Vela rejects (zero strides, missing filters) is rejected here too
        check_for_native(model, Engine.ANALYTIC)
        prep.native_checked = True
    layers: list[LayerEstimate] = []
    costs = prep.costs(target)
    for c in costs:
        util = c.macs / (c.cycles * target.npu.total_macs) if c.cycles and c.macs else None
        layers.append(LayerEstimate(
            subgraph=c.subgraph, op_index=c.op_index, op=c.op, placement=c.placement, cycles=c.cycles,
            npu_cycles=c.compute_cycles, macs=c.macs, sram_bytes=c.sram_bytes, encoded_weight_bytes=c.encoded_weight_bytes,
            bound=c.bound, mac_utilisation=util, memory_cycles=dict(c.memory_cycles), passes=c.passes,
        ))
    cycles = sum(la.cycles for la in layers)
    mem = prep.memory_plan()
    arena = max((m.arena_bytes for m in mem), default=0)
    largest_weights = max((la.encoded_weight_bytes or 0 for la in layers), default=0)
    if target.family is Family.ETHOS_N78 or target.arena_memory != "Sram":
        peak_sram = min(arena + largest_weights, target.arena_limit)
    else:
        peak_sram = arena + largest_weights
    off_chip = 0
    for c in costs:
        for m, cyc in c.memory_cycles.items():
            if m not in ON_CHIP:
                off_chip += int(cyc * target.bandwidth(m))
    encoded = sum(la.encoded_weight_bytes or 0 for la in layers)
    summary = _summary(target, layers, cycles, sum(la.npu_cycles for la in layers), sum(la.macs for la in layers),
                       peak_sram, off_chip, encoded, mem)
    return _report(model, target, "analytic", layers, summary, None)


def _n78_placeable(model: Model, costs: list[Any]) -> list[Any]:
    """N78 costs with every weight layer the N78 weight format cannot hold moved to the CPU.

    The estimate must not place on the NPU what `hwopt encode` for the same target rejects.
    """
    from dataclasses import replace

    blocked = {(la.subgraph, la.op_index) for la in weight_layers(model)
               if la.op in NPU_WEIGHT_OPS and n78_problem(la, model) is not None}
    return [replace(c, placement="cpu", cycles=0, compute_cycles=0, memory_cycles={}, weight_cycles=0, macs=0,
                    encoded_weight_bytes=None, sram_bytes=0, bound="cpu")
            if (c.subgraph, c.op_index) in blocked and c.placement == "npu" else c
            for c in costs]


def _report(model: Model, target: Target, engine: str, layers: list[LayerEstimate], summary: EstimateSummary,
            vela: Any) -> EstimateReport:
    return EstimateReport(
        schema=SCHEMA, target=target.name, engine=engine, model=str(model.path) if model.path else "<bytes>",
        family=target.family.value, system_config=target.system.name if target.system else None,
        memory_mode=target.memory_mode.name if target.memory_mode else None, clock_hz=target.clock_hz,
        layers=layers, summary=summary, _vela=vela,
    )


def estimate(model_or_path: Model | str | Path | bytes, target: Target, engine: str | None = None) -> EstimateReport:
    """Estimate per-layer and total cost of a model on a target; the engine defaults to the target's."""
    engine = engine or target.default_engine
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    tgt = target
    if engine == "vela" and not tgt.family.is_ethos_u:
        raise UsageError(f"target {tgt.name} is an Ethos-N78: Vela does not compile for it; use the analytic engine")
    if engine == "vela":  # read, refuse a compiled model, check, compile with Vela: the measurement pipeline
        return _estimate_vela(measure(model_or_path, tgt, action="estimate", audit=False, check=_check_model))
    model = model_or_path if isinstance(model_or_path, Model) else read_model(model_or_path)
    reject_compiled(model, str(model.path) if model.path else "<bytes>", "estimate")
    _check_model(model)
    return _estimate_analytic(model, tgt)


def estimate_batch(pairs: Iterable[tuple[Model | str | Path | bytes, Target]],
                   engine: str | None = None) -> list[EstimateReport]:
    """Estimate many (model, target) pairs in one process, in order. Each distinct model (the same
    path, bytes or Model object) is read and checked once; for the analytic engine its operator
    geometry (per target family) and arena plan are also derived once and reused for every target."""
    prepared: dict[object, _Prepared] = {}
    out = []
    for source, target in pairs:
        eng = engine or target.default_engine
        if eng != "analytic":
            out.append(estimate(source, target, eng))
            continue
        key: object = str(source) if isinstance(source, (str, Path)) else id(source)
        if key not in prepared:
            model = source if isinstance(source, Model) else read_model(source)
            _check_model(model)
            prepared[key] = _Prepared(model)
        out.append(_estimate_analytic(prepared[key].model, target, prepared[key]))
    return out
