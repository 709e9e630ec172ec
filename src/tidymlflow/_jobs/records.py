"""Everything that crosses the boundary between the user's process and the writer, as typed,
versioned records, and their one codec.

A job's ``manifest.json`` is a :class:`Manifest` (with its :class:`RunRecord` s), its
``progress.json`` a :class:`Progress`, and each line on the writer's socket one message
(:data:`ToWriter` from a script, :data:`ToScript` back). ``docs/protocol.md`` writes them down.

What arrives from outside the process (a socket line, a file in the journal) is untrusted: it is
decoded here and only here, checked field by field against these types (unknown, missing and
ill-typed fields are refused with :class:`RecordError` naming the field), lines are capped at
:data:`MAX_MESSAGE` bytes, and every file a manifest names must lie inside its job folder. No
string key of a manifest or a message is read anywhere else.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Union

#: Version of the manifest layout; the writer refuses another.
FORMAT = 1
#: Among the plots a job draws again (:meth:`Manifest.redraws`): the run's three tables.
TABLES = ":tables"
#: What a fit's outputs leave out when its queued evaluation works them out with its own.
WHOLE = ":whole"
#: Version of the socket protocol (both ends are always the same code: the writer's key holds it).
PROTOCOL = 1
#: Bytes of one socket line at most; a longer line is refused and skipped, never kept.
MAX_MESSAGE = 1 << 20

#: A param or tag value as JSON carries it (MLflow stores its string form).
Scalar = Union[str, int, float, bool, None]  # noqa: UP007 (evaluated at run time on Python 3.10)
#: A metric: (key, value, timestamp in ms, step).
Metric = tuple[str, float, int, int]


class RecordError(ValueError):
    """A manifest, progress file or message that is not what this version writes."""


# -- the job ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobTarget:
    """Where a job's runs go: the tracking URI, the working folder it resolves against, the
    experiment set in the script and the tracking variables (never a credential)."""

    tracking_uri: str | None
    cwd: str
    experiment_id: str | None
    env: dict[str, str]


@dataclass(frozen=True)
class PlotRecord:
    """A plot drawn by the writer: its name and its inputs (frames staged in the job)."""

    name: str
    args: Any
    kwargs: Any
    plotly_js: str


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset input: the staged rows MLflow's digest reads, and the frame's size."""

    context: str
    file: str
    num_rows: int
    num_elements: int
    columns: tuple[str, ...]
    string_columns: tuple[str, ...]


@dataclass(frozen=True)
class ModelRecord:
    """A fit's pickle (``log_models=True``), staged in the job."""

    file: str
    registered_model_name: str | None


@dataclass(frozen=True)
class OutputsRecord:
    """What a run gains from a fit's three tables, worked out by the writer's helper processes
    from the fit pickled at the call (``file``), so that the library's ``extract_outputs()``
    never runs in the user's process: ``kind`` ``fit`` (the training metrics and tags, the
    tables, the fit's plots) or ``evaluate`` (``file`` holds (fit, test data): the test metrics
    at ``step``, the tables, the forecast with intervals). ``time`` (ms) is the metrics'
    timestamp, the call's; ``tables``: ``log_outputs``; ``plots``: the plots to draw."""

    file: str
    kind: str
    step: int
    time: int
    tables: bool
    plots: tuple[str, ...]
    plotly_js: str

    def __post_init__(self) -> None:
        if self.kind not in ("fit", "evaluate"):
            raise RecordError(f"outputs of kind {self.kind!r}: must be 'fit' or 'evaluate'")


@dataclass(frozen=True)
class Derived:
    """What a helper worked out of an :class:`OutputsRecord` (``outputs/<run folder>.json`` in
    the job, so a job written again reuses it): metrics, tags and tables for the run (its plots
    are drawn into the run's folder already), and the errors of what could not be worked out."""

    metrics: tuple[Metric, ...]
    set_tags: dict[str, Scalar]
    tables: tuple[str, ...]
    errors: tuple[str, ...]


@dataclass(frozen=True)
class RunRecord:
    """Everything one call records for one run. ``handle`` names the run until the writer has
    created it; ``kind`` is ``new`` (tidymlflow creates it) or ``existing`` (``run:<id>``, or a
    run of an earlier call); ``files`` is the run's folder in the job."""

    handle: str
    kind: str
    parent: str | None
    name: str | None
    tags: dict[str, Scalar]
    start_time: int | None
    experiment_id: str | None
    shared: bool
    params: dict[str, Scalar]
    set_tags: dict[str, Scalar]
    metrics: tuple[Metric, ...]
    tables: tuple[str, ...]
    files: str
    plots: tuple[PlotRecord, ...]
    datasets: tuple[DatasetRecord, ...]
    model: ModelRecord | None
    end_time: int | None
    status: str | None
    #: the fit's tables and what follows from them, worked out by the writer (None: in the record)
    outputs: OutputsRecord | None = None

    def worked_out(self, found: Derived) -> RunRecord:
        """This record with what was worked out of its fit's outputs added (their plots are
        drawn already): nothing is left to work out."""
        return dataclasses.replace(self, metrics=self.metrics + found.metrics,
                                   tables=self.tables + found.tables,
                                   set_tags={**self.set_tags, **found.set_tags}, outputs=None)

    def __post_init__(self) -> None:
        if self.kind not in ("new", "existing"):
            raise RecordError(f"run {self.handle}: kind must be 'new' or 'existing', not {self.kind!r}")


@dataclass(frozen=True)
class Manifest:
    """One call's job: ``manifest.json``, written last, when the job is complete on disk."""

    format: int
    call: str
    layer: str
    argv: tuple[str, ...]
    target: JobTarget
    runs: tuple[RunRecord, ...]
    #: MLflow's source, user and git tags as the script's process computed them ({} in a job of
    #: an older version).
    provenance: dict[str, str] = field(default_factory=dict)

    def redraws(self) -> set[tuple[str, str]]:
        """(run handle, plot) pairs this job draws again into runs logged before it; (run handle,
        :data:`TABLES`) when it writes the run's three tables again (an ``evaluate()``)."""
        found = {(rec.handle, p.name) for rec in self.runs if rec.kind == "existing" for p in rec.plots}
        for rec in self.runs:
            if rec.kind == "existing" and rec.outputs is not None:
                found |= {(rec.handle, name) for name in rec.outputs.plots}
                if rec.outputs.tables:
                    found.add((rec.handle, TABLES))
        return found


@dataclass
class Progress:
    """What earlier attempts at a job did (``progress.json``): the runs they created by handle,
    how many attempts, and the runs left marked incomplete."""

    attempts: int = 0
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)
    incomplete: tuple[str, ...] = ()


# -- the socket ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hello:
    """A script connects: its ``sys.path``, its environment, and the store to open while it
    starts (``absent``: a sqlite file that did not exist at ``autolog()``)."""

    path: tuple[str, ...]
    warm: JobTarget | None
    absent: bool
    protocol: int = PROTOCOL
    #: the script's environment: its jobs are written with it (never written to disk)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Submit:
    """A script hands over a committed job folder (its ``seq``-th), of the call named ``call``."""

    seq: int
    path: str
    call: str


@dataclass(frozen=True)
class Wait:
    """The script waits for the writer now (``flush()``, its exit): the writer may use more."""


@dataclass(frozen=True)
class Welcome:
    """The writer's first answer: its process id."""

    pid: int


@dataclass(frozen=True)
class Done:
    """A job was written (``runs``: handle -> run id, ``created``, ``errors``) or kept
    (``kept``: why). ``seq`` is None for a job the writer kept earlier and has written now."""

    seq: int | None
    path: str
    call: str = ""
    runs: dict[str, str] = field(default_factory=dict)
    created: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    kept: str = ""


@dataclass(frozen=True)
class Refused:
    """A message the writer could not take, and why (it goes on serving)."""

    error: str


ToWriter = Union[Hello, Submit, Wait]  # noqa: UP007
ToScript = Union[Welcome, Done, Refused]  # noqa: UP007
_OPS: dict[str, type[Any]] = {"hello": Hello, "job": Submit, "wait": Wait, "welcome": Welcome, "done": Done,
                              "refused": Refused}
_OP_OF = {cls: op for op, cls in _OPS.items()}


# -- the codec ------------------------------------------------------------------------------------------
def encode(record: Any) -> bytes:
    """A message as one JSON line."""
    data = {"op": _OP_OF[type(record)], **dataclasses.asdict(record)}
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


def decode(line: bytes, expect: tuple[type[Any], ...]) -> Any:
    """One socket line as a message of one of the ``expect`` types, or :class:`RecordError`."""
    if len(line) > MAX_MESSAGE:
        raise RecordError(f"message of {len(line)} bytes refused (at most {MAX_MESSAGE})")
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise RecordError(f"message is not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("op"), str):
        raise RecordError("message must be a JSON object with an 'op'")
    cls = _OPS.get(data.pop("op"))
    if cls not in expect:
        raise RecordError(f"unknown message op; expected one of {sorted(_OP_OF[c] for c in expect)}")
    return build(cls, data, _OP_OF[cls])


def lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The lines of a socket, each at most :data:`MAX_MESSAGE` bytes: a longer line is skipped
    (read and dropped in pieces, never held) and given as one over-long marker line."""
    while True:
        line = stream.readline(MAX_MESSAGE + 1)
        if not line:
            return
        if len(line) > MAX_MESSAGE and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_MESSAGE)) and not rest.endswith(b"\n"):
                pass
            yield b" " * (MAX_MESSAGE + 1)
            continue
        yield line


def dump_manifest(manifest: Manifest) -> str:
    """``manifest.json``'s text."""
    return json.dumps(dataclasses.asdict(manifest), default=str)


def load_manifest(job: str, name: str) -> Manifest:
    """The manifest file ``name`` of ``job``, checked: its format, its fields, and every file it
    names inside the job folder."""
    with open(os.path.join(job, name), encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except ValueError as exc:
            raise RecordError(f"job {job}: manifest is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise RecordError(f"job {job} has format {found}, this tidymlflow writes {FORMAT}")
    manifest: Manifest = build(Manifest, data, "manifest")
    for rec in manifest.runs:
        for relative in (rec.files, *(f"{rec.files}/{t}" for t in rec.tables),
                         *(d.file for d in rec.datasets), *((rec.model.file,) if rec.model else ()),
                         *((rec.outputs.file,) if rec.outputs else ())):
            inside(job, relative)
    return manifest


def derived_path(job: str, files: str) -> str:
    """Where a run's :class:`Derived` is kept in its job (beside its files, never among them)."""
    return inside(job, f"outputs/{files}.json")


def dump_derived(derived: Derived) -> str:
    """``outputs/<run folder>.json``'s text."""
    return json.dumps(dataclasses.asdict(derived))


def load_derived(path: str) -> Derived:
    """A run's derived outputs, checked (it is a file of the journal)."""
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except ValueError as exc:
            raise RecordError(f"{path} is not JSON ({exc})") from None
    derived: Derived = build(Derived, data, "derived")
    return derived


def inside(job: str, relative: str) -> str:
    """``relative`` as a path inside the job folder ``job``, or :class:`RecordError`."""
    base = os.path.realpath(job)
    path = os.path.realpath(os.path.join(base, relative))
    if os.path.isabs(relative) or not path.startswith(base + os.sep):
        raise RecordError(f"job {job}: {relative!r} is not a file inside the job")
    return path


def dump_progress(progress: Progress) -> str:
    """``progress.json``'s text."""
    return json.dumps(dataclasses.asdict(progress))


def load_progress(text: str) -> Progress:
    """A job's progress, checked (a file that cannot be read means no progress)."""
    try:
        progress: Progress = build(Progress, json.loads(text), "progress")
        return progress
    except (ValueError, TypeError):
        return Progress()


def build(cls: type[Any], data: Any, where: str) -> Any:
    """``cls`` (a dataclass) from JSON ``data``, every field checked against its type."""
    if not isinstance(data, dict):
        raise RecordError(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {', '.join(map(str, unknown))[:200]}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _check(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecordError(f"{where}: field {f.name!r} is missing")
    return cls(**values)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved field types of a record class (once per class)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _check(tp: Any, value: Any, where: str) -> Any:
    """``value`` as type ``tp`` (JSON lists become tuples), or :class:`RecordError`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)  # type: ignore[arg-type]
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        if value is not None and len(present) == 1:  # an optional field that is there: its own error
            return _check(present[0], value, where)
        for arg in args:
            try:
                return _check(arg, value, where)
            except RecordError:
                continue
    elif origin is tuple:
        if isinstance(value, list):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_check(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
            if len(value) == len(args):
                return tuple(_check(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    elif origin is dict:
        if isinstance(value, dict):
            return {k: _check(args[1], v, f"{where}[{k!r}]") for k, v in value.items()}
    elif _scalar(tp, value):
        return float(value) if tp is float else value
    raise RecordError(f"{where}: {_show(value)} is not {_name(tp)}")


def _scalar(tp: Any, value: Any) -> bool:
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return tp in (str, bool) and isinstance(value, tp)


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
