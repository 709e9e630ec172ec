"""Where the writer process lives and how a script finds it.

The writer outlives the script that started it by ``TIDYMLFLOW_WRITER_IDLE`` seconds (600 by
default; 0: it leaves with its last script), listening on a unix socket. The next script run in
the same setting connects to it and finds MLflow imported, the store open and the plotting
libraries loaded: only the first script of a session pays for starting them.

"The same setting" is the key of a writer: this interpreter and its ``sys.path``, the working
directory, the environment (minus a few shell variables that change on their own, and the
tracking variables every job carries with it, such as ``MLFLOW_TRACKING_URI``) and the code of
tidymlflow and MLflow (their files' times and sizes). A script that differs in any of these gets
a writer of its own, so a writer never writes with another script's credentials, paths or code.
No MLflow here: this runs in the user's process."""

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

from tidymlflow._jobs.names import ENV
from tidymlflow._runtime import env as _env

try:
    import fcntl
except ImportError:  # Windows: no unix sockets to share; the service falls back to in-process
    fcntl = None  # type: ignore[assignment]

#: Seconds a writer with no script connected waits for the next one before it leaves.
IDLE = 600.0
#: Environment variables that differ between two runs of one script in one shell, left out of
#: the key (nothing MLflow or tidymlflow reads).
_VOLATILE = frozenset({"_", "PWD", "OLDPWD", "SHLVL", "PYTEST_CURRENT_TEST", "COLUMNS", "LINES",
                       "TERM_SESSION_ID", "WINDOWID", "PS1", "PS2", "HISTCMD", "RANDOM"})


def idle() -> float:
    """``TIDYMLFLOW_WRITER_IDLE`` seconds (default 600); anything but a finite number >= 0 is an
    error naming the variable."""
    return _env.seconds("TIDYMLFLOW_WRITER_IDLE", IDLE)


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
    env = sorted((k, v) for k, v in os.environ.items() if k not in _VOLATILE and k not in ENV)
    parts = [sys.executable, sys.path, os.getcwd(), env, _code_stamp(), idle()]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def _code_stamp() -> list[Any]:
    """Times and sizes of tidymlflow's modules and of MLflow's package: an upgrade or an edit
    means a new writer."""
    stamps: list[Any] = []
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tidymlflow/, all of it
    for dirpath, _, names in sorted(os.walk(package)):
        for name in sorted(n for n in names if n.endswith(".py")):
            info = os.stat(os.path.join(dirpath, name))
            stamps.append([name, info.st_mtime_ns, info.st_size])
    spec = importlib.util.find_spec("mlflow")
    if spec is not None and spec.origin:
        info = os.stat(spec.origin)
        stamps.append([spec.origin, info.st_mtime_ns])
    return stamps


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold the lock of a writer key: finding or starting a writer, and a writer leaving, never
    overlap, so a script never connects to a writer that is on its way out."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


Spawn = Callable[[socket.socket, str, str], Any]


def connect(spawn: Spawn) -> tuple[socket.socket, Any]:
    """A connection to the writer of this key, and what ``spawn`` returned when none was running
    (else None). ``spawn(listener, socket path, lock path)`` starts a writer that serves the
    listening socket it is given: the socket exists before the writer does, so this process
    connects at once and never waits for the writer to start."""
    if fcntl is None or not hasattr(socket, "AF_UNIX"):
        raise OSError("no unix sockets here")
    base = os.path.join(folder(), key())
    path, lock = base + ".sock", base + ".lock"
    with locked(lock):
        found = _dial(path)
        if found is not None:
            return found, None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a writer that was killed left it
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
        return sock, started


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
