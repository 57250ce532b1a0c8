"""`hwopt gate MODEL --target NAME --baseline FILE`: regression gate for firmware builds."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("gate", help="fail (exit 1) when a model regresses against a committed baseline",
                       description="Measure the model on the target (Vela + audit), compare totals and every layer "
                       "with the baseline under the tolerances, print each violation and exit 1 on any. "
                       "--update-baseline rewrites the baseline instead.")
    p.add_argument("model", help="the int8 .tflite file")
    p.add_argument("--target", required=True, help="Ethos-U target name or descriptor .toml")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a FILE.ini:SYSTEM_CONFIG:MEMORY_MODE "
                   "target (default ethos-u55-256)")
    p.add_argument("--baseline", required=True, metavar="FILE", help="baseline JSON (hwopt.baseline/1)")
    p.add_argument("--update-baseline", action="store_true", help="write the current figures as the new baseline")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report, one testcase per check")
    p.add_argument("--max-cycles-increase", type=float, default=5.0, metavar="PCT", help="per total and per layer (default 5)")
    p.add_argument("--max-sram-increase", type=float, default=5.0, metavar="PCT", help="peak SRAM vs baseline (default 5)")
    p.add_argument("--max-flash-increase", type=float, default=5.0, metavar="PCT", help="flash and encoded weights vs baseline (default 5)")
    p.add_argument("--max-sram", type=int, metavar="BYTES", help="absolute SRAM budget")
    p.add_argument("--max-flash", type=int, metavar="BYTES", help="absolute flash budget")
    p.add_argument("--min-sparsity", type=float, metavar="F", help="minimum weight sparsity of the model")
    p.add_argument("--max-unique-per-channel", type=int, metavar="N", help="maximum distinct values per output channel")
    p.add_argument("--max-fidelity-drop", type=float, metavar="F", help="allowed top-1 drop vs the baseline (needs --data)")
    p.add_argument("--data", metavar="NPZ", help="inputs (and labels) for the fidelity check")
    p.add_argument("--system-config", help="system configuration of the descriptor")
    p.add_argument("--memory-mode", help="memory mode of the descriptor")
    p.add_argument("--json", action="store_true", help="print the hwopt.gate/1 JSON report")
    p.set_defaults(handler="hwopt.cli.run_gate:run")
