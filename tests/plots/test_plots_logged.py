"""Plots as the layers log them: which run gets which plot, the log_plots selection, failures."""

from __future__ import annotations

import pytest

import tidymlflow
from tidymlflow import TidyMLflowError, TidyMLflowWarning


def _plots(store, run):
    return sorted(a.path.split("/")[-1] for a in store.client.list_artifacts(run.info.run_id, "plots"))


def _wf(formula="y ~ x1 + x2", model=None):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula(formula).add_model(model or linear_reg())


def test_fit_and_evaluate_plots_leave_pyplot_alone(store, split):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = plt.figure()
    before = plt.get_fignums()
    tidymlflow.autolog()
    train, test = split
    fit = _wf().fit(train)
    (run,) = store.runs()
    assert _plots(store, run) == ["forecast.html", "forecast.png", "residual_diagnostics.png"]
    fit.evaluate(test)
    assert _plots(store, run) == ["forecast.html", "forecast.png", "residual_diagnostics.png"]
    assert plt.gcf() is mine and plt.get_fignums() == before
    plt.close(mine)


def test_forecast_carries_the_prediction_interval_when_the_engine_gives_one(store, split):
    tidymlflow.autolog()
    from py_parsnip import arima_reg

    train, test = split
    fit = arima_reg().fit(train[["date", "y"]], "y ~ date")
    fit.evaluate(test[["date", "y"]])
    (run,) = store.runs()
    local = store.client.download_artifacts(run.info.run_id, "plots/forecast.html", str(store.root / "f"))
    with open(local, encoding="utf-8") as fh:
        html = fh.read()
    assert "prediction interval" in html and "test prediction" in html


def test_nested_recipe_resample_and_tuning_plots(store, data, split):
    tidymlflow.autolog()
    from py_recipes import recipe
    from py_rsample import vfold_cv
    from py_tune import fit_resamples, grid_regular, tune, tune_grid

    flat = data.drop(columns=["date"])
    _wf().fit_nested(data, "store", per_group_prep=False)
    nested = store.run("linear_reg by store")
    assert _plots(store, nested) == ["coefficient_variation.png", "forecast.html", "forecast.png",
                                     "per_group_heatmap.png"]

    recipe().step_normalize(["x1", "x2"]).step_pca(["x1", "x2"], num_comp=2).prep(flat)
    assert _plots(store, store.run("recipe: normalize > pca")) == ["feature_correlation.png", "pca_scree.png"]

    train, _ = split
    folds = vfold_cv(train, v=3, seed=1)
    fit_resamples(_wf(), folds)
    assert _plots(store, store.run("fit_resamples: linear_reg")) == ["cv_folds.png"]
    from py_parsnip import linear_reg

    tune_grid(_wf(model=linear_reg(penalty=tune())), folds,
              grid=grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=3))
    assert _plots(store, store.run("tune_grid: linear_reg")) == ["parallel_coordinates.html",
                                                                 "parallel_coordinates.png",
                                                                 "parameter_sensitivity.png"]


def test_workflowset_parent_plots(store, data, split):
    tidymlflow.autolog()
    from py_parsnip import linear_reg
    from py_rsample import vfold_cv
    from py_workflowsets import WorkflowSet

    ws = WorkflowSet.from_cross(["y ~ x1", "y ~ x1 + x2"], [linear_reg()])
    ws.fit_resamples(vfold_cv(split[0], v=3, seed=2))
    parent = store.run("WorkflowSet.fit_resamples (2 workflows)")
    assert _plots(store, parent) == ["cv_stability.png", "workflow_comparison.png"]
    ws.fit_nested(data.drop(columns=["date"]), group_col="store")
    nested = store.run("WorkflowSet.fit_nested (2 workflows)")
    assert _plots(store, nested) == ["coefficient_variation.png", "per_group_heatmap.png",
                                     "workflow_comparison.png"]


def test_log_plots_selects_by_name_and_false_draws_none(store, split):
    train, _ = split
    tidymlflow.autolog(log_plots={"forecast"})
    _wf().fit(train)
    tidymlflow.autolog(log_plots=False)
    _wf("y ~ x1").fit(train)
    runs = {r.data.params["formula"]: r for r in store.runs()}
    assert _plots(store, runs["y ~ x1 + x2"]) == ["forecast.html", "forecast.png"]
    assert _plots(store, runs["y ~ x1"]) == []
    with pytest.raises(ValueError, match="residual_diagnostics"):
        tidymlflow.autolog(log_plots={"no_such_plot"})


def test_a_failing_plot_is_one_warning_and_the_rest_is_logged(store, split, monkeypatch):
    from tidymlflow.plots import static

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(static, "residual_diagnostics", broken)
    monkeypatch.setenv("TIDYMLFLOW_STRICT", "0")
    tidymlflow.autolog(writer="inline")  # the broken plot is in this process
    with pytest.warns(TidyMLflowWarning, match="residual_diagnostics.*drawing failed"):
        _wf().fit(split[0])
    (run,) = store.runs()
    assert _plots(store, run) == ["forecast.html", "forecast.png"]
    assert "train_rmse" in run.data.metrics
    assert len(store.client.list_artifacts(run.info.run_id, "tidymodels")) == 6  # parquet + csv twins

    monkeypatch.setenv("TIDYMLFLOW_STRICT", "1")
    with pytest.raises(TidyMLflowError, match="drawing failed"):
        _wf().fit(split[0])
