"""Names imported with ``from py_tune import ...`` at module level before autolog() are intercepted."""

from __future__ import annotations

from py_parsnip import linear_reg
from py_rsample import vfold_cv
from py_tune import fit_resamples, grid_regular, tune, tune_bayes, tune_grid
from py_workflows import workflow

import tidymlflow

ORIGINAL = {"tune_grid": tune_grid}  # held in a dict, which re-binding leaves alone


def test_prebound_tune_grid_and_fit_resamples_are_intercepted(store, split):
    train, _ = split
    tidymlflow.autolog()
    assert tune_grid is not ORIGINAL["tune_grid"]  # this module's own name was re-bound
    folds = vfold_cv(train, v=3, seed=2)
    wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune()))
    grid = grid_regular({"penalty": {"range": (0.01, 1.0), "trans": "log"}}, levels=2)
    tune_grid(wf, folds, grid=grid)
    fit_resamples(workflow().add_formula("y ~ x1").add_model(linear_reg()), folds)
    # without interception every per-fold Workflow.fit would have made a run of its own
    runs = store.runs()
    calls = sorted(r.data.tags["tidymlflow.call"] for r in runs)
    assert calls == ["fit_resamples", "tune_grid", "tune_grid", "tune_grid"]  # parent + 2 candidates
    assert {r.info.run_name for r in runs if "mlflow.parentRunId" not in r.data.tags} == {
        "tune_grid: linear_reg", "fit_resamples: linear_reg"}


def test_tune_bayes_inner_tune_grid_calls_stay_silent(store, split):
    train, _ = split
    tidymlflow.autolog()
    from py_tune import control_bayes

    folds = vfold_cv(train, v=2, seed=3)
    wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune()))
    result = tune_bayes(wf, folds, {"penalty": {"range": (0.01, 1.0), "trans": "log"}},
                        control=control_bayes(n_initial=2, n_iter=1))
    runs = store.runs()
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_name for p in parents] == ["tune_bayes: linear_reg"]
    assert parents[0].data.params["tune.method"] == "bayes"
    assert len(runs) == 1 + result.metrics[".config"].nunique()
    assert all(r.data.tags["tidymlflow.call"] == "tune_bayes" for r in runs)


def test_disable_restores_prebound_names():
    tidymlflow.autolog()
    assert globals()["tune_grid"] is not ORIGINAL["tune_grid"]
    tidymlflow.autolog(disable=True)
    assert globals()["tune_grid"] is ORIGINAL["tune_grid"]
    import sys

    import py_tune
    import py_tune.bayes  # noqa: F401

    assert py_tune.tune_grid is ORIGINAL["tune_grid"]
    assert sys.modules["py_tune.tune"].tune_grid is ORIGINAL["tune_grid"]
    assert sys.modules["py_tune.bayes"].tune_grid is ORIGINAL["tune_grid"]
