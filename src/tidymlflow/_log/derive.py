"""A fit's tables and what follows from them, worked out where the fit was handed over: a helper
process of the writer, the in-process writer, or ``tidymlflow sync``. The very functions the
user's process runs when it cannot hand a fit over (:func:`~tidymlflow._log.fits.fit_outputs`,
:func:`~tidymlflow._log.fits.evaluation_outputs`), on the fit unpickled from its job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidymlflow._jobs import serialize
from tidymlflow._jobs.records import TABLES, WHOLE, OutputsRecord, RunRecord, inside
from tidymlflow._jobs.stage import Stage
from tidymlflow._log import fits
from tidymlflow._recording.recorder import Recorder
from tidymlflow._runtime.config import AutologConfig


@dataclass
class Settings:
    """The part of the call's configuration that logging a fit's outputs reads, and its errors."""

    config: AutologConfig
    errors: list[BaseException] = field(default_factory=list)


def derive(job: str, files: str, rec: OutputsRecord, skip: frozenset[str] = frozenset(),
           joined: OutputsRecord | None = None) -> tuple[RunRecord, list[str]]:
    """What the run in the job's folder ``files`` gains from ``rec``: a record with its metrics
    (stamped with the call's time), tags, tables (staged in the run's folder) and plots (their
    inputs staged in the job), and the errors of what could not be logged. ``skip``: plots a
    later job draws again, and :data:`~tidymlflow._jobs.records.TABLES` when it writes the tables
    again (a fit whose ``evaluate()`` is queued: its own tables would be overwritten at once), or
    :data:`WHOLE`: all of it (a fit whose queued evaluation works out its part, ``joined``: the
    fit's own record; the library's ``extract_outputs()`` then runs once for both)."""
    writer = Recorder(Stage.existing(job, f"inputs/{files}"), 0, "outputs", folder=files)
    if WHOLE in skip:
        return writer.record(), []
    with open(inside(job, rec.file), "rb") as fh:
        obj = serialize.loads(fh.read())
    errors: list[str] = []
    if joined is not None:  # the fit's own part first, as of the fit (its forecast is drawn again below)
        writer.timestamp = joined.time
        plots = frozenset(joined.plots) - frozenset(rec.plots) - skip
        errors += _run(Settings(AutologConfig(log_plots=plots, plotly_js=joined.plotly_js)),
                       fits.training_outputs, writer, obj[0])
    writer.timestamp = rec.time
    settings = Settings(AutologConfig(log_outputs=rec.tables and TABLES not in skip,
                                      log_plots=frozenset(rec.plots) - skip,
                                      plotly_js=rec.plotly_js))
    if rec.kind == "fit":
        errors += _run(settings, fits.fit_outputs, writer, obj)
    else:
        errors += _run(settings, fits.evaluation_outputs, writer, *obj, rec.step)
    return writer.record(), errors


def _run(settings: Settings, log: Callable[..., object], *args: Any) -> list[str]:
    """``log(settings, *args)``; the errors it collected, as text."""
    log(settings, *args)
    return [f"{type(e).__name__}: {e}" for e in settings.errors]
