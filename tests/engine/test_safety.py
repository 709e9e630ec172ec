"""The safety net: autolog never breaks a successful fit, never doubles runs, never drops a batch
silently, never points the library's warnings at itself. Each fault is made for real."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tidymlflow
from tidymlflow import TidyMLflowWarning


def _wf(formula: str = "y ~ x1 + x2"):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula(formula).add_model(linear_reg())


def _ours(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, TidyMLflowWarning)]


def _folds(train, v=3):
    from py_rsample import vfold_cv

    return vfold_cv(train, v=v)


# -- 1. warnings as errors ---------------------------------------------------------------------------
def test_third_party_warnings_of_our_logging_never_reach_the_user(store, split):
    """MLflow warns about integer columns when it infers the dataset schema we log; under
    ``-W error`` that warning used to turn a successful fit into an exception."""
    train = split[0].assign(x3=np.arange(len(split[0])))  # an integer column
    tidymlflow.autolog()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _wf("y ~ x1 + x2 + x3").fit(train)
    assert not [w for w in caught if "schema" in str(w.message).lower()], [str(w.message) for w in caught]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = _wf("y ~ x1 + x2 + x3").fit(train)
    assert fit.formula == "y ~ x1 + x2 + x3"
    runs = store.runs()
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert all(r.inputs.dataset_inputs for r in runs)


def test_our_own_warning_cannot_raise_out_of_a_successful_fit(split, monkeypatch, caplog):
    """A logging failure (a closed port) under ``warnings.simplefilter("error")``: the fit is
    returned, the failure goes to the tidymlflow logger."""
    import mlflow
    from helpers import free_port

    monkeypatch.setenv("TIDYMLFLOW_STRICT", "0")
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    tidymlflow.autolog()
    with caplog.at_level(logging.WARNING, logger="tidymlflow"), warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = _wf().fit(split[0])
        tidymlflow.flush(timeout=120)
    assert fit.extract_outputs()[0].shape[0] == len(split[0])
    assert "could not write to MLflow" in caplog.text


# -- 2. MLflow's own autologging -----------------------------------------------------------------------
def test_mlflow_flavor_autolog_makes_no_runs_inside_our_calls(store, split, caplog):
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    mlflow.sklearn.autolog(log_models=False, log_datasets=False, silent=True)
    try:
        tidymlflow.autolog(log_plots=False)
        with caplog.at_level(logging.INFO, logger="tidymlflow"):
            _wf().fit(split[0])
            _wf("y ~ x1").fit(split[0])
        runs = store.runs()
        assert sorted(r.data.tags.get("mlflow.autologging") for r in runs) == ["tidymlflow", "tidymlflow"]
        assert caplog.text.count("MLflow's own autologging is on") <= 1
        LinearRegression().fit(split[0][["x1", "x2"]], split[0]["y"])  # outside our calls: theirs
        flavors = [r.data.tags.get("mlflow.autologging") for r in store.runs()]
        assert flavors.count("sklearn") == 1 and flavors.count("tidymlflow") == 2
    finally:
        mlflow.sklearn.autolog(disable=True)


# -- 3. a tuner reached through a name bound before autolog() ------------------------------------------
def _tuned():
    from py_parsnip import linear_reg
    from py_tune import tune
    from py_workflows import workflow

    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune()))


def _grid():
    from py_tune import grid_regular

    return grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=2)


def test_old_names_in_closures_and_exec_namespaces_are_rebound(store, split):
    from py_tune import tune_grid

    def runner(wf, folds, grid):  # a closure over the unpatched function
        return tune_grid(wf, folds, grid=grid)

    namespace: dict = {}
    exec("from py_tune import fit_resamples", namespace)  # a namespace that is not a module
    tidymlflow.autolog(log_plots=False)
    runner(_tuned(), _folds(split[0]), _grid())
    namespace["fit_resamples"](_wf(), _folds(split[0]))
    names = sorted(r.info.run_name.split(" ", 1)[-1] if r.info.run_name.startswith("#") else r.info.run_name
                   for r in store.runs())
    assert names == ["fit_resamples: linear_reg", "penalty=0.01", "penalty=1", "tune_grid: linear_reg"]


def test_tuner_under_a_local_name_never_logs_its_fold_fits(store, split):
    def script(train):
        from py_tune import tune_grid  # bound in a running frame, before autolog()

        yield
        yield tune_grid(_tuned(), _folds(train), grid=_grid())

    steps = script(split[0])
    next(steps)
    tidymlflow.autolog(log_plots=False)
    with pytest.warns(TidyMLflowWarning, match=r"tune_grid was called through a name bound before"):
        results = next(steps)
    assert not results.metrics.empty
    assert store.runs() == []  # not one run per fold fit


# -- 4. a param that clashes with the user's own -------------------------------------------------------
def test_clash_with_the_users_params_logs_the_rest_and_names_the_keys(store, split, monkeypatch):
    import mlflow

    monkeypatch.setenv("TIDYMLFLOW_STRICT", "0")
    tidymlflow.autolog(log_plots=False)
    with mlflow.start_run() as run:
        mlflow.log_params({"model_type": "my own", "formula": "mine"})
        with pytest.warns(TidyMLflowWarning, match=r"formula, model_type") as caught:
            _wf().fit(split[0])
            tidymlflow.flush(timeout=120)
    assert len(_ours(caught)) == 1
    data = store.client.get_run(run.info.run_id).data
    assert data.params["model_type"] == "my own" and data.params["formula"] == "mine"
    assert data.params["engine"] and "train_rmse" in data.metrics and data.tags["model_type"] == "linear_reg"


# -- 5. extra_tags ----------------------------------------------------------------------------------------
def test_extra_tags_are_cleaned_to_what_mlflow_accepts(store, split):
    tidymlflow.autolog(log_plots=False, extra_tags={"k" * 300: "long key", "bad key!<>é": 1,
                                                     "long": "v" * 10_000})
    _wf().fit(split[0])
    tags = store.runs()[0].data.tags
    assert tags["k" * 250] == "long key"
    assert tags["bad key___é"] == "1"
    assert len(tags["long"]) == 8000 and tags["long"].endswith("...")


class _NoText:
    def __str__(self) -> str:
        raise RuntimeError("no text")


@pytest.mark.parametrize("tags, error, match", [
    ({"": "x"}, ValueError, "extra_tags has an empty key"),
    ({"  ": "x"}, ValueError, "extra_tags has an empty key"),
    ({"mlflow.runName": "x"}, ValueError, "extra_tags key 'mlflow.runName' is reserved"),
    ({"a": _NoText()}, TypeError, r"extra_tags\['a'\] has no string form"),
    ({"a!": 1, "a?": 2}, ValueError, "both become 'a_'"),
])
def test_bad_extra_tags_raise_naming_the_flag(tags, error, match):
    with pytest.raises(error, match=match):
        tidymlflow.autolog(extra_tags=tags)


# -- 6. a fit whose outputs the library cannot extract ---------------------------------------------------
def test_object_dtype_target_logs_params_and_duration_with_one_warning(store, split, monkeypatch):
    monkeypatch.setenv("TIDYMLFLOW_STRICT", "0")
    train = split[0].assign(y=split[0]["y"].astype(object))
    tidymlflow.autolog()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = _wf().fit(train)
    ours = _ours(caught)
    assert len(ours) == 1 and "extract_outputs() failed" in ours[0] and "params and duration" in ours[0]
    run = store.runs()[0]
    assert run.data.params["formula"] == "y ~ x1 + x2" and "fit_duration_s" in run.data.metrics
    assert fit.formula == "y ~ x1 + x2"


# -- 7. expected notes are not warnings -------------------------------------------------------------------
def test_expected_notes_go_to_the_logger_not_to_warnings(store, split, caplog):
    train = split[0].copy()
    train.loc[0, "x1"] = np.nan  # the stats frame now has non-finite rows, skipped and counted
    tidymlflow.autolog()
    with caplog.at_level(logging.INFO, logger="tidymlflow"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _wf().fit(train.dropna()).evaluate(split[1])
        from py_tune import tune_grid

        tune_grid(_tuned(), _folds(split[0]), grid=_grid())
    assert _ours(caught) == []
    assert not [w for w in caught if "mlflow" in (w.filename or "")], [str(w.message) for w in caught]


# -- 8. a failed run says why ------------------------------------------------------------------------------
def test_failed_fit_run_has_what_was_known_and_the_error(store, split):
    tidymlflow.autolog()
    with pytest.raises(Exception) as caught:
        _wf("y ~ x1 + not_a_column").fit(split[0])
    (run,) = store.runs()
    assert run.info.status == "FAILED"
    assert run.data.params["model_type"] == "linear_reg"
    assert run.data.params["formula"] == "y ~ x1 + not_a_column"
    assert run.data.tags["tidymlflow.error"] == f"{type(caught.value).__name__}: {caught.value}"


# -- 9. the library's warnings keep the user's line -------------------------------------------------------
def test_library_warning_points_at_the_users_line(store, split):
    import py_tune

    folds = _folds(split[0], v=2)
    with warnings.catch_warnings(record=True) as before:
        warnings.simplefilter("always")
        py_tune.fit_resamples(_wf(), folds, n_jobs=3); line = sys._getframe().f_lineno  # noqa: E702
    tidymlflow.autolog(log_plots=False)
    assert hasattr(py_tune.fit_resamples, "__wrapped__")  # the patched function is the one called
    with warnings.catch_warnings(record=True) as after:
        warnings.simplefilter("always")
        py_tune.fit_resamples(_wf(), folds, n_jobs=3); line_after = sys._getframe().f_lineno  # noqa: E702
    (plain,) = [w for w in before if "task count" in str(w.message)]
    (patched,) = [w for w in after if "task count" in str(w.message)]
    assert (plain.filename, plain.lineno) == (__file__, line)
    assert (patched.filename, patched.lineno) == (__file__, line_after)


# -- what already held, kept under test --------------------------------------------------------------------
def test_processes_sharing_one_sqlite_store_lose_nothing(store, tmp_path):
    import os

    code = textwrap.dedent(f"""
        import numpy as np, pandas as pd, mlflow, tidymlflow
        mlflow.set_tracking_uri({store.client.tracking_uri!r})
        mlflow.set_experiment(experiment_id={store.experiment_id!r})
        tidymlflow.autolog(log_plots=False, log_datasets=False)
        from py_parsnip import linear_reg
        from py_workflows import workflow
        rng = np.random.default_rng()
        for _ in range(4):
            df = pd.DataFrame({{"x1": rng.normal(size=40)}}); df["y"] = 2 * df.x1
            workflow().add_formula("y ~ x1").add_model(linear_reg()).fit(df)
    """)
    env = {**os.environ, "TIDYMLFLOW_STRICT": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
             for _ in range(3)]
    errors = [p.communicate(timeout=240)[1].decode()[-2000:] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    runs = store.runs()
    assert len(runs) == 12
    assert all(r.info.status == "FINISHED" and "train_rmse" in r.data.metrics for r in runs)


def test_nothing_is_pickled_unless_asked(store, split):
    from py_recipes import recipe

    tidymlflow.autolog()
    _wf().fit(split[0])
    recipe().step_normalize().prep(split[0])
    for run in store.runs():
        files = [f.path for f in store.client.list_artifacts(run.info.run_id)]
        stack = list(files)
        while stack:
            path = stack.pop()
            inner = store.client.list_artifacts(run.info.run_id, path)
            stack += [f.path for f in inner]
            files += [f.path for f in inner]
        assert not [f for f in files if f.endswith((".pkl", ".pickle", ".joblib"))], files


def test_no_memory_growth_of_our_own_over_many_fits(store, split):
    """Under 1 KiB of tidymlflow's own memory per fit (the handle -> run id maps that
    ``run_id()`` and later jobs read hold about 0.5 KiB). Measured in two windows of 40 fits,
    the smaller counts: a dict that doubles its table (once per doubling of its entries, after a
    long suite a table of 100 KiB and more) falls in one window at most, while a leak shows in
    both."""
    tidymlflow.autolog(log_plots=False, log_datasets=False)
    for _ in range(10):  # warm-up: caches, the store's connection pool, lazy imports
        _wf().fit(split[0])
    windows = []
    tracemalloc.start()
    try:
        for _ in range(2):
            first = tracemalloc.take_snapshot()
            for _ in range(40):
                _wf().fit(split[0])
            grown = tracemalloc.take_snapshot().compare_to(first, "filename")
            ours = [s for s in grown if "tidymlflow" in s.traceback[0].filename and s.size_diff > 0]
            windows.append((sum(s.size_diff for s in ours), [str(s) for s in ours[:10]]))
    finally:
        tracemalloc.stop()
    size, where = min(windows)
    assert size < 40 * 1024, where  # < 1 KiB a fit


def test_html_plots_escape_group_and_model_names():
    from tidymlflow import plots

    evil = "<script>alert(1)</script>"
    summary = pd.DataFrame({"penalty": [0.1, 0.2], "rmse_mean": [1.0, 2.0], "rmse_std": [0.1, 0.1],
                            "model": [evil, evil]})
    figure = plots.draw("parallel_coordinates", summary, ["penalty"], "rmse")
    html = figure.to_html(include_plotlyjs=False)
    assert evil not in html


def _visible_frames(excinfo) -> list[str]:
    """The traceback pytest shows for an exception: frames with ``__tracebackhide__`` left out
    (IPython applies the same rule)."""
    entries = excinfo.traceback.filter(excinfo)
    return [f"{Path(str(e.path)).name}:{e.name}" for e in entries]


def test_a_library_error_keeps_its_short_traceback(store, split):
    """A py-tidymodels error raised through tidymlflow's wrapper shows the frames it shows without
    tidymlflow: none of tidymlflow's, no line of the user's twice."""
    from py_workflows import workflow

    train, _ = split
    wf = workflow().add_formula("y ~ no_such_column").add_model(__import__("py_parsnip").linear_reg())
    with pytest.raises(Exception) as off:
        wf.fit(train)
    tidymlflow.autolog()
    with pytest.raises(Exception) as on:
        wf.fit(train)
    assert type(on.value) is type(off.value) and str(on.value) == str(off.value)
    shown_on, shown_off = _visible_frames(on), _visible_frames(off)
    assert not [f for f in shown_on if f.startswith(("_engine.py", "_safety.py"))], shown_on
    assert shown_on == shown_off
