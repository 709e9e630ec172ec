"""Where the writer process lives and how a script finds it.

The writer outlives the script that started it by ``TIDYMLFLOW_WRITER_IDLE`` seconds (600 by
default; 0: it leaves with its last script), listening on a unix socket. The next script run in
the same setting connects to it and finds MLflow imported, the store open and the plotting
libraries loaded: only the first script of a session pays for starting them.

"The same setting" is the key of a writer: the user, this interpreter, the code of tidymlflow
and of the libraries the writer imports (their files' times and sizes: an upgrade or an edit
means a new writer, and the old one leaves when idle), the journal and tidymlflow's own
``TIDYMLFLOW_*`` settings. Not the working folder, the environment or ``sys.path``: a script
sends them when it connects, and the writer writes each job in its own script's folder and
environment (credentials included, held in memory only). So a loop of scripts over folders and
environment values shares one writer. No MLflow here: this runs in the user's process."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from tidymlflow._jobs import journal as _journal
from tidymlflow._jobs import records
from tidymlflow._jobs.records import Welcome
from tidymlflow._runtime import env as _env

try:
    import fcntl
except ImportError:  # Windows: no unix sockets to share; the service falls back to in-process
    fcntl = None  # type: ignore[assignment]

#: Seconds a writer with no script connected waits for the next one before it leaves.
IDLE = 600.0
#: Seconds a writer with no script connected waits before it rests (lets go of MLflow).
REST = 120.0
#: Seconds a running writer has to say hello to a new script before it is replaced.
LIVENESS = 5.0
#: The one lock file of the writers folder: finding or starting a writer, and a writer leaving.
LOCK = "writers.lock"
#: Top-level modules whose code is part of the key: what the writer imports.
LIBRARIES = ("mlflow", "pandas", "numpy", "pyarrow", "plotly", "matplotlib", "sqlalchemy", "cloudpickle",
             "py_parsnip", "py_workflows", "py_recipes", "py_hardhat")
#: ``TIDYMLFLOW_*`` variables that do not set anything of the writer, left out of the key.
_NOT_WRITERS = frozenset({"TIDYMLFLOW_STRICT", "TIDYMLFLOW_EXIT_TIMEOUT", "TIDYMLFLOW_WRITER"})


def idle() -> float:
    """``TIDYMLFLOW_WRITER_IDLE`` seconds (default 600); anything but a finite number >= 0 is an
    error naming the variable."""
    return _env.seconds("TIDYMLFLOW_WRITER_IDLE", IDLE)


def rest() -> float:
    """``TIDYMLFLOW_WRITER_REST`` seconds (default 120): how long a writer with no script waits
    before it rests (starts again lean, see :mod:`~tidymlflow._writer.server`)."""
    return _env.seconds("TIDYMLFLOW_WRITER_REST", REST)


def folder() -> str:
    """This user's folder of writer sockets: private (0700) and owned by the user, or OSError."""
    path = os.path.join(tempfile.gettempdir(), f"tidymlflow-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not os.path.isdir(path):
        raise OSError(f"{path} is not a private folder of this user")
    return path


def key() -> str:
    """The writer key of this process (see the module's docstring)."""
    settings = sorted((k, v) for k, v in os.environ.items()
                      if k.startswith("TIDYMLFLOW_") and k not in _NOT_WRITERS)
    parts = [os.getuid(), sys.executable, _code_stamp(), _journal.root(), settings, idle()]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def _code_stamp() -> list[Any]:
    """Times and sizes of tidymlflow's modules and of the libraries the writer imports (their
    package files, found without importing them): an upgrade or an edit means a new writer."""
    stamps: list[Any] = []
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tidymlflow/, all of it
    for dirpath, _, names in sorted(os.walk(package)):
        for name in sorted(n for n in names if n.endswith(".py")):
            info = os.stat(os.path.join(dirpath, name))
            stamps.append([name, info.st_mtime_ns, info.st_size])
    for library in LIBRARIES:
        spec = importlib.util.find_spec(library)
        if spec is not None and spec.origin:
            info = os.stat(spec.origin)
            stamps.append([spec.origin, info.st_mtime_ns, info.st_size])
    return stamps


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold the writers' lock: finding or starting a writer, and a writer leaving, never overlap,
    so a script never connects to a writer that is on its way out. One lock file for all of this
    user's writers (finding one takes a millisecond), so no lock file is left per writer."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


Spawn = Callable[[socket.socket, str, str], Any]


def connect(spawn: Spawn) -> tuple[socket.socket, Any, int | None]:
    """A connection to the writer of this key: (socket, what ``spawn`` returned when a writer
    was started else None, the pid of a running writer that answered). ``spawn(listener, socket
    path, lock path)`` starts a writer that serves the listening socket it is given: the socket
    exists before the writer does, so this process connects at once and never waits for a new
    writer to start. A running writer must say hello within ``LIVENESS`` seconds; one that does
    not (stopped, hung) is replaced: its socket's name goes to the new writer, and the old one
    leaves it alone when it leaves."""
    if fcntl is None or not hasattr(socket, "AF_UNIX"):
        raise OSError("no unix sockets here")
    path, lock = os.path.join(folder(), key() + ".sock"), os.path.join(folder(), LOCK)
    with locked(lock):
        found = _dial(path)
        if found is not None:
            pid = _welcome(found)
            if pid is not None:
                return found, None, pid
            found.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a writer that was killed left it, or one that does not answer has it
        _sweep(os.path.dirname(path))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(64)
            started = spawn(listener, path, lock)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        finally:
            listener.close()
        sock = _dial(path)
        if sock is None:
            raise OSError(f"the writer's socket {path} refuses connections")
        return sock, started, None


def _sweep(where: str) -> None:
    """Remove the lock files that older versions kept per writer, unless one is held now."""
    for name in os.listdir(where):
        if not name.endswith(".lock") or name == LOCK:
            continue
        path = os.path.join(where, name)
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
        except OSError:
            pass  # held: its writer is on its way out; the next sweep takes it
        finally:
            os.close(fd)


def _welcome(sock: socket.socket) -> int | None:
    """The pid in a running writer's hello, read within ``LIVENESS`` seconds, else None."""
    sock.settimeout(LIVENESS)
    line = b""
    try:
        while not line.endswith(b"\n") and len(line) < records.MAX_MESSAGE:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            line += chunk
        message = records.decode(line, (Welcome,))
    except (OSError, records.RecordError):
        return None
    sock.settimeout(None)
    return int(message.pid)


def _dial(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10.0)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock
