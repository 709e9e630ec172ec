"""The user's MLflow habits in the process that logs, with the writer process writing after the
calls return: a user's own run is complete when it ends, ``mlflow.last_active_run()`` is the run
tidymlflow just created, and MLflow reads see what was logged, without ``tidymlflow.flush()``."""

from __future__ import annotations

import os
import signal
import time
import warnings

import mlflow
import pytest

import tidymlflow
from tidymlflow._recording import habits as _habits
from tidymlflow._writer import client as _service


def _wf():
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg())


@pytest.fixture
def process_writer(store):
    tidymlflow.autolog(writer="process", log_plots=False)
    yield store


def test_a_users_run_is_complete_when_it_ends(process_writer, split):
    train, test = split
    with mlflow.start_run() as run:
        _wf().fit(train).evaluate(test)
    got = mlflow.get_run(run.info.run_id)  # no flush: the end of the run waited
    assert {"train_rmse", "test_rmse", "fit_duration_s"} <= set(got.data.metrics)
    assert got.data.params["formula"] == "y ~ x1 + x2"
    assert got.info.status == "FINISHED"


def test_last_active_run_is_the_run_tidymlflow_created(process_writer, split):
    train, test = split
    with mlflow.start_run() as mine:
        pass
    fit = _wf().fit(train)
    last = mlflow.last_active_run()
    assert last is not None and last.info.run_id != mine.info.run_id
    assert last.info.run_id == tidymlflow.run_id(fit)
    assert "train_rmse" in last.data.metrics  # complete
    with mlflow.start_run() as later:
        pass
    assert mlflow.last_active_run().info.run_id == later.info.run_id  # the user's newer run


def test_mlflow_reads_right_after_a_fit_see_it(process_writer, split):
    train, _ = split
    _wf().fit(train)
    runs = mlflow.search_runs(experiment_ids=[process_writer.experiment_id])
    assert len(runs) == 1 and runs["metrics.train_rmse"].notna().all()
    _wf().fit(train)
    client = mlflow.MlflowClient()
    found = client.search_runs([process_writer.experiment_id])
    assert len(found) == 2
    assert client.list_artifacts(found[0].info.run_id, "tidymodels")


@pytest.mark.writer_process
def test_a_read_against_a_stopped_writer_waits_bounded_and_warns_once(process_writer, split, monkeypatch):
    """A writer that does not answer (SIGSTOP) holds a read back at most READ_WAIT seconds; the
    read then goes on, with one warning."""
    train, _ = split
    _wf().fit(train)
    tidymlflow.flush()
    monkeypatch.setattr(_habits, "READ_WAIT", 1.0)
    monkeypatch.setattr(_habits, "_told", False)
    monkeypatch.setenv("TIDYMLFLOW_STRICT", "0")
    pid = _service.current().writer_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        _wf().fit(train)
        start = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = mlflow.search_runs(experiment_ids=[process_writer.experiment_id])
            mlflow.search_runs(experiment_ids=[process_writer.experiment_id])
            elapsed = time.monotonic() - start
            tables = tidymlflow.collect("stats", experiment_ids=[process_writer.experiment_id])
            tidymlflow.collect("stats", experiment_ids=[process_writer.experiment_id])
    finally:
        os.kill(pid, signal.SIGCONT)
    ours = [w for w in caught if "waited" in str(w.message)]
    assert 1.0 <= elapsed < 10, (elapsed, [str(w.message) for w in caught])
    # one warning for MLflow's reads; collect() says so every time it returns without the newest
    assert [str(w.message).split(" waited")[0] for w in ours] == [
        "tidymlflow: MlflowClient.search_runs()", "tidymlflow: tidymlflow.collect()",
        "tidymlflow: tidymlflow.collect()"]
    assert [w.filename for w in ours[1:]] == [__file__] * 2  # collect() points at the user's line
    assert tables["run_id"].nunique() == 1
    assert len(first) == 1  # the second fit is not written yet: the read went on without it
    tidymlflow.flush()
    assert len(mlflow.search_runs(experiment_ids=[process_writer.experiment_id])) == 2


def test_autolog_disable_restores_mlflows_own_functions(store):
    import mlflow.tracking.client as client_module
    import mlflow.tracking.fluent as fluent

    originals = (client_module.MlflowClient.search_runs, fluent.end_run, mlflow.end_run,
                 mlflow.last_active_run)
    tidymlflow.autolog()
    assert client_module.MlflowClient.search_runs is not originals[0]
    tidymlflow.autolog(disable=True)
    assert (client_module.MlflowClient.search_runs, fluent.end_run, mlflow.end_run,
            mlflow.last_active_run) == originals
