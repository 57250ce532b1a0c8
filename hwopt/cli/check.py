"""`hwopt check MODEL --target NAME`: where each operator runs, why, and how to move it to the NPU."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="explain which operators run on the NPU or the CPU, and why",
                       description="Per operator: its placement on the target and, for each CPU operator, every "
                       "failing constraint (rule id, the failing values, a fix). Ethos-U targets are cross-checked "
                       "with Vela's own placement. --expect-npu makes any CPU operator a failure (exit 1): the "
                       "firmware-CI '100 %% NPU' gate.")
    p.add_argument("model", help="the .tflite file")
    p.add_argument("--target", required=True, metavar="NAME|PATH", help="target name or descriptor .toml")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a FILE.ini:SYSTEM_CONFIG:MEMORY_MODE "
                   "target (default ethos-u55-256)")
    p.add_argument("--engine", choices=("vela", "analytic"), default=None,
                   help="vela: the support model cross-checked with Vela (default for Ethos-U); analytic: the "
                   "support model alone")
    p.add_argument("--all-targets", action="store_true", help="list, per operator, the shipped targets that run it "
                   "on the NPU")
    p.add_argument("--expect-npu", action="store_true", help="exit 1 when any operator runs on the CPU")
    p.add_argument("--allow-cpu", metavar="OP,...", default="",
                   help="with --expect-npu: operator types allowed on the CPU (e.g. QUANTIZE,DEQUANTIZE)")
    p.add_argument("--json", action="store_true", help="print the hwopt.check/1 JSON report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hwopt.cli._common import console, fmt_int, print_findings, print_json, resolve_target_arg
    from hwopt.engines.check import check_model

    allow = frozenset(s.strip().upper() for s in args.allow_cpu.split(",") if s.strip())
    target = resolve_target_arg(args.target, accelerator=args.accelerator)
    report = check_model(args.model, target, engine=args.engine, all_targets=args.all_targets,
                         allow_cpu=allow, expect_npu=args.expect_npu)
    if args.json:
        print_json(report)
        return 1 if report.failed else 0
    from rich.table import Table

    con = console()
    s = report.summary
    con.print(f"[bold]{report.model}[/bold] on [bold]{report.target}[/bold] (engine {report.engine}): "
              f"{s.npu_operators} NPU / {s.cpu_operators} CPU operators, CPU MACs {fmt_int(s.cpu_macs)}, "
              f"CPU data movement at NPU edges {fmt_int(s.edge_cpu_elements)} elements")
    cpu = [o for o in report.operators if o.placement == "cpu"]
    if cpu:
        table = Table(show_edge=False, pad_edge=False)
        for col in ("sg", "op", "type", "rule", "why", "fix"):
            table.add_column(col)
        for o in cpu:
            for i, r in enumerate(o.reasons or []):
                first = i == 0
                table.add_row(str(o.subgraph) if first else "", str(o.op_index) if first else "",
                              o.op if first else "", r.rule, r.message, r.fix)
        con.print(table)
    if args.all_targets:
        for o in cpu:
            where = ", ".join(o.npu_on or []) or "no shipped target"
            con.print(f"{o.op} #{o.op_index} runs on the NPU of: {where}")
    print_findings(con, report.findings)
    return 1 if report.failed else 0
