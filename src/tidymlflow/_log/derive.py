"""A fit's tables and what follows from them, worked out where the fit was handed over: a helper
process of the writer, the in-process writer, or ``tidymlflow sync``. The very functions the
user's process runs when it cannot hand a fit over (:func:`~tidymlflow._log.fits.fit_outputs`,
:func:`~tidymlflow._log.fits.evaluation_outputs`), on the fit unpickled from its job."""

from __future__ import annotations

from dataclasses import dataclass, field

from tidymlflow._jobs import serialize
from tidymlflow._jobs.records import OutputsRecord, RunRecord, inside
from tidymlflow._jobs.stage import Stage
from tidymlflow._log import fits
from tidymlflow._recording.recorder import Recorder
from tidymlflow._runtime.config import AutologConfig


@dataclass
class Settings:
    """The part of the call's configuration that logging a fit's outputs reads, and its errors."""

    config: AutologConfig
    errors: list[BaseException] = field(default_factory=list)


def derive(job: str, files: str, rec: OutputsRecord,
           skip: frozenset[str] = frozenset()) -> tuple[RunRecord, list[str]]:
    """What the run in the job's folder ``files`` gains from ``rec``: a record with its metrics
    (stamped with the call's time), tags, tables (staged in the run's folder) and plots (their
    inputs staged in the job), and the errors of what could not be logged. ``skip``: plots a
    later job draws again."""
    with open(inside(job, rec.file), "rb") as fh:
        obj = serialize.loads(fh.read())
    writer = Recorder(Stage.existing(job, f"inputs/{files}"), 0, "outputs", folder=files)
    writer.timestamp = rec.time
    settings = Settings(AutologConfig(log_outputs=rec.tables, log_plots=frozenset(rec.plots) - skip,
                                      plotly_js=rec.plotly_js))
    if rec.kind == "fit":
        fits.fit_outputs(settings, writer, obj)
    else:
        fit, test_data = obj
        fits.evaluation_outputs(settings, writer, fit, test_data, rec.step)
    return writer.record(), [f"{type(e).__name__}: {e}" for e in settings.errors]
