"""`hwopt targets import` / `hwopt targets export`: vela.ini and MLIA profiles in, vela.ini out."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("import", help="convert a vela.ini system config or an MLIA target profile to a descriptor",
                       description="Write a hwopt target descriptor (TOML) equivalent to one system config and memory "
                       "mode of a Vela .ini file on an accelerator, or to an MLIA Ethos-U target profile. The "
                       "descriptor extends the shipped accelerator where it can.")
    p.add_argument("source", metavar="FILE", help="a vela .ini (optionally FILE.ini:SYSTEM_CONFIG:MEMORY_MODE) or an "
                   "MLIA target-profile .toml")
    p.add_argument("--system-config", metavar="NAME", help="the [System_Config.NAME] section to take")
    p.add_argument("--memory-mode", metavar="NAME", help="the [Memory_Mode.NAME] section to take")
    p.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator, e.g. ethos-u55-128 (default: Vela's own "
                   "default, ethos-u55-256; an MLIA profile names its own)")
    p.add_argument("--name", help="name of the new target (default: from the file and sections)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.toml", help="descriptor to write")
    p.set_defaults(handler="hwopt.cli.run_targets_io:run_import")

    e = sub.add_parser("export", help="write a target's system config and memory mode as a vela.ini",
                       description="Write the selected system config and memory mode of a target as a Vela .ini, so "
                       "that `vela --config FILE.ini --system-config S --memory-mode M --accelerator-config A` "
                       "compiles for the same target.")
    e.add_argument("target", metavar="NAME|PATH", help="a shipped target, a descriptor, a vela.ini spelling or an "
                   "MLIA profile")
    e.add_argument("--vela-ini", action="store_true", required=True, help="write a Vela configuration file")
    e.add_argument("--system-config", metavar="NAME", help="system configuration (default: the target's)")
    e.add_argument("--memory-mode", metavar="NAME", help="memory mode (default: the target's)")
    e.add_argument("--accelerator", metavar="CONFIG", help="Vela accelerator for a vela.ini target spelling")
    e.add_argument("-o", "--output", required=True, metavar="FILE.ini", help="the .ini to write")
    e.set_defaults(handler="hwopt.cli.run_targets_io:run_export")
