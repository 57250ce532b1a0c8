"""`hwopt audit MODEL`: per-layer sparsity and cluster structure of the deployed file."""

from __future__ import annotations

import argparse

from hwopt.analysis.deflate_core import compress_file


def run(args: argparse.Namespace) -> int:
    """Audit the model and print the report (table or JSON); 1 when an expectation fails."""
    # Compress the file for its DEFLATE size in a child forked before numpy, dataclasses or the
    # analysis load (a small process to fork, started early) while they import and run; a thread
    # would wait for the GIL between its zlib calls (dozens for a sampled size) while imports hold it.
    job = None if args.no_deflate else compress_file(args.model, exact=args.exact_deflate)
    try:
        from hwopt.cli import _common as common  # lazy: numpy (records) loads after the fork above
        from hwopt.engines.audit import Expectations, audit  # lazy: loads while the DEFLATE job above compresses

        exp = Expectations(args.expect_sparsity, args.expect_clusters, args.per_channel, args.expect_int8)
        report = audit(args.model, exp, prefetched=job, with_deflate=not args.no_deflate,
                       exact_deflate=args.exact_deflate)
    except BaseException:
        if job is not None:
            job.cancel()  # bad input (or an interrupt): no compressed size is wanted
        raise
    if args.json:
        common.print_json(report)
        return 1 if report.failed else 0
    from rich.table import Table

    con = common.console()
    m, s = report.model, report.summary
    deflate = "" if m.deflate is None else f"DEFLATE {common.fmt_deflate(m.deflate)}, "
    con.print(f"[bold]{m.path}[/bold]  {m.bytes:,} bytes, {deflate}"
              f"{m.operators} operators in {m.subgraphs} subgraph(s)" + ("  [yellow](compiled by Vela)[/]" if m.vela_compiled else ""))
    table = Table(show_edge=False, pad_edge=False)
    for col, just in (("sg", "right"), ("op", "right"), ("type", "left"), ("shape", "left"), ("dtype", "left"),
                      ("quant", "left"), ("sparsity", "right"), ("zero ch", "right"), ("uniq", "right"),
                      ("uniq/ch", "right"), ("palette", "right"), ("2:4", "center"), ("MACs", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for la in report.layers:
        table.add_row(str(la.subgraph), str(la.op_index), la.op, "x".join(map(str, la.shape)), la.dtype,
                      la.quantization, common.fmt_pct(la.sparsity), common.fmt_int(la.zero_channels), common.fmt_int(la.unique_values),
                      common.fmt_int(la.max_unique_per_channel), "-" if la.palette is None else f"<={la.palette}",
                      {True: "yes", False: "no", None: "-"}[la.sparse_2_4], common.fmt_int(la.macs))
    con.print(table)
    con.print(f"{s.layers} weight layers, {s.weight_elements:,} weights, sparsity {common.fmt_pct(s.sparsity)}, "
              f"max {s.max_unique_per_channel} distinct per channel, {s.macs:,} MACs")
    common.print_findings(con, report.findings)
    return 1 if report.failed else 0
