"""`hwopt tree -o DIR`: grow TFMOT's collaborative-optimization tree and check every int8 leaf."""

from __future__ import annotations

import argparse
import sys

from hwopt.cli._common import console, print_json
from hwopt.cli._target import resolve_target_arg
from hwopt.tree import TreeOptions, run_tree, write_tree
from hwopt.tree._tf import require
from hwopt.tree.report import LEAF_COLUMNS, family_rows, leaf_rows, sparsity_promise
from hwopt.tree.runner import check_output_dir, validate
from hwopt.tree.techniques import FAMILIES


def _progress(message: str) -> None:
    sys.stderr.write(f"hwopt: tree: {message}\n")
    sys.stderr.flush()



def run(args: argparse.Namespace) -> int:
    options = TreeOptions(model=args.model, data=args.data, target=resolve_target_arg(args.target), epochs=args.epochs,
                          quick=args.quick, seed=args.seed, metrics=args.metrics)
    validate(options)  # bad input fails here, before TensorFlow loads
    check_output_dir(args.output)

    require()
    result = run_tree(options, progress=None if args.json else _progress)
    out = write_tree(result, args.output, protect=(args.model, args.data))
    report = result.report
    if args.json:
        print_json(report)
        return 1 if report.failed else 0
    from rich.markup import escape
    from rich.table import Table


    con = console()
    con.print(f"[bold]{report.model}[/bold] on {report.dataset} ({report.train_examples} train / "
              f"{report.test_examples} held-out), target {report.target}, NPU figures from {report.metrics_source}")
    for title, names in FAMILIES:
        header, rows = family_rows(report, names)
        table = Table(title=title, show_edge=False, pad_edge=False, title_justify="left")
        for i, col in enumerate(header):
            table.add_column(col, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*[_style(c) for c in row])
        con.print(table)
    table = Table(title="All leaves", show_edge=False, pad_edge=False, title_justify="left")
    for i, col in enumerate(LEAF_COLUMNS):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in leaf_rows(report):
        table.add_row(*[_style(c) for c in row])
    con.print(table)
    for leaf in report.leaves:
        if promise := sparsity_promise(leaf):
            con.print(f"{leaf.name}: {escape(promise)}")
    for leaf in report.leaves:
        for msg in leaf.broken:
            con.print(f"[bold red]error[/] {leaf.name}: {escape(msg)}", markup=True)
    con.print(f"Pareto-optimal (encoded bytes, cycles, INT8 top-1): {', '.join(report.pareto) or 'none'}")
    con.print(f"wrote {len(result.files)} leaves, tree.json and tree.md to {out} in {result.seconds:.0f} s")
    return 1 if report.failed else 0



def _style(cell: str) -> str:
    from rich.markup import escape

    if cell.startswith("FAIL"):
        return f"[bold red]{escape(cell)}[/]"
    if cell == "pass":
        return "[green]pass[/]"
    return escape(cell)
