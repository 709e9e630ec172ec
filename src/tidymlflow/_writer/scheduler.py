"""The writer's order of work: jobs delivered as they come, a job that may pass kept and tried
again later, the jobs for an unreachable server paused together, and the scripts answered."""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tidymlflow._jobs import journal as _journal
from tidymlflow._jobs.records import Done, Hello, JobTarget, Manifest, ToScript
from tidymlflow._writer import lanes, plotpool, upkeep
from tidymlflow._writer.delivery import Deliverer, Result
from tidymlflow._writer.failures import Undelivered, unreachable
from tidymlflow._writer.plotpool import PlotPool, freeze_heap, warm_plots

#: Seconds the writer leaves an unreachable tracking URI alone before it tries again.
RETRY_AFTER = 30.0
#: Jobs waiting in the queue that are looked at for plots they draw again.
LOOK_AHEAD = 20
#: Seconds a job of a script that has ended must have waited before a writer takes it over.
ADOPT_AFTER = 10.0

#: How the writer answers the script that handed a job over.
Answer = Callable[[ToScript], None]


@dataclass
class Job:
    """A job as the writer holds it from its arrival: its folder, the script's number for it,
    the call's name and its manifest, read once (None, with ``error``, when it cannot be read)."""

    path: str
    seq: int | None
    call: str
    manifest: Manifest | None
    error: str = ""
    env: dict[str, str] | None = None  # its script's environment (None: the writer's own)

    @property
    def journal(self) -> str:
        return os.path.dirname(self.path)


@dataclass
class _Kept:
    job: Job
    due: float
    answer: Answer


@dataclass
class _Waiting:
    """A job waiting for its server's lane (``late``: a kept job tried again; its script is not
    answered unless it is written)."""

    job: Job
    answer: Answer
    late: bool


@dataclass
class _Carrying:
    """A job written but for what it left to the next job, which continues its run: it stays
    in the journal, and its script waits for its answer, until the next job is written."""

    job: Job
    answer: Answer
    result: Result


def continued(job: Job, queued: Sequence[Job]) -> str | None:
    """The handle of a run that ``job`` creates and that the next job waiting continues, alone
    and into the same store (a fit's ``evaluate()`` queued behind it): that job writes the
    run's batch, inputs and end with its own (:class:`~tidymlflow._writer.delivery.Carry`)."""
    after = queued[0] if queued else None
    if (job.manifest is None or after is None or after.manifest is None or after.journal != job.journal
            or after.manifest.target != job.manifest.target or len(after.manifest.runs) != 1):
        return None
    rec = after.manifest.runs[0]
    if rec.kind != "existing" or rec.shared:
        return None
    return rec.handle if any(r.handle == rec.handle and r.kind == "new" and not r.shared
                             for r in job.manifest.runs) else None


def superseded(queued: Sequence[Job]) -> frozenset[tuple[str, str]]:
    """(run handle, plot) pairs that a job already waiting draws again into a run logged before,
    such as the forecast an ``evaluate()`` redraws with its test rows: drawing them now would be
    overwritten at once."""
    found: set[tuple[str, str]] = set()
    for job in queued[:LOOK_AHEAD]:
        if job.manifest is not None:
            found |= job.manifest.redraws()
    return frozenset(found)


def _nobody(message: ToScript) -> None:
    """The answer to a job whose script has ended."""


class Scheduler:
    """Delivers jobs in order. A job that fails in a way that may pass is kept and tried again
    at most every ``RETRY_AFTER`` seconds, oldest first; while a tracking server is out of reach,
    its new jobs are kept without an attempt (the user's script is never slowed by it)."""

    def __init__(self, queued: Callable[[], Sequence[Job]] = list, plotter: PlotPool | None = None,
                 listener: int = -1) -> None:
        upkeep.persist_sqlite_journal()  # this process is tidymlflow's own
        self._queued = queued
        self.plotter = plotter
        self.deliverer = Deliverer(apply_target=True, helpers=plotter)
        self.paused: dict[str, tuple[float, str]] = {}  # journal -> (until, why)
        self.kept: dict[str, list[_Kept]] = {}  # journal -> kept jobs, oldest first
        self.stores = upkeep.StoreWatch()
        self.orphans: deque[str] = deque()  # jobs of ended scripts that no writer is writing
        self._next_scan = 0.0
        # a server's jobs are written in a lane of its own, one at a time, the others waiting here
        self.lanes = lanes.Lanes(self._settled, listener)
        self.waiting: dict[str, deque[_Waiting]] = {}
        self.outcomes: deque[tuple[_Waiting, lanes.Outcome | BaseException]] = deque()
        self.wake: Callable[[], None] = lambda: None  # the writer's thread has outcomes to settle
        self.carrying: _Carrying | None = None

    def idle(self) -> bool:
        """Nothing to write, retry or adopt, and no lane writing: the writer may rest."""
        return not (self.kept or self.orphans or self.outcomes or self.lanes.busy()
                    or any(self.waiting.values()) or self.carrying)

    def hello(self, message: Hello) -> None:
        """A script has connected: take its ``sys.path`` (the key made it this writer's own)
        and get its store ready while the script is still starting."""
        sys.path[:0] = [p for p in message.path if p not in sys.path]
        self.warm(message.warm, message.absent, message.env or None)
        self.scan()

    def warm(self, target: JobTarget | None, absent: bool = False, env: dict[str, str] | None = None) -> None:
        """Import MLflow, open the store, then import the plotting libraries, while the user's
        script is still starting (its first calls then cost the writer little). ``absent``: the
        store was a sqlite file that did not exist when the script called ``autolog()``."""
        plotpool.settled()  # MLflow, which the writer's first thread imports (server.PRELOAD)
        if target is not None:
            self._open_store(target, absent, env)
        if self.plotter is None:  # no plotting process: the writer draws
            warm_plots()
        freeze_heap()

    def _open_store(self, target: JobTarget, absent: bool, env: dict[str, str] | None) -> None:
        """Open the script's store. A sqlite file the script created after ``autolog()`` is
        left alone: the script may still be creating its tables, and two processes migrating
        one file collide."""
        try:
            with self.deliverer.target(target, env):
                self.stores.check()
                fresh = upkeep.fresh_sqlite(target.cwd)
                if fresh is not None:
                    if not upkeep.create_sqlite(fresh):
                        return  # the script's file came first
                elif absent:
                    return  # the script has created it since autolog()
                from mlflow import MlflowClient

                MlflowClient().search_experiments(max_results=1)
                self.stores.check()  # the file it has open now
        except Exception as exc:  # a server out of reach: its first jobs are kept without a wait
            if unreachable(exc):
                journal = _journal.folder(_journal.uri_key(target.tracking_uri, target.cwd))
                self.paused[journal] = (time.monotonic() + RETRY_AFTER, f"{type(exc).__name__}: {exc}")

    def handle(self, job: Job, answer: Answer) -> None:
        """A job has come: deliver it, or keep it while its server is out of reach."""
        self.retry_kept()
        until, why = self.paused.get(job.journal, (0.0, ""))
        if time.monotonic() < until:
            self.finish_carry()  # not the job that writes what the one before left
            self.kept.setdefault(job.journal, []).append(_Kept(job, until, answer))
            answer(Done(job.seq, job.path, job.call, kept=why))
            return
        if job.manifest is not None and lanes.remote(job.manifest.target):
            self.finish_carry()
            self._queue(_Waiting(job, answer, False))
            return
        self._deliver(job, answer)

    # -- lanes: a server's jobs in a process of their own --------------------------------------------
    def _queue(self, waiting: _Waiting) -> None:
        self.waiting.setdefault(waiting.job.journal, deque()).append(waiting)
        self._next(waiting.job.journal)

    def _next(self, journal: str) -> None:
        """Hand the next waiting job of a server to its lane when none is being written there;
        while the server is out of reach its waiting jobs are kept without an attempt."""
        queue = self.waiting.get(journal)
        while queue and not self.lanes.busy(journal):
            waiting = queue.popleft()
            until, why = self.paused.get(journal, (0.0, ""))
            if time.monotonic() < until:
                self._keep(waiting, until, why)
                continue
            job = waiting.job
            if job.manifest is not None:  # always: only readable jobs wait for a lane
                self.lanes.submit(journal, waiting, job.path, job.manifest, job.env)

    def _settled(self, waiting: _Waiting, outcome: lanes.Outcome | BaseException) -> None:
        """A lane is done with a job (called in a pool's thread: only handed over)."""
        self.outcomes.append((waiting, outcome))
        self.wake()

    def settle(self) -> None:
        """Answer the jobs the lanes are done with, and hand them their next."""
        while self.outcomes:
            waiting, outcome = self.outcomes.popleft()
            self._apply(waiting, outcome)
            self._next(waiting.job.journal)

    def _apply(self, waiting: _Waiting, outcome: lanes.Outcome | BaseException) -> None:
        job, seq = waiting.job, None if waiting.late else waiting.job.seq
        if isinstance(outcome, BaseException) or outcome.kind == "kept":
            why = (outcome.message if isinstance(outcome, lanes.Outcome)
                   else f"{type(outcome).__name__}: {outcome}")
            if isinstance(outcome, lanes.Outcome) and outcome.unreachable:
                self.paused[job.journal] = (time.monotonic() + RETRY_AFTER, why)
            self._keep(waiting, time.monotonic() + RETRY_AFTER, why)
            return
        if self.plotter is not None:
            self.plotter.forget(job.path)
        waiting.answer(Done(seq, job.path, job.call, runs=outcome.runs, created=outcome.created,
                            errors=outcome.errors))

    def _keep(self, waiting: _Waiting, due: float, why: str) -> None:
        self.kept.setdefault(waiting.job.journal, []).append(_Kept(waiting.job, due, waiting.answer))
        if not waiting.late:
            waiting.answer(Done(waiting.job.seq, waiting.job.path, waiting.job.call, kept=why))

    def _deliver(self, job: Job, answer: Answer, late: bool = False) -> bool:
        """Deliver one job and answer; False when it is kept. A job whose run the next job
        waiting continues leaves part of it to that job (:func:`continued`)."""
        plotpool.settled()
        held = self._take_carry(job)
        seq = None if late else job.seq
        with _journal.locked(job.path) as ours:
            if not ours:  # tidymlflow sync has it, or it is gone
                answer(Done(seq, job.path, job.call))
                self._finish(held)
                return True
            try:
                if job.manifest is None:
                    raise ValueError(job.error)
                result = self.deliverer.deliver(job.path, job.manifest, lambda: superseded(self._queued()),
                                                job.env, held.result.carried if held else None,
                                                None if late else continued(job, self._queued()))
            except Undelivered as exc:
                if exc.unreachable:
                    self.paused[job.journal] = (time.monotonic() + RETRY_AFTER, str(exc))
                if held is not None and exc.unreachable:  # what it left was not written: kept too
                    self._keep_held(held, str(exc))
                elif held is not None:  # written in whole now (its run ends as it would have)
                    self._finish(held)
                if not late:
                    self.kept.setdefault(job.journal, []).append(_Kept(job, time.monotonic() + RETRY_AFTER,
                                                                       answer))
                    answer(Done(seq, job.path, job.call, kept=str(exc)))
                return False
            except Exception as exc:  # a job that cannot be read: say so, leave it for sync
                answer(Done(seq, job.path, job.call, errors=(f"{type(exc).__name__}: {exc}",)))
                self._finish(held)
                return True
            if result.carried is not None:  # never for a job written late
                self.carrying = _Carrying(job, answer, result)
                return True
            _journal.remove(job.path)
        self._done(job, answer, seq, result)
        if held is not None:
            with _journal.locked(held.job.path) as ours:
                if ours:
                    _journal.remove(held.job.path)
            self._done(held.job, held.answer, held.job.seq, held.result)
        return True

    def _done(self, job: Job, answer: Answer, seq: int | None, result: Result) -> None:
        if self.plotter is not None:
            self.plotter.forget(job.path)
        answer(Done(seq, job.path, job.call, runs=result.runs, created=tuple(result.created),
                    errors=tuple(result.errors)))

    # -- a job that left part of it to the next ----------------------------------------------------
    def _take_carry(self, job: Job) -> _Carrying | None:
        """The job that left part of it to ``job``; a job whose next job is another is
        finished first (:meth:`_finish`)."""
        held, self.carrying = self.carrying, None
        if held is None:
            return None
        carried = held.result.carried
        if (carried is not None and job.manifest is not None and job.journal == held.job.journal
                and [r.handle for r in job.manifest.runs] == [carried.handle]):
            return held
        self._finish(held)
        return None

    def finish_carry(self) -> None:
        """Write what a job left to a next job that has not come (the writer is idle, or leaves)."""
        held, self.carrying = self.carrying, None
        self._finish(held)

    def _finish(self, held: _Carrying | None) -> None:
        """A job that left part of it to a next job that did not write it: delivered again in
        whole, and answered (delivery is idempotent; a replay leaves nothing to another job; a
        job that cannot be written now is kept)."""
        if held is not None:
            self._deliver(held.job, held.answer)

    def _keep_held(self, held: _Carrying, why: str) -> None:
        """The job that left part of it to a job whose server is out of reach: kept with it."""
        self.kept.setdefault(held.job.journal, []).append(
            _Kept(held.job, time.monotonic() + RETRY_AFTER, held.answer))
        held.answer(Done(held.job.seq, held.job.path, held.job.call, kept=why))

    def scan(self) -> None:
        """Look for jobs that scripts which have ended left in this user's journals and that no
        writer has (a writer killed or stopped mid-way, a script that ended before its writer
        could start): they are written when nothing else waits (:meth:`adopt_one`), as
        ``tidymlflow sync`` would, with this writer's environment. At most every
        ``RETRY_AFTER`` seconds."""
        now = time.monotonic()
        if now < self._next_scan:
            return
        self._next_scan = now + RETRY_AFTER
        known = set(self.orphans) | {k.job.path for ks in self.kept.values() for k in ks}
        known |= {job.path for job in self._queued()}
        for folder, _ in _journal.journals():
            if _journal.trusted(folder) is None and now >= self.paused.get(folder, (0.0, ""))[0]:
                self.orphans.extend(job for job in _journal.pending(folder)
                                    if job not in known and _journal.orphaned(job, ADOPT_AFTER))

    def adopt_one(self) -> None:
        """Write one job of an ended script (see :meth:`scan`); kept for a retry if it cannot be."""
        self.scan()
        while self.orphans:
            path = self.orphans.popleft()
            if not os.path.isdir(path):
                continue
            try:
                job = Job(path, None, "", _journal.manifest(path))
            except Exception:  # unreadable: left for `tidymlflow sync`, which says why
                continue
            if job.manifest is not None and lanes.remote(job.manifest.target):
                self._queue(_Waiting(job, _nobody, True))
            elif not self._deliver(job, _nobody, late=True):
                self.kept.setdefault(job.journal, []).append(_Kept(job, time.monotonic() + RETRY_AFTER,
                                                                   _nobody))
            return

    def retry_kept(self) -> None:
        """Try the kept jobs that are due, oldest first; a server out of reach stops its journal."""
        now = time.monotonic()
        for journal, entries in list(self.kept.items()):
            if now < self.paused.get(journal, (0.0, ""))[0]:
                continue
            for entry in list(entries):
                if entry.due > now:
                    continue
                if entry.job.manifest is not None and lanes.remote(entry.job.manifest.target):
                    entries.remove(entry)  # kept again if its lane cannot write it
                    self._queue(_Waiting(entry.job, entry.answer, True))
                    continue
                if self._deliver(entry.job, entry.answer, late=True):
                    entries.remove(entry)
                elif now < self.paused.get(journal, (0.0, ""))[0]:
                    break
                else:
                    entry.due = now + RETRY_AFTER
            if not entries:
                del self.kept[journal]
