"""The typed records that cross the boundary (``tidymlflow._jobs.records``): what a call commits
decodes to equal records, and whatever else arrives (a hostile manifest, a socket line, a path
out of the job or the journal) is refused with an error naming the field, never half-read."""

from __future__ import annotations

import dataclasses
import io
import json
import os

import pytest

import tidymlflow
from tidymlflow._jobs import journal, records, stage
from tidymlflow._jobs.records import Done, Hello, JobTarget, RecordError, Refused, Submit, Wait, Welcome
from tidymlflow.testing import capture


def _fit(split):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    train, test = split
    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(train).evaluate(test)


def _one_job(split, tmp_path, monkeypatch):
    """A real call's committed job folder (kept: copied out of the capture) and its manifest."""
    import shutil

    monkeypatch.setenv("TIDYMLFLOW_JOURNAL_DIR", str(tmp_path / "journal"))
    tidymlflow.autolog(writer="inline")
    with capture() as jobs:
        _fit(split)
        path, manifest = jobs.jobs[0]
        copy = os.path.join(os.path.dirname(path), "copy")
        shutil.copytree(path, copy)
    return copy, manifest


#: A fit handed over to the writer (``outputs`` of a run record), as a writer behind a loop gets it.
OUTPUTS = {"file": "models/r0.pkl", "kind": "fit", "step": 0, "time": 1, "tables": True,
           "plots": ["residual_diagnostics"], "plotly_js": "cdn"}


def _rewrite(job: str, change) -> None:
    path = os.path.join(job, journal.MANIFEST)
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    change(data)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)


def test_a_committed_manifest_decodes_to_the_records_the_call_made(split, tmp_path, monkeypatch):
    """Encode then decode gives equal typed records: the manifest on disk is the call's record."""
    job, manifest = _one_job(split, tmp_path, monkeypatch)
    again = journal.manifest(job)
    assert again == manifest
    assert again.call == "Workflow.fit" and again.format == records.FORMAT
    run = again.runs[0]
    assert isinstance(run, records.RunRecord) and run.kind == "new"
    assert all(isinstance(m, tuple) and len(m) == 4 for m in run.metrics)
    assert "tidymodels/stats.parquet" in run.tables and run.plots and run.outputs is None
    assert records.load_manifest(job, journal.MANIFEST) == manifest


@pytest.mark.parametrize(("change", "named"), [
    (lambda d: d.update(surprise=1), "unknown field(s) surprise"),
    (lambda d: d.pop("call"), "field 'call' is missing"),
    (lambda d: d["runs"][0].update(params=5), "manifest.runs[0].params"),
    (lambda d: d["runs"][0]["metrics"].append(["k", "not a number", 1, 0]), "manifest.runs[0].metrics"),
    (lambda d: d["runs"][0].update(kind="evil"), "kind must be 'new' or 'existing'"),
    (lambda d: d["runs"][0].update(outputs={**OUTPUTS, "kind": "evil"}), "outputs of kind 'evil'"),
    (lambda d: d["runs"][0].update(outputs={**OUTPUTS, "plots": "x"}), "manifest.runs[0].outputs.plots"),
    (lambda d: d["target"].update(env=[1, 2]), "manifest.target.env"),
    (lambda d: d.update(format=99), "has format 99, this tidymlflow writes 1"),
])
def test_a_manifest_that_is_not_what_this_version_writes_is_refused_naming_the_field(
        split, tmp_path, monkeypatch, change, named):
    """Unknown, missing and ill-typed fields and another format are refused with their name."""
    job, _ = _one_job(split, tmp_path, monkeypatch)
    _rewrite(job, change)
    with pytest.raises(RecordError, match=named.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        journal.manifest(job)


@pytest.mark.parametrize("where", ["tables", "files", "dataset", "model", "outputs", "plot"])
def test_a_manifest_naming_a_file_outside_its_job_is_refused(split, tmp_path, monkeypatch, where):
    """Every file a manifest names must lie inside its job folder (no /etc/passwd uploaded)."""
    job, _ = _one_job(split, tmp_path, monkeypatch)

    def change(d):
        run = d["runs"][0]
        if where == "tables":
            run["tables"].append("../../../../../../etc/passwd")
        elif where == "files":
            run["files"] = "/etc"
        elif where == "dataset":
            run["datasets"] = [{"context": "training", "file": "/etc/passwd", "num_rows": 1,
                                "num_elements": 1, "columns": [], "string_columns": []}]
        elif where == "model":
            run["model"] = {"file": "../../secret.pkl", "registered_model_name": None}
        elif where == "outputs":
            run["outputs"] = {**OUTPUTS, "file": "../../secret.pkl"}
        else:
            run["plots"][0]["args"] = [{"$frame": "/etc/passwd"}]

    _rewrite(job, change)
    if where == "plot":  # a plot's inputs are read when it is drawn: the plot fails, alone
        from tidymlflow._jobs.stage import decode

        with pytest.raises(RecordError, match="not a file inside the job"):
            decode(journal.manifest(job).runs[0].plots[0].args, job)
    else:
        with pytest.raises(RecordError, match="not a file inside the job"):
            journal.manifest(job)


def test_every_message_survives_its_codec():
    """Each socket message encodes to one JSON line and decodes to an equal record."""
    target = JobTarget("sqlite:///x.db", "/tmp", None, {"MLFLOW_TRACKING_URI": "sqlite:///x.db"})
    for message in (Hello(("/a", "/b"), target, True), Hello((), None, False),
                    Submit(3, "/j", "Workflow.fit"), Wait(), Welcome(42),
                    Done(None, "/j", "c", {"h": "r"}, ("r",), ("e",), "kept"), Refused("why")):
        line = records.encode(message)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert records.decode(line, (type(message),)) == message


@pytest.mark.parametrize(("line", "named"), [
    (b"[1,2]\n", "JSON object with an 'op'"),
    (b"not json\n", "not JSON"),
    (b'{"op":"job","seq":"x","path":"/j","call":"c"}\n', "job.seq"),
    (b'{"op":"hello","path":5,"warm":null,"absent":false}\n', "hello.path"),
    (b'{"op":"job","seq":1,"path":"/j"}\n', "field 'call' is missing"),
    (b'{"op":"job","seq":1,"path":"/j","call":"c","extra":1}\n', "unknown field(s) extra"),
    (b'{"op":"welcome","pid":1}\n', "unknown message op"),
    (b'{"op":"shutdown"}\n', "unknown message op"),
])
def test_a_bad_line_is_refused_naming_the_problem(line, named):
    """What a hostile or broken script sends becomes one clear RecordError."""
    with pytest.raises(RecordError, match=named.replace("(", r"\(").replace(")", r"\)")):
        records.decode(line, (Hello, Submit, Wait))


def test_an_overlong_line_is_skipped_without_being_held():
    """A line over the cap is read in pieces and dropped; the next line is read as usual."""
    good = records.encode(Wait())
    stream = io.BytesIO(b"x" * (3 * records.MAX_MESSAGE) + b"\n" + good)
    lines = list(records.lines(stream))
    assert len(lines) == 2 and lines[1] == good
    with pytest.raises(RecordError, match="refused"):
        records.decode(lines[0], (Wait,))


def test_progress_that_cannot_be_read_is_no_progress():
    """A progress file of another shape counts as no attempt (delivery looks the runs up by tag)."""
    assert records.load_progress('{"attempts": "many"}') == records.Progress()
    assert records.load_progress("{") == records.Progress()
    saved = records.Progress(2, {"h": ("r", "0")}, ("h",))
    assert records.load_progress(records.dump_progress(saved)) == saved


def test_a_job_folder_outside_the_users_journal_is_refused(tmp_path, monkeypatch):
    """The writer takes a job folder only from this user's journal, and through no link."""
    monkeypatch.setenv("TIDYMLFLOW_JOURNAL_DIR", str(tmp_path / "journal"))
    inside = journal.new_job(journal.folder("sqlite:///x.db"))
    assert journal.own_job(inside) == inside
    elsewhere = tmp_path / "elsewhere" / "a" / "b"
    elsewhere.mkdir(parents=True)
    for bad in (str(elsewhere), "relative/job", os.path.dirname(inside),
                os.path.join(os.path.dirname(inside), "..", "..", "..")):
        with pytest.raises(RecordError, match="not a job folder"):
            journal.own_job(bad)
    link = os.path.join(os.path.dirname(inside), "link")
    os.symlink(elsewhere, link)
    with pytest.raises(RecordError, match="not a job folder"):
        journal.own_job(link)
    os.chmod(inside, 0o777)
    with pytest.raises(RecordError, match="writable by others"):
        journal.own_job(inside)


def test_records_are_frozen():
    """A record read once is the record: nothing on the way can change a field."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        Submit(1, "/j", "c").seq = 2  # type: ignore[misc]


@pytest.mark.parametrize(("uri", "expected"), [
    ("sqlite:///local.db", "sqlite:////work/p/local.db"),
    ("sqlite:///r.db?timeout=5", "sqlite:////work/p/r.db?timeout=5"),
    ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
    ("./mlruns", "/work/p/mlruns"), ("file:mlruns", "/work/p/mlruns"),
    ("file:///abs/mlruns", "file:///abs/mlruns"), ("http://h:5000", "http://h:5000"),
    ("databricks", "databricks"), ("databricks-uc", "databricks-uc"),
])
def test_a_relative_store_is_made_absolute_against_the_scripts_folder(uri, expected):
    """A writer serving scripts in several folders opens each relative store in its script's
    folder (MLflow keeps one store per URI text)."""
    assert journal.absolute_uri(uri, "/work/p") == expected


@pytest.mark.parametrize("rows", [3, stage.CSV_ROWS + 1])
def test_a_tables_csv_twin_is_the_owners_only_and_what_pandas_writes(tmp_path, rows):
    """A CSV twin holds training data: 0600 whatever the umask, like every file of a job, with
    the bytes pandas writes for the table (capped at CSV_ROWS rows, named for it)."""
    import pandas as pd

    frame = pd.DataFrame({"x": range(rows), "y": ["a,b"] * rows})
    old = os.umask(0o022)
    try:
        stage.write_csv_twin(frame, str(tmp_path / "outputs.parquet"))
    finally:
        os.umask(old)
    [twin] = list(tmp_path.glob("outputs*.csv"))
    capped = f"outputs.first_{stage.CSV_ROWS}_rows.csv"
    assert twin.name == ("outputs.csv" if rows <= stage.CSV_ROWS else capped)
    assert twin.stat().st_mode & 0o777 == 0o600
    frame.head(stage.CSV_ROWS).to_csv(tmp_path / "expected.csv", index=False)
    assert twin.read_bytes() == (tmp_path / "expected.csv").read_bytes()
