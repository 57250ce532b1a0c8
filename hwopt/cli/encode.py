"""`hwopt encode MODEL --target T`: re-encode the weights in the NPU's format, layer by layer."""

from __future__ import annotations

from typing import Any

from hwopt.cli import names_ethos_n
from hwopt.preloads import VELA_PRELOAD


def register(sub: Any) -> None:
    p = sub.add_parser("encode", help="re-encode weights in the target NPU's weight format",
                       description="Encode every weight layer in the target's weight-stream format (Ethos-U55/U65 "
                       "MLW, Ethos-U85 MLW or Fast Weight, Ethos-N78 weight blob), check each round trip and "
                       "report bits/weight against the order-0 entropy bound.")
    p.add_argument("model", help="the int8 .tflite file")
    p.add_argument("--target", required=True, metavar="NAME|PATH", help="target name (see `hwopt targets`) or descriptor file")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a FILE.ini:SYSTEM_CONFIG:MEMORY_MODE "
                   "target (default ethos-u55-256)")
    p.add_argument("--json", action="store_true", help="print the hwopt.encode/1 JSON report")
    p.add_argument("--emit", metavar="DIR", help="write one stream file per layer and index.json into DIR")
    p.add_argument("--blocks", choices=("rule", "vela"), default=None,
                   help="Ethos-U block configuration: Vela's own (default; compiles the model with Vela, takes its "
                   "streams, each checked, and reports Vela's total), or hwopt's block search, the configuration Vela "
                   "chooses, without compiling (the fallback when Vela rejects the model)")
    p.add_argument("--streams", choices=("vela", "hwopt"), default="vela",
                   help="with Vela's blocks, where the streams come from: Vela's compiled model (default; each "
                   "checked against the weights in the NPU's order) or hwopt's own encoder for every layer")
    # `--blocks vela` (the Ethos-U default) needs Vela and the isolation worker that runs it: the worker starts
    # as soon as the flags are parsed, and the early step sends it the compile once the target is known.
    # Nothing to clean up once the report is out (the worker stops in the CLI before it): no interpreter teardown.
    p.set_defaults(handler="hwopt.cli.run_encode:run", early="hwopt.cli.early:start_encode", fast_exit=True,
                   worker=VELA_PRELOAD, worker_if=compiles_with_vela)


def compiles_with_vela(args: Any) -> bool:
    """Whether this encode compiles with Vela: Vela's blocks (the default) on a target that is not an Ethos-N."""
    return args.blocks in (None, "vela") and not names_ethos_n(args.target)
