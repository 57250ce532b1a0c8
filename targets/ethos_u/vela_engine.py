"""Compile a TFLite model with Vela's Regor core in-process and map its performance report back.

`compile_model` calls `ethosu.regor.compile` with the system configuration generated from the
descriptor, keeps the compiled `_vela.tflite` bytes and turns Regor's performance report and
optimisation database into typed per-operator rows: every row of Regor's `perf` table is joined
through `source_id` to the `source` table, whose `ext_key` is the operator's index in the input
subgraph. Totals are Regor's own, so they equal what the `vela` CLI writes to its summary CSV.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from hwopt import isolation, native_calls
from hwopt.analysis.validate import check_for_native
from hwopt.errors import UnsupportedModelError
from hwopt.format.tflite_io import read_model
from hwopt.ir import Model
from hwopt.records import OpRef
from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u import vela_start
from hwopt.targets.ethos_u.vela_config import CompilerOptions

log = logging.getLogger(__name__)

ACCESS_MEMORIES = ("Sram", "Dram", "OnChipFlash", "OffChipFlash")
CPU_OPERATOR = "Passthrough"  # Regor's name for an operator left to the CPU


@dataclass(frozen=True)
class MemoryTraffic:
    """Bytes and access cycles of one kind of data (Weights, FeatureMap, Scales, Lut) in one memory."""

    memory: str
    access: str
    bytes_read: int
    bytes_written: int
    access_cycles: int


@dataclass(frozen=True)
class MemoryUsage:
    """Peak bytes a memory holds during the inference and its total access cycles."""

    memory: str
    peak_bytes: int
    access_cycles: int


@dataclass(frozen=True)
class VelaTotals:
    """Network totals exactly as Regor's PerfReport gives them."""

    cycles: int
    npu_cycles: int
    cpu_cycles: int
    macs: int
    original_weight_bytes: int
    encoded_weight_bytes: int
    npu_ops: int
    cpu_ops: int
    cascaded_ops: int
    cascades: int
    read_only_peak_bytes: int
    staging_memory: str
    memories: tuple[MemoryUsage, ...]
    traffic: tuple[MemoryTraffic, ...]

    def access_cycles(self, memory: str) -> int:
        return sum(m.access_cycles for m in self.memories if m.memory.lower() == memory.lower())

    def peak_bytes(self, memory: str) -> int:
        return sum(m.peak_bytes for m in self.memories if m.memory.lower() == memory.lower())


@dataclass(frozen=True)
class VelaOpRow(OpRef):
    """One input TFLite operator with the sum of the Vela operations it became."""

    placement: str  # "npu" | "cpu"
    cycles: int
    npu_cycles: int
    access_cycles: dict[str, int]
    macs: int
    mac_utilisation: float | None
    staging_bytes: int
    encoded_weight_bytes: int | None
    weight_format: str | None
    weight_distinct: int | None
    weight_zeros: int | None
    vela_ops: tuple[str, ...]
    weight_access_cycles: int = 0  # weight-read access cycles in the busiest memory (perf_debug)

    @property
    def bound(self) -> str:
        """Which term sets op cycles: "compute" (NPU), "weights" or "memory" (feature maps); "none" if 0."""
        if self.placement == "cpu":
            return "cpu"
        if self.cycles == 0:
            return "none"
        acc = max(self.access_cycles.values(), default=0)
        if self.npu_cycles >= acc:
            return "compute"
        return "weights" if self.weight_access_cycles * 2 >= acc else "memory"


@dataclass(frozen=True)
class VelaResult:
    """Everything one in-process Vela compile gives back."""

    target: str
    accelerator: str
    system_config: str
    memory_mode: str
    model_bytes: bytes = field(repr=False)
    perf: VelaTotals
    ops: tuple[VelaOpRow, ...]
    unmapped_cycles: int  # cycles of Vela operations that name no input operator (normally 0)
    log_text: str = field(default="", repr=False)
    # Regor's own output (database included): lets the encoder take Vela's block configurations
    # from this compile instead of compiling the model again.
    compiled: RegorOutput | None = field(default=None, repr=False, compare=False)


def _int(text: str) -> int:
    return int(text) if text not in ("", None) else 0


def _table(db: object, name: str) -> list[dict[str, str]]:
    tables = getattr(db, "tables", {})
    if name not in tables:
        return []
    t = tables[name]
    return [dict(zip(t.header, row, strict=False)) for row in t.data]


def _totals(report: object) -> VelaTotals:
    r: object = report
    mems: list[MemoryUsage] = []
    traffic: list[MemoryTraffic] = []
    for name, mem in sorted(getattr(r, "memories").items()):  # noqa: B009 - pybind attribute
        mems.append(MemoryUsage(str(name), int(mem.peakUsage), int(mem.totalAccessCycles)))
        for kind, acc in sorted(mem.accesses.items()):
            traffic.append(MemoryTraffic(str(name), str(kind), int(acc.bytesRead), int(acc.bytesWritten),
                                         int(acc.accessCycles)))
    g = lambda a: int(getattr(r, a))  # noqa: E731
    return VelaTotals(
        cycles=g("totalCycles"), npu_cycles=g("npuCycles"), cpu_cycles=g("cpuCycles"), macs=g("macCount"),
        original_weight_bytes=g("originalWeights"), encoded_weight_bytes=g("encodedWeights"), npu_ops=g("npuOps"),
        cpu_ops=g("cpuOps"), cascaded_ops=g("cascadedOps"), cascades=g("cascades"),
        read_only_peak_bytes=g("readOnlyPeakUsage"), staging_memory=str(getattr(r, "stagingMemoryArea")),  # noqa: B009
        memories=tuple(mems), traffic=tuple(traffic),
    )


@dataclass
class _Acc:
    """Running sums of the Vela operations that came from one input operator."""

    cycles: int = 0
    npu: int = 0
    macs: int = 0
    staging: int = 0
    access: dict[str, int] = field(default_factory=dict)
    weights_ac: int = 0  # access cycles of weight reads in the dominant memory (perf_debug)
    ops: list[str] = field(default_factory=list)
    cpu: bool = True
    wbytes: int | None = None
    formats: list[str] = field(default_factory=list)
    distinct: int | None = None
    zeros: int | None = None


def _op_rows(db: object, op_names: list[str], total_macs_per_cycle: int) -> tuple[tuple[VelaOpRow, ...], int]:
    """Aggregate Regor's perf rows per input operator (source.ext_key)."""
    ext_key = {s["id"]: _int(s.get("ext_key", "")) for s in _table(db, "source") if s.get("ext_key", "") != ""}
    debug = {d["id"]: d for d in _table(db, "perf_debug")}
    acc: dict[int, _Acc] = {}
    unmapped = 0
    for p in _table(db, "perf"):
        idx = ext_key.get(p.get("source_id", ""))
        cycles = _int(p.get("op_cycles", ""))
        if idx is None or not 0 <= idx < len(op_names):
            unmapped += cycles
            continue
        a = acc.setdefault(idx, _Acc())
        a.cycles += cycles
        a.npu += _int(p.get("npu_cycles", ""))
        a.macs += _int(p.get("mac_count", ""))
        a.staging = max(a.staging, _int(p.get("staging_usage", "")))
        for mem in ACCESS_MEMORIES:
            if f"{mem}_ac" in p:
                a.access[mem] = a.access.get(mem, 0) + _int(p[f"{mem}_ac"])
        operator = p.get("operator", "")
        a.ops.append(operator)
        a.cpu = a.cpu and operator == CPU_OPERATOR
        d = debug.get(p.get("id", ""))
        if d is None:
            continue
        a.weights_ac += max((_int(d.get(f"{m}Weights_ac", "")) for m in ACCESS_MEMORIES), default=0)
        if d.get("weight_total_bytes", "") != "":
            a.wbytes = (a.wbytes or 0) + _int(d["weight_total_bytes"])
            a.distinct = max(a.distinct or 0, _int(d.get("weight_distinct", "")))
            a.zeros = (a.zeros or 0) + _int(d.get("weight_zero", ""))
            if d.get("weight_format"):
                a.formats.append(d["weight_format"])
    rows = []
    for idx, name in enumerate(op_names):
        r = acc.get(idx)
        if r is None:  # removed by Vela's graph optimiser (reshape, fused activation...)
            rows.append(VelaOpRow(0, idx, name, "npu", 0, 0, {}, 0, None, 0, None, None, None, None, (), 0))
            continue
        util = r.macs / (r.cycles * total_macs_per_cycle) if r.cycles and r.macs else None
        rows.append(VelaOpRow(
            subgraph=0, op_index=idx, op=name, placement="cpu" if r.cpu else "npu", cycles=r.cycles,
            npu_cycles=r.npu, access_cycles=dict(r.access), macs=r.macs, mac_utilisation=util,
            staging_bytes=r.staging, encoded_weight_bytes=r.wbytes,
            weight_format="+".join(dict.fromkeys(r.formats)) if r.formats else None, weight_distinct=r.distinct,
            weight_zeros=r.zeros, vela_ops=tuple(r.ops), weight_access_cycles=r.weights_ac,
        ))
    return tuple(rows), unmapped


@dataclass(frozen=True)
class RegorOutput:
    """Regor's compiled model as plain data (it crosses the worker boundary).

    Mirrors `regor.CompiledTFLiteModel` (`model`, `perf_report`, `opt_database.tables` with
    `header`/`data`), plus the typed totals and Regor's console text.
    """

    model: bytes = field(repr=False)
    perf_report: Any = field(repr=False)
    opt_database: Any = field(repr=False)
    perf: VelaTotals
    text: str = field(repr=False, default="")


def _regor_in_worker(arch: str, model_bytes: bytes, system_config: str, options: str) -> RegorOutput:
    """The Regor call itself, in this process (the worker runs `native_calls.regor_compile` directly)."""
    return _output(native_calls.regor_compile(arch, model_bytes, system_config, options))


def _output(result: tuple[bytes, Any, Any, str]) -> RegorOutput:
    model, perf_report, database, text = result
    return RegorOutput(model, perf_report, database, _totals(perf_report), text)


def regor_compile(model_bytes: bytes, target: Target, options: CompilerOptions | None = None, *,
                  model: Model | None = None) -> tuple[RegorOutput, str]:
    """One `ethosu.regor.compile` call for the descriptor: (compiled model, Regor's console text).

    The model is validated first (what Regor would crash on is rejected with one line), then
    compiled in the isolation worker; a rejection becomes one CompileError line.
    """

    check_for_native(model if model is not None else read_model(model_bytes), "vela")
    request = vela_start.request_of(target, options)
    started = vela_start.take(request, model_bytes)  # the CLI may have started this very compile already
    arch, system_config, options_ini = request
    out = _output(started if started is not None else isolation.call(
        vela_start.REGOR_CALL, arch, model_bytes, system_config, options_ini, library="Vela"))
    if out.text.strip():
        log.debug("vela: %s", out.text.strip())
    return out, out.text


def compile_model(model_bytes: bytes, target: Target, options: CompilerOptions | None = None,
                  op_names: list[str] | None = None) -> VelaResult:
    """Compile `model_bytes` (a TFLite flatbuffer) for an Ethos-U target with Regor, in-process.

    `op_names` (the input subgraph's operator names) labels the per-operator rows; without it
    the model is read to get them. Regor's console output is captured at the fd level.
    """

    model = read_model(model_bytes)
    if model.vela_compiled:
        raise UnsupportedModelError("the model is already compiled by Vela")
    if op_names is None:
        op_names = [op.op for op in model.subgraphs[0].operators] if model.subgraphs else []
    compiled, text = regor_compile(model_bytes, target, options, model=model)
    perf = compiled.perf
    rows, unmapped = _op_rows(compiled.opt_database, op_names, target.npu.total_macs)
    assert target.system is not None and target.memory_mode is not None
    return VelaResult(
        target=target.name, accelerator=target.vela_accelerator(), system_config=target.system.name,
        memory_mode=target.memory_mode.name, model_bytes=compiled.model, perf=perf, ops=rows,
        unmapped_cycles=unmapped, log_text=text, compiled=compiled,
    )
