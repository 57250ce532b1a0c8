"""Targets from the files users already keep: a Vela `.ini` system config or an MLIA target profile.

Both become an ordinary hwopt descriptor document (`extends` the shipped accelerator where the
merge gives exactly the imported tables, a standalone document otherwise), so they load into
the same `Target` as any descriptor and `hwopt targets import` can write them out as TOML.
Spellings: `FILE.ini[:SYSTEM_CONFIG[:MEMORY_MODE]]` with an accelerator (Vela's default
`ethos-u55-256` when none is given), or an MLIA profile `.toml` (`target`/`target_type`, `mac`,
`system_config`, `memory_mode`, optional `config` = a vela.ini, at top level or under `[config]`).
"""

from __future__ import annotations

import copy
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwopt.errors import TargetError
from hwopt.targets import descriptor as _desc
from hwopt.targets.descriptor import list_targets
from hwopt.targets.target import MemoryMode, SystemConfig, Target
from hwopt.targets.toml_out import dumps_toml
from hwopt.targets.vela_ini import check_placement, read_vela_ini, vela_axi_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

VELA_DEFAULT_ACCELERATOR = "ethos-u55-256"  # what `vela` compiles for without --accelerator-config
MLIA_MACS = {"ethos-u55": (32, 64, 128, 256), "ethos-u65": (256, 512), "ethos-u85": (128, 256, 512, 1024, 2048)}
MLIA_TOP_KEYS = {"profile_name", "target_type", "target", "description", "components", "config", "backend",
                 "mac", "system_config", "memory_mode"}
MLIA_CONFIG_KEYS = {"mac", "system_config", "memory_mode", "config"}
_INI_SPEC = re.compile(r"(?P<path>.+?\.ini)(?::(?P<sys>[^:]*))?(?::(?P<mode>[^:]*))?", re.IGNORECASE)


@dataclass(frozen=True)
class IniSpec:
    """`FILE.ini[:SYSTEM_CONFIG[:MEMORY_MODE]]` taken apart."""

    path: Path
    system_config: str | None
    memory_mode: str | None


@dataclass(frozen=True)
class MliaProfile:
    """An MLIA Ethos-U target profile: which accelerator, system config, memory mode and vela.ini."""

    path: Path
    name: str
    description: str
    target: str  # "ethos-u55" | "ethos-u65" | "ethos-u85"
    mac: int
    system_config: str
    memory_mode: str
    config: Path | None  # the profile's vela.ini; None = Vela's own Arm/vela.ini

    @property
    def accelerator(self) -> str:
        return f"{self.target}-{self.mac}"


def parse_ini_spec(spec: str) -> IniSpec | None:
    """The parts of a vela.ini target spelling, or None when `spec` does not name a .ini file."""
    m = _INI_SPEC.fullmatch(spec.strip())
    if m is None:
        return None
    return IniSpec(Path(m.group("path")), m.group("sys") or None, m.group("mode") or None)


def _accelerator_base(accelerator: str) -> Target:
    base = _desc.build_target(*_shipped(accelerator))
    if not base.family.is_ethos_u or base.vela_accelerator_config != accelerator:
        ethos_u = [t for t in list_targets() if t.startswith("ethos-u")]
        raise TargetError(f"--accelerator {accelerator!r} is not a Vela accelerator (one of {', '.join(ethos_u)})")
    return base


def _pick(kind: str, wanted: str | None, have: tuple[str, ...], path: Path) -> str:
    if wanted:
        return wanted
    if len(have) == 1:
        return have[0]
    raise TargetError(f"{path} has {len(have)} {kind}s ({', '.join(have) or 'none'}): name one as "
                      "FILE.ini:SYSTEM_CONFIG:MEMORY_MODE or with --system-config / --memory-mode")


def system_table(sc: SystemConfig) -> dict[str, Any]:
    """The descriptor table of a system config (memories on the AXI ports only: Vela reads no others)."""
    table: dict[str, Any] = {"core_clock_hz": float(sc.core_clock_hz), "axi0_port": sc.axi0_port,
                             "axi1_port": sc.axi1_port}
    for mem in dict.fromkeys((sc.axi0_port, sc.axi1_port)):
        m = sc.memories[mem]
        table[mem] = {"clock_scale": float(m.clock_scale), "ports_used": m.ports_used, "burst_length": m.burst_length,
                      "read_latency": m.read_latency, "write_latency": m.write_latency, "max_reads": m.max_reads,
                      "max_writes": m.max_writes}
    return table


def mode_table(mm: MemoryMode) -> dict[str, Any]:
    table: dict[str, Any] = {"const_mem_area": mm.const_mem_area, "arena_mem_area": mm.arena_mem_area,
                             "cache_mem_area": mm.cache_mem_area}
    if mm.arena_cache_size is not None:
        table["arena_cache_size"] = mm.arena_cache_size
    return table


def _shipped(name: str) -> tuple[Path, dict[str, Any]]:
    path = _desc.descriptor_path(name)
    return path, _desc.read_chain(path)


def _shipped_document(name: str) -> dict[str, Any]:
    return _shipped(name)[1]


def _strip_abstract(doc: dict[str, Any]) -> dict[str, Any]:
    doc["target"] = {k: v for k, v in doc.get("target", {}).items() if k != "abstract"}
    return doc


def descriptor_document(accelerator: str, sc: SystemConfig, mm: MemoryMode, name: str, description: str,
                        where: str = "") -> dict[str, Any]:
    """A descriptor for `accelerator` in system `sc` with memory mode `mm`, as lean as the merge allows."""
    base = _accelerator_base(accelerator)
    check_placement(sc, mm, base.npu.address_bits, where or name)
    own: dict[str, Any] = {
        "target": {"name": name, "description": description, "default_system_config": sc.name,
                   "default_memory_mode": mm.name},
        "system_config": {sc.name: system_table(sc)}, "memory_mode": {mm.name: mode_table(mm)},
    }
    axi = vela_axi_bytes(sc.name)
    if axi != base.npu.axi_bytes_per_cycle:
        # Vela 5.2's compiler core sizes the AXI port by the system config's name, not the accelerator.
        log.warning("Vela models %d-byte AXI ports for system config %s on %s (%d for configs named Ethos_U55*): "
                    "the descriptor follows it", axi, sc.name, accelerator, 8)
        own["npu"] = {"axi_bytes_per_cycle": axi}
    parent = _shipped_document(accelerator)
    merged = _desc.merge(parent, own)

    def same(kind: str, key: str) -> bool:  # a shipped description is no difference in the target
        got = {k: v for k, v in merged[kind][key].items() if k != "description"}
        return bool(got == own[kind][key])

    if same("system_config", sc.name) and same("memory_mode", mm.name):
        return {"extends": accelerator, **own}
    # A shipped table of the same name holds keys the imported one lacks: a merge would keep them.
    merged["system_config"][sc.name] = own["system_config"][sc.name]
    merged["memory_mode"][mm.name] = own["memory_mode"][mm.name]
    return _strip_abstract(merged)


def target_from_document(doc: dict[str, Any], source: Path, system_config: str | None = None,
                         memory_mode: str | None = None) -> Target:
    """Load an in-memory descriptor document exactly as a file with that content at `source`."""
    doc = copy.deepcopy(doc)
    _desc.check_file(source, doc)
    if "extends" in doc:
        parent = _desc.read_chain(_desc.descriptor_path(doc.pop("extends"), source))
        doc = _strip_abstract(_desc.merge(parent, doc))
    return _desc.build_target(source, doc).select(system_config, memory_mode)


def ini_document(path: Path, system_config: str | None, memory_mode: str | None, accelerator: str | None = None,
                 name: str | None = None) -> dict[str, Any]:
    """The descriptor document of one system config and memory mode of a vela.ini."""
    ini = read_vela_ini(path)
    sys_name = _pick("system config", system_config, ini.system_configs, path)
    mode_name = _pick("memory mode", memory_mode, ini.memory_modes, path)
    sc, mm = ini.system_config(sys_name), ini.memory_mode(mode_name)
    accel = accelerator or VELA_DEFAULT_ACCELERATOR
    return descriptor_document(accel, sc, mm, name or f"{path.stem}-{sys_name}-{mode_name}",
                               f"{accel} with [System_Config.{sys_name}] and [Memory_Mode.{mode_name}] of {path.name}",
                               str(path))


# --- MLIA target profiles ------------------------------------------------------------------------

def _load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TargetError(f"{path}: not valid TOML: {exc}") from None


def is_mlia_profile(doc: dict[str, Any]) -> bool:
    """True for an MLIA target profile (its `target` is a string; a descriptor's is a table)."""
    return isinstance(doc.get("target"), str) or "target_type" in doc or "profile_name" in doc


def read_mlia_profile(path: Path, doc: dict[str, Any] | None = None) -> MliaProfile:
    """Parse an MLIA Ethos-U target profile; every missing or wrong key is one TargetError naming it."""
    doc = _load_toml(path) if doc is None else doc
    for key in doc:
        if key not in MLIA_TOP_KEYS:
            raise TargetError(f"{path}: unknown MLIA profile key {key!r}")
    fields = dict(doc)
    section = "profile"
    if isinstance(doc.get("config"), dict):  # newer MLIA: the Ethos-U settings live in [config]
        section = "config"
        for key in doc["config"]:
            if key not in MLIA_CONFIG_KEYS:
                raise TargetError(f"{path}: [config] unknown MLIA profile key {key!r}")
        fields = {k: v for k, v in doc.items() if k != "config"} | doc["config"]
    family = fields.get("target_type", fields.get("target"))
    if not isinstance(family, str):
        raise TargetError(f"{path}: missing key 'target_type' (or 'target'): the MLIA target, e.g. \"ethos-u55\"")
    family = family.lower()
    if family not in MLIA_MACS:
        raise TargetError(f"{path}: MLIA target {family!r} is not an Ethos-U NPU (hwopt takes {', '.join(MLIA_MACS)})")
    for key, kind in (("mac", int), ("system_config", str), ("memory_mode", str)):
        if key not in fields:
            raise TargetError(f"{path}: [{section}] missing key {key!r}")
        if not isinstance(fields[key], kind) or isinstance(fields[key], bool):
            raise TargetError(f"{path}: [{section}] {key} must be {'an integer' if kind is int else 'a string'}")
    if fields["mac"] not in MLIA_MACS[family]:
        raise TargetError(f"{path}: [{section}] mac {fields['mac']} is not a {family} configuration "
                          f"(one of {', '.join(map(str, MLIA_MACS[family]))})")
    config = None
    if fields.get("config") is not None:
        if not isinstance(fields["config"], str):
            raise TargetError(f"{path}: [{section}] config must be the path of a vela.ini")
        given = Path(fields["config"])
        # MLIA opens the path as given; a profile kept next to its vela.ini also works from anywhere.
        beside = path.parent / given
        config = given if given.is_absolute() or not beside.is_file() else beside
    name = fields.get("profile_name", path.stem)
    return MliaProfile(path, str(name), str(fields.get("description", "")), family, fields["mac"],
                       fields["system_config"], fields["memory_mode"], config)


def mlia_document(profile: MliaProfile, name: str | None = None) -> dict[str, Any]:
    """The descriptor document of an MLIA profile."""
    desc = profile.description or f"MLIA target profile {profile.name}"
    if profile.config is not None:
        ini = read_vela_ini(profile.config)
        sc, mm = ini.system_config(profile.system_config), ini.memory_mode(profile.memory_mode)
        return descriptor_document(profile.accelerator, sc, mm, name or profile.name, desc, str(profile.config))
    # No config: MLIA compiles with the stock vela.ini, which the shipped descriptors carry.
    base = _accelerator_base(profile.accelerator)
    for kind, wanted, have in (("system_config", profile.system_config, base.system_configs),
                               ("memory_mode", profile.memory_mode, base.memory_modes)):
        if wanted not in have:
            raise TargetError(f"{profile.path}: {kind} {wanted!r} is not in Vela's Arm/vela.ini and the profile "
                              f"names no config file (have: {', '.join(have)})")
    return {"extends": profile.accelerator,
            "target": {"name": name or profile.name, "description": desc,
                       "default_system_config": profile.system_config, "default_memory_mode": profile.memory_mode}}


# --- one entry point -----------------------------------------------------------------------------

def foreign_files(spec: str) -> tuple[Path, ...] | None:
    """The files a vela.ini or MLIA spelling reads (the cache key of its Target); None for any other spelling."""
    ini = parse_ini_spec(spec)
    if ini is not None:
        return (ini.path,)
    path = Path(spec)
    if not (spec.lower().endswith(".toml") and path.is_file()):
        return None
    try:
        doc = _load_toml(path)
        if not is_mlia_profile(doc):
            return None
        config = read_mlia_profile(path, doc).config
    except TargetError:
        return (path,)  # loading it again reports the problem
    return (path,) if config is None else (path, config)


def file_stamps(paths: tuple[Path, ...]) -> tuple[tuple[Path, int, int], ...]:
    """(file, mtime, size) of each file; (file, 0, 0) for one that cannot be read (loading reports it)."""
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((p.resolve(), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((p, 0, 0))
    return tuple(out)


def foreign_document(spec: str, *, accelerator: str | None = None, system_config: str | None = None,
                     memory_mode: str | None = None, name: str | None = None) -> tuple[dict[str, Any], Path] | None:
    """(descriptor document, source file) for a vela.ini or MLIA spelling; None for a hwopt descriptor or name."""
    ini = parse_ini_spec(spec)
    if ini is not None:
        for flag, a, b in (("--system-config", ini.system_config, system_config),
                           ("--memory-mode", ini.memory_mode, memory_mode)):
            if a and b and a != b:
                raise TargetError(f"{spec}: names {a!r} but {flag} says {b!r}")
        return ini_document(ini.path, ini.system_config or system_config, ini.memory_mode or memory_mode,
                            accelerator, name), ini.path
    path = Path(spec)
    if spec.lower().endswith(".toml") and path.is_file():
        doc = _load_toml(path)
        if is_mlia_profile(doc):
            profile = read_mlia_profile(path, doc)
            if accelerator and accelerator != profile.accelerator:
                raise TargetError(f"{spec}: the MLIA profile is for {profile.accelerator}, not --accelerator {accelerator}")
            return mlia_document(profile, name), path
    if accelerator:
        raise TargetError("--accelerator applies to a vela.ini target (FILE.ini:SYSTEM_CONFIG:MEMORY_MODE) only")
    return None


def document_toml(doc: dict[str, Any], header: str) -> str:
    """The TOML text `hwopt targets import` writes."""
    return f"# {header}\n" + dumps_toml(doc)
