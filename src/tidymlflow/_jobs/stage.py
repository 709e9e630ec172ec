"""A call's job: what one patched call hands to the writer, staged as files in the journal.

The user's process only stages (parquet for DataFrames, JSON for the rest; a fit pickled, as the
cheapest form to hand over, where its tables are worked out by the writer's helpers or its model
is logged); the writer reads the job and does every MLflow call and every plot. No MLflow,
matplotlib or plotly here.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from tidymlflow._jobs import journal as _journal
from tidymlflow._jobs.records import Manifest, dump_manifest, inside

#: Rows of a table's CSV twin (the preview in the MLflow UI); the parquet file has them all.
CSV_ROWS = 10_000
#: Rows of a dataset that identify it (MLflow's digest hashes at most this many).
DATASET_ROWS = 10_000


class Stage:
    """The folder of one job while the call stages it: one sub-folder per run, frames written
    once even when a table and a plot share them."""

    def __init__(self, journal: str, inputs: str = "inputs", twins: bool = False) -> None:
        self.journal = journal
        self.twins = twins  # tables get their CSV twin as they are staged (the writer's helpers)
        self._path: str | None = None
        self._frames: dict[int, tuple[Any, str]] = {}  # id(frame) -> (frame, path in the job)
        self._pickled: dict[int, tuple[Any, str]] = {}  # id(object) -> (object, path in the job)
        self._inputs = inputs  # the folder of plot inputs in the job
        self._plot_inputs = 0

    @classmethod
    def existing(cls, job: str, inputs: str) -> Stage:
        """A job handed over already, to which a helper adds what it works out (plot inputs
        in their own folder ``inputs``; tables with their CSV twins, from the frames at hand)."""
        stage = cls(os.path.dirname(job), inputs, twins=True)
        stage._path = job
        return stage

    @property
    def path(self) -> str:
        """The job folder (made on first use)."""
        if self._path is None:
            self._path = _journal.new_job(self.journal)
        return self._path

    def file(self, relative: str) -> str:
        """A local path for ``relative`` inside the job (its folder made)."""
        path = os.path.join(self.path, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def frame(self, frame: Any, relative: str | None = None, index: bool = False, twin: bool = False) -> str:
        """Write ``frame`` as parquet at ``relative`` (or beside the plot inputs) unless it was
        written already (``index``: with its index; ``twin``: and its CSV twin, see
        :func:`write_csv_twin`); returns its path inside the job."""
        known = self._frames.get(id(frame))
        if known is not None and known[0] is frame and (relative is None or known[1] == relative):
            return known[1]
        if relative is None:
            self._plot_inputs += 1
            relative = f"{self._inputs}/{self._plot_inputs}.parquet"
        written = write_parquet(frame, self.file(relative), index)
        if twin:
            write_csv_twin(written, self.file(relative))
        self._frames[id(frame)] = (frame, relative)
        return relative

    def pickle(self, obj: Any, relative: str) -> str:
        """``obj`` pickled as tidymlflow pickles fits at ``relative`` unless it was pickled
        there already (a fit logged as a model and handed over for its tables); returns its path
        inside the job. Raises what pickling raises."""
        from tidymlflow._jobs import serialize

        known = self._pickled.get(id(obj))
        if known is not None and known[0] is obj and known[1] == relative:
            return relative
        data, _ = serialize.dumps(obj)
        with open(self.file(relative), "wb") as fh:
            fh.write(data)
        self._pickled[id(obj)] = (obj, relative)
        return relative

    def commit(self, manifest: Manifest) -> str:
        """Write the manifest: the job is handed over. Returns the job folder."""
        _journal.commit(self.path, dump_manifest(manifest))
        return self.path

    def discard(self) -> None:
        """Remove a job that was never handed over (an interrupted call's staging)."""
        if self._path is not None:
            _journal.remove(self._path)
            self._path = None


def write_csv_twin(frame: Any, path: str) -> None:
    """The CSV the MLflow UI previews as a grid, beside the parquet file ``path`` of ``frame``:
    ``<name>.csv``, or ``<name>.first_<N>_rows.csv`` when capped at :data:`CSV_ROWS` rows."""
    stem = path[: -len(".parquet")] if path.endswith(".parquet") else path
    capped = len(frame) > CSV_ROWS
    with _journal.open_private(f"{stem}.first_{CSV_ROWS}_rows.csv" if capped else f"{stem}.csv") as fh:
        frame.head(CSV_ROWS).to_csv(fh, index=False)  # training data: the owner's only, as the job


def write_parquet(frame: Any, path: str, index: bool = False) -> Any:
    """``frame`` as parquet with text column names (``index``: its index too); object columns
    that mix types (such as the library's ``stats["value"]``) are written as text, which pyarrow
    otherwise refuses. Returns the frame as written."""
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.rename(columns=str)
    mixed = [c for c in frame.columns if frame[c].dtype == object and _mixes_text(frame[c])]
    if mixed:  # pyarrow refuses these: text at once, not after a failed try (the library's stats)
        frame = frame.copy()
        for col in mixed:
            frame[col] = frame[col].map(_as_text)
    try:
        frame.to_parquet(path, index=index)
    except Exception:
        frame = frame.copy()
        for col in [c for c in frame.columns if frame[c].dtype == object]:
            frame[col] = frame[col].map(_as_text)
        frame.to_parquet(path, index=index)
    return frame


def _mixes_text(column: Any) -> bool:
    """Text beside other values (numbers) in one object column."""
    present = (v for v in column if v is not None and not (isinstance(v, float) and math.isnan(v)))
    return len({isinstance(v, str) for v in present}) == 2


def _as_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)


# -- plot inputs: DataFrames as parquet files, everything else as JSON ---------------------------------
def encode(value: Any, stage: Stage) -> Any:
    """A JSON form of a plot argument; DataFrames are staged as parquet and referenced."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return {"$frame": stage.frame(value)}
    if isinstance(value, pd.Series):
        name = value.name if isinstance(value.name, str) else "value"
        return {"$series": stage.frame(value.to_frame(name)), "name": name}
    if isinstance(value, np.ndarray):
        return {"$array": value.tolist()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {"$dict": [[encode(k, stage), encode(v, stage)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, stage) for v in value]}
    if isinstance(value, list):
        return [encode(v, stage) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot hand a {type(value).__name__} to the writer")


def decode(value: Any, job: str) -> Any:
    """The inverse of :func:`encode`, in the writer."""
    if isinstance(value, list):
        return [decode(v, job) for v in value]
    if not isinstance(value, dict):
        return value
    if "$frame" in value or "$series" in value:
        import pandas as pd

        frame = pd.read_parquet(inside(job, value.get("$frame") or value["$series"]))
        return frame if "$frame" in value else frame[value["name"]]
    if "$array" in value:
        import numpy as np

        return np.asarray(value["$array"])
    if "$tuple" in value:
        return tuple(decode(v, job) for v in value["$tuple"])
    return {_hashable(decode(k, job)): decode(v, job) for k, v in value["$dict"]}


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def dumps(obj: Any) -> str:
    """JSON text of a logged dict (``recipe/steps.json`` and the like)."""
    return json.dumps(obj, indent=1, default=str, ensure_ascii=False)
