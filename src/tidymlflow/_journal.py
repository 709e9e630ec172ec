"""The local journal: one folder per tracking URI under the user's cache directory, holding every
call's job (its manifest and staged files) until the job is written to MLflow.

A job is written here first, so it is never lost: the writer process deletes it once delivered;
what cannot be delivered (server down, hung, disk full, writer killed) stays, and
``tidymlflow sync`` delivers it later. No MLflow here."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

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


def folder(key: str) -> str:
    """The journal folder of one tracking URI (created on first use)."""
    slug = re.sub(r"[^\w.-]+", "_", key)[-40:].strip("_") or "default"
    path = os.path.join(root(), f"{slug}-{hashlib.sha1(key.encode()).hexdigest()[:10]}")
    if not os.path.isdir(path):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, _URI_FILE), "w", encoding="utf-8") as fh:
            fh.write(key + "\n")
    return path


def new_job(journal: str) -> str:
    """A new, empty job folder; names sort in the order jobs were made."""
    name = f"{time.time_ns():020d}-{os.getpid()}-{next(_seq):06d}"
    path = os.path.join(journal, name)
    os.makedirs(path)
    return path


def commit(job: str, manifest: dict[str, Any]) -> None:
    """Write the manifest last and atomically: from now on the job is complete on disk."""
    tmp = os.path.join(job, MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, default=str)
    os.replace(tmp, os.path.join(job, MANIFEST))


def load(job: str) -> dict[str, Any]:
    """A job's manifest."""
    with open(os.path.join(job, MANIFEST), encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def progress(job: str) -> dict[str, Any]:
    """What earlier attempts did (created runs by handle, number of attempts)."""
    try:
        with open(os.path.join(job, PROGRESS), encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
            return data
    except (OSError, ValueError):
        return {"attempts": 0, "runs": {}}


def save_progress(job: str, data: dict[str, Any]) -> None:
    """Record progress (best effort: a full disk must not stop the delivery itself)."""
    with contextlib.suppress(OSError):
        tmp = os.path.join(job, PROGRESS + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
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
        fd = os.open(os.path.join(job, _LOCK), os.O_CREAT | os.O_RDWR)
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


def pending(journal: str) -> list[str]:
    """The complete jobs of a journal, oldest first."""
    jobs = []
    for name in sorted(os.listdir(journal)) if os.path.isdir(journal) else ():
        path = os.path.join(journal, name)
        if os.path.isfile(os.path.join(path, MANIFEST)):
            jobs.append(path)
    return jobs
