"""`hwopt sweep SPEC -o DIR`: models × enforce pipelines × targets, cached and resumable, locally or on Ray."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("sweep", help="models × pipelines × targets in one command, with Pareto fronts",
                       description="Run every (model, enforce pipeline, target) job: enforce → encode → estimate "
                       "(Vela for Ethos-U, analytic for Ethos-N78) → fidelity when data is given. Results are cached "
                       "by content in DIR/cache, so a rerun or --resume computes only what is missing. Writes "
                       "sweep.json, sweep.csv, sweep.md and sweep.html (Pareto fronts) into DIR.")
    p.add_argument("spec", nargs="?", metavar="SPEC", help="TOML: models, targets, [pipelines], data, engine")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the reports and the cache")
    p.add_argument("--model", action="append", default=[], metavar="M", help="a model path, glob or hwopt tree folder (repeatable)")
    p.add_argument("--target", action="append", default=[], metavar="T", help="a target name or descriptor path (repeatable)")
    p.add_argument("--pipeline", action="append", default=[], metavar="NAME=SPEC",
                   help="a named enforce pipeline, e.g. p50='prune{sparsity=0.5}' (repeatable; default none=none)")
    p.add_argument("--data", metavar="NPZ", help="inputs (and labels) for fidelity")
    p.add_argument("--engine", choices=("auto", "vela", "analytic"), default=None,
                   help="estimate engine (default auto: vela for Ethos-U, analytic for Ethos-N78)")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: one per CPU; 1 runs in-process)")
    p.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                   help="run the jobs as Ray tasks: on ADDRESS, or RAY_ADDRESS, or a local Ray instance (needs hwopt[scale])")
    p.add_argument("--cache", metavar="DIR", help="result cache folder (default: DIR/cache; share it between sweeps)")
    p.add_argument("--resume", action="store_true", help="continue the sweep recorded in DIR (SPEC may be omitted)")
    p.add_argument("--json", action="store_true", help="print the hwopt.sweep/1 JSON report")
    p.set_defaults(handler="hwopt.cli.run_sweep:run")
