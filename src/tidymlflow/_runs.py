"""Run management: where a call's run goes (new, the user's, or nested), tags, and the registry
from fitted objects to the runs that logged them."""

from __future__ import annotations

import sys
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from tidymlflow._version import __version__
from tidymlflow._writer import RunWriter

AUTOLOG_TAG = "mlflow.autologging"
PARENT_TAG = "mlflow.parentRunId"

_claimed_user_runs: set[str] = set()  # user runs that already hold a tidymlflow single fit
_claim_lock = threading.Lock()


def tidymlflow_version() -> str:
    """This package's version."""
    return __version__


def py_tidymodels_version() -> str:
    """The installed py-tidymodels version, without importing any of its modules."""
    try:
        return metadata.version("py-tidymodels")
    except metadata.PackageNotFoundError:
        module = sys.modules.get("py_parsnip") or sys.modules.get("py_workflows")
        return str(getattr(module, "__version__", "unknown"))


def base_tags(layer: str, call: str, extra: Mapping[str, str]) -> dict[str, str]:
    """Tags for every run a call creates (context tags resolved once per call)."""
    from mlflow.tracking.context.registry import resolve_tags

    tags = resolve_tags(dict(extra))
    tags.update({AUTOLOG_TAG: "tidymlflow", "tidymlflow.layer": layer, "tidymlflow.call": call,
                 "tidymlflow.version": tidymlflow_version(),
                 "py_tidymodels.version": py_tidymodels_version()})
    return tags


def user_run() -> Any:
    """The run the user started in this thread, if any."""
    import mlflow

    return mlflow.active_run()


def open_run(client: Any, name: str, tags: dict[str, str], *, parent: RunWriter | None,
             hierarchical: bool, start_time: int | None = None) -> tuple[RunWriter, bool]:
    """Return (writer, owned): a new run, or the user's active run for a single fit."""
    if parent is not None:
        experiment_id = parent.experiment_id or str(client.get_run(parent.run_id).info.experiment_id)
        return _create(client, experiment_id, name, {**tags, PARENT_TAG: parent.run_id}, start_time), True
    active = user_run()
    if active is None:
        from mlflow.tracking.fluent import _get_experiment_id

        return _create(client, str(_get_experiment_id()), name, tags), True
    run_id, experiment_id = active.info.run_id, str(active.info.experiment_id)
    if not hierarchical:
        with _claim_lock:
            claim = run_id not in _claimed_user_runs
            _claimed_user_runs.add(run_id)
        if claim:
            writer = RunWriter(client, run_id, experiment_id, shared=True)
            writer.set_tags({k: v for k, v in tags.items() if k.startswith(("tidymlflow.", "py_tidymodels."))
                             or k == AUTOLOG_TAG})
            return writer, False
    return _create(client, experiment_id, name, {**tags, PARENT_TAG: run_id}), True


def _create(client: Any, experiment_id: str, name: str, tags: dict[str, str],
            start_time: int | None = None) -> RunWriter:
    _model_training_view(client, experiment_id)
    run = client.create_run(experiment_id, start_time=start_time or now_ms(), tags=tags, run_name=name)
    return RunWriter(client, run.info.run_id, experiment_id)


def now_ms() -> int:
    """The current time as MLflow stores it (milliseconds since the epoch)."""
    return int(time.time() * 1000)


#: The experiment tag MLflow's UI reads to open an experiment in its model-training view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
_kinds_checked: set[tuple[str, str]] = set()


def _model_training_view(client: Any, experiment_id: str) -> None:
    """Once per experiment and process: an experiment without a kind opens in the MLflow UI's
    model-training view (runs), not its GenAI view (traces)."""
    key = (str(client.tracking_uri), experiment_id)
    if key in _kinds_checked:
        return
    _kinds_checked.add(key)
    if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")


@dataclass
class LoggedRun:
    """The run(s) that logged a fitted object or a results object, so that its later
    ``evaluate()`` lands there: the run, per-group / per-workflow children, and how many
    evaluations were logged so far (the step of the next one)."""

    run_id: str
    children: dict[Any, str] | None = None  # group or wflow_id -> run id
    groups: dict[str, dict[Any, str]] = field(default_factory=dict)  # wflow_id -> group -> run id
    metric: str | None = None  # the ranking metric of a comparison
    evaluations: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def next_step(self) -> int:
        """The step of a new evaluation (0, 1, ...), counted under a lock."""
        with self._lock:
            step, self.evaluations = self.evaluations, self.evaluations + 1
        return step


class FitRegistry:
    """Maps fitted objects (unhashable dataclasses) to the runs that logged them; an entry goes
    when its object is garbage-collected."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[Any], LoggedRun]] = {}
        self._lock = threading.Lock()

    def register(self, obj: Any, logged: LoggedRun) -> None:
        """Remember that ``obj`` was logged in ``logged``."""
        key = id(obj)

        def forget(_ref: weakref.ref[Any], key: int = key, registry: FitRegistry = self) -> None:
            with registry._lock:
                registry._entries.pop(key, None)

        with self._lock:
            self._entries[key] = (weakref.ref(obj, forget), logged)

    def lookup(self, obj: Any) -> LoggedRun | None:
        """The runs that logged ``obj``, or None."""
        with self._lock:
            entry = self._entries.get(id(obj))
        if entry is None or entry[0]() is not obj:
            return None
        return entry[1]


registry = FitRegistry()
