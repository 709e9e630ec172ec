"""Run management: where a call's run goes (new, the user's, or nested), tags, and the registry
from fitted objects to the runs that logged them."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from tidymlflow._jobs import journal as _journal
from tidymlflow._jobs.names import AUTOLOG_TAG, ENV, SECRETS
from tidymlflow._jobs.records import JobTarget
from tidymlflow._jobs.stage import Stage
from tidymlflow._recording.recorder import Recorder
from tidymlflow._runtime.weak import WeakIdMap
from tidymlflow._version import __version__

_claimed_user_runs: set[str] = set()  # user runs that already hold a tidymlflow single fit
_claim_lock = threading.Lock()


def tidymlflow_version() -> str:
    """This package's version."""
    return __version__


_versions: dict[str, str] = {}


def py_tidymodels_version() -> str:
    """The installed py-tidymodels version, without importing any of its modules. Looked up once
    per process (a lookup scans ``sys.path``: milliseconds, on every run's tags)."""
    found = _versions.get("py-tidymodels")
    if found is None:
        try:
            found = metadata.version("py-tidymodels")
        except metadata.PackageNotFoundError:
            module = sys.modules.get("py_parsnip") or sys.modules.get("py_workflows")
            if module is None:
                return "unknown"  # not imported yet: asked again later
            found = str(getattr(module, "__version__", "unknown"))
        _versions["py-tidymodels"] = found
    return found


def base_tags(layer: str, call: str, extra: Mapping[str, str]) -> dict[str, str]:
    """Tags for every run a call creates; the writer adds MLflow's context tags (source, user,
    git commit) under them."""
    return {**extra, AUTOLOG_TAG: "tidymlflow", "tidymlflow.layer": layer, "tidymlflow.call": call,
            "tidymlflow.version": tidymlflow_version(), "py_tidymodels.version": py_tidymodels_version()}


def user_run() -> Any:
    """The run the user started in this thread, if any (None when MLflow was never imported:
    then nobody started one)."""
    mlflow = sys.modules.get("mlflow")
    return None if mlflow is None else mlflow.active_run()


@dataclass(frozen=True)
class Target:
    """Where a call's runs go, as the user's process sees it when the call starts: the tracking
    URI, the experiment and the user's active run. Read without a network call and without
    importing MLflow; the writer resolves it exactly as MLflow would have in this process."""

    tracking_uri: str | None
    cwd: str
    experiment_id: str | None  # set by mlflow.set_experiment() in this process
    env: Mapping[str, str]
    user_run: tuple[str, str] | None  # (run id, experiment id)

    @property
    def journal(self) -> str:
        """This tracking URI's journal folder."""
        return _journal.folder(_journal.uri_key(self.tracking_uri, self.cwd))

    def record(self) -> JobTarget:
        """The target as a job records it: never a credential (the writer has the script's own
        environment; ``tidymlflow sync`` uses the environment of whoever runs it)."""
        return JobTarget(self.tracking_uri, self.cwd, self.experiment_id,
                         {k: v for k, v in self.env.items() if k not in SECRETS})


def current_target() -> Target:
    """The :class:`Target` of a call starting now in this thread."""
    env = {k: os.environ[k] for k in ENV if k in os.environ}
    uri, experiment, active = env.get("MLFLOW_TRACKING_URI"), None, None
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        from mlflow.tracking import _tracking_service, fluent

        if _tracking_service.utils.is_tracking_uri_set():
            uri = mlflow.get_tracking_uri()
        experiment = getattr(fluent, "_active_experiment_id", None)
        run = mlflow.active_run()
        if run is not None:
            active = (run.info.run_id, str(run.info.experiment_id))
    return Target(uri, os.getcwd(), experiment, env, active)


def open_run(stage: Stage, index: int, target: Target, name: str, tags: dict[str, str], *,
             parent: Recorder | None, hierarchical: bool,
             start_time: int | None = None) -> tuple[Recorder, bool]:
    """Return (writer, owned): a new run, or the user's active run for a single fit."""
    start = start_time or now_ms()
    if parent is not None:
        return Recorder(stage, index, _new_handle(), parent=parent.handle, name=name, tags=tags,
                         start_time=start), True
    if target.user_run is None:
        return Recorder(stage, index, _new_handle(), name=name, tags=tags, start_time=start), True
    run_id, experiment_id = target.user_run
    if not hierarchical:
        with _claim_lock:
            claim = run_id not in _claimed_user_runs
            _claimed_user_runs.add(run_id)
        if claim:
            writer = Recorder(stage, index, f"run:{run_id}", kind="existing", shared=True)
            writer.set_tags({k: v for k, v in tags.items() if k.startswith(("tidymlflow.", "py_tidymodels."))
                             or k == AUTOLOG_TAG})
            return writer, False
    return Recorder(stage, index, _new_handle(), parent=f"run:{run_id}", name=name, tags=tags,
                     start_time=start, experiment_id=experiment_id), True


def _new_handle() -> str:
    return uuid.uuid4().hex


def now_ms() -> int:
    """The current time as MLflow stores it (milliseconds since the epoch)."""
    return int(time.time() * 1000)


@dataclass
class LoggedRun:
    """The run(s) that logged a fitted object or a results object, so that its later
    ``evaluate()`` lands there: the run, per-group / per-workflow children, and how many
    evaluations were logged so far (the step of the next one)."""

    handle: str
    children: dict[Any, str] | None = None  # group or wflow_id -> run handle
    groups: dict[str, dict[Any, str]] = field(default_factory=dict)  # wflow_id -> group -> run handle
    metric: str | None = None  # the ranking metric of a comparison
    evaluations: int = 0
    plots: bool = True  # False: the fit's plots were skipped (a loop), and so are its evaluations
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def next_step(self) -> int:
        """The step of a new evaluation (0, 1, ...), counted under a lock."""
        with self._lock:
            step, self.evaluations = self.evaluations, self.evaluations + 1
        return step


class FitRegistry:
    """Maps fitted objects (unhashable dataclasses) and results to the runs that logged them; an
    entry goes when its object is garbage-collected."""

    def __init__(self) -> None:
        self._map: WeakIdMap[LoggedRun] = WeakIdMap()

    def register(self, obj: Any, logged: LoggedRun) -> None:
        """Remember that ``obj`` was logged in ``logged``."""
        self._map.put(obj, logged)

    def lookup(self, obj: Any) -> LoggedRun | None:
        """The runs that logged ``obj``, or None."""
        return self._map.get(obj)


registry = FitRegistry()
