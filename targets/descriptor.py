"""Target descriptors: TOML files describing one NPU configuration, loaded into checked frozen records.

A descriptor names the accelerator (MACs, micro-blocks, cores, output-stage throughput), the
system configurations it can sit in (core clock, what hangs off each AXI port, memory clock
scales and latencies, transcribed from Vela's `Arm/vela.ini`) and the memory modes (where
constants, the arena and the staging cache live). Files may `extends = "<name or path>"` another
descriptor; tables merge key by key, the child winning. The schema is strict: an unknown or
missing key is a `TargetError` naming the file, the section and the key.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hwopt.errors import TargetError
from hwopt.targets.ethos_n.variants import N78Variant

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

DESCRIPTOR_DIR = Path(__file__).resolve().parent / "descriptors"
MEMORIES = ("Sram", "Dram", "OnChipFlash", "OffChipFlash")
AXI_PORTS = ("Axi0", "Axi1")


class Family(Enum):
    """NPU families hwopt knows; selects the cost model and the compiler."""

    ETHOS_U55 = "ethos-u55"
    ETHOS_U65 = "ethos-u65"
    ETHOS_U85 = "ethos-u85"
    ETHOS_N78 = "ethos-n78"

    @property
    def is_ethos_u(self) -> bool:
        return self is not Family.ETHOS_N78


def _positive(owner: str, name: str, value: Any, kind: type = int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        ok = False
    else:
        ok = value > 0
    if not ok:
        raise TargetError(f"{owner}: {name} must be a positive {kind.__name__}, got {value!r}")


def _block(owner: str, name: str, value: Any) -> None:
    if not (isinstance(value, tuple) and len(value) == 3 and all(isinstance(v, int) and v > 0 for v in value)):
        raise TargetError(f"{owner}: {name} must be three positive ints (H, W, C), got {value!r}")


@dataclass(frozen=True)
class OutputStage:
    """Output-stage (AO) throughput in cycles per output element, by kind of operation."""

    conv: float  # convolution / depthwise / fully connected with 32-bit accumulators
    add: float  # elementwise add/sub with rescaling
    mul: float  # elementwise multiply
    maxpool: float
    lut: float  # table-lookup activations (sigmoid, tanh, ...)

    def __post_init__(self) -> None:
        for name in ("conv", "add", "mul", "maxpool", "lut"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise TargetError(f"output_stage: {name} must be a non-negative number, got {v!r}")


@dataclass(frozen=True)
class NpuConfig:
    """The accelerator itself: compute geometry and bus width, independent of the system around it."""

    macs: int  # 8-bit MACs per cycle per core
    cores: int  # NPU cores (2 only on u65-512); work is split across them
    ofm_ublock: tuple[int, int, int]  # OFM micro-block (H, W, C) a convolution is computed in
    ifm_ublock: tuple[int, int, int]  # IFM micro-block (H, W, C)
    weight_streams: int  # U85 weight-decoder streams; 1 elsewhere
    axi_bytes_per_cycle: int  # bytes per cycle per AXI port (U55 8, U65/U85 16; N78 DMA 16)
    shram_banks: int | None  # U55/U65 shared-buffer banks; None where there is no SHRAM
    address_bits: int  # AXI address width; bounds the default arena size (2**bits)
    output_stage: OutputStage
    alt_ofm_ublocks: tuple[tuple[int, int, int], ...] = ()  # U85: the other micro-blocks of the config

    def __post_init__(self) -> None:
        for name in ("macs", "cores", "weight_streams", "axi_bytes_per_cycle", "address_bits"):
            _positive("npu", name, getattr(self, name))
        _block("npu", "ofm_ublock", self.ofm_ublock)
        _block("npu", "ifm_ublock", self.ifm_ublock)
        for b in self.alt_ofm_ublocks:
            _block("npu", "alt_ofm_ublocks", b)
        if self.shram_banks is not None:
            _positive("npu", "shram_banks", self.shram_banks)

    @property
    def total_macs(self) -> int:
        """Peak MACs per cycle over all cores."""
        return self.macs * self.cores


@dataclass(frozen=True)
class MemoryConfig:
    """One memory behind an AXI port: bandwidth scale and transaction limits (Vela's per-memory keys)."""

    clock_scale: float
    ports_used: int
    burst_length: int
    read_latency: int
    write_latency: int
    max_reads: int
    max_writes: int

    def __post_init__(self) -> None:
        _positive("memory", "clock_scale", self.clock_scale, float)
        for name in ("ports_used", "burst_length"):
            _positive("memory", name, getattr(self, name))
        for name in ("read_latency", "write_latency", "max_reads", "max_writes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise TargetError(f"memory: {name} must be a non-negative int, got {v!r}")


@dataclass(frozen=True)
class SystemConfig:
    """The SoC around the NPU: core clock and the memory on each AXI port."""

    name: str
    core_clock_hz: float
    axi0_port: str
    axi1_port: str
    memories: Mapping[str, MemoryConfig]

    def __post_init__(self) -> None:
        _positive(self.name, "core_clock_hz", self.core_clock_hz, float)
        for port in (self.axi0_port, self.axi1_port):
            if port not in MEMORIES:
                raise TargetError(f"{self.name}: AXI port memory must be one of {', '.join(MEMORIES)}, got {port!r}")
            if port not in self.memories:
                raise TargetError(f"{self.name}: memory {port!r} is on an AXI port but has no [{port}] table")
        for mem in self.memories:
            if mem not in MEMORIES:
                raise TargetError(f"{self.name}: unknown memory {mem!r} (one of {', '.join(MEMORIES)})")

    def port_memory(self, port: str) -> str:
        return self.axi0_port if port == "Axi0" else self.axi1_port


@dataclass(frozen=True)
class MemoryMode:
    """Where constants, the tensor arena and the fast staging cache live (AXI port names)."""

    name: str
    const_mem_area: str
    arena_mem_area: str
    cache_mem_area: str
    arena_cache_size: int | None  # bytes of SRAM the compiler may use; None = the whole address space

    def __post_init__(self) -> None:
        for key in ("const_mem_area", "arena_mem_area", "cache_mem_area"):
            if getattr(self, key) not in AXI_PORTS:
                raise TargetError(f"{self.name}: {key} must be Axi0 or Axi1, got {getattr(self, key)!r}")
        if self.arena_cache_size is not None and (
            not isinstance(self.arena_cache_size, int) or self.arena_cache_size < 0
        ):
            raise TargetError(f"{self.name}: arena_cache_size must be a non-negative int, got {self.arena_cache_size!r}")


@dataclass(frozen=True)
class N78Clock:
    """Ethos-N78 system numbers the driver stack leaves open: clock and DMA width."""

    clock_hz: float
    dma_bytes_per_cycle: int


@dataclass(frozen=True)
class Target:
    """A loaded descriptor with one system configuration and memory mode selected."""

    name: str
    family: Family
    npu: NpuConfig
    system: SystemConfig | None
    memory_mode: MemoryMode | None
    n78: N78Variant | None
    source: Path | None
    description: str = ""
    vela_accelerator_config: str | None = None
    n78_clock: N78Clock | None = None
    system_configs: tuple[str, ...] = ()
    memory_modes: tuple[str, ...] = ()
    default_system_config: str | None = None
    default_memory_mode: str | None = None
    _systems: Mapping[str, SystemConfig] = field(default_factory=dict, repr=False, compare=False)
    _modes: Mapping[str, MemoryMode] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.family.is_ethos_u:
            if self.system is None or self.memory_mode is None or not self.vela_accelerator_config:
                raise TargetError(f"{self.name}: an Ethos-U target needs a system config, a memory mode and vela_accelerator")
            if self.system.port_memory(self.memory_mode.cache_mem_area) != "Sram":
                raise TargetError(f"{self.name}: memory mode {self.memory_mode.name} puts the staging cache outside SRAM")
        else:
            if self.n78 is None or self.n78_clock is None:
                raise TargetError(f"{self.name}: an Ethos-N78 target needs an [n78] section")
            if self.n78.macs_per_cycle != self.npu.macs:
                raise TargetError(f"{self.name}: [npu] macs = {self.npu.macs} but the N78 geometry gives "
                                  f"{self.n78.macs_per_cycle} MACs/cycle")

    def vela_accelerator(self) -> str:
        """The Vela `--accelerator-config` this descriptor is built on, e.g. "ethos-u55-128"."""
        if self.vela_accelerator_config is None:
            from hwopt.errors import UsageError

            raise UsageError(f"target {self.name} ({self.family.value}) is not compiled by Vela")
        return self.vela_accelerator_config

    @property
    def clock_hz(self) -> float:
        """NPU core clock in Hz (cycles → seconds)."""
        if self.system is not None:
            return self.system.core_clock_hz
        assert self.n78_clock is not None
        return self.n78_clock.clock_hz

    def memory_of(self, port: str) -> str:
        """Memory on an AXI port under the selected system configuration."""
        assert self.system is not None
        return self.system.port_memory(port)

    @property
    def const_memory(self) -> str:
        """Memory holding weights and other constants (Vela maps SRAM-only constants to OnChipFlash)."""
        if self.memory_mode is None:
            return "Dram"
        mm = self.memory_mode
        mem = self.memory_of(mm.const_mem_area)
        if mem == "Sram" and mm.const_mem_area == mm.arena_mem_area == mm.cache_mem_area:
            return "OnChipFlash"
        return mem

    @property
    def arena_memory(self) -> str:
        return "Dram" if self.memory_mode is None else self.memory_of(self.memory_mode.arena_mem_area)

    @property
    def staging_memory(self) -> str:
        return "Sram" if self.memory_mode is None else self.memory_of(self.memory_mode.cache_mem_area)

    def memory_config(self, memory: str) -> MemoryConfig:
        """Bus parameters of a memory; OnChipFlash standing in for SRAM constants uses SRAM's."""
        assert self.system is not None
        if memory in self.system.memories:
            return self.system.memories[memory]
        if memory == "OnChipFlash" and "Sram" in self.system.memories:
            return self.system.memories["Sram"]
        raise TargetError(f"{self.name}: system config {self.system.name} has no memory {memory}")

    def bandwidth(self, memory: str) -> float:
        """Peak bytes per NPU cycle of a memory: AXI width x ports used x clock scale."""
        if self.system is None:
            assert self.n78_clock is not None
            return float(self.n78_clock.dma_bytes_per_cycle)
        m = self.memory_config(memory)
        return self.npu.axi_bytes_per_cycle * m.ports_used * m.clock_scale

    @property
    def arena_limit(self) -> int:
        """SRAM bytes the compiler may use for the arena/cache (Vela's arena_size_limit)."""
        if self.memory_mode is not None and self.memory_mode.arena_cache_size is not None:
            return self.memory_mode.arena_cache_size
        if self.n78 is not None:
            return self.n78.sram_bytes
        return 1 << self.npu.address_bits

    @property
    def sram_bytes(self) -> int | None:
        """On-chip SRAM the descriptor commits to (None when the memory mode leaves it open)."""
        if self.n78 is not None:
            return self.n78.sram_bytes
        if self.memory_mode is not None and self.memory_mode.arena_cache_size is not None:
            return self.memory_mode.arena_cache_size
        return None

    def select(self, system_config: str | None = None, memory_mode: str | None = None) -> Target:
        """The same descriptor with another system configuration and/or memory mode."""
        import dataclasses

        if not self.family.is_ethos_u:
            if system_config or memory_mode:
                raise TargetError(f"{self.name}: Ethos-N78 targets have no system configs or memory modes")
            return self
        sc = self.system if system_config is None else self._systems.get(system_config)
        if sc is None:
            raise TargetError(f"{self.name}: unknown system config {system_config!r} "
                              f"(available: {', '.join(self.system_configs)})")
        mm = self.memory_mode if memory_mode is None else self._modes.get(memory_mode)
        if mm is None:
            raise TargetError(f"{self.name}: unknown memory mode {memory_mode!r} "
                              f"(available: {', '.join(self.memory_modes)})")
        return dataclasses.replace(self, system=sc, memory_mode=mm)


# --- schema -------------------------------------------------------------------------------------

_NUM = (int, float)
# section -> key -> (accepted python types, required)
_TARGET_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True), "family": ((str,), True), "description": ((str,), False),
    "vela_accelerator": ((str,), False), "default_system_config": ((str,), False),
    "default_memory_mode": ((str,), False), "abstract": ((bool,), False),
}
_NPU_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "macs": ((int,), True), "cores": ((int,), True), "ofm_ublock": ((list,), True), "ifm_ublock": ((list,), True),
    "alt_ofm_ublocks": ((list,), False), "weight_streams": ((int,), True), "axi_bytes_per_cycle": ((int,), True),
    "shram_banks": ((int,), False), "address_bits": ((int,), True), "output_stage": ((dict,), True),
}
_OUTPUT_KEYS = {k: (_NUM, True) for k in ("conv", "add", "mul", "maxpool", "lut")}
_N78_KEYS = {k: ((int,), True) for k in ("engines", "igs_per_engine", "ogs_per_engine", "emcs_per_engine",
                                          "ple_lanes", "sram_kib", "dma_bytes_per_cycle")} | {"clock_hz": (_NUM, True)}
_SYSTEM_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "core_clock_hz": (_NUM, True), "axi0_port": ((str,), True), "axi1_port": ((str,), True),
    "description": ((str,), False),
} | {m: ((dict,), False) for m in MEMORIES}
_MEMORY_KEYS = {"clock_scale": (_NUM, True)} | {
    k: ((int,), True) for k in ("ports_used", "burst_length", "read_latency", "write_latency", "max_reads", "max_writes")
}
_MODE_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "const_mem_area": ((str,), True), "arena_mem_area": ((str,), True), "cache_mem_area": ((str,), True),
    "arena_cache_size": ((int,), False), "description": ((str,), False),
}
_TOP_KEYS = {"extends", "target", "npu", "n78", "system_config", "memory_mode"}


def _check_keys(path: Path, section: str, table: Any, schema: Mapping[str, tuple[tuple[type, ...], bool]],
                *, require: bool) -> None:
    """Unknown keys and wrong types always fail; missing required keys only when `require`."""
    if not isinstance(table, dict):
        raise TargetError(f"{path}: [{section}] must be a table")
    for key, value in table.items():
        if key not in schema:
            raise TargetError(f"{path}: [{section}] unknown key {key!r} (allowed: {', '.join(sorted(schema))})")
        types, _ = schema[key]
        if isinstance(value, bool) and bool not in types:
            raise TargetError(f"{path}: [{section}] {key} has the wrong type (bool)")
        if not isinstance(value, types):
            raise TargetError(f"{path}: [{section}] {key} must be {' or '.join(t.__name__ for t in types)}, "
                              f"got {type(value).__name__}")
    if require:
        for key, (_, required) in schema.items():
            if required and key not in table:
                raise TargetError(f"{path}: [{section}] missing key {key!r}")


def _check_file(path: Path, doc: dict[str, Any]) -> None:
    """Per-file check: every key this file sets is known and well-typed (partial tables allowed)."""
    for key in doc:
        if key not in _TOP_KEYS:
            raise TargetError(f"{path}: unknown top-level key or section {key!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    if "extends" in doc and not isinstance(doc["extends"], str):
        raise TargetError(f"{path}: extends must be a string (a target name or a path)")
    if "target" in doc:
        _check_keys(path, "target", doc["target"], _TARGET_KEYS, require=False)
    if "npu" in doc:
        _check_keys(path, "npu", doc["npu"], _NPU_KEYS, require=False)
        if "output_stage" in doc["npu"]:
            _check_keys(path, "npu.output_stage", doc["npu"]["output_stage"], _OUTPUT_KEYS, require=False)
    if "n78" in doc:
        _check_keys(path, "n78", doc["n78"], _N78_KEYS, require=False)
    for name, sc in _table(path, doc, "system_config").items():
        _check_keys(path, f"system_config.{name}", sc, _SYSTEM_KEYS, require=False)
        for mem in MEMORIES:
            if mem in sc:
                _check_keys(path, f"system_config.{name}.{mem}", sc[mem], _MEMORY_KEYS, require=False)
    for name, mm in _table(path, doc, "memory_mode").items():
        _check_keys(path, f"memory_mode.{name}", mm, _MODE_KEYS, require=False)


def _table(path: Path, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise TargetError(f"{path}: [{key}] must be a table of named tables")
    return value


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of TOML tables: child keys replace parent keys, tables merge recursively."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve(ref: str, relative_to: Path | None) -> Path:
    """A descriptor reference: a shipped name ("ethos-u55-128", "_ethos-u55") or a .toml path."""
    if ref.endswith(".toml") or "/" in ref or "\\" in ref:
        p = Path(ref)
        if not p.is_absolute() and relative_to is not None:
            p = relative_to.parent / p
        if not p.is_file():
            raise TargetError(f"target descriptor {ref!r} not found")
        return p
    p = DESCRIPTOR_DIR / f"{ref}.toml"
    if not p.is_file():
        raise TargetError(f"unknown target {ref!r} (known: {', '.join(list_targets())})")
    return p


def _read_chain(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The merged document of a descriptor and everything it extends."""
    path = path.resolve()
    if path in seen:
        raise TargetError(f"{path}: circular extends ({' -> '.join(p.name for p in (*seen, path))})")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetError(f"cannot read target descriptor {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TargetError(f"{path}: not valid TOML: {exc}") from None
    _check_file(path, doc)
    if "extends" not in doc:
        return doc
    try:
        parent_path = _resolve(doc["extends"], path)
    except TargetError as exc:
        raise TargetError(f"{path}: extends: {exc}") from None
    parent = _read_chain(parent_path, (*seen, path))
    merged = _merge(parent, {k: v for k, v in doc.items() if k != "extends"})
    # `abstract` marks a base; a child that extends it is concrete unless it says so itself.
    merged.setdefault("target", {})
    merged["target"] = {k: v for k, v in merged["target"].items() if k != "abstract"} | (
        {"abstract": doc["target"]["abstract"]} if "abstract" in doc.get("target", {}) else {})
    return merged


def _triple(path: Path, section: str, key: str, value: Any) -> tuple[int, int, int]:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise TargetError(f"{path}: [{section}] {key} must be a list of three ints [H, W, C]")
    return (value[0], value[1], value[2])


def _build(path: Path, doc: dict[str, Any], system_config: str | None, memory_mode: str | None) -> Target:
    t = doc.get("target", {})
    if t.get("abstract"):
        raise TargetError(f"{path}: {path.stem!r} is an abstract base descriptor; load a concrete target")
    _check_keys(path, "target", t, _TARGET_KEYS, require=True)
    try:
        family = Family(t["family"])
    except ValueError:
        raise TargetError(f"{path}: [target] family {t['family']!r} is not one of "
                          f"{', '.join(f.value for f in Family)}") from None
    n = doc.get("npu", {})
    _check_keys(path, "npu", n, _NPU_KEYS, require=True)
    _check_keys(path, "npu.output_stage", n["output_stage"], _OUTPUT_KEYS, require=True)
    try:
        alt = tuple(_triple(path, "npu", "alt_ofm_ublocks", b) for b in n.get("alt_ofm_ublocks", []))
        npu = NpuConfig(
            macs=n["macs"], cores=n["cores"], ofm_ublock=_triple(path, "npu", "ofm_ublock", n["ofm_ublock"]),
            ifm_ublock=_triple(path, "npu", "ifm_ublock", n["ifm_ublock"]), weight_streams=n["weight_streams"],
            axi_bytes_per_cycle=n["axi_bytes_per_cycle"], shram_banks=n.get("shram_banks"),
            address_bits=n["address_bits"], output_stage=OutputStage(**{k: float(v) for k, v in n["output_stage"].items()}),
            alt_ofm_ublocks=alt,
        )
    except TargetError as exc:
        raise TargetError(f"{path}: {exc}") from None

    systems: dict[str, SystemConfig] = {}
    for name, sc in _table(path, doc, "system_config").items():
        sec = f"system_config.{name}"
        _check_keys(path, sec, sc, _SYSTEM_KEYS, require=True)
        mems: dict[str, MemoryConfig] = {}
        for mem in MEMORIES:
            if mem in sc:
                _check_keys(path, f"{sec}.{mem}", sc[mem], _MEMORY_KEYS, require=True)
                try:
                    m = sc[mem]
                    mems[mem] = MemoryConfig(float(m["clock_scale"]), m["ports_used"], m["burst_length"],
                                             m["read_latency"], m["write_latency"], m["max_reads"], m["max_writes"])
                except TargetError as exc:
                    raise TargetError(f"{path}: [{sec}.{mem}] {exc}") from None
        try:
            systems[name] = SystemConfig(name, float(sc["core_clock_hz"]), sc["axi0_port"], sc["axi1_port"], mems)
        except TargetError as exc:
            raise TargetError(f"{path}: [{sec}] {exc}") from None
    modes: dict[str, MemoryMode] = {}
    for name, mm in _table(path, doc, "memory_mode").items():
        _check_keys(path, f"memory_mode.{name}", mm, _MODE_KEYS, require=True)
        try:
            modes[name] = MemoryMode(name, mm["const_mem_area"], mm["arena_mem_area"], mm["cache_mem_area"],
                                     mm.get("arena_cache_size"))
        except TargetError as exc:
            raise TargetError(f"{path}: [memory_mode.{name}] {exc}") from None

    n78 = clock = None
    if family is Family.ETHOS_N78:
        if "n78" not in doc:
            raise TargetError(f"{path}: missing section [n78]")
        v = doc["n78"]
        _check_keys(path, "n78", v, _N78_KEYS, require=True)
        try:
            n78 = N78Variant(t["name"], v["engines"], v["igs_per_engine"], v["ogs_per_engine"], v["emcs_per_engine"],
                             v["ple_lanes"], v["sram_kib"] * 1024)
        except ValueError as exc:
            raise TargetError(f"{path}: [n78] {exc}") from None
        clock = N78Clock(float(v["clock_hz"]), v["dma_bytes_per_cycle"])
        if systems or modes:
            raise TargetError(f"{path}: Ethos-N78 descriptors take no [system_config] or [memory_mode] tables")
        system = mode = None
        default_sc = default_mm = None
    else:
        for key in ("vela_accelerator", "default_system_config", "default_memory_mode"):
            if key not in t:
                raise TargetError(f"{path}: [target] missing key {key!r}")
        if "n78" in doc:
            raise TargetError(f"{path}: [n78] is only valid for family ethos-n78")
        default_sc, default_mm = t["default_system_config"], t["default_memory_mode"]
        for key, name, pool in (("default_system_config", default_sc, systems), ("default_memory_mode", default_mm, modes)):
            if name not in pool:
                raise TargetError(f"{path}: [target] {key} {name!r} is not defined (have: {', '.join(pool) or 'none'})")
        system, mode = systems[default_sc], modes[default_mm]
    try:
        target = Target(
            name=t["name"], family=family, npu=npu, system=system, memory_mode=mode, n78=n78, source=path,
            description=t.get("description", ""), vela_accelerator_config=t.get("vela_accelerator"), n78_clock=clock,
            system_configs=tuple(systems), memory_modes=tuple(modes), default_system_config=default_sc,
            default_memory_mode=default_mm, _systems=systems, _modes=modes,
        )
    except TargetError as exc:
        raise TargetError(f"{path}: {exc}") from None
    return target.select(system_config, memory_mode) if (system_config or memory_mode) else target


def load_target(name_or_path: str, *, system_config: str | None = None, memory_mode: str | None = None) -> Target:
    """Load a shipped target by name or a user descriptor by path, optionally re-selecting system/memory."""
    if not name_or_path:
        raise TargetError("empty target name")
    path = _resolve(name_or_path, None)
    target = _build(path, _read_chain(path), system_config, memory_mode)
    log.debug("loaded target %s from %s", target.name, path)
    return target


def list_targets() -> list[str]:
    """Names of the shipped concrete targets, sorted."""
    import re

    def key(name: str) -> list[object]:  # natural order: ethos-u55-32 before ethos-u55-128
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]

    return sorted((p.stem for p in DESCRIPTOR_DIR.glob("*.toml") if not p.stem.startswith("_")), key=key)
