"""`resolve_target`: every accepted spelling of a target, normalised once, validated and cached.

Accepted: a shipped name in any case and with `_` or `-` ("ethos-u55-128", "Ethos_U55_128",
"u55-128", "ETHOS-N78_4TOPS_4PLE_RATIO"), a family name ("ethos-u55", "u85", "ethos-n78")
which selects the family's documented default configuration (`FAMILY_DEFAULTS`), a path to a
user `.toml` descriptor, or a `Target` already resolved. The result is cached on the
normalised spelling and on the modification stamps of every file of the descriptor chain,
so a descriptor edited on disk is read again and an unchanged one is parsed once. A vela.ini
spelling or an MLIA profile is cached the same way, on the stamps of the files it reads.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path

from hwopt.errors import TargetError
from hwopt.targets.descriptor import build_target, chain_stamps, descriptor_path, list_targets, read_chain
from hwopt.targets.importing import file_stamps, foreign_document, foreign_files, parse_ini_spec, target_from_document
from hwopt.targets.target import DESCRIPTOR_DIR, Family, Target

log = logging.getLogger(__name__)

#: The configuration a bare family name stands for. Ethos-U: Vela's own default accelerator
#: (`--accelerator-config ethos-u55-256`) is a 256-MAC part, and 256 MACs exist in every Ethos-U
#: family, so each family takes its 256-MAC configuration. Ethos-N78: 4TOPS_4PLE_RATIO, the
#: variant Arm NN's Ethos-N backend uses when none is configured.
FAMILY_DEFAULTS: dict[Family, str] = {
    Family.ETHOS_U55: "ethos-u55-256",
    Family.ETHOS_U65: "ethos-u65-256",
    Family.ETHOS_U85: "ethos-u85-256",
    Family.ETHOS_N78: "ethos-n78-4tops-4ple",
}

_ETHOS_U = re.compile(r"(?:arm-)?(?:ethos-?)?(u55|u65|u85)(?:-?(\d+))?")
_ETHOS_N = re.compile(r"(?:arm-)?(?:ethos-?)?n78(?:-(\d+)tops-(\d+)ple(?:-ratio)?)?")


def _is_path(text: str) -> bool:
    return text.lower().endswith(".toml") or "/" in text or "\\" in text


def normalise_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """(descriptor file, family name or None) for a spelling; TargetError for an unknown one."""
    if isinstance(spec, os.PathLike):
        return descriptor_path(os.fspath(spec)), None
    text = spec.strip()
    if not text:
        raise TargetError("empty target name")
    if _is_path(text):
        return descriptor_path(text), None
    lead = "_" if text.startswith("_") else ""  # "_ethos-u55": a shipped abstract base
    name = lead + re.sub(r"[\s_]+", "-", text.lstrip("_").lower())
    family = None
    if m := _ETHOS_U.fullmatch(name):
        if m.group(2) is None:
            family = f"ethos-{m.group(1)}"
            name = FAMILY_DEFAULTS[Family(family)]
        else:
            name = f"ethos-{m.group(1)}-{int(m.group(2))}"
    elif m := _ETHOS_N.fullmatch(name):
        if m.group(1) is None:
            family = "ethos-n78"
            name = FAMILY_DEFAULTS[Family.ETHOS_N78]
        else:
            name = f"ethos-n78-{int(m.group(1))}tops-{int(m.group(2))}ple"
    path = DESCRIPTOR_DIR / f"{name}.toml"
    if not path.is_file():
        families = ", ".join(f.value for f in Family)
        raise TargetError(f"unknown target {spec!r} (known: {', '.join(list_targets())}; "
                          f"families: {families}; or a .toml descriptor path)")
    return path, family


def family_default(spec: str | os.PathLike[str] | Target) -> str | None:
    """The configuration a family name resolves to ("ethos-u55" -> "ethos-u55-256"); None for other spellings."""
    if isinstance(spec, Target):
        return None
    path, family = normalise_spec(spec)
    return path.stem if family else None


@functools.lru_cache(maxsize=256)
def _load(path: Path, stamps: tuple[tuple[Path, int, int], ...], system_config: str | None,
          memory_mode: str | None) -> Target:
    del stamps  # part of the cache key only: a changed file in the chain is a new key
    target = build_target(path, read_chain(path))
    log.debug("loaded target %s from %s", target.name, path)
    return target.select(system_config, memory_mode)


@functools.lru_cache(maxsize=64)
def _load_foreign(text: str, stamps: tuple[tuple[Path, int, int], ...], accelerator: str | None,
                  system_config: str | None, memory_mode: str | None) -> Target:
    """A vela.ini or MLIA spelling built into the same Target as a descriptor; cached on its files' stamps."""
    del stamps  # part of the cache key only
    found = foreign_document(text, accelerator=accelerator, system_config=system_config, memory_mode=memory_mode)
    if found is None:  # the file changed kind between the two looks
        raise TargetError(f"{text}: not a vela.ini or an MLIA target profile")
    doc, source = found
    foreign = target_from_document(doc, source)
    return foreign if parse_ini_spec(text) is not None else foreign.select(system_config, memory_mode)


def resolve_target(spec: str | os.PathLike[str] | Target, *, system_config: str | None = None,
                   memory_mode: str | None = None, accelerator: str | None = None) -> Target:
    """The Target a name, family name, descriptor path, vela.ini spelling (`FILE.ini[:SYSTEM[:MODE]]`
    on `accelerator`), MLIA profile or Target denotes, with an optional system configuration and
    memory mode selected. TargetError (exit 2) for anything unknown or invalid."""
    if isinstance(spec, Target):
        if accelerator:
            raise TargetError("an accelerator applies to a vela.ini target (FILE.ini:SYSTEM_CONFIG:MEMORY_MODE) only")
        return spec.select(system_config, memory_mode)
    if not isinstance(spec, (str, os.PathLike)):
        raise TargetError(f"a target is a name, a descriptor path or a Target, not {type(spec).__name__}")
    text = os.fspath(spec).strip()
    files = foreign_files(text)
    if files is not None:  # a vela.ini or an MLIA profile: built into the same Target as a descriptor
        return _load_foreign(text, file_stamps(files), accelerator or None, system_config or None, memory_mode or None)
    if accelerator:
        raise TargetError("--accelerator applies to a vela.ini target (FILE.ini:SYSTEM_CONFIG:MEMORY_MODE) only")
    path, family = normalise_spec(spec)
    target = _load(path, chain_stamps(path), system_config or None, memory_mode or None)
    if family is not None:
        log.info("target %s is a family name: using its default configuration %s", spec, target.name)
    return target
