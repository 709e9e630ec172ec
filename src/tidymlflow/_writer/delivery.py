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
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from tidymlflow._jobs import journal as _journal
from tidymlflow._jobs import records
from tidymlflow._jobs.names import ENV, HTTP_DEFAULTS, PARENT_TAG, PROVENANCE_TAGS, SECRETS
from tidymlflow._jobs.records import (
    JobTarget,
    Manifest,
    ModelRecord,
    OutputsRecord,
    PlotRecord,
    Progress,
    RunRecord,
)
from tidymlflow._writer import artifacts
from tidymlflow._writer.failures import Undelivered, UnknownHandle, busy_store, transient, unreachable

#: The tag that names a run's handle: how a replay finds the run instead of creating it again.
HANDLE_TAG = "tidymlflow.handle"


#: The tag that lists what a run is missing after a failed delivery (until ``tidymlflow sync``).
INCOMPLETE_TAG = "tidymlflow.incomplete"


#: Seconds after which a ``create_run`` may have been sent twice (MLflow retries a request only
#: after its timeout): then the run's twins are looked for.
SLOW_CREATE = 1.0


#: The experiment tag MLflow's UI reads to open an experiment in its model-training view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


@dataclass
class Result:
    """What a delivery did: the run id of every handle, and the errors that were reported
    (the job is done; these parts of it could not be logged)."""

    runs: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)  # the runs of this job's new records
    errors: list[str] = field(default_factory=list)
    carried: Carry | None = None  # what is left for the next job, written with its own


@dataclass
class Carry:
    """What a job leaves unwritten for the next job, which continues its run (a fit's
    ``evaluate()`` queued behind it): the run's params, metrics and tags, its dataset inputs and
    its end. The next job writes them in its own batch and inputs call and ends the run: one
    MLflow call of each kind for the two jobs. Held in memory only: the job stays in the
    journal until the next one is written (a replay writes everything again)."""

    handle: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[records.Metric, ...] = ()
    set_tags: dict[str, Any] = field(default_factory=dict)
    inputs: list[artifacts.DatasetFields] = field(default_factory=list)
    status: str | None = None
    end_time: int | None = None


@dataclass
class Ends:
    """For one run of a job: what the job before left for it (``came``), and what is left to
    the next job (``leave``, filled in)."""

    came: Carry | None
    leave: Carry | None


class Helpers(Protocol):
    """Processes that draw a job's plots, package its models, work out its fits' tables and make
    its CSV twins and dataset inputs (:mod:`~tidymlflow._writer.plotpool`), so that the writer
    never imports the plotting and modelling libraries and writes while they work. Each answers
    as the function of :mod:`~tidymlflow._writer.artifacts` it stands for does, doing the work
    itself when no process can."""

    def draw(self, job: str, files: str, plot: PlotRecord) -> str | None: ...

    def model(self, job: str, files: str, model: ModelRecord) -> str | None: ...

    def outputs(self, job: str, files: str, outputs: OutputsRecord) -> str | None: ...

    def files(self, job: str, files: str, run: artifacts.RunFiles) -> artifacts.Prepared: ...


#: The (run handle, plot) pairs a job waiting to be written draws again (asked as late as
#: possible: a job that arrives while one is written still counts).
Superseded = Callable[[], "frozenset[tuple[str, str]]"]


class Deliverer:
    """Writes jobs to MLflow. ``apply_target`` (writer process and sync): set the job's tracking
    URI, experiment, environment and working directory before resolving where its runs go, as the
    user's process would have. In the user's own process they are already in place."""

    def __init__(self, apply_target: bool, helpers: Helpers | None = None) -> None:
        self.apply_target = apply_target
        self.helpers = helpers
        self.handles: dict[str, tuple[str, str]] = {}  # handle -> (run id, experiment id)
        self._kinds: set[tuple[str, str]] = set()

    # -- one job ------------------------------------------------------------------------------------
    def deliver(self, job: str, manifest: Manifest | None = None, superseded: Superseded = frozenset,
                env: dict[str, str] | None = None, carried: Carry | None = None,
                carry: str | None = None) -> Result:
        """Write ``job``; raise :class:`Undelivered` when it must stay in the journal. A store
        that is busy (a locked sqlite database, another process creating its tables) gets a
        second try a moment later: delivery is idempotent. ``superseded()`` (run handle, plot),
        asked before each plot: plots a job already waiting draws again into the same run,
        skipped here. ``manifest``: the job's, when the caller has read it already; ``env``: the
        environment of the job's script (see :meth:`target`). ``carried``: what the job before
        left for this one (:class:`Carry`); ``carry``: the handle of a run of a new record that
        the next job continues, whose batch, inputs and end are left to it (``Result.carried``;
        not on a replay)."""
        manifest = manifest or _journal.manifest(job)
        try:
            return self._deliver(job, manifest, superseded, env, carried, carry)
        except Undelivered as exc:
            if exc.unreachable or not busy_store(exc):
                raise
        time.sleep(1.0)
        return self._deliver(job, manifest, superseded, env, carried, carry)

    def _deliver(self, job: str, manifest: Manifest, superseded: Superseded, env: dict[str, str] | None,
                 carried: Carry | None = None, carry: str | None = None) -> Result:
        progress = _journal.progress(job)
        replay = progress.attempts > 0
        if replay or carry in progress.incomplete:
            carry = None
        progress.attempts += 1
        _journal.save_progress(job, progress)
        result = Result()
        runs: dict[str, tuple[str, str]] = {}
        try:
            with self.target(manifest.target, env):
                # the tables the call staged (a fit's worked-out tables come with their CSV twins)
                staged = {rec.handle: rec.tables for rec in manifest.runs}
                manifest = self._with_outputs(job, manifest, result)
                client = _client()
                # MLflow's context tags go on the runs a job creates (an evaluation's job has none)
                context = self._context_tags(manifest) if any(r.kind == "new" for r in manifest.runs) else {}
                tagged: set[str] = set()  # runs created just now, their after-call tags included
                for rec in manifest.runs:
                    runs[rec.handle], created = self._open(client, rec, context, progress, replay)
                    if created:
                        tagged.add(rec.handle)
                _journal.save_progress(job, progress)  # a replay finds runs it misses by their handle tag
                incomplete = frozenset(progress.incomplete)
                for rec in reversed(manifest.runs):
                    ends = Ends(carried if carried is not None and carried.handle == rec.handle else None,
                                Carry(rec.handle) if rec.handle == carry and rec.kind == "new" else None)
                    self._write(client, job, rec, runs[rec.handle][0], result, incomplete, superseded,
                                rec.handle in tagged, staged[rec.handle], ends, manifest.provenance)
                    result.carried = result.carried or ends.leave
        except Exception as exc:
            if not transient(exc):
                raise
            out_of_reach = unreachable(exc)
            if not out_of_reach:
                with self.target(manifest.target, env):  # the job's store, not the process's own
                    self._mark_incomplete(job, manifest, runs, exc, progress)
            raise Undelivered(f"{type(exc).__name__}: {exc}", out_of_reach) from exc
        result.runs = {h: r for h, (r, _) in runs.items()}
        result.created = [runs[r.handle][0] for r in manifest.runs if r.kind == "new"]
        return result

    def _with_outputs(self, job: str, manifest: Manifest, result: Result) -> Manifest:
        """The manifest with what each run gains from the fit handed over with it (worked out
        by a helper process, or here), before its runs are created with their tags."""
        if not any(rec.outputs for rec in manifest.runs):
            return manifest
        runs = tuple(self._derived(job, rec, result) for rec in manifest.runs)
        return dataclasses.replace(manifest, runs=runs)

    def _derived(self, job: str, rec: RunRecord, result: Result) -> RunRecord:
        if rec.outputs is None:
            return rec
        derive = self.helpers.outputs if self.helpers else artifacts.derive_outputs
        error = derive(job, rec.files, rec.outputs)
        if error:
            result.errors.append(error)
        try:
            found = records.load_derived(records.derived_path(job, rec.files))
            for table in found.tables:
                records.inside(job, f"{rec.files}/{table}")
        except (OSError, records.RecordError) as exc:
            result.errors.append(f"the fit's tables were not worked out: {type(exc).__name__}: {exc}")
            return dataclasses.replace(rec, outputs=None)
        result.errors.extend(found.errors)
        return rec.worked_out(found)

    @contextlib.contextmanager
    def target(self, target: JobTarget, env: dict[str, str] | None = None) -> Iterator[None]:
        """The job's tracking URI, experiment, environment and directory (``apply_target``).
        ``env``: the environment of the script that made the job (the writer serves several
        scripts; their credentials and settings are each their own), with the writer's short
        HTTP settings unless the script set them; else this process's own."""
        if not self.apply_target:
            yield
            return
        import mlflow
        from mlflow.tracking import fluent
        from mlflow.tracking._tracking_service import utils

        # what the process had before: put back after the job (``sync()`` runs in the caller's)
        saved_cwd, saved_uri = os.getcwd(), utils._tracking_uri
        saved_experiment = fluent._active_experiment_id
        saved_env = dict(os.environ)
        if env is not None:
            os.environ.clear()
            os.environ.update({**HTTP_DEFAULTS, "MLFLOW_DISABLE_TELEMETRY": "true", **env})
        # none of another script's tracking variables; the credentials are never in a job: the
        # script's own (or sync's user's) stay
        for key in [k for k in os.environ if (k.startswith("MLFLOW_EXPERIMENT_") or k in ENV)
                    and k not in SECRETS]:
            del os.environ[key]
        os.environ.update(target.env)
        with contextlib.suppress(OSError):
            os.chdir(target.cwd)
        # the URI as MLflow would resolve it in the script (else the environment, else MLflow's
        # default), a relative store made absolute against the script's folder: MLflow keeps
        # one store per URI text, and a relative one would reach another script's file
        utils._tracking_uri = None
        mlflow.set_tracking_uri(_journal.absolute_uri(target.tracking_uri or mlflow.get_tracking_uri(),
                                                      target.cwd))
        fluent._active_experiment_id = target.experiment_id  # type: ignore[assignment]
        try:
            yield
        finally:
            if os.environ != saved_env:
                os.environ.clear()
                os.environ.update(saved_env)
            utils._tracking_uri, fluent._active_experiment_id = saved_uri, saved_experiment
            with contextlib.suppress(OSError):
                os.chdir(saved_cwd)

    def _context_tags(self, manifest: Manifest) -> dict[str, str]:
        """MLflow's context tags for the user's script: its provenance (source, user, git) as
        the script computed it, over what MLflow's context providers add here. Nothing is kept
        between jobs: a writer serves many scripts (and MLflow's git provider caches its first
        answer for the life of the process, so its git tags are never taken here)."""
        from mlflow.tracking.context.registry import resolve_tags

        saved = sys.argv
        if self.apply_target:
            sys.argv = list(manifest.argv or sys.argv[:1])
        try:
            found = resolve_tags({})
        finally:
            sys.argv = saved
        if manifest.provenance:  # a job of this version (an older one has none: MLflow's then)
            # the user is MLflow's here when the script's is its tracking username (a credential)
            found = {k: v for k, v in found.items() if k not in PROVENANCE_TAGS or k == "mlflow.user"}
        return {**found, **manifest.provenance}

    # -- runs ---------------------------------------------------------------------------------------
    def _open(self, client: Any, rec: RunRecord, context: dict[str, str], progress: Progress,
              replay: bool) -> tuple[tuple[str, str], bool]:
        """The run of a record: an existing run, one an earlier attempt created, or a new one
        (created with all its tags, those set after the call too: True)."""
        handle = rec.handle
        if rec.kind == "existing":
            return self.resolve(client, handle), False
        if handle in progress.runs:
            self.handles[handle] = progress.runs[handle]
            return self.handles[handle], False
        parent = self.resolve(client, rec.parent) if rec.parent else None
        experiment = (parent[1] if parent is not None else None) or rec.experiment_id or _experiment()
        found_run = self._find(client, handle, [experiment]) if replay else None
        created = found_run is None
        if found_run is None:
            self._model_training_view(client, experiment)
            tags = {**context, **{k: str(v) for k, v in rec.tags.items()},
                    **artifacts.tag_values(rec.set_tags), HANDLE_TAG: handle}
            if parent is not None:
                tags[PARENT_TAG] = parent[0]
            asked = time.monotonic()
            run = client.create_run(experiment, start_time=rec.start_time, tags=tags, run_name=rec.name)
            found_run = (run.info.run_id, experiment)
            if time.monotonic() - asked > SLOW_CREATE:  # it may have been sent twice
                self._find(client, handle, [experiment], keep=run.info.run_id)
        self.handles[handle] = found_run
        progress.runs[handle] = found_run
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

    def _find(self, client: Any, handle: str, experiments: list[str],
              keep: str | None = None) -> tuple[str, str] | None:
        """The run tagged with ``handle`` (``keep``, else the oldest). MLflow's HTTP client sends
        a request again when its answer comes late, so a ``create_run`` the server acted on can
        have made a twin: every other run with the handle is deleted, none is left RUNNING."""
        runs = client.search_runs(experiments, filter_string=f"tags.`{HANDLE_TAG}` = '{handle}'",
                                  max_results=10, order_by=["attributes.start_time ASC"])
        if not runs:
            return None
        kept = next((r for r in runs if r.info.run_id == keep), runs[0])
        for twin in runs:
            if twin is not kept:
                client.delete_run(twin.info.run_id)
        self.handles[handle] = (kept.info.run_id, str(kept.info.experiment_id))
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
    def _write(self, client: Any, job: str, rec: RunRecord, run_id: str, result: Result,
               incomplete: frozenset[str], superseded: Superseded = frozenset, tagged: bool = False,
               staged: tuple[str, ...] = (), ends: Ends | None = None,
               source: dict[str, str] | None = None) -> None:
        """Params, metrics and tags in as few batches as fit (``tagged``: the run was created with
        its tags), datasets, files (``staged``: the tables the call staged, whose CSV twins are
        made now), plots and the model; then the run ends (when tidymlflow owns it). ``ends``:
        what the job before left for this run, and what is left to the next job; ``source``:
        the script's context tags, its datasets' source. Errors that do not pass are reported and
        the rest goes on."""
        ends = ends or Ends(None, None)
        params = dict(rec.params)
        if rec.shared and params:
            clashes = artifacts.drop_clashes(client, run_id, params)
            if clashes:
                result.errors.append(f"ParamClashError: param(s) {', '.join(clashes)} of run {run_id} "
                                     "already hold other values (set before tidymlflow logged); kept those, "
                                     "logged everything else")
        self._batch(client, run_id, params, rec, tagged, ends, result)
        self._inputs(client, job, run_id, rec, artifacts.RunFiles(staged, rec.datasets, source or None), ends,
                     result)
        folder = records.inside(job, rec.files)
        for plot in rec.plots:
            if (rec.handle, plot.name) in superseded():
                continue
            error = (self.helpers.draw if self.helpers else artifacts.draw_plot)(job, rec.files, plot)
            if error:
                result.errors.append(error)
        if rec.model is not None:
            self._step(result, self._log_model, client, job, run_id, rec, result)
        if os.path.isdir(folder):
            artifacts.upload(client, run_id, folder)
        if rec.handle in incomplete:
            with contextlib.suppress(Exception):
                client.delete_tag(run_id, INCOMPLETE_TAG)
        status, end_time = rec.status, rec.end_time
        if status is None and ends.came is not None:
            status, end_time = ends.came.status, ends.came.end_time
        if ends.leave is not None:
            ends.leave.status, ends.leave.end_time = status, end_time
        elif status is not None:
            client.set_terminated(run_id, status, end_time=end_time or _now())

    def _batch(self, client: Any, run_id: str, params: dict[str, Any], rec: RunRecord, tagged: bool,
               ends: Ends, result: Result) -> None:
        """The run's params, metrics and tags (those set after the call unless ``tagged``), with
        what the job before left; or, to be left to the next job, kept."""
        tags = {} if tagged else rec.set_tags
        if ends.came is not None:
            params = {**ends.came.params, **params}
            tags = {**ends.came.set_tags, **tags}
            rec = dataclasses.replace(rec, metrics=ends.came.metrics + rec.metrics)
        if ends.leave is not None:
            ends.leave.params, ends.leave.metrics, ends.leave.set_tags = params, rec.metrics, tags
            return
        self._step(result, artifacts.log_batch, client, run_id, params,
                   dataclasses.replace(rec, set_tags=tags), bool(tags))

    def _inputs(self, client: Any, job: str, run_id: str, rec: RunRecord, files: artifacts.RunFiles,
                ends: Ends, result: Result) -> None:
        """The CSV twins of the tables the call staged, and the dataset inputs (made by a helper
        process while the jobs before were written), with those the job before left."""
        inputs = list(ends.came.inputs) if ends.came is not None else []
        if files.tables or files.datasets:
            prepare = self.helpers.files if self.helpers else artifacts.prepare_files
            errors, prepared = prepare(job, rec.files, files)
            result.errors.extend(errors)
            if isinstance(prepared, str):
                result.errors.append(prepared)
            else:
                inputs += prepared
        if ends.leave is not None:
            ends.leave.inputs = inputs
        elif inputs:
            self._step(result, artifacts.log_inputs, client, run_id, inputs)

    def _log_model(self, client: Any, job: str, run_id: str, rec: RunRecord, result: Result) -> None:
        error = artifacts.log_model(client, job, run_id, rec, self.helpers.model if self.helpers else None)
        if error:
            result.errors.append(error)

    @staticmethod
    def _step(result: Result, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            if transient(exc):
                raise
            result.errors.append(f"{type(exc).__name__}: {exc}")

    def _mark_incomplete(self, job: str, manifest: Manifest, runs: dict[str, tuple[str, str]],
                         exc: BaseException, progress: Progress) -> None:
        """After a failure that may pass, with the server in reach (a full disk, say): runs that
        exist end FAILED with a tag saying what they miss, and partial files are removed. The
        replay that completes them removes the tag and ends them as the call did."""
        progress.incomplete = tuple(sorted(set(progress.incomplete) | set(runs)))
        _journal.save_progress(job, progress)
        with contextlib.suppress(Exception):
            client = _client()
            for rec in manifest.runs:
                if rec.handle in runs and rec.kind == "new":
                    run_id = runs[rec.handle][0]
                    missing = artifacts.remove_partial(client, run_id, os.path.join(job, rec.files))
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
