"""The recipes layer: step params, steps.json, learned tables, lineage and PCA metrics,
read back from a real sqlite store."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import tidymlflow


@pytest.fixture
def mixed(split):
    """Training frame with a missing value and a nominal column, as a recipe meets them."""
    train, _ = split
    df = train.drop(columns=["date"]).copy()
    df["x3"] = df["x1"] * 0.5 + df["x2"]
    df.loc[3, "x1"] = np.nan
    df["kind"] = np.where(df.index % 3 == 0, "a", np.where(df.index % 3 == 1, "b", "c"))
    return df


def _recipe():
    from py_recipes import all_numeric_predictors, recipe

    return (recipe().step_impute_mean(all_numeric_predictors())
            .step_normalize(all_numeric_predictors())
            .step_dummy(["kind"])
            .step_pca(["x1", "x2", "x3"], num_comp=2))


def _json(store, run, path):
    local = store.client.download_artifacts(run.info.run_id, path, str(store.root / "json"))
    with open(local, encoding="utf-8") as fh:
        return json.load(fh)


def _state(table, state):
    rows = table[table["state"] == state]
    return dict(zip(rows["column"], rows["value"]))


def test_recipe_inside_workflow_logs_into_the_fit_run(store, mixed):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    tidymlflow.autolog()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # full one-hot + intercept is rank-deficient (API doc §9)
        fit = workflow().add_recipe(_recipe()).add_model(linear_reg()).fit(mixed)

    runs = store.runs()
    assert len(runs) == 1
    run = runs[0]
    params = run.data.params
    assert params["recipe.steps"] == "step_impute_mean,step_normalize,step_dummy,step_pca"
    assert params["recipe.0.step_impute_mean.columns"] == "all_numeric_predictors()"
    assert params["recipe.1.step_normalize.method"] == "zscore"
    assert params["recipe.2.step_dummy.columns"] == "['kind']"
    assert params["recipe.3.step_pca.num_comp"] == "2"
    assert params["recipe.3.step_pca.threshold"] == "None"

    prepared = fit.pre.prepared_steps
    imputed = _state(store.table(run, "recipe/learned/0_step_impute_mean.parquet"), "means")
    assert imputed == pytest.approx(prepared[0].means)

    norm = store.table(run, "recipe/learned/1_step_normalize.parquet")
    scaler = prepared[1].scaler
    assert _state(norm, "scaler.mean") == pytest.approx(dict(zip(prepared[1].columns, scaler.mean_)))
    assert _state(norm, "scaler.scale") == pytest.approx(dict(zip(prepared[1].columns, scaler.scale_)))

    dummy = store.table(run, "recipe/learned/2_step_dummy.parquet")
    levels = dummy[dummy["state"] == "encoder.categories"]
    assert list(levels["text"]) == [str(v) for v in prepared[2].encoder.categories_[0]]
    assert set(levels["column"]) == {"kind"}
    assert list(dummy[dummy["state"] == "feature_names"]["text"]) == list(prepared[2].feature_names)

    pca = prepared[3].pca
    loadings = store.table(run, "recipe/learned/3_step_pca.parquet")
    comps = loadings[loadings["state"] == "pca.components"]
    got = comps.pivot(index="index", columns="column", values="value")[prepared[3].columns].to_numpy()
    np.testing.assert_allclose(got, pca.components_)
    ratios = [m.value for m in sorted(store.history(run, "recipe.3.explained_variance_ratio"),
                                      key=lambda m: m.step)]
    assert [m.step for m in store.history(run, "recipe.3.explained_variance_ratio")] != []
    np.testing.assert_allclose(ratios, pca.explained_variance_ratio_)

    features = _json(store, run, "recipe/features.json")
    pca_step = features["steps"][3]
    assert pca_step["step"] == "step_pca"
    assert pca_step["added"] == ["PC1", "PC2"]
    assert set(pca_step["removed"]) == {"x1", "x2", "x3"}
    assert "x1" not in features["output"] and "PC2" in features["output"]
    assert features["steps"][2]["removed"] == ["kind"]

    steps = _json(store, run, "recipe/steps.json")
    assert [s["class"] for s in steps] == ["StepImputeMean", "StepNormalize", "StepDummy", "StepPCA"]
    assert steps[3]["settings"]["num_comp"] == 2
    assert steps[3]["learned"]["pca"]["class"] == "PCA"
    assert steps[0]["learned"]["means"] == pytest.approx(prepared[0].means)


def test_direct_prep_is_one_recipe_run(store, mixed):
    from py_recipes import recipe

    tidymlflow.autolog()
    rec = recipe().step_zv().step_lag(["x1"], lags=[1, 2]).step_select_variance_threshold(threshold=0.5)
    prepared = rec.prep(mixed.assign(const=1.0))

    runs = store.runs()
    assert [r.info.run_name for r in runs] == ["recipe: zv > lag > select_variance_threshold"]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["tidymlflow.call"] == "Recipe.prep"
    assert run.data.tags["tidymlflow.layer"] == "recipes"
    params = run.data.params
    assert params["recipe.steps"] == "step_zv,step_lag,step_select_variance_threshold"
    assert params["recipe.1.step_lag.lags"] == "[1, 2]"
    assert params["recipe.2.step_select_variance_threshold.threshold"] == "0.5"
    assert not any("_variances" in k or "is_prepared" in k for k in params)

    zv = store.table(run, "recipe/learned/0_step_zv.parquet")
    assert list(zv["text"]) == ["const"] == prepared.prepared_steps[0].columns_to_remove
    selected = store.table(run, "recipe/learned/2_step_select_variance_threshold.parquet")
    kept = selected[selected["state"] == "selected_features"]["text"].tolist()
    assert kept == prepared.prepared_steps[2]._selected_features
    variances = _state(selected, "variances")
    assert variances == pytest.approx(prepared.prepared_steps[2]._variances)

    features = _json(store, run, "recipe/features.json")
    assert features["steps"][0]["removed"] == ["const"]
    assert features["steps"][1]["added"] == ["x1_lag_1", "x1_lag_2"]
    assert features["output"] == list(prepared.juice().columns)
    steps = _json(store, run, "recipe/steps.json")
    assert steps[2]["learned"]["selected_features"] == prepared.prepared_steps[2]._selected_features
    artifacts = {a.path for a in store.client.list_artifacts(run.info.run_id, "recipe/learned")}
    assert "recipe/learned/1_step_lag.parquet" in artifacts  # carried-over lags are its state


def test_step_without_tabular_state_logs_params_and_steps_only(store, mixed):
    from py_recipes import recipe

    tidymlflow.autolog()
    recipe().step_log(["x2"], offset=10.0).prep(mixed)

    run = store.run("recipe: log")
    assert run.data.params["recipe.0.step_log.offset"] == "10.0"
    assert [a.path for a in store.client.list_artifacts(run.info.run_id, "recipe/learned")] == []
    assert _json(store, run, "recipe/steps.json")[0]["prepared_class"] == "PreparedStepLog"


def test_log_models_logs_the_prepared_recipe(store, mixed):
    import cloudpickle
    from py_recipes import all_numeric_predictors, recipe

    tidymlflow.autolog(log_models=True)
    prepared = recipe().step_normalize(all_numeric_predictors()).prep(mixed)

    run = store.run("recipe: normalize")
    local = store.client.download_artifacts(run.info.run_id, "recipe/prepared_recipe.pkl",
                                            str(store.root / "model"))
    with open(local, "rb") as fh:
        loaded = cloudpickle.load(fh)
    pd.testing.assert_frame_equal(loaded.bake(mixed), prepared.bake(mixed))


def test_prep_inside_user_run_nests_and_recipes_false_logs_nothing(store, mixed):
    import mlflow
    from py_parsnip import linear_reg
    from py_recipes import all_numeric_predictors, recipe
    from py_workflows import workflow

    tidymlflow.autolog(recipes=False)
    rec = recipe().step_normalize(all_numeric_predictors())
    rec.prep(mixed)
    assert store.runs() == []
    workflow().add_recipe(rec).add_model(linear_reg()).fit(mixed.drop(columns=["kind"]).dropna())
    (run,) = store.runs()
    assert not any(k.startswith("recipe") for k in run.data.params)
    assert run.data.params["preprocessor"] == "recipe"

    tidymlflow.autolog()
    with mlflow.start_run(run_name="mine"):  # a single call logs into the user's own run
        recipe().step_normalize(all_numeric_predictors()).prep(mixed)
        recipe().step_log(["x2"]).prep(mixed)  # the second nests under it
    mine = store.run("mine")
    assert mine.data.params["recipe.steps"] == "step_normalize"
    (child,) = store.children(mine)
    assert child.info.run_name == "recipe: log"
    assert child.data.params["recipe.steps"] == "step_log"


@pytest.mark.parametrize("per_group_prep", [False, True])
def test_fit_nested_recipe_learned_state_per_group(store, data, per_group_prep):
    from py_parsnip import linear_reg
    from py_recipes import all_numeric_predictors, recipe
    from py_workflows import workflow

    tidymlflow.autolog()
    rec = recipe().step_normalize(all_numeric_predictors())
    flat = data.drop(columns=["date"])
    nested = workflow().add_recipe(rec).add_model(linear_reg()).fit_nested(
        flat, group_col="store", per_group_prep=per_group_prep, min_group_size=10)

    parent = store.run("linear_reg by store")
    children = store.children(parent)
    assert len(store.runs()) == 1 + len(children) == 5
    assert parent.data.params["recipe.steps"] == "step_normalize"
    parent_norm = store.table(parent, "recipe/learned/0_step_normalize.parquet")
    expected_global = flat.drop(columns=["store", "y"])[["x1", "x2"]].mean()
    assert _state(parent_norm, "scaler.mean") == pytest.approx(expected_global.to_dict())
    for child in children:
        group = child.data.tags["group"]
        names = {a.path for a in store.client.list_artifacts(child.info.run_id)}
        if not per_group_prep:
            assert "recipe" not in names
            continue
        norm = store.table(child, "recipe/learned/0_step_normalize.parquet")
        scaler = nested.group_recipes[group].prepared_steps[0].scaler
        assert _state(norm, "scaler.mean") == pytest.approx(dict(zip(["x1", "x2"], scaler.mean_)))
        assert child.data.params["recipe.steps"] == "step_normalize"
