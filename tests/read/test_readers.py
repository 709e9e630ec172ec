"""Unit tests of the pure readers (``tidymlflow._read``) on real py-tidymodels objects.

Every library object is built by the library itself (real py-tidymodels when importable, else the
stand-in of ``tests/standin``), so each assertion holds for both. Library modules are imported
inside the tests: ``py_workflowsets`` may fail to import where seaborn is missing."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from tidymlflow._read import common, fits, recipes, resamples, workflowsets


# -- helpers: selector makers written as the library writes its selectors ------------------------
def _prefixed(prefix, ignore_case=True):
    def pick(frame):
        names = [c.lower() for c in frame.columns] if ignore_case else list(frame.columns)
        return [c for c in names if c.startswith(prefix)]

    return pick


def _any_of(*pickers):
    def pick(frame):
        return sorted({c for p in pickers for c in p(frame)})

    return pick


def _formula_fit(train):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(train)


def _pca_recipe(num_comp=2):
    from py_recipes import recipe

    return recipe().step_normalize(["x1", "x2"]).step_pca(["x1", "x2"], num_comp=num_comp)


def _grouped_halves(data):
    """Per store: the first 30 rows to fit, the last 10 to evaluate (no date column)."""
    flat = data.drop(columns=["date"])
    return flat.groupby("store").head(30), flat.groupby("store").tail(10)


def _group_cv(data):
    from py_rsample import time_series_cv

    return {g: time_series_cv(d.reset_index(drop=True), "date", initial=20, assess=5)
            for g, d in data.groupby("store", sort=False)}


def _two_workflow_set(second="y ~ x1"):
    from py_parsnip import linear_reg
    from py_workflows import workflow
    from py_workflowsets import WorkflowSet

    return WorkflowSet.from_workflows([
        ("lm", workflow().add_formula("y ~ x1 + x2").add_model(linear_reg())),
        ("other", workflow().add_formula(second).add_model(linear_reg())),
    ])


# == common ======================================================================================
def test_short_keeps_short_text_and_cuts_long_text_with_an_ellipsis():
    """short() leaves text up to the limit alone and cuts longer text to exactly the limit, ending in …."""
    assert common.short("a" * common.MAX_NAME) == "a" * common.MAX_NAME
    cut = common.short("b" * (common.MAX_NAME + 1))
    assert len(cut) == common.MAX_NAME and cut == "b" * (common.MAX_NAME - 1) + "…"
    assert common.short("abcdef", limit=4) == "abc…"
    assert common.short("", limit=4) == ""


def test_value_text_writes_reals_with_four_significant_digits_and_the_rest_as_params():
    """value_text() rounds every non-integer real (numpy and Fraction too) and passes other values on."""
    assert common.value_text(0.123456) == "0.1235"
    assert common.value_text(np.float32(0.5)) == "0.5"
    assert common.value_text(1234567.0) == "1.235e+06"
    assert common.value_text(Fraction(1, 3)) == "0.3333"
    assert common.value_text(123456) == "123456"
    assert common.value_text(np.int64(123456)) == "123456"  # was "1.235e+05"
    assert common.value_text(True) == "True"
    assert common.value_text(None) == "None"
    assert common.value_text("zscore") == "zscore"


def test_param_text_of_tune_placeholders_estimators_selectors_and_plain_values():
    """param_text() writes tune() placeholders, estimators by class, selectors as calls, others by str."""
    from py_recipes import all_numeric_predictors
    from py_tune import tune
    from sklearn.preprocessing import StandardScaler

    assert common.param_text(tune()) == "tune()"
    assert common.param_text(tune("penalty")) == "tune()"
    assert common.param_text(StandardScaler()) == "StandardScaler"
    assert common.param_text(all_numeric_predictors()) == "all_numeric_predictors()"
    assert common.param_text(["x1", "x2"]) == "['x1', 'x2']"
    assert common.param_text(np.int64(3)) == "3"
    assert common.param_text(0.1) == "0.1"
    assert common.param_text(False) == "False"
    assert common.param_text(None) == "None"
    assert common.param_text(len) == "len"


def test_selector_text_writes_closures_as_the_call_that_made_them():
    """selector_text() rebuilds a closure's call from its maker's signature, nested selectors included."""
    assert common.selector_text(_prefixed("x", False)) == "_prefixed('x', False)"
    assert common.selector_text(_prefixed("x")) == "_prefixed('x', True)"
    combined = _any_of(_prefixed("temp"), _prefixed("x", False))
    assert common.selector_text(combined) == "_any_of(_prefixed('temp', True), _prefixed('x', False))"
    assert common.selector_text(math.sqrt) == "sqrt"


def test_snake_case_splits_camel_case_and_acronyms():
    """snake_case() turns step and resampler class names into their builder names."""
    assert common.snake_case("StepImputeMean") == "step_impute_mean"
    assert common.snake_case("StepPCA") == "step_pca"
    assert common.snake_case("PCAStep") == "pca_step"
    assert common.snake_case("TimeSeriesCV") == "time_series_cv"


def test_model_params_lists_type_engine_mode_and_every_argument_as_text():
    """model_params() writes a spec's identity and each argument (tune() included) as a text param."""
    from py_parsnip import linear_reg
    from py_tune import tune

    assert common.model_params(linear_reg(penalty=0.1, mixture=0.5)) == {
        "model_type": "linear_reg", "engine": "sklearn", "mode": "regression",
        "args.penalty": "0.1", "args.mixture": "0.5", "args.intercept": "True"}
    tuned = common.model_params(linear_reg(penalty=tune(), engine="statsmodels"))
    assert tuned["engine"] == "statsmodels" and tuned["args.penalty"] == "tune()"


def test_model_params_flattens_nested_specs_and_dicts():
    """A spec or dict inside a spec's args becomes dotted params (nested spec: its type and engine)."""
    from py_parsnip import linear_reg, rand_forest
    from sklearn.preprocessing import StandardScaler

    base = rand_forest(trees=5)
    spec = replace(linear_reg(), args={"base": base, "opts": {"depth": 3, "scaler": StandardScaler()}})
    assert common.model_params(spec) == {
        "model_type": "linear_reg", "engine": "sklearn", "mode": "regression",
        "args.base.model_type": "rand_forest", "args.base.engine": base.engine, "args.base.trees": "5",
        "args.opts.depth": "3", "args.opts.scaler": "StandardScaler"}
    assert common.model_params(replace(linear_reg(), args={}))["model_type"] == "linear_reg"


def test_formula_of_reads_the_fitted_blueprint(split):
    """formula_of() gives the formula a ModelFit was fitted with, and the default without a blueprint."""
    from types import SimpleNamespace

    assert common.formula_of(_formula_fit(split[0]).fit) == "y ~ x1 + x2"
    assert common.formula_of(SimpleNamespace(blueprint={"formula": "y ~ t"})) == "y ~ t"
    assert common.formula_of(SimpleNamespace(blueprint={}), "none") == "none"
    assert common.formula_of(object(), "none") == "none"


def test_number_accepts_real_numbers_only():
    """number() converts ints, floats, numpy scalars and Fractions to float; bools, text, None are None."""
    assert common.number(np.int64(3)) == 3.0 and isinstance(common.number(np.int64(3)), float)
    assert common.number(np.float32(0.5)) == 0.5
    assert common.number(Fraction(1, 4)) == 0.25
    assert math.isnan(common.number(float("nan")))
    for value in (True, np.bool_(True), "1.0", None, [1.0], pd.NA):
        assert common.number(value) is None, value


def test_stats_metrics_of_a_fitted_and_evaluated_workflow(split):
    """Every numeric stats row of a real evaluated fit becomes <split>_<metric>; text rows become tags."""
    fit = _formula_fit(split[0]).evaluate(split[1])
    stats = fit.extract_outputs()[2]
    metrics, tags = common.stats_metrics(stats)
    rows = stats.set_index(["split", "metric"])["value"]
    assert metrics["train_rmse"] == pytest.approx(float(rows[("train", "rmse")]))
    assert metrics["test_rmse"] == pytest.approx(float(rows[("test", "rmse")]))
    assert metrics["train_n_obs_train"] == 120.0
    assert tags["stats.formula"] == "y ~ x1 + x2" and tags["stats.model_type"] == "linear_reg"
    only_test, _ = common.stats_metrics(stats, splits={"test"})
    assert only_test and all(k.startswith("test_") for k in only_test)
    assert only_test == {k: v for k, v in metrics.items() if k.startswith("test_")}


def test_stats_metrics_edge_cases_nan_split_missing_values_and_empty_frame():
    """NaN splits read as no split, NaN values stay metrics, None values are dropped, empty gives nothing."""
    stats = pd.DataFrame({"split": pd.Series([float("nan"), "train", "train", None], dtype=object),
                          "metric": ["aic", "rmse", "note", "bic"],
                          "value": pd.Series([12, float("nan"), None, np.float32(3.5)], dtype=object)})
    metrics, tags = common.stats_metrics(stats)
    assert set(metrics) == {"aic", "train_rmse", "bic"}
    assert metrics["aic"] == 12.0 and metrics["bic"] == 3.5 and math.isnan(metrics["train_rmse"])
    assert tags == {}
    assert common.stats_metrics(stats, splits={""})[0] == {"aic": 12.0, "bic": 3.5}
    empty = pd.DataFrame({"split": [], "metric": [], "value": []})
    assert common.stats_metrics(empty) == ({}, {})


def test_rank_order_treats_infinities_text_and_bools_by_the_shared_rule():
    """rank_order() puts -inf/inf at the ends of the good scores and non-numbers last, in input order."""
    scores = {"a": 1.0, "inf": float("inf"), "text": "0.1", "flag": True, "neg": -float("inf"), "b": 0.5}
    assert common.rank_order(scores, "rmse") == ["neg", "b", "a", "inf", "text", "flag"]
    assert common.rank_order(scores, "r_squared") == ["inf", "a", "b", "neg", "text", "flag"]
    assert common.lower_is_better("mase") and common.lower_is_better("brier_score")
    assert not common.lower_is_better("r_squared") and not common.lower_is_better("unknown_metric")
    assert common.rank_order({"x": None, "y": float("nan")}, "rmse") == ["x", "y"]


def test_by_group_keeps_order_of_appearance_and_skips_a_missing_column():
    """by_group() yields groups in their order in the frame, and nothing when the column is absent."""
    frame = pd.DataFrame({"store": ["B", "A", "B"], "value": [1, 2, 3]})
    groups = [(g, part["value"].tolist()) for g, part in common.by_group(frame, "store")]
    assert groups == [("B", [1, 3]), ("A", [2])]
    assert list(common.by_group(frame, "region")) == []


def test_group_summary_means_and_stds_across_groups():
    """group_summary() gives <metric>_mean/_std across groups, ignoring text and NaN; empty input is empty."""
    summary = common.group_summary({"A": {"rmse": 1.0, "note": "x"}, "B": {"rmse": 3.0, "note": 2.0},
                                    "C": {"rmse": float("nan"), "note": "y"}})
    assert summary["rmse_mean"] == pytest.approx(2.0)
    assert summary["rmse_std"] == pytest.approx(math.sqrt(2.0))
    assert summary["note_mean"] == pytest.approx(2.0) and math.isnan(summary["note_std"])
    assert common.group_summary({}) == {}


# == fits ========================================================================================
def test_describe_a_formula_workflow_fit_label_params_and_tags(split):
    """describe() of a formula WorkflowFit names the run by model and formula, with exact params/tags."""
    from py_parsnip import linear_reg
    from py_workflows import workflow

    info = fits.describe(_formula_fit(split[0]))
    assert info.label() == "linear_reg: y ~ x1 + x2" and info.recipe is None
    assert info.params() == {"model_type": "linear_reg", "engine": "sklearn", "mode": "regression",
                             "args.intercept": "True", "preprocessor": "formula", "formula": "y ~ x1 + x2"}
    assert info.tags() == {"model_type": "linear_reg", "engine": "sklearn", "preprocessor": "formula"}
    named = workflow().add_formula("y ~ x1").add_model(linear_reg()).add_model_name("my_lm").fit(split[0])
    assert fits.describe(named).name == "my_lm" and fits.describe(named).label() == "my_lm: y ~ x1"
    assert fits.model_name(named.workflow) == "my_lm" and fits.model_name(object()) == "model"


def test_describe_a_recipe_workflow_fitted_and_unfitted(split):
    """A recipe workflow is labelled by its steps; fitted it has the library's formula, unfitted none."""
    from py_parsnip import linear_reg
    from py_workflows import workflow

    rec = _pca_recipe()
    wf = workflow().add_recipe(rec).add_model(linear_reg())
    info = fits.describe(wf.fit(split[0]))
    assert (info.preprocessor, info.formula) == ("recipe", "y ~ PC1 + PC2") and info.recipe is rec
    assert info.label() == "linear_reg: recipe: normalize > pca"
    assert info.params()["formula"] == "y ~ PC1 + PC2" and info.tags()["preprocessor"] == "recipe"
    unfitted = fits.describe_workflow(wf)
    assert unfitted is not None and unfitted.recipe is rec and unfitted.formula is None
    assert "formula" not in unfitted.params() and unfitted.label() == info.label()


def test_describe_a_model_fit_and_a_workflow_without_model(split):
    """describe() reads a bare ModelFit's formula; describe_workflow() is None without a model."""
    from py_parsnip import linear_reg
    from py_workflows import workflow

    info = fits.describe(linear_reg().fit(split[0], "y ~ x1"))
    assert (info.preprocessor, info.formula, info.name) == ("formula", "y ~ x1", "linear_reg")
    assert fits.describe_workflow(workflow().add_formula("y ~ x1")) is None
    assert fits.preprocessor_kind("y ~ x1") == "formula" and fits.preprocessor_kind(_pca_recipe()) == "recipe"
    assert fits.nested_run_name(linear_reg(), "store") == "linear_reg by store"


def test_label_of_a_long_formula_is_cut_but_its_param_is_whole():
    """A run name longer than MAX_NAME ends in an ellipsis; the formula param keeps the whole formula."""
    from py_parsnip import linear_reg
    from py_workflows import workflow

    formula = "y ~ " + " + ".join(f"feature_number_{i}" for i in range(12))
    info = fits.describe_workflow(workflow().add_formula(formula).add_model(linear_reg()))
    assert info is not None and len(info.label()) == common.MAX_NAME and info.label().endswith("…")
    assert info.params()["formula"] == formula


def test_outputs_are_read_once_per_fit_state_and_again_after_evaluate(split):
    """outputs() equals extract_outputs(), is cached while the fit is unchanged, re-read after evaluate()."""
    fit = _formula_fit(split[0])
    first = fits.outputs(fit)
    assert first._fields == fits.TABLES
    for mine, theirs in zip(first, fit.extract_outputs()):
        pd.testing.assert_frame_equal(mine, theirs)
    again = fits.outputs(fit)
    assert all(a is b for a, b in zip(first, again))
    assert fit.extract_outputs()[2] is not first.stats  # the user's call is never the cached table
    fit.evaluate(split[1])
    evaluated = fits.outputs(fit)
    assert evaluated.stats is not first.stats and "test" in set(evaluated.stats["split"])
    assert "test" not in set(first.stats["split"])
    assert fits.outputs(fit).stats is evaluated.stats


def test_outputs_cache_keeps_fits_apart(split):
    """Two fits of the same workflow get their own tables, never each other's."""
    a, b = _formula_fit(split[0]), _formula_fit(split[0])
    b.evaluate(split[1])
    out_a, out_b = fits.outputs(a), fits.outputs(b)
    assert out_a.stats is not out_b.stats
    assert "test" not in set(out_a.stats["split"]) and "test" in set(out_b.stats["split"])
    assert fits.outputs(a).stats is out_a.stats and fits.outputs(b).stats is out_b.stats


def test_outputs_of_a_nested_fit_are_cached_until_it_is_evaluated(data):
    """A NestedWorkflowFit's tables are cached through its group fits and read again after evaluate()."""
    from py_parsnip import linear_reg
    from py_workflows import workflow

    train, test = _grouped_halves(data)
    nested = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit_nested(
        train, group_col="store", per_group_prep=False)
    first = fits.outputs(nested)
    assert fits.outputs(nested).stats is first.stats
    nested.evaluate(test)
    second = fits.outputs(nested)
    assert second.stats is not first.stats and "test" in set(second.stats["split"])


def test_inner_model_fit_is_the_workflow_fits_model_fit_only(split):
    """inner_model_fit() gives a WorkflowFit's ModelFit, and None for a ModelFit or a spec."""
    from py_parsnip import linear_reg

    fit = _formula_fit(split[0])
    assert fits.inner_model_fit(fit) is fit.fit
    assert fits.inner_model_fit(fit.fit) is None
    assert fits.inner_model_fit(linear_reg()) is None  # ModelSpec.fit is a method, not a fit


def test_intervals_need_an_evaluated_fit_whose_engine_gives_them(split):
    """intervals() is None before evaluate() and for sklearn; statsmodels gives bounds and the test dates."""
    from py_parsnip import linear_reg
    from py_workflows import workflow

    train, test = split
    fit = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(engine="statsmodels")).fit(train)
    assert fits.intervals(fit, test) is None
    fit.evaluate(test)
    stored = dict(fit.fit.evaluation_data)
    pred = fits.intervals(fit, test)
    assert pred is not None and len(pred) == len(test)
    assert (pred[".pred_lower"] <= pred[".pred"]).all() and (pred[".pred"] <= pred[".pred_upper"]).all()
    assert pred["date"].tolist() == test["date"].tolist()
    assert fit.fit.evaluation_data.keys() == stored.keys()
    assert all(fit.fit.evaluation_data[k] is v for k, v in stored.items())  # the fit is not changed
    assert fits.intervals(_formula_fit(train).evaluate(test), test) is None


def test_nested_metric_table_gives_one_value_per_group_and_split(data):
    """nested_metric_table() lists every group's train and test value of one metric, or None."""
    from py_parsnip import linear_reg
    from py_workflows import workflow

    train, test = _grouped_halves(data)
    nested = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit_nested(
        train, group_col="store", per_group_prep=False).evaluate(test)
    stats = nested.extract_outputs()[2]
    table = fits.nested_metric_table(stats, "store", "rmse")
    assert table is not None and list(table.columns) == ["group", "split", "value"]
    assert sorted(zip(table["group"], table["split"])) == sorted(
        (g, s) for g in "ABCD" for s in ("train", "test"))
    expected = stats[(stats["metric"] == "rmse") & (stats["split"] == "test") & (stats["store"] == "B")]
    got = table[(table["group"] == "B") & (table["split"] == "test")]["value"]
    assert got.iloc[0] == pytest.approx(float(expected["value"].iloc[0]))
    assert fits.nested_metric_table(stats, "store", "no_such_metric") is None
    assert fits.nested_metric_table(stats, "region", "rmse") is None


# == recipes =====================================================================================
def test_step_names_and_recipe_label():
    """Steps read as builder names; the label lists them without the step_ prefix."""
    from py_recipes import recipe

    rec = _pca_recipe().step_impute_mean().step_select_variance_threshold(threshold=0.1)
    names = [recipes.step_name(s, rec) for s in rec.steps]
    assert names == ["step_normalize", "step_pca", "step_impute_mean", "step_select_variance_threshold"]
    assert [recipes.step_name(s, type(rec)) for s in rec.steps] == names
    assert [recipes.step_name(s) for s in rec.steps] == names
    assert recipes.label(rec) == "recipe: normalize > pca > impute_mean > select_variance_threshold"
    assert recipes.label(recipe()) == "recipe"


def test_step_name_prefers_the_builder_name_of_the_recipe_class():
    """step_name() finds a builder whose name is not the class's snake_case, else falls back to it."""

    class StepBoxCox:
        pass

    class Builders:
        def step_boxcox(self):
            return self

    assert recipes.step_name(StepBoxCox(), Builders) == "step_boxcox"
    assert recipes.step_name(StepBoxCox(), Builders()) == "step_boxcox"
    assert recipes.step_name(StepBoxCox()) == "step_box_cox"


def test_recipe_params_write_every_setting_of_every_step():
    """recipe_params() gives recipe.steps and recipe.<i>.<step>.<field> for each public setting."""
    from py_recipes import all_numeric_predictors, recipe

    rec = (recipe().step_normalize(all_numeric_predictors())
           .step_pca(["x1", "x2"], num_comp=2).step_select_variance_threshold(threshold=0.1))
    assert recipes.recipe_params(rec) == {
        "recipe.steps": "step_normalize,step_pca,step_select_variance_threshold",
        "recipe.0.step_normalize.columns": "all_numeric_predictors()",
        "recipe.0.step_normalize.method": "zscore",
        "recipe.1.step_pca.columns": "['x1', 'x2']",
        "recipe.1.step_pca.num_comp": "2",
        "recipe.1.step_pca.threshold": "None",
        "recipe.2.step_select_variance_threshold.threshold": "0.1",
        "recipe.2.step_select_variance_threshold.columns": "None",
        "recipe.2.step_select_variance_threshold.skip": "False",
        "recipe.2.step_select_variance_threshold.id": "None",
    }
    assert recipes.step_params(4, "step_x", rec.steps[1]) == {
        "recipe.4.step_x.columns": "['x1', 'x2']", "recipe.4.step_x.num_comp": "2",
        "recipe.4.step_x.threshold": "None"}
    assert recipes.recipe_params(recipe()) == {"recipe.steps": ""}


def test_learned_state_of_a_prepared_class_and_of_a_prepared_copy(split):
    """learned() reads a Prepared* class's fields, or a prepared copy's private fields minus _is_prepared."""
    from py_recipes import recipe

    train = split[0]
    rec = recipe().step_normalize(["x1", "x2"]).step_select_variance_threshold(threshold=0.1)
    prepared = rec.prep(train)
    normalize = recipes.learned(rec.steps[0], prepared.prepared_steps[0])
    assert set(normalize) == {"columns", "scaler", "method"} and normalize["columns"] == ["x1", "x2"]
    np.testing.assert_allclose(normalize["scaler"].mean_, train[["x1", "x2"]].mean().to_numpy())
    selected = recipes.learned(rec.steps[1], prepared.prepared_steps[1])
    assert set(selected) == {"selected_features", "variances"}
    assert selected["variances"]["y"] == pytest.approx(train["y"].var())
    assert set(recipes.settings(rec.steps[1])) == {"threshold", "columns", "skip", "id"}


def test_learned_table_of_a_normalize_step_is_long_and_typed(split):
    """learned_table() gives the scaler's means per column, with float values and nullable int indexes."""
    train = split[0]
    rec = _pca_recipe()
    state = recipes.steps(rec, rec.prep(train))[0].state
    table = recipes.learned_table(state)
    assert list(table.columns) == ["state", "column", "index", "value", "text"]
    assert str(table["value"].dtype) == "float64" and str(table["index"].dtype) == "Int64"
    means = table[table["state"] == "scaler.mean"].set_index("column")["value"]
    assert means.to_dict() == pytest.approx(train[["x1", "x2"]].mean().to_dict())
    assert not (table["state"] == "method").any()  # top-level settings are not tabled
    assert recipes.learned_table({}) is None
    assert recipes.learned_table({"method": "zscore", "columns": ["x1"]}) is None


def test_learned_table_and_explained_variance_of_a_pca_step(split):
    """PCA components are tabled per input column and component; explained variance reads the ratios."""
    train = split[0]
    rec = _pca_recipe(num_comp=1)
    pca_state = recipes.steps(rec, rec.prep(train))[1].state
    table = recipes.learned_table(pca_state)
    comps = table[table["state"] == "pca.components"]
    assert sorted(zip(comps["column"], comps["index"])) == [("x1", 0), ("x2", 0)]
    np.testing.assert_allclose(comps.set_index("column").loc[["x1", "x2"], "value"],
                               pca_state["pca"].components_[0])
    ratio = table[table["state"] == "pca.explained_variance_ratio"]
    assert ratio["column"].isna().all() and ratio["index"].tolist() == [0]
    assert recipes.explained_variance(pca_state) == pytest.approx(
        list(pca_state["pca"].explained_variance_ratio_))
    normalize_state = recipes.steps(rec, rec.prep(train))[0].state
    assert recipes.explained_variance(normalize_state) is None


def test_learned_table_layouts_of_mappings_per_column_arrays_and_the_row_cap():
    """learned_table() reads dicts by key, per-column arrays by column, and keeps at most 100 000 rows."""
    state = {"columns": ["a", "b"], "means": {"a": 1.0, "b": np.float64(2.0)},
             "levels": [np.array(["x", "y"]), np.array(["u"])], "frame": pd.DataFrame({"k": [5, 6]})}
    rows = recipes.learned_table(state)
    assert rows[rows["state"] == "means"][["column", "value"]].values.tolist() == [["a", 1.0], ["b", 2.0]]
    levels = rows[rows["state"] == "levels"]
    assert list(zip(levels["column"], levels["index"], levels["text"])) == [
        ("a", 0, "x"), ("a", 1, "y"), ("b", 0, "u")]
    frame = rows[rows["state"] == "frame"]
    assert list(zip(frame["column"], frame["index"], frame["value"])) == [("k", 0, 5.0), ("k", 1, 6.0)]
    assert len(recipes.learned_table({"big": np.arange(200_000)})) == 100_000


def test_summary_is_json_ready_and_bounded():
    """summary() inlines small values, describes large ones by size and objects by class and attributes."""
    from py_recipes import all_numeric_predictors
    from sklearn.preprocessing import StandardScaler

    assert recipes.summary(np.float64(1.5)) == 1.5 and type(recipes.summary(np.int64(2))) is int
    assert len(recipes.summary("a" * 2000)) == 1000
    assert recipes.summary({str(i): i for i in range(25)}) == {
        "type": "dict", "n": 25, "keys": [str(i) for i in range(10)]}
    assert recipes.summary(pd.DataFrame({"a": [1, 2]})) == {"type": "DataFrame", "shape": [2, 1]}
    assert recipes.summary(np.arange(3)) == [0, 1, 2]
    assert recipes.summary(np.zeros((30, 2))) == {"type": "ndarray", "shape": [30, 2], "dtype": "float64"}
    assert recipes.summary(list(range(25))) == {"type": "list", "n": 25, "head": list(range(10))}
    assert recipes.summary([[[[1]]]]) == [[["list"]]]
    assert recipes.summary(all_numeric_predictors()) == "all_numeric_predictors()"
    scaler = recipes.summary(StandardScaler().fit(np.array([[1.0], [3.0]])))
    assert scaler["class"] == "StandardScaler" and scaler["mean_"] == [2.0]


def test_step_states_pair_each_spec_with_its_prepared_step(split):
    """steps() pairs spec and prepared steps by position; summaries are JSON-serialisable."""
    rec = _pca_recipe()
    prepared = rec.prep(split[0])
    states = recipes.steps(rec, prepared)
    assert [(s.index, s.name) for s in states] == [(0, "step_normalize"), (1, "step_pca")]
    assert all(s.spec is rec.steps[i] and s.prepared is prepared.prepared_steps[i]
               for i, s in enumerate(states))
    assert states[1].state is states[1].state  # computed once
    entry = states[1].summary()
    assert entry["class"] == "StepPCA"
    assert entry["prepared_class"] == type(prepared.prepared_steps[1]).__name__
    assert entry["settings"] == {"columns": ["x1", "x2"], "num_comp": 2, "threshold": None}
    assert entry["learned"]["columns"] == ["x1", "x2"]
    json.dumps([s.summary() for s in states])
    assert all(s.prepared is None and s.state is None for s in recipes.steps(rec))


def test_baked_records_columns_and_a_bounded_copy_of_the_rows(data):
    """baked() keeps column names and the first 256 rows of both frames as copies; non-frames give None."""
    result = data.assign(z=1.0)
    record = recipes.baked(data, result)
    assert record.before == list(data.columns) and record.after == [*data.columns, "z"]
    assert len(record.sample_before) == 160 and record.sample_after is not result
    big = pd.concat([data] * 2, ignore_index=True)
    assert len(recipes.baked(big, big).sample_before) == 256
    assert recipes.baked(data, np.zeros(3)) is None and recipes.baked([1, 2], data) is None


def test_lineage_lists_columns_added_and_removed_by_each_step(split):
    """lineage() reads the bakes seen per prepared step; any step not seen makes it None."""
    from py_recipes import recipe

    train = split[0]
    rec = _pca_recipe()
    prepared = rec.prep(train)
    seen, current = {}, train
    for step in prepared.prepared_steps:  # what the library's own prep baked, step by step
        out = step.bake(current)
        seen[id(step)] = recipes.baked(current, out)
        current = out
    trace, before, after = recipes.lineage(prepared, seen)
    assert [(t["index"], t["step"], t["added"], t["removed"]) for t in trace] == [
        (0, "step_normalize", [], []), (1, "step_pca", ["PC1", "PC2"], ["x1", "x2"])]
    assert trace[1]["before"] == list(train.columns)
    pd.testing.assert_frame_equal(before, train)
    pd.testing.assert_frame_equal(after, prepared.bake(train))
    partial = {k: v for k, v in seen.items() if k != id(prepared.prepared_steps[1])}
    assert recipes.lineage(prepared, partial) is None
    assert recipes.lineage(recipe().prep(train), {}) is None


def test_is_recipe_is_prepared_and_the_recipe_class(split):
    """A Recipe is a recipe, a PreparedRecipe is prepared, a formula is neither; recipe_class() is Recipe."""
    from py_recipes import Recipe

    rec = _pca_recipe()
    prepared = rec.prep(split[0])
    assert recipes.is_recipe(rec) and not recipes.is_prepared(rec)
    assert recipes.is_prepared(prepared) and not recipes.is_recipe(prepared)
    assert not recipes.is_recipe("y ~ x1") and not recipes.is_prepared("y ~ x1")
    assert recipes.recipe_class() is Recipe and isinstance(rec, recipes.recipe_class())


# == resamples ===================================================================================
def test_resample_params_of_vfold_cv_with_and_without_repeats(split):
    """resample_params() names the resampler, counts folds and infers repeats from v."""
    from py_rsample import vfold_cv

    assert resamples.resample_params(vfold_cv(split[0], v=3, seed=1)) == {
        "resamples.type": "vfold_cv", "resamples.n": 3, "resamples.v": "3",
        "resamples.stratified": "False", "resamples.strata": "None", "resamples.repeats": "1"}
    repeated = resamples.resample_params(vfold_cv(split[0], v=3, repeats=2, seed=1))
    assert repeated["resamples.n"] == 6 and repeated["resamples.repeats"] == "2"
    assert resamples.resample_params(None) == {}


def test_resample_params_and_folds_table_of_time_series_cv(data):
    """A rolling-origin resampler gives its settings and a folds table with exact row and date ranges."""
    from py_rsample import time_series_cv

    flat = data.drop(columns=["store"])
    cv = time_series_cv(flat, "date", initial=80, assess=20)
    assert resamples.resample_type(cv) == "time_series_cv"
    assert resamples.resample_params(cv) == {
        "resamples.type": "time_series_cv", "resamples.n": 4, "resamples.date_column": "date",
        "resamples.initial": "80", "resamples.assess": "20", "resamples.skip": "0",
        "resamples.cumulative": "True", "resamples.lag": "0", "resamples.slice_limit": "None"}
    table = resamples.folds_table(cv)
    assert table["fold"].tolist() == ["Slice001", "Slice002", "Slice003", "Slice004"]
    assert table["position"].tolist() == [0, 1, 2, 3]
    assert table[["train_n", "train_start", "train_end"]].values.tolist() == [
        [80, 0, 79], [100, 0, 99], [120, 0, 119], [140, 0, 139]]
    assert table[["test_n", "test_start", "test_end"]].values.tolist() == [
        [20, 80, 99], [20, 100, 119], [20, 120, 139], [20, 140, 159]]
    assert table["test_start_date"].iloc[0] == flat["date"].iloc[80]
    assert table["test_end_date"].iloc[-1] == flat["date"].iloc[-1]


def test_folds_table_of_vfold_cv_covers_every_row_once(split):
    """A v-fold table has one row per fold, test sets that partition the data, and no date columns."""
    from py_rsample import vfold_cv

    folds = vfold_cv(split[0], v=4, seed=2)
    table = resamples.folds_table(folds)
    assert table["fold"].tolist() == ["Fold01", "Fold02", "Fold03", "Fold04"]
    assert table["test_n"].sum() == len(split[0])
    assert ((table["train_n"] + table["test_n"]) == len(split[0])).all()
    assert not any(c.endswith("_date") for c in table.columns)
    assert resamples.folds_table(None).empty


def test_fit_resamples_metric_rows_positions_names_and_summaries(split):
    """fit_resamples() rows get fold positions; names follow the metric set; summaries match the rows."""
    from py_parsnip import linear_reg
    from py_rsample import vfold_cv
    from py_tune import fit_resamples
    from py_workflows import workflow
    from py_yardstick import mae, metric_set, rmse

    wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg())
    res = fit_resamples(wf, vfold_cv(split[0], v=3, seed=1), metrics=metric_set(rmse, mae))
    assert resamples.has_metrics(res.metrics)
    rows = resamples.with_positions(res.metrics)
    assert dict(zip(rows[".resample"], rows["position"])) == {"Fold01": 0, "Fold02": 1, "Fold03": 2}
    assert resamples.metric_names(rows) == ["rmse", "mae"]
    assert resamples.metric_names(rows, metric_set(mae, rmse)) == ["mae", "rmse"]
    rmse_values = res.metrics.loc[res.metrics["metric"] == "rmse", "value"].astype(float)
    assert resamples.mean_std(rows, "rmse") == pytest.approx((rmse_values.mean(), rmse_values.std()))
    summary = resamples.cv_summary(rows)
    assert list(summary) == ["rmse", "mae"] and summary["rmse"]["n"] == 3
    assert summary["rmse"]["mean"] == pytest.approx(rmse_values.mean())


def test_with_positions_for_repeated_labels_fold_numbers_and_missing_columns():
    """with_positions() orders repeated labels by evaluation, reads "fold" numbers, fills .config."""
    racing = pd.DataFrame({".config": ["c1"] * 4, "metric": ["rmse"] * 4, "value": [1.0, 2.0, 3.0, 4.0],
                           ".resample": ["Fold01", "Fold02", "Fold01", "Fold02"]})
    assert resamples.with_positions(racing)["position"].tolist() == [0, 1, 2, 3]
    global_rows = pd.DataFrame({"fold": [2, 1, 2], "metric": ["rmse", "rmse", "mae"], "value": [1.0, 2, 3]})
    out = resamples.with_positions(global_rows)
    assert out["position"].tolist() == [1, 0, 1] and set(out[".config"]) == {"config_001"}
    assert list(global_rows.columns) == ["fold", "metric", "value"]
    unlabeled = pd.DataFrame({"metric": ["rmse", "rmse"], "value": [1.0, 2.0], ".resample": ["a", "b"]})
    assert resamples.with_positions(unlabeled)["position"].tolist() == [0, 1]


def test_has_metrics_is_false_for_failed_empty_or_incomplete_results(split):
    """has_metrics() is False when every fold failed, for frames lacking columns and for non-frames."""
    from py_parsnip import linear_reg
    from py_rsample import vfold_cv
    from py_tune import fit_resamples
    from py_workflows import workflow

    bad = workflow().add_formula("y ~ nope").add_model(linear_reg())
    res = fit_resamples(bad, vfold_cv(split[0], v=2, seed=1))
    assert res.metrics.empty and not resamples.has_metrics(res.metrics)
    assert not resamples.has_metrics(pd.DataFrame({"metric": ["rmse"], "value": [1.0]}))
    assert not resamples.has_metrics([{"metric": "rmse", "value": 1.0, ".config": "c"}])


def test_summarize_tune_grid_ranks_candidates_and_labels_them(split):
    """summarize() of tune_grid rows gives the grid, <metric>_mean/_std/_n and rank 1 for the best mean."""
    from py_parsnip import linear_reg
    from py_rsample import vfold_cv
    from py_tune import tune, tune_grid
    from py_workflows import workflow
    from py_yardstick import mae, metric_set, rmse

    wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune(), mixture=0.5))
    grid = pd.DataFrame({"penalty": [0.5, 0.001, 5.0]})
    res = tune_grid(wf, vfold_cv(split[0], v=3, seed=1), grid=grid, metrics=metric_set(rmse, mae))
    summary = resamples.summarize(resamples.with_positions(res.metrics), res.grid, "rmse")
    expected = {"penalty", ".config", "rmse_mean", "rmse_std", "rmse_n", "mae_mean", "rank"}
    assert expected <= set(summary.columns)
    means = res.metrics[res.metrics["metric"] == "rmse"].groupby(".config")["value"].mean().sort_values()
    assert summary[".config"].tolist() == means.index.tolist()
    assert summary["rank"].tolist() == [1, 2, 3] and summary["rmse_n"].tolist() == [3, 3, 3]
    assert summary["penalty"].iloc[0] == pytest.approx(0.001)
    assert resamples.param_columns(res.grid) == ["penalty"] and resamples.param_columns(None) == []
    best = summary.iloc[0].to_dict()
    assert resamples.candidate_label(best, ["penalty"], 1) == "#1 penalty=0.001"


def test_candidate_label_plain_values_and_mean_std_with_text_and_nan():
    """candidate_label() falls back to .config; plain() unwraps numpy scalars; summaries skip non-numbers."""
    assert resamples.candidate_label({".config": "config_002"}, [], 2) == "#2 config_002"
    record = {"penalty": np.float64(0.000123456), "trees": np.int64(500), ".config": "c"}
    assert resamples.candidate_label(record, ["penalty", "trees"], 3) == "#3 penalty=0.0001235 trees=500"
    assert type(resamples.plain(np.int64(5))) is int and resamples.plain("x") == "x"
    rows = pd.DataFrame({"metric": ["rmse"] * 4, "value": [1.0, 3.0, "n/a", float("nan")]})
    mean, std = resamples.mean_std(rows, "rmse")
    assert mean == pytest.approx(2.0) and std == pytest.approx(math.sqrt(2.0))
    assert resamples.cv_summary(rows)["rmse"]["n"] == 2
    assert math.isnan(resamples.mean_std(rows, "mae")[0])


# == workflowsets ================================================================================
def test_workflowset_fit_resamples_entries_preprocessors_and_info(split):
    """entries()/errors() read a WorkflowSet's results; preprocessors() and info_table() read the set."""
    from py_parsnip import linear_reg
    from py_rsample import vfold_cv
    from py_workflows import workflow
    from py_workflowsets import WorkflowSet

    rec = _pca_recipe()
    ws = WorkflowSet.from_workflows([("lm", workflow().add_formula("y ~ x1 + x2").add_model(linear_reg())),
                                     ("pca", workflow().add_recipe(rec).add_model(linear_reg()))])
    results = ws.fit_resamples(vfold_cv(split[0], v=3, seed=1))
    assert set(workflowsets.entries(results, "tune_results")) == {"lm", "pca"}
    assert workflowsets.entries(results, "nested_fit") == {} and workflowsets.errors(results) == {}
    assert workflowsets.preprocessors(ws) == {
        "lm": {"preprocessor": "formula", "formula": "y ~ x1 + x2"},
        "pca": {"preprocessor": "recipe", "steps": [type(s).__name__ for s in rec.steps]}}
    assert workflowsets.model_types(ws) == {"lm": "linear_reg", "pca": "linear_reg"}
    info = workflowsets.info_table(ws, ["lm"], {"pca": "boom"})
    assert info["status"].tolist() == ["ok", "failed"]
    assert info["error"].isna().tolist() == [True, False] and info["error"].iloc[1] == "boom"
    assert all(isinstance(v, str) for v in [*info["info"], *info["option"]])
    assert "status" not in ws.info.columns  # the set's own frame is not changed


def test_resample_scores_untuned_and_best_candidate_when_tuned(split):
    """resample_scores() keeps all rows untuned, only the best candidate's rows tuned, in metric-set order."""
    from py_parsnip import linear_reg
    from py_rsample import vfold_cv
    from py_tune import TuneResults, tune
    from py_workflows import workflow
    from py_workflowsets import WorkflowSet
    from py_yardstick import mae, metric_set, rmse

    folds = vfold_cv(split[0], v=3, seed=1)
    plain_set = _two_workflow_set()
    plain_results = plain_set.fit_resamples(folds, metrics=metric_set(mae, rmse))
    untuned = workflowsets.entries(plain_results, "tune_results")
    rows, names = workflowsets.resample_scores(untuned, False, metric_set(mae, rmse))
    assert names == ["mae", "rmse"] and set(rows) == {"lm", "other"}
    assert len(rows["lm"]) == 6 and rows["lm"]["position"].tolist() == [0, 0, 1, 1, 2, 2]

    spec = linear_reg(penalty=tune(), mixture=0.5)
    tuned_set = WorkflowSet.from_workflows([("a", workflow().add_formula("y ~ x1 + x2").add_model(spec)),
                                            ("b", workflow().add_formula("y ~ x1").add_model(spec))])
    grid = pd.DataFrame({"penalty": [0.5, 0.001, 5.0]})
    tuned = workflowsets.entries(tuned_set.tune_grid(folds, grid=grid, metrics=metric_set(rmse, mae)),
                                 "tune_results")
    rows, names = workflowsets.resample_scores(tuned, True, metric_set(rmse, mae))
    assert names == ["rmse", "mae"]
    for wid, entry in tuned.items():
        m = entry["tune_results"].metrics
        best = m[m["metric"] == "rmse"].groupby(".config")["value"].mean().idxmin()
        assert set(rows[wid][".config"]) == {best} and len(rows[wid]) == 6
    skipped, _ = workflowsets.resample_scores({"empty": {"tune_results": TuneResults()}}, False, None)
    assert skipped == {}


def test_split_metric_prefers_rmse_then_the_first_numeric_metric(split):
    """split_metric() is rmse when the split has it, else its first numeric metric, else rmse."""
    stats = _formula_fit(split[0]).evaluate(split[1]).extract_outputs()[2]
    assert workflowsets.split_metric(stats, "train") == "rmse"
    no_rmse = stats[stats["metric"] != "rmse"].reset_index(drop=True)
    first = no_rmse[no_rmse["split"] == "test"]["metric"].iloc[0]
    assert workflowsets.split_metric(no_rmse, "test") == first != "rmse"
    assert workflowsets.split_metric(stats, "validation") == "rmse"


def test_fit_nested_scores_per_group_errors_and_entries(data):
    """nested_scores() reads each group's split metrics and their spread; a failed workflow is an error."""
    ws = _two_workflow_set(second="y ~ nope")
    results = ws.fit_nested(data.drop(columns=["date"]), group_col="store")
    ok = workflowsets.entries(results, "nested_fit")
    assert set(ok) == {"lm"}
    failed = workflowsets.errors(results)
    stored = next(r["error"] for r in results.results if r["wflow_id"] == "other")
    assert failed == {"other": stored} and stored
    per_wf, summaries = workflowsets.nested_scores(ok, "store", "train")
    stats = ok["lm"]["stats"]
    expected = {g: float(stats[(stats["store"] == g) & (stats["split"] == "train")
                               & (stats["metric"] == "rmse")]["value"].iloc[0]) for g in "ABCD"}
    assert list(per_wf["lm"]) == list("ABCD")
    assert {g: m["train_rmse"] for g, m in per_wf["lm"].items()} == pytest.approx(expected)
    assert all(k.startswith("train_") for m in per_wf["lm"].values() for k in m)
    assert summaries["lm"]["train_rmse_mean"] == pytest.approx(np.mean(list(expected.values())))
    assert summaries["lm"]["train_rmse_std"] == pytest.approx(np.std(list(expected.values()), ddof=1))
    assert workflowsets.nested_scores(ok, "store", "test") == ({"lm": {g: {} for g in "ABCD"}}, {"lm": {}})


def test_fit_global_errors_and_entries(data):
    """A fit_global WorkflowSet result lists its fitted entries by wflow_id and its failure's error text."""
    results = _two_workflow_set(second="y ~ nope").fit_global(data, "store")
    ok = workflowsets.entries(results, "fit")
    assert set(ok) == {"lm"} and workflowsets.errors(results).keys() == {"other"}
    assert workflowsets.split_metric(ok["lm"]["metrics"], "train") == "rmse"


def test_nested_resamples_fold_rows_metric_and_across_groups_match_the_library(data):
    """group_fold_rows() positions each group's folds; across_groups() equals the library's by_group=False."""
    from py_yardstick import mae, metric_set, rmse

    results = _two_workflow_set().fit_nested_resamples(_group_cv(data), group_col="store",
                                                       metrics=metric_set(rmse, mae))
    by_wf = workflowsets.group_fold_rows(results)
    assert set(by_wf) == {"lm", "other"} and set(by_wf["lm"]) == set("ABCD")
    assert sorted(set(by_wf["lm"]["A"]["position"])) == [0, 1, 2, 3]
    assert workflowsets.group_metric(by_wf, metric_set(mae, rmse)) == "mae"
    assert workflowsets.group_metric(by_wf, None) == "rmse"
    assert workflowsets.group_metric({}, None) == common.DEFAULT_METRIC
    library = results.collect_metrics(by_group=False).set_index(["wflow_id", "metric"])
    for wid, groups in by_wf.items():
        mine = workflowsets.across_groups(groups)
        for metric in ("rmse", "mae"):
            row = library.loc[(wid, metric)]
            assert mine[f"cv_{metric}_mean"] == pytest.approx(float(row["mean"]))
            assert mine[f"cv_{metric}_std"] == pytest.approx(float(row["std"]))
            assert mine[f"cv_{metric}_n"] == int(row["n"]) == 16


def test_group_fold_rows_of_global_resamples_take_positions_from_the_fold_column(data):
    """fit_global_resamples() rows number folds in "fold"; group_fold_rows() turns them into positions."""
    results = _two_workflow_set().fit_global_resamples(data, _group_cv(data), group_col="store")
    by_wf = workflowsets.group_fold_rows(results)
    rows = by_wf["lm"]["B"]
    assert (rows["position"] == rows["fold"].astype(int) - 1).all()
    assert set(rows[".config"]) == {"config_001"}


def test_group_resample_params_count_the_folds_of_every_group(data, split):
    """group_resample_params() reads one group's settings and sums all groups' folds."""
    from py_rsample import vfold_cv

    params = workflowsets.group_resample_params(_group_cv(data))
    assert params["resamples.type"] == "time_series_cv" and params["resamples.n"] == 16
    assert params["resamples.initial"] == "20" and params["resamples.assess"] == "5"
    folds = vfold_cv(split[0], v=3, seed=1)
    assert workflowsets.group_resample_params(folds) == resamples.resample_params(folds)
    assert workflowsets.group_resample_params(None) == {}


def test_best_by_group_picks_the_best_workflow_of_each_group_for_either_direction(data):
    """best_by_group() takes the lowest mean for rmse and the highest for r_squared, in every group."""
    results = _two_workflow_set().fit_nested_resamples(_group_cv(data), group_col="store")
    table = results.collect_metrics(by_group=True)
    for metric, pick in (("rmse", "idxmin"), ("r_squared", "idxmax")):
        best = workflowsets.best_by_group(results, metric)
        assert list(best.columns) == ["group", "wflow_id", "mean", "std", "preprocessor", "model"]
        assert sorted(best["group"]) == list("ABCD")
        rows = table[table["metric"] == metric]
        for group, wid in zip(best["group"], best["wflow_id"]):
            part = rows[rows["group"] == group].set_index("wflow_id")["mean"]
            assert wid == getattr(part, pick)(), (metric, group)
    assert (workflowsets.best_by_group(results, "rmse")["wflow_id"] == "lm").all()


def test_outputs_of_a_results_object_are_read_afresh(data):
    """outputs() of WorkflowSetNestedResults (no fit state) calls the library each time, never the cache."""
    train, _ = _grouped_halves(data)
    results = _two_workflow_set().fit_nested(train, group_col="store")
    first, second = fits.outputs(results), fits.outputs(results)
    assert first.stats is not second.stats
    pd.testing.assert_frame_equal(first.outputs, second.outputs)
    assert set(first.outputs["wflow_id"]) == {"lm", "other"}
