"""What a call records for each of its runs, in the user's process; no MLflow here."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

from tidymlflow._job import DATASET_ROWS, Stage, dumps, encode

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
    """Records everything destined for one run into the call's job (:mod:`tidymlflow._job`):
    params, tags and metrics in the manifest, tables and files staged in the job's folder, plots
    as their input DataFrames. The writer process (or the in-process writer) writes it to MLflow.

    ``handle`` names the run until the writer has created it; ``run:<id>`` is a run that exists
    already (the user's own run)."""

    def __init__(self, stage: Stage, index: int, handle: str, *, kind: str = "new",
                 parent: str | None = None, name: str | None = None,
                 tags: Mapping[str, Any] | None = None, start_time: int | None = None,
                 experiment_id: str | None = None, shared: bool = False):
        self.stage = stage
        self.handle = handle
        self.kind = kind  # "new" (tidymlflow creates it), "existing" (the user's run or an earlier one)
        self.shared = shared  # a run someone else also logs to (the user's): params may clash
        self.end_time: int | None = None  # None: the run ends when the call ends
        self.status: str | None = None  # set by the engine for the runs it ends
        self.skipped_metrics = 0
        self._folder = f"r{index}"
        self._record: dict[str, Any] = {
            "handle": handle, "kind": kind, "parent": parent, "name": name,
            "tags": {clean_key(k): v for k, v in (tags or {}).items()},
            "start_time": start_time, "experiment_id": experiment_id, "shared": shared,
            "params": {}, "set_tags": {}, "metrics": [], "tables": [], "files": self._folder,
            "plots": [], "datasets": [], "model": None,
        }

    # -- collecting ----------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        for k, v in params.items():
            self._record["params"][clean_key(k)] = _plain(v)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self._record["set_tags"][clean_key(k)] = _plain(v)

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
        self._record["metrics"].append((clean_key(key), number, int(time.time() * 1000), int(step)))

    def artifact_path(self, relative: str) -> str:
        """A local path where a file for the run's artifact ``relative`` is written."""
        return self.stage.file(f"{self._folder}/{relative}")

    def log_table(self, frame: Any, relative: str) -> None:
        """A DataFrame as ``<name>.parquet`` for reading back; the writer adds the CSV twin the
        MLflow UI previews as a grid (``<name>.csv``, or ``<name>.first_<N>_rows.csv``)."""
        self.stage.frame(frame, f"{self._folder}/{relative}")
        self._record["tables"].append(relative)

    def log_dict(self, obj: Any, relative: str) -> None:
        with open(self.artifact_path(relative), "w", encoding="utf-8") as fh:
            fh.write(dumps(obj))

    def log_plot(self, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], plotly_js: str) -> None:
        """Plot ``name`` of these inputs, drawn by the writer into ``plots/``."""
        self._record["plots"].append({"name": name, "args": encode(list(args), self.stage),
                                      "kwargs": encode(dict(kwargs), self.stage), "plotly_js": plotly_js})

    def add_dataset(self, frame: Any, context: str) -> None:
        """The frame as an MLflow dataset input (schema, digest and size; no rows are logged):
        the rows MLflow's digest reads are staged, with the frame's size."""
        head = frame.head(DATASET_ROWS)
        strings = [str(c) for c in frame.columns
                   if frame[c].dtype == object and all(isinstance(v, str) for v in frame[c])]
        self._record["datasets"].append({
            "context": context, "file": self.stage.frame(head), "num_rows": len(frame),
            "num_elements": int(frame.size), "columns": [str(c) for c in frame.columns],
            "string_columns": strings})

    def log_model(self, fit: Any, registered_model_name: str | None) -> None:
        """The fit as an MLflow model named ``model`` (the writer builds it from this pickle)."""
        from tidymlflow import _serialize

        data, _ = _serialize.dumps(fit)
        relative = f"models/{self._folder}.pkl"
        with open(self.stage.file(relative), "wb") as fh:
            fh.write(data)
        self._record["model"] = {"file": relative,
                                 "registered_model_name": registered_model_name}

    def record(self) -> dict[str, Any]:
        """This run's part of the manifest."""
        return {**self._record, "end_time": self.end_time, "status": self.status}


def _plain(value: Any) -> Any:
    """A param or tag value as JSON carries it (MLflow stores the string form)."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
