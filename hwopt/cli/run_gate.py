"""`hwopt gate MODEL --target NAME --baseline FILE`: regression gate for firmware builds."""

from __future__ import annotations

import argparse

from hwopt.cli._common import console, print_json
from hwopt.cli._target import resolve_target_arg
from hwopt.engines.gate import GateOptions, collect_metrics, run_gate
from hwopt.errors import BaselineError, UsageError


def run(args: argparse.Namespace) -> int:
    opts = GateOptions(max_cycles_increase=args.max_cycles_increase, max_sram_increase=args.max_sram_increase,
                       max_flash_increase=args.max_flash_increase, max_sram=args.max_sram, max_flash=args.max_flash,
                       min_sparsity=args.min_sparsity, max_unique_per_channel=args.max_unique_per_channel,
                       max_fidelity_drop=args.max_fidelity_drop)
    if args.max_fidelity_drop is not None and args.data is None:

        raise UsageError("--max-fidelity-drop needs --data")
    target = resolve_target_arg(args.target, args.system_config, args.memory_mode, accelerator=args.accelerator)
    try:
        report = run_gate(lambda: collect_metrics(args.model, target, data=args.data),
                          args.baseline, opts, update=args.update_baseline, junit=args.junit,
                          inputs=(args.model, args.data))
    except BaselineError as exc:
        if not str(exc).startswith("baseline not found"):
            raise
        # The engine speaks to API users; on the command line the way to create it is a flag.
        raise BaselineError(f"baseline not found: {args.baseline} (create it with --update-baseline)") from None
    if args.json:
        print_json(report)
        return 1 if report.failed else 0
    con = console()
    if report.updated:
        con.print(f"baseline written: {report.baseline}")
        return 0
    for c in report.violations:
        con.print(f"[bold red]FAIL[/] {c.message}")
    passed = len(report.checks) - len(report.violations)
    status = "[bold red]gate failed[/]" if report.failed else "[green]gate passed[/]"
    con.print(f"{status}: {passed} of {len(report.checks)} checks passed ({report.model} on {report.target} vs {report.baseline})")
    return 1 if report.failed else 0
