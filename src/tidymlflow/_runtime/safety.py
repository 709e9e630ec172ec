"""What keeps autologging out of the user's way: warnings that can never raise out of a patched
call, third-party warnings of our own logging work kept from the user, the user's line as the
location of the library's warnings, MLflow's flavor autologging paused inside our calls, and the
detection of library calls that were reached without their patch."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import wrapt

from tidymlflow.errors import TidyMLflowWarning

#: Notes about expected behaviour (skipped NaN metrics, capped candidates, failed workflows) go to
#: this logger at INFO, as MLflow's autologging does; warnings are kept for logging failures.
logger = logging.getLogger("tidymlflow")

#: tidymlflow's own files (this module is one folder below the package's).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_WRAPT_DIR = os.path.dirname(os.path.abspath(wrapt.__file__ or "")) + os.sep


def warn(message: str, stacklevel: int = 2) -> None:
    """A TidyMLflowWarning that can never raise out of the user's call: where the user's warning
    filters turn it into an error (``-W error``), it goes to the ``tidymlflow`` logger instead."""
    try:
        warnings.warn(message, TidyMLflowWarning, stacklevel=stacklevel + 1)
    except Warning:
        logger.warning(message)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Around tidymlflow's own logging work (never around the user's call): third-party warnings
    it triggers (MLflow's schema hints, numpy on odd data, scipy's small-sample notes) do not
    reach the user, and cannot become errors under ``-W error``; and the global random
    generators (Python's ``random``, numpy's legacy ``np.random``) are as they were afterwards,
    whatever the library code tidymlflow reads through draws (a prophet fit's intervals, say),
    so the user's next random number is the one it would be without tidymlflow."""
    with warnings.catch_warnings(), _random_state_kept():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """Restore Python's and numpy's global random states on the way out. numpy is not
    imported for this: a process that has not imported it has no numpy state to keep."""
    numpy_random = sys.modules.get("numpy.random")
    get_state = getattr(numpy_random, "get_state", None)
    saved_numpy = get_state() if get_state is not None else None
    saved_python = random.getstate()
    try:
        yield
    finally:
        random.setstate(saved_python)
        if saved_numpy is not None:
            numpy_random.set_state(saved_numpy)  # type: ignore[union-attr]


# -- the user's line as the warning location ------------------------------------------------------
def _ours(filename: str) -> bool:
    return filename.startswith((_PACKAGE_DIR, _WRAPT_DIR))


def _caller() -> types.FrameType | None:
    """The nearest frame that is neither tidymlflow's nor wrapt's: whoever called the patched
    function (the user's line, or the library for a nested call)."""
    frame = sys._getframe(1)
    while frame is not None and _ours(frame.f_code.co_filename):
        frame = frame.f_back  # type: ignore[assignment]
    return frame


#: The frame that runs the original carries the caller's file and line, so the caller's line would
#: show twice in a traceback: it is hidden where tools allow (``__tracebackhide__``: pytest,
#: IPython), on the line of its ``return`` so that the line numbers stay the caller's.
_TRAMPOLINE = compile("def call(wrapped, args, kwargs):\n"
                      "    __tracebackhide__ = True; return wrapped(*args, **kwargs)  # noqa: E702\n",
                      "<tidymlflow>", "exec")
_trampolines: dict[tuple[str, int, str], types.CodeType] = {}
_trampoline_lock = threading.Lock()


def _trampoline_code(frame: types.FrameType) -> types.CodeType:
    key = (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
    with _trampoline_lock:
        code = _trampolines.get(key)
        if code is None:
            namespace: dict[str, Any] = {}
            exec(_TRAMPOLINE, namespace)
            base = namespace["call"].__code__
            code = _trampolines[key] = base.replace(co_filename=key[0], co_firstlineno=key[1] - 1,
                                                    co_name=key[2])
    return code


def call_as_caller(wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run ``wrapped(*args, **kwargs)`` from a frame that carries the caller's file, line and
    module, so that a warning the library raises with ``stacklevel=2`` points at the user's line
    (and uses the user's module for filters and the once-per-location registry), as it does
    without tidymlflow. Deeper stack levels still see tidymlflow's frames (README, Safety)."""
    __tracebackhide__ = True  # noqa: F841 (read by pytest and IPython from the frame's locals)
    frame = _caller()
    if frame is None:
        return wrapped(*args, **kwargs)
    fn = types.FunctionType(_trampoline_code(frame), frame.f_globals, frame.f_code.co_name)
    return fn(wrapped, args, kwargs)


# -- MLflow's own autologging ------------------------------------------------------------------------
_pause_lock = threading.Lock()
_pauses = 0
_told = False


@contextlib.contextmanager
def mlflow_autolog_paused(active: bool) -> Iterator[None]:
    """While a call that tidymlflow logs runs, MLflow's flavor autologging (``mlflow.autolog()``,
    ``mlflow.sklearn.autolog()``) creates no runs: the estimators py-tidymodels fits inside are
    part of that call's run. Counted, so that overlapping calls in threads nest; MLflow's flag is
    process-wide. Never imports MLflow: when the user has not imported it, its autologging is off."""
    utils = sys.modules.get("mlflow.utils.autologging_utils") if active else None
    if utils is None or not getattr(utils, "AUTOLOGGING_INTEGRATIONS", None):
        yield
        return
    global _pauses, _told
    with _pause_lock:
        _pauses += 1
        if _pauses == 1:
            setattr(utils, "_AUTOLOGGING_GLOBALLY_DISABLED", True)  # noqa: B010
        tell, _told = not _told, True
    if tell:
        logger.info("tidymlflow: MLflow's own autologging is on; inside py-tidymodels calls tidymlflow "
                    "records the run, so MLflow's flavor autologging is paused there (only there)")
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0:
                setattr(utils, "_AUTOLOGGING_GLOBALLY_DISABLED", False)  # noqa: B010


# -- library calls reached without their patch -------------------------------------------------------
def running_original(codes: dict[int, str]) -> str | None:
    """The name of a patched library function whose ORIGINAL code (by identity) is running in
    this thread (reached through a reference bound before ``autolog()``), or None."""
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        name = codes.get(id(frame.f_code))
        if name is not None:
            return name
        frame = frame.f_back
    return None


def library_on_stack(packages: frozenset[str]) -> bool:
    """True when code of one of ``packages`` (top-level package names) is running in this
    thread, below the current frame: the library called whoever is calling now."""
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if isinstance(name, str) and name.partition(".")[0] in packages:
            return True
        frame = frame.f_back
    return False
