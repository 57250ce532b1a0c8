"""`hwopt check MODEL --target NAME`: where each operator runs, why, and how to move it to the NPU."""

from __future__ import annotations

import argparse

from hwopt.cli._common import console, fmt_int, print_findings, print_json
from hwopt.cli._target import resolve_target_arg
from hwopt.engines.check import check_model


def run(args: argparse.Namespace) -> int:
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
