"""Read back what tidymlflow logged: one run's three DataFrames, or one table over many runs.

``load_outputs(run_id)`` returns a fit's ``(outputs, coefficients, stats)`` as the library gave
them; ``collect(table, ...)`` stacks one logged table (``"stats"``, ``"tune/summary"``,
``"workflowset/rank_results"``, ...) over every run of one or more experiments that holds it, with
the run's id, name and parent in front of each row.

Importing this module imports neither mlflow nor pandas; both load on the first call.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = ["collect", "load_outputs", "OUTPUT_TABLES", "TABLES", "ID_COLUMNS", "TAG_COLUMNS"]

#: The three DataFrames of a fit, stored as ``tidymodels/<name>.parquet``; also the short names
#: that ``collect`` accepts for them.
OUTPUT_TABLES: tuple[str, ...] = ("outputs", "coefficients", "stats")

#: Every table tidymlflow logs (docs/contract.md, section 3), as artifact paths without
#: ``.parquet``; the recipe tables ``recipe/learned/<i>_<step>`` come on top.
TABLES: tuple[str, ...] = (
    "tidymodels/outputs", "tidymodels/coefficients", "tidymodels/stats",
    "resamples/folds", "resamples/metrics", "resamples/predictions",
    "tune/metrics", "tune/summary", "tune/grid", "tune/predictions",
    "workflowset/info", "workflowset/metrics", "workflowset/rank_results",
    "workflowset/metrics_by_group", "workflowset/best_by_group",
)
_LEARNED = re.compile(r"recipe/learned/\d+_\w+")
_LEARNED_HELP = "recipe/learned/<i>_<step>"

#: The columns ``collect`` puts first on every row.
ID_COLUMNS: tuple[str, ...] = ("run_id", "run_name", "parent_run_id")
#: Run tags that ``collect`` adds as columns (after ``ID_COLUMNS``) when at least one run has them.
#: A table column of the same name is kept as is; the tag's column is then ``tags.<name>``.
TAG_COLUMNS: tuple[str, ...] = ("wflow_id", "group", "tune.config")

_PARENT_TAG = "mlflow.parentRunId"
_STATS = "tidymodels/stats.parquet"
_PAGE = 1000  # runs per search_runs page

# The text ``str()`` gives for Python and numpy numbers; nothing looser (``float`` itself also
# accepts " 1", "1_000" and "Infinity", which str() never writes).
_INT_TEXT = re.compile(r"[+-]?\d+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?|inf|nan)")


# -- one run ------------------------------------------------------------------------------------
def load_outputs(
    run_id: str,
    *,
    client: MlflowClient | None = None,
    tracking_uri: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The ``(outputs, coefficients, stats)`` DataFrames a fit run logged, as the library gave them.

    Reads ``tidymodels/{outputs,coefficients,stats}.parquet`` of the run: every row and column
    (a nested fit's group column included) with its dtype, on a fresh ``RangeIndex``.
    ``stats.value`` mixes numbers and text, so it is stored as text; it comes back as an object
    column holding ``int`` / ``float`` where the text is a number as ``str()`` writes it, the
    text otherwise, and ``NaN`` where the library had ``None`` or ``NaN`` (the stored text cannot
    tell those apart). A text value that looks like a number (``"3"``) comes back as a number.

    Args:
        run_id: the run that holds the tables: a single fit's run, or the parent of a nested fit
            (its children carry metrics only).
        client: the ``MlflowClient`` to read with; default: one for ``tracking_uri``.
        tracking_uri: where the run lives when no ``client`` is given; default: MLflow's current
            tracking URI.

    Raises:
        LookupError: the run has no such tables (naming the run and the missing paths).
        ValueError: both ``client`` and ``tracking_uri`` were given.
    """
    client = _client(client, tracking_uri, "tidymlflow.load_outputs()")
    run = client.get_run(run_id)
    paths = [f"tidymodels/{name}.parquet" for name in OUTPUT_TABLES]
    missing = [p for p in paths if not _has(client, run, p)]
    if missing:
        parent = run.data.tags.get(_PARENT_TAG)
        hint = (f"; a nested fit keeps them on its parent run {parent}" if parent and "group" in run.data.tags
                else "; they are logged on fit runs, with autolog(log_outputs=True)")
        raise LookupError(f"run {run_id} has no {', '.join(missing)}{hint}")
    with tempfile.TemporaryDirectory(prefix="tidymlflow-read-") as tmp:
        outputs, coefficients, stats = (
            _read_table(_download(client, run, p, tmp), p) for p in paths)
    return outputs, coefficients, stats


# -- many runs ----------------------------------------------------------------------------------
def collect(
    table: str,
    experiment_names: str | Sequence[str] | None = None,
    filter_string: str | None = None,
    *,
    experiment_ids: str | Sequence[str] | None = None,
    max_runs: int | None = None,
    client: MlflowClient | None = None,
    max_workers: int = 8,
) -> pd.DataFrame:
    """One DataFrame of a logged table over every run that holds it.

    Each row starts with ``run_id``, ``run_name``, ``parent_run_id``, then ``wflow_id``,
    ``group`` and ``tune.config`` from the run's tags (each only when at least one run has that
    tag; ``tags.<name>`` when the table has a column of that name), then the table's own columns
    (the union over runs). Runs come in start-time order (ties by end time, then run id), each
    with its rows in stored order. Runs without the file are skipped; no run with it gives an
    empty frame with the ``ID_COLUMNS``.

    Args:
        table: ``"outputs"``, ``"coefficients"`` or ``"stats"`` (a fit's ``tidymodels/`` tables)
            or an artifact path from ``TABLES`` or ``recipe/learned/<i>_<step>``; a trailing
            ``.parquet`` is allowed. Read as in ``load_outputs`` (``stats.value`` typed back).
        experiment_names: experiment name(s) to search; unknown names raise ``ValueError``.
        filter_string: an MLflow search filter, e.g. ``"tags.model_type = 'linear_reg'"``.
        experiment_ids: experiment id(s) to search, instead of names. With neither, the active
            experiment (or the default one), as ``mlflow.search_runs`` does.
        max_runs: keep at most this many runs holding the table, the most recent ones.
        client: the ``MlflowClient`` to read with; default: MLflow's current tracking URI.
        max_workers: threads listing, downloading and reading the files (1 = one at a time).

    Raises:
        ValueError: ``table`` is not a table tidymlflow logs (the message lists them), an
            experiment name is unknown, or an argument is out of range.
    """
    relative = _table_path(table)
    if max_runs is not None and (isinstance(max_runs, bool) or not isinstance(max_runs, int)
                                 or max_runs < 1):
        raise ValueError(f"max_runs must be a positive int or None, got {max_runs!r}")
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
    client = _client(client, None, "tidymlflow.collect()")
    ids = _experiment_ids(client, experiment_names, experiment_ids)

    found: list[tuple[Run, pd.DataFrame]] = []
    with tempfile.TemporaryDirectory(prefix="tidymlflow-collect-") as tmp, \
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tidymlflow-collect") as pool:

        def fetch(run: Run) -> pd.DataFrame | None:
            return _fetch(client, run, relative, tmp)

        for page in _pages(client, ids, filter_string or ""):
            for run, frame in zip(page, pool.map(fetch, page)):
                if frame is not None:
                    found.append((run, frame))
            if max_runs is not None and len(found) >= max_runs:
                del found[max_runs:]  # pages come newest first
                break
    return _assemble(found)


def _table_path(table: str) -> str:
    """The artifact path of a table name (``"stats"`` -> ``"tidymodels/stats.parquet"``)."""
    name = str(table).strip().strip("/")
    name = name[: -len(".parquet")] if name.endswith(".parquet") else name
    if name in OUTPUT_TABLES:
        name = f"tidymodels/{name}"
    if name in TABLES or _LEARNED.fullmatch(name):
        return f"{name}.parquet"
    raise ValueError(
        f"tidymlflow logs no table {table!r}; valid names: {', '.join(OUTPUT_TABLES)} (short for "
        f"tidymodels/<name>), {', '.join(TABLES)}, {_LEARNED_HELP}")


def _client(client: MlflowClient | None, tracking_uri: str | None, what: str) -> MlflowClient:
    """The client to read with, once everything this process logged is written (the writer
    process writes after the calls return); a warning each time that wait runs out."""
    from tidymlflow._recording import habits

    habits.wait(what, once=False, stacklevel=4)
    if client is not None:
        if tracking_uri is not None:
            raise ValueError("pass client or tracking_uri, not both")
        return client
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _experiment_ids(client: MlflowClient, names: str | Sequence[str] | None,
                    ids: str | Sequence[str] | None) -> list[str]:
    """The experiment ids to search, resolved as ``mlflow.search_runs`` resolves them, except that
    an unknown name is an error rather than a warning."""
    name_list, id_list = _as_list(names), _as_list(ids)
    if name_list and id_list:
        raise ValueError("pass experiment_names or experiment_ids, not both")
    if id_list:
        return id_list
    if name_list:
        resolved, unknown = [], []
        for name in name_list:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                unknown.append(name)
            else:
                resolved.append(experiment.experiment_id)
        if unknown:
            raise ValueError(f"no experiment named {', '.join(map(repr, unknown))} "
                             f"at {client.tracking_uri}")
        return resolved
    from mlflow.tracking.fluent import _get_experiment_id

    return [_get_experiment_id() or "0"]


def _pages(client: MlflowClient, ids: list[str], filter_string: str) -> Iterator[list[Run]]:
    """The matching active runs, newest first, one search page at a time."""
    token: str | None = None
    while True:
        page = client.search_runs(ids, filter_string, max_results=_PAGE,
                                  order_by=["attributes.start_time DESC"], page_token=token)
        if len(page):
            yield list(page)
        token = page.token
        if not token:
            return


def _fetch(client: MlflowClient, run: Run, relative: str, tmp: str) -> pd.DataFrame | None:
    """The run's table, or None when the run has no such file."""
    if not _has(client, run, relative):
        return None
    return _read_table(_download(client, run, relative, os.path.join(tmp, run.info.run_id)), relative)


# Artifacts are reached through the run's artifact URI (which search_runs already returned) rather
# than through ``client.list_artifacts(run_id, ...)``: the run-id route looks the run up in the
# tracking store again on every call, which made those lookups most of the time of a collect().
def _artifact_uri(run: Run, relative: str) -> str:
    return f"{run.info.artifact_uri.rstrip('/')}/{relative}"


def _has(client: MlflowClient, run: Run, relative: str) -> bool:
    """Whether the run has the artifact file: a listing of its folder, or for a local artifact
    store the file system's answer."""
    local = _local_path(_artifact_uri(run, relative))
    if local is not None:
        return os.path.isfile(local)
    from mlflow.artifacts import list_artifacts

    folder, _, name = relative.rpartition("/")
    listing = list_artifacts(artifact_uri=_artifact_uri(run, folder), tracking_uri=client.tracking_uri)
    return any(f.path.rpartition("/")[2] == name and not f.is_dir for f in listing)


def _download(client: MlflowClient, run: Run, relative: str, dst: str) -> str:
    """A local path of one artifact file of the run: the file itself in a local artifact store,
    else a copy downloaded below ``dst``."""
    uri = _artifact_uri(run, relative)
    local = _local_path(uri)
    if local is not None:
        return local
    from mlflow.artifacts import download_artifacts

    return download_artifacts(artifact_uri=uri, dst_path=dst, tracking_uri=client.tracking_uri)


def _local_path(uri: str) -> str | None:
    """The file system path of an artifact URI of a local store (a plain path or ``file:``), else
    None (``s3:``, ``mlflow-artifacts:``, ``http:``, ...)."""
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        from urllib.request import url2pathname

        return url2pathname(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # C:\...
        return uri
    return None


def _assemble(found: list[tuple[Run, pd.DataFrame]]) -> pd.DataFrame:
    """Stack the runs' tables in start-time order behind the id and tag columns."""
    import pandas as pd

    if not found:
        return pd.DataFrame(columns=list(ID_COLUMNS))
    found = sorted(found, key=lambda rf: (rf[0].info.start_time or 0, rf[0].info.end_time or 0,
                                          rf[0].info.run_id))
    with warnings.catch_warnings():  # pandas 2: concat with empty / all-NA frames (FutureWarning)
        warnings.simplefilter("ignore", FutureWarning)
        data = pd.concat([frame for _, frame in found], ignore_index=True)
    per_run: dict[str, list[Any]] = {
        "run_id": [run.info.run_id for run, _ in found],
        "run_name": [run.info.run_name for run, _ in found],
        "parent_run_id": [run.data.tags.get(_PARENT_TAG) for run, _ in found],
    }
    for tag in TAG_COLUMNS:
        values = [run.data.tags.get(tag) for run, _ in found]
        if any(v is not None for v in values):
            per_run[f"tags.{tag}" if tag in data.columns else tag] = values
    sizes = [len(frame) for _, frame in found]
    columns = {(f"run.{name}" if name in data.columns else name):
               [v for v, n in zip(values, sizes) for _ in range(n)]
               for name, values in per_run.items()}
    ids = pd.DataFrame(columns, index=data.index)
    return pd.concat([ids, data], axis=1)


# -- reading one file ---------------------------------------------------------------------------
def _read_table(local: str, relative: str) -> pd.DataFrame:
    """A parquet file written by ``Recorder.log_table``, with what the writer changed undone:

    - object columns the reader would turn into strings (pandas 3) are object again, with None
      for missing values;
    - ``stats.value``, which the writer stores as text (``_job._as_text``), gets its numbers
      back.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    frame = pd.read_parquet(local)
    meta = pq.read_schema(local).pandas_metadata or {}
    for column in meta.get("columns", []):
        name = column.get("name")
        if (column.get("numpy_type") == "object" and name in frame.columns
                and isinstance(frame[name].dtype, pd.StringDtype)):
            values = frame[name].astype(object)
            frame[name] = values.where(values.notna(), None)
    if relative == _STATS and "value" in frame.columns:
        values = frame["value"].astype(object)
        frame["value"] = pd.Series([math.nan if missing else _from_text(v)
                                    for v, missing in zip(values, values.isna())],
                                   index=frame.index, dtype=object)
    return frame


def _from_text(value: Any) -> Any:
    """Invert ``_writer._as_text`` for one present ``stats.value`` cell."""
    if not isinstance(value, str):  # the column was written as numbers (no text fallback)
        return value
    if _INT_TEXT.fullmatch(value):
        return int(value)
    if _FLOAT_TEXT.fullmatch(value):
        return float(value)
    return value
