"""`hwopt check MODEL --target NAME`: where each operator runs, why, and how to move it to the NPU."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="explain which operators run on the NPU or the CPU, and why",
                       description="Per operator: its placement on the target and, for each CPU operator, every "
                       "failing constraint (rule id, the failing values, a fix). Ethos-U targets are cross-checked "
                       "with Vela's own placement. --expect-npu makes any CPU operator a failure (exit 1): the "
                       "firmware-CI '100 %% NPU' gate.")
    p.add_argument("model", help="the .tflite file")
    p.add_argument("--target", required=True, metavar="NAME|PATH", help="target name or descriptor .toml")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a FILE.ini:SYSTEM_CONFIG:MEMORY_MODE "
                   "target (default ethos-u55-256)")
    p.add_argument("--engine", choices=("vela", "analytic"), default=None,
                   help="vela: the support model cross-checked with Vela (default for Ethos-U); analytic: the "
                   "support model alone")
    p.add_argument("--all-targets", action="store_true", help="list, per operator, the shipped targets that run it "
                   "on the NPU")
    p.add_argument("--expect-npu", action="store_true", help="exit 1 when any operator runs on the CPU")
    p.add_argument("--allow-cpu", metavar="OP,...", default="",
                   help="with --expect-npu: operator types allowed on the CPU (e.g. QUANTIZE,DEQUANTIZE)")
    p.add_argument("--json", action="store_true", help="print the hwopt.check/1 JSON report")
    p.set_defaults(handler="hwopt.cli.run_check:run")
