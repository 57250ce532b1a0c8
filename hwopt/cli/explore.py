"""`hwopt explore MODEL --target NAME`: the model in Google Model Explorer with hwopt's per-layer overlays."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # local only: the server reads files from this machine


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
    p.set_defaults(func=run)


def _check_port(port: int) -> None:
    """UsageError unless `port` is a valid port free on 127.0.0.1 (Model Explorer would exit 1 on a busy one)."""
    import socket

    from hwopt.errors import UsageError

    if not 0 < port < 65536:
        raise UsageError(f"--port must be 1..65535, got {port}")
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            raise UsageError(f"port {port} is in use on {HOST}; pick another with --port") from None


def run(args: argparse.Namespace) -> int:
    from hwopt.engines.estimate import estimate
    from hwopt.errors import UsageError
    from hwopt.format.tflite_io import read_model
    from hwopt.reports.explorer import write_overlays
    from hwopt.targets import resolve_target

    if args.port is not None:
        _check_port(args.port)
    try:  # optional extra: imported here so that hwopt runs without it
        import model_explorer
    except ImportError:
        raise UsageError("hwopt explore needs Model Explorer: pip install 'hwopt[explorer]'") from None
    target = resolve_target(args.target, accelerator=args.accelerator, system_config=args.system_config,
                            memory_mode=args.memory_mode)
    model = read_model(args.model)
    report = estimate(model, target, engine=args.engine)
    with tempfile.TemporaryDirectory(prefix="hwopt-explore-") as tmp:
        out = Path(args.explorer) if args.explorer else Path(tmp)
        paths = write_overlays(out, model, report.layers, protect=(Path(args.model),))
        config = model_explorer.config().add_model_from_path(str(Path(args.model).resolve()))
        for path in paths:
            config.add_node_data_from_path(str(path.resolve()))
        extra = {"port": args.port} if args.port is not None else {}
        model_explorer.visualize_from_config(config, host=HOST, no_open_in_browser=args.no_browser, **extra)
    return 0
