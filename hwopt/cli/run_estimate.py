"""`hwopt estimate MODEL --target NAME|PATH`: per-layer cycles, SRAM and traffic on a target."""

from __future__ import annotations

import argparse

from hwopt.cli._common import console, fmt_bytes, fmt_int, fmt_pct, print_json
from hwopt.cli._target import resolve_target_arg
from hwopt.engines.estimate import estimate
from hwopt.errors import UsageError
from hwopt.format.tflite_io import read_model
from hwopt.reports.explorer import write_overlays

TOP_N = 5




def run(args: argparse.Namespace) -> int:
    target = resolve_target_arg(args.target, args.system_config, args.memory_mode, accelerator=args.accelerator)
    if args.engine == "vela" and not target.family.is_ethos_u:

        raise UsageError(f"target {target.name} is an Ethos-N78: Vela does not compile for it; use --engine analytic")
    report = estimate(args.model, target, engine=args.engine)
    if args.explorer:
        from pathlib import Path


        write_overlays(args.explorer, read_model(args.model), report.layers, protect=(Path(args.model),))
    if args.json:
        print_json(report)
        return 0
    from rich.table import Table

    con = console()
    s = report.summary
    where = f"{report.system_config} / {report.memory_mode}" if report.system_config else "N78"
    con.print(f"[bold]{report.model}[/bold] on [bold]{report.target}[/bold] ({where}, "
              f"{report.clock_hz / 1e6:g} MHz), engine {report.engine}")
    top = {(la.subgraph, la.op_index) for la in report.top_layers(TOP_N)}
    table = Table(show_edge=False, pad_edge=False)
    for col, just in (("sg", "right"), ("op", "right"), ("type", "left"), ("on", "left"), ("cycles", "right"),
                      ("%", "right"), ("NPU", "right"), ("MACs", "right"), ("util", "right"), ("SRAM", "right"),
                      ("weights", "right"), ("bound", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for la in report.layers:
        share = la.cycles / s.cycles if s.cycles else 0.0
        style = "bold yellow" if (la.subgraph, la.op_index) in top else ("dim" if la.cycles == 0 else None)
        table.add_row(str(la.subgraph), str(la.op_index), la.op, la.placement, fmt_int(la.cycles), fmt_pct(share),
                      fmt_int(la.npu_cycles), fmt_int(la.macs), fmt_pct(la.mac_utilisation), fmt_bytes(la.sram_bytes),
                      fmt_bytes(la.encoded_weight_bytes), la.bound, style=style)
    con.print(table)
    con.print(f"cycles {s.cycles:,} (NPU {s.npu_cycles:,}) = {s.inference_s * 1e3:.3f} ms, "
              f"{s.inferences_per_second:.1f} inferences/s")
    con.print(f"MACs {s.macs:,}, utilisation {fmt_pct(s.mac_utilisation)}; peak SRAM {fmt_bytes(s.peak_sram_bytes)}, "
              f"off-chip {fmt_bytes(s.off_chip_bytes)}/inference, encoded weights {fmt_bytes(s.encoded_weight_bytes)}")
    con.print(f"{s.npu_ops} NPU / {s.cpu_ops} CPU operators; TFLite Micro arena {fmt_bytes(s.arena_bytes)}, "
              f"read-only {fmt_bytes(s.read_only_bytes)}")
    return 0
