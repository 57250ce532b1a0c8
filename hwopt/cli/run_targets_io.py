"""`hwopt targets import` / `hwopt targets export`: vela.ini and MLIA profiles in, vela.ini out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hwopt.errors import UsageError
from hwopt.fileio import atomic_write_text
from hwopt.targets import resolve_target
from hwopt.targets.importing import document_toml, foreign_document, foreign_files, target_from_document
from hwopt.targets.vela_ini import export_vela_ini


def _inputs(spec: str) -> tuple[Path, ...]:
    """Every file a target spelling reads (a profile and its vela.ini too): never overwritten."""

    return foreign_files(spec) or (Path(spec),)



def run_import(args: argparse.Namespace) -> int:
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
    target = resolve_target(args.target, accelerator=args.accelerator, system_config=args.system_config,
                            memory_mode=args.memory_mode)
    text = export_vela_ini(target)
    atomic_write_text(args.output, text, protect=_inputs(args.target))
    assert target.system is not None and target.memory_mode is not None
    sys.stdout.write(f"wrote {args.output}: vela MODEL --config {args.output} --accelerator-config "
                     f"{target.vela_accelerator()} --system-config {target.system.name} "
                     f"--memory-mode {target.memory_mode.name}\n")
    return 0
