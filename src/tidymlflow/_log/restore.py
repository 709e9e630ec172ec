"""What :func:`tidymlflow.load_results` needs to rebuild a tuning's ``TuneResults`` or a
comparison's ``WorkflowSetResults`` from its run: ``restore.json`` (the result's class, tuning
method, the tables that hold its frames, and each unfitted workflow described as JSON) and exact
copies of the frames that the run's tables do not already hold as they are.

Nothing is pickled unless asked: a workflow a JSON description cannot rebuild (a recipe) is
pickled only with ``autolog(pickle_workflows=True)``; without it ``restore.json`` says why it
is missing, and the restored object names what to log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tidymlflow._read import restore as describe
from tidymlflow._recording.call import Call
from tidymlflow._recording.recorder import Recorder
from tidymlflow._recording.runs import py_tidymodels_version
from tidymlflow._version import __version__

#: The run artifact that says how to rebuild the call's result.
RESTORE = "restore.json"
#: Where frames that the run's tables do not hold as they are go.
FOLDER = "restore"


def _exact(writer: Recorder, frame: Any, logged: str | None, name: str) -> str | None:
    """The artifact holding ``frame`` exactly: the table logged at ``logged`` when a default index
    is all it would lose, else a copy with its index under ``restore/``."""
    if not isinstance(frame, pd.DataFrame):
        return None
    if logged is not None and frame.index.equals(pd.RangeIndex(len(frame))):
        return logged
    relative = f"{FOLDER}/{name}.parquet"
    writer.log_frame(frame, relative)
    return relative


def workflow(call: Call, writer: Recorder, unfitted: Any, name: str) -> dict[str, Any]:
    """The unfitted workflow as JSON; pickled when it cannot be described and the user asked."""
    if unfitted is None:
        return {"none": True}
    try:
        return {"description": describe.describe(unfitted)}
    except describe.NotDescribable as exc:
        reason = str(exc)
    if call.config.pickle_workflows:
        relative = f"{FOLDER}/{name}.pkl"
        writer.log_pickle(unfitted, relative)
        return {"pickle": relative}
    return {"missing": f"{reason}: tidymlflow describes only formula workflows of plain arguments; "
                       "log with tidymlflow.autolog(pickle_workflows=True) to restore it"}


def tune_results(call: Call, writer: Recorder, results: Any, unfitted: Any, logged: Mapping[str, str | None],
                 name: str = "", in_set: bool = False) -> dict[str, Any]:
    """The parts of one ``TuneResults``; ``logged``: the tables the run holds already (metrics,
    grid, predictions: artifact path or None). ``name`` keeps one entry's copies apart; an entry
    of a set (``in_set``) has its workflow in the set's list."""
    prefix = f"{name}/" if name else ""
    tables = {part: _exact(writer, getattr(results, part, None), logged.get(part), f"{prefix}{part}")
              for part in ("metrics", "grid", "predictions")}
    parts: dict[str, Any] = {"method": str(getattr(results, "method", "grid")), "tables": tables}
    if not in_set:
        parts["workflow"] = workflow(call, writer, unfitted, f"{prefix}workflow")
    return parts


def own_workflow(results: Any, called: Any) -> Any:
    """The workflow a ``TuneResults`` holds: the one it was called with, or None where the
    library keeps none (``tune_bayes`` without ``save_workflow``): restored as it was."""
    held = getattr(results, "workflow", None)
    return held if held is None else called


def workflow_set_results(call: Call, writer: Recorder, results: Any) -> None:
    """``restore.json`` of a ``WorkflowSetResults`` of ``fit_resamples`` / ``tune_grid``: every
    workflow of the set (described, or pickled when asked), its info table, and per result its
    ``TuneResults``; an entry's ``metrics`` is named by how the library made it from them."""
    ws = results.workflow_set
    info = ws.info
    entries = []
    for i, entry in enumerate(results.results):
        tuned = entry["tune_results"]
        name = f"entries/{i}"
        entries.append({"wflow_id": entry["wflow_id"],
                        "tune_results": tune_results(call, writer, tuned, None, {}, name, in_set=True),
                        "metrics": _entry_metrics(writer, entry, tuned.metrics, f"{name}/entry_metrics")})
    tuned_class = qualname(results.results[0]["tune_results"]) if results.results else "py_tune.TuneResults"
    log(writer, qualname(results), {
        "workflow_set_class": qualname(ws), "tune_results_class": tuned_class,
        "workflows": [[wid, workflow(call, writer, ws.workflows[wid], f"workflows/{i}")]
                      for i, wid in enumerate(ws.workflows)],
        "info": {"columns": [str(c) for c in info.columns], "records": info.to_dict("records")},
        "metrics": metric_names(results.metrics), "entries": entries})


def _entry_metrics(writer: Recorder, entry: Mapping[str, Any], base: Any, name: str) -> str | None:
    """How an entry's ``metrics`` frame came from its ``TuneResults`` (``"tune_results"``, or
    with a ``wflow_id`` column), else the artifact holding an exact copy."""
    frame = entry.get("metrics")
    if isinstance(frame, pd.DataFrame) and isinstance(base, pd.DataFrame):
        if frame.equals(base) and list(frame.columns) == list(base.columns):
            return "tune_results"
        same_ids = "wflow_id" in frame.columns and (frame["wflow_id"] == entry["wflow_id"]).all()
        if same_ids and list(frame.columns) == [*base.columns, "wflow_id"] \
                and frame.drop(columns="wflow_id").equals(base):
            return "tune_results+wflow_id"
    return _exact(writer, frame, None, name)


def log(writer: Recorder, result_class: str, body: Mapping[str, Any]) -> None:
    """``restore.json``: the versions it was written by, the result's class, and ``body``."""
    writer.log_dict({"format": describe.FORMAT, "class": result_class, "tidymlflow_version": __version__,
                     "py_tidymodels_version": py_tidymodels_version(), **body}, RESTORE)


def qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def metric_names(metrics: Any) -> list[str] | None:
    """The names of a metric set (``metric_set(...)`` carries them), None for the default."""
    names = getattr(metrics, "metrics", None)
    if metrics is None or not names:
        return None
    return [getattr(n, "__name__", str(n)) for n in names]
