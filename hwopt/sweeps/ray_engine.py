"""The Ray execution engine (optional extra `hwopt[scale]`): the same jobs as Ray tasks, locally or on a cluster.

Each model's bytes (and the data file) are put in Ray's object store once and every task
gets a reference, so a model crosses the network once per node, not once per job. Ray
retries a task whose worker process or node dies (`max_retries`); a job's own errors are
already failed outcomes, never exceptions, so Ray never retries those.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from hwopt.errors import UsageError
from hwopt.sweeps.job import Job, execute
from hwopt.sweeps.local import MAX_ATTEMPTS, Done
from hwopt.sweeps.records import Outcome

log = logging.getLogger(__name__)


def _ray() -> Any:
    # ray is an optional extra, imported only when a sweep asks for it
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs the optional extra: pip install 'hwopt[scale]'") from None
    return ray


class RayEngine:
    """Jobs as Ray tasks; connects to `address` (or RAY_ADDRESS), else starts a local Ray instance."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.retried = 0
        self.tasks = 0

    def _connect(self, ray: Any) -> bool:
        """Initialise Ray unless the caller already did; True when this engine owns the connection."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False, "include_dashboard": False}
        if self.address:
            kwargs["address"] = self.address
        elif self.num_cpus:
            kwargs["num_cpus"] = self.num_cpus
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray instance"
            raise UsageError(f"cannot connect to {where}: {exc}") from None
        return True

    def run(self, jobs: Sequence[Job], blobs: Mapping[str, bytes], done: Done) -> None:
        ray = _ray()
        owned = self._connect(ray)
        try:
            needed = {j.model_sha for j in jobs} | {j.data_sha for j in jobs if j.data_sha}
            refs = {sha: ray.put(blobs[sha]) for sha in sorted(needed)}
            task = ray.remote(num_cpus=1, max_retries=MAX_ATTEMPTS - 1, retry_exceptions=False)(execute)
            pending: dict[Any, Job] = {}
            for job in jobs:
                data_ref = refs[job.data_sha] if job.data_sha else None
                pending[task.remote(job, refs[job.model_sha], data_ref)] = job
            self.tasks += len(pending)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        outcome: Outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # worker or node lost beyond the retries
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        outcome = Outcome.failure(job.key, f"ray task failed: {type(exc).__name__}: {first}",
                                                  cacheable=False)
                    done(outcome)
        finally:
            if owned:
                ray.shutdown()
