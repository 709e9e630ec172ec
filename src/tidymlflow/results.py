"""A tuning or a workflow-set comparison back from MLflow as the library's own object.

``tidymlflow.load_results(run_id)`` reads a run's ``restore.json`` (see
:mod:`tidymlflow._log.restore`) and builds, through the library's own constructors, the
``TuneResults`` that ``fit_resamples`` or a tuner returned, or the ``WorkflowSetResults`` of a
WorkflowSet's ``fit_resamples`` / ``tune_grid`` / ``workflow_map``: ``collect_metrics``,
``show_best``, ``select_best``, ``select_by_one_std_err``, ``rank_results`` and ``autoplot``
answer as on the original, and ``finalize_workflow(results.workflow, best)`` fits like the
original's. Nothing is fitted. What the run does not hold (the resampler's data, a recipe
workflow logged without ``pickle_workflows=True``) stands as a placeholder that names what to
log when it is used."""

from __future__ import annotations

import dataclasses
import importlib
import json
import tempfile
from collections.abc import Callable
from typing import Any

from tidymlflow._read import restore as _describe
from tidymlflow._version import __version__
from tidymlflow.errors import TidyMLflowError

RESTORE = _describe.RESTORE
#: The packages whose classes a restore.json may name (a run is input from outside: a class
#: anywhere else is refused, never imported).
LIBRARY = frozenset({"py_tune", "py_workflows", "py_workflowsets", "py_parsnip", "py_recipes", "py_rsample",
                     "py_yardstick", "py_hardhat"})


class RestoreError(TidyMLflowError):
    """A run cannot be restored as a results object, or a part of it was not logged."""


class NotLogged:
    """Stands for a part of a restored result that its run does not hold; any use of it raises
    :class:`RestoreError` saying what to log to have it."""

    def __init__(self, what: str, hint: str) -> None:
        self._what, self._hint = what, hint

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._error()

    def _error(self) -> RestoreError:
        return RestoreError(f"{self._what} was not logged with this run: {self._hint}")

    def __len__(self) -> int:
        raise self._error()

    def __iter__(self) -> Any:
        raise self._error()

    def __getitem__(self, key: Any) -> Any:
        raise self._error()

    def __repr__(self) -> str:
        return f"<not logged: {self._what}>"


def load_results(run_id: str, *, client: Any = None, tracking_uri: str | None = None,
                 unpickle: bool = False) -> Any:
    """The results object a tuning (``fit_resamples`` or a tuner) or a WorkflowSet call returned,
    rebuilt from run ``run_id`` (its parent run). ``client`` / ``tracking_uri``: where to read
    (default: MLflow's current tracking URI). ``unpickle``: load workflows logged with
    ``pickle_workflows=True`` (unpickling runs code the run holds: only for runs you trust).

    The run is input from outside and checked: its ``restore.json`` may name classes of
    py-tidymodels only, and files inside the run only. Raises :class:`RestoreError` for a run
    that holds no restorable result, fails those checks, or was written by a newer tidymlflow
    (naming both versions)."""
    from tidymlflow import readback

    client = readback._client(client, tracking_uri, "load_results")
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="tidymlflow-restore-") as tmp:
        if not readback._has(client, run, RESTORE):
            logged = run.data.tags.get("tidymlflow.version", "unknown")
            raise RestoreError(f"run {run_id} holds no {RESTORE}: it is not the parent run of a tuning or "
                               f"WorkflowSet comparison, or it was logged by a tidymlflow without "
                               f"load_results (this run: tidymlflow {logged}; this is {__version__})")
        with open(readback._download(client, run, RESTORE, tmp), encoding="utf-8") as fh:
            payload = json.load(fh)
        _check_format(run_id, payload)

        def table(ref: str | dict[str, Any] | None) -> Any:
            if ref is None:
                return None
            relative = _inside(ref if isinstance(ref, str) else ref["path"])
            folder = tempfile.mkdtemp(dir=tmp)
            frame = readback._read_table(readback._download(client, run, relative, folder), relative)
            for column, values in ([] if isinstance(ref, str) else ref.get("mixed", [])):
                frame[column] = _object_column(values, frame.index)
            return frame

        def blob(relative: str) -> bytes | None:
            if not unpickle:
                return None
            local = readback._download(client, run, _inside(relative), tempfile.mkdtemp(dir=tmp))
            with open(local, "rb") as fh:
                return fh.read()

        return _versioned(run_id, payload, lambda: _build(payload, table, blob))


def _inside(relative: Any) -> str:
    """An artifact path of the run itself: relative, without ``..``."""
    if not isinstance(relative, str) or not relative or relative.startswith(("/", "\\")) \
            or ".." in relative.replace("\\", "/").split("/"):
        raise RestoreError(f"restore.json names {relative!r}, not a file of the run: refused")
    return str(relative)


def _object_column(values: list[Any], index: Any) -> Any:
    """A column of mixed values (numbers and text) as the library had it: dtype object."""
    import pandas as pd

    column = pd.Series([None] * len(values), index=index, dtype=object)
    column[:] = values
    return column


def _check_format(run_id: str, payload: Any) -> None:
    if not isinstance(payload, dict):
        raise RestoreError(f"run {run_id}: {RESTORE} is not a JSON object")
    version = payload.get("format")
    if not isinstance(version, int) or version > _describe.FORMAT:
        raise RestoreError(f"run {run_id} was logged by tidymlflow {payload.get('tidymlflow_version')} "
                           f"(restore format {version}); this tidymlflow {__version__} reads format "
                           f"{_describe.FORMAT}: upgrade tidymlflow to restore it")


def _versioned(run_id: str, payload: dict[str, Any], build: Callable[[], Any]) -> Any:
    """``build()``; a failure names the py-tidymodels version the run was logged with and this one."""
    try:
        return build()
    except RestoreError:
        raise
    except Exception as exc:
        from tidymlflow._recording.runs import py_tidymodels_version

        logged = payload.get("py_tidymodels_version")
        raise RestoreError(f"run {run_id} was logged with py-tidymodels {logged} "
                           f"and tidymlflow {payload.get('tidymlflow_version')}; restoring it with "
                           f"py-tidymodels {py_tidymodels_version()} and tidymlflow {__version__} failed: "
                           f"{type(exc).__name__}: {exc}") from exc


def _build(payload: dict[str, Any], table: Callable[[Any], Any], blob: Callable[[str], bytes | None]) -> Any:
    cls = _class(payload["class"])
    if "entries" in payload:
        return _workflow_set_results(cls, payload, table, blob)
    return _tune_results(cls, payload, table, _workflow(payload["workflow"], blob))


def _class(path: Any) -> Any:
    """A dataclass of py-tidymodels named by ``path``; anything else is refused unimported."""
    module, _, name = path.rpartition(".") if isinstance(path, str) else ("", "", "")
    if module.partition(".")[0] not in LIBRARY or not name:
        raise RestoreError(f"restore.json names {path!r}, not a class of py-tidymodels: refused")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise RestoreError(f"restore.json names {path!r}, not a py-tidymodels results or workflow class")
    return obj


def _tune_results(cls: Any, part: dict[str, Any], table: Callable[[Any], Any], workflow: Any) -> Any:
    import pandas as pd

    frames = {k: table(v) for k, v in part["tables"].items()}
    return cls(metrics=frames["metrics"] if frames["metrics"] is not None else pd.DataFrame(),
               predictions=frames["predictions"] if frames["predictions"] is not None else pd.DataFrame(),
               workflow=workflow,
               resamples=NotLogged("the resampler", "its data is the training data, which tidymlflow "
                                   "never logs; the folds' boundaries are in resamples/folds.parquet"),
               grid=frames["grid"] if frames["grid"] is not None else pd.DataFrame(),
               method=part["method"])


def _workflow(entry: dict[str, Any], blob: Callable[[str], bytes | None]) -> Any:
    if entry.get("none"):
        return None  # the results held none (tune_bayes without save_workflow)
    if "description" in entry:
        return rebuild(entry["description"])
    if "pickle" in entry:
        data = blob(entry["pickle"])
        if data is None:
            return NotLogged("the unfitted workflow", "it was pickled (pickle_workflows=True); "
                             "load_results(..., unpickle=True) loads it (unpickling runs code the run "
                             "holds: only for runs you trust)")
        from tidymlflow._jobs import serialize

        return serialize.loads(data)
    return NotLogged("the unfitted workflow", entry.get("missing", "it could not be described"))


def rebuild(description: dict[str, Any]) -> Any:
    """An unfitted workflow from its JSON description, through the library's dataclasses."""
    py_tune = importlib.import_module("py_tune")
    spec_part = description["spec"]
    spec_cls = _class(spec_part["class"])
    args = {k: _describe.decode_value(v, py_tune.tune) for k, v in spec_part["args"].items()}
    spec = spec_cls(**_known(spec_cls, {**{k: spec_part.get(k) for k in ("model_type", "engine", "mode",
                                                                           "date_col")}, "args": args}))
    wf_cls = _class(description["class"])
    values = {"preprocessor": description["formula"], "spec": spec,
              **{k: description.get(k) for k in ("case_weights", "model_name", "model_group_name")}}
    return wf_cls(**_known(wf_cls, values))


def _known(cls: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The values of the dataclass's own fields (a field this version lacks is left out when
    unset, and an error when set)."""
    names = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(k for k, v in values.items() if k not in names and v is not None)
    if extra:
        raise RestoreError(f"{cls.__qualname__} of this py-tidymodels has no field(s) {extra}")
    return {k: v for k, v in values.items() if k in names}


def _workflow_set_results(cls: Any, payload: dict[str, Any], table: Callable[[Any], Any],
                          blob: Callable[[str], bytes | None]) -> Any:
    """A WorkflowSet call's results: its set, its entries key by key, its other fields."""
    import pandas as pd

    ws_cls = _class(payload["workflow_set_class"])
    workflows = {wid: _workflow(entry, blob) for wid, entry in payload["workflows"]}
    info = pd.DataFrame(payload["info"]["records"], columns=payload["info"]["columns"])
    workflow_set = ws_cls(workflows=workflows, info=info)
    results = [_entry(entry, table, workflows) for entry in payload["entries"]]
    fields = {name: _field(name, part) for name, part in payload["fields"].items()}
    return cls(results=results, workflow_set=workflow_set, **fields)


def _entry(parts: list[list[Any]], table: Callable[[Any], Any],
           workflows: dict[str, Any]) -> dict[str, Any]:
    """One result entry, key by key (see ``tidymlflow._log.restore._entry``)."""
    scalars = {key: part["value"] for key, part in parts if "value" in part}
    entry: dict[str, Any] = {}
    for key, part in parts:
        if "tune_results" in part:
            wid = scalars.get("wflow_id")
            tr = part["tune_results"]
            entry[key] = _tune_results(_class(tr["class"]), tr, table, workflows.get(wid) if wid else None)
        elif "metrics_of" in part:
            made = entry[part["metrics_of"]].collect_metrics()
            for column, source in part["add"].items():
                made[column] = scalars[source]
            entry[key] = made
        elif "frame" in part:
            entry[key] = table(part["frame"])
        elif "value" in part:
            entry[key] = part["value"]
        else:
            entry[key] = NotLogged(part["not_logged"], "fitted objects are not part of a restore (refit the "
                                 "workflow from results.workflow_set, or log fits as models with "
                                 "autolog(log_models=True) and load them with tidymlflow.models.load_model)")
    return entry


def _field(name: str, part: dict[str, Any]) -> Any:
    if "value" in part:
        return part["value"]
    if "metric_set" in part:
        return _metric_set(part["metric_set"])
    return NotLogged(f"the results' {name}", part["not_logged"])


def _metric_set(names: list[str] | None) -> Any:
    """The metric set of these names from ``py_yardstick``, as ``metric_set(...)`` made it."""
    if not names:
        return None
    py_yardstick = importlib.import_module("py_yardstick")
    if not all(isinstance(n, str) and n.isidentifier() and not n.startswith("_") for n in names):
        raise RestoreError(f"restore.json names metrics {names!r}: refused")
    return py_yardstick.metric_set(*(getattr(py_yardstick, n) for n in names))
