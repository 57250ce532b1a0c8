"""`hwopt targets`: the shipped target descriptors and their key numbers (`import` / `export`: see targets_io)."""

from __future__ import annotations

from typing import Any

from hwopt.cli import targets_io


def register(sub: Any) -> None:
    p = sub.add_parser("targets", help="list the shipped target descriptors",
                       description="List the shipped NPU target descriptors with their MACs, clock, SRAM and "
                       "default system configuration / memory mode.")
    p.add_argument("--json", action="store_true", help="print the hwopt.targets/1 JSON list")
    p.set_defaults(handler="hwopt.cli.run_targets:run")
    targets_io.register(p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p)))
