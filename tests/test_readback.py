"""Read-back: load_outputs() and collect() over runs logged by autolog() into a real sqlite store,
compared with the library's own frames and with the stored tables."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pandas as pd
import pytest
from conftest import REAL, STANDIN
from helpers import top_runs

import tidymlflow
from tidymlflow.readback import ID_COLUMNS, TABLES, collect, load_outputs

FORMULA = "y ~ x1 + x2"


def _wf(formula=FORMULA, name=None, **args):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    wf = workflow().add_formula(formula).add_model(linear_reg(**args))
    return wf.add_model_name(name) if name else wf


def _folds(train, v=3):
    from py_rsample import vfold_cv

    return vfold_cv(train, v=v, seed=5)


def _expected(frames):
    return tuple(f.reset_index(drop=True) for f in frames)


def _assert_outputs_equal(got, frames):
    for read, frame in zip(got, _expected(frames)):
        pd.testing.assert_frame_equal(read, frame)  # dtypes included


def _run(store, call):
    """The one top-level run of a tidymlflow call (by its ``tidymlflow.call`` tag, not its name)."""
    runs = [r for r in top_runs(store) if r.data.tags.get("tidymlflow.call") == call]
    assert len(runs) == 1, [r.data.tags.get("tidymlflow.call") for r in top_runs(store)]
    return runs[0]


def _rows(collected, run_id):
    part = collected[collected["run_id"] == run_id]
    return part.drop(columns=[c for c in ID_COLUMNS if c in part]).reset_index(drop=True)


def _mixed_experiment(data, split):
    """One experiment holding a single fit with evaluate, a nested fit, a tune_grid and a
    WorkflowSet.fit_resamples, logged in that order."""
    tidymlflow.autolog(log_plots=False, max_tuning_runs=2)  # before the imports: names bind patched
    from py_parsnip import linear_reg
    from py_tune import grid_regular, tune, tune_grid
    from py_workflowsets import WorkflowSet

    train, test = split
    single = _wf().fit(train).evaluate(test)
    nested = _wf().fit_nested(data.drop(columns=["date"]), "store")
    tune_grid(_wf(penalty=tune()), _folds(train), grid=grid_regular({"penalty": {"range": (0.01, 1.0)}},
                                                                    levels=3))
    WorkflowSet.from_cross(["y ~ x1", FORMULA], [linear_reg()]).fit_resamples(_folds(train))
    return single, nested


# -- load_outputs -------------------------------------------------------------------------------
def test_load_outputs_single_fit_with_evaluate(store, split):
    train, test = split
    tidymlflow.autolog(log_plots=False)
    fit = _wf().fit(train).evaluate(test)
    (run,) = store.runs()
    got = load_outputs(run.info.run_id)
    _assert_outputs_equal(got, fit.extract_outputs())
    stats = got[2].set_index(["split", "metric"])["value"]
    assert type(stats[("test", "rmse")]) is float and stats[("train", "n_obs_train")] == 120
    assert type(stats[("train", "n_obs_train")]) is int and stats[("", "formula")] == FORMULA
    assert set(got[0]["split"]) == {"train", "test"}
    # the same through an explicit client, and through a tracking URI
    _assert_outputs_equal(load_outputs(run.info.run_id, client=store.client), fit.extract_outputs())
    _assert_outputs_equal(load_outputs(run.info.run_id, tracking_uri=mlflow.get_tracking_uri()),
                          fit.extract_outputs())
    with pytest.raises(ValueError, match="not both"):
        load_outputs(run.info.run_id, client=store.client, tracking_uri=mlflow.get_tracking_uri())


def test_load_outputs_nested_fit_keeps_the_group_column(store, data):
    tidymlflow.autolog(log_plots=False)
    nested = _wf().fit_nested(data.drop(columns=["date"]), "store")
    parent = _run(store, "Workflow.fit_nested")
    got = load_outputs(parent.info.run_id)
    _assert_outputs_equal(got, nested.extract_outputs())
    assert all(set(frame["store"]) == {"A", "B", "C", "D"} for frame in got)
    child = store.children(parent)[0]
    with pytest.raises(LookupError) as info:
        load_outputs(child.info.run_id)
    message = str(info.value)
    assert child.info.run_id in message and "tidymodels/outputs.parquet" in message
    assert f"parent run {parent.info.run_id}" in message and "nested" in message


def test_load_outputs_of_a_run_without_tables_names_run_and_paths(store, split):
    tidymlflow.autolog(log_plots=False)
    from py_tune import fit_resamples

    fit_resamples(_wf(), _folds(split[0]))
    (run,) = store.runs()
    with pytest.raises(LookupError, match=run.info.run_id) as info:
        load_outputs(run.info.run_id)
    for name in ("outputs", "coefficients", "stats"):
        assert f"tidymodels/{name}.parquet" in str(info.value)
    assert "log_outputs" in str(info.value)


def test_stats_value_text_is_read_back_as_the_writer_wrote_it(tmp_path):
    """The writer's text fallback for mixed object columns, inverted: numbers as int / float, text
    as text, None and NaN as NaN; without the fallback, object columns stay object."""
    import math

    import numpy as np

    from tidymlflow._jobs.stage import Stage
    from tidymlflow._recording.recorder import Recorder
    from tidymlflow.readback import _read_table

    values = [0.1 + 0.2, 120, np.float64(1e-7), np.int64(-3), float("inf"), "y ~ x1", "2021-01-01",
              "1_000", " 7", None, math.nan]
    stats = pd.DataFrame({"split": ["train"] * len(values), "metric": [f"m{i}" for i in range(len(values))],
                          "value": pd.Series(values, dtype=object),
                          "note": pd.Series(["a", None] * 5 + ["b"], dtype=object)})
    stage = Stage(str(tmp_path))
    writer = Recorder(stage, 0, "run")
    writer.log_table(stats, "tidymodels/stats.parquet")
    writer.log_table(stats.iloc[:5], "tidymodels/other/stats.parquet")  # all numbers: no text
    try:
        read = _read_table(writer.artifact_path("tidymodels/stats.parquet"), "tidymodels/stats.parquet")
        only_numbers = _read_table(writer.artifact_path("tidymodels/other/stats.parquet"),
                                   "tidymodels/stats.parquet")
    finally:
        stage.discard()
    assert read["value"].dtype == object
    got = read["value"].tolist()
    assert got[:9] == [0.1 + 0.2, 120, 1e-7, -3, float("inf"), "y ~ x1", "2021-01-01", "1_000", " 7"]
    assert [type(v) for v in got[:5]] == [float, int, float, int, float]
    assert all(isinstance(v, float) and math.isnan(v) for v in got[9:])
    assert read["note"].fillna("-").tolist() == ["a", "-"] * 5 + ["b"]
    assert only_numbers["value"].dtype == object and only_numbers["note"].dtype == object
    assert only_numbers["note"].tolist() == ["a", None, "a", None, "a"]
    assert only_numbers["value"].tolist() == [0.1 + 0.2, 120, 1e-7, -3, float("inf")]


# -- collect ------------------------------------------------------------------------------------
def test_collect_over_a_mixed_experiment(store, data, split):
    single, nested = _mixed_experiment(data, split)
    fit_run, nested_run = _run(store, "Workflow.fit"), _run(store, "Workflow.fit_nested")
    tune_run, ws_run = _run(store, "tune_grid"), _run(store, "WorkflowSet.fit_resamples")

    stats = collect("stats")
    # no run holding stats has a wflow_id / group / tune.config tag: the table's columns follow
    assert list(stats.columns[:6]) == [*ID_COLUMNS, "split", "metric", "value"]
    assert "tags.group" not in stats and stats["value"].dtype == object
    ids = [fit_run.info.run_id, nested_run.info.run_id]
    assert stats["run_id"].drop_duplicates().tolist() == ids  # start-time order
    assert stats["run_name"].drop_duplicates().tolist() == [fit_run.info.run_name, nested_run.info.run_name]
    assert stats["parent_run_id"].isna().all()
    for run_id, fit in zip(ids, (single, nested)):
        expected = fit.extract_outputs()[2].reset_index(drop=True)
        pd.testing.assert_frame_equal(_rows(stats, run_id)[list(expected.columns)], expected)
    for same in ("tidymodels/stats", "stats.parquet", "tidymodels/stats.parquet"):
        pd.testing.assert_frame_equal(collect(same), stats)
    outputs = collect("outputs")
    assert len(outputs) == sum(len(f.extract_outputs()[0]) for f in (single, nested))

    summary = collect("tune/summary")
    assert set(summary["run_id"]) == {tune_run.info.run_id}
    assert set(summary["run_name"]) == {tune_run.info.run_name}
    pd.testing.assert_frame_equal(_rows(summary, tune_run.info.run_id),
                                  store.table(tune_run, "tune/summary.parquet"))
    assert len(collect("tune/metrics")) == len(store.table(tune_run, "tune/metrics.parquet"))

    ranked = collect("workflowset/rank_results")
    assert set(ranked["run_id"]) == {ws_run.info.run_id}
    pd.testing.assert_frame_equal(_rows(ranked, ws_run.info.run_id),
                                  store.table(ws_run, "workflowset/rank_results.parquet"))

    folds = collect("resamples/folds")
    assert folds["run_id"].tolist() == [tune_run.info.run_id] * 3 + [ws_run.info.run_id] * 3
    assert folds["fold"].tolist() == store.table(tune_run, "resamples/folds.parquet")["fold"].tolist() * 2

    # experiment selection and filters
    name = store.client.get_experiment(store.experiment_id).name
    pd.testing.assert_frame_equal(collect("stats", name), stats)
    pd.testing.assert_frame_equal(collect("stats", [name]), stats)
    pd.testing.assert_frame_equal(collect("stats", experiment_ids=[store.experiment_id],
                                          client=store.client), stats)
    only = collect("stats", filter_string="tags.`tidymlflow.call` = 'Workflow.fit'")
    assert set(only["run_id"]) == {fit_run.info.run_id}
    latest = collect("stats", max_runs=1)
    assert set(latest["run_id"]) == {nested_run.info.run_id}

    # a table nobody logged here: an empty frame with the id columns
    for absent in ("tune/predictions", "resamples/metrics", "recipe/learned/0_step_normalize"):
        empty = collect(absent)
        assert empty.empty and list(empty.columns) == list(ID_COLUMNS)


def test_collect_adds_tag_columns(store, data, split):
    from py_parsnip import linear_reg
    from py_workflowsets import WorkflowSet

    tidymlflow.autolog(log_plots=False)
    ws = WorkflowSet.from_cross(["y ~ x1", FORMULA], [linear_reg()])
    ws.fit_global(data.drop(columns=["date"]), "store")
    children = [r for r in store.runs() if "wflow_id" in r.data.tags]
    assert len(children) == 2

    coefs = collect("coefficients")
    assert list(coefs.columns[:4]) == [*ID_COLUMNS, "wflow_id"]
    assert "tune.config" not in coefs and "group" not in coefs.columns[:4]
    assert coefs["run_id"].nunique() == 2
    parent = _run(store, "WorkflowSet.fit_global").info.run_id
    for child in children:
        rows = coefs[coefs["run_id"] == child.info.run_id]
        assert set(rows["wflow_id"]) == {child.data.tags["wflow_id"]}
        assert set(rows["run_name"]) == {child.info.run_name}
        assert set(rows["parent_run_id"]) == {parent}
        pd.testing.assert_frame_equal(_rows(coefs, child.info.run_id).drop(columns="wflow_id"),
                                      store.table(child, "tidymodels/coefficients.parquet"))

    # a run tagged `group` whose table has its own `group` column: the table's column is kept
    train, _ = split
    with mlflow.start_run(run_name="mine", tags={"group": "north"}) as mine:
        fit = _wf().fit(train)
    coefs = collect("coefficients")
    assert list(coefs.columns[:5]) == [*ID_COLUMNS, "wflow_id", "tags.group"]
    rows = coefs[coefs["run_id"] == mine.info.run_id]
    assert set(rows["tags.group"]) == {"north"} and rows["wflow_id"].isna().all()
    assert rows["group"].tolist() == fit.extract_outputs()[1]["group"].tolist()
    assert coefs["run_id"].drop_duplicates().tolist()[-1] == mine.info.run_id


def test_collect_recipe_table(store, split):
    from py_parsnip import linear_reg
    from py_recipes import all_numeric_predictors, recipe
    from py_workflows import workflow

    tidymlflow.autolog(log_plots=False)
    rec = recipe().step_normalize(all_numeric_predictors())
    workflow().add_recipe(rec).add_model(linear_reg()).fit(split[0])
    (run,) = store.runs()
    learned = collect("recipe/learned/0_step_normalize")
    assert set(learned["run_id"]) == {run.info.run_id} and len(learned) > 0
    pd.testing.assert_frame_equal(_rows(learned, run.info.run_id),
                                  store.table(run, "recipe/learned/0_step_normalize.parquet"))


def test_remote_artifact_route_reads_the_same(store, data, monkeypatch):
    """A store whose artifacts are not local files (s3:, mlflow-artifacts:, ...) goes through
    mlflow.artifacts.list_artifacts / download_artifacts; forced here on the local store."""
    from tidymlflow import readback

    tidymlflow.autolog(log_plots=False)
    nested = _wf().fit_nested(data.drop(columns=["date"]), "store")
    parent = _run(store, "Workflow.fit_nested")
    local = collect("stats")
    monkeypatch.setattr(readback, "_local_path", lambda uri: None)
    _assert_outputs_equal(load_outputs(parent.info.run_id), nested.extract_outputs())
    pd.testing.assert_frame_equal(collect("stats"), local)
    assert collect("tune/summary").empty
    with pytest.raises(LookupError, match="nested fit keeps them on its parent run"):
        load_outputs(store.children(parent)[0].info.run_id)


def test_collect_rejects_names_it_never_logs(store):
    with pytest.raises(ValueError, match="valid names") as info:
        collect("tune/summaries")
    for name in ("outputs", "stats", *TABLES, "recipe/learned/<i>_<step>"):
        assert name in str(info.value)
    for bad in ("predictions", "recipe/steps", "tidymodels/stat", ""):
        with pytest.raises(ValueError, match="valid names"):
            collect(bad)
    with pytest.raises(ValueError, match="no experiment named 'nope-not-here'"):
        collect("stats", ["nope-not-here"])
    with pytest.raises(ValueError, match="not both"):
        collect("stats", ["x"], experiment_ids=["0"])
    for kwargs in ({"max_runs": 0}, {"max_workers": 0}, {"max_runs": 1.5}):
        with pytest.raises(ValueError):
            collect("stats", **kwargs)


def test_collect_fifty_runs(store, split):
    train, _ = split
    small = train.iloc[:40]
    tidymlflow.autolog(log_plots=False, log_datasets=False)
    fits = [_wf("y ~ x1", name=f"fit{i:02d}").fit(small) for i in range(50)]
    assert len(store.runs()) == 50
    frames = [f.extract_outputs()[2].reset_index(drop=True) for f in fits]

    stats = collect("stats")
    assert stats["run_id"].nunique() == 50
    models = stats.drop_duplicates("run_id")["model"].tolist()  # the model name of each run's fit
    assert models == [f"fit{i:02d}" for i in range(50)]  # start-time order = fit order
    sizes = stats.groupby("run_id", sort=False).size()
    assert sizes.tolist() == [len(f) for f in frames]
    assert len(stats) == sum(len(f) for f in frames)
    for run_id, frame in zip(sizes.index[::7], frames[::7]):
        pd.testing.assert_frame_equal(_rows(stats, run_id), frame)

    pd.testing.assert_frame_equal(collect("stats", max_workers=1), stats)
    recent = collect("stats", max_runs=5)
    assert recent.drop_duplicates("run_id")["model"].tolist() == [f"fit{i:02d}" for i in range(45, 50)]


def test_importing_readback_loads_neither_mlflow_nor_pandas(tmp_path):
    env = dict(os.environ)
    if not REAL:
        env["PYTHONPATH"] = os.pathsep.join([str(STANDIN), env.get("PYTHONPATH", "")])
    code = ("import sys, tidymlflow.readback; "
            "print([m for m in ('mlflow', 'pandas', 'pyarrow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
