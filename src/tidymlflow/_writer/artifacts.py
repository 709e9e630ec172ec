"""What goes into a run, one MLflow call each: params, metrics and tags in batches, dataset
inputs, the CSV twins of tables, plots drawn from their staged inputs, the model, and the run's
files uploaded (or, after a failure, what was cut short removed)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tidymlflow._jobs import journal as _journal
from tidymlflow._jobs import records, serialize
from tidymlflow._jobs import stage as _job
from tidymlflow._jobs.names import clean_value
from tidymlflow._jobs.records import DatasetRecord, ModelRecord, OutputsRecord, PlotRecord, RunRecord, inside
from tidymlflow._writer.failures import transient

#: The tag that points at a fit's logged model (``log_models=True``).
MODEL_URI_TAG = "tidymlflow.model_uri"


class ParamClashError(ValueError):
    """Params tidymlflow would log are already set to other values in the run."""


class PlotError(RuntimeError):
    """A plot could not be drawn or saved; the rest of the call's logging went on."""


def drop_clashes(client: Any, run_id: str, params: dict[str, Any]) -> list[str]:
    """Remove the params whose key the run already holds with another value; their keys."""
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    existing = client.get_run(run_id).data.params
    clashes = sorted(k for k, v in params.items()
                     if k in existing and existing[k] != clean_value(v, MAX_PARAM_VAL_LENGTH))
    for key in clashes:
        del params[key]
    return clashes


def tag_values(tags: dict[str, Any]) -> dict[str, str]:
    """Tag values as MLflow stores them (text, cut to its limit)."""
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    return {k: clean_value(val, MAX_TAG_VAL_LENGTH) for k, val in tags.items()}


def log_batch(client: Any, run_id: str, params: dict[str, Any], rec: RunRecord,
              with_tags: bool = True) -> None:
    """Params, metrics and (``with_tags``) the tags set after the call, in one call when they fit
    MLflow's batch limits (the usual case)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils import validation as v

    metrics = [Metric(k, val, ts, step) for k, val, ts, step in rec.metrics]
    plist = [Param(k, clean_value(val, v.MAX_PARAM_VAL_LENGTH)) for k, val in params.items()]
    tags = [RunTag(k, val) for k, val in tag_values(rec.set_tags).items()] if with_tags else []
    while metrics or plist or tags:
        p, plist = plist[: v.MAX_PARAMS_TAGS_PER_BATCH], plist[v.MAX_PARAMS_TAGS_PER_BATCH :]
        t, tags = tags[: v.MAX_PARAMS_TAGS_PER_BATCH], tags[v.MAX_PARAMS_TAGS_PER_BATCH :]
        cut = min(v.MAX_ENTITIES_PER_BATCH - len(p) - len(t), v.MAX_METRICS_PER_BATCH)
        m, metrics = metrics[:cut], metrics[cut:]
        client.log_batch(run_id, metrics=m, params=p, tags=t, synchronous=True)


@dataclass(frozen=True)
class RunFiles:
    """What is made of a run's staged files before its delivery, in a helper process where
    there is one (pandas and pyarrow, no MLflow call): the CSV twins of its ``tables`` and the
    dataset entities of its ``datasets``."""

    tables: tuple[str, ...]
    datasets: tuple[DatasetRecord, ...]
    #: the script's MLflow context tags (source, user, git; the job's provenance): the datasets'
    #: source, as ``mlflow.data.from_pandas`` gives it in the script. None: this process's own.
    source: dict[str, str] | None = None


#: A dataset input as :func:`prepare_files` makes it: MLflow's Dataset fields (name, digest,
#: source type, source, schema, profile) and the input's context.
DatasetFields = tuple[str, str, str, str, "str | None", str, str]
#: What :func:`prepare_files` gives: the errors of CSV twins not written, and the dataset inputs
#: (or the error that left them out).
Prepared = tuple[list[str], "list[DatasetFields] | str"]


def prepare_files(job: str, files: str, run: RunFiles) -> Prepared:
    """Write the CSV twins of a run's staged tables and work out its dataset inputs (the part
    of a run's delivery that reads its files back: a helper process does it while the writer
    writes the jobs before). A failure that may pass (a full disk) raises."""
    errors: list[str] = []
    folder = inside(job, files)
    for table in run.tables:
        try:
            csv_twin(os.path.join(folder, table))
        except Exception as exc:
            if transient(exc):
                raise
            errors.append(f"{type(exc).__name__}: {exc}")
    try:
        inputs: list[DatasetFields] | str = [_dataset(job, d, run.source) for d in run.datasets]
    except Exception as exc:
        if transient(exc):
            raise
        inputs = f"{type(exc).__name__}: {exc}"
    return errors, inputs


def log_inputs(client: Any, run_id: str, datasets: list[DatasetFields]) -> None:
    """Dataset inputs, with MLflow's own digest of the staged rows and the frame's full size."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    inputs = [DatasetInput(Dataset(*fields[:6]), [InputTag("mlflow.data.context", fields[6])])
              for fields in datasets]
    try:
        client.log_inputs(run_id, datasets=inputs)
    except MlflowException:
        # Two runs registering the same new dataset at once race on the store's unique key;
        # the dataset exists now, so one retry links it.
        client.log_inputs(run_id, datasets=inputs)


def _dataset(job: str, staged: DatasetRecord, source: dict[str, str] | None = None) -> DatasetFields:
    """The DatasetInput MLflow's ``from_pandas`` gives for the user's frame in the user's script,
    built from its first rows and size (what the digest and profile read) and the script's
    context tags (``source``; else this process's)."""
    import json

    import numpy as np
    import pandas as pd
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.digest_utils import get_normalized_md5_digest
    from mlflow.data.pandas_dataset import from_pandas

    head = pd.read_parquet(inside(job, staged.file))
    numeric = head.select_dtypes(include=[np.number]).columns
    wanted = pd.Index(staged.string_columns).union(numeric)
    digest = get_normalized_md5_digest([pd.util.hash_pandas_object(head[wanted]).values,
                                        np.int64(staged.num_rows)]
                                       + [str(c).encode() for c in staged.columns])
    found: dict[str, Any] = {"source": CodeDatasetSource(tags=dict(source))} if source else {}
    e = from_pandas(head, name=staged.context, digest=digest, **found)._to_mlflow_entity()
    profile = json.dumps({"num_rows": staged.num_rows, "num_elements": staged.num_elements})
    return e.name, e.digest, e.source_type, e.source, e.schema, profile, staged.context


def csv_twin(path: str) -> None:
    """The CSV twin of the staged table ``path`` (:func:`~tidymlflow._jobs.stage.write_csv_twin`)."""
    import pandas as pd

    _job.write_csv_twin(pd.read_parquet(path), path)


def draw_plot(job: str, files: str, plot: PlotRecord) -> str | None:
    """Draw one plot of a job into its run's folder (``files``): a png, and for the interactive
    plots also the html (the png is what shows offline). Returns the error of a plot that cannot
    be drawn (the rest of the job goes on); a failure that may pass (a full disk) raises."""
    from tidymlflow import plots

    name = plot.name
    folder = os.path.join(job, files, "plots")
    # whole files only ever appear in the run's folder; each process draws aside in its own folder
    drawing = os.path.join(job, ".drawing")
    aside = os.path.join(drawing, str(os.getpid()), files)
    try:
        for path in (folder, drawing, os.path.dirname(aside), aside):  # private, as the whole job is
            _journal.private_dir(path)
        args, kwargs = _job.decode(plot.args, job), _job.decode(plot.kwargs, job)
        with _quiet():
            figure = plots.draw_png(name, *args, reuse=True, **kwargs)
            if figure is None:
                return None
            drawn = [f"{name}.png"]
            plots.save(figure, os.path.join(aside, drawn[0]))
            if name in plots.INTERACTIVE:
                drawn.append(f"{name}.html")
                figure = plots.draw(name, *args, **kwargs)
                plots.save(figure, os.path.join(aside, drawn[1]), plot.plotly_js)
        for file in drawn:
            os.chmod(os.path.join(aside, file), 0o600)
            os.replace(os.path.join(aside, file), os.path.join(folder, file))
    except Exception as exc:
        if transient(exc):
            raise
        return f"PlotError: plot {name!r} skipped: {type(exc).__name__}: {exc}"
    return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def prepared(job: str, files: str) -> str:
    """Where the MLflow model directory of a run's fit is packaged inside its job: beside the
    run's files, never among them (those are uploaded as they are)."""
    return os.path.join(job, ".models", files)


def prepare_model(job: str, files: str, model: ModelRecord, path: tuple[str, ...] = ()) -> str | None:
    """Package a run's fit as an MLflow model directory (:func:`prepared`): unpickle it and
    save it with its signature and requirements. This is the part that needs py-tidymodels and
    its modelling libraries, so it runs in a helper process where there is one (the writer then
    never imports them and stays small while idle). ``path``: the script's ``sys.path``, for
    fits that pickle classes of the script's own modules. Returns the error of a fit that
    cannot be packaged; a failure that may pass (a full disk) raises."""
    from tidymlflow import models

    target = prepared(job, files)
    if os.path.isdir(target):
        return None  # packaged before (a job written again)
    sys.path[:0] = [p for p in path if p not in sys.path]
    aside = os.path.join(job, ".drawing", str(os.getpid()), ".model")
    try:
        for folder in (os.path.dirname(os.path.dirname(target)), os.path.dirname(target),
                       os.path.dirname(os.path.dirname(aside)), os.path.dirname(aside)):
            _journal.private_dir(folder)
        shutil.rmtree(aside, ignore_errors=True)
        with open(inside(job, model.file), "rb") as fh:
            fit = serialize.loads(fh.read())
        with _quiet():
            models.save_model(fit, aside)
        os.replace(aside, target)
    except Exception as exc:
        if transient(exc):
            raise
        return f"{type(exc).__name__}: {exc}"
    return None


def derive_outputs(job: str, files: str, outputs: OutputsRecord, skip: frozenset[str] = frozenset(),
                   path: tuple[str, ...] = (), joined: OutputsRecord | None = None) -> str | None:
    """Work out what a run gains from the fit handed over with it (its metrics, tags, tables and
    plots; :mod:`tidymlflow._log.derive`) and keep it as the job's ``outputs/<files>.json``
    (:func:`~tidymlflow._jobs.records.derived_path`), the plots drawn into the run's folder.
    This runs the library's ``extract_outputs()``, so it runs in a helper process where there is
    one. Done once per job (a job written again reuses it). ``skip`` and ``joined``: see
    :func:`tidymlflow._log.derive.derive`. A failure that may pass raises; every other error is
    kept in the file, for the script to be told."""
    target = records.derived_path(job, files)
    if os.path.exists(target):
        return None
    sys.path[:0] = [p for p in path if p not in sys.path]
    try:
        from tidymlflow._log import derive

        with _quiet():
            rec, errors = derive.derive(job, files, outputs, skip, joined)
        for plot in rec.plots:
            error = draw_plot(job, files, plot)
            if error:
                errors.append(error)
        found = records.Derived(rec.metrics, rec.set_tags, rec.tables, tuple(errors))
    except Exception as exc:
        if transient(exc):
            raise
        found = records.Derived((), {}, (), (f"{type(exc).__name__}: {exc}",))
    _journal.private_dir(os.path.dirname(target))
    _journal.seal(job)  # the tables and plot inputs staged here: training data
    _journal.write_private(target, records.dump_derived(found))
    return None


def log_model(client: Any, job: str, run_id: str, rec: RunRecord,
              prepare: Callable[[str, str, ModelRecord], str | None] | None = None) -> str | None:
    """The fit as an MLflow model linked to its run (packaged by ``prepare``, a helper process,
    or here); its URI as the run's tag. Returns the error of a fit that could not be packaged."""
    from tidymlflow import models

    assert rec.model is not None
    error = (prepare or prepare_model)(job, rec.files, rec.model)
    if error:
        return error
    with _quiet():
        info = models.log_saved_model(prepared(job, rec.files), name="model",
                                      registered_model_name=rec.model.registered_model_name, run_id=run_id)
    client.set_tag(run_id, MODEL_URI_TAG, info.model_uri)
    return None


def upload(client: Any, run_id: str, folder: str) -> None:
    client.log_artifacts(run_id, folder)


def remove_partial(client: Any, run_id: str, folder: str) -> list[str]:
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
