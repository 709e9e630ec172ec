"""The local journal: one folder per tracking URI under the user's cache directory, holding every
call's job (its manifest and staged files) until the job is written to MLflow.

A job is written here first, so it is never lost: the writer process deletes it once delivered;
what cannot be delivered (server down, hung, disk full, writer killed) stays, and
``tidymlflow sync`` delivers it later. No MLflow here."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

from tidymlflow._jobs import records

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one writer per journal is assumed
    fcntl = None  # type: ignore[assignment]

#: The manifest's file name; a job folder without it is still being staged (or was abandoned).
MANIFEST = "manifest.json"
#: The writer's record of a job's progress (run handles already created, attempts).
PROGRESS = "progress.json"
_LOCK = ".lock"
_URI_FILE = "tracking_uri.txt"
_seq = itertools.count()


def root() -> str:
    """``$TIDYMLFLOW_JOURNAL_DIR``, else ``$XDG_CACHE_HOME/tidymlflow``, else
    ``~/.cache/tidymlflow``."""
    explicit = os.environ.get("TIDYMLFLOW_JOURNAL_DIR")
    if explicit:
        return os.path.abspath(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "tidymlflow")


def uri_key(tracking_uri: str | None, cwd: str) -> str:
    """What names a journal: the tracking URI, with the working directory when the URI is
    relative or MLflow's default (both resolve against it)."""
    uri = tracking_uri or ""
    relative = (not uri or (uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"))
                or ("://" not in uri and not uri.startswith(("/", "file:"))))
    return f"{uri or '(default)'} in {cwd}" if relative else uri


def sqlite_file(uri: str | None, cwd: str = ".") -> str | None:
    """The database file of a ``sqlite:///`` tracking URI (a relative one resolved against
    ``cwd``), else None."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    return os.path.abspath(os.path.join(cwd, uri[len("sqlite:///"):].split("?")[0]))


def absolute_uri(uri: str, cwd: str) -> str:
    """``uri`` with a relative local store (``sqlite:///x.db``, ``./mlruns``, ``file:mlruns``)
    made absolute against ``cwd``; any other URI as it is."""
    path = sqlite_file(uri, cwd)
    if path is not None:
        query = uri.partition("?")[2]
        return f"sqlite:///{path}" + (f"?{query}" if query else "")
    if uri.startswith("file:") and not uri.startswith("file://"):
        return os.path.abspath(os.path.join(cwd, uri[len("file:"):]))
    if uri in ("databricks", "databricks-uc") or "://" in uri or uri.startswith("/"):
        return uri
    return os.path.abspath(os.path.join(cwd, uri))


_made_private: set[str] = set()  # journal folders this process made or checked private


def private_dir(path: str) -> None:
    """``path`` as a folder only its owner can enter (0700), whatever the umask; an existing one of
    this user's is made private (journals of older versions were 0755)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.stat(path)
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        os.chmod(path, 0o700)


def _private_fd(path: str, flags: int) -> int:
    """``path`` opened for writing, readable by its owner only (0600) whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def open_private(path: str) -> Any:
    """A new file only its owner can read (0600), whatever the umask, opened for text writing."""
    return os.fdopen(_private_fd(path, os.O_TRUNC), "w", encoding="utf-8")


def private_root() -> str:
    """:func:`root`, made and kept private (0700)."""
    base = root()
    private_dir(base)
    return base


def open_log(path: str, append: bool) -> Any:
    """A log file of the journal's, readable by its owner only (0600), opened for binary writing."""
    return os.fdopen(_private_fd(path, os.O_APPEND if append else os.O_TRUNC), "ab" if append else "wb")


def folder(key: str) -> str:
    """The journal folder of one tracking URI (created on first use), private like the root."""
    slug = re.sub(r"[^\w.-]+", "_", key)[-40:].strip("_") or "default"
    base = root()
    path = os.path.join(base, f"{slug}-{hashlib.sha1(key.encode()).hexdigest()[:10]}")
    if not os.path.isdir(path):
        private_dir(base)
        private_dir(path)
        with open_private(os.path.join(path, _URI_FILE)) as fh:
            fh.write(key + "\n")
    elif path not in _made_private:
        private_dir(path)  # one an older version made 0755 (checked once per process)
    _made_private.add(path)
    return path


def new_job(journal: str) -> str:
    """A new, empty job folder (0700); names sort in the order jobs were made."""
    name = f"{time.time_ns():020d}-{os.getpid()}-{next(_seq):06d}"
    path = os.path.join(journal, name)
    os.makedirs(path, mode=0o700)
    os.chmod(path, 0o700)
    return path


def commit(job: str, manifest: str) -> None:
    """Make everything in the job private (folders 0700, files 0600: staged frames are training
    data), then write the manifest (its text) last and atomically: from now on the job is complete
    on disk."""
    seal(job)
    write_private(os.path.join(job, MANIFEST), manifest)


def seal(folder: str) -> None:
    """Everything in ``folder`` private: folders 0700, files 0600."""
    for here, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(here, name), 0o700)
        for name in files:
            os.chmod(os.path.join(here, name), 0o600)


def write_private(path: str, text: str) -> None:
    """A file only its owner can read, written whole and atomically (beside it first)."""
    tmp = path + ".tmp"
    with open_private(tmp) as fh:
        fh.write(text)
    os.replace(tmp, path)


def trusted(path: str) -> str | None:
    """Why ``path`` (a journal or job folder) must not be replayed: owned by another user, or
    writable by others (anyone could have planted a job); None when it is this user's own."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot be read ({exc})"
    if info.st_uid != os.getuid():
        return f"is owned by another user (uid {info.st_uid})"
    if info.st_mode & 0o022:
        return f"is writable by others (mode {info.st_mode & 0o777:o})"
    return None


def own_job(path: str) -> str:
    """``path`` when it is a job folder of one of this user's journals (a folder of a folder of
    :func:`root`, owned by the user, no link on the way), else :class:`records.RecordError`: the
    writer takes no folder from a message that it would not have made itself."""
    base = os.path.realpath(root())
    real = os.path.realpath(path) if os.path.isabs(path) else ""
    if (os.path.dirname(os.path.dirname(real)) != base or os.path.islink(path)
            or os.path.islink(os.path.dirname(path))):
        raise records.RecordError(f"{path!r} is not a job folder of this user's journal ({base})")
    why = trusted(real) or trusted(os.path.dirname(real))
    if why is not None:
        raise records.RecordError(f"{path!r} {why}")
    return path


def manifest(job: str) -> records.Manifest:
    """A job's manifest, checked (:func:`records.load_manifest`)."""
    return records.load_manifest(job, MANIFEST)


def progress(job: str) -> records.Progress:
    """What earlier attempts did (created runs by handle, number of attempts)."""
    try:
        with open(os.path.join(job, PROGRESS), encoding="utf-8") as fh:
            return records.load_progress(fh.read())
    except OSError:
        return records.Progress()


def save_progress(job: str, progress: records.Progress) -> None:
    """Record progress (best effort: a full disk must not stop the delivery itself)."""
    with contextlib.suppress(OSError):
        tmp = os.path.join(job, PROGRESS + ".tmp")
        with open_private(tmp) as fh:
            fh.write(records.dump_progress(progress))
        os.replace(tmp, os.path.join(job, PROGRESS))


def remove(job: str) -> None:
    """Delete a delivered (or abandoned) job."""
    shutil.rmtree(job, ignore_errors=True)


@contextlib.contextmanager
def locked(job: str) -> Iterator[bool]:
    """Hold the job's lock (True), or say that another process holds it (False): a writer and
    ``tidymlflow sync`` never deliver the same job at once."""
    if fcntl is None:
        yield os.path.exists(os.path.join(job, MANIFEST))
        return
    try:
        fd = os.open(os.path.join(job, _LOCK), os.O_CREAT | os.O_RDWR, 0o600)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield os.path.exists(os.path.join(job, MANIFEST))
    finally:
        os.close(fd)


def journals() -> list[tuple[str, str]]:
    """(folder, tracking-URI key) of every journal under :func:`root`."""
    base = root()
    found = []
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else ():
        path = os.path.join(base, name)
        try:
            with open(os.path.join(path, _URI_FILE), encoding="utf-8") as fh:
                found.append((path, fh.read().strip()))
        except OSError:
            continue
    return found


def orphaned(job: str, min_age: float) -> bool:
    """Whether the script that made ``job`` has ended (its process is gone) and the job is at
    least ``min_age`` seconds old (job names are ``<time ns>-<pid>-<n>``)."""
    try:
        made, pid, _ = os.path.basename(job).split("-")
        age = (time.time_ns() - int(made)) / 1e9
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return age >= min_age
    except (ValueError, OSError):  # not a job name of ours, or a process of another user
        return False
    return False


def pending(journal: str) -> list[str]:
    """The complete jobs of a journal, oldest first."""
    jobs = []
    for name in sorted(os.listdir(journal)) if os.path.isdir(journal) else ():
        path = os.path.join(journal, name)
        if os.path.isfile(os.path.join(path, MANIFEST)):
            jobs.append(path)
    return jobs
