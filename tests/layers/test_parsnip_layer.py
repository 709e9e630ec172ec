"""The parsnip layer: ModelSpec.fit / fit_nested / fit_global and the fits' evaluate."""

from __future__ import annotations

from helpers import assert_metrics_match, assert_tables_match

import tidymlflow


def test_modelspec_fit_and_evaluate(store, split):
    from py_parsnip import linear_reg

    train, test = split
    tidymlflow.autolog()
    fit = linear_reg(penalty=0.1, mixture=0.5).fit(train, "y ~ x1 + x2")
    assert fit.evaluate(test) is fit
    runs = store.runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "linear_reg: y ~ x1 + x2"
    assert run.data.tags["tidymlflow.layer"] == "parsnip"
    assert run.data.tags["tidymlflow.call"] == "ModelSpec.fit"
    assert run.data.params["args.penalty"] == "0.1" and run.data.params["args.mixture"] == "0.5"
    assert run.data.params["formula"] == "y ~ x1 + x2"
    frames = fit.extract_outputs()
    assert_metrics_match(run, frames[2])
    assert_tables_match(store, run, frames)


def test_time_series_model_logs_empty_split_metrics_and_text_rows(store, split):
    from py_parsnip import arima_reg

    train, test = split
    tidymlflow.autolog()
    fit = arima_reg(non_seasonal_ar=1).fit(train, "y ~ date")
    fit.evaluate(test)
    run = store.runs()[0]
    stats = fit.extract_outputs()[2]
    assert_metrics_match(run, stats)
    assert "aic" in run.data.metrics  # a numeric row with an empty split keeps its name
    order = stats.loc[stats["metric"] == "order", "value"].iloc[0]
    assert run.data.tags["stats.order"] == str(order)
    assert run.data.params["args.non_seasonal_ar"] == "1"
    assert "date" in store.table(run, "tidymodels/outputs.parquet").columns
    conf = fit.predict(test, type="conf_int")
    assert {".pred_lower", ".pred_upper"} <= set(conf.columns)


def test_tune_placeholder_param_is_tune(store, split):
    tidymlflow.autolog()
    from py_parsnip import rand_forest
    from py_tune import tune

    spec = rand_forest(trees=tune(), min_n=5).set_mode("regression")
    from tidymlflow._read.common import model_params

    params = model_params(spec)
    assert params["args.trees"] == "tune()" and params["args.min_n"] == "5"
    rf = rand_forest(trees=20).set_mode("regression").fit(split[0], "y ~ x1 + x2")
    run = store.runs()[0]
    assert run.data.params["args.trees"] == "20"
    assert_metrics_match(run, rf.extract_outputs()[2])


def test_modelspec_fit_nested_and_evaluate(store, data):
    from py_parsnip import linear_reg

    tidymlflow.autolog()
    flat = data.drop(columns=["date"])
    train, test = flat.groupby("store").head(30), flat.groupby("store").tail(10)
    nested = linear_reg().fit_nested(train, "y ~ x1 + x2", group_col="store")
    nested.evaluate(test)
    runs = store.runs()
    assert len(runs) == 1 + 4
    parent = store.run("linear_reg by store")
    assert parent.data.tags["tidymlflow.call"] == "ModelSpec.fit_nested"
    stats = nested.extract_outputs()[2]
    for child in store.children(parent):
        assert_metrics_match(child, stats[stats["store"] == child.data.tags["group"]])
    assert "test_rmse_mean" in parent.data.metrics and "train_rmse_std" in parent.data.metrics


def test_modelspec_fit_global(store, data):
    from py_parsnip import linear_reg

    tidymlflow.autolog()
    fit = linear_reg().fit_global(data.drop(columns=["date"]), "y ~ x1 + x2", group_col="store")
    run = store.runs()[0]
    assert len(store.runs()) == 1
    assert run.data.tags["tidymlflow.call"] == "ModelSpec.fit_global"
    assert run.data.params["group_col"] == "store"
    assert_metrics_match(run, fit.extract_outputs()[2])


def test_parsnip_off_keeps_workflow_logging(store, split):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    tidymlflow.autolog(parsnip=False)
    linear_reg().fit(split[0], "y ~ x1")
    assert store.runs() == []
    workflow().add_formula("y ~ x1").add_model(linear_reg()).fit(split[0])
    assert [r.data.tags["tidymlflow.call"] for r in store.runs()] == ["Workflow.fit"]
