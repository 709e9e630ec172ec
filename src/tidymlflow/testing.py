"""Testing a layer without a tracking store: capture the jobs calls hand over, as typed records.

As OpenTelemetry's tests use an in-memory exporter, a layer's tests can check what a call
recorded (its runs, params, metrics, tags, tables and plots) without MLflow::

    import tidymlflow
    from tidymlflow.testing import capture

    tidymlflow.autolog()
    with capture() as jobs:
        wf.fit(train)
        (run,) = jobs.runs("Workflow.fit")
        assert run.params["model.engine"] == "sklearn"
        stats = jobs.table(run, "tidymodels/stats.parquet")  # the staged DataFrame

Inside the block nothing reaches the writer: each job stays in the journal until the block
ends, and is removed then (read its tables inside the block).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidymlflow._jobs import handover
from tidymlflow._jobs import journal as _journal
from tidymlflow._jobs.records import Manifest, RunRecord, inside

__all__ = ["CapturedJobs", "capture"]


@dataclass
class CapturedJobs:
    """The jobs handed over inside :func:`capture`, in order, as (job folder, manifest); a
    :class:`~tidymlflow._jobs.handover.Writer` that writes nothing."""

    jobs: list[tuple[str, Manifest]] = field(default_factory=list)
    synchronous: bool = True
    flushed: int = 0

    # -- what a test reads -------------------------------------------------------------------------
    @property
    def manifests(self) -> list[Manifest]:
        """Every job's manifest, in the order the calls ended."""
        return [m for _, m in self.jobs]

    def runs(self, call: str | None = None) -> list[RunRecord]:
        """The runs the calls named ``call`` (every call when None) recorded, parents first."""
        return [r for m in self.manifests if call is None or m.call == call for r in m.runs]

    def table(self, run: RunRecord, relative: str) -> Any:
        """A table a run logged (``tidymodels/stats.parquet``), as the DataFrame that was staged."""
        import pandas as pd

        if relative not in run.tables:
            raise KeyError(f"run {run.name!r} logged no table {relative!r}; it has {sorted(run.tables)}")
        return pd.read_parquet(inside(self._job_of(run), f"{run.files}/{relative}"))

    def _job_of(self, run: RunRecord) -> str:
        return next(job for job, m in self.jobs if any(r is run for r in m.runs))

    # -- the writer's side (handover.Writer) ----------------------------------------------------------
    def submit(self, job: str, handles: Sequence[str], call: str) -> list[str]:
        self.jobs.append((job, _journal.manifest(job)))
        return []

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def pending(self) -> bool:
        return False

    def outstanding(self) -> int:
        """None: every call's tables are read in the process, into its job, as without a backlog."""
        return 0

    def run_id(self, handle: str, timeout: float | None = None) -> str | None:
        return handle[4:] if handle.startswith("run:") else None

    def written(self) -> list[str]:
        return []

    def report(self) -> None:
        return None

    def close(self, timeout: float) -> None:
        return None


@contextlib.contextmanager
def capture() -> Iterator[CapturedJobs]:
    """Hand the jobs of every call inside the block to a :class:`CapturedJobs` instead of the
    writer (autolog must be on); the writer in use before comes back at the end."""
    captured = CapturedJobs()
    saved = handover.provided()
    handover.provide(lambda: captured, lambda: captured)
    try:
        yield captured
    finally:
        handover.restore(saved)
        for job, _ in captured.jobs:
            if os.path.isdir(job):
                _journal.remove(job)
