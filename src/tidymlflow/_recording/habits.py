"""The user's MLflow habits, kept working while the writer process writes after the calls return:
read-your-writes in the process that logs.

* An MLflow read in the user's process (``mlflow.search_runs``, ``mlflow.get_run``,
  ``MlflowClient`` reads, a ``runs:/`` model or artifact download) first waits for the jobs
  handed to the writer so far, at most :data:`READ_WAIT` seconds (one warning if that runs
  out), so it sees what tidymlflow logged.
* The end of the user's run (``mlflow.end_run()``, the ``with mlflow.start_run():`` block) waits
  the same way, so the run is complete when it ends.
* ``mlflow.last_active_run()`` returns the last run tidymlflow created when that is newer than
  the user's own last run (MLflow's autolog idiom).

Nothing waits when nothing is pending (a counter is compared), inside tidymlflow's own calls, or
in the writer process itself. Patched with wrapt on the MLflow modules when they are imported;
removed by ``autolog(disable=True)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import wrapt

from tidymlflow._jobs import handover
from tidymlflow._runtime import imports as _imports
from tidymlflow._runtime import safety as _safety
from tidymlflow._runtime import state as _state

#: Seconds an MLflow read (or the end of the user's run) waits for pending jobs.
READ_WAIT = 30.0

#: (module, attribute) of every MLflow read that waits for pending jobs.
_READS = (
    ("mlflow.tracking.client", "MlflowClient.get_run"),
    ("mlflow.tracking.client", "MlflowClient.get_parent_run"),
    ("mlflow.tracking.client", "MlflowClient.search_runs"),
    ("mlflow.tracking.client", "MlflowClient.get_metric_history"),
    ("mlflow.tracking.client", "MlflowClient.list_artifacts"),
    ("mlflow.tracking.client", "MlflowClient.download_artifacts"),
    ("mlflow.tracking.artifact_utils", "get_artifact_uri"),
)
#: The end of the user's run: the function and the name ``mlflow`` re-exports.
_ENDS = (("mlflow.tracking.fluent", "end_run"), ("mlflow", "end_run"))
_LAST = (("mlflow.tracking.fluent", "last_active_run"), ("mlflow", "last_active_run"))

_lock = threading.Lock()
_installed: dict[tuple[str, str], tuple[Any, Any]] = {}  # (module, attr) -> (module object, wrapper)
_hooked: set[str] = set()
_told = False
_last_created: str | None = None  # the handle of the last run a call of this process created


def created(handle: str) -> None:
    """A call of this process created the run ``handle`` (its first run): the newest candidate
    for ``mlflow.last_active_run()``."""
    global _last_created
    _last_created = handle


def wait(what: str, once: bool = True, stacklevel: int = 5) -> None:
    """Wait for the jobs handed to the writer so far (nothing to do when none is pending, inside
    one of tidymlflow's own calls, or without a writer); a warning when the wait runs out (the
    first time only, with ``once``)."""
    global _told
    writer = handover.current()
    if writer is None or not writer.pending() or _state.active_call.get() is not None:
        return
    if writer.flush(READ_WAIT) or (once and _told):
        return
    _told = True
    _safety.warn(f"tidymlflow: {what} waited {READ_WAIT:.0f} s for runs still being written and went on; "
                 "it may not see all of them yet (tidymlflow.flush() waits for them)", stacklevel=stacklevel)


def _read(what: str) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True  # noqa: F841
        if _state.config is not None:
            wait(what)
        return wrapped(*args, **kwargs)

    return wrapper


def _last_active_run(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
    """MLflow's answer, or the last run tidymlflow created when that one started later."""
    __tracebackhide__ = True  # noqa: F841
    theirs = wrapped(*args, **kwargs)
    if _state.config is None or _last_created is None:
        return theirs
    writer = handover.current()
    run_id = writer.run_id(_last_created, READ_WAIT) if writer is not None else None
    if run_id is None:
        return theirs
    wait("mlflow.last_active_run()")
    try:
        import mlflow

        ours = mlflow.MlflowClient().get_run(run_id)
    except Exception:  # the run could not be written (kept in the journal): MLflow's answer
        return theirs
    if theirs is None or ours.info.start_time >= theirs.info.start_time:
        return ours
    return theirs


def _install(module: Any) -> None:
    with _lock:
        if _state.config is None:
            return
        targets = [(m, a, _read(f"{a}()")) for m, a in _READS]
        targets += [(m, a, _read("the end of your run")) for m, a in _ENDS]
        targets += [(m, a, _last_active_run) for m, a in _LAST]
        for module_name, attribute, wrapper in targets:
            key = (module_name, attribute)
            if module_name != module.__name__ or key in _installed:
                continue
            try:
                _installed[key] = (module, wrapt.wrap_function_wrapper(module, attribute, wrapper))
            except AttributeError:  # another MLflow version: that read is not waited for
                continue


def install() -> None:
    """Patch the MLflow reads now, or when MLflow is imported (it never is imported for this)."""
    _imports.on_import(sorted({m for m, _ in (*_READS, *_ENDS, *_LAST)}), _install, _hooked)


def uninstall() -> None:
    """Restore MLflow's own functions."""
    with _lock:
        for (_, attribute), (module, wrapper) in list(_installed.items()):
            try:
                wrapt.unwrap_object(module, attribute, wrapper, missing_ok=True)
            except Exception:  # someone wrapped it after us: it stays, and passes calls through
                continue
        _installed.clear()
