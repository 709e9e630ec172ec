"""Delivery lanes: the jobs of each remote tracking server are written in a process of their own,
one after the other, so a slow or hung server never delays the jobs of another store (no
head-of-line blocking). Jobs for a local store (sqlite, files) are written by the writer itself.

Delivery sets MLflow's process-wide state for each job (tracking URI, environment, working
folder), so two targets cannot be written by two threads of one process: a lane is a process
forked from the writer, with a queue of its own in the writer (:class:`Lanes`). A lane leaves
when it has had nothing to do for ``LANE_IDLE`` seconds and comes back with the next job.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from tidymlflow._jobs import journal as _journal
from tidymlflow._jobs.records import JobTarget, Manifest
from tidymlflow._writer.plotpool import helper_process

#: Seconds a lane with nothing to do stays.
LANE_IDLE = 60.0
#: Tracking URIs written in a lane (a server); any other store is local.
REMOTE = ("http://", "https://", "databricks")


def remote(target: JobTarget) -> bool:
    """Whether the target's store is a server (written in a lane)."""
    uri = target.tracking_uri or target.env.get("MLFLOW_TRACKING_URI") or ""
    return uri.startswith(REMOTE)


@dataclass(frozen=True)
class Outcome:
    """What a lane did with a job: ``done`` (with runs, created, errors), ``kept`` (``message``;
    ``unreachable`` when the server is out of reach), ``error`` (a job that cannot be written) or
    ``gone`` (``tidymlflow sync`` has it)."""

    kind: str
    runs: dict[str, str] = field(default_factory=dict)
    created: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    message: str = ""
    unreachable: bool = False


_deliverer: Any = None


def deliver(path: str, manifest: Manifest, env: dict[str, str] | None) -> Outcome:
    """Write one job, in a lane's process."""
    global _deliverer
    from tidymlflow._writer.delivery import Deliverer
    from tidymlflow._writer.failures import Undelivered

    if _deliverer is None:
        _deliverer = Deliverer(apply_target=True)
    with _journal.locked(path) as ours:
        if not ours:
            return Outcome("gone")
        try:
            result = _deliverer.deliver(path, manifest, frozenset, env)
        except Undelivered as exc:
            return Outcome("kept", message=str(exc), unreachable=exc.unreachable)
        except Exception as exc:
            return Outcome("error", errors=(f"{type(exc).__name__}: {exc}",))
        _journal.remove(path)
    return Outcome("done", result.runs, tuple(result.created), tuple(result.errors))


class Lanes:
    """One lane per remote journal: a process and the jobs waiting for it. ``settled(key,
    outcome)`` is called from a pool's thread when a job is done: it must only hand the outcome
    over (the writer's state is changed by its own thread)."""

    def __init__(self, settled: Callable[[Any, Outcome | BaseException], None], listener: int) -> None:
        self.settled = settled
        self.listener = listener  # the writer's listening socket: a lane lets go of it at once
        self.pools: dict[str, Any] = {}  # journal -> a one-process pool
        self.in_flight: dict[str, int] = {}
        self.used: dict[str, float] = {}

    def submit(self, journal: str, key: Any, path: str, manifest: Manifest,
               env: dict[str, str] | None) -> None:
        """Hand a job to its journal's lane (started if it is not running)."""
        pool = self.pools.get(journal)
        if pool is None:
            pool = self.pools[journal] = helper_process(self.listener)
        self.in_flight[journal] = self.in_flight.get(journal, 0) + 1
        self.used[journal] = time.monotonic()
        future = pool.submit(deliver, path, manifest, env)
        future.add_done_callback(lambda done: self._done(journal, key, done))

    def _done(self, journal: str, key: Any, done: Future[Outcome]) -> None:
        self.in_flight[journal] -= 1
        self.used[journal] = time.monotonic()
        try:
            outcome: Outcome | BaseException = done.result()
        except BaseException as exc:  # the lane's process died: the job stays for a retry
            outcome = exc
            with contextlib.suppress(Exception):
                self.pools.pop(journal).shutdown(wait=False)
        self.settled(key, outcome)

    def busy(self, journal: str | None = None) -> bool:
        """Jobs are being written in a lane (of ``journal``, or any)."""
        if journal is not None:
            return self.in_flight.get(journal, 0) > 0
        return any(self.in_flight.values())

    def rest(self) -> None:
        """Lanes idle for ``LANE_IDLE`` seconds leave."""
        now = time.monotonic()
        for journal in [j for j, t in self.used.items() if now - t > LANE_IDLE and not self.busy(j)]:
            pool = self.pools.pop(journal, None)
            self.used.pop(journal, None)
            if pool is not None:
                pool.shutdown(wait=False)

    def close(self) -> None:
        """The writer leaves: the jobs in the lanes are finished first."""
        for pool in list(self.pools.values()):
            pool.shutdown(wait=True)
        self.pools.clear()

