"""The one interface between the two sides: where a committed job goes.

The user's side (the engine, calls, read-your-writes, read-back) knows a writer only as a
:class:`Writer`; :mod:`tidymlflow._writer.client` implements it twice (the writer process, or
writing in the user's process) and ``autolog()`` plugs that module in with :func:`provide`. So
no module of the user's side imports the writer's modules, and neither side asks which kind of
writer it has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

#: Seconds the user's process waits at exit, and a read-back waits, for the writer
#: (``TIDYMLFLOW_EXIT_TIMEOUT``).
EXIT_TIMEOUT = 60.0


class Writer(Protocol):
    """What the user's process can ask of the writer it hands its jobs to."""

    #: True when each job is written before ``submit`` returns (the in-process writer): its
    #: reports are then told right after the call, not at the next one.
    synchronous: bool
    #: Runs ``tidymlflow.flush()`` has returned so far.
    flushed: int

    def submit(self, job: str, handles: Sequence[str], call: str) -> list[str]:
        """Hand over the committed job folder ``job`` of the call named ``call``, whose runs are
        ``handles``; the errors of its parts when it was written at once, else []. Never waits."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every job handed over so far is written or kept; False on timeout."""
        ...

    def pending(self) -> bool:
        """Jobs were handed over and not answered yet (no wait, no network)."""
        ...

    def outstanding(self) -> int:
        """How many jobs were handed over and not answered yet (no wait, no network)."""
        ...

    def run_id(self, handle: str, timeout: float | None = None) -> str | None:
        """The MLflow run id of a run handle, once its job is written (waits at most ``timeout``)."""
        ...

    def written(self) -> list[str]:
        """The ids of the runs created so far, in the order they were written."""
        ...

    def report(self) -> None:
        """Tell what the writer reported since the last time (warnings; raises in strict mode)."""
        ...

    def close(self, timeout: float) -> None:
        """At exit: wait (bounded) for the jobs handed over, then let go."""
        ...


_get: Callable[[], Writer] | None = None
_current: Callable[[], Writer | None] | None = None


def provide(get: Callable[[], Writer], current: Callable[[], Writer | None]) -> None:
    """Plug in the writer: ``get()`` starts one on first use, ``current()`` never starts one."""
    global _get, _current
    _get, _current = get, current


def get() -> Writer:
    """The writer of this process (started on first use)."""
    if _get is None:
        raise RuntimeError("tidymlflow: no writer was provided (autolog() provides it)")
    return _get()


def current() -> Writer | None:
    """The writer, if one was started."""
    return None if _current is None else _current()


Provided = tuple["Callable[[], Writer] | None", "Callable[[], Writer | None] | None"]


def provided() -> Provided:
    """What is plugged in now (for :func:`restore`)."""
    return _get, _current


def restore(saved: Provided) -> None:
    """Plug back what :func:`provided` returned."""
    global _get, _current
    _get, _current = saved
