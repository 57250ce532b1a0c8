"""Vela (Regor) configuration text generated from a target descriptor.

Regor takes the system configuration as INI text (`[architecture]`, `[vela]` and the
`System_Config.*` / `Memory_Mode.*` sections of a vela.ini) and the compiler options as a
second INI text. Generating both from the descriptor lets a user descriptor with another
clock, SRAM size or flash bandwidth compile exactly like a hand-written vela.ini would.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwopt.errors import UsageError
from hwopt.targets.descriptor import Target

OPTIMISE = ("Performance", "Size")
TENSOR_ALLOCATORS = ("LinearAlloc", "Greedy", "HillClimb")


@dataclass(frozen=True)
class CompilerOptions:
    """The Vela CLI options hwopt exposes (defaults equal `vela`'s own)."""

    optimise: str = "Performance"
    arena_cache_size: int | None = None  # overrides the memory mode's value, like --arena-cache-size
    cpu_tensor_alignment: int = 16
    tensor_allocator: str = "HillClimb"
    cop_format: str = "COP1"
    enable_db: bool = True
    output_format: str = "TFLite"

    def __post_init__(self) -> None:
        if self.optimise not in OPTIMISE:
            raise UsageError(f"optimise must be one of {', '.join(OPTIMISE)}, got {self.optimise!r}")
        if self.tensor_allocator not in TENSOR_ALLOCATORS:
            raise UsageError(f"tensor allocator must be one of {', '.join(TENSOR_ALLOCATORS)}")
        a = self.cpu_tensor_alignment
        if a < 16 or a & (a - 1):
            raise UsageError(f"cpu tensor alignment must be a power of two >= 16, got {a}")
        if self.arena_cache_size is not None and self.arena_cache_size < 0:
            raise UsageError(f"arena cache size must be >= 0, got {self.arena_cache_size}")


def regor_arch(target: Target) -> str:
    """Regor's architecture name: "ethos-u55-128" -> "EthosU55"."""
    parts = target.vela_accelerator().split("-")
    return "".join(p.capitalize() for p in parts[:-1])


def _num(value: float) -> str:
    return repr(float(value))


def system_config_text(target: Target) -> str:
    """The `sysconfig` INI text for `regor.compile` describing the target's selected system and memory mode."""
    target.vela_accelerator()  # Ethos-U only
    sc, mm = target.system, target.memory_mode
    assert sc is not None and mm is not None
    lines = [
        "[architecture]", f"macs={target.npu.macs}", f"cores={target.npu.cores}",
        "[vela]", f"system_config_name={sc.name}", f"memory_mode_name={mm.name}", "",
        f"[System_Config.{sc.name}]", f"core_clock={_num(sc.core_clock_hz)}",
        f"axi0_port={sc.axi0_port}", f"axi1_port={sc.axi1_port}",
    ]
    for mem in dict.fromkeys((sc.axi0_port, sc.axi1_port)):
        m = sc.memories[mem]
        lines += [
            f"{mem}_clock_scale={_num(m.clock_scale)}", f"{mem}_ports_used={m.ports_used}",
            f"{mem}_burst_length={m.burst_length}", f"{mem}_read_latency={m.read_latency}",
            f"{mem}_write_latency={m.write_latency}", f"{mem}_max_reads={m.max_reads}",
            f"{mem}_max_writes={m.max_writes}",
        ]
    lines += ["", f"[Memory_Mode.{mm.name}]", f"const_mem_area={mm.const_mem_area}",
              f"arena_mem_area={mm.arena_mem_area}", f"cache_mem_area={mm.cache_mem_area}"]
    if mm.arena_cache_size is not None:
        lines.append(f"arena_cache_size={mm.arena_cache_size}")
    return "\n".join(lines) + "\n"


def options_text(target: Target, options: CompilerOptions | None = None) -> str:
    """The compiler-options INI text, as Vela's `get_compiler_config` builds it for the same CLI options."""
    o = options or CompilerOptions()
    limit = o.arena_cache_size if o.arena_cache_size is not None else target.arena_limit
    if limit > 1 << target.npu.address_bits:
        raise UsageError(f"arena cache size {limit} exceeds the {target.npu.address_bits}-bit address space")
    lines = ["", "[compiler]"]
    if o.enable_db:
        lines.append("enable_db=true")
    lines += [f"output_format={o.output_format}", f"cop_format={o.cop_format}", "", "[scheduler]",
              f"optimize={o.optimise}", f"arena_size_limit={limit}", "disable_feature=",
              f"cpu_tensor_alignment={o.cpu_tensor_alignment}", f"tensor_allocator={o.tensor_allocator}",
              "", "[graph]"]
    return "\n".join(lines) + "\n"
