"""What :func:`tidymlflow.load_results` needs to rebuild a tuning's ``TuneResults`` or a
comparison's ``WorkflowSetResults`` from its run: ``restore.json`` (the result's class, tuning
method, the tables that hold its frames, and each unfitted workflow described as JSON) and exact
copies of the frames that the run's tables do not already hold as they are.

Nothing is pickled unless asked: a workflow a JSON description cannot rebuild (a recipe) is
pickled only with ``autolog(pickle_workflows=True)``; without it ``restore.json`` says why it
is missing, and the restored object names what to log."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pandas as pd

from tidymlflow._read import restore as describe
from tidymlflow._recording.call import Call
from tidymlflow._recording.recorder import Recorder
from tidymlflow._recording.runs import py_tidymodels_version
from tidymlflow._version import __version__

RESTORE = describe.RESTORE
qualname = describe.qualname
#: Where frames that the run's tables do not hold as they are go.
FOLDER = "restore"


def _exact(writer: Recorder, frame: Any, logged: str | None, name: str) -> str | dict[str, Any] | None:
    """Where ``frame`` is held exactly: the table logged at ``logged`` when a default index is
    all it would lose, else a copy with its index under ``restore/``. Object columns that mix
    types (``stats["value"]``: numbers and text) are stored as text in parquet, so their values
    also go into ``restore.json``, where JSON keeps numbers and text apart."""
    if not isinstance(frame, pd.DataFrame):
        return None
    mixed = [c for c in frame.columns if frame[c].dtype == object and not _all_text(frame[c])]
    if logged is not None and not mixed and frame.index.equals(pd.RangeIndex(len(frame))):
        return logged
    relative = f"{FOLDER}/{name}.parquet"
    writer.log_frame(frame, relative)
    if not mixed:
        return relative
    return {"path": relative, "mixed": [[str(c), [_plain(v) for v in frame[c]]] for c in mixed]}


def _all_text(column: pd.Series) -> bool:
    return all(isinstance(v, str) for v in column if v is not None)


def _plain(value: Any) -> Any:
    """One cell as JSON keeps it (numpy scalars as Python's; other objects as their text)."""
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    return value if value is None or isinstance(value, (str, bool, int, float)) else str(value)


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
    parts: dict[str, Any] = {"class": qualname(results), "method": str(getattr(results, "method", "grid")),
                             "tables": tables}
    if not in_set:
        parts["workflow"] = workflow(call, writer, unfitted, f"{prefix}workflow")
    return parts


def own_workflow(results: Any, called: Any) -> Any:
    """The workflow a ``TuneResults`` holds: the one it was called with, or None where the
    library keeps none (``tune_bayes`` without ``save_workflow``): restored as it was."""
    held = getattr(results, "workflow", None)
    return held if held is None else called


def workflow_set_results(call: Call, writer: Recorder, results: Any) -> None:
    """``restore.json`` of a WorkflowSet call's results (``WorkflowSetResults``,
    ``WorkflowSetNestedResults``, ``WorkflowSetNestedResamples``): every workflow of the set
    (described, or pickled when asked), its info table, the results' other fields, and each
    result entry key by key (see :func:`_entry`)."""
    ws = results.workflow_set
    info = ws.info
    fields = {f.name: _field(getattr(results, f.name)) for f in dataclasses.fields(results)
              if f.name not in ("results", "workflow_set")}
    log(writer, qualname(results), {
        "workflow_set_class": qualname(ws),
        "workflows": [[wid, workflow(call, writer, ws.workflows[wid], f"workflows/{i}")]
                      for i, wid in enumerate(ws.workflows)],
        "info": {"columns": [str(c) for c in info.columns], "records": info.to_dict("records")},
        "fields": fields,
        "entries": [_entry(call, writer, entry, f"entries/{i}") for i, entry in enumerate(results.results)]})


def _field(value: Any) -> dict[str, Any]:
    """A scalar field of a results object (``group_col``, the metric set)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return {"value": value}
    names = metric_names(value)
    if names is not None:
        return {"metric_set": names}
    return {"not_logged": f"the results' {type(value).__name__}"}


def _is_tune_results(value: Any) -> bool:
    return all(hasattr(value, a) for a in ("metrics", "grid", "method", "predictions"))


def _entry(call: Call, writer: Recorder, entry: Mapping[str, Any], name: str) -> list[list[Any]]:
    """One result entry, key by key in its order: a ``TuneResults`` as its parts; a frame made
    from the entry's ``TuneResults`` (its metrics plus the entry's id columns) by that recipe;
    any other frame as an exact copy; a plain value as itself; a fitted object as not logged."""
    tuned = {k: v for k, v in entry.items() if _is_tune_results(v)}
    scalars = {k: v for k, v in entry.items() if isinstance(v, (str, int, float, bool)) or v is None}
    encoded: list[list[Any]] = []
    for key, value in entry.items():
        where = f"{name}/{key}"
        if key in tuned:
            parts = tune_results(call, writer, value, None, {}, where, in_set=True)
            part: dict[str, Any] = {"tune_results": parts}
        elif isinstance(value, pd.DataFrame):
            part = _derived(value, tuned, scalars) or {"frame": _exact(writer, value, None, where)}
        elif key in scalars:
            part = {"value": value}
        else:
            part = {"not_logged": f"{key!r} of {entry.get('wflow_id')!r} (a {type(value).__name__})"}
        encoded.append([key, part])
    return encoded


def _derived(frame: pd.DataFrame, tuned: Mapping[str, Any],
             scalars: Mapping[str, Any]) -> dict[str, Any] | None:
    """How ``frame`` was made from one of the entry's ``TuneResults``: its ``collect_metrics()``
    with columns that repeat one of the entry's values (``wflow_id``, ``group``) added; checked
    by making it so."""
    for key, results in tuned.items():
        base = results.metrics
        width = len(base.columns) if isinstance(base, pd.DataFrame) else -1
        if width < 0 or list(frame.columns[:width]) != list(base.columns):
            continue
        added: dict[str, str] = {}
        for column in frame.columns[width:]:
            source = next((k for k, v in scalars.items()
                           if v is not None and (frame[column] == v).all()), None)
            if source is None:
                break
            added[str(column)] = source
        else:
            made = results.collect_metrics() if hasattr(results, "collect_metrics") else base.copy()
            for column, source in added.items():
                made[column] = scalars[source]
            if made.equals(frame) and list(made.columns) == list(frame.columns):
                return {"metrics_of": key, "add": added}
    return None


def settings(call: Call) -> dict[str, Any]:
    """The call's ``control`` settings (a dict or a control dataclass), plain values only: what
    the tuning was asked to do, for the record (a result object does not keep them)."""
    control = call.argument("control")
    if dataclasses.is_dataclass(control) and not isinstance(control, type):
        control = dataclasses.asdict(control)
    if not isinstance(control, Mapping):
        return {}
    return {str(k): v for k, v in control.items() if v is None or isinstance(v, (str, bool, int, float))}


def log(writer: Recorder, result_class: str, body: Mapping[str, Any]) -> None:
    """``restore.json``: the versions it was written by, the result's class, and ``body``."""
    writer.log_dict({"format": describe.FORMAT, "class": result_class, "tidymlflow_version": __version__,
                     "py_tidymodels_version": py_tidymodels_version(), **body}, RESTORE)


def metric_names(metrics: Any) -> list[str] | None:
    """The names of a metric set (``metric_set(...)`` carries them), None for the default."""
    names = getattr(metrics, "metrics", None)
    if metrics is None or not names:
        return None
    return [getattr(n, "__name__", str(n)) for n in names]
