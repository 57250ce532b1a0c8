"""`hwopt enforce MODEL -o OUT`: prune / cluster / repair an int8 model and report what changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwopt.errors import UsageError
from hwopt.preloads import VELA_PRELOAD

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
                       "entropy bound before and after, and the encoded bytes of the new model (of both with "
                       "--measure-input). The flags build a pipeline; --pipeline gives one directly.")
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
    p.add_argument("--measure-input", action="store_true",
                   help="also encode and compile the input model, for encoded bytes before and after (a second "
                   "encode and Vela run; by default only the new model is, the input gets its entropy bound)")
    p.add_argument("--json", action="store_true", help="print the hwopt.enforce/1 JSON report")
    p.set_defaults(handler="hwopt.cli.run_enforce:run", worker=VELA_PRELOAD)  # LiteRT: a worker of its own
