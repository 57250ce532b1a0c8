"""`hwopt compile [MODEL] --target NAME -o DIR`: audit, enforce pipeline, Vela, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hwopt.cli._common import console, fmt_bytes, print_findings, print_json, warm_tables
from hwopt.cli._target import resolve_target_arg
from hwopt.engines.compile import run_compile
from hwopt.format.tflite_io import read_model
from hwopt.reports.compile_outputs import prepare_output_dir, write_compile_outputs
from hwopt.reports.explorer import write_overlays


def run(args: argparse.Namespace) -> int:
    target = resolve_target_arg(args.target, args.system_config, args.memory_mode, accelerator=args.accelerator)
    prepare_output_dir(args.output, args.model, target, args.data)  # before minutes of work
    if not args.json:
        warm_tables()  # the summary's console loads while Vela compiles, not after it

    steps = 4 if args.pipeline else 3
    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True, console=console(stderr=True)) as bar:
            task = bar.add_task("compiling", total=steps)

            def advance(msg: str) -> None:
                bar.update(task, description=msg, advance=1)

            result = run_compile(args.model, target, pipeline=args.pipeline, data=args.data, progress=advance,
                                     exact_deflate=args.exact_deflate)
            result = write_compile_outputs(result, args.output, data=args.data, progress=advance)
    else:
        result = run_compile(args.model, target, pipeline=args.pipeline, data=args.data, exact_deflate=args.exact_deflate)
        result = write_compile_outputs(result, args.output, data=args.data)
    r = result.report
    if args.explorer:

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
