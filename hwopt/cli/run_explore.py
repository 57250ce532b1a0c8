"""`hwopt explore MODEL --target NAME`: the model in Google Model Explorer with hwopt's per-layer overlays."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hwopt.engines.estimate import estimate
from hwopt.errors import UsageError
from hwopt.format.tflite_io import read_model
from hwopt.reports.explorer import write_overlays
from hwopt.targets import resolve_target

HOST = "127.0.0.1"  # local only: the server reads files from this machine




def _check_port(port: int) -> None:
    """UsageError unless `port` is a valid port free on 127.0.0.1 (Model Explorer would exit 1 on a busy one)."""
    import socket


    if not 0 < port < 65536:
        raise UsageError(f"--port must be 1..65535, got {port}")
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            raise UsageError(f"port {port} is in use on {HOST}; pick another with --port") from None



def run(args: argparse.Namespace) -> int:
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
