"""`hwopt encode MODEL --target T`: re-encode the weights in the NPU's format, layer by layer."""

from __future__ import annotations

import argparse
from pathlib import Path

from hwopt.cli._common import console, fmt_int, print_json, warm_tables
from hwopt.cli._target import resolve_target_arg
from hwopt.engines.encode import emit, encode


def run(args: argparse.Namespace) -> int:
    target = resolve_target_arg(args.target, accelerator=args.accelerator)
    if not args.json:
        warm_tables()
    # The command ends after this encode: the worker may stop as soon as nothing is left for it.
    report = encode(args.model, target, block_source=args.blocks, streams=args.streams, keep_worker=False)
    if args.emit:
        emit(report, args.emit, protect=(Path(args.model),))
    if not report.summary.roundtrip_ok:
        # A stream that does not decode to its input is a bug in hwopt, never the user's input.
        import sys

        sys.stderr.write("hwopt: internal error: a weight stream failed its round trip\n")
        if args.json:
            print_json(report)
        return 3
    if args.json:
        print_json(report)
        return 0
    from rich.table import Table

    con = console()
    s = report.summary
    con.print(f"[bold]{report.model}[/bold]  target {report.target} ({report.family}), blocks: {report.block_source}")
    table = Table(show_edge=False, pad_edge=False)
    for col, just in (("sg", "right"), ("op", "right"), ("type", "left"), ("weights", "right"), ("raw B", "right"),
                      ("encoded B", "right"), ("bits/w", "right"), ("entropy", "right"), ("ratio", "right"),
                      ("sparsity", "right"), ("distinct", "right"), ("format", "left"), ("round trip", "center")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for la in report.layers:
        if not la.encodable:
            table.add_row(str(la.subgraph), str(la.op_index), la.op, fmt_int(la.elements), fmt_int(la.raw_bytes),
                          "-", "-", "-", "-", "-", "-", f"[yellow]not encodable: {la.reason}[/]", "-")
            continue
        table.add_row(str(la.subgraph), str(la.op_index), la.op, fmt_int(la.elements), fmt_int(la.raw_bytes),
                      fmt_int(la.encoded_bytes), f"{la.bits_per_weight:.2f}", f"{la.entropy_bits_per_weight:.2f}",
                      "-" if la.entropy_ratio is None else f"{la.entropy_ratio:.2f}", f"{100 * la.sparsity:.1f}%",
                      fmt_int(la.distinct_values), la.format or "-", "ok" if la.roundtrip_ok else "[red]FAIL[/]")
    con.print(table)
    line = (f"{s.encodable_layers}/{s.layers} layers encoded: {s.raw_bytes:,} -> {s.encoded_bytes:,} bytes, "
            f"{s.bits_per_weight:.2f} bits/weight (entropy bound {s.entropy_bits_per_weight:.2f})")
    if s.fast_layers:
        line += f", {s.fast_layers} in Fast Weight format"
    con.print(line)
    if s.vela_encoded_bytes is not None and s.vela_delta is not None:
        con.print(f"Vela encodes {s.vela_encoded_bytes:,} bytes ({100 * s.vela_delta:+.2f}% ours vs Vela)")
    if args.emit:
        con.print(f"streams written to {args.emit}")
    return 0
