"""Autolog changes nothing the user computes: the user's calls are never answered from
tidymlflow's copies, no code of the user's or the library's runs again because of tidymlflow
(the random stream included), and fits the library makes inside its own code log as part of the
call the user made. Each test runs the same program with autolog off and on and compares."""

from __future__ import annotations

import random
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from helpers import top_runs

import tidymlflow


# -- a fit changed after tidymlflow read it ---------------------------------------------------------
def _model_fits(obj):
    """Every ModelFit inside a fit (a WorkflowFit's ``fit``, a nested fit's groups)."""
    inner = getattr(obj, "fit", None)
    if inner is not None and not callable(inner):
        yield from _model_fits(inner)
        return
    groups = getattr(obj, "group_fits", None)
    if isinstance(groups, dict):
        for fit in groups.values():
            yield from _model_fits(fit)
        return
    yield obj


def _fit(kind, train):
    from py_parsnip import linear_reg
    from py_recipes import recipe
    from py_workflows import workflow

    grouped = train.assign(store=np.where(train.index % 2 == 0, "A", "B"))
    if kind == "spec":
        return linear_reg().fit(train, "y ~ x1 + x2")
    if kind == "spec_nested":
        return linear_reg().fit_nested(grouped, "y ~ x1 + x2", group_col="store")
    if kind == "workflow_formula":
        return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(train)
    if kind == "workflow_recipe":
        rec = recipe().step_normalize(["x1", "x2"])
        return workflow().add_recipe(rec).add_model(linear_reg()).fit(train.drop(columns=["date"]))
    if kind == "workflow_nested":
        return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit_nested(
            grouped, group_col="store")
    if kind == "workflow_global":
        return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit_global(
            grouped, group_col="store")
    raise AssertionError(kind)


KINDS = ["spec", "spec_nested", "workflow_formula", "workflow_recipe", "workflow_nested", "workflow_global"]


def _test_frame(kind, test):
    frame = test.drop(columns=["date"]) if kind == "workflow_recipe" else test
    if kind in ("spec_nested", "workflow_nested", "workflow_global"):
        frame = frame.assign(store=np.where(frame.index % 2 == 0, "A", "B"))
    return frame


@pytest.mark.parametrize("evaluated", [False, True], ids=["fitted", "evaluated"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_fit_changed_after_logging_reads_as_the_library_reads_it(store, split, kind, evaluated):
    """The user renames a fit, regroups it, adds an attribute and edits its stored test
    predictions in place after tidymlflow logged it: ``extract_outputs()`` is the library's
    answer for the fit as it is now, equal to the answer with autolog off."""
    train, test = split
    tidymlflow.autolog()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per_group_prep falls back for formulas (API doc §2.2)
        fit = _fit(kind, train)
        if evaluated:
            fit.evaluate(_test_frame(kind, test))
    tidymlflow.flush()
    for model_fit in _model_fits(fit):
        model_fit.model_name = "renamed"
        model_fit.model_group_name = "regrouped"
        model_fit.noted_by_user = True
        if evaluated:
            model_fit.evaluation_data["test_predictions"][".pred"] += 1000.0  # same object, new values
    seen_on = fit.extract_outputs()
    tidymlflow.autolog(disable=True)
    seen_off = fit.extract_outputs()
    for on, off in zip(seen_on, seen_off):
        pd.testing.assert_frame_equal(on, off)
    outputs = seen_on[0]
    assert set(outputs["model"]) == {"renamed"} and set(outputs["model_group_name"]) == {"regrouped"}
    if evaluated:
        fitted = outputs.loc[outputs["split"] == "test", "fitted"]
        assert (fitted > 500).all(), "the in-place edit of the test predictions is seen"
    assert len(top_runs(store)) == 1, "the fit was logged"


# -- a recipe's code runs once, the random stream is unchanged ------------------------------------
def _counting_program(frame: pd.DataFrame, calls: Counter) -> dict:
    """A user's recipe whose functions count their calls and draw from the global generators;
    returns everything the program computes."""
    from py_parsnip import linear_reg
    from py_recipes import recipe
    from py_workflows import workflow

    def noise(df):
        calls["noise"] += 1
        return np.random.normal(size=len(df))

    def jitter(df):
        calls["jitter"] += 1
        return df["x2"] + random.random()

    np.random.seed(0)
    random.seed(0)
    rec = recipe().step_mutate({"noise": noise, "x2j": jitter}).step_normalize(["x1", "noise"])
    prepped = rec.prep(frame)
    baked = prepped.bake(frame)
    rec2 = recipe().step_mutate({"noise": noise}).step_normalize(["x1", "x2", "noise"])
    fit = workflow().add_recipe(rec2).add_model(linear_reg()).fit(frame)
    fit.evaluate(frame)
    predictions = fit.predict(frame)
    return {"baked": baked, "predictions": predictions, "next_numpy": np.random.random(),
            "next_python": random.random()}


def test_recipe_code_runs_once_and_the_random_stream_is_unchanged(store, split):
    train, _ = split
    frame = train.drop(columns=["date"])
    off_calls, on_calls = Counter(), Counter()
    off = _counting_program(frame, off_calls)
    tidymlflow.autolog()
    on = _counting_program(frame, on_calls)
    tidymlflow.flush()

    assert on_calls == off_calls and off_calls["noise"] >= 3
    pd.testing.assert_frame_equal(on["baked"], off["baked"])
    pd.testing.assert_frame_equal(on["predictions"], off["predictions"])
    assert on["next_numpy"] == off["next_numpy"] and on["next_python"] == off["next_python"]
    names = sorted(r.info.run_name for r in top_runs(store))
    assert len(names) == 2 and any(n.startswith("recipe: mutate > normalize") for n in names), names


def test_lineage_is_read_from_the_library_own_bakes(store, split):
    """features.json still traces every step (from what the library baked while preparing)."""
    import json

    from py_recipes import recipe

    train, _ = split
    frame = train.drop(columns=["date"])
    tidymlflow.autolog()
    recipe().step_mutate({"x3": lambda df: df["x1"] * 2}).step_normalize(["x1", "x3"]).prep(frame)
    (run,) = top_runs(store)
    local = store.client.download_artifacts(run.info.run_id, "recipe/features.json", str(store.root / "f"))
    with open(local, encoding="utf-8") as fh:
        features = json.load(fh)
    assert features["input"] == list(frame.columns)
    assert features["steps"][0]["added"] == ["x3"] and features["output"] == [*frame.columns, "x3"]
    assert [s["step"] for s in features["steps"]] == ["step_mutate", "step_normalize"]


def _every_step_kind():
    """A recipe of every step kind the stand-in has (each builder the real library has too)."""
    from py_parsnip import linear_reg
    from py_recipes import recipe

    return (recipe()
            .step_mutate({"x3": lambda df: df["x1"] + np.random.normal(size=len(df))})
            .step_impute_mean(["x1", "x2", "x3"])
            .step_log(["x4"])
            .step_zv()
            .step_select_variance_threshold(threshold=0.0)
            .step_lag(["x1"], lags=[1])
            .step_impute_mean(["x1_lag_1"])
            .step_dummy(["kind"])
            .step_normalize(["x1", "x2", "x3"])
            .step_select_genetic_algorithm(outcome="y", model=linear_reg(), population_size=4,
                                           generations=2, cv_folds=2, random_state=0)
            .step_pca(["x1", "x2"], num_comp=2))


def test_every_step_kind_preps_and_bakes_alike_on_and_off(store, split):
    train, _ = split
    frame = train.drop(columns=["date"]).assign(
        x4=lambda d: d["x1"].abs() + 1, kind=np.where(train.index % 3 == 0, "a", "b"))
    frame.loc[5, "x2"] = np.nan

    def program():
        np.random.seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepped = _every_step_kind().prep(frame)
            return prepped.bake(frame), np.random.random()

    baked_off, draw_off = program()
    tidymlflow.autolog()
    baked_on, draw_on = program()
    pd.testing.assert_frame_equal(baked_on, baked_off)
    assert draw_on == draw_off
    (run,) = top_runs(store)
    assert run.data.params["recipe.steps"].count(",") == 10


# -- fits the library makes inside its own code ---------------------------------------------------
def _ga_step():
    from py_parsnip import linear_reg
    from py_recipes.steps import StepSelectGeneticAlgorithm

    return StepSelectGeneticAlgorithm(outcome="y", model=linear_reg(), population_size=4,
                                      generations=3, cv_folds=2, random_state=0)


def test_a_step_prepped_directly_is_one_run_with_its_fits_inside(store, split):
    train, _ = split
    frame = train.drop(columns=["date"]).assign(x3=lambda d: d["x1"] - d["x2"])
    tidymlflow.autolog()
    prepared = _ga_step().prep(frame)
    (run,) = store.runs()
    assert run.info.run_name == "step_select_genetic_algorithm"
    assert run.data.tags["tidymlflow.call"] == "StepSelectGeneticAlgorithm.prep"
    params = run.data.params
    assert params["recipe.steps"] == "step_select_genetic_algorithm"
    assert params["recipe.0.step_select_genetic_algorithm.population_size"] == "4"
    table = store.table(run, "recipe/learned/0_step_select_genetic_algorithm.parquet")
    selected = set(table.loc[table["state"] == "selected_features", "text"])
    assert selected == set(prepared._selected_features) and selected


def test_a_step_prepped_inside_a_recipe_is_part_of_the_recipe_run(store, split):
    from py_recipes import recipe

    train, _ = split
    frame = train.drop(columns=["date"]).assign(x3=lambda d: d["x1"] - d["x2"])
    tidymlflow.autolog()
    rec = recipe()
    rec.steps.append(_ga_step())
    rec.prep(frame)
    (run,) = store.runs()
    assert run.data.tags["tidymlflow.call"] == "Recipe.prep"
    assert run.data.params["recipe.steps"] == "step_select_genetic_algorithm"


def test_fits_made_by_library_code_the_user_called_log_no_runs_of_their_own(store, split):
    """A fitness function of the library, called by the user, fits its model once per fold: those
    fits belong to the library's code, not to the user, and are not separate runs."""
    from py_parsnip import linear_reg
    from py_recipes.utils import create_model_fitness_evaluator

    train, _ = split
    frame = train.drop(columns=["date"])
    tidymlflow.autolog()
    fitness = create_model_fitness_evaluator(frame, "y", linear_reg(), "rmse", False, 3, 0)
    score = fitness(np.array([1, 1]))
    assert np.isfinite(score)
    linear_reg().fit(frame, "y ~ x1")  # the user's own fit still logs
    assert [r.data.tags["tidymlflow.call"] for r in store.runs()] == ["ModelSpec.fit"]
