"""`hwopt sweep`: models × enforce pipelines × targets, cached, on a process pool or a Ray cluster.

The package name is plural so that `hwopt.sweep` stays the API function.
"""

from hwopt.sweeps.records import SCHEMA, Outcome, Pareto, ParetoPoint, Status, SweepFidelity, SweepRecord, SweepReport
from hwopt.sweeps.runner import Progress, SweepResult, default_engine, load_resume_spec, run_sweep
from hwopt.sweeps.spec import SweepSpec, build_spec, load_spec

__all__ = ["SCHEMA", "Outcome", "Pareto", "ParetoPoint", "Progress", "Status", "SweepFidelity", "SweepRecord",
           "SweepReport", "SweepResult", "SweepSpec", "build_spec", "default_engine", "load_resume_spec", "load_spec",
           "run_sweep"]
