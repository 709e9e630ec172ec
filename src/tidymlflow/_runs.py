"""Run management: where a call's run goes (new, the user's, or nested), tags, and the registry
from fitted objects to the runs that logged them."""

from __future__ import annotations

import threading
import time
import weakref
from functools import lru_cache
from typing import Any, Optional

from tidymlflow._writer import RunWriter

AUTOLOG_TAG = "mlflow.autologging"
PARENT_TAG = "mlflow.parentRunId"

_claimed_user_runs: set[str] = set()  # user runs that already hold a tidymlflow single fit
_claim_lock = threading.Lock()


@lru_cache(maxsize=1)
def tidymlflow_version() -> str:
    """This package's version (read once)."""
    from tidymlflow import __version__

    return __version__


def py_tidymodels_version() -> str:
    """The installed py-tidymodels version, without importing any of its modules."""
    import sys
    from importlib import metadata

    try:
        return metadata.version("py-tidymodels")
    except metadata.PackageNotFoundError:
        module = sys.modules.get("py_parsnip") or sys.modules.get("py_workflows")
        return str(getattr(module, "__version__", "unknown"))


def base_tags(layer: str, call: str, extra: dict) -> dict[str, str]:
    """Tags for every run a call creates (context tags resolved once per call)."""
    from mlflow.tracking.context.registry import resolve_tags

    tags = resolve_tags(dict(extra))
    tags.update({AUTOLOG_TAG: "tidymlflow", "tidymlflow.layer": layer, "tidymlflow.call": call,
                 "tidymlflow.version": tidymlflow_version(),
                 "py_tidymodels.version": py_tidymodels_version()})
    return tags


def user_run():
    """The run the user started in this thread, if any."""
    import mlflow

    return mlflow.active_run()


def open_run(client, name: str, tags: dict[str, str], *, parent: Optional[RunWriter],
             hierarchical: bool) -> tuple[RunWriter, bool]:
    """Return (writer, owned): a new run, or the user's active run for a single fit."""
    if parent is not None:
        experiment_id = parent.experiment_id or client.get_run(parent.run_id).info.experiment_id
        return _create(client, experiment_id, name, {**tags, PARENT_TAG: parent.run_id}), True
    active = user_run()
    if active is None:
        from mlflow.tracking.fluent import _get_experiment_id

        return _create(client, _get_experiment_id(), name, tags), True
    run_id, experiment_id = active.info.run_id, active.info.experiment_id
    if not hierarchical:
        with _claim_lock:
            claim = run_id not in _claimed_user_runs
            _claimed_user_runs.add(run_id)
        if claim:
            writer = RunWriter(client, run_id, experiment_id)
            writer.set_tags({k: v for k, v in tags.items() if k.startswith(("tidymlflow.", "py_tidymodels."))
                             or k == AUTOLOG_TAG})
            return writer, False
    return _create(client, experiment_id, name, {**tags, PARENT_TAG: run_id}), True


def _create(client, experiment_id: str, name: str, tags: dict[str, str]) -> RunWriter:
    run = client.create_run(experiment_id, start_time=int(time.time() * 1000), tags=tags,
                            run_name=name)
    return RunWriter(client, run.info.run_id, experiment_id)


class FitRegistry:
    """Maps fitted objects (unhashable dataclasses) to the run ids that logged them."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def register(self, obj: Any, run_id: str, **info: Any) -> None:
        key = id(obj)

        def forget(_ref, key=key, registry=self):
            with registry._lock:
                registry._entries.pop(key, None)

        with self._lock:
            self._entries[key] = (weakref.ref(obj, forget), {"run_id": run_id, **info})

    def lookup(self, obj: Any) -> Optional[dict[str, Any]]:
        with self._lock:
            entry = self._entries.get(id(obj))
        if entry is None or entry[0]() is not obj:
            return None
        return entry[1]


registry = FitRegistry()
