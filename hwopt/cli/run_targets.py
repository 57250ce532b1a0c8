"""`hwopt targets`: the shipped target descriptors and their key numbers (`import` / `export`: see targets_io)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from hwopt.cli._common import console, fmt_bytes, print_json
from hwopt.targets import list_targets, resolve_target

SCHEMA = "hwopt.targets/1"




@dataclass(frozen=True)
class TargetRow:
    name: str
    family: str
    macs_per_cycle: int
    cores: int
    clock_hz: float
    sram_bytes: int | None
    system_config: str | None
    memory_mode: str | None
    system_configs: list[str]
    memory_modes: list[str]
    engines: list[str]
    description: str



@dataclass(frozen=True)
class TargetList:
    schema: str
    targets: list[TargetRow]



def target_rows() -> TargetList:
    rows = []
    for name in list_targets():
        t = resolve_target(name)
        rows.append(TargetRow(
            name=t.name, family=t.family.value, macs_per_cycle=t.npu.total_macs, cores=t.npu.cores, clock_hz=t.clock_hz,
            sram_bytes=t.sram_bytes, system_config=t.default_system_config, memory_mode=t.default_memory_mode,
            system_configs=list(t.system_configs), memory_modes=list(t.memory_modes),
            engines=[t.default_engine, "analytic"] if t.default_engine != "analytic" else ["analytic"], description=t.description,
        ))
    return TargetList(SCHEMA, rows)



def run(args: argparse.Namespace) -> int:
    listing = target_rows()
    if args.json:
        print_json(listing)
        return 0
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col, just in (("target", "left"), ("family", "left"), ("MACs/cycle", "right"), ("clock", "right"),
                      ("SRAM", "right"), ("system config", "left"), ("memory mode", "left"), ("engines", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in listing.targets:
        table.add_row(r.name, r.family, f"{r.macs_per_cycle:,}", f"{r.clock_hz / 1e6:g} MHz",
                      fmt_bytes(r.sram_bytes) if r.sram_bytes is not None else "shared", r.system_config or "-",
                      r.memory_mode or "-", ",".join(r.engines))
    console().print(table)
    return 0
