"""What a call records for each of its runs, in the user's process; no MLflow here."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from tidymlflow._jobs.names import clean_key
from tidymlflow._jobs.records import (
    DatasetRecord,
    Metric,
    ModelRecord,
    OutputsRecord,
    PlotRecord,
    RunRecord,
    Scalar,
)
from tidymlflow._jobs.stage import DATASET_ROWS, Stage, dumps, encode


class Recorder:
    """Records everything destined for one run into the call's job (:mod:`tidymlflow._jobs`):
    params, tags and metrics in the manifest, tables and files staged in the job's folder, plots
    as their input DataFrames. The writer writes it to MLflow.

    ``handle`` names the run until the writer has created it; ``run:<id>`` is a run that exists
    already (the user's own run)."""

    def __init__(self, stage: Stage, index: int, handle: str, *, kind: str = "new",
                 parent: str | None = None, name: str | None = None,
                 tags: Mapping[str, Any] | None = None, start_time: int | None = None,
                 experiment_id: str | None = None, shared: bool = False, folder: str | None = None):
        self.stage = stage
        self.handle = handle
        self.kind = kind  # "new" (tidymlflow creates it), "existing" (the user's run or an earlier one)
        self.shared = shared  # a run someone else also logs to (the user's): params may clash
        self.end_time: int | None = None  # None: the run ends when the call ends
        self.status: str | None = None  # set by the engine for the runs it ends
        self.skipped_metrics = 0
        self.timestamp: int | None = None  # ms of the metrics logged (None: when logged)
        self._folder = folder or f"r{index}"
        self._parent, self._name, self._start, self._experiment = parent, name, start_time, experiment_id
        self._tags: dict[str, Scalar] = {clean_key(k): v for k, v in (tags or {}).items()}
        self._params: dict[str, Scalar] = {}
        self._set_tags: dict[str, Scalar] = {}
        self._metrics: list[Metric] = []
        self._tables: list[str] = []
        self._plots: list[PlotRecord] = []
        self._datasets: list[DatasetRecord] = []
        self._model: ModelRecord | None = None
        self._outputs: OutputsRecord | None = None

    # -- collecting ----------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        for k, v in params.items():
            self._params[clean_key(k)] = _plain(v)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self._set_tags[clean_key(k)] = _plain(v)

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
        self._metrics.append((clean_key(key), number, self.timestamp or int(time.time() * 1000), int(step)))

    def artifact_path(self, relative: str) -> str:
        """A local path where a file for the run's artifact ``relative`` is written."""
        return self.stage.file(f"{self._folder}/{relative}")

    def log_table(self, frame: Any, relative: str) -> None:
        """A DataFrame as ``<name>.parquet`` for reading back; the writer adds the CSV twin the
        MLflow UI previews as a grid (``<name>.csv``, or ``<name>.first_<N>_rows.csv``), or the
        stage does when it is a helper's (:attr:`Stage.twins`)."""
        self.stage.frame(frame, f"{self._folder}/{relative}", twin=self.stage.twins)
        self._tables.append(relative)

    def log_frame(self, frame: Any, relative: str) -> None:
        """A DataFrame as parquet with its index, for a program to read back exactly (no CSV
        twin: it is not a table for the UI)."""
        self.stage.frame(frame, f"{self._folder}/{relative}", index=True)

    def log_pickle(self, obj: Any, relative: str) -> None:
        """An object pickled as tidymlflow pickles fits (formula fits included)."""
        self.stage.pickle(obj, f"{self._folder}/{relative}")

    def log_dict(self, obj: Any, relative: str) -> None:
        with open(self.artifact_path(relative), "w", encoding="utf-8") as fh:
            fh.write(dumps(obj))

    def log_plot(self, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], plotly_js: str) -> None:
        """Plot ``name`` of these inputs, drawn by the writer into ``plots/``."""
        self._plots.append(PlotRecord(name, encode(list(args), self.stage), encode(dict(kwargs), self.stage),
                                      plotly_js))

    def add_dataset(self, frame: Any, context: str) -> None:
        """The frame as an MLflow dataset input (schema, digest and size; no rows are logged):
        the rows MLflow's digest reads are staged, with the frame's size."""
        head = frame.head(DATASET_ROWS)
        strings = tuple(str(c) for c in frame.columns
                        if frame[c].dtype == object and all(isinstance(v, str) for v in frame[c]))
        self._datasets.append(DatasetRecord(context, self.stage.frame(head), len(frame), int(frame.size),
                                            tuple(str(c) for c in frame.columns), strings))

    def log_model(self, fit: Any, registered_model_name: str | None) -> None:
        """The fit as an MLflow model named ``model`` (the writer builds it from this pickle)."""
        self._model = ModelRecord(self.stage.pickle(fit, f"models/{self._folder}.pkl"), registered_model_name)

    def hand_outputs(self, obj: Any, kind: str, *, step: int, tables: bool, plots: tuple[str, ...],
                     plotly_js: str) -> None:
        """Hand a fit (``fit``), or a fit and its test data (``evaluate``), to the writer, whose
        helpers work out its tables and what follows from them (:class:`OutputsRecord`); the
        library's ``extract_outputs()`` then never runs here. Raises what pickling raises."""
        relative = self.stage.pickle(obj, f"models/{self._folder}.pkl" if kind == "fit"
                                     else f"outputs/{self._folder}.pkl")
        self._outputs = OutputsRecord(relative, kind, step, int(time.time() * 1000), tables, plots, plotly_js)

    def record(self) -> RunRecord:
        """This run's part of the manifest."""
        return RunRecord(
            handle=self.handle, kind=self.kind, parent=self._parent, name=self._name, tags=dict(self._tags),
            start_time=self._start, experiment_id=self._experiment, shared=self.shared,
            params=dict(self._params), set_tags=dict(self._set_tags), metrics=tuple(self._metrics),
            tables=tuple(self._tables), files=self._folder, plots=tuple(self._plots),
            datasets=tuple(self._datasets), model=self._model, end_time=self.end_time, status=self.status,
            outputs=self._outputs)


def _plain(value: Any) -> Scalar:
    """A param or tag value as JSON carries it (MLflow stores the string form)."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
