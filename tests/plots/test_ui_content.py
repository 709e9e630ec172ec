"""What makes runs read well in the MLflow UI: the experiment opens on its runs, children are
listed best first, names say what a run is, parents describe the comparison, every table has a
CSV twin the UI previews, and html plots have a png twin and an offline message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tidymlflow
from tidymlflow._jobs.stage import CSV_ROWS


def _folds(train, v=3):
    from py_rsample import vfold_cv

    return vfold_cv(train, v=v, seed=3)


def test_experiment_opens_in_the_model_training_view(store, split):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    tidymlflow.autolog(log_plots=False)
    workflow().add_formula("y ~ x1").add_model(linear_reg()).fit(split[0])
    assert store.client.get_experiment(store.experiment_id).tags["mlflow.experimentKind"] == \
        "custom_model_development"


def test_a_kind_the_user_set_is_kept(store, split):
    from py_parsnip import linear_reg

    store.client.set_experiment_tag(store.experiment_id, "mlflow.experimentKind", "genai_development")
    tidymlflow.autolog(log_plots=False)
    linear_reg().fit(split[0], "y ~ x1")
    assert store.client.get_experiment(store.experiment_id).tags["mlflow.experimentKind"] == \
        "genai_development"


def test_children_are_listed_best_first_under_the_default_sort(store, split):
    from py_parsnip import linear_reg
    from py_workflowsets import WorkflowSet

    tidymlflow.autolog(log_plots=False)
    ws = WorkflowSet.from_cross(["y ~ x1", "y ~ x1 + x2", "y ~ x2"], [linear_reg()])
    ws.fit_resamples(_folds(split[0]))
    (parent,) = [r for r in store.runs() if "mlflow.parentRunId" not in r.data.tags]
    newest_first = store.client.search_runs(
        [store.experiment_id], order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert [int(r.data.tags["rank"]) for r in newest_first] == [1, 2, 3]
    assert all(r.info.end_time == r.info.start_time for r in newest_first)  # no write-time duration
    first = newest_first[0]
    assert first.info.run_name.startswith(f"#1 {first.data.tags['wflow_id']}: linear_reg: y ~ ")
    note = parent.data.tags["mlflow.note.content"]
    assert "ranked by rmse (lower is better)" in note and "| rank | wflow_id |" in note
    best = parent.data.params["best_wflow_id"]
    assert f"| 1 | {best} |" in note


def test_tuning_parent_describes_the_leaderboard_and_best_values(store, split):
    tidymlflow.autolog(log_plots=False)  # first: names bound earlier in a function stay unpatched
    from py_parsnip import linear_reg
    from py_tune import grid_regular, tune, tune_grid
    from py_workflows import workflow

    wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune()))
    tune_grid(wf, _folds(split[0]), grid=grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=3))
    parent = store.run("tune_grid: linear_reg")
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("**tune_grid** of `linear_reg: y ~ x1 + x2`: 3 candidates over 3 resamples")
    assert f"Best: penalty={float(parent.data.params['best.penalty']):.4g}" in note
    assert note.count("\n| ") == 1 + 3  # header and one row per candidate
    children = store.children(parent)
    assert sorted(c.info.run_name.split(" ")[0] for c in children) == ["#1", "#2", "#3"]


def test_names_say_what_a_run_is(store, split, data):
    from py_parsnip import linear_reg
    from py_recipes import recipe
    from py_workflows import workflow

    tidymlflow.autolog(log_plots=False)
    workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(split[0])
    rec = recipe().step_normalize(["x1", "x2"]).step_pca(["x1", "x2"], num_comp=2)
    workflow().add_recipe(rec).add_model(linear_reg()).fit(split[0].drop(columns=["date"]))
    recipe().step_normalize(["x1"]).prep(split[0])
    workflow().add_formula("y ~ x1").add_model(linear_reg()).add_model_name("x" * 200).fit(split[0])
    names = sorted(r.info.run_name for r in store.runs())
    assert names[:3] == ["linear_reg: recipe: normalize > pca", "linear_reg: y ~ x1 + x2",
                         "recipe: normalize"]
    assert len(names[3]) == 90 and names[3].endswith("…")


def test_every_table_has_a_csv_twin_capped_for_large_tables(store):
    from py_parsnip import linear_reg

    rng = np.random.default_rng(0)
    big = pd.DataFrame({"x1": rng.normal(size=CSV_ROWS + 5)})
    big["y"] = 2 * big["x1"] + rng.normal(size=len(big))
    tidymlflow.autolog(log_plots=False)
    fit = linear_reg().fit(big, "y ~ x1")
    (run,) = store.runs()
    files = {a.path for a in store.client.list_artifacts(run.info.run_id, "tidymodels")}
    assert files == {"tidymodels/outputs.parquet", f"tidymodels/outputs.first_{CSV_ROWS}_rows.csv",
                     "tidymodels/coefficients.parquet", "tidymodels/coefficients.csv",
                     "tidymodels/stats.parquet", "tidymodels/stats.csv"}
    local = store.client.download_artifacts(run.info.run_id, "tidymodels/coefficients.csv", str(store.root))
    coefs = fit.extract_outputs()[1]
    read = pd.read_csv(local)
    assert read["variable"].tolist() == coefs["variable"].tolist()
    assert read["coefficient"].to_numpy() == pytest.approx(coefs["coefficient"].to_numpy())
    preview = store.client.download_artifacts(
        run.info.run_id, f"tidymodels/outputs.first_{CSV_ROWS}_rows.csv", str(store.root / "p"))
    assert len(pd.read_csv(preview)) == CSV_ROWS


def test_per_fold_series_and_counts_are_not_read_as_the_score(store, split):
    tidymlflow.autolog(log_plots=False)
    from py_parsnip import linear_reg
    from py_tune import fit_resamples
    from py_workflows import workflow

    fit_resamples(workflow().add_formula("y ~ x1").add_model(linear_reg()), _folds(split[0]))
    (run,) = store.runs()
    assert "cv_rmse" not in run.data.metrics and "cv_rmse_n" not in run.data.metrics
    assert run.data.params["cv_rmse_n"] == "3"
    assert [m.step for m in store.history(run, "cv_rmse_fold")] == [0, 1, 2]
