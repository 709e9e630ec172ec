"""The workflowsets layer: run trees per WorkflowSet call, read back from a real sqlite store and
compared with the library's own result methods."""

from __future__ import annotations

import json
import re

import mlflow
import pytest
from helpers import noted, run_tree, top_runs

import tidymlflow

FORMULAS = ["y ~ x1", "y ~ x1 + x2", "y ~ x2"]


def _models():
    from py_parsnip import linear_reg, rand_forest

    return [linear_reg(), linear_reg(penalty=0.1, mixture=0.5),
            rand_forest(trees=10).set_mode("regression")]


def _set(formulas=FORMULAS, models=None):
    from py_workflowsets import WorkflowSet

    return WorkflowSet.from_cross(formulas, models or _models())


def _folds(train, v=5):
    from py_rsample import vfold_cv

    return vfold_cv(train, v=v, seed=7)






def test_fit_resamples_parent_and_a_child_per_workflow(store, split):
    tidymlflow.autolog()
    train, _ = split
    ws = _set()
    results = ws.fit_resamples(_folds(train))

    (parent,) = top_runs(store)
    assert parent.info.run_name == "WorkflowSet.fit_resamples (9 workflows)"
    assert parent.data.tags["tidymlflow.call"] == "WorkflowSet.fit_resamples"
    children = store.children(parent)
    assert len(store.runs()) == 10 and len(children) == 9
    ranked = results.rank_results("rmse", n=9)
    params = parent.data.params
    assert params["n_workflows"] == "9" and params["best_wflow_id"] == ranked["wflow_id"].iloc[0]
    assert params["resamples.type"] == "vfold_cv" and params["resamples.n"] == "5"
    assert parent.data.tags["workflowset.n_failed"] == "0"
    summary = results.collect_metrics().set_index(["wflow_id", "metric"])
    assert parent.data.metrics["best_cv_rmse_mean"] == pytest.approx(
        summary.loc[(ranked["wflow_id"].iloc[0], "rmse"), "mean"])
    for child in children:
        wid = child.data.tags["wflow_id"]
        tags = child.data.tags
        assert child.info.run_name.startswith(f"#{tags['rank']} {wid}: {ws[wid].spec.model_type}")
        assert child.info.run_name.endswith(f": {ws[wid].preprocessor}")
        assert tags["model_type"] == ws[wid].spec.model_type
        assert tags["preprocessor"] == "formula"
        assert child.data.params["formula"] == ws[wid].preprocessor
        for metric in ("rmse", "mae", "r_squared"):
            row = summary.loc[(wid, metric)]
            assert child.data.metrics[f"cv_{metric}_mean"] == pytest.approx(row["mean"])
            assert child.data.metrics[f"cv_{metric}_std"] == pytest.approx(row["std"])
            assert child.data.params[f"cv_{metric}_n"] == str(row["n"])
        assert len(store.history(child, "cv_rmse_fold")) == 5
    ranks = {c.data.tags["wflow_id"]: int(c.data.tags["rank"]) for c in children}
    assert sorted(ranks, key=ranks.get) == ranked["wflow_id"].tolist()

    info = store.table(parent, "workflowset/info.parquet")
    assert info["wflow_id"].tolist() == ws.workflow_ids and set(info["status"]) == {"ok"}
    assert len(store.table(parent, "workflowset/metrics.parquet")) == 27
    assert store.table(parent, "workflowset/rank_results.parquet")["wflow_id"].tolist() == \
        ranked["wflow_id"].tolist()
    local = store.client.download_artifacts(parent.info.run_id, "workflowset/preprocessors.json",
                                            str(store.root / "pre"))
    with open(local, encoding="utf-8") as fh:
        pre = json.load(fh)
    assert pre["prep_2_rand_forest_3"] == {"preprocessor": "formula", "formula": "y ~ x1 + x2"}


def test_parallel_fit_resamples_logs_the_samerun_tree(store, split, tmp_path):
    from conftest import Store

    tidymlflow.autolog()
    train, _ = split
    folds = _folds(train, v=3)
    ws = _set(FORMULAS[:2], _models()[:2])
    ws.fit_resamples(folds)
    sequential = run_tree(store)
    exp = store.client.create_experiment("par-" + tmp_path.name, str(tmp_path / "par"))
    mlflow.set_experiment(experiment_id=exp)
    ws.fit_resamples(folds, n_jobs=2)
    parallel = run_tree(Store(store.client, exp, tmp_path))
    assert set(parallel) == set(sequential) and len(sequential) == 5
    for name, (parent, metrics, rank) in sequential.items():
        assert parallel[name][0] == parent and parallel[name][2] == rank
        assert parallel[name][1] == pytest.approx(metrics)


def test_workflow_map_and_workflowsets_false(store, split):
    tidymlflow.autolog()
    train, _ = split
    ws = _set(FORMULAS[:2], _models()[:1])
    ws.workflow_map("fit_resamples", resamples=_folds(train, v=3))
    (parent,) = top_runs(store)
    assert parent.info.run_name == "WorkflowSet.fit_resamples (2 workflows)"
    assert parent.data.tags["tidymlflow.call"] == "WorkflowSet.workflow_map"
    assert len(store.children(parent)) == 2 and len(store.runs()) == 3

    tidymlflow.autolog(workflowsets=False)
    ws.fit_resamples(_folds(train, v=3))
    assert len(store.runs()) == 3  # nothing more, not even the inner fit_resamples calls


def test_tune_grid_child_holds_the_best_candidate(store, split, caplog):
    tidymlflow.autolog(max_tuning_runs=2)
    from py_parsnip import linear_reg
    from py_tune import grid_regular, tune

    train, _ = split
    ws = _set(FORMULAS[:2], [linear_reg(penalty=tune())])
    grid = grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=3)
    with noted(caplog, "1 omitted"):
        results = ws.tune_grid(_folds(train, v=3), grid=grid)

    (parent,) = top_runs(store)
    assert parent.info.run_name == "WorkflowSet.tune_grid (2 workflows)"
    children = store.children(parent)
    assert len(children) == 2 and len(store.runs()) == 1 + 2 + 2 * 2
    best_means = {}
    for child in children:
        wid = child.data.tags["wflow_id"]
        tuned = next(r["tune_results"] for r in results.results if r["wflow_id"] == wid)
        best = tuned.select_best("rmse", maximize=False)
        assert float(child.data.params["best.penalty"]) == pytest.approx(best["penalty"])
        shown_value = re.search(r"linear_reg\(penalty=([^)]+)\): ", child.info.run_name)
        assert shown_value and float(shown_value.group(1)) == pytest.approx(best["penalty"], rel=1e-3)
        shown = tuned.show_best("rmse", n=1, maximize=False)
        assert child.data.metrics["cv_rmse_mean"] == pytest.approx(shown["mean"].iloc[0])
        best_means[wid] = shown["mean"].iloc[0]
        grand = store.children(child)
        assert sorted(int(g.data.tags["rank"]) for g in grand) == [1, 2]
    assert parent.data.params["best_wflow_id"] == min(best_means, key=best_means.get)


def test_fit_nested_tree_and_evaluate(store, data):
    tidymlflow.autolog()
    flat = data.drop(columns=["date"])
    train = flat.groupby("store").head(30).reset_index(drop=True)
    test = flat.groupby("store").tail(10).reset_index(drop=True)
    ws = _set(FORMULAS, _models()[:1])
    results = ws.fit_nested(train, group_col="store")

    (parent,) = top_runs(store)
    assert parent.info.run_name == "WorkflowSet.fit_nested (3 workflows)"
    children = store.children(parent)
    grandchildren = [g for c in children for g in store.children(c)]
    assert len(children) == 3 and len(grandchildren) == 12 and len(store.runs()) == 16
    assert parent.data.params["group_col"] == "store" and parent.data.params["n_groups"] == "4"
    for g in grandchildren:
        assert g.info.run_name == f"{g.data.tags['wflow_id']} / {g.data.tags['group']}"
        assert "train_rmse" in g.data.metrics and "test_rmse" not in g.data.metrics
    assert len(store.table(parent, "tidymodels/outputs.parquet")) == 3 * len(train)

    assert results.evaluate(test) is results
    assert len(store.runs()) == 16
    by_group = results.collect_metrics(by_group=True, split="test").set_index(["wflow_id", "group", "metric"])
    for g in [g for c in store.children(top_runs(store)[0]) for g in store.children(c)]:
        expected = by_group.loc[(g.data.tags["wflow_id"], g.data.tags["group"], "rmse"), "value"]
        assert g.data.metrics["test_rmse"] == pytest.approx(float(expected))
    parent = top_runs(store)[0]
    # one ranking at any moment: after evaluate, rank tags, names and the leaderboard follow test rmse
    ranked = results.rank_results("rmse", split="test", n=3)["wflow_id"].tolist()
    children = sorted(store.children(parent), key=lambda c: int(c.data.tags["rank"]))
    assert [c.data.tags["wflow_id"] for c in children] == ranked
    assert [c.info.run_name.split(" ")[0] for c in children] == ["#1", "#2", "#3"]
    assert all(c.info.run_name.startswith(f"#{c.data.tags['rank']} {c.data.tags['wflow_id']}: ")
               for c in children)
    note = parent.data.tags["mlflow.note.content"]
    assert "evaluated on the test split" in note and "ranked by test_rmse" in note
    assert [line.split(" | ")[1] for line in note.splitlines() if line.startswith("| ") and
            line.split(" | ")[0].strip("| ").isdigit()] == ranked
    best = results.extract_best_workflow("rmse", split="test", by_group=True)
    table = store.table(parent, "workflowset/best_by_group.parquet")
    assert table[["group", "wflow_id"]].values.tolist() == best[["group", "wflow_id"]].values.tolist()
    assert parent.data.tags["best_wflow_id"] == results.extract_best_workflow("rmse", split="test")
    assert "best_test_rmse_mean" in parent.data.metrics


def test_fit_global_child_per_workflow(store, data):
    tidymlflow.autolog()
    flat = data.drop(columns=["date"])
    ws = _set(FORMULAS[:2], _models()[:1])
    results = ws.fit_global(flat, group_col="store")
    (parent,) = top_runs(store)
    children = store.children(parent)
    assert len(children) == 2 and len(store.runs()) == 3
    for child in children:
        fit = next(r["fit"] for r in results.results if r["wflow_id"] == child.data.tags["wflow_id"])
        assert child.data.metrics["train_rmse"] == pytest.approx(
            tm_metric(fit.extract_outputs()[2], "train", "rmse"))
        assert child.data.params["group_col"] == "store"


def tm_metric(stats, split, metric):
    row = stats[(stats["split"] == split) & (stats["metric"] == metric)]
    return float(row["value"].iloc[0])


@pytest.mark.parametrize("call", ["fit_nested_resamples", "fit_global_resamples"])
def test_group_resamplesrun_tree(store, data, call):
    tidymlflow.autolog()
    from py_rsample import time_series_nested_cv

    cvs = time_series_nested_cv(data, group_col="store", date_column="date", initial=20, assess=5,
                                skip=5)
    ws = _set(FORMULAS[:2], _models()[:1])
    if call == "fit_nested_resamples":
        results = ws.fit_nested_resamples(cvs, group_col="store")
    else:
        results = ws.fit_global_resamples(data, cvs, group_col="store")
    (parent,) = top_runs(store)
    children = store.children(parent)
    grandchildren = [g for c in children for g in store.children(c)]
    assert parent.info.run_name == f"WorkflowSet.{call} (2 workflows)"
    assert len(children) == 2 and len(grandchildren) == 8 and len(store.runs()) == 11
    summary = results.collect_metrics(by_group=True).set_index(["wflow_id", "group", "metric"])
    for g in grandchildren:
        row = summary.loc[(g.data.tags["wflow_id"], g.data.tags["group"], "rmse")]
        assert g.data.metrics["cv_rmse_mean"] == pytest.approx(row["mean"])
        assert g.data.params["cv_rmse_n"] == str(row["n"])
    overall = results.collect_metrics(by_group=False).set_index(["wflow_id", "metric"])
    for c in children:
        wid = c.data.tags["wflow_id"]
        assert c.data.metrics["cv_rmse_mean"] == pytest.approx(overall.loc[(wid, "rmse"), "mean"])
    assert parent.data.params["best_wflow_id"] == results.rank_results("rmse")["wflow_id"].iloc[0]


def test_failed_workflow_is_recorded_not_raised(store, split, caplog):
    tidymlflow.autolog()
    train, _ = split
    ws = _set(["y ~ x1", "y ~ not_a_column"], _models()[:1])
    with noted(caplog, "1 workflow"):
        ws.fit_resamples(_folds(train, v=3))
    (parent,) = top_runs(store)
    assert parent.data.tags["workflowset.n_failed"] == "1"
    info = store.table(parent, "workflowset/info.parquet").set_index("wflow_id")
    assert info.loc["prep_2_linear_reg_1", "status"] == "failed"
    assert info.loc["prep_1_linear_reg_1", "status"] == "ok"
    assert [c.data.tags["wflow_id"] for c in store.children(parent)] == ["prep_1_linear_reg_1"]


def test_failed_nested_workflow_keeps_its_error(store, data, caplog):
    tidymlflow.autolog()
    ws = _set(["y ~ x1", "y ~ not_a_column"], _models()[:1])
    with noted(caplog, "1 workflow"):
        results = ws.fit_nested(data.drop(columns=["date"]), group_col="store")
    (parent,) = top_runs(store)
    assert parent.data.tags["workflowset.n_failed"] == "1"
    info = store.table(parent, "workflowset/info.parquet").set_index("wflow_id")
    assert info.loc["prep_2_linear_reg_1", "status"] == "failed"
    assert info.loc["prep_2_linear_reg_1", "error"] == next(
        r["error"] for r in results.results if r["wflow_id"] == "prep_2_linear_reg_1")
    assert [c.data.tags["wflow_id"] for c in store.children(parent)] == ["prep_1_linear_reg_1"]
    results.evaluate(data.drop(columns=["date"]))  # the failed workflow is skipped, nothing raises
    assert len(store.runs()) == 1 + 1 + 4


def test_siblings_that_differ_only_in_model_settings_say_so_in_their_names(store, split):
    from py_parsnip import linear_reg

    tidymlflow.autolog(log_plots=False)
    ws = _set(["y ~ x1 + x2"], [linear_reg(), linear_reg(penalty=0.1, mixture=1.0)])
    ws.fit_resamples(_folds(split[0]))
    (parent,) = top_runs(store)
    names = sorted(c.info.run_name for c in store.children(parent))
    assert len(set(n.split(" ", 1)[1] for n in names)) == 2, names
    assert any("penalty=0.1" in n and "mixture=1.0" in n for n in names), names
