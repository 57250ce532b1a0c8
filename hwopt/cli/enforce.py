"""`hwopt enforce MODEL -o OUT`: prune / cluster / repair an int8 model and report what changed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwopt.errors import UsageError

if TYPE_CHECKING:
    from hwopt.targets import Target


@dataclass(frozen=True)
class EnforceOptions:
    """The command-line flags of `hwopt enforce`, turned into a pipeline by `build_pipeline`."""

    sparsity: float | None = None
    pattern: str = "unstructured"
    clusters: int | None = None
    granularity: str = "stream"
    preserve_sparsity: bool | None = None  # None: keep zeros when pruning and clustering together
    repair: bool = False
    bias_correction: bool = False
    target: Target | None = None

    def __post_init__(self) -> None:
        if self.sparsity is not None and not 0.0 <= self.sparsity <= 1.0:
            raise UsageError(f"--sparsity must lie in [0, 1], got {self.sparsity}")
        if self.pattern not in ("unstructured", "2:4", "block"):
            raise UsageError(f"--pattern must be unstructured, 2:4 or block, got {self.pattern!r}")
        if self.clusters is not None and not 1 <= self.clusters <= 256:
            raise UsageError(f"--clusters must lie in 1..256, got {self.clusters}")
        if self.granularity not in ("tensor", "channel", "stream"):
            raise UsageError(f"--granularity must be tensor, channel or stream, got {self.granularity!r}")


def build_pipeline(opts: EnforceOptions) -> str:
    """Pipeline text for the flags: prune → cluster → repair → bias-correct."""
    steps: list[str] = []
    if opts.sparsity is not None or opts.pattern != "unstructured":
        args = [f"pattern={opts.pattern}"] if opts.pattern != "unstructured" else []
        if opts.sparsity is not None and not (opts.pattern == "2:4" and opts.sparsity == 0.5):
            args.insert(0, f"sparsity={opts.sparsity!r}")
        steps.append("prune" + (f"{{{','.join(args)}}}" if args else ""))
    if opts.clusters is not None:
        args = [f"k={opts.clusters}", f"granularity={opts.granularity}"]
        if opts.preserve_sparsity is not None:
            args.append(f"preserve_zero={str(opts.preserve_sparsity).lower()}")
        if opts.target:
            args.append(f"target={opts.target.spec}")
        steps.append(f"cluster{{{','.join(args)}}}")
    if opts.repair:
        args = [f"k={opts.clusters}"] if opts.clusters is not None else []
        args.append(f"granularity={opts.granularity if opts.granularity != 'stream' or opts.target else 'tensor'}")
        if opts.target:
            args.append(f"target={opts.target.spec}")
        steps.append(f"repair{{{','.join(args)}}}")
    if opts.bias_correction:
        steps.append("bias-correct")
    if not steps:
        raise UsageError("nothing to enforce: give --sparsity, --pattern, --clusters, --repair or --pipeline")
    return ",".join(steps)


def register(sub: Any) -> None:
    p = sub.add_parser("enforce", help="impose sparsity and clusters on an int8 .tflite, with fidelity checks",
                       description="Run structure passes (prune, cluster, repair, bias-correct) on an int8 TFLite model, "
                       "check the result in LiteRT and Vela, and report per-layer sparsity, distinct values and "
                       "Ethos-U encoded bytes before and after. The flags build a pipeline; --pipeline gives one directly.")
    p.add_argument("model", help="the input .tflite file (never modified)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the new .tflite")
    p.add_argument("--pipeline", metavar="SPEC", help="pass pipeline, e.g. 'prune{sparsity=0.5},cluster{k=16,granularity=stream}'")
    p.add_argument("--sparsity", type=float, metavar="F", help="prune to this fraction of zeros per layer")
    p.add_argument("--pattern", choices=("unstructured", "2:4", "block"), default="unstructured", help="pruning pattern")
    p.add_argument("--clusters", type=int, metavar="K", help="at most K distinct values per group (1..256)")
    p.add_argument("--granularity", choices=("tensor", "channel", "stream"), default="stream",
                   help="what shares the K values: the tensor, each output channel, or each Ethos-U weight stream (default)")
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("--preserve-sparsity", action="store_true", default=None,
                      help="clustering keeps zero as a centroid and never moves a zero (the default after --sparsity)")
    keep.add_argument("--no-preserve-sparsity", dest="preserve_sparsity", action="store_false", default=None,
                      help="let clustering move pruned zeros (the sparsity promise is still checked)")
    p.add_argument("--repair", action="store_true", help="restore split clusters and re-zero drifted near-zeros")
    p.add_argument("--bias-correction", action="store_true", help="correct int32 biases for the mean output shift (needs --data)")
    p.add_argument("--target", metavar="NAME", help="Ethos-U target (e.g. ethos-u55-128): weight streams and encoded bytes")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a FILE.ini:SYSTEM_CONFIG:MEMORY_MODE "
                   "target (default ethos-u55-256)")
    p.add_argument("--data", metavar="NPZ", help="inputs (by name or in order, batch first) and optional 'labels' for fidelity")
    p.add_argument("--calibration", metavar="NPZ", help="inputs for bias correction (default: --data)")
    p.add_argument("--max-drop", type=float, metavar="F",
                   help="fail (exit 1, nothing written) if accuracy drops by more than F (fraction; without labels: top-1 disagreement)")
    p.add_argument("--json", action="store_true", help="print the hwopt.enforce/1 JSON report")
    p.set_defaults(func=run)


def _pipeline(args: argparse.Namespace, target: Any) -> str:

    flags = (args.sparsity is not None or args.pattern != "unstructured" or args.clusters is not None
             or args.preserve_sparsity is not None or args.repair or args.bias_correction)
    if args.pipeline:
        if flags:
            raise UsageError("give either --pipeline or the pass flags (--sparsity, --clusters, ...), not both")
        return str(args.pipeline)
    return build_pipeline(EnforceOptions(args.sparsity, args.pattern, args.clusters, args.granularity,
                                         args.preserve_sparsity, args.repair, args.bias_correction, target))


def run(args: argparse.Namespace) -> int:
    from hwopt.cli._common import console, fmt_bytes, fmt_int, fmt_pct, print_findings, print_json, resolve_target_arg
    from hwopt.engines.enforce import enforce

    target = resolve_target_arg(args.target, accelerator=args.accelerator) if args.target else None
    report = enforce(args.model, args.output, _pipeline(args, target), data=args.data, calibration=args.calibration,
                     target=target, max_drop=args.max_drop)
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
    for col in ("op", "type", "sparsity", "uniq", "uniq/ch", "changed", "encoded"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for la in report.layers:
        table.add_row(str(la.op_index), la.op, f"{fmt_pct(la.sparsity_before)} → {fmt_pct(la.sparsity_after)}",
                      f"{la.unique_before} → {la.unique_after}",
                      f"{la.max_unique_per_channel_before} → {la.max_unique_per_channel_after}",
                      fmt_int(la.weights_changed), f"{fmt_bytes(la.encoded_bytes_before)} → {fmt_bytes(la.encoded_bytes_after)}")
    con.print(table)
    if report.encoded is not None:
        e = report.encoded
        con.print(f"encoded weights ({e.source}): {e.before:,} → {e.after:,} bytes ({e.ratio:.2f}x smaller)")
        if e.vela_before is not None and e.vela_after is not None:
            con.print(f"Vela encoded weights ({e.vela_target}): {e.vela_before:,} → {e.vela_after:,} bytes "
                      f"({e.vela_ratio or 0:.2f}x smaller)")
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
