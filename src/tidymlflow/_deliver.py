"""Delivery: one job (a call's manifest and staged files) written to MLflow. Runs in the writer
process, in the user's process in the in-process mode, and in ``tidymlflow sync``.

Delivery is idempotent, so a job can be replayed after any failure: every run tidymlflow creates
carries its handle as the tag ``tidymlflow.handle`` and is found again instead of created twice;
metrics carry the time they were recorded, so the store drops their duplicates; params, tags and
files are rewritten with the same values. A failure that may pass (network, server, disk)
leaves the job in the journal; any other error is reported and the rest of the job is written.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tidymlflow import _job, _journal
from tidymlflow._runs import ENV, PARENT_TAG, SECRETS

#: The tag that names a run's handle: how a replay finds the run instead of creating it again.
HANDLE_TAG = "tidymlflow.handle"
#: The tag that lists what a run is missing after a failed delivery (until ``tidymlflow sync``).
INCOMPLETE_TAG = "tidymlflow.incomplete"
#: The experiment tag MLflow's UI reads to open an experiment in its model-training view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
#: The tag that points at a fit's logged model (``log_models=True``).
MODEL_URI_TAG = "tidymlflow.model_uri"
#: Bytes of a sqlite store's rollback journal kept between transactions (see
#: :func:`persist_sqlite_journal`); a larger one is cut back to this after its transaction.
JOURNAL_LIMIT = 1 << 20


class Undelivered(RuntimeError):
    """The job could not be written now (server unreachable, hung, out of space); it stays in
    the journal for a later attempt. ``unreachable``: the server itself is out of reach, so the
    other jobs for it wait too."""

    def __init__(self, message: str, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class UnknownHandle(LookupError):
    """A run the job refers to was not created yet (its job is kept too): a failure that passes
    once that job is written."""


class ParamClashError(ValueError):
    """Params tidymlflow would log are already set to other values in the run."""


class PlotError(RuntimeError):
    """A plot could not be drawn or saved; the rest of the call's logging went on."""


@dataclass
class Result:
    """What a delivery did: the run id of every handle, and the errors that were reported
    (the job is done; these parts of it could not be logged)."""

    runs: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)  # the runs of this job's new records
    errors: list[str] = field(default_factory=list)


def transient(exc: BaseException) -> bool:
    """Whether a failure may pass (network, server, disk, a locked database): then the job is
    kept and tried again, never dropped."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OSError, TimeoutError, UnknownHandle)):
            return True
        code = getattr(current, "error_code", None)
        if code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"):
            return True
        if type(current).__name__ in ("OperationalError", "DisconnectionError"):
            return True
        current = current.__cause__ or current.__context__
    return False


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


class Deliverer:
    """Writes jobs to MLflow. ``apply_target`` (writer process and sync): set the job's tracking
    URI, experiment, environment and working directory before resolving where its runs go, as the
    user's process would have. In the user's own process they are already in place."""

    def __init__(self, apply_target: bool, plotter: Plotter | None = None) -> None:
        self.apply_target = apply_target
        self.plotter = plotter
        self.handles: dict[str, tuple[str, str]] = {}  # handle -> (run id, experiment id)
        self._kinds: set[tuple[str, str]] = set()
        self._context: dict[tuple[Any, ...], dict[str, str]] = {}

    # -- one job ------------------------------------------------------------------------------------
    def deliver(self, job: str, superseded: Superseded = frozenset) -> Result:
        """Write ``job``; raise :class:`Undelivered` when it must stay in the journal. A store
        that is busy (a locked sqlite database, another process creating its tables) gets a
        second try a moment later: delivery is idempotent. ``superseded()`` (run handle, plot),
        asked before each plot: plots a job already waiting draws again into the same run,
        skipped here."""
        try:
            return self._deliver(job, superseded)
        except Undelivered as exc:
            if exc.unreachable or not _busy_store(exc):
                raise
        time.sleep(1.0)
        return self._deliver(job, superseded)

    def _deliver(self, job: str, superseded: Superseded) -> Result:
        manifest = _journal.load(job)
        if manifest.get("format") != _job.FORMAT:
            raise ValueError(f"job {job} has format {manifest.get('format')}, this tidymlflow writes "
                             f"{_job.FORMAT}")
        progress = _journal.progress(job)
        replay = progress["attempts"] > 0
        progress["attempts"] += 1
        _journal.save_progress(job, progress)
        result = Result()
        runs: dict[str, tuple[str, str]] = {}
        try:
            with self._target(manifest["target"]):
                client = _client()
                context = self._context_tags(manifest)
                tagged: set[str] = set()  # runs created just now, their after-call tags included
                for rec in manifest["runs"]:
                    runs[rec["handle"]], created = self._open(client, rec, context, progress, replay)
                    if created:
                        tagged.add(rec["handle"])
                _journal.save_progress(job, progress)  # a replay finds runs it misses by their handle tag
                incomplete = frozenset(progress.get("incomplete", ()))
                for rec in reversed(manifest["runs"]):
                    self._write(client, job, rec, runs[rec["handle"]][0], result, incomplete, superseded,
                                rec["handle"] in tagged)
        except Exception as exc:
            if not transient(exc):
                raise
            unreachable = _unreachable(exc)
            if not unreachable:
                with self._target(manifest["target"]):  # the job's store, not the process's own
                    self._mark_incomplete(job, manifest, runs, exc, progress)
            raise Undelivered(f"{type(exc).__name__}: {exc}", unreachable) from exc
        result.runs = {h: r for h, (r, _) in runs.items()}
        result.created = [runs[r["handle"]][0] for r in manifest["runs"] if r["kind"] == "new"]
        return result

    @contextlib.contextmanager
    def _target(self, target: dict[str, Any]) -> Iterator[None]:
        """The job's tracking URI, experiment, environment and directory (``apply_target``)."""
        if not self.apply_target:
            yield
            return
        import mlflow
        from mlflow.tracking import fluent
        from mlflow.tracking._tracking_service import utils

        # what the process had before: put back after the job (``sync()`` runs in the caller's)
        saved_cwd, saved_uri = os.getcwd(), utils._tracking_uri
        saved_experiment = fluent._active_experiment_id
        saved_env = {k: os.environ.get(k) for k in target["env"]}
        # the writer may serve several scripts: none of another script's tracking variables; the
        # credentials are never in a job: the writer's own (the script's) or sync's user's stay
        for key in [k for k in os.environ if (k.startswith("MLFLOW_EXPERIMENT_") or k in ENV)
                    and k not in SECRETS]:
            saved_env.setdefault(key, os.environ.pop(key))
        os.environ.update(target["env"])
        with contextlib.suppress(OSError):
            os.chdir(target["cwd"])
        if target["tracking_uri"]:
            mlflow.set_tracking_uri(target["tracking_uri"])
        else:  # MLflow's own default (the environment, else its default store in the job's cwd)
            utils._tracking_uri = None
        fluent._active_experiment_id = target["experiment_id"]
        try:
            yield
        finally:
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            utils._tracking_uri, fluent._active_experiment_id = saved_uri, saved_experiment
            with contextlib.suppress(OSError):
                os.chdir(saved_cwd)

    def _context_tags(self, manifest: dict[str, Any]) -> dict[str, str]:
        """MLflow's context tags (source, user, git commit) for the user's script."""
        from mlflow.tracking.context.registry import resolve_tags

        argv = manifest.get("argv") or sys.argv[:1]
        key = (tuple(argv), manifest["target"]["cwd"], os.environ.get("MLFLOW_RUN_CONTEXT"))
        if key not in self._context:
            saved = sys.argv
            if self.apply_target:
                sys.argv = list(argv)
            try:
                self._context[key] = resolve_tags({})
            finally:
                sys.argv = saved
        return self._context[key]

    # -- runs ---------------------------------------------------------------------------------------
    def _open(self, client: Any, rec: dict[str, Any], context: dict[str, str], progress: dict[str, Any],
              replay: bool) -> tuple[tuple[str, str], bool]:
        """The run of a record: an existing run, one an earlier attempt created, or a new one
        (created with all its tags, those set after the call too: True)."""
        handle = rec["handle"]
        if rec["kind"] == "existing":
            return self.resolve(client, handle), False
        if handle in progress["runs"]:
            found = tuple(progress["runs"][handle])
            self.handles[handle] = (found[0], found[1])
            return self.handles[handle], False
        parent = self.resolve(client, rec["parent"]) if rec["parent"] else None
        experiment = (parent[1] if parent is not None else None) or rec["experiment_id"] or _experiment()
        found_run = self._find(client, handle, [experiment]) if replay else None
        created = found_run is None
        if found_run is None:
            self._model_training_view(client, experiment)
            tags = {**context, **{k: str(v) for k, v in rec["tags"].items()}, **_tag_values(rec["set_tags"]),
                    HANDLE_TAG: handle}
            if parent is not None:
                tags[PARENT_TAG] = parent[0]
            run = client.create_run(experiment, start_time=rec["start_time"], tags=tags, run_name=rec["name"])
            found_run = (run.info.run_id, experiment)
        self.handles[handle] = found_run
        progress["runs"][handle] = list(found_run)
        return found_run, created

    def resolve(self, client: Any, handle: str) -> tuple[str, str]:
        """The (run id, experiment id) of a handle: ``run:<id>``, a run created in this process,
        else the run tagged with it (a job that an earlier process or attempt delivered)."""
        if handle.startswith("run:"):
            run_id = handle[4:]
            if handle not in self.handles:
                self.handles[handle] = (run_id, str(client.get_run(run_id).info.experiment_id))
            return self.handles[handle]
        if handle in self.handles:
            return self.handles[handle]
        experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
        found = self._find(client, handle, experiments)
        if found is None:
            raise UnknownHandle(f"no run carries {HANDLE_TAG}={handle}: the job that creates it was not "
                              "delivered (run `tidymlflow sync`)")
        return found

    def _find(self, client: Any, handle: str, experiments: list[str]) -> tuple[str, str] | None:
        runs = client.search_runs(experiments, filter_string=f"tags.`{HANDLE_TAG}` = '{handle}'",
                                  max_results=1)
        if not runs:
            return None
        self.handles[handle] = (runs[0].info.run_id, str(runs[0].info.experiment_id))
        return self.handles[handle]

    def _model_training_view(self, client: Any, experiment_id: str) -> None:
        """Once per experiment: an experiment without a kind opens in the MLflow UI's
        model-training view (runs), not its GenAI view (traces)."""
        key = (str(client.tracking_uri), experiment_id)
        if key in self._kinds:
            return
        if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags:
            try:
                client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")
            except Exception:
                # Another writer (a thread, another script) set it between our read and our write.
                if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags:
                    raise
        self._kinds.add(key)

    # -- what goes into a run ---------------------------------------------------------------------------
    def _write(self, client: Any, job: str, rec: dict[str, Any], run_id: str, result: Result,
               incomplete: frozenset[str], superseded: Superseded = frozenset, tagged: bool = False) -> None:
        """Params, metrics and tags in as few batches as fit (``tagged``: the run was created with
        its tags), datasets, files, plots and the model; then the run ends (when tidymlflow owns
        it). Errors that do not pass are reported and the rest goes on."""
        params = dict(rec["params"])
        if rec["shared"] and params:
            clashes = _drop_clashes(client, run_id, params)
            if clashes:
                result.errors.append(f"ParamClashError: param(s) {', '.join(clashes)} of run {run_id} "
                                     "already hold other values (set before tidymlflow logged); kept those, "
                                     "logged everything else")
        self._step(result, _log_batch, client, run_id, params, rec, not tagged)
        if rec["datasets"]:
            self._step(result, _log_inputs, client, run_id, job, rec["datasets"])
        folder = os.path.join(job, rec["files"])
        for table in rec["tables"]:
            self._step(result, _csv_twin, os.path.join(folder, table))
        for plot in rec["plots"]:
            if (rec["handle"], plot["name"]) in superseded():
                continue
            error = (self.plotter or draw_plot)(job, rec["files"], plot)
            if error:
                result.errors.append(error)
        if rec["model"] is not None:
            self._step(result, _log_model, client, job, run_id, rec["model"])
        if os.path.isdir(folder):
            _upload(client, run_id, folder)
        if rec["handle"] in incomplete:
            with contextlib.suppress(Exception):
                client.delete_tag(run_id, INCOMPLETE_TAG)
        if rec["status"] is not None:
            client.set_terminated(run_id, rec["status"], end_time=rec["end_time"] or _now())

    @staticmethod
    def _step(result: Result, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            if transient(exc):
                raise
            result.errors.append(f"{type(exc).__name__}: {exc}")

    def _mark_incomplete(self, job: str, manifest: dict[str, Any], runs: dict[str, tuple[str, str]],
                         exc: BaseException, progress: dict[str, Any]) -> None:
        """After a failure that may pass, with the server in reach (a full disk, say): runs that
        exist end FAILED with a tag saying what they miss, and partial files are removed. The
        replay that completes them removes the tag and ends them as the call did."""
        progress["incomplete"] = sorted(set(progress.get("incomplete", [])) | set(runs))
        _journal.save_progress(job, progress)
        with contextlib.suppress(Exception):
            client = _client()
            for rec in manifest["runs"]:
                if rec["handle"] in runs and rec["kind"] == "new":
                    run_id = runs[rec["handle"]][0]
                    missing = _remove_partial(client, run_id, os.path.join(job, rec["files"]))
                    what = (f"files not written: {', '.join(missing)}" if missing
                            else "not all of it was written")
                    client.set_tag(run_id, INCOMPLETE_TAG,
                                   f"{what} ({type(exc).__name__}: {exc}); run `tidymlflow sync`"[:5000])
                    client.set_terminated(run_id, "FAILED")


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def _experiment() -> str:
    from mlflow.tracking.fluent import _get_experiment_id

    return str(_get_experiment_id())


def _now() -> int:
    return int(time.time() * 1000)


def _busy_store(exc: BaseException) -> bool:
    """The database was locked or being set up by another process."""
    text = f"{exc} {exc.__cause__!r}"
    return any(s in text for s in ("database is locked", "already exists", "OperationalError"))


def _unreachable(exc: BaseException) -> bool:
    """The failure is the server being out of reach (refused, timed out, no answer)."""
    text = f"{type(exc).__name__}: {exc} {exc.__cause__!r}"
    return any(s in text for s in ("Connection", "connection", "Timeout", "timed out", "Max retries",
                                   "API request"))


def _drop_clashes(client: Any, run_id: str, params: dict[str, Any]) -> list[str]:
    """Remove the params whose key the run already holds with another value; their keys."""
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    from tidymlflow._writer import clean_value

    existing = client.get_run(run_id).data.params
    clashes = sorted(k for k, v in params.items()
                     if k in existing and existing[k] != clean_value(v, MAX_PARAM_VAL_LENGTH))
    for key in clashes:
        del params[key]
    return clashes


def _tag_values(tags: dict[str, Any]) -> dict[str, str]:
    """Tag values as MLflow stores them (text, cut to its limit)."""
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    from tidymlflow._writer import clean_value

    return {k: clean_value(val, MAX_TAG_VAL_LENGTH) for k, val in tags.items()}


def _log_batch(client: Any, run_id: str, params: dict[str, Any], rec: dict[str, Any],
               with_tags: bool = True) -> None:
    """Params, metrics and (``with_tags``) the tags set after the call, in one call when they fit
    MLflow's batch limits (the usual case)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils import validation as v

    from tidymlflow._writer import clean_value

    metrics = [Metric(k, val, ts, step) for k, val, ts, step in rec["metrics"]]
    plist = [Param(k, clean_value(val, v.MAX_PARAM_VAL_LENGTH)) for k, val in params.items()]
    tags = [RunTag(k, val) for k, val in _tag_values(rec["set_tags"]).items()] if with_tags else []
    while metrics or plist or tags:
        p, plist = plist[: v.MAX_PARAMS_TAGS_PER_BATCH], plist[v.MAX_PARAMS_TAGS_PER_BATCH :]
        t, tags = tags[: v.MAX_PARAMS_TAGS_PER_BATCH], tags[v.MAX_PARAMS_TAGS_PER_BATCH :]
        cut = min(v.MAX_ENTITIES_PER_BATCH - len(p) - len(t), v.MAX_METRICS_PER_BATCH)
        m, metrics = metrics[:cut], metrics[cut:]
        client.log_batch(run_id, metrics=m, params=p, tags=t, synchronous=True)


def _log_inputs(client: Any, run_id: str, job: str, datasets: list[dict[str, Any]]) -> None:
    """Dataset inputs, with MLflow's own digest of the staged rows and the frame's full size."""
    from mlflow.exceptions import MlflowException

    inputs = [_dataset(job, d) for d in datasets]
    try:
        client.log_inputs(run_id, datasets=inputs)
    except MlflowException:
        # Two runs registering the same new dataset at once race on the store's unique key;
        # the dataset exists now, so one retry links it.
        client.log_inputs(run_id, datasets=inputs)


def _dataset(job: str, staged: dict[str, Any]) -> Any:
    """The DatasetInput MLflow's ``from_pandas`` gives for the user's frame, built from its first
    rows and size (what the digest and profile read)."""
    import json

    import numpy as np
    import pandas as pd
    from mlflow.data.digest_utils import get_normalized_md5_digest
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import Dataset, DatasetInput, InputTag

    head = pd.read_parquet(os.path.join(job, staged["file"]))
    numeric = head.select_dtypes(include=[np.number]).columns
    wanted = pd.Index(staged["string_columns"]).union(numeric)
    digest = get_normalized_md5_digest([pd.util.hash_pandas_object(head[wanted]).values,
                                        np.int64(staged["num_rows"])]
                                       + [str(c).encode() for c in staged["columns"]])
    e = from_pandas(head, name=staged["context"], digest=digest)._to_mlflow_entity()
    profile = json.dumps({"num_rows": staged["num_rows"], "num_elements": staged["num_elements"]})
    entity = Dataset(e.name, e.digest, e.source_type, e.source, e.schema, profile)
    return DatasetInput(entity, [InputTag("mlflow.data.context", staged["context"])])


def _csv_twin(path: str) -> None:
    """The CSV the MLflow UI previews as a grid: ``<name>.csv``, or
    ``<name>.first_<N>_rows.csv`` when capped."""
    import pandas as pd
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows
    frame = pd.read_parquet(path)
    stem = path[: -len(".parquet")] if path.endswith(".parquet") else path
    capped = rows > _job.CSV_ROWS
    frame.head(_job.CSV_ROWS).to_csv(f"{stem}.first_{_job.CSV_ROWS}_rows.csv" if capped else f"{stem}.csv",
                                     index=False)


def draw_plot(job: str, files: str, plot: dict[str, Any]) -> str | None:
    """Draw one plot of a job into its run's folder (``files``): a png, and for the interactive
    plots also the html (the png is what shows offline). Returns the error of a plot that cannot
    be drawn (the rest of the job goes on); a failure that may pass (a full disk) raises."""
    from tidymlflow import plots

    name = plot["name"]
    folder = os.path.join(job, files, "plots")
    aside = os.path.join(job, ".drawing", files)  # whole files only ever appear in the run's folder
    try:
        for path in (folder, os.path.join(job, ".drawing"), aside):  # private, as the whole job is
            _journal.private_dir(path)
        args, kwargs = _job.decode(plot["args"], job), _job.decode(plot["kwargs"], job)
        with _quiet():
            figure = plots.draw_png(name, *args, **kwargs)
            if figure is None:
                return None
            drawn = [f"{name}.png"]
            plots.save(figure, os.path.join(aside, drawn[0]))
            if name in plots.INTERACTIVE:
                drawn.append(f"{name}.html")
                figure = plots.draw(name, *args, **kwargs)
                plots.save(figure, os.path.join(aside, drawn[1]), plot["plotly_js"])
        for file in drawn:
            os.chmod(os.path.join(aside, file), 0o600)
            os.replace(os.path.join(aside, file), os.path.join(folder, file))
    except Exception as exc:
        if transient(exc):
            raise
        return f"PlotError: plot {name!r} skipped: {type(exc).__name__}: {exc}"
    return None


#: Draws one plot (``draw_plot``'s signature): in this process, or handed to a plotting process.
Plotter = Callable[[str, str, dict[str, Any]], "str | None"]
#: The (run handle, plot) pairs a job waiting to be written draws again (asked as late as
#: possible: a job that arrives while one is written still counts).
Superseded = Callable[[], "frozenset[tuple[str, str]]"]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _log_model(client: Any, job: str, run_id: str, model: dict[str, Any]) -> None:
    """The fit as an MLflow model linked to its run; its URI as the run's tag."""
    from tidymlflow import _serialize, models

    with open(os.path.join(job, model["file"]), "rb") as fh:
        fit = _serialize.loads(fh.read())
    with _quiet():
        info = models.log_model(fit, name="model", registered_model_name=model["registered_model_name"],
                                run_id=run_id)
    client.set_tag(run_id, MODEL_URI_TAG, info.model_uri)


def _upload(client: Any, run_id: str, folder: str) -> None:
    client.log_artifacts(run_id, folder)


def _remove_partial(client: Any, run_id: str, folder: str) -> list[str]:
    """The staged files the run's artifacts lack or hold cut short; the cut ones are deleted
    (never an empty plot or table left behind)."""
    if not os.path.isdir(folder):
        return []
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(client.get_run(run_id).info.artifact_uri)
    sizes: dict[str, int | None] = {}

    def walk(path: str | None) -> None:
        for info in repo.list_artifacts(path):
            if info.is_dir:
                walk(info.path)
            else:
                sizes[info.path] = info.file_size

    with contextlib.suppress(Exception):
        walk(None)
    missing = []
    for base, _dirs, files in os.walk(folder):
        for name in files:
            local = os.path.join(base, name)
            rel = os.path.relpath(local, folder)
            if sizes.get(rel) != os.path.getsize(local):
                missing.append(rel)
                if rel in sizes:
                    with contextlib.suppress(Exception):
                        repo.delete_artifacts(rel)
    return sorted(missing)
