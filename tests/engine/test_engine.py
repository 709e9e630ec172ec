"""The engine's contract: flags, patch/unpatch identity, safety, strict mode, threads, user runs."""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings

import pytest
from helpers import free_port, linear_wf

import tidymlflow
from tidymlflow import TidyMLflowError, TidyMLflowWarning
from tidymlflow.layer import Layer, Patch


@pytest.mark.parametrize("kwargs, error, name", [
    ({"parsnip": "yes"}, TypeError, "parsnip"),
    ({"log_outputs": 1}, TypeError, "log_outputs"),
    ({"log_plots": ["forecast", "nope"]}, ValueError, "nope"),
    ({"log_plots": "forecast"}, TypeError, "log_plots"),
    ({"plotly_js": "inline"}, ValueError, "plotly_js"),
    ({"max_tuning_runs": -1}, ValueError, "max_tuning_runs"),
    ({"max_tuning_runs": 2.5}, TypeError, "max_tuning_runs"),
    ({"plot_every_n_fits": 0}, ValueError, "plot_every_n_fits"),
    ({"plot_every_n_fits": True}, TypeError, "plot_every_n_fits"),
    ({"plot_every_n_fits": None}, TypeError, "plot_every_n_fits"),
    ({"extra_tags": ["a"]}, TypeError, "extra_tags"),
    ({"layers": {"nonexistent": True}}, ValueError, "nonexistent"),
    ({"layers": {"parsnip": False}}, ValueError, "parsnip"),
    ({"no_such_flag": True}, TypeError, "no_such_flag"),
])
def test_bad_flags_raise_naming_the_flag(kwargs, error, name):
    with pytest.raises(error, match=name):
        tidymlflow.autolog(**kwargs)


@pytest.mark.parametrize("chosen", ["inline", "process"])
def test_autolog_starts_the_writer_its_own_flag_asks_for(chosen, monkeypatch, tmp_path):
    """autolog(writer=...) starts that writer, whatever the configuration before it said (the
    writer is started before the configuration becomes active)."""
    from tidymlflow._writer import client

    monkeypatch.delenv("TIDYMLFLOW_WRITER", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    tidymlflow.autolog(writer="process" if chosen == "inline" else "inline")
    tidymlflow.autolog(writer=chosen)
    assert client.current() is not None and client.current().synchronous == (chosen == "inline")


def test_valid_plot_names_accepted(split):
    """A set of plot names is taken as given: the config holds it, and a fit draws only those."""
    from tidymlflow._runtime import state
    from tidymlflow.testing import capture

    tidymlflow.autolog(log_plots={"forecast", "residual_diagnostics"}, max_tuning_runs=None)
    assert state.config.log_plots == {"forecast", "residual_diagnostics"}
    assert state.config.max_tuning_runs is None
    with capture() as jobs:
        linear_wf().fit(split[0]).evaluate(split[1])
    drawn = {plot.name for run in jobs.runs() for plot in run.plots}
    assert "residual_diagnostics" in drawn and drawn <= {"forecast", "residual_diagnostics"}


def test_disable_restores_identical_originals():
    from py_parsnip.model_spec import ModelFit, ModelSpec
    from py_workflows.workflow import Workflow

    before = (Workflow.__dict__["fit"], ModelSpec.__dict__["fit"], ModelFit.__dict__["evaluate"])
    tidymlflow.autolog()
    tidymlflow.autolog()  # twice: no double patch
    assert Workflow.__dict__["fit"] is not before[0]
    assert Workflow.__dict__["fit"].__wrapped__ is before[0]
    tidymlflow.autolog(disable=True)
    after = (Workflow.__dict__["fit"], ModelSpec.__dict__["fit"], ModelFit.__dict__["evaluate"])
    assert all(a is b for a, b in zip(after, before))


def test_autolog_twice_logs_once(store, split):
    tidymlflow.autolog()
    tidymlflow.autolog(extra_tags={"team": "forecasting"})
    linear_wf().fit(split[0])
    runs = store.runs()
    assert len(runs) == 1
    assert runs[0].data.tags["team"] == "forecasting"  # the second call's configuration wins


def test_patched_call_returns_the_original_object_and_runs_it_once(store, split, monkeypatch):
    from py_workflows.workflow import Workflow

    real_fit, seen = Workflow.fit, []

    def counting_fit(self, data):
        result = real_fit(self, data)
        seen.append(result)
        return result

    monkeypatch.setattr(Workflow, "fit", counting_fit)
    tidymlflow.autolog()
    result = linear_wf().fit(split[0])
    tidymlflow.autolog(disable=True)
    assert len(seen) == 1 and result is seen[0]
    assert len(store.runs()) == 1


@pytest.mark.parametrize("exc, status", [(ValueError("user's own error"), "FAILED"),
                                         (KeyboardInterrupt(), "KILLED")])
def test_user_exception_propagates_unchanged_and_run_fails(store, split, monkeypatch, exc, status):
    from py_workflows.workflow import Workflow

    def failing_fit(self, data):
        raise exc

    monkeypatch.setattr(Workflow, "fit", failing_fit)
    tidymlflow.autolog()
    with pytest.raises(type(exc)) as caught:
        linear_wf().fit(split[0])
    tidymlflow.autolog(disable=True)
    assert caught.value is exc
    runs = store.runs()
    assert len(runs) == 1 and runs[0].info.status == status
    assert runs[0].data.tags["tidymlflow.error"].startswith(type(exc).__name__)


def test_real_library_error_propagates(store, split):
    tidymlflow.autolog()
    from py_parsnip import linear_reg
    from py_workflows import workflow

    bad = workflow().add_formula("y ~ not_a_column").add_model(linear_reg())
    with pytest.raises(Exception) as caught:
        bad.fit(split[0])
    tidymlflow.autolog(disable=True)
    with pytest.raises(type(caught.value)):
        bad.fit(split[0])
    assert [r.info.status for r in store.runs()] == ["FAILED"]


def test_unreachable_server_warns_once_and_keeps_result(split, monkeypatch):
    import mlflow

    monkeypatch.delenv("TIDYMLFLOW_STRICT")
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    tidymlflow.autolog()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = linear_wf().fit(split[0])
        linear_wf().fit(split[0])
        tidymlflow.flush(timeout=120)
    ours = [str(w.message) for w in caught if issubclass(w.category, TidyMLflowWarning)]
    assert len(ours) == 1, ours
    assert "could not write to MLflow" in ours[0] and "tidymlflow sync" in ours[0]
    assert fit.extract_outputs()[0].shape[0] == len(split[0])
    assert len(_kept_jobs(uri)) == 2  # both calls are kept in the journal, nothing is lost


def _kept_jobs(uri: str) -> list[str]:
    from tidymlflow._jobs import journal as _journal

    return [job for folder, key in _journal.journals() if key == uri for job in _journal.pending(folder)]


def test_unreachable_server_raises_in_strict_mode(split, monkeypatch):
    import mlflow

    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    tidymlflow.autolog()
    with pytest.raises(TidyMLflowError, match="127.0.0.1"):
        linear_wf().fit(split[0])
        tidymlflow.flush(timeout=120)


def _broken_artifact_experiment(store):
    blocker = store.root / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    import mlflow

    exp = store.client.create_experiment(f"broken-{store.experiment_id}",
                                         artifact_location=str(blocker / "artifacts"))
    mlflow.set_experiment(experiment_id=exp)
    store.experiment_id = exp
    return blocker


def test_failed_artifact_upload_keeps_the_job_and_sync_completes_the_run(store, split, monkeypatch):
    """Files that cannot be written (a file where the artifact folder should be): the run has
    its metrics, ends FAILED and lists what it lacks; once the disk is fixed, `tidymlflow sync`
    completes the same run."""
    monkeypatch.delenv("TIDYMLFLOW_STRICT")
    blocker = _broken_artifact_experiment(store)
    tidymlflow.autolog()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = linear_wf().fit(split[0])
        tidymlflow.flush(timeout=120)
    ours = [str(w.message) for w in caught if issubclass(w.category, TidyMLflowWarning)]
    assert len(ours) == 1 and "could not write to MLflow" in ours[0], ours
    [run] = store.runs()
    assert run.info.status == "FAILED" and "train_rmse" in run.data.metrics
    assert "tidymodels/outputs.parquet" in run.data.tags["tidymlflow.incomplete"]
    assert fit.formula == "y ~ x1 + x2"

    blocker.unlink()
    sync = subprocess.run([sys.executable, "-m", "tidymlflow", "sync", "--tracking-uri",
                           store._client.tracking_uri], capture_output=True, text=True, timeout=300)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    [again] = store.runs()
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert "tidymlflow.incomplete" not in again.data.tags
    files = {a.path for a in store.client.list_artifacts(run.info.run_id, "tidymodels")}
    assert "tidymodels/outputs.parquet" in files


def test_failed_artifact_upload_raises_in_strict_mode(store, split):
    _broken_artifact_experiment(store)
    tidymlflow.autolog()
    with pytest.raises(TidyMLflowError, match="Errno|Not a directory|exists"):
        linear_wf().fit(split[0])
        tidymlflow.flush(timeout=120)


def test_two_threads_get_two_runs(store, split):
    tidymlflow.autolog()
    barrier, errors = threading.Barrier(2), []

    def work(name):
        try:
            barrier.wait()
            linear_wf().add_model_name(name).fit(split[0])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("t1", "t2")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    runs = store.runs()
    assert sorted(r.info.run_name for r in runs) == ["t1: y ~ x1 + x2", "t2: y ~ x1 + x2"]
    assert all("mlflow.parentRunId" not in r.data.tags for r in runs)


def test_single_fit_logs_into_user_run_then_nests(store, split, data):
    import mlflow

    tidymlflow.autolog()
    with mlflow.start_run(run_name="mine") as mine:
        linear_wf().fit(split[0])
        linear_wf().fit(split[0])
        linear_wf().fit_nested(data.drop(columns=["date"]), "store", per_group_prep=False)
    user = store.run("mine")
    assert user.info.run_id == mine.info.run_id
    assert user.data.params["model_type"] == "linear_reg" and "train_rmse" in user.data.metrics
    assert user.data.tags["tidymlflow.call"] == "Workflow.fit"
    direct = {r.info.run_name for r in store.children(user)}
    assert direct == {"linear_reg: y ~ x1 + x2", "linear_reg by store"}
    assert user.info.status == "FINISHED"  # ended by the user, not by tidymlflow
    assert len(store.runs()) == 1 + 2 + 4


def test_exclusive_logs_nothing_inside_user_run(store, split):
    import mlflow

    tidymlflow.autolog(exclusive=True)
    with mlflow.start_run(run_name="mine"):
        linear_wf().fit(split[0])
    linear_wf().fit(split[0])
    assert sorted(r.info.run_name for r in store.runs()) == ["linear_reg: y ~ x1 + x2", "mine"]
    assert store.run("mine").data.params == {}


def test_extra_tags_on_every_run(store, data):
    tidymlflow.autolog(extra_tags={"project": "demand"})
    linear_wf().fit_nested(data.drop(columns=["date"]), "store", per_group_prep=False)
    assert {r.data.tags["project"] for r in store.runs()} == {"demand"}


def test_log_outputs_and_datasets_off(store, split):
    tidymlflow.autolog(log_outputs=False, log_datasets=False, log_plots=False)
    linear_wf().fit(split[0])
    run = store.runs()[0]
    assert store.client.list_artifacts(run.info.run_id) == []
    assert run.inputs.dataset_inputs == []
    assert "train_rmse" in run.data.metrics


def test_evaluate_of_unlogged_fit_logs_nothing(store, split):
    fit = linear_wf().fit(split[0])
    tidymlflow.autolog()
    fit.evaluate(split[1])
    assert store.runs() == []


def test_odd_values_are_logged_safely(store, split):
    import numpy as np

    from tidymlflow._jobs.names import clean_key
    from tidymlflow._jobs.records import FORMAT, Manifest
    from tidymlflow._jobs.stage import Stage
    from tidymlflow._recording.recorder import Recorder
    from tidymlflow._recording.runs import current_target
    from tidymlflow._writer.delivery import Deliverer

    tidymlflow.autolog()
    huge = "y ~ x1 + x2 + " + " + ".join(["x1"] * 3000)
    run = store.client.create_run(store.experiment_id)
    stage = Stage(current_target().journal)
    writer = Recorder(stage, 0, f"run:{run.info.run_id}", kind="existing")
    writer.log_params({"formula": huge, "naïve/ü name": "ok", "a/../b": 1})
    writer.log_metrics({"nan": np.nan, "inf": np.inf, "ok": 1.5, "text": "abc"})
    writer.set_tags({"stats.über": "∑"})
    assert writer.skipped_metrics == 3
    job = stage.commit(Manifest(FORMAT, "test", "test", (), current_target().record(), (writer.record(),)))
    assert Deliverer(apply_target=False).deliver(job).errors == []
    data = store.client.get_run(run.info.run_id).data
    assert len(data.params["formula"]) == 6000 and data.params["formula"].endswith("...")
    assert data.params["naïve/ü name"] == "ok" and data.params[clean_key("a/../b")] == "1"
    assert data.metrics == {"ok": 1.5}
    assert data.tags["stats.über"] == "∑"


def test_nested_results_are_kept_once_per_instance_and_up_to_a_cap():
    from tidymlflow._runtime.config import AutologConfig
    from tidymlflow.layer import MAX_OBSERVED, Call

    call = Call("recipes", "Recipe.prep", len, None, (), {}, AutologConfig())
    first, other = object(), object()
    made = []
    for result in range(3):  # e.g. the same recipe prepped once per fold
        call.observe("Recipe.prep", first, lambda r=result: made.append(r) or r)
    call.observe("Recipe.prep", other, lambda: "x")
    assert call.observed == [("Recipe.prep", first, 0), ("Recipe.prep", other, "x")]
    assert made == [0]  # a record is made only when it is kept
    keep = [object() for _ in range(MAX_OBSERVED)]
    for obj in keep:
        call.observe("PreparedStepLog.bake", obj, lambda: 1)
    assert len(call.observed) == MAX_OBSERVED
    call.observe("Recipe.prep", object(), lambda: 1 / 0)  # over the cap: not even made
    assert len(call.observed) == MAX_OBSERVED


@pytest.mark.parametrize("make, error, message", [
    (lambda: Patch("py_parsnip.model_spec", "ModelSpec.fit", handler=lambda call: None), TypeError,
     "generator function"),
    (lambda: Patch("py_parsnip.model_spec", "ModelSpec.fit*", handler=None), ValueError, "target must be"),
    (lambda: Patch("py_recipes.steps", "Step*", handler=None), ValueError, "give the method"),
    (lambda: Patch("py parsnip", "ModelSpec.fit"), ValueError, "dotted module name"),
    (lambda: Patch("py_tune.tune", "TuneResults.show_best", rebind=True), ValueError, "free functions"),
    (lambda: Patch("py_tune.tune", "tune_grid", observe="yes"), TypeError, "observe must be"),
    (lambda: Layer("x", (("py_tune.tune", "tune_grid"),)), TypeError, "Patch objects"),
    (lambda: Layer("x", (), supported="soon"), ValueError, "version range"),
])
def test_a_malformed_layer_is_refused_when_it_is_loaded(make, error, message):
    with pytest.raises(error, match=message):
        make()
