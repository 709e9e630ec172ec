"""The workflows layer: Workflow.fit / fit_nested / fit_global and evaluate, read back from MLflow."""

from __future__ import annotations

import json

import pytest
from helpers import assert_metrics_match, assert_tables_match, numeric_stats

import tidymlflow


def _wf(formula="y ~ x1 + x2"):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula(formula).add_model(linear_reg())


def test_workflow_fit_logs_one_run_per_spec(store, split):
    train, _ = split
    tidymlflow.autolog()
    fit = _wf().fit(train)

    runs = store.runs()
    assert [r.info.run_name for r in runs] == ["linear_reg: y ~ x1 + x2"]
    run = runs[0]
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlflow.autologging"] == "tidymlflow"
    assert tags["tidymlflow.layer"] == "workflows"
    assert tags["tidymlflow.call"] == "Workflow.fit"
    assert tags["tidymlflow.version"] == tidymlflow.__version__
    assert tags["py_tidymodels.version"]
    assert (tags["model_type"], tags["engine"], tags["preprocessor"]) == ("linear_reg", "sklearn", "formula")
    assert tags["stats.formula"] == "y ~ x1 + x2"
    params = run.data.params
    assert params["model_type"] == "linear_reg" and params["engine"] == "sklearn"
    assert params["mode"] == "regression" and params["preprocessor"] == "formula"
    assert params["formula"] == fit.formula == "y ~ x1 + x2"
    assert params["args.intercept"] == "True"
    assert run.data.metrics["fit_duration_s"] > 0
    frames = fit.extract_outputs()
    assert_metrics_match(run, frames[2])
    assert_tables_match(store, run, frames)
    inputs = run.inputs.dataset_inputs
    assert [(d.dataset.name, d.tags[0].value) for d in inputs] == [("train", "train")]
    # its source is this script, as mlflow.data.from_pandas gives it here (not the writer's)
    source = json.loads(inputs[0].dataset.source)["tags"]
    for key in ("mlflow.source.name", "mlflow.user"):
        assert source[key] == tags[key], key


def _plot_files(store, run) -> list[str]:
    return sorted(a.path for a in store.client.list_artifacts(run.info.run_id, "plots"))


def test_a_model_fitted_in_a_loop_has_its_plots_for_its_first_fits_then_every_nth(store, split):
    """plot_every_n_fits: the first 10 fits of a model since autolog() and then every n-th have
    their plots (the evaluation's forecast included); the runs between keep their params, metrics
    and tables, and say why they have no plots. Another model counts on its own; 1 draws all."""
    train, test = split
    tidymlflow.autolog(plot_every_n_fits=3)
    for _ in range(14):
        _wf().fit(train).evaluate(test)
    _wf("y ~ x1").fit(train)
    tidymlflow.autolog(plot_every_n_fits=1)
    _wf().fit(train)

    runs = store.runs()
    assert len(runs) == 16
    skipped = [r for r in runs if "tidymlflow.plots_skipped" in r.data.tags]
    assert sorted(r.data.tags["tidymlflow.plots_skipped"].split(" of ")[0] for r in skipped) == [
        "fit 11", "fit 13", "fit 14"]  # 1-10 drawn, then 12 (every 3rd)
    assert "plot_every_n_fits=3" in skipped[0].data.tags["tidymlflow.plots_skipped"]
    drawn = [r for r in runs if r not in skipped]
    assert all(r.info.run_name == "linear_reg: y ~ x1 + x2" for r in skipped)
    for run in drawn:
        assert "plots/residual_diagnostics.png" in _plot_files(store, run), run.info.run_name
    evaluated = [r for r in drawn if "test_rmse" in r.data.metrics]
    assert len(evaluated) == 11 and all("plots/forecast.html" in _plot_files(store, r) for r in evaluated)
    for run in skipped:
        assert _plot_files(store, run) == []
        assert set(run.data.metrics) == set(evaluated[0].data.metrics)
        assert run.data.params == evaluated[0].data.params
        files = {a.path for a in store.client.list_artifacts(run.info.run_id, "tidymodels")}
        assert {"tidymodels/outputs.parquet", "tidymodels/stats.parquet"} <= files


def test_evaluate_adds_test_metrics_to_the_ended_run(store, split):
    train, test = split
    tidymlflow.autolog()
    fit = _wf().fit(train)
    run_id = store.runs()[0].info.run_id
    assert fit.evaluate(test) is fit

    runs = store.runs()
    assert len(runs) == 1 and runs[0].info.run_id == run_id
    run = runs[0]
    frames = fit.extract_outputs()
    assert "test" in set(frames[0]["split"])
    assert_metrics_match(run, frames[2])  # train and test rows
    assert_tables_match(store, run, frames)

    fit.evaluate(test.iloc[:20])  # a second evaluate updates the values and the tables
    run = store.runs()[0]
    frames2 = fit.extract_outputs()
    assert_metrics_match(run, frames2[2], splits={"test"})
    assert run.data.metrics["test_rmse"] != pytest.approx(numeric_stats(frames[2])["test_rmse"])
    assert [m.step for m in store.history(run, "test_rmse")] == [0, 1]
    assert_tables_match(store, run, frames2)


def test_recipe_workflow_fit_is_one_run(store, split):
    from py_parsnip import linear_reg
    from py_recipes import all_numeric_predictors, recipe
    from py_workflows import workflow

    train, test = split
    tidymlflow.autolog()
    rec = recipe().step_impute_mean(all_numeric_predictors()).step_normalize(all_numeric_predictors())
    fit = workflow().add_recipe(rec).add_model(linear_reg()).fit(train)
    fit.evaluate(test)
    runs = store.runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["preprocessor"] == "recipe"
    assert run.data.params["formula"] == fit.formula
    assert_metrics_match(run, fit.extract_outputs()[2])


def test_model_name_is_the_run_name(store, split):
    tidymlflow.autolog()
    _wf().add_model_name("baseline ∑/1").fit(split[0])
    assert [r.info.run_name for r in store.runs()] == ["baseline ∑/1: y ~ x1 + x2"]


def test_fit_nested_makes_parent_and_child_per_group(store, data):
    tidymlflow.autolog()
    nested = _wf().fit_nested(data.drop(columns=["date"]), "store", per_group_prep=False)
    runs = store.runs()
    assert len(runs) == 1 + 4
    parent = store.run("linear_reg by store")
    assert parent.data.params["group_col"] == "store" and parent.data.params["n_groups"] == "4"
    assert parent.data.tags["tidymlflow.call"] == "Workflow.fit_nested"
    children = store.children(parent)
    assert sorted(c.info.run_name for c in children) == ["store=A", "store=B", "store=C", "store=D"]
    outputs, coefs, stats = nested.extract_outputs()
    per_group = {}
    for child in children:
        group = child.data.tags["group"]
        assert child.data.tags["group_col"] == "store"
        group_stats = stats[stats["store"] == group]
        assert_metrics_match(child, group_stats)
        per_group[group] = numeric_stats(group_stats)["train_rmse"]
    import numpy as np

    values = np.array(list(per_group.values()))
    assert parent.data.metrics["train_rmse_mean"] == pytest.approx(values.mean())
    assert parent.data.metrics["train_rmse_std"] == pytest.approx(values.std(ddof=1))
    assert_tables_match(store, parent, (outputs, coefs, stats))


def test_nested_evaluate_logs_into_parent_and_children(store, data):
    tidymlflow.autolog()
    flat = data.drop(columns=["date"])
    train = flat.groupby("store").head(30)
    test = flat.groupby("store").tail(10)
    nested = _wf().fit_nested(train, "store", per_group_prep=False)
    nested.evaluate(test)
    assert len(store.runs()) == 5
    parent = store.run("linear_reg by store")
    stats = nested.extract_outputs()[2]
    for child in store.children(parent):
        assert_metrics_match(child, stats[stats["store"] == child.data.tags["group"]], splits={"test"})
    assert "test_rmse_mean" in parent.data.metrics
    assert set(store.table(parent, "tidymodels/outputs.parquet")["split"]) == {"train", "test"}
    # a group's own fit evaluates into its child run
    group_fit = nested.group_fits["A"]
    group_fit.evaluate(test[test["store"] == "A"].drop(columns=["store"]))
    assert len(store.runs()) == 5


def test_recipe_fit_nested_is_one_run_per_group(store, data):
    from py_parsnip import linear_reg
    from py_recipes import all_numeric_predictors, recipe
    from py_workflows import workflow

    tidymlflow.autolog()
    rec = recipe().step_normalize(all_numeric_predictors())
    wf = workflow().add_recipe(rec).add_model(linear_reg())
    wf.fit_nested(data.drop(columns=["date"]), "store", per_group_prep=True, min_group_size=10)
    assert len(store.runs()) == 5
    parent = store.run("linear_reg by store")
    assert parent.data.params["preprocessor"] == "recipe"


def test_fit_global_logs_one_run_with_group_col(store, data):
    tidymlflow.autolog()
    flat = data.drop(columns=["date"])
    fit = _wf().fit_global(flat, "store")
    runs = store.runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["tidymlflow.call"] == "Workflow.fit_global"
    assert run.data.params["group_col"] == "store" and run.data.tags["group_col"] == "store"
    assert "store" in run.data.params["formula"]
    assert_metrics_match(run, fit.extract_outputs()[2])


def test_resampling_and_tuning_make_no_runs_from_inner_fits(store, split):
    tidymlflow.autolog()
    from py_parsnip import linear_reg
    from py_rsample import vfold_cv
    from py_tune import fit_resamples, grid_regular, tune, tune_grid
    from py_workflows import workflow

    train, _ = split
    folds = vfold_cv(train, v=3, seed=1)
    res = fit_resamples(_wf(), folds)
    assert len(res.collect_metrics()) > 0
    wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune()))
    grid = grid_regular({"penalty": {"range": (0.001, 1.0), "trans": "log"}}, levels=2)
    tuned = tune_grid(wf, folds, grid=grid)
    assert len(tuned.collect_metrics()) > 0
    # only the tune layer's own runs: one for fit_resamples, a parent + 2 candidates for tune_grid
    assert sorted(r.data.tags["tidymlflow.layer"] for r in store.runs()) == ["tune"] * 4


def test_workflows_off_silences_inner_modelspec_fit(store, split):
    from py_parsnip import linear_reg

    train, _ = split
    tidymlflow.autolog(workflows=False)
    _wf().fit(train)
    assert store.runs() == []
    linear_reg().fit(train, "y ~ x1 + x2")  # called directly: still logged
    assert [r.data.tags["tidymlflow.call"] for r in store.runs()] == ["ModelSpec.fit"]


def test_fits_inside_parallel_resampling_and_workflowsets_make_no_runs(store, split):
    tidymlflow.autolog(tune=False, workflowsets=False)
    from py_parsnip import rand_forest
    from py_rsample import vfold_cv
    from py_tune import fit_resamples
    from py_workflowsets import WorkflowSet

    train, _ = split
    folds = vfold_cv(train, v=2, seed=4)
    sequential = fit_resamples(_wf(), folds).collect_metrics()
    parallel = fit_resamples(_wf(), folds, n_jobs=2).collect_metrics()
    assert parallel["value"].tolist() == pytest.approx(sequential["value"].tolist())
    ws = WorkflowSet.from_cross(["y ~ x1", "y ~ x1 + x2"],
                                [_wf().spec, rand_forest(trees=5).set_mode("regression")])
    ranked = ws.fit_resamples(folds).rank_results("rmse")
    assert len(ranked) == 4
    assert store.runs() == []


def test_group_runs_are_best_first_with_rank_and_ranked_again_on_test(store, data):
    """One ranking per parent: group runs carry ``rank`` by train rmse (the start-time order and
    the parent's table agree), and after evaluate() the ranks and the table follow test rmse."""
    import warnings

    from py_parsnip import linear_reg
    from py_workflows import workflow

    flat = data.drop(columns=["date"])
    train = flat.groupby("store").head(30).reset_index(drop=True)
    test = flat.groupby("store").tail(10).reset_index(drop=True)
    tidymlflow.autolog(log_plots=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per_group_prep falls back for formulas
        wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg())
        fit = wf.fit_nested(train, group_col="store")
    (parent,) = [r for r in store.runs() if "mlflow.parentRunId" not in r.data.tags]
    newest_first = store.client.search_runs(
        [store.experiment_id], order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    train_rmse = [r.data.metrics["train_rmse"] for r in newest_first]
    assert train_rmse == sorted(train_rmse) and len(train_rmse) == 4
    assert [int(r.data.tags["rank"]) for r in newest_first] == [1, 2, 3, 4]
    note = parent.data.tags["mlflow.note.content"]
    table = [line.split(" | ")[0].strip("| ") for line in note.splitlines() if line.startswith("| ")][1:]
    assert table == [r.data.tags["group"] for r in newest_first]

    fit.evaluate(test)
    children = store.children(store.run(parent.info.run_name))
    by_rank = sorted(children, key=lambda r: int(r.data.tags["rank"]))
    test_rmse = [r.data.metrics["test_rmse"] for r in by_rank]
    assert test_rmse == sorted(test_rmse)
    note = store.run(parent.info.run_name).data.tags["mlflow.note.content"]
    assert "best first by test_rmse" in note
    table = [line.split(" | ")[0].strip("| ") for line in note.splitlines() if line.startswith("| ")][1:]
    assert table == [r.data.tags["group"] for r in by_rank]
