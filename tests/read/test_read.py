"""The pure readers (``tidymlflow._read``) on their own: no store, no MLflow."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd

from tidymlflow._read import common, fits, recipes, resamples


def test_readers_import_no_mlflow_and_no_plotting():
    code = ("import sys; import tidymlflow._read.common, tidymlflow._read.fits, tidymlflow._read.resamples, "
            "tidymlflow._read.recipes, tidymlflow._read.workflowsets; "
            "print(sorted(m for m in ('mlflow', 'matplotlib', 'plotly') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_rank_order_lower_and_higher_is_better_missing_last_ties_stable():
    scores = {"a": 2.0, "b": float("nan"), "c": 1.0, "d": None, "e": 1.0, "f": np.float32(3.0)}
    assert common.rank_order(scores, "rmse") == ["c", "e", "a", "f", "b", "d"]
    assert common.rank_order(scores, "rsq") == ["f", "a", "c", "e", "b", "d"]
    assert common.rank_order({}, "rmse") == []


def test_summarize_ranks_with_the_shared_rule():
    rows = pd.DataFrame({".config": ["c1", "c1", "c2", "c2", "c3", "c3"],
                         "metric": ["rmse"] * 6, "value": [2.0, 2.0, 1.0, 1.0, math.nan, math.nan],
                         ".resample": ["Fold1", "Fold2"] * 3})
    summary = resamples.summarize(resamples.with_positions(rows), None, "rmse")
    assert summary[".config"].tolist() == ["c2", "c1", "c3"]
    assert summary["rank"].tolist() == [1, 2, pd.NA]


def test_stats_metrics_splits_numbers_from_text():
    stats = pd.DataFrame({"split": ["train", "test", "", "train", "train"],
                          "metric": ["rmse", "rmse", "aic", "formula", "flag"],
                          "value": [1.5, 2.5, 10, "y ~ x", True]})
    metrics, tags = common.stats_metrics(stats)
    assert metrics == {"train_rmse": 1.5, "test_rmse": 2.5, "aic": 10.0}
    assert tags == {"stats.formula": "y ~ x", "stats.flag": "True"}
    assert common.stats_metrics(stats, splits={"test"})[0] == {"test_rmse": 2.5}


def test_fit_info_and_outputs_of_a_workflow_fit(split):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    fit = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(split[0])
    info = fits.describe(fit)
    assert (info.preprocessor, info.formula, info.name) == ("formula", "y ~ x1 + x2", "linear_reg")
    assert info.params()["model_type"] == "linear_reg" and info.params()["formula"] == "y ~ x1 + x2"
    assert info.tags() == {"model_type": "linear_reg", "engine": fit.workflow.spec.engine,
                           "preprocessor": "formula"}
    out = fits.outputs(fit)
    pd.testing.assert_frame_equal(out.stats, fit.extract_outputs()[2])
    assert fits.inner_model_fit(fit) is fit.fit
    unfitted = fits.describe_workflow(fit.workflow)
    assert unfitted is not None and unfitted.params() == info.params()


def test_recipe_steps_read_settings_and_learned_state(split):
    from py_recipes import recipe

    rec = recipe().step_normalize()
    prepared = rec.prep(split[0])
    steps = recipes.steps(rec, prepared)
    assert [s.name for s in steps] == ["step_normalize"]
    entry = steps[0].summary()
    assert entry["step"] == "step_normalize" and "learned" in entry
    table = recipes.learned_table(steps[0].state or {})
    assert table is not None and set(table.columns) == {"state", "column", "index", "value", "text"}
    unprepared = recipes.steps(rec)
    assert unprepared[0].state is None and "learned" not in unprepared[0].summary()
