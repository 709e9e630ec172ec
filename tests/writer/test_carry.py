"""A fit's job and the job of its ``evaluate()`` waiting behind it share their run's MLflow calls
(issue 26): one batch of params, metrics and tags, one dataset-inputs call and one end for the
two. The run is the one the two jobs write one by one; the fit's script is answered when both are
written; and when the second job cannot be written (a full disk under the artifact store), the
first is written in whole at once and the second kept, nothing lost and no run left RUNNING."""

from __future__ import annotations

import contextlib
import os

import pytest
import wrapt

import tidymlflow
from tidymlflow._jobs.records import Done
from tidymlflow._writer.scheduler import Job, Scheduler
from tidymlflow.testing import capture

COUNTED = ("log_batch", "log_inputs", "set_terminated", "create_run")


def _wf():
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg())


@contextlib.contextmanager
def _counting():
    """Every call of these MlflowClient methods made inside, counted (the calls are made)."""
    from mlflow import MlflowClient

    counts = dict.fromkeys(COUNTED, 0)

    def counted(wrapped, instance, args, kwargs):
        counts[wrapped.__name__] += 1
        return wrapped(*args, **kwargs)

    handles = {name: wrapt.wrap_function_wrapper(MlflowClient, name, counted) for name in COUNTED}
    try:
        yield counts
    finally:
        for name, handle in handles.items():
            wrapt.unwrap_object(MlflowClient, name, handle)


def _pair(train, test) -> list[Job]:
    """The two jobs of a fit and its evaluate(), as the writer holds them (kept on disk)."""
    with capture() as jobs:
        _wf().fit(train).evaluate(test)
        kept = [Job(path, seq, m.call, m) for seq, (path, m) in enumerate(jobs.jobs, 1)]
        jobs.jobs = []  # the folders stay: the scheduler writes and removes them
    return kept


def _deliver(scheduler: Scheduler, queue: list[Job], jobs: list[Job], together: bool) -> list[Done]:
    answers: list[Done] = []
    for i, job in enumerate(jobs):
        queue[:] = jobs[i + 1:] if together else []
        scheduler.handle(job, answers.append)
    queue[:] = []
    return answers


def _written(client, run_id: str) -> dict:
    run = client.get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items() if k not in ("tidymlflow.handle", "mlflow.runName")}
    histories = {k: [(None if k == "fit_duration_s" else m.value, m.step)  # the fit's own time
                     for m in client.get_metric_history(run_id, k)] for k in run.data.metrics}
    files = sorted(a.path for d in ("tidymodels", "plots")
                   for a in client.list_artifacts(run_id, d))
    inputs = sorted((i.dataset.name, i.dataset.digest, i.tags[0].value) for i in run.inputs.dataset_inputs)
    return {"params": run.data.params, "tags": tags, "metrics": histories, "files": files, "inputs": inputs,
            "status": run.info.status}


def test_a_fit_and_its_evaluation_waiting_behind_it_share_one_batch_inputs_call_and_end(store, split):
    from mlflow import MlflowClient

    train, test = split
    tidymlflow.autolog()
    together, apart = _pair(train, test), _pair(train, test)
    queue: list[Job] = []
    scheduler = Scheduler(lambda: queue)
    client = MlflowClient()

    queue[:] = together[1:]
    answers: list[Done] = []
    with _counting() as counts:
        scheduler.handle(together[0], answers.append)
        assert answers == [] and scheduler.carrying is not None  # the fit waits for its evaluation
        [held] = [r.info.run_id for r in client.search_runs([store.experiment_id])]
        assert client.get_run(held).data.params == {}  # its batch is left to the next job
        queue[:] = []
        scheduler.handle(together[1], answers.append)
    assert counts == {"create_run": 1, "log_batch": 1, "log_inputs": 1, "set_terminated": 1}
    assert sorted(a.seq for a in answers) == [1, 2] and all(not a.errors and not a.kept for a in answers)
    assert scheduler.carrying is None and scheduler.idle()
    assert not any(os.path.isdir(job.path) for job in together)

    with _counting() as counts:
        one_by_one = _deliver(scheduler, queue, apart, together=False)
    assert counts == {"create_run": 1, "log_batch": 2, "log_inputs": 2, "set_terminated": 1}
    run_ids = [a.runs[next(iter(a.runs))] for a in (answers[0], one_by_one[0])]
    assert _written(client, run_ids[0]) == _written(client, run_ids[1])
    assert _written(client, run_ids[0])["status"] == "FINISHED"
    assert {"test_rmse", "train_rmse", "fit_duration_s"} <= set(_written(client, run_ids[0])["metrics"])


def test_when_the_evaluation_cannot_be_written_the_fit_is_written_in_whole_and_it_is_kept(
        store, split, tiny_disk, monkeypatch):
    from mlflow import MlflowClient

    train, test = split
    client = MlflowClient()
    experiment = client.create_experiment("carry-disk", artifact_location=str(tiny_disk / "artifacts"))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment)
    import mlflow

    mlflow.set_experiment(experiment_id=experiment)
    tidymlflow.autolog(log_plots=False)
    jobs = _pair(train, test)
    queue: list[Job] = list(jobs[1:])
    scheduler = Scheduler(lambda: queue)
    answers: list[Done] = []
    scheduler.handle(jobs[0], answers.append)
    assert scheduler.carrying is not None
    filler = tiny_disk / "filler"
    with contextlib.suppress(OSError):  # as full as the disk gets
        filler.write_bytes(b"x" * (1024 * 1024))
    queue[:] = []
    scheduler.handle(jobs[1], answers.append)

    by_seq = {a.seq: a for a in answers}
    assert sorted(by_seq) == [1, 2]
    assert not by_seq[1].kept and by_seq[2].kept and "No space left" in by_seq[2].kept
    [run] = client.search_runs([experiment])
    assert run.info.status == "FINISHED"  # the fit's own part, written in whole at once
    assert "train_rmse" in run.data.metrics and run.data.params["formula"] == "y ~ x1 + x2"
    assert not os.path.isdir(jobs[0].path) and os.path.isdir(jobs[1].path)

    filler.unlink()
    for entries in scheduler.kept.values():
        for entry in entries:
            entry.due = 0.0
    scheduler.retry_kept()
    assert not scheduler.kept and not os.path.isdir(jobs[1].path)
    [done] = client.search_runs([experiment])
    assert done.info.run_id == run.info.run_id and done.info.status == "FINISHED"
    assert "test_rmse" in done.data.metrics
    files = {a.path for a in client.list_artifacts(done.info.run_id, "tidymodels")}
    assert "tidymodels/outputs.parquet" in files


@pytest.mark.parametrize("next_call", ["another fit", "nothing"])
def test_a_job_whose_next_job_is_not_its_evaluation_is_written_in_whole(store, split, next_call):
    """The queue changed its mind (the next job is another run's, or none came): what the first
    job left is written by delivering it again, and its script is answered."""
    from mlflow import MlflowClient

    train, test = split
    tidymlflow.autolog()
    first, other = _pair(train, test), _pair(train, test)
    queue: list[Job] = [first[1]]
    scheduler = Scheduler(lambda: queue)
    answers: list[Done] = []
    scheduler.handle(first[0], answers.append)
    assert scheduler.carrying is not None and answers == []
    queue[:] = []
    if next_call == "another fit":
        scheduler.handle(other[0], answers.append)
    else:
        scheduler.finish_carry()
    assert [a.seq for a in answers][:1] == [1] and not answers[0].errors
    run = MlflowClient().get_run(answers[0].runs[next(iter(answers[0].runs))])
    assert run.info.status == "FINISHED" and run.data.params["formula"] == "y ~ x1 + x2"
    assert "train_rmse" in run.data.metrics and run.inputs.dataset_inputs
    assert not os.path.isdir(first[0].path)
    scheduler.handle(first[1], answers.append)
    assert "test_rmse" in MlflowClient().get_run(run.info.run_id).data.metrics
