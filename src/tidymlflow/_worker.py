"""The writer process (``python -m tidymlflow._worker``): scripts connect to its unix socket (see
:mod:`tidymlflow._daemon` for how they find it and :mod:`tidymlflow._service` for their side) and
hand it job folders; it writes them to MLflow in order and answers each script. It runs in a
session of its own, so Ctrl-C in the user's terminal does not reach it; when its scripts have
gone, it writes what it has, waits a while for the next script, and leaves."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tidymlflow import _daemon, _journal

#: Seconds the writer leaves an unreachable tracking URI alone before it tries again.
RETRY_AFTER = 30.0
#: Plotting processes: two where there are two cores, so that a fit's plots draw side by side
#: (at a script's end nothing else runs).
PLOT_PROCESSES = 2 if (os.cpu_count() or 1) >= 2 else 1
#: Seconds without a job after which the writer counts as idle while a script is connected.
QUIET = 30.0
#: How the writer answers the script that handed a job over.
Answer = Callable[[dict[str, Any]], None]


def main(argv: list[str] | None = None) -> None:
    """Entry of ``python -m tidymlflow._worker --listen FD --socket PATH --lock PATH --idle S``:
    serve the scripts that connect to the listening socket ``FD`` (one JSON message a line each
    way), write their jobs in the order they come, and leave ``S`` seconds after the last script
    has gone and every job is written or kept."""
    parser = argparse.ArgumentParser(prog="python -m tidymlflow._worker")
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--lock", required=True)
    parser.add_argument("--idle", type=float, default=0.0)
    args = parser.parse_args(argv)
    os.dup2(2, 1)  # stray prints of libraries go to the log
    sys.stdout = sys.stderr
    listener = socket.socket(fileno=args.listen)
    plotter = _Plotter.start(args.listen)  # forked now, before the writer's own threads
    hall = _Hall(listener, args.socket, args.lock, args.idle, plotter)
    worker = _Worker(lambda: [m["path"] for _, m in hall.queued() if m.get("op") == "job"], plotter)
    hall.serve(worker)
    worker.retry_kept()
    if plotter is not None:
        plotter.close()


class _Hall:
    """The writer's side of its socket: a thread accepts scripts, a thread per script reads its
    messages into one queue, which the writer works through in order; answers go back to the
    script that asked. When no script is connected and nothing is left to do for ``idle``
    seconds, the hall closes (under the key's lock, so no script connects meanwhile)."""

    def __init__(self, listener: socket.socket, path: str, lock: str, idle: float,
                 plotter: _Plotter | None) -> None:
        self.listener, self.path, self.lock, self.idle = listener, path, lock, idle
        self.plotter = plotter
        self.inbox: deque[tuple[_Client, dict[str, Any] | None]] = deque()
        self.ready = threading.Condition()
        self.idle_since: float | None = time.monotonic()
        self.closed = False
        self.served = False  # a script has come and gone
        self.members: set[_Client] = set()  # the scripts connected now

    def queued(self) -> list[tuple[_Client, dict[str, Any]]]:
        with self.ready:
            return [(c, m) for c, m in self.inbox if m is not None]

    def serve(self, worker: _Worker) -> None:
        threading.Thread(target=self._accept, name="tidymlflow-accept", daemon=True).start()
        while True:
            with self.ready:
                if not self.inbox and not self.members:
                    self.idle_since = self.idle_since or time.monotonic()
                    if self.served and self.idle > 0:  # a script has come and gone, and the
                        self._warm_plotter()              # writer stays for the next one
                if not self.ready.wait_for(lambda: bool(self.inbox) or self.closed, QUIET):
                    self._warm_plotter()  # quiet for a while
                if not self.inbox:
                    if self.closed:
                        return
                    item = None
                else:
                    item = self.inbox.popleft()
                    self.idle_since = None
            if item is None:
                worker.retry_kept()
                continue
            client, message = item
            if message is None:
                client.close()
                with self.ready:
                    self.served = True
            elif message.get("op") == "hello":
                worker.hello(message)
            else:
                worker.handle(message, client.answer)

    def _warm_plotter(self) -> None:
        if self.plotter is not None:
            self.plotter.warm_all()

    def _accept(self) -> None:
        self.listener.settimeout(min(1.0, max(0.05, self.idle / 4)))
        while True:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                if self._leave():
                    return
                continue
            except OSError:
                return
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        # a script that stops reading (stopped in a debugger, say) does not stall the others
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 10, 0))
        client = _Client(conn)
        with self.ready:
            self.idle_since = None
            self.members.add(client)
        self._spare()
        client.answer({"op": "hello", "pid": os.getpid()})
        threading.Thread(target=self._read, args=(client,), name="tidymlflow-client", daemon=True).start()

    def _leave(self) -> bool:
        """Close the hall when it has been idle long enough; a script that connected meanwhile
        is admitted instead."""
        with self.ready:
            since = self.idle_since
        if since is None or time.monotonic() - since < self.idle:
            return False
        with _daemon.locked(self.lock):
            self.listener.setblocking(False)
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                self.listener.close()
                with self.ready:
                    self.closed = True
                    self.ready.notify_all()
                return True
            self.listener.settimeout(min(1.0, max(0.05, self.idle / 4)))
        self._admit(conn)
        return False

    def _read(self, client: _Client) -> None:
        """Read a script's messages as they come, so that it never blocks on a full socket; a
        job's plots start drawing at once in the plotting process."""
        with contextlib.suppress(OSError, ValueError):
            for line in client.conn.makefile("rb"):
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if message.get("op") in ("job", "wait"):
                    client.waiting = message["op"] == "wait"
                    self._spare()
                    if client.waiting:
                        continue
                if self.plotter is not None and message.get("op") == "job":
                    self.plotter.submit(message["path"])
                with self.ready:
                    self.inbox.append((client, message))
                    self.ready.notify()
        with self.ready:
            self.members.discard(client)
            self.inbox.append((client, None))
            self.ready.notify()
        self._spare()

    def _spare(self) -> None:
        """Tell the plotter whether every connected script is waiting for the writer."""
        if self.plotter is not None:
            with self.ready:
                spare = all(c.waiting for c in self.members)
            self.plotter.set_spare(spare)


class _Client:
    """One connected script."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.gone = False
        self.waiting = False  # in flush() or at its exit, until its next job

    def answer(self, message: dict[str, Any]) -> None:
        """Send one answer; a script that has gone is written for, but no longer answered."""
        if self.gone:
            return
        try:
            self.conn.sendall((json.dumps(message) + "\n").encode())
        except (OSError, ValueError):
            self.gone = True

    def close(self) -> None:
        self.gone = True
        with contextlib.suppress(OSError):
            self.conn.close()


def _fresh_sqlite(target: dict[str, Any]) -> str | None:
    """The URI of the job's tracking store when it is a sqlite file that does not exist yet."""
    from mlflow import get_tracking_uri

    uri = get_tracking_uri()
    path = _journal.sqlite_file(uri, target.get("cwd", "."))
    return None if path is None or os.path.exists(path) else uri


def _create_sqlite(uri: str) -> bool:
    """Create a new sqlite store aside (MLflow's tables, its default experiment) and put it in
    place only if the file still does not exist. The user's script may be creating the same
    store right now; two processes building one file collide, and this way the script never sees
    a half-built store of ours. Creating it here, while the script starts, takes MLflow's
    migrations (1-2 s) off the script's exit. False when the script's file came first."""
    from mlflow.tracking._tracking_service.utils import _get_sqlalchemy_store

    path, _, query = uri[len("sqlite:///"):].partition("?")
    path = os.path.abspath(path)
    aside = f"{path}.tidymlflow-{os.getpid()}"
    try:
        store = _get_sqlalchemy_store(f"sqlite:///{aside}" + (f"?{query}" if query else ""), None)
        store.engine.dispose()
        os.link(aside, path)  # fails if the file appeared meanwhile: then it is the script's
        return True
    except FileExistsError:
        return False
    finally:
        for leftover in (aside, f"{aside}-journal", f"{aside}-wal", f"{aside}-shm"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)


class _Plotter:
    """Processes that draw each job's plots as soon as the job arrives, while the writer writes
    the jobs before it: the plots are then mostly ready when their job's turn comes. A plot
    whose drawing process failed is drawn in the writer instead.

    Plots wait in a queue of the writer's own and go to a process only when it is free, so a
    plot that a job arriving later draws again (an ``evaluate()`` redrawing its fit's forecast)
    is dropped before it is drawn. The first process gets ready at once and always draws. The
    others (``PLOT_PROCESSES``) get ready when the writer is first idle (never while it starts
    beside a script) and draw only while no script is computing: while every connected script
    waits for the writer (``flush()``, its exit) or none is connected."""

    def __init__(self, pools: list[Any]) -> None:
        self.pools = pools
        self.ready: list[Any] = [None] * len(pools)  # a future: the process's warm-up
        self.busy = [False] * len(pools)
        self.broken = [False] * len(pools)
        self.spare = False  # may the other processes draw now?
        self.pending: deque[tuple[str, Any, str, str, dict[str, Any]]] = deque()  # handle, ours, job...
        self.futures: dict[tuple[str, str, str], Any] = {}
        self.lock = threading.RLock()

    @classmethod
    def start(cls, listener: int) -> _Plotter | None:
        """Fork the plotting processes (Linux; elsewhere the writer draws). They let go of the
        writer's listening socket at once: scripts must find it refused when the writer dies.
        Each is forked when the one before has started and gone quiet: the only threads then are
        that pool's own, waiting on its own pipes, with no lock a new process would need."""
        import concurrent.futures
        import multiprocessing

        if not sys.platform.startswith("linux") or os.environ.get("TIDYMLFLOW_PLOT_PROCESS") == "0":
            return None
        try:
            context = multiprocessing.get_context("fork")
            pools = [concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=context, initializer=_plot_process, initargs=(listener,))
                for _ in range(PLOT_PROCESSES)]
            for pool in pools:
                pool.submit(int).result(timeout=60)  # the process exists now
        except Exception:
            return None
        plotter = cls(pools)
        plotter.ready[0] = pools[0].submit(_warm_plots)
        return plotter

    def warm_all(self) -> None:
        """The writer is idle: get the other plotting processes ready."""
        for i, pool in enumerate(self.pools):
            if self.ready[i] is None and not self.broken[i]:
                self.ready[i] = pool.submit(_warm_plots, True)
                self.ready[i].add_done_callback(lambda _: self._pump())

    def set_spare(self, spare: bool) -> None:
        """Whether no script is computing now (the other processes may draw)."""
        with self.lock:
            self.spare = spare
        self._pump()

    def submit(self, job: str) -> None:
        """Queue a job's plots; drop the queued plots it draws again."""
        from concurrent.futures import Future

        try:
            manifest = _journal.load(job)
        except Exception:  # the writer draws what was not handed over
            return
        runs = manifest.get("runs", ())
        redrawn = _redraws(manifest)
        with self.lock:
            for handle, queued, _, _, plot in self.pending:
                if (handle, plot["name"]) in redrawn:
                    queued.cancel()
            for rec in runs:
                for plot in rec.get("plots", ()):
                    ours: Future[str | None] = Future()
                    self.futures[(job, rec["files"], plot["name"])] = ours
                    self.pending.append((rec["handle"], ours, job, rec["files"], plot))
        self._pump()

    def _free(self) -> int | None:
        for i in range(len(self.pools)):
            if self.busy[i] or self.broken[i]:
                continue
            if i == 0 or (self.spare and self.ready[i] is not None and self.ready[i].done()):
                return i
        return None

    def _pump(self) -> None:
        """Hand queued plots to free processes (a plot a process cannot take is drawn by the
        writer: its future fails)."""
        from tidymlflow._deliver import draw_plot

        with self.lock:
            while self.pending:
                if all(self.broken):
                    self.pending.popleft()[1].cancel()
                    continue
                i = self._free()
                if i is None:
                    return
                _, ours, job, files, plot = self.pending.popleft()
                if not ours.set_running_or_notify_cancel():
                    continue
                try:
                    inner = self.pools[i].submit(draw_plot, job, files, plot)
                except Exception as exc:
                    self.broken[i] = True
                    ours.set_exception(exc)
                    continue
                self.busy[i] = True
                inner.add_done_callback(lambda done, i=i, ours=ours: self._done(i, ours, done))

    def _done(self, i: int, ours: Any, inner: Any) -> None:
        from concurrent.futures import BrokenExecutor

        try:
            ours.set_result(inner.result())
        except BaseException as exc:
            ours.set_exception(exc)
            self.broken[i] = self.broken[i] or isinstance(exc, BrokenExecutor)
        with self.lock:
            self.busy[i] = False
        self._pump()

    def draw(self, job: str, files: str, plot: dict[str, Any]) -> str | None:
        """The outcome of a plot handed over (waiting for it), else drawn here."""
        from concurrent.futures import BrokenExecutor, CancelledError

        from tidymlflow._deliver import draw_plot

        with self.lock:
            future = self.futures.pop((job, files, plot["name"]), None)
        if future is not None:
            try:
                result: str | None = future.result(timeout=300)
                return result
            except (BrokenExecutor, CancelledError, TimeoutError):
                pass
        return draw_plot(job, files, plot)

    def forget(self, job: str) -> None:
        """A job is done: drop what is left of its plots."""
        with self.lock:
            for key in [k for k in self.futures if k[0] == job]:
                self.futures.pop(key).cancel()

    def close(self) -> None:
        with self.lock:
            for _, ours, *_ in self.pending:
                ours.cancel()
            self.pending.clear()
        for pool in self.pools:
            pool.shutdown(wait=False, cancel_futures=True)


def _plot_process(listener: int) -> None:
    """A plotting process starts: without the writer's socket, and gone within a second when
    the writer is gone (killed, say)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, listener):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    writer = os.getppid()

    def orphaned() -> None:
        while os.getppid() == writer:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=orphaned, name="tidymlflow-plots-watch", daemon=True).start()


def _warm_plots(draw: bool = False) -> None:
    """A process gets ready to draw: it imports what drawing needs and, with ``draw``, draws a
    small figure of each kind once (fonts, templates and encoders load on the first drawing).
    Not while a writer starts beside a script: there it would slow the script down."""
    import io

    with contextlib.suppress(Exception):
        import plotly.graph_objects as go
        import pyarrow.parquet  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if not draw:
            _freeze_heap()
            return
        # pandas and the gallery too (0.4 s on a process's first plot); not at a writer's start,
        # where they would compete with the script starting beside it (+0.16 s measured)
        from tidymlflow.plots import interactive, static  # noqa: F401
        figure = Figure(figsize=(2, 1.5), dpi=50)
        FigureCanvasAgg(figure)
        axes = figure.subplots()
        axes.plot([0, 1], [1, 0])
        axes.set_title("warm-up")
        figure.savefig(io.BytesIO(), format="png")
        go.Figure(go.Scatter(x=[0, 1], y=[1, 0])).to_html(include_plotlyjs="cdn")
        _freeze_heap()


def _freeze_heap() -> None:
    """Leave what this process has loaded (MLflow, matplotlib, plotly, pandas: some 200,000
    objects) out of the garbage collector's full passes from now on. Such a pass otherwise
    comes every few plots or jobs and costs 0.15 s each in a plotting process (0.04 s after
    this). These objects live as long as the process; a process of tidymlflow's own only, never
    the user's. Once per process: its first warm-up is when the libraries are in."""
    import gc

    if gc.get_freeze_count() == 0:
        gc.freeze()


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
        found |= _redraws(manifest)
    return frozenset(found)


def _redraws(manifest: dict[str, Any]) -> set[tuple[str, str]]:
    """(run handle, plot) pairs a job draws again into runs logged before it."""
    return {(rec["handle"], plot["name"]) for rec in manifest.get("runs", ())
            if rec.get("kind") == "existing" for plot in rec.get("plots", ())}


def _reset_mlflow_stores() -> None:
    """Make MLflow open its stores again (a sqlite file was replaced under a writer that lives
    on between scripts)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with SqlAlchemyStore._engine_map_lock:
        for engine in SqlAlchemyStore._engine_map.values():
            engine.dispose()
        SqlAlchemyStore._engine_map.clear()
    for registry in (tracking_utils._tracking_store_registry,
                     registry_utils._model_registry_store_registry):
        if registry is not None:
            registry._get_store_with_resolved_uri.cache_clear()


class _Worker:
    """Delivers jobs in order. A job that fails in a way that may pass is kept and tried again
    at most every ``RETRY_AFTER`` seconds, oldest first; while a tracking server is out of reach,
    its new jobs are kept without an attempt (the user's script is never slowed by it)."""

    def __init__(self, queued: Callable[[], list[str]] = list, plotter: _Plotter | None = None) -> None:
        from tidymlflow._deliver import Deliverer, persist_sqlite_journal

        persist_sqlite_journal()  # this process is tidymlflow's own
        self._queued = queued
        self.plotter = plotter
        self.deliverer = Deliverer(apply_target=True, plotter=plotter.draw if plotter else None)
        self.paused: dict[str, tuple[float, str]] = {}  # journal -> (until, why)
        self.kept: dict[str, list[list[Any]]] = {}  # journal -> [[job, next try, answer]]
        self.stores: dict[str, tuple[int, int] | None] = {}  # sqlite file -> (device, inode)

    def hello(self, message: dict[str, Any]) -> None:
        """A script has connected: take its ``sys.path`` (the key made it this writer's own)
        and get its store ready while the script is still starting."""
        sys.path[:0] = [p for p in message.get("path", []) if p not in sys.path]
        self.warm(message.get("warm"), bool(message.get("absent")))

    def warm(self, target: dict[str, Any] | None, absent: bool = False) -> None:
        """Import MLflow, open the store, then import the plotting libraries, while the user's
        script is still starting (its first calls then cost the writer little). ``absent``: the
        store was a sqlite file that did not exist when the script called ``autolog()``."""
        if target is not None:
            self._open_store(target, absent)
        if self.plotter is None:  # no plotting process: the writer draws
            _warm_plots()
        _freeze_heap()

    def _open_store(self, target: dict[str, Any], absent: bool) -> None:
        """Open the script's store. A sqlite file the script created after ``autolog()`` is
        left alone: the script may still be creating its tables, and two processes migrating
        one file collide."""
        try:
            with self.deliverer._target(target):
                self._forget_replaced_store()
                fresh = _fresh_sqlite(target)
                if fresh is not None:
                    if not _create_sqlite(fresh):
                        return  # the script's file came first
                elif absent:
                    return  # the script has created it since autolog()
                from mlflow import MlflowClient

                MlflowClient().search_experiments(max_results=1)
                self._forget_replaced_store()  # the file it has open now
        except Exception as exc:  # a server out of reach: its first jobs are kept without a wait
            from tidymlflow._deliver import _unreachable

            if _unreachable(exc):
                journal = _journal.folder(_journal.uri_key(target["tracking_uri"], target["cwd"]))
                self.paused[journal] = (time.monotonic() + RETRY_AFTER, f"{type(exc).__name__}: {exc}")

    def _forget_replaced_store(self) -> None:
        """MLflow keeps a store (and its connections) per URI for the life of the process: when a
        sqlite file was deleted or replaced since this writer last used it, MLflow must open it
        again, or the runs would go into the deleted file."""
        from mlflow import get_tracking_uri

        path = _journal.sqlite_file(get_tracking_uri())
        if path is None:
            return
        try:
            info = os.stat(path)
            identity: tuple[int, int] | None = (info.st_dev, info.st_ino)
        except OSError:
            identity = None
        if path in self.stores and self.stores[path] != identity:
            _reset_mlflow_stores()
        self.stores[path] = identity

    def handle(self, message: dict[str, Any], answer: Answer) -> None:
        if message.get("op") != "job":
            return
        job, seq = message["path"], int(message["seq"])
        journal = os.path.dirname(job)
        self.retry_kept()
        until, why = self.paused.get(journal, (0.0, ""))
        if time.monotonic() < until:
            self.kept.setdefault(journal, []).append([job, until, answer])
            answer({"op": "job", "seq": seq, "path": job, "kept": why})
            return
        self._deliver(job, seq, answer)

    def _deliver(self, job: str, seq: int | None, answer: Answer) -> bool:
        """Deliver one job and answer; False when it is kept."""
        from tidymlflow._deliver import Undelivered

        journal = os.path.dirname(job)
        reply: dict[str, Any] = ({"op": "job", "seq": seq, "path": job} if seq is not None
                                 else {"op": "late", "late": True, "path": job})
        call = ""
        with _journal.locked(job) as ours:
            if not ours:  # tidymlflow sync has it, or it is gone
                answer(reply)
                return True
            try:
                call = str(_journal.load(job).get("call", ""))
                result = self.deliverer.deliver(job, lambda: superseded(self._queued()))
            except Undelivered as exc:
                if exc.unreachable:
                    self.paused[journal] = (time.monotonic() + RETRY_AFTER, str(exc))
                if seq is not None:
                    self.kept.setdefault(journal, []).append([job, time.monotonic() + RETRY_AFTER, answer])
                    answer({**reply, "kept": str(exc)})
                return False
            except Exception as exc:  # a job that cannot be read: say so, leave it for sync
                answer({**reply, "call": call, "errors": [f"{type(exc).__name__}: {exc}"]})
                return True
            _journal.remove(job)
        if self.plotter is not None:
            self.plotter.forget(job)
        answer({**reply, "call": call, "runs": result.runs, "created": result.created,
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
                if self._deliver(entry[0], None, entry[2]):
                    jobs.remove(entry)
                elif now < self.paused.get(journal, (0.0, ""))[0]:
                    break
                else:
                    entry[1] = now + RETRY_AFTER
            if not jobs:
                del self.kept[journal]


if __name__ == "__main__":
    main()
