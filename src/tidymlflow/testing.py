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
import dataclasses
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
        """Keep the job's manifest, with what the writer would work out of a fit handed over
        whole (its metrics, tags, tables and plots) added to its run; the errors of that part."""
        manifest = _journal.manifest(job)
        errors: list[str] = []
        runs = tuple(_worked_out(job, rec, errors) for rec in manifest.runs)
        self.jobs.append((job, dataclasses.replace(manifest, runs=runs)))
        return errors

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def pending(self) -> bool:
        return False

    def run_id(self, handle: str, timeout: float | None = None) -> str | None:
        return handle[4:] if handle.startswith("run:") else None

    def written(self) -> list[str]:
        return []

    def report(self) -> None:
        return None

    def close(self, timeout: float) -> None:
        return None


def _worked_out(job: str, rec: RunRecord, errors: list[str]) -> RunRecord:
    if rec.outputs is None:
        return rec
    from tidymlflow._log import derive

    found, failed = derive.derive(job, rec.files, rec.outputs)
    errors.extend(failed)
    return rec.worked_out(found)


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
