"""The writer process (``python -m tidymlflow._worker``): reads job folders from its stdin, writes
them to MLflow in order and answers on its stdout (see :mod:`tidymlflow._service` for the user's
side). It runs in a session of its own, so Ctrl-C in the user's terminal does not reach it; when
the user's process has gone, it writes what it has and leaves."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

from tidymlflow import _journal

#: Seconds the writer leaves an unreachable tracking URI alone before it tries again.
RETRY_AFTER = 30.0


def main() -> None:
    """Entry of ``python -m tidymlflow._worker``: read jobs from stdin, answer on stdout."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints of libraries go to the log, never into the answers
    sys.stdout = sys.stderr
    plotter = _Plotter.start(out.fileno())  # forked now, before any thread exists
    inbox: deque[dict[str, Any] | None] = deque()
    ready = threading.Condition()
    threading.Thread(target=_inbox, args=(sys.stdin.buffer, inbox, ready, plotter), daemon=True).start()
    with ready:
        ready.wait_for(lambda: bool(inbox))
        hello = inbox.popleft()
    if hello is None:
        return
    sys.argv = list(hello.get("argv") or ["python"])
    sys.path[:0] = [p for p in hello.get("path", []) if p not in sys.path]
    worker = _Worker(lambda m: out.write(json.dumps(m) + "\n"),
                     lambda: [m["path"] for m in list(inbox) if m is not None and m.get("op") == "job"],
                     plotter)
    worker.warm(hello.get("warm"))
    while True:
        with ready:
            ready.wait_for(lambda: bool(inbox))
            message = inbox.popleft()
        if message is None:
            break
        worker.handle(message)
    worker.retry_kept()
    if plotter is not None:
        plotter.close()


def _fresh_sqlite(target: dict[str, Any]) -> str | None:
    """The URI of the job's tracking store when it is a sqlite file that does not exist yet."""
    from mlflow import get_tracking_uri

    uri = get_tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?")[0]
    return None if os.path.exists(os.path.join(target.get("cwd", "."), path)) else uri


def _create_sqlite(uri: str) -> None:
    """Create a new sqlite store aside (MLflow's tables, its default experiment) and put it in
    place only if the file still does not exist. The user's script may be creating the same
    store right now; two processes building one file collide, and this way the script never sees
    a half-built store of ours. Creating it here, while the script starts, takes MLflow's
    migrations (1-2 s) off the script's exit."""
    from mlflow.tracking._tracking_service.utils import _get_sqlalchemy_store

    path, _, query = uri[len("sqlite:///"):].partition("?")
    path = os.path.abspath(path)
    aside = f"{path}.tidymlflow-{os.getpid()}"
    try:
        store = _get_sqlalchemy_store(f"sqlite:///{aside}" + (f"?{query}" if query else ""), None)
        store.engine.dispose()
        os.link(aside, path)  # fails if the file appeared meanwhile: then it is the script's
    except FileExistsError:
        pass
    finally:
        for leftover in (aside, f"{aside}-journal", f"{aside}-wal", f"{aside}-shm"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)


class _Plotter:
    """A second process that draws each job's plots as soon as the job arrives, while the
    writer imports MLflow, opens the store and writes the jobs before it: on a machine with two
    cores the plots are then mostly ready when their job's turn comes. A plot whose drawing
    process failed is drawn in the writer instead."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.futures: dict[tuple[str, str, str], Any] = {}
        self.lock = threading.Lock()

    @classmethod
    def start(cls, answers: int) -> _Plotter | None:
        """Fork the plotting process (Linux; elsewhere the writer draws). It lets go of the
        writer's pipes at once: the user's process must see them close when the writer dies."""
        import concurrent.futures
        import multiprocessing

        if not sys.platform.startswith("linux") or os.environ.get("TIDYMLFLOW_PLOT_PROCESS") == "0":
            return None
        try:
            pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("fork"), initializer=_plot_process,
                initargs=(answers,))
            pool.submit(int).result(timeout=60)  # the process exists now
        except Exception:
            return None
        return cls(pool)

    def submit(self, job: str) -> None:
        from tidymlflow._deliver import draw_plot

        try:
            manifest = _journal.load(job)
            for rec in manifest["runs"]:
                for plot in rec["plots"]:
                    future = self.pool.submit(draw_plot, job, rec["files"], plot)
                    with self.lock:
                        self.futures[(job, rec["files"], plot["name"])] = future
        except Exception:  # the writer draws what was not handed over
            return

    def draw(self, job: str, files: str, plot: dict[str, Any]) -> str | None:
        """The outcome of a plot handed over (waiting for it), else drawn here."""
        from concurrent.futures import BrokenExecutor

        from tidymlflow._deliver import draw_plot

        with self.lock:
            future = self.futures.pop((job, files, plot["name"]), None)
        if future is not None:
            try:
                result: str | None = future.result(timeout=300)
                return result
            except (BrokenExecutor, TimeoutError):
                pass
        return draw_plot(job, files, plot)

    def forget(self, job: str) -> None:
        """A job is done: drop (or cancel) what is left of its plots."""
        with self.lock:
            for key in [k for k in self.futures if k[0] == job]:
                self.futures.pop(key).cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _plot_process(answers: int) -> None:
    """The plotting process starts: without the writer's pipes, with what drawing needs, and
    gone within a second when the writer is gone (killed, say)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, answers):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    writer = os.getppid()

    def orphaned() -> None:
        while os.getppid() == writer:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=orphaned, name="tidymlflow-plots-watch", daemon=True).start()
    _warm_plots()


def _warm_plots() -> None:
    """The plotting process imports what drawing needs once."""
    with contextlib.suppress(Exception):
        import matplotlib.backends.backend_agg  # noqa: F401
        import plotly.graph_objects  # noqa: F401
        import pyarrow.parquet  # noqa: F401


def superseded(jobs: list[str], limit: int = 20) -> frozenset[tuple[str, str]]:
    """(run handle, plot) pairs that a job already waiting draws again into a run logged before,
    such as the forecast an ``evaluate()`` redraws with its test rows: drawing them now would be
    overwritten at once."""
    found: set[tuple[str, str]] = set()
    for job in jobs[:limit]:
        try:
            manifest = _journal.load(job)
        except (OSError, ValueError):
            continue
        found |= {(rec["handle"], plot["name"]) for rec in manifest.get("runs", ())
                  if rec.get("kind") == "existing" for plot in rec.get("plots", ())}
    return frozenset(found)


def _inbox(stream: IO[bytes], inbox: deque[dict[str, Any] | None], ready: threading.Condition,
           plotter: _Plotter | None = None) -> None:
    """Read messages as they come, so that the user's process never blocks on a full pipe; a
    job's plots start drawing at once in the plotting process."""
    for line in stream:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if plotter is not None and message.get("op") == "job":
            plotter.submit(message["path"])
        with ready:
            inbox.append(message)
            ready.notify()
    with ready:
        inbox.append(None)
        ready.notify()


class _Worker:
    """Delivers jobs in order. A job that fails in a way that may pass is kept and tried again
    at most every ``RETRY_AFTER`` seconds, oldest first; while a tracking server is out of reach,
    its new jobs are kept without an attempt (the user's script is never slowed by it)."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any],
                 queued: Callable[[], list[str]] = list, plotter: _Plotter | None = None) -> None:
        from tidymlflow._deliver import Deliverer

        self._answer = answer
        self._queued = queued
        self.plotter = plotter
        self.deliverer = Deliverer(apply_target=True, plotter=plotter.draw if plotter else None)
        self.paused: dict[str, tuple[float, str]] = {}  # journal -> (until, why)
        self.kept: dict[str, list[list[Any]]] = {}  # journal -> [[job, next try]]

    def answer(self, message: dict[str, Any]) -> None:
        try:
            self._answer(message)
        except (OSError, ValueError):  # the user's process is gone: write on, answer no more
            pass

    def warm(self, target: dict[str, Any] | None) -> None:
        """Import MLflow, open the store, then import the plotting libraries, while the user's
        script is still starting (its first calls then cost the writer little)."""
        if target is not None:
            self._open_store(target)
        if self.plotter is None:  # no plotting process: the writer draws
            _warm_plots()

    def _open_store(self, target: dict[str, Any]) -> None:
        try:
            with self.deliverer._target(target):
                fresh = _fresh_sqlite(target)
                if fresh is not None:
                    _create_sqlite(fresh)
                from mlflow import MlflowClient

                MlflowClient().search_experiments(max_results=1)
        except Exception as exc:  # a server out of reach: its first jobs are kept without a wait
            from tidymlflow._deliver import _unreachable

            if _unreachable(exc):
                journal = _journal.folder(_journal.uri_key(target["tracking_uri"], target["cwd"]))
                self.paused[journal] = (time.monotonic() + RETRY_AFTER, f"{type(exc).__name__}: {exc}")

    def handle(self, message: dict[str, Any]) -> None:
        if message.get("op") != "job":
            return
        job, seq = message["path"], int(message["seq"])
        journal = os.path.dirname(job)
        self.retry_kept()
        until, why = self.paused.get(journal, (0.0, ""))
        if time.monotonic() < until:
            self.kept.setdefault(journal, []).append([job, until])
            self.answer({"op": "job", "seq": seq, "path": job, "kept": why})
            return
        self._deliver(job, seq)

    def _deliver(self, job: str, seq: int | None) -> bool:
        """Deliver one job and answer; False when it is kept."""
        from tidymlflow._deliver import Undelivered

        journal = os.path.dirname(job)
        answer: dict[str, Any] = ({"op": "job", "seq": seq, "path": job} if seq is not None
                                  else {"op": "late", "late": True, "path": job})
        call = ""
        with _journal.locked(job) as ours:
            if not ours:  # tidymlflow sync has it, or it is gone
                self.answer(answer)
                return True
            try:
                call = str(_journal.load(job).get("call", ""))
                result = self.deliverer.deliver(job, superseded(self._queued()))
            except Undelivered as exc:
                if exc.unreachable:
                    self.paused[journal] = (time.monotonic() + RETRY_AFTER, str(exc))
                if seq is not None:
                    self.kept.setdefault(journal, []).append([job, time.monotonic() + RETRY_AFTER])
                    self.answer({**answer, "kept": str(exc)})
                return False
            except Exception as exc:  # a job that cannot be read: say so, leave it for sync
                self.answer({**answer, "call": call, "errors": [f"{type(exc).__name__}: {exc}"]})
                return True
            _journal.remove(job)
        if self.plotter is not None:
            self.plotter.forget(job)
        self.answer({**answer, "call": call, "runs": result.runs, "created": result.created,
                     "errors": result.errors})
        return True

    def retry_kept(self) -> None:
        """Try the kept jobs that are due, oldest first; a server out of reach stops its journal."""
        now = time.monotonic()
        for journal, jobs in list(self.kept.items()):
            if now < self.paused.get(journal, (0.0, ""))[0]:
                continue
            for entry in list(jobs):
                if entry[1] > now:
                    continue
                if self._deliver(entry[0], None):
                    jobs.remove(entry)
                elif now < self.paused.get(journal, (0.0, ""))[0]:
                    break
                else:
                    entry[1] = now + RETRY_AFTER
            if not jobs:
                del self.kept[journal]


if __name__ == "__main__":
    main()
