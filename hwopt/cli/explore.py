"""`hwopt explore MODEL --target NAME`: the model in Google Model Explorer with hwopt's per-layer overlays."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("explore", help="open the model in Model Explorer with per-layer cost overlays",
                       description="Estimate the model on a target, write Model Explorer overlays (cycles, share of "
                       "cycles, encoded weight bytes, bits/weight, sparsity, distinct values per channel, placement, "
                       "bound-by) and start Model Explorer on 127.0.0.1 with them loaded. Needs the optional extra "
                       "hwopt[explorer] (ai-edge-model-explorer). Stop it with Ctrl-C.")
    p.add_argument("model", help="the .tflite file")
    p.add_argument("--target", required=True, metavar="NAME|PATH", help="target name, descriptor, "
                   "FILE.ini:SYSTEM_CONFIG:MEMORY_MODE or MLIA profile")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a .ini target")
    p.add_argument("--engine", choices=("vela", "analytic"), default=None, help="cost engine (default: the target's)")
    p.add_argument("--system-config", metavar="NAME", help="system configuration of the target")
    p.add_argument("--memory-mode", metavar="NAME", help="memory mode of the target")
    p.add_argument("--explorer", metavar="DIR", help="keep the overlay files in DIR (default: a temporary folder)")
    p.add_argument("--port", type=int, default=None, help="port of the local server (default: 8080, or the next "
                   "free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.set_defaults(handler="hwopt.cli.run_explore:run")
