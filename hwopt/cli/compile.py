"""`hwopt compile [MODEL] --target NAME -o DIR`: audit, enforce pipeline, Vela, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("compile", help="compile for an Ethos-U target through Vela and write a report",
                       description="Audit the model, run an optional enforce pipeline, compile it with Vela for the "
                       "target and write <model>_<target>.tflite, report.json, report.md, report.html and per_layer.csv. "
                       "Without MODEL the bundled example model is compiled.")
    p.add_argument("model", nargs="?", help="the int8 .tflite file (default: the bundled example model)")
    p.add_argument("--target", required=True, help="target name (see hwopt targets), a descriptor .toml, "
                   "FILE.ini:SYSTEM_CONFIG:MEMORY_MODE (a Vela config) or an MLIA target-profile .toml")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a .ini target (default ethos-u55-256)")
    p.add_argument("-o", "--output", default="hwopt-out", metavar="DIR", help="output directory (default: hwopt-out)")
    p.add_argument("--pipeline", metavar="SPEC", help="enforce pipeline, e.g. 'prune{sparsity=0.5},cluster{k=16}'")
    p.add_argument("--data", metavar="NPZ", help="inputs (and labels) for the pipeline's fidelity check")
    p.add_argument("--system-config", help="system configuration of the descriptor (default: the target's)")
    p.add_argument("--memory-mode", help="memory mode of the descriptor (default: the target's)")
    p.add_argument("--explorer", metavar="DIR", help="also write Google Model Explorer overlays (one node-data JSON "
                   "per metric) into DIR")
    p.add_argument("--json", action="store_true", help="print report.json to stdout as well")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hwopt.cli._common import console, fmt_bytes, print_findings, print_json, resolve_target_arg
    from hwopt.engines.compile import run_compile
    from hwopt.reports.compile_outputs import prepare_output_dir, write_compile_outputs

    target = resolve_target_arg(args.target, args.system_config, args.memory_mode, accelerator=args.accelerator)
    prepare_output_dir(args.output, args.model, target, args.data)  # before minutes of work

    steps = 5 if args.pipeline else 4
    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True, console=console(stderr=True)) as bar:
            task = bar.add_task("compiling", total=steps)

            def advance(msg: str) -> None:
                bar.update(task, description=msg, advance=1)

            result = run_compile(args.model, target, pipeline=args.pipeline, data=args.data, progress=advance)
            result = write_compile_outputs(result, args.output, data=args.data, progress=advance)
    else:
        result = run_compile(args.model, target, pipeline=args.pipeline, data=args.data)
        result = write_compile_outputs(result, args.output, data=args.data)
    r = result.report
    if args.explorer:
        from hwopt.format.tflite_io import read_model
        from hwopt.reports.explorer import write_overlays

        write_overlays(args.explorer, read_model(r.model), r.layers, protect=(Path(r.model),))
    if args.json:
        print_json(r)
        return 1 if r.failed else 0
    t = r.totals
    con = console()
    con.print(f"[bold]{r.model}[/bold] -> [bold]{Path(args.output) / r.output_model}[/bold]")
    con.print(f"{r.target}: {t.cycles:,} cycles, {t.inference_s * 1e3:.3f} ms ({t.inferences_per_second:.1f} inferences/s), "
              f"SRAM {fmt_bytes(t.peak_sram_bytes)}, flash {fmt_bytes(t.flash_bytes)}, "
              f"encoded weights {fmt_bytes(t.encoded_weight_bytes)}, {t.npu_operators} NPU / {t.cpu_operators} CPU operators")
    con.print("wrote " + ", ".join(result.files) + f" in {args.output}")
    print_findings(con, [f for f in r.findings if f.severity.value != "info"])
    return 1 if r.failed else 0
