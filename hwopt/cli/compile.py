"""`hwopt compile [MODEL] --target NAME -o DIR`: audit, enforce pipeline, Vela, report."""

from __future__ import annotations

from typing import Any

from hwopt.preloads import VELA_COMPILE_PRELOAD


def register(sub: Any) -> None:
    p = sub.add_parser("compile", help="compile for an Ethos-U target through Vela and write a report",
                       description="Audit the model, run an optional enforce pipeline, compile it with Vela for the "
                       "target and write <model>_<target>.tflite, report.json, report.md, report.html and per_layer.csv. "
                       "Without MODEL the bundled example model is compiled.")
    p.add_argument("model", nargs="?", help="the int8 .tflite file (default: the bundled example model)")
    p.add_argument("--target", required=True, help="target name (see hwopt targets), a descriptor .toml, "
                   "FILE.ini:SYSTEM_CONFIG:MEMORY_MODE (a Vela config) or an MLIA target-profile .toml")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a .ini target (default ethos-u55-256)")
    p.add_argument("-o", "--output", default="hwopt-out", metavar="DIR", help="output directory (default: hwopt-out)")
    p.add_argument("--pipeline", metavar="SPEC", help="enforce pipeline, e.g. 'prune{sparsity=0.5},cluster{k=16}'")
    p.add_argument("--data", metavar="NPZ", help="inputs (and labels) for the pipeline's fidelity check")
    p.add_argument("--system-config", help="system configuration of the descriptor (default: the target's)")
    p.add_argument("--memory-mode", help="memory mode of the descriptor (default: the target's)")
    p.add_argument("--explorer", metavar="DIR", help="also write Google Model Explorer overlays (one node-data JSON "
                   "per metric) into DIR")
    p.add_argument("--exact-deflate", action="store_true", help="compress the whole input for its exact DEFLATE size "
                   "(files over 1 MiB otherwise get a sampled estimate with a stated error bound)")
    p.add_argument("--json", action="store_true", help="print report.json to stdout as well")
    p.set_defaults(handler="hwopt.cli.run_compile:run", worker=VELA_COMPILE_PRELOAD, early="hwopt.cli.early:start_compile")
