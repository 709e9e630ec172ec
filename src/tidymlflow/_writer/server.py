"""The writer process (``python -m tidymlflow._writer``): scripts connect to its unix socket (see
:mod:`~tidymlflow._writer.rendezvous` for how they find it and :mod:`~tidymlflow._writer.client`
for their side) and hand it job folders; it writes them to MLflow in order (see
:mod:`~tidymlflow._writer.scheduler`) and answers each script. It runs in a session of its own,
so Ctrl-C in the user's terminal does not reach it; when its scripts have gone, it writes what
it has, waits a while for the next script, and leaves.

Every line a script sends is decoded and checked on arrival (:mod:`tidymlflow._jobs.records`);
a job folder must be one of this user's journal, and its manifest is read once, here. A bad
message is answered with ``refused`` and logged; the writer goes on serving."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import math
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Union

from tidymlflow._jobs import journal as _journal
from tidymlflow._jobs import records
from tidymlflow._jobs.records import Done, Hello, Refused, Submit, ToScript, Wait, Welcome
from tidymlflow._writer import lanes, upkeep
from tidymlflow._writer import rendezvous as _daemon
from tidymlflow._writer.plotpool import PlotPool, preload
from tidymlflow._writer.scheduler import Job, Scheduler

#: What waits in the writer's queue: a script's hello or job, or None when the script has gone.
Item = Union[Hello, Job, None]  # noqa: UP007

#: What a new writer imports at once, while its first script is still starting (MLflow, and
#: what writing a run's dataset inputs needs).
PRELOAD = ("mlflow", "mlflow.tracking.client", "mlflow.data.pandas_dataset")
#: And for a database store (the URI of the script that started the writer): MLflow's store.
DATABASE = ("mlflow.store.tracking.sqlalchemy_store",)


def _database(uri: str) -> bool:
    return uri.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "mysql", "mssql")


#: Seconds without a job after which the writer counts as idle while a script is connected;
#: with no script connected, its plotting processes then leave (and after ``TIDYMLFLOW_WRITER_REST``
#: seconds, 120 by default, it rests).
QUIET = 30.0


def main(argv: list[str] | None = None) -> None:
    """Entry of ``python -m tidymlflow._writer --listen FD --socket PATH --lock PATH --idle S``:
    serve the scripts that connect to the listening socket ``FD`` (one JSON message a line each
    way), write their jobs in the order they come, and leave ``S`` seconds after the last script
    has gone and every job is written or kept."""
    parser = argparse.ArgumentParser(prog="python -m tidymlflow._writer")
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--lock", required=True)
    parser.add_argument("--idle", type=float, default=0.0)
    parser.add_argument("--rested", action="store_true")
    args = parser.parse_args(argv)
    os.dup2(2, 1)  # stray prints of libraries go to the log
    sys.stdout = sys.stderr
    # `kill -USR1 <writer pid>` writes every thread's stack into writer.log: what a writer that
    # does not leave is waiting for
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    listener = socket.socket(fileno=args.listen)
    # forked now, before the writer's own threads; a rested writer's come with the next script
    plotter = PlotPool.start(args.listen, processes=not args.rested)
    hall = Hall(listener, args.socket, args.lock, args.idle, plotter)
    scheduler = Scheduler(hall.queued, plotter, args.listen)
    if not args.rested:  # a rested writer stays lean until a script comes
        preload(PRELOAD + (DATABASE if _database(os.environ.get("MLFLOW_TRACKING_URI", "")) else ()))
    if hall.serve(scheduler):
        hall.rest(scheduler)  # does not return
    scheduler.finish_carry()
    scheduler.retry_kept()
    scheduler.lanes.close()  # what the lanes are writing is finished
    scheduler.settle()
    if plotter is not None:
        plotter.close()


class Hall:
    """The writer's side of its socket: a thread accepts scripts, a thread per script reads its
    messages into one queue, which the writer works through in order; answers go back to the
    script that asked. When no script is connected and nothing is left to do for ``idle``
    seconds, the hall closes (under the key's lock, so no script connects meanwhile)."""

    def __init__(self, listener: socket.socket, path: str, lock: str, idle: float,
                 plotter: PlotPool | None) -> None:
        self.listener, self.path, self.lock, self.idle = listener, path, lock, idle
        self.identity = upkeep.file_identity(path)  # the socket file this writer was started on
        self.busy: Callable[[], bool] = lambda: False  # jobs are being written in a lane
        self.plotter = plotter
        self.inbox: deque[tuple[Client, Item]] = deque()
        self.ready = threading.Condition()
        self.idle_since: float | None = time.monotonic()
        self.closed = False
        self.may_rest = False  # nothing to do; set by the main thread when it finds it idle
        self.rest_after = _daemon.rest()
        self.resting = False  # the hall stopped accepting: the writer restarts lean
        self.served = False  # a script has come and gone
        self.members: set[Client] = set()  # the scripts connected now

    def queued(self) -> list[Job]:
        """The jobs waiting, oldest first."""
        with self.ready:
            return [m for _, m in self.inbox if isinstance(m, Job)]

    def serve(self, scheduler: Scheduler) -> bool:
        """Serve until the hall closes (False) or the writer is to rest (True)."""
        scheduler.wake = self._wake
        self.busy = scheduler.lanes.busy
        self._start_accepting()
        while True:
            scheduler.settle()
            if self.resting:
                if scheduler.idle() and not self.inbox:
                    return True
                self.resting = False  # work came meanwhile (a job of an ended script)
                self._start_accepting()
            with self.ready:
                if not self.inbox and not self.members:
                    self.idle_since = self.idle_since or time.monotonic()
                    if self.served and self.idle > 0:  # a script has come and gone, and the
                        self._warm_plotter()              # writer stays for the next one
                # jobs of ended scripts wait; a writer set to rest sooner than QUIET gets quiet sooner
                quiet = min(QUIET, max(self.rest_after, 1.0)) if not scheduler.orphans else 0.0
                if not self.ready.wait_for(
                        lambda: bool(self.inbox or scheduler.outcomes) or self.closed or self.resting,
                        quiet) and quiet:
                    self._rest_plotter()  # quiet for a while
                    self.may_rest = scheduler.idle() and not self.inbox and not self.members
                if not self.inbox:
                    if self.closed:
                        return False
                    if self.resting:
                        continue
                    item = None
                else:
                    item = self.inbox.popleft()
                    self.idle_since = None
                    self.may_rest = False
            if item is None:
                scheduler.finish_carry()
                scheduler.settle()
                scheduler.retry_kept()
                scheduler.adopt_one()
                scheduler.lanes.rest()
                continue
            client, message = item
            if message is None:
                client.close()
                with self.ready:
                    self.served = True
            elif isinstance(message, Hello):
                if self.plotter is not None:
                    self.plotter.revive()
                scheduler.hello(message)
            else:
                scheduler.handle(message, client.answer)

    def _wake(self) -> None:
        with self.ready:
            self.ready.notify()

    def _warm_plotter(self) -> None:
        if self.plotter is not None:
            self.plotter.warm_all()

    def _rest_plotter(self) -> None:
        """Quiet for a while: with no script connected the plotting processes leave (they come
        back with the next script's hello); else they all get ready."""
        if self.plotter is None:
            return
        with self.ready:
            alone = not self.members and not self.inbox
        if alone:
            self.plotter.retire()
        else:
            self.plotter.warm_all()

    def _start_accepting(self) -> None:
        threading.Thread(target=self._accept, name="tidymlflow-accept", daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(min(1.0, max(0.05, self.idle / 4)))
        while True:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                try:
                    if self._leave() or self._stop_for_rest():
                        return
                except Exception as exc:  # never the end of accepting (nor of leaving when idle)
                    _log(f"idle check failed: {type(exc).__name__}: {exc}")
                continue
            except OSError:
                return
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        # a script that stops reading (stopped in a debugger, say) does not stall the others
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 10, 0))
        client = Client(conn)
        with self.ready:
            self.idle_since = None
            self.members.add(client)
        self._spare()
        client.answer(Welcome(os.getpid()))
        threading.Thread(target=self._read, args=(client,), name="tidymlflow-client", daemon=True).start()

    def _leave(self) -> bool:
        """Close the hall when it has been idle long enough; a script that connected meanwhile
        is admitted instead."""
        with self.ready:
            since = self.idle_since
        if since is None or time.monotonic() - since < self.idle or self.busy():
            return False
        return self._unless_waiting(self._close)

    def _close(self) -> None:
        if upkeep.file_identity(self.path) == self.identity:  # not a writer that replaced this one
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.listener.close()
        with self.ready:
            self.closed = True
            self.ready.notify_all()

    def _unless_waiting(self, stop: Callable[[], None]) -> bool:
        """Under the writers' lock (no script finds this writer meanwhile): admit a script that
        is already waiting in the backlog, else ``stop()`` accepting. True when stopped."""
        with _daemon.locked(self.lock):
            self.listener.setblocking(False)
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                stop()
                return True
            self.listener.settimeout(min(1.0, max(0.05, self.idle / 4)))
        self._admit(conn)
        return False

    def _stop_for_rest(self) -> bool:
        """Stop accepting so that the writer can rest: ``TIDYMLFLOW_WRITER_REST`` seconds with no
        script and nothing to do, more than ``QUIET`` seconds of its idle time left, and still
        this writer's code (an upgrade is left to the next writer). Scripts that connect meanwhile
        wait in the socket's backlog for the rested writer; one already there is admitted."""
        with self.ready:
            since, ready = self.idle_since, self.may_rest and not self.members and not self.inbox
        now = time.monotonic()
        if not ready or since is None or now - since < self.rest_after or self.idle - (now - since) <= QUIET:
            return False
        try:
            same = os.path.basename(self.path) == _daemon.key() + ".sock"
        except OSError:  # its files are gone (a deleted virtual environment): not this code any more
            same = False
        if not same:
            self.rest_after = math.inf  # upgraded or removed since it started: it leaves at its idle time
            return False
        return self._unless_waiting(self._to_rest)

    def _to_rest(self) -> None:
        with self.ready:
            self.resting = True
            self.ready.notify_all()

    def rest(self, scheduler: Scheduler) -> None:
        """Let go of everything loaded (MLflow, its store, some 250 MB): the writer starts again,
        lean (about 20 MB), in this process on this socket, with what is left of its idle time.
        The next script's hello loads MLflow again while that script starts."""
        left = self.idle - (time.monotonic() - (self.idle_since or time.monotonic()))
        scheduler.lanes.close()
        if self.plotter is not None:
            self.plotter.close()
        _log(f"resting: {self.rest_after:.0f} s without a script")
        fd = self.listener.fileno()
        os.set_inheritable(fd, True)
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "tidymlflow._writer", "--listen", str(fd), "--socket",
                                  self.path, "--lock", self.lock, "--idle", str(left), "--rested"])

    def _read(self, client: Client) -> None:
        """Read a script's messages as they come, so that it never blocks on a full socket; a
        job's plots start drawing at once in the plotting process."""
        with contextlib.suppress(OSError, ValueError):
            for line in records.lines(client.conn.makefile("rb")):
                item = self._take(client, line)
                if item is not None:
                    with self.ready:
                        self.inbox.append((client, item))
                        self.ready.notify()
        with self.ready:
            self.members.discard(client)
            self.inbox.append((client, None))
            self.ready.notify()
        self._spare()

    def _take(self, client: Client, line: bytes) -> Hello | Job | None:
        """What one line from a script puts in the queue, checked; a bad line is refused."""
        try:
            message = records.decode(line, (Hello, Submit, Wait))
            if isinstance(message, Hello):
                client.env = message.env  # this script's jobs are written with it
                return message
        except records.RecordError as exc:
            _log(f"refused a message: {exc}")
            client.answer(Refused(str(exc)))
            return None
        client.waiting = isinstance(message, Wait)
        self._spare()
        if isinstance(message, Wait):
            return None
        try:
            job = _arrived(message, client.env)
        except records.RecordError as exc:
            _log(f"refused job {message.seq}: {exc}")
            client.answer(Done(message.seq, message.path, message.call, errors=(str(exc),)))
            return None
        if self.plotter is not None and job.manifest is not None and not lanes.remote(job.manifest.target):
            self.plotter.submit(job.path, job.manifest)  # its plots start at once (a lane draws its own)
        return job

    def _spare(self) -> None:
        """Tell the plotter whether every connected script is waiting for the writer."""
        if self.plotter is not None:
            with self.ready:
                spare = all(c.waiting for c in self.members)
            self.plotter.set_spare(spare)


class Client:
    """One connected script."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.gone = False
        self.waiting = False  # in flush() or at its exit, until its next job
        self.env: dict[str, str] | None = None  # its environment, from its hello

    def answer(self, message: ToScript) -> None:
        """Send one answer; a script that has gone is written for, but no longer answered."""
        if self.gone:
            return
        try:
            self.conn.sendall(records.encode(message))
        except (OSError, ValueError):
            self.gone = True

    def close(self) -> None:
        self.gone = True
        with contextlib.suppress(OSError):
            self.conn.close()


def _arrived(message: Submit, env: dict[str, str] | None) -> Job:
    """A job handed over, its manifest read once: the folder must be a job of this user's
    journal (:class:`records.RecordError` otherwise); a manifest that cannot be read makes a job
    that is answered with its error and left for ``tidymlflow sync``."""
    where = _journal.own_job(message.path)
    try:
        return Job(where, message.seq, message.call, _journal.manifest(where), env=env)
    except (OSError, records.RecordError) as exc:
        return Job(where, message.seq, message.call, None, f"{type(exc).__name__}: {exc}", env)


def _log(message: str) -> None:
    """A line in the writer's log (its stderr is the journal's ``writer.log``)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} tidymlflow writer: {message}", file=sys.stderr,
              flush=True)


if __name__ == "__main__":
    main()
