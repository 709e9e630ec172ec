"""The tune layer: fit_resamples runs and tuning parents with a child per candidate, read back
from a real sqlite store and compared with the library's own results."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from helpers import noted, run_tree, top_runs

import tidymlflow
from tidymlflow._read import resamples as tunelog

PARAM_INFO = {"penalty": {"range": (0.001, 1.0), "trans": "log"}, "mixture": {"range": (0.0, 1.0)}}


def _wf(formula="y ~ x1 + x2", **args):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula(formula).add_model(linear_reg(**args))


def _tuned():
    from py_tune import tune

    return _wf(penalty=tune(), mixture=tune())


def _folds(train, v=5, seed=3):
    from py_rsample import vfold_cv

    return vfold_cv(train, v=v, seed=seed)






def _summary(results):
    return results.collect_metrics().groupby([".config", "metric"])["value"].agg(["mean", "std", "count"])


def test_tune_grid_parent_and_one_child_per_candidate(store, split, caplog):
    tidymlflow.autolog(max_tuning_runs=10)
    from py_tune import grid_regular, tune_grid

    train, _ = split
    grid = grid_regular(PARAM_INFO, levels=4)
    with noted(caplog, "6 omitted"):
        results = tune_grid(_tuned(), _folds(train), grid=grid)

    parent = store.run("tune_grid: linear_reg")
    children = store.children(parent)
    assert len(store.runs()) == 1 + len(children) == 11
    params = parent.data.params
    assert params["tune.method"] == "grid" and params["tune.n_candidates"] == "16"
    assert params["tune.params"] == "penalty,mixture" and params["tune.metric"] == "rmse"
    assert params["args.penalty"] == "tune()" and params["formula"] == "y ~ x1 + x2"
    assert (params["resamples.type"], params["resamples.n"], params["resamples.v"]) == ("vfold_cv", "5", "5")
    best = results.select_best("rmse", maximize=False)
    assert float(params["best.penalty"]) == pytest.approx(best["penalty"])
    assert float(params["best.mixture"]) == pytest.approx(best["mixture"])

    summary = _summary(results)
    rmse = summary.xs("rmse", level="metric")["mean"].sort_values(kind="stable")
    assert parent.data.metrics["best_cv_rmse_mean"] == pytest.approx(rmse.iloc[0])
    ranked = {c.data.tags["tune.config"]: int(c.data.tags["rank"]) for c in children}
    assert sorted(ranked, key=ranked.get) == list(rmse.index[:10])
    metrics = results.collect_metrics()
    for child in children:
        config = child.data.tags["tune.config"]
        row = grid[grid[".config"] == config].iloc[0]
        rank = child.data.tags["rank"]
        assert child.info.run_name == f"#{rank} penalty={row['penalty']:.4g} mixture={row['mixture']:.4g}"
        assert float(child.data.params["args.penalty"]) == pytest.approx(row["penalty"])
        for metric in ("rmse", "mae", "r_squared"):
            stats = summary.loc[(config, metric)]
            got = child.data.metrics
            assert got[f"cv_{metric}_mean"] == pytest.approx(stats["mean"])
            assert got[f"cv_{metric}_std"] == pytest.approx(stats["std"])
            assert child.data.params[f"cv_{metric}_n"] == str(int(stats["count"]))
        folds = metrics[(metrics[".config"] == config) & (metrics["metric"] == "rmse")]
        series = sorted(store.history(child, "cv_rmse_fold"), key=lambda m: m.step)
        assert [m.step for m in series] == [0, 1, 2, 3, 4]
        assert [m.value for m in series] == pytest.approx(folds["value"].tolist())

    table = store.table(parent, "tune/summary.parquet")
    assert len(table) == 16 and table["rank"].tolist() == list(range(1, 17))
    assert table[".config"].tolist() == list(rmse.index)
    pd.testing.assert_frame_equal(store.table(parent, "tune/metrics.parquet"),
                                  metrics.reset_index(drop=True), check_dtype=False)
    assert store.table(parent, "tune/grid.parquet")[".config"].tolist() == grid[".config"].tolist()
    assert len(store.table(parent, "resamples/folds.parquet")) == 5


def test_max_tuning_runs_none_logs_every_candidate(store, split):
    tidymlflow.autolog(max_tuning_runs=None)
    from py_tune import grid_regular, tune_grid

    train, _ = split
    tune_grid(_tuned(), _folds(train, v=3), grid=grid_regular(PARAM_INFO, levels=3))
    assert len(store.children(store.run("tune_grid: linear_reg"))) == 9


def _resample_and_tune(train, n_jobs):
    from py_tune import fit_resamples, grid_regular, tune_grid

    folds = _folds(train, v=4, seed=11)
    fit_resamples(_wf(), folds, n_jobs=n_jobs)
    tune_grid(_tuned(), folds, grid=grid_regular(PARAM_INFO, levels=2), n_jobs=n_jobs)


def test_parallel_calls_log_the_same_tree_and_values(store, split, tracking_uri, tmp_path):
    tidymlflow.autolog()
    import mlflow
    from conftest import Store

    train, _ = split
    _resample_and_tune(train, n_jobs=None)
    sequential = run_tree(store)

    exp = store.client.create_experiment("parallel-" + tmp_path.name, str(tmp_path / "par"))
    mlflow.set_experiment(experiment_id=exp)
    _resample_and_tune(train, n_jobs=2)
    parallel = run_tree(Store(store.client, exp, tmp_path))

    assert set(parallel) == set(sequential) and len(sequential) == 1 + 1 + 4
    for name, (parent, metrics, rank) in sequential.items():
        assert parallel[name][0] == parent and parallel[name][2] == rank
        assert parallel[name][1] == pytest.approx(metrics)


def test_fit_resamples_run(store, data):
    tidymlflow.autolog()
    from py_rsample import time_series_cv
    from py_tune import fit_resamples

    flat = data[data["store"] == "A"].drop(columns=["store"]).reset_index(drop=True)
    folds = time_series_cv(flat, date_column="date", initial=20, assess=5, skip=5)
    results = fit_resamples(_wf(), folds, control={"save_pred": True})

    (run,) = store.runs()
    assert run.info.run_name == "fit_resamples: linear_reg"
    assert run.data.tags["tidymlflow.call"] == "fit_resamples"
    params = run.data.params
    assert params["resamples.type"] == "time_series_cv"
    assert params["resamples.n"] == str(len(folds))
    assert params["resamples.initial"] == str(folds.initial)
    assert params["resamples.assess"] == str(folds.assess)
    assert params["resamples.skip"] == str(folds.skip) and params["resamples.date_column"] == "date"
    assert params["model_type"] == "linear_reg" and params["preprocessor"] == "formula"
    metrics = results.collect_metrics()
    for metric, part in metrics.groupby("metric"):
        assert run.data.metrics[f"cv_{metric}_mean"] == pytest.approx(part["value"].mean())
        assert run.data.params[f"cv_{metric}_n"] == str(len(part))
    folds_table = store.table(run, "resamples/folds.parquet")
    assert folds_table["fold"].tolist() == [s.split.id for s in folds]
    first = folds.splits[0].split
    assert folds_table.loc[0, "train_end"] == first.in_id[-1]
    assert folds_table.loc[0, "test_start_date"] == flat["date"].iloc[first.out_id[0]]
    assert len(store.table(run, "resamples/predictions.parquet")) == len(results.collect_predictions())
    pd.testing.assert_frame_equal(store.table(run, "resamples/metrics.parquet"),
                                  metrics.reset_index(drop=True), check_dtype=False)


def test_run_count_depends_on_folds_only_with_log_fold_runs(store, split):
    tidymlflow.autolog()
    from py_tune import fit_resamples, grid_regular, tune_grid

    train, _ = split
    grid = grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=2)
    for v in (3, 6):
        tune_grid(_wf(penalty=_tune()), _folds(train, v=v), grid=grid)
        fit_resamples(_wf(), _folds(train, v=v))
    assert len(store.runs()) == 2 * (3 + 1)

    tidymlflow.autolog(log_fold_runs=True)
    fit_resamples(_wf(), _folds(train, v=3))
    parent = [r for r in top_runs(store) if not store.children(r) == []]
    (resample_parent,) = [p for p in parent if p.data.tags["tidymlflow.call"] == "fit_resamples"]
    folds = sorted(store.children(resample_parent), key=lambda r: int(r.data.tags["fold.position"]))
    assert [f.info.run_name for f in folds] == ["Fold01", "Fold02", "Fold03"]
    assert folds[0].data.tags["fold"] == "Fold01" and "fold.test_start" in folds[0].data.tags
    assert all("cv_rmse_fold" in f.data.metrics for f in folds)

    before = len(store.runs())
    tune_grid(_wf(penalty=_tune()), _folds(train, v=3), grid=grid)  # 1 parent, 2 candidates, 3 folds each
    assert len(store.runs()) - before == 1 + 2 + 2 * 3
    parent = next(p for p in top_runs(store) if p.data.tags["tidymlflow.call"] == "tune_grid"
                  and store.children(p) and store.children(store.children(p)[0]))
    candidate = store.children(parent)[0]
    folds = store.children(candidate)
    assert sorted(f.info.run_name for f in folds) == ["Fold01", "Fold02", "Fold03"]
    metrics = {int(f.data.tags["fold.position"]): f.data.metrics["cv_rmse_fold"] for f in folds}
    series = {m.step: m.value for m in store.history(candidate, "cv_rmse_fold")}
    assert metrics == pytest.approx(series)


def _tune():
    from py_tune import tune

    return tune()


def test_tuners_make_one_parent(store, split):
    tidymlflow.autolog()
    from py_tune import control_race, grid_regular, tune_race_anova, tune_race_win_loss, tune_sim_anneal

    train, _ = split
    folds = _folds(train, v=5, seed=5)
    info = {"penalty": {"range": (0.001, 1.0)}, "mixture": {"range": (0.0, 1.0)}}
    from py_tune import control_sim_anneal

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's own convergence and racing notes
        anneal = tune_sim_anneal(_tuned(), folds, info, control=control_sim_anneal(max_iter=3))
        grid = grid_regular(PARAM_INFO, levels=2)
        race = tune_race_anova(_tuned(), folds, grid=grid, control=control_race(burn_in=3))
        tune_race_win_loss(_tuned(), folds, grid=grid, control=control_race(burn_in=3))

    parents = {p.info.run_name: p for p in top_runs(store)}
    assert set(parents) == {"tune_sim_anneal: linear_reg", "tune_race_anova: linear_reg",
                            "tune_race_win_loss: linear_reg"}
    assert parents["tune_sim_anneal: linear_reg"].data.params["tune.method"] == "sim_anneal"
    sim_children = store.children(parents["tune_sim_anneal: linear_reg"])
    assert len(sim_children) == anneal.metrics[".config"].nunique()

    race_parent = parents["tune_race_anova: linear_reg"]
    assert race_parent.data.params["tune.method"] == "race_anova"
    metrics = race.collect_metrics()
    for child in store.children(race_parent):
        rows = metrics[(metrics[".config"] == child.data.tags["tune.config"]) & (metrics["metric"] == "rmse")]
        assert child.data.params["cv_rmse_n"] == str(len(rows))  # labels repeat, rows all count
        series = sorted(store.history(child, "cv_rmse_fold"), key=lambda m: m.step)
        assert [m.step for m in series] == list(range(len(rows)))
        assert [m.value for m in series] == pytest.approx(rows["value"].tolist())


def test_recipe_workflow_tune_grid_without_metric_rows(store, split, caplog):
    tidymlflow.autolog()
    from py_parsnip import linear_reg
    from py_recipes import all_numeric_predictors, recipe
    from py_tune import grid_regular, tune, tune_grid
    from py_workflows import workflow

    train, _ = split
    wf = workflow().add_recipe(recipe().step_normalize(all_numeric_predictors())).add_model(
        linear_reg(penalty=tune()))
    with noted(caplog, "no metric rows"):
        results = tune_grid(wf, _folds(train.drop(columns=["date"]), v=3),
                            grid=grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=2))
    assert results.collect_metrics().empty
    (parent,) = store.runs()
    assert parent.data.params["recipe.steps"] == "step_normalize"
    assert parent.data.params["tune.n_candidates"] == "2"
    assert len(store.table(parent, "tune/grid.parquet")) == 2


def test_tune_false_logs_nothing_and_inner_fits_stay_silent(store, split):
    tidymlflow.autolog(tune=False)
    from py_tune import fit_resamples, grid_regular, tune_grid

    train, _ = split
    fit_resamples(_wf(), _folds(train, v=3))
    tune_grid(_tuned(), _folds(train, v=3), grid=grid_regular(PARAM_INFO, levels=2))
    assert store.runs() == []


def test_positions_and_summary_with_failed_folds_and_repeated_labels():
    raw = pd.DataFrame({
        "metric": ["rmse"] * 5 + ["rsq"] * 2,
        "value": [1.0, 3.0, 2.0, 4.0, 6.0, 0.5, 0.7],
        ".resample": ["Fold01", "Fold03", "Fold01", "Fold02", "Fold01", "Fold01", "Fold03"],
        ".config": ["c1", "c1", "c2", "c2", "c2", "c1", "c1"],
    })
    # c1 lost Fold02 (failed): positions come from the labels
    ok = tunelog.with_positions(raw[raw[".config"] == "c1"])
    assert ok["position"].tolist() == [0, 2, 0, 2]
    # c2 repeats Fold01 (racing): positions are the evaluation order
    assert tunelog.with_positions(raw)["position"].tolist() == [0, 1, 0, 1, 2, 0, 1]
    summary = tunelog.summarize(tunelog.with_positions(raw), None, "rmse")
    assert summary[".config"].tolist() == ["c1", "c2"]
    assert summary["rmse_n"].tolist() == [2, 3] and summary["rmse_mean"].tolist() == [2.0, 4.0]
    assert summary["rank"].tolist() == [1, 2]
    assert tunelog.summarize(tunelog.with_positions(raw), None, "rsq")["rank"].tolist() == [1, pd.NA]
