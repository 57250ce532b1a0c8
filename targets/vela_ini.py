"""Vela `.ini` system configurations in and out: parse into the descriptor's typed records, write them back.

Vela 5.2 reads `[System_Config.NAME]` (core_clock, axi0_port, axi1_port and per memory
`<Mem>_clock_scale/_ports_used/_burst_length/_read_latency/_write_latency/_max_reads/_max_writes`)
and `[Memory_Mode.NAME]` (const/arena/cache_mem_area, arena_cache_size), each optionally
`inherit`-ing another section of its kind. Its Python front end and its C++ core (Regor) default
missing keys differently (burst length 1 vs 64, latencies 0 vs 1), so only `ports_used` (1 in
both) and `arena_cache_size` may be left out here; anything else missing is an error naming the
section and key rather than a figure that depends on which half of Vela reads it.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hwopt.errors import TargetError
from hwopt.targets.descriptor import AXI_PORTS, MEMORIES, MemoryConfig, MemoryMode, SystemConfig, Target

SYSTEM_PREFIX = "System_Config."
MODE_PREFIX = "Memory_Mode."
MEMORY_KEYS = ("clock_scale", "ports_used", "burst_length", "read_latency", "write_latency", "max_reads", "max_writes")
SYSTEM_KEYS = ("core_clock", "axi0_port", "axi1_port")
MODE_KEYS = ("const_mem_area", "arena_mem_area", "cache_mem_area", "arena_cache_size")
OPTIONAL_MEMORY_KEYS = {"ports_used": "1"}  # Vela's Python front end and Regor both default it to 1
U55_AXI_PREFIX = "Ethos_U55"  # Regor models an 8-byte AXI port only for system configs named Ethos_U55*


@dataclass(frozen=True)
class VelaIni:
    """One parsed Vela configuration file: its system configurations and memory modes, by name."""

    path: Path
    system_configs: tuple[str, ...]
    memory_modes: tuple[str, ...]
    _parser: configparser.ConfigParser

    def system_config(self, name: str) -> SystemConfig:
        """The resolved `[System_Config.NAME]` (inherit chain applied) as a typed record."""
        section = self._section(SYSTEM_PREFIX, name, self.system_configs, "system config")
        values = self._resolved(section)
        for key in SYSTEM_KEYS:
            if key not in values:
                raise TargetError(f"{self.path}: [{section}] missing key {key!r}")
        ports = (values["axi0_port"][1], values["axi1_port"][1])
        for key, port in zip(("axi0_port", "axi1_port"), ports, strict=True):
            if port not in MEMORIES:
                raise TargetError(f"{self.path}: [{values[key][0]}] {key} must be one of {', '.join(MEMORIES)}, "
                                  f"got {port!r}")
        memories: dict[str, MemoryConfig] = {}
        for mem in dict.fromkeys(ports):
            fields: dict[str, float | int] = {}
            for key in MEMORY_KEYS:
                full = f"{mem}_{key}"
                where, text = values.get(full, (section, OPTIONAL_MEMORY_KEYS.get(key, "")))
                if full not in values and key not in OPTIONAL_MEMORY_KEYS:
                    raise TargetError(f"{self.path}: [{section}] missing key {full!r} ({mem} is on an AXI port)")
                fields[key] = self._number(where, full, text, float if key == "clock_scale" else int)
            try:
                memories[mem] = MemoryConfig(**fields)  # type: ignore[arg-type]
            except TargetError as exc:
                raise TargetError(f"{self.path}: [{section}] {mem}_{exc.args[0].removeprefix('memory: ')}") from None
        clock_where, clock_text = values["core_clock"]
        clock = float(self._number(clock_where, "core_clock", clock_text, float))
        try:
            return SystemConfig(name, clock, ports[0], ports[1], memories)
        except TargetError as exc:
            raise TargetError(f"{self.path}: [{section}] {exc}") from None

    def memory_mode(self, name: str) -> MemoryMode:
        """The resolved `[Memory_Mode.NAME]` (inherit chain applied) as a typed record."""
        section = self._section(MODE_PREFIX, name, self.memory_modes, "memory mode")
        values = self._resolved(section)
        areas: dict[str, str] = {}
        for key in MODE_KEYS[:3]:
            if key not in values:
                raise TargetError(f"{self.path}: [{section}] missing key {key!r}")
            where, text = values[key]
            if text not in AXI_PORTS:
                raise TargetError(f"{self.path}: [{where}] {key} must be Axi0 or Axi1, got {text!r}")
            areas[key] = text
        size = None
        if "arena_cache_size" in values:
            where, text = values["arena_cache_size"]
            size = int(self._number(where, "arena_cache_size", text, int))
        return MemoryMode(name, areas["const_mem_area"], areas["arena_mem_area"], areas["cache_mem_area"], size)

    # --- internals ------------------------------------------------------------------------------

    def _section(self, prefix: str, name: str, known: tuple[str, ...], what: str) -> str:
        if name not in known:
            raise TargetError(f"{self.path}: no [{prefix}{name}] section (the file has {what}s: "
                              f"{', '.join(known) or 'none'})")
        return prefix + name

    def _resolved(self, section: str) -> dict[str, tuple[str, str]]:
        """key -> (section that sets it, text), following `inherit` parents first so the child wins."""
        chain = [section]
        while self._parser.has_option(chain[-1], "inherit"):
            parent = self._parser.get(chain[-1], "inherit").strip()
            if parent in chain:
                raise TargetError(f"{self.path}: [{chain[-1]}] inherit: circular inheritance "
                                  f"({' -> '.join((*chain, parent))})")
            if not self._parser.has_section(parent):
                raise TargetError(f"{self.path}: [{chain[-1]}] inherit: no section [{parent}]")
            if parent.split(".", 1)[0] != section.split(".", 1)[0]:
                raise TargetError(f"{self.path}: [{chain[-1]}] inherit: [{parent}] is not a "
                                  f"{section.split('.', 1)[0]} section")
            order = self._parser.sections()
            if order.index(parent) > order.index(chain[-1]):
                # Regor resolves inherit while reading the file top to bottom: a later parent is ignored.
                raise TargetError(f"{self.path}: [{chain[-1]}] inherit: [{parent}] must come before the section "
                                  "that inherits it (Vela's compiler core ignores a later one)")
            chain.append(parent)
        values: dict[str, tuple[str, str]] = {}
        for sec in reversed(chain):
            for key, text in self._parser.items(sec, raw=False):
                if key != "inherit":
                    values[key] = (sec, text.strip())
        return values

    def _number(self, section: str, key: str, text: str, kind: type) -> float | int:
        try:
            value = float(text) if kind is float else int(text)
        except ValueError:
            raise TargetError(f"{self.path}: [{section}] {key} must be {'a number' if kind is float else 'an integer'}, "
                              f"got {text!r}") from None
        if kind is float and not (value == value and abs(value) != float("inf")):
            raise TargetError(f"{self.path}: [{section}] {key} must be finite, got {text!r}")
        return value


def _check_keys(path: Path, parser: configparser.ConfigParser) -> None:
    """Every key of a system-config / memory-mode section is one Vela reads (keys are case-sensitive in Regor)."""
    system_keys = set(SYSTEM_KEYS) | {f"{m}_{k}" for m in MEMORIES for k in MEMORY_KEYS} | {"inherit"}
    mode_keys = {*MODE_KEYS, "inherit"}
    for section in parser.sections():
        allowed = system_keys if section.startswith(SYSTEM_PREFIX) else mode_keys if section.startswith(MODE_PREFIX) else None
        if allowed is None:
            continue
        for key in parser.options(section):
            if key not in allowed:
                raise TargetError(f"{path}: [{section}] unknown key {key!r}")


def read_vela_ini(path: str | Path) -> VelaIni:
    """Parse a Vela configuration file; a syntax error or an unknown key is a TargetError naming the place."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TargetError(f"cannot read Vela config {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TargetError(f"{p}: not a UTF-8 text file") from None
    parser = configparser.ConfigParser(default_section="\x00none")  # Vela gives DEFAULT no meaning either way
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # Regor matches memory names case-sensitively
    try:
        parser.read_string(text, source=str(p))
        _check_keys(p, parser)
        for section in parser.sections():  # surface interpolation errors here, with the section
            for key in parser.options(section):
                parser.get(section, key)
    except configparser.Error as exc:
        raise TargetError(f"{p}: invalid Vela config: {' '.join(str(exc).split())}") from None
    systems = tuple(s[len(SYSTEM_PREFIX):] for s in parser.sections() if s.startswith(SYSTEM_PREFIX))
    modes = tuple(s[len(MODE_PREFIX):] for s in parser.sections() if s.startswith(MODE_PREFIX))
    if not systems:
        raise TargetError(f"{p}: no [{SYSTEM_PREFIX}NAME] section: not a Vela config file")
    return VelaIni(p, systems, modes, parser)


def check_placement(sc: SystemConfig, mm: MemoryMode, address_bits: int, where: str) -> None:
    """The checks Vela makes once a system config and a memory mode meet (its error for each, with the key)."""
    const, arena, cache = (sc.port_memory(a) for a in (mm.const_mem_area, mm.arena_mem_area, mm.cache_mem_area))
    section = f"[{MODE_PREFIX}{mm.name}]"
    sram_only = const == "Sram" and mm.const_mem_area == mm.arena_mem_area == mm.cache_mem_area
    if const not in ("Dram", "OnChipFlash", "OffChipFlash") and not sram_only:
        raise TargetError(f"{where}: {section} const_mem_area {mm.const_mem_area} is {const} in {sc.name}; Vela "
                          "needs Dram, OnChipFlash or OffChipFlash (or everything in SRAM)")
    if arena not in ("Sram", "Dram"):
        raise TargetError(f"{where}: {section} arena_mem_area {mm.arena_mem_area} is {arena} in {sc.name}; "
                          "Vela needs Sram or Dram")
    if cache != "Sram":
        raise TargetError(f"{where}: {section} cache_mem_area {mm.cache_mem_area} is {cache} in {sc.name}; "
                          "Vela needs Sram")
    if mm.arena_cache_size is not None and mm.arena_cache_size > 1 << address_bits:
        raise TargetError(f"{where}: {section} arena_cache_size {mm.arena_cache_size} exceeds the "
                          f"{address_bits}-bit address space")


def vela_axi_bytes(system_config_name: str) -> int:
    """AXI bytes per cycle Vela 5.2's compiler core models for a system config of this name (8 or 16)."""
    return 8 if system_config_name.startswith(U55_AXI_PREFIX) else 16


def _num(value: float) -> str:
    return repr(float(value))


def system_config_section(sc: SystemConfig) -> list[str]:
    """`[System_Config.NAME]` lines for the memories on the two AXI ports."""
    lines = [f"[{SYSTEM_PREFIX}{sc.name}]", f"core_clock={_num(sc.core_clock_hz)}",
             f"axi0_port={sc.axi0_port}", f"axi1_port={sc.axi1_port}"]
    for mem in dict.fromkeys((sc.axi0_port, sc.axi1_port)):
        m = sc.memories[mem]
        lines += [f"{mem}_clock_scale={_num(m.clock_scale)}", f"{mem}_ports_used={m.ports_used}",
                  f"{mem}_burst_length={m.burst_length}", f"{mem}_read_latency={m.read_latency}",
                  f"{mem}_write_latency={m.write_latency}", f"{mem}_max_reads={m.max_reads}",
                  f"{mem}_max_writes={m.max_writes}"]
    return lines


def memory_mode_section(mm: MemoryMode) -> list[str]:
    """`[Memory_Mode.NAME]` lines."""
    lines = [f"[{MODE_PREFIX}{mm.name}]", f"const_mem_area={mm.const_mem_area}",
             f"arena_mem_area={mm.arena_mem_area}", f"cache_mem_area={mm.cache_mem_area}"]
    if mm.arena_cache_size is not None:
        lines.append(f"arena_cache_size={mm.arena_cache_size}")
    return lines


def export_vela_ini(target: Target, systems: Mapping[str, SystemConfig] | None = None,
                    modes: Mapping[str, MemoryMode] | None = None) -> str:
    """A vela.ini holding the target's selected system config and memory mode (or the given ones)."""
    target.vela_accelerator()  # Ethos-U only
    assert target.system is not None and target.memory_mode is not None
    sys_list = list((systems or {target.system.name: target.system}).values())
    mode_list = list((modes or {target.memory_mode.name: target.memory_mode}).values())
    lines = [f"; Vela configuration for hwopt target {target.name} ({target.vela_accelerator()})",
             f"; vela MODEL --config FILE.ini --accelerator-config {target.vela_accelerator()} "
             f"--system-config {target.system.name} --memory-mode {target.memory_mode.name}", ""]
    for sc in sys_list:
        lines += [*system_config_section(sc), ""]
    for mm in mode_list:
        lines += [*memory_mode_section(mm), ""]
    return "\n".join(lines)
