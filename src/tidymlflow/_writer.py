"""Batched writes to one MLflow run: params, metrics, tags in one log_batch, files in one upload."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from typing import Any

#: Rows of a table's CSV twin (the preview in the MLflow UI); the parquet file has them all.
CSV_ROWS = 10_000

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def clean_key(key: str) -> str:
    """Return an MLflow-valid param/metric/tag key close to ``key`` (at most 250 characters)."""
    key = _BAD_KEY_CHARS.sub("_", str(key))
    parts = [p if p not in ("", ".", "..") else "_" for p in key.split("/")]
    return "/".join(parts)[:250] or "_"


def clean_value(value: Any, limit: int) -> str:
    """Return ``value`` as a string cut to ``limit`` characters, marking a cut with an ellipsis."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RunWriter:
    """Collects everything destined for one run and writes it with as few calls as possible."""

    def __init__(self, client: Any, run_id: str, experiment_id: str | None = None, *,
                 shared: bool = False):
        self.client = client
        self.shared = shared  # a run someone else also logs to (the user's): params may clash
        self.end_time: int | None = None  # None: the run ends when it is written
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.metrics: list[tuple[str, float, int]] = []
        self.datasets: list[Any] = []
        self.skipped_metrics = 0
        self._artifact_dir: str | None = None

    # -- collecting ----------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        for k, v in params.items():
            self.params[clean_key(k)] = v

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self.tags[clean_key(k)] = v

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0) -> None:
        for k, v in metrics.items():
            self.log_metric(k, v, step)

    def log_metric(self, key: str, value: Any, step: int = 0) -> None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.skipped_metrics += 1
            return
        if not math.isfinite(number):
            self.skipped_metrics += 1
            return
        self.metrics.append((clean_key(key), number, int(step)))

    def artifact_path(self, relative: str) -> str:
        """A local path where a file for ``relative`` can be written before upload."""
        if self._artifact_dir is None:
            self._artifact_dir = tempfile.mkdtemp(prefix="tidymlflow-")
        path = os.path.join(self._artifact_dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def log_table(self, frame: Any, relative: str) -> None:
        """Stage a DataFrame as ``<name>.parquet`` (object columns mixing types as text) for
        reading back, and a CSV twin that the MLflow UI previews as a grid: ``<name>.csv``, or
        ``<name>.first_<N>_rows.csv`` when the table has more than ``CSV_ROWS`` rows."""
        path = self.artifact_path(relative)
        if not all(isinstance(c, str) for c in frame.columns):
            frame = frame.rename(columns=str)
        try:
            frame.to_parquet(path, index=False)
        except Exception:  # pyarrow refuses mixed object columns such as stats["value"]
            frame = frame.copy()
            for col in [c for c in frame.columns if frame[c].dtype == object]:
                frame[col] = frame[col].map(_as_text)
            frame.to_parquet(path, index=False)
        stem = path[: -len(".parquet")] if path.endswith(".parquet") else path
        capped = len(frame) > CSV_ROWS
        frame.head(CSV_ROWS).to_csv(f"{stem}.first_{CSV_ROWS}_rows.csv" if capped else f"{stem}.csv",
                                    index=False)

    def log_dict(self, obj: Any, relative: str) -> None:
        with open(self.artifact_path(relative), "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=1, default=str, ensure_ascii=False)

    def add_dataset(self, dataset_input: Any) -> None:
        self.datasets.append(dataset_input)

    # -- writing -------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything collected; the staging folder is removed whatever happens. In a
        shared run, params that already hold another value are left as they are and named in one
        ParamClashError after everything else was written."""
        try:
            clashes = self._drop_clashes() if self.shared and self.params else []
            self._flush_batch()
            if self.datasets:
                self._log_inputs()
            if self._artifact_dir is not None:
                self.client.log_artifacts(self.run_id, self._artifact_dir)
        finally:
            self.discard()
        if clashes:
            raise ParamClashError(f"param(s) {', '.join(clashes)} of run {self.run_id} already hold other "
                                  "values (set before tidymlflow logged); kept those, logged everything else")

    def _drop_clashes(self) -> list[str]:
        """Remove the params whose key the run already holds with another value; their keys."""
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        existing = self.client.get_run(self.run_id).data.params
        clashes = sorted(k for k, v in self.params.items()
                         if k in existing and existing[k] != clean_value(v, MAX_PARAM_VAL_LENGTH))
        for key in clashes:
            del self.params[key]
        return clashes

    def _log_inputs(self) -> None:
        from mlflow.exceptions import MlflowException

        datasets, self.datasets = self.datasets, []
        try:
            self.client.log_inputs(self.run_id, datasets=datasets)
        except MlflowException:
            # Two runs registering the same new dataset at once race on the store's unique key;
            # the dataset exists now, so one retry links it.
            self.client.log_inputs(self.run_id, datasets=datasets)

    def discard(self) -> None:
        if self._artifact_dir is not None:
            shutil.rmtree(self._artifact_dir, ignore_errors=True)
            self._artifact_dir = None

    def _flush_batch(self) -> None:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.utils import validation as v

        now = int(time.time() * 1000)
        metrics = [Metric(k, val, now, step) for k, val, step in self.metrics]
        params = [Param(k, clean_value(val, v.MAX_PARAM_VAL_LENGTH)) for k, val in self.params.items()]
        tags = [RunTag(k, clean_value(val, v.MAX_TAG_VAL_LENGTH)) for k, val in self.tags.items()]
        self.metrics, self.params, self.tags = [], {}, {}
        # One call when it fits MLflow's batch limits (the usual case), more only when it must.
        while metrics or params or tags:
            p, params = params[: v.MAX_PARAMS_TAGS_PER_BATCH], params[v.MAX_PARAMS_TAGS_PER_BATCH :]
            t, tags = tags[: v.MAX_PARAMS_TAGS_PER_BATCH], tags[v.MAX_PARAMS_TAGS_PER_BATCH :]
            room = v.MAX_ENTITIES_PER_BATCH - len(p) - len(t)
            cut = min(room, v.MAX_METRICS_PER_BATCH)
            m, metrics = metrics[:cut], metrics[cut:]
            self.client.log_batch(self.run_id, metrics=m, params=p, tags=t, synchronous=True)


class ParamClashError(ValueError):
    """Params tidymlflow would log are already set to other values in the run."""


def _as_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)
