"""Target descriptors: TOML files describing one NPU configuration, loaded into checked `Target` records.

A descriptor names the accelerator (MACs, micro-blocks, cores, output-stage throughput), the
system configurations it can sit in (core clock, what hangs off each AXI port, memory clock
scales and latencies, transcribed from Vela's `Arm/vela.ini`) and the memory modes (where
constants, the arena and the staging cache live). Files may `extends = "<name or path>"` another
descriptor; tables merge key by key, the child winning. The schema is strict: an unknown,
missing, mistyped or out-of-range key is a `TargetError` naming the file, the section and the key.
Each file is parsed once per modification (`parse_file` caches on its mtime and size).
"""

from __future__ import annotations

import copy
import functools
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwopt.errors import TargetError
from hwopt.targets.ethos_n.variants import N78Variant
from hwopt.targets.target import (
    AXI_PORTS,
    DESCRIPTOR_DIR,
    MEMORIES,
    Family,
    MemoryConfig,
    MemoryMode,
    N78Clock,
    NpuConfig,
    OutputStage,
    SystemConfig,
    Target,
    as_float,
    check_int,
)

N78_UNITS_MAX = 64  # engines, IGs, OGs, EMCs, PLE lanes: the largest N78 has 8 engines
N78_SRAM_KIB_MAX = 1 << 20

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = ["AXI_PORTS", "DESCRIPTOR_DIR", "MEMORIES", "Family", "MemoryConfig", "MemoryMode", "SystemConfig", "Target",
           "build_target", "chain_stamps", "check_file", "descriptor_path", "list_targets", "merge", "read_chain"]

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


def check_file(path: Path, doc: dict[str, Any]) -> None:
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


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of TOML tables: child keys replace parent keys, tables merge recursively."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def descriptor_path(ref: str, relative_to: Path | None = None) -> Path:
    """A descriptor reference: a shipped file name ("ethos-u55-128", "_ethos-u55") or a .toml path."""
    if ref.lower().endswith(".toml") or "/" in ref or "\\" in ref:
        p = Path(ref).expanduser()
        if not p.is_absolute() and relative_to is not None:
            p = relative_to.parent / p
        if not p.is_file():
            raise TargetError(f"target descriptor {ref!r} not found")
        return p.resolve()
    p = DESCRIPTOR_DIR / f"{ref}.toml"
    if not p.is_file():
        raise TargetError(f"unknown target {ref!r}")
    return p


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise TargetError(f"cannot read target descriptor {path}: {exc.strerror or exc}") from None
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=256)
def _parse_file(path: Path, stamp: tuple[int, int]) -> dict[str, Any]:
    """One descriptor file, parsed and schema-checked; cached until the file changes (`stamp`)."""
    del stamp  # part of the cache key only
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetError(f"cannot read target descriptor {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TargetError(f"{path}: not valid TOML: {exc}") from None
    check_file(path, doc)
    return doc


def parse_file(path: Path) -> dict[str, Any]:
    """A private copy of the checked document of one file (the cached one is never handed out)."""
    return copy.deepcopy(_parse_file(path, _stamp(path)))


def _parent(path: Path, doc: Mapping[str, Any]) -> Path | None:
    if "extends" not in doc:
        return None
    try:
        return descriptor_path(doc["extends"], path)
    except TargetError as exc:
        raise TargetError(f"{path}: extends: {exc}") from None


def chain_stamps(path: Path) -> tuple[tuple[Path, int, int], ...]:
    """(file, mtime, size) of a descriptor and every file it extends: the cache key of its Target."""
    out: list[tuple[Path, int, int]] = []
    current: Path | None = path.resolve()
    while current is not None:
        if any(current == p for p, _, _ in out):
            chain = " -> ".join(p.name for p, _, _ in (*out, (current, 0, 0)))
            raise TargetError(f"{current}: circular extends ({chain})")
        stamp = _stamp(current)
        out.append((current, *stamp))
        current = _parent(current, _parse_file(current, stamp))
    return tuple(out)


def read_chain(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The merged document of a descriptor and everything it extends."""
    path = path.resolve()
    if path in seen:
        raise TargetError(f"{path}: circular extends ({' -> '.join(p.name for p in (*seen, path))})")
    doc = parse_file(path)
    parent_path = _parent(path, doc)
    if parent_path is None:
        return doc
    parent = read_chain(parent_path, (*seen, path))
    merged = merge(parent, {k: v for k, v in doc.items() if k != "extends"})
    # `abstract` marks a base; a child that extends it is concrete unless it says so itself.
    merged.setdefault("target", {})
    merged["target"] = {k: v for k, v in merged["target"].items() if k != "abstract"} | (
        {"abstract": doc["target"]["abstract"]} if "abstract" in doc.get("target", {}) else {})
    return merged


def _triple(path: Path, section: str, key: str, value: Any) -> tuple[int, int, int]:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise TargetError(f"{path}: [{section}] {key} must be a list of three ints [H, W, C]")
    return (value[0], value[1], value[2])


def build_target(path: Path, doc: dict[str, Any]) -> Target:
    """The Target of a merged descriptor document; every value checked, errors naming file, section and key."""
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
        stage = OutputStage(**{k: as_float(k, v) for k, v in n["output_stage"].items()})
    except TargetError as exc:
        raise TargetError(f"{path}: [npu.output_stage] {exc}") from None
    alt = tuple(_triple(path, "npu", "alt_ofm_ublocks", b) for b in n.get("alt_ofm_ublocks", []))
    try:
        npu = NpuConfig(
            macs=n["macs"], cores=n["cores"], ofm_ublock=_triple(path, "npu", "ofm_ublock", n["ofm_ublock"]),
            ifm_ublock=_triple(path, "npu", "ifm_ublock", n["ifm_ublock"]), weight_streams=n["weight_streams"],
            axi_bytes_per_cycle=n["axi_bytes_per_cycle"], shram_banks=n.get("shram_banks"),
            address_bits=n["address_bits"], output_stage=stage, alt_ofm_ublocks=alt,
        )
    except TargetError as exc:
        raise TargetError(f"{path}: [npu] {exc}") from None

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
                    mems[mem] = MemoryConfig(as_float("clock_scale", m["clock_scale"]), m["ports_used"], m["burst_length"],
                                             m["read_latency"], m["write_latency"], m["max_reads"], m["max_writes"])
                except TargetError as exc:
                    raise TargetError(f"{path}: [{sec}.{mem}] {exc}") from None
        try:
            systems[name] = SystemConfig(name, as_float("core_clock_hz", sc["core_clock_hz"]), sc["axi0_port"], sc["axi1_port"], mems)
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
            for key in ("engines", "igs_per_engine", "ogs_per_engine", "emcs_per_engine", "ple_lanes"):
                check_int(key, v[key], maximum=N78_UNITS_MAX)
            check_int("sram_kib", v["sram_kib"], maximum=N78_SRAM_KIB_MAX)
            n78 = N78Variant(t["name"], v["engines"], v["igs_per_engine"], v["ogs_per_engine"], v["emcs_per_engine"],
                             v["ple_lanes"], v["sram_kib"] * 1024)
            clock = N78Clock(as_float("clock_hz", v["clock_hz"]), v["dma_bytes_per_cycle"])
        except (TargetError, ValueError) as exc:
            raise TargetError(f"{path}: [n78] {exc}") from None
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
        raise TargetError(f"{path}: [target] {exc}") from None
    return target




def list_targets() -> list[str]:
    """Names of the shipped concrete targets, sorted."""

    def key(name: str) -> list[object]:  # natural order: ethos-u55-32 before ethos-u55-128
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]

    return sorted((p.stem for p in DESCRIPTOR_DIR.glob("*.toml") if not p.stem.startswith("_")), key=key)
