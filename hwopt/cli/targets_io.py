"""`hwopt targets import` / `hwopt targets export`: vela.ini and MLIA profiles in, vela.ini out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("import", help="convert a vela.ini system config or an MLIA target profile to a descriptor",
                       description="Write a hwopt target descriptor (TOML) equivalent to one system config and memory "
                       "mode of a Vela .ini file on an accelerator, or to an MLIA Ethos-U target profile. The "
                       "descriptor extends the shipped accelerator where it can.")
    p.add_argument("source", metavar="FILE", help="a vela .ini (optionally FILE.ini:SYSTEM_CONFIG:MEMORY_MODE) or an "
                   "MLIA target-profile .toml")
    p.add_argument("--system-config", metavar="NAME", help="the [System_Config.NAME] section to take")
    p.add_argument("--memory-mode", metavar="NAME", help="the [Memory_Mode.NAME] section to take")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator, e.g. ethos-u55-128 (default: Vela's own "
                   "default, ethos-u55-256; an MLIA profile names its own)")
    p.add_argument("--name", help="name of the new target (default: from the file and sections)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.toml", help="descriptor to write")
    p.set_defaults(func=run_import)

    e = sub.add_parser("export", help="write a target's system config and memory mode as a vela.ini",
                       description="Write the selected system config and memory mode of a target as a Vela .ini, so "
                       "that `vela --config FILE.ini --system-config S --memory-mode M --accelerator-config A` "
                       "compiles for the same target.")
    e.add_argument("target", metavar="NAME|PATH", help="a shipped target, a descriptor, a vela.ini spelling or an "
                   "MLIA profile")
    e.add_argument("--vela-ini", action="store_true", required=True, help="write a Vela configuration file")
    e.add_argument("--system-config", metavar="NAME", help="system configuration (default: the target's)")
    e.add_argument("--memory-mode", metavar="NAME", help="memory mode (default: the target's)")
    e.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a vela.ini target spelling")
    e.add_argument("-o", "--output", required=True, metavar="FILE.ini", help="the .ini to write")
    e.set_defaults(func=run_export)


def _inputs(spec: str) -> tuple[Path, ...]:
    """Every file a target spelling reads (a profile and its vela.ini too): never overwritten."""
    from hwopt.targets.importing import foreign_files

    return foreign_files(spec) or (Path(spec),)


def run_import(args: argparse.Namespace) -> int:
    from hwopt.errors import UsageError
    from hwopt.fileio import atomic_write_text
    from hwopt.targets.importing import document_toml, foreign_document, target_from_document

    found = foreign_document(args.source, accelerator=args.accelerator, system_config=args.system_config,
                             memory_mode=args.memory_mode, name=args.name)
    if found is None:
        raise UsageError(f"{args.source} is neither a Vela .ini nor an MLIA target profile")
    doc, source = found
    out = Path(args.output)
    target_from_document(doc, out.resolve())  # the written file must load: check before writing
    text = document_toml(doc, f"hwopt target descriptor imported from {source.name}")
    atomic_write_text(out, text, protect=_inputs(args.source))
    t = doc["target"]
    sys.stdout.write(f"wrote {out}: target {t['name']} ({doc.get('extends', 'standalone')}, system config "
                     f"{t['default_system_config']}, memory mode {t['default_memory_mode']})\n")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from hwopt.fileio import atomic_write_text
    from hwopt.targets import resolve_target
    from hwopt.targets.vela_ini import export_vela_ini

    target = resolve_target(args.target, accelerator=args.accelerator, system_config=args.system_config,
                            memory_mode=args.memory_mode)
    text = export_vela_ini(target)
    atomic_write_text(args.output, text, protect=_inputs(args.target))
    assert target.system is not None and target.memory_mode is not None
    sys.stdout.write(f"wrote {args.output}: vela MODEL --config {args.output} --accelerator-config "
                     f"{target.vela_accelerator()} --system-config {target.system.name} "
                     f"--memory-mode {target.memory_mode.name}\n")
    return 0
