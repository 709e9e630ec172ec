"""The writer: where jobs go once a call has staged them.

By default a process of its own (:mod:`tidymlflow._writer.server`, W&B's design): it imports
MLflow, opens the store and draws every plot while the user's script goes on; the user's process
hands it each job's folder over a pipe and never waits on it, except in :func:`flush`, in
``tidymlflow.run_id`` and (bounded) at exit. ``TIDYMLFLOW_WRITER=inline`` (or
``autolog(writer="inline")``) writes in the user's process instead, synchronously, for places
where a process cannot be started.

Jobs live in the journal (:mod:`tidymlflow._jobs.journal`) from the moment they are handed over, so a
writer that dies, a server that is down and a full disk lose nothing: ``tidymlflow sync``
delivers what is left.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from tidymlflow._jobs import journal as _journal
from tidymlflow._jobs import records
from tidymlflow._jobs.handover import EXIT_TIMEOUT
from tidymlflow._jobs.names import HTTP_DEFAULTS
from tidymlflow._jobs.records import (
    Done,
    Hello,
    JobTarget,
    Refused,
    Submit,
    ToScript,
    ToWriter,
    Wait,
    Welcome,
)
from tidymlflow._runtime import env as _env
from tidymlflow._runtime import safety as _safety
from tidymlflow._runtime import state as _state
from tidymlflow._writer import rendezvous as _daemon
from tidymlflow.errors import TidyMLflowError

#: Seconds of waiting at exit before one progress line is printed.
PROGRESS_AFTER = 2.0
#: HTTP settings of the writer process (unless the user set them): short, so that a dead server
#: is known in seconds, not minutes.
#: Bytes of ``writer.log`` kept: a longer log starts again at the next start.
LOG_LIMIT = 5_000_000


def mode(config: Any = None) -> str:
    """``process`` or ``inline``: the ``autolog(writer=...)`` choice (of ``config``, else of the
    active configuration), else ``TIDYMLFLOW_WRITER``."""
    config = config if config is not None else _state.config
    chosen = getattr(config, "writer", None) or os.environ.get("TIDYMLFLOW_WRITER", "process")
    return "inline" if chosen.strip().lower() == "inline" else "process"


class Report:
    """What the user's process learns about its jobs, reported in the user's thread (at the next
    call, in flush and at exit): one warning per job with errors, one per tracking URI whose jobs
    are kept in the journal, one if the writer dies; raised in strict mode."""

    def __init__(self) -> None:
        self.errors: deque[str] = deque()
        self.kept: dict[str, list[Any]] = {}  # journal -> [count, reason]
        self._kept_told: dict[str, int] = {}  # journal -> kept count when last told
        self.dead: str | None = None
        self._dead_told = False

    def keep(self, journal: str, reason: str, count: int = 1) -> None:
        entry = self.kept.setdefault(journal, [0, reason])
        entry[0] = max(0, entry[0] + count)
        entry[1] = reason or entry[1]

    def emit(self) -> None:
        messages = list(self._take())
        if not messages:
            return
        if _state.strict():
            raise TidyMLflowError(messages[0])
        for message in messages:
            _safety.warn(message, stacklevel=4)

    def _take(self) -> Any:
        while self.errors:
            yield self.errors.popleft()
        for journal, (count, reason) in self.kept.items():
            told = self._kept_told.get(journal)
            self._kept_told[journal] = count
            if count > (told or 0) and (told is None or _state.strict()):  # strict: every time
                yield (f"tidymlflow: could not write to MLflow ({reason}); {count} call(s) are kept in "
                       f"{journal} and are written when it works again (the writer tries again), or "
                       "by `tidymlflow sync`. Your code's results are unaffected.")
        if self.dead and not self._dead_told:
            self._dead_told = True
            yield (f"tidymlflow: the writer process stopped ({self.dead}); what it had not written is "
                   "kept in the journal: run `tidymlflow sync`. Logging goes on into the journal; "
                   "your code's results are unaffected.")


class Inline:
    """Writes each job at once, in the user's process (a :class:`~tidymlflow._jobs.handover.Writer`)."""

    synchronous = True

    def __init__(self) -> None:
        self.pid = os.getpid()
        from tidymlflow._writer.delivery import Deliverer

        self.deliverer = Deliverer(apply_target=False)
        self.resolved: dict[str, str] = {}
        self._order: list[str] = []
        self.flushed = 0  # runs returned by tidymlflow.flush() so far
        self.reports = Report()
        # One job at a time, as the writer process does: jobs of two threads share the
        # deliverer's caches and would race on what a store creates once (an experiment's tags).
        self._delivering = threading.RLock()

    def submit(self, job: str, handles: Sequence[str], call: str) -> list[str]:
        """Deliver ``job``; the errors of its parts (the call reports them itself)."""
        from tidymlflow._writer.failures import Undelivered

        with self._delivering, _journal.locked(job) as ours:
            if not ours:
                return []
            try:
                result = self.deliverer.deliver(job)
            except Undelivered as exc:
                self.reports.keep(os.path.dirname(job), str(exc))
                return []
            _journal.remove(job)
        self.resolved.update(result.runs)
        self._order.extend(result.created)
        return result.errors

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def pending(self) -> bool:
        """Never: each job is written before its call returns."""
        return False

    def outstanding(self) -> int:
        return 0

    def run_id(self, handle: str, timeout: float | None = None) -> str | None:
        return handle[4:] if handle.startswith("run:") else self.resolved.get(handle)

    def written(self) -> list[str]:
        return list(self._order)

    def report(self) -> None:
        self.reports.emit()

    def close(self, timeout: float) -> None:
        self.reports.emit()


class Process:
    """The writer process and the user's side of its pipe (a
    :class:`~tidymlflow._jobs.handover.Writer`)."""

    synchronous = False

    def __init__(self, warm: JobTarget | None) -> None:
        self.pid = os.getpid()
        self.reports = Report()
        self.resolved: dict[str, str] = {}
        self._order: list[str] = []  # run ids in the order they were written
        self.flushed = 0  # runs returned by tidymlflow.flush() so far
        self._closing = False
        # the jobs handed over and not answered yet (answers may come in any order: a server's
        # jobs are written in a lane of their own): job number -> its handles
        self._handles: dict[int, list[str]] = {}
        self._cond = threading.Condition()
        self._sending = threading.Lock()
        self._submitted = 0
        self._journals: set[str] = set()
        self._writer_pid: int | None = None
        self.sock, self.proc, self._writer_pid = _daemon.connect(_spawn)
        # the script's folder and environment (its credentials too: over the private socket, held
        # in the writer's memory only) for the writer to write this script's jobs with
        self._send(Hello(tuple(sys.path), warm, _sqlite_absent(warm), env=dict(os.environ)))
        threading.Thread(target=self._read, name="tidymlflow-writer-pipe", daemon=True).start()

    # -- the connection ---------------------------------------------------------------------------------
    def _send(self, message: ToWriter) -> bool:
        if self.reports.dead:
            return False
        try:
            with self._sending:
                self.sock.sendall(records.encode(message))
            return True
        except (OSError, ValueError):
            self._died()
            return False

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in records.lines(self.sock.makefile("rb")):
                try:
                    self._answer(records.decode(line, (Welcome, Done, Refused)))
                except records.RecordError:
                    continue
        self._died()

    def _answer(self, message: ToScript) -> None:
        with self._cond:
            if isinstance(message, Welcome):
                self._writer_pid = message.pid
            elif isinstance(message, Refused):
                self.reports.errors.append(f"tidymlflow: the writer refused a message: {message.error}")
            else:
                self._done(message)
            self._cond.notify_all()

    def _done(self, message: Done) -> None:
        self._order.extend(message.created)
        self.resolved.update(message.runs)
        self.reports.errors.extend(f"tidymlflow: logging {message.call} failed: {e}. The call's result is "
                                   "unaffected." for e in message.errors)
        if message.kept:
            self.reports.keep(os.path.dirname(message.path), message.kept)
        if message.seq is None:  # a job kept earlier is written now
            self.reports.keep(os.path.dirname(message.path), "", -1)
        else:
            self._handles.pop(message.seq, None)

    def _died(self) -> None:
        with self._cond:
            if self.reports.dead is None and not self._closing:
                code = None if self.proc is None else self.proc.poll()
                self.reports.dead = f"exit code {code}" if code is not None else "its connection closed"
            self._cond.notify_all()

    # -- the user's side --------------------------------------------------------------------------------
    def submit(self, job: str, handles: Sequence[str], call: str) -> list[str]:
        """Hand ``job`` over; never waits on the writer."""
        with self._cond:
            self._submitted += 1
            seq = self._submitted
            self._handles[seq] = list(handles)
            self._journals.add(os.path.dirname(job))
        if not self._send(Submit(seq, job, call)):
            with self._cond:
                self._handles.pop(seq, None)
        return []

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every job handed over so far is written or kept; False on timeout. A
        writer that died is noticed by its exit too, not only by its pipe closing."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.outstanding():
            self._send(Wait())  # this script computes nothing now: the writer may use more
        with self._cond:
            target = self._submitted

            def answered() -> bool:
                return not any(s <= target for s in self._handles)

            while True:
                if answered() or self.reports.dead is not None:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(1.0 if left is None else min(1.0, left))
                if self.proc is not None and self.proc.poll() is not None and not answered():
                    self.reports.dead = f"exit code {self.proc.returncode}"

    def writer_pid(self, timeout: float | None = 30.0) -> int | None:
        """The process id of the writer (which may serve other scripts too), once it has said it."""
        with self._cond:
            self._cond.wait_for(lambda: self._writer_pid is not None or self.reports.dead is not None,
                                timeout)
            return self._writer_pid

    def run_id(self, handle: str, timeout: float | None = None) -> str | None:
        if handle.startswith("run:"):
            return handle[4:]
        with self._cond:
            pending = {s for s, hs in self._handles.items() if handle in hs}
            self._cond.wait_for(lambda: handle in self.resolved or self.reports.dead is not None
                                or not pending & self._handles.keys(), timeout)
            return self.resolved.get(handle)

    def written(self) -> list[str]:
        with self._cond:
            return list(self._order)

    def outstanding(self) -> int:
        """Jobs handed over and not answered yet (none once the writer is gone)."""
        with self._cond:
            return 0 if self.reports.dead else len(self._handles)

    def pending(self) -> bool:
        """Jobs were handed over and not yet answered (a cheap check: no wait, no network)."""
        return bool(self._handles) and not self.reports.dead

    def report(self) -> None:
        self.reports.emit()

    def close(self, timeout: float) -> None:
        """At exit: wait (bounded) until the writer has written or kept every job, with one
        progress line when it takes a while; then let it finish and leave."""
        try:
            done = self.flush(PROGRESS_AFTER) or self._wait_loudly(timeout - PROGRESS_AFTER)
        except KeyboardInterrupt:
            done = False
        self._closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if not done:
            where = ", ".join(sorted(self._journals)) or _journal.root()
            _stderr(f"tidymlflow: the writer (pid {self._writer_pid}) goes on in the background; what it "
                    f"cannot write stays in {where} for `tidymlflow sync`.")
        try:
            self.reports.emit()
        except TidyMLflowError as exc:
            _stderr(str(exc))

    def _wait_loudly(self, timeout: float) -> bool:
        left = self.outstanding()
        if left == 0 or timeout <= 0:
            return left == 0
        _stderr(f"tidymlflow: writing {left} call(s) to MLflow before exit (up to "
                f"{timeout + PROGRESS_AFTER:.0f} s; Ctrl-C leaves them to the background writer)...")
        return self.flush(timeout)


def _sqlite_absent(target: JobTarget | None) -> bool:
    """Whether the target's tracking URI is a sqlite file that does not exist now (at
    ``autolog()``): if it exists when the writer looks, the script is creating it."""
    if target is None:
        return False
    uri = target.tracking_uri or target.env.get("MLFLOW_TRACKING_URI")
    path = _journal.sqlite_file(uri, target.cwd or ".")
    return path is not None and not os.path.exists(path)


def _stderr(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _spawn(listener: socket.socket, path: str, lock: str) -> subprocess.Popen[bytes]:
    """Start the writer on ``listener``: this interpreter, this package, its own session (Ctrl-C
    in the user's terminal does not reach it), no terminal, its messages in the journal's
    ``writer.log``."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    for key, value in HTTP_DEFAULTS.items():
        env.setdefault(key, value)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    log_path = os.path.join(_journal.private_root(), "writer.log")
    big = os.path.exists(log_path) and os.path.getsize(log_path) > LOG_LIMIT
    log = _journal.open_log(log_path, append=not big)  # the child holds it
    fd = listener.fileno()
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "tidymlflow._writer", "--listen", str(fd), "--socket", path,
             "--lock", lock, "--idle", str(_daemon.idle())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env,
            start_new_session=True, close_fds=True, pass_fds=(fd,))
    finally:
        log.close()


# -- the process-wide writer ----------------------------------------------------------------------------
_writer: Inline | Process | None = None
_lock = threading.Lock()


def get(warm: JobTarget | None = None, config: Any = None) -> Inline | Process:
    """The writer of this process (started on first use; a forked child starts its own).
    ``config``: the configuration ``autolog()`` is about to make active (else the active one)."""
    global _writer
    with _lock:
        wanted = mode(config)
        current = _writer
        if current is not None and current.synchronous == (wanted == "inline"):
            return current
        if current is not None:
            _close(current)
        if wanted == "inline":
            _writer = Inline()
        else:
            try:
                _writer = Process(warm)
            except OSError as exc:  # no process can be started here: write in-process
                _safety.warn(f"tidymlflow: could not start the writer process ({exc}); writing in this "
                             "process instead", stacklevel=3)
                _writer = Inline()
        return _writer


def current() -> Inline | Process | None:
    """The writer, if one was started."""
    return _writer


def _close(writer: Inline | Process) -> None:
    try:
        timeout = _env.seconds("TIDYMLFLOW_EXIT_TIMEOUT", EXIT_TIMEOUT)
    except ValueError:  # set badly after autolog() checked it: the default, never a traceback at exit
        timeout = EXIT_TIMEOUT
    writer.close(timeout)


def _at_exit() -> None:
    global _writer
    writer, _writer = _writer, None
    if writer is not None and writer.pid == os.getpid():
        _close(writer)


def _forget_in_child() -> None:
    global _writer
    _writer = None


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_forget_in_child)
