"""The Target: one NPU configuration as checked frozen records, parsed once and passed everywhere.

Every value is checked where it is built (`__post_init__`): finite, positive where it is a
physical quantity (clock, bandwidth scale, DMA rate, sizes) and within bounds no real part
exceeds, so a bad descriptor is one `TargetError` naming the key, never nonsense figures.
The loader (`hwopt.targets.descriptor`) adds the file and section to the message.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwopt.errors import TargetError
from hwopt.targets.ethos_n.variants import N78Variant
from hwopt.targets.ethos_u.streams import stream_of_channel

if TYPE_CHECKING:  # resolving a target needs no numpy (the CLI resolves one before anything else loads)
    import numpy as np

MEMORIES = ("Sram", "Dram", "OnChipFlash", "OffChipFlash")
AXI_PORTS = ("Axi0", "Axi1")
DESCRIPTOR_DIR = Path(__file__).resolve().parent / "descriptors"

# Physical bounds: generous for any real part, tight enough to refuse typos and absurd values.
CLOCK_HZ = (1e6, 1e10)  # 1 MHz .. 10 GHz
CLOCK_SCALE = (1e-4, 64.0)  # memory clock relative to the NPU clock
MAX_INT = {  # key -> largest accepted value (smallest is 1 unless the key may be 0)
    "macs": 1 << 16, "cores": 64, "weight_streams": 64, "axi_bytes_per_cycle": 1024, "shram_banks": 1024,
    "ports_used": 64, "burst_length": 1 << 16, "read_latency": 1 << 20, "write_latency": 1 << 20,
    "max_reads": 1 << 12, "max_writes": 1 << 12, "dma_bytes_per_cycle": 1024, "arena_cache_size": 1 << 48,
}
ADDRESS_BITS = (16, 64)
OUTPUT_STAGE_MAX = 1e3  # cycles per output element


class Family(Enum):
    """NPU families hwopt knows; selects the cost model and the compiler."""

    ETHOS_U55 = "ethos-u55"
    ETHOS_U65 = "ethos-u65"
    ETHOS_U85 = "ethos-u85"
    ETHOS_N78 = "ethos-n78"

    @property
    def is_ethos_u(self) -> bool:
        return self is not Family.ETHOS_N78


def check_int(key: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> None:
    """TargetError unless `value` is an int in [minimum, maximum] (default maximum: MAX_INT[key])."""
    top = maximum if maximum is not None else MAX_INT.get(key, 1 << 62)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= top:
        what = "a positive" if minimum == 1 else "a non-negative"
        raise TargetError(f"{key} must be {what} int no larger than {top}, got {value!r}")


def check_number(key: str, value: Any, low: float, high: float, *, low_inclusive: bool = True) -> None:
    """TargetError unless `value` is a finite number in [low, high] (or (low, high])."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value) and value <= high
    ok = ok and (value >= low if low_inclusive else value > low)
    if not ok:
        lo = "[" if low_inclusive else "("
        raise TargetError(f"{key} must be a finite number in {lo}{low:g}, {high:g}], got {value!r}")


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


def as_float(key: str, value: Any) -> float:
    """A TOML number as float; TargetError for one beyond the float range."""
    try:
        return float(value)
    except (OverflowError, TypeError, ValueError):
        raise TargetError(f"{key} must be a finite number, got {value!r}") from None


def _block(key: str, value: Any) -> None:
    if not (isinstance(value, tuple) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 4096 for v in value)):
        raise TargetError(f"{key} must be three positive ints (H, W, C), got {value!r}")


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
            check_number(name, getattr(self, name), 0.0, OUTPUT_STAGE_MAX)


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
        for name in ("macs", "cores", "weight_streams", "axi_bytes_per_cycle"):
            check_int(name, getattr(self, name))
        if isinstance(self.address_bits, bool) or not isinstance(self.address_bits, int) or not (
                ADDRESS_BITS[0] <= self.address_bits <= ADDRESS_BITS[1]):
            raise TargetError(f"address_bits must be an int in [{ADDRESS_BITS[0]}, {ADDRESS_BITS[1]}], "
                              f"got {self.address_bits!r}")
        _block("ofm_ublock", self.ofm_ublock)
        _block("ifm_ublock", self.ifm_ublock)
        for b in self.alt_ofm_ublocks:
            _block("alt_ofm_ublocks", b)
        if self.shram_banks is not None:
            check_int("shram_banks", self.shram_banks)

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
        check_number("clock_scale", self.clock_scale, *CLOCK_SCALE)
        for name in ("ports_used", "burst_length"):
            check_int(name, getattr(self, name))
        for name in ("read_latency", "write_latency", "max_reads", "max_writes"):
            check_int(name, getattr(self, name), minimum=0)


@dataclass(frozen=True)
class SystemConfig:
    """The SoC around the NPU: core clock and the memory on each AXI port."""

    name: str
    core_clock_hz: float
    axi0_port: str
    axi1_port: str
    memories: Mapping[str, MemoryConfig]

    def __post_init__(self) -> None:
        check_number("core_clock_hz", self.core_clock_hz, *CLOCK_HZ)
        for key, port in (("axi0_port", self.axi0_port), ("axi1_port", self.axi1_port)):
            if port not in MEMORIES:
                raise TargetError(f"{key} must be one of {', '.join(MEMORIES)}, got {port!r}")
            if port not in self.memories:
                raise TargetError(f"{key}: memory {port!r} is on an AXI port but has no [{port}] table")
        for mem in self.memories:
            if mem not in MEMORIES:
                raise TargetError(f"unknown memory {mem!r} (one of {', '.join(MEMORIES)})")

    def __hash__(self) -> int:
        return hash((self.name, self.core_clock_hz, self.axi0_port, self.axi1_port))

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
                raise TargetError(f"{key} must be Axi0 or Axi1, got {getattr(self, key)!r}")
        if self.arena_cache_size is not None:
            check_int("arena_cache_size", self.arena_cache_size, minimum=0)


@dataclass(frozen=True)
class N78Clock:
    """Ethos-N78 system numbers the driver stack leaves open: clock and DMA width."""

    clock_hz: float
    dma_bytes_per_cycle: int

    def __post_init__(self) -> None:
        check_number("clock_hz", self.clock_hz, *CLOCK_HZ)
        check_int("dma_bytes_per_cycle", self.dma_bytes_per_cycle)


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
                raise TargetError("an Ethos-U target needs a system config, a memory mode and vela_accelerator")
            if self.system.port_memory(self.memory_mode.cache_mem_area) != "Sram":
                raise TargetError(f"memory mode {self.memory_mode.name} puts the staging cache outside SRAM")
        else:
            if self.n78 is None or self.n78_clock is None:
                raise TargetError("an Ethos-N78 target needs an [n78] section")
            if self.n78.macs_per_cycle != self.npu.macs:
                raise TargetError(f"[npu] macs = {self.npu.macs} but the N78 geometry gives "
                                  f"{self.n78.macs_per_cycle} MACs/cycle")

    def __hash__(self) -> int:  # computed once: targets key every memo of the cost models
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.__dict__["_hash"] = hash((self.name, self.family, self.source, self.system, self.memory_mode))
        return h  # type: ignore[no-any-return]

    def __getstate__(self) -> dict[str, Any]:  # string hashes differ between processes: recompute there
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    def __str__(self) -> str:
        return self.name

    @property
    def spec(self) -> str:
        """Text that resolves back to this descriptor: the shipped name, or the path of a user file."""
        if self.source is None or self.source.parent == DESCRIPTOR_DIR:
            return self.name
        return str(self.source)

    @property
    def default_engine(self) -> str:
        """The cost engine `estimate` uses unless told otherwise: Vela where it compiles, else analytic."""
        return "vela" if self.family.is_ethos_u else "analytic"

    def vela_accelerator(self) -> str:
        """The Vela `--accelerator-config` this descriptor is built on, e.g. "ethos-u55-128"."""
        if self.vela_accelerator_config is None:
            raise TargetError(f"target {self.name} ({self.family.value}) is not compiled by Vela")
        return self.vela_accelerator_config

    @property
    def weight_streams(self) -> int:
        """Separately encoded weight streams a layer's OFM channels are dealt over (1 on N78)."""
        if not self.family.is_ethos_u:
            return 1
        return self.npu.weight_streams if self.family is Family.ETHOS_U85 else self.npu.cores

    def stream_of_channel(self, channels: int) -> np.ndarray:
        """The weight-stream index of every output channel (all 0 where there is one stream)."""
        return stream_of_channel(channels, self.weight_streams, u85=self.family is Family.ETHOS_U85)

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

    @functools.cached_property
    def const_memory(self) -> str:
        """Memory holding weights and other constants (Vela maps SRAM-only constants to OnChipFlash)."""
        if self.memory_mode is None:
            return "Dram"
        mm = self.memory_mode
        mem = self.memory_of(mm.const_mem_area)
        if mem == "Sram" and mm.const_mem_area == mm.arena_mem_area == mm.cache_mem_area:
            return "OnChipFlash"
        return mem

    @functools.cached_property
    def arena_memory(self) -> str:
        return "Dram" if self.memory_mode is None else self.memory_of(self.memory_mode.arena_mem_area)

    @functools.cached_property
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
        known: dict[str, float] = self.__dict__.setdefault("_bandwidths", {})  # the cost models ask per layer
        if memory not in known:
            m = self.memory_config(memory)
            known[memory] = self.npu.axi_bytes_per_cycle * m.ports_used * m.clock_scale
        return known[memory]

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
        if not (system_config or memory_mode):
            return self
        if not self.family.is_ethos_u:
            raise TargetError(f"{self.name}: Ethos-N78 targets have no system configs or memory modes")
        sc = self.system if system_config is None else self._systems.get(system_config)
        if sc is None:
            raise TargetError(f"{self.name}: unknown system config {system_config!r} "
                              f"(available: {', '.join(self.system_configs)})")
        mm = self.memory_mode if memory_mode is None else self._modes.get(memory_mode)
        if mm is None:
            raise TargetError(f"{self.name}: unknown memory mode {memory_mode!r} "
                              f"(available: {', '.join(self.memory_modes)})")
        return dataclasses.replace(self, system=sc, memory_mode=mm)
