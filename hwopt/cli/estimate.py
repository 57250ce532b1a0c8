"""`hwopt estimate MODEL --target NAME|PATH`: per-layer cycles, SRAM and traffic on a target."""

from __future__ import annotations

from typing import Any

from hwopt.cli import names_ethos_n
from hwopt.preloads import VELA_COMPILE_PRELOAD


def register(sub: Any) -> None:
    p = sub.add_parser("estimate", help="per-layer cycles / SRAM estimate on a target descriptor",
                       description="Estimate per-layer and total cycles, inference time, peak SRAM and off-chip "
                       "traffic of an int8 .tflite on a target (a shipped name, see `hwopt targets`, or a TOML "
                       "descriptor path). Engine vela compiles with Vela in-process (Ethos-U); engine analytic "
                       "uses hwopt's own cost model (Ethos-U and Ethos-N78).")
    p.add_argument("model", help="the .tflite file")
    p.add_argument("--target", required=True, metavar="NAME|PATH", help="target name, descriptor .toml, "
                   "FILE.ini:SYSTEM_CONFIG:MEMORY_MODE (a Vela config) or an MLIA target-profile .toml")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a .ini target (default ethos-u55-256)")
    p.add_argument("--engine", choices=("vela", "analytic"), default=None,
                   help="cost engine (default: vela for Ethos-U, analytic for Ethos-N78)")
    p.add_argument("--system-config", metavar="NAME", help="system configuration of the descriptor to use")
    p.add_argument("--memory-mode", metavar="NAME", help="memory mode of the descriptor to use")
    p.add_argument("--explorer", metavar="DIR", help="also write Google Model Explorer overlays (one node-data JSON "
                   "per metric) into DIR")
    p.add_argument("--json", action="store_true", help="print the hwopt.estimate/1 JSON report")
    # The Vela engine (the Ethos-U default) compiles the model as it is: its worker starts once the flags are
    # parsed and the early step sends it the compile.
    p.set_defaults(handler="hwopt.cli.run_estimate:run", early="hwopt.cli.early:start_estimate",
                   worker=VELA_COMPILE_PRELOAD, worker_if=compiles_with_vela)


def compiles_with_vela(args: Any) -> bool:
    """Whether this estimate compiles with Vela: its engine (the default for an Ethos-U) on a target that is not
    an Ethos-N."""
    return args.engine in (None, "vela") and not names_ethos_n(args.target)
