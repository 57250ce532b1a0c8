"""`hwopt enforce MODEL -o OUT`: prune / cluster / repair an int8 model and report what changed."""

from __future__ import annotations

import argparse
from typing import Any

from hwopt.cli._common import console, fmt_bytes, fmt_int, fmt_pct, print_findings, print_json
from hwopt.cli._target import resolve_target_arg
from hwopt.cli.enforce import EnforceOptions, build_pipeline
from hwopt.engines.enforce import enforce
from hwopt.errors import UsageError


def _pipeline(args: argparse.Namespace, target: Any) -> str:
    """The pipeline text: --pipeline as given, or built from the pass flags."""
    flags = (args.sparsity is not None or args.pattern != "unstructured" or args.clusters is not None
             or args.preserve_sparsity is not None or args.repair or args.bias_correction)
    if args.pipeline:
        if flags:
            raise UsageError("give either --pipeline or the pass flags (--sparsity, --clusters, ...), not both")
        return str(args.pipeline)
    return build_pipeline(EnforceOptions(args.sparsity, args.pattern, args.clusters, args.granularity,
                                         args.preserve_sparsity, args.repair, args.bias_correction, target))



def run(args: argparse.Namespace) -> int:
    target = resolve_target_arg(args.target, accelerator=args.accelerator) if args.target else None
    report = enforce(args.model, args.output, _pipeline(args, target), data=args.data, calibration=args.calibration,
                     target=target, max_drop=args.max_drop, measure_input=args.measure_input)
    if args.json:
        print_json(report)
        return 1 if report.failed else 0
    from rich.table import Table

    con = console()
    con.print(f"[bold]{report.input}[/bold] → {report.output or '(not written)'}")
    con.print(f"pipeline: {report.pipeline}")
    for rec in report.passes:
        brief = {k: v for k, v in rec.stats.items() if not isinstance(v, list | dict)}
        con.print(f"  {rec.spec}: {'modified' if rec.modified else 'unchanged'} {brief}")
    table = Table(show_edge=False, pad_edge=False)
    for col in ("op", "type", "sparsity", "uniq", "uniq/ch", "changed", "entropy bound", "encoded"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for la in report.layers:
        encoded = fmt_bytes(la.encoded_bytes_after)
        if la.encoded_bytes_before is not None:
            encoded = f"{fmt_bytes(la.encoded_bytes_before)} → {encoded}"
        table.add_row(str(la.op_index), la.op, f"{fmt_pct(la.sparsity_before)} → {fmt_pct(la.sparsity_after)}",
                      f"{la.unique_before} → {la.unique_after}",
                      f"{la.max_unique_per_channel_before} → {la.max_unique_per_channel_after}",
                      fmt_int(la.weights_changed),
                      f"{fmt_bytes(la.entropy_bytes_before)} → {fmt_bytes(la.entropy_bytes_after)}", encoded)
    con.print(table)
    if report.encoded is not None:
        e = report.encoded
        con.print(f"entropy bound of the weights: {e.entropy_before:,} → {e.entropy_after:,} bytes")
        if e.target != e.vela_target:  # hwopt's encoder (Ethos-N78); on Ethos-U, Vela's compile is the encode
            con.print(f"encoded weights ({e.source}): " + (f"{e.before:,} → " if e.before is not None else "")
                      + f"{e.after:,} bytes" + (f" ({e.ratio:.2f}x smaller)" if e.ratio else ""))
        if e.vela_after is not None:
            con.print(f"Vela encoded weights ({e.vela_target}): " + (f"{e.vela_before:,} → " if e.vela_before else "")
                      + f"{e.vela_after:,} bytes" + (f" ({e.vela_ratio:.2f}x smaller)" if e.vela_ratio else
                                                     " (the input's too with --measure-input)"))
    f = report.fidelity
    if f is not None:
        outs = ", ".join(f"{o.name}: cosine {o.cosine:.4f}, SNR {o.snr_db:.1f} dB" for o in f.outputs)
        con.print(f"fidelity on {f.samples} {f.source} samples: {outs}")
        if f.top1_agreement is not None:
            con.print(f"top-1 agreement {fmt_pct(f.top1_agreement)}")
        if f.accuracy_before is not None:
            con.print(f"accuracy {fmt_pct(f.accuracy_before)} → {fmt_pct(f.accuracy_after)}")
    print_findings(con, report.findings)
    return 1 if report.failed else 0
