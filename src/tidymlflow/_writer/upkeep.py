"""Upkeep of the stores the writer opens: sqlite's rollback journal kept between transactions,
a new sqlite store created aside while the script starts, and MLflow's per-URI stores opened
again when their file was replaced."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from tidymlflow._jobs import journal as _journal

#: Bytes of a sqlite store's rollback journal kept between transactions (see
#: :func:`persist_sqlite_journal`); a larger one is cut back to this after its transaction.
JOURNAL_LIMIT = 1 << 20


def persist_sqlite_journal() -> None:
    """Make every sqlite store this process opens keep its rollback journal file between
    transactions (``journal_mode=PERSIST``) instead of creating and deleting it in each one.

    For tidymlflow's own processes only (the writer, ``tidymlflow sync``). Creating and deleting
    the journal is about a third of MLflow's cost per run on a local store (35 -> 24 ms per child
    run on ext4). PERSIST is one of SQLite's rollback modes, as durable as its default DELETE and
    used side by side with it by other connections (the MLflow UI, the user's script); it only
    leaves a ``<store>-journal`` file, its header zeroed, beside the store. It is a setting of the
    connection, not of the database file. A store in another mode (WAL) is left as it is."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _persist_journal):
        event.listen(Engine, "connect", _persist_journal)


def _persist_journal(dbapi_connection: Any, _record: Any) -> None:
    import sqlite3

    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "delete":
            cursor.execute("PRAGMA journal_mode=PERSIST")
            cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_LIMIT}")
    except sqlite3.Error:  # a busy or unusual store: MLflow's own default mode then
        pass
    finally:
        cursor.close()


def fresh_sqlite(cwd: str) -> str | None:
    """The URI of the job's tracking store when it is a sqlite file that does not exist yet."""
    from mlflow import get_tracking_uri

    uri = get_tracking_uri()
    path = _journal.sqlite_file(uri, cwd)
    return None if path is None or os.path.exists(path) else uri


def create_sqlite(uri: str) -> bool:
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


def reset_mlflow_stores() -> None:
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


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or None: whether it is still the same file."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class StoreWatch:
    """The identity of each sqlite file the writer has used: MLflow keeps a store (and its
    connections) per URI for the life of the process, so when the file was deleted or replaced
    since, MLflow must open it again, or the runs would go into the deleted file."""

    def __init__(self) -> None:
        self.stores: dict[str, tuple[int, int] | None] = {}  # sqlite file -> (device, inode)

    def check(self) -> None:
        """Forget MLflow's stores if the current tracking URI's file changed."""
        from mlflow import get_tracking_uri

        path = _journal.sqlite_file(get_tracking_uri())
        if path is None:
            return
        identity = file_identity(path)
        if path in self.stores and self.stores[path] != identity:
            reset_mlflow_stores()
        self.stores[path] = identity
