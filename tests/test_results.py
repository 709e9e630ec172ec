"""load_results: a logged tuning or WorkflowSet comparison back as the library's own object, in a
fresh interpreter with no autolog, answering exactly as the original did (equal DataFrames, equal
selections) and finalizing to a workflow that fits like the original's."""

from __future__ import annotations

import json
import pickle
import warnings

import pandas as pd
import pytest
from helpers import python

import tidymlflow
from tidymlflow.results import NotLogged, RestoreError

PARAM_INFO = {"penalty": {"range": (0.001, 1.0)}, "mixture": {"range": (0.0, 1.0)}}


def _tuned():
    from py_parsnip import linear_reg
    from py_tune import tune
    from py_workflows import workflow

    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune(), mixture=tune()))


def _folds(train, v=4):
    from py_rsample import vfold_cv

    return vfold_cv(train, v=v, seed=3)


#: What the fresh interpreter computes from the restored object, by name.
ANSWERS = {
    "tune": {
        "collect_metrics": "r.collect_metrics()",
        "collect_predictions": "r.collect_predictions()",
        "show_best": "r.show_best('rmse', n=3, maximize=False)",
        "select_best": "r.select_best('rmse', maximize=False)",
        "one_std_err": "r.select_by_one_std_err('rmse', maximize=False)",
        "grid": "r.grid",
        "method": "r.method",
    },
    "set": {
        "collect_metrics": "r.collect_metrics()",
        "raw_metrics": "r.collect_metrics(summarize=False)",
        "rank_results": "r.rank_results('rmse', n=10)",
        "best_per_model": "r.rank_results('rmse', select_best=True)",
        "info": "r.workflow_set.info",
        "ids": "list(r.workflow_set.workflows)",
    },
}


ANSWERS["nested"] = {
    "by_group": "r.collect_metrics(by_group=True, split='all')",
    "overall": "r.collect_metrics(by_group=False, split='all')",
    "rank_train": "r.rank_results('rmse', split='train')",
    "rank_test": "r.rank_results('rmse', split='test')",
    "best": "r.extract_best_workflow('rmse', split='train')",
    "best_by_group": "r.extract_best_workflow('rmse', split='train', by_group=True)",
    "outputs": "r.extract_outputs()",
    "group_col": "r.group_col",
    "drawn": "type(r.autoplot('rmse', split='train')).__name__ if hasattr(r, 'autoplot') else None",
}
ANSWERS["global"] = {"metrics": "r.collect_metrics()", "raw": "r.collect_metrics(summarize=False)"}
ANSWERS["group_resamples"] = {
    "by_group": "r.collect_metrics(by_group=True)",
    "overall": "r.collect_metrics(by_group=False)",
    "raw": "r.collect_metrics(by_group=True, summarize=False)",
    "rank": "r.rank_results('rmse', by_group=False)",
    "rank_by_group": "r.rank_results('rmse', by_group=True)",
    "best": "r.extract_best_workflow('rmse') if hasattr(r, 'extract_best_workflow') else None",
    "group_col": "r.group_col",
    "drawn": "type(r.autoplot('rmse')).__name__ if hasattr(r, 'autoplot') else None",
}


def _answer(obj, expr):
    """What an expression gives, or the error it raises (the restored object must raise alike)."""
    try:
        return eval(expr, {"r": obj})
    except Exception as exc:  # noqa: BLE001 - compared with the original's
        return ("raised", type(exc).__name__, str(exc))


def _answers(obj, kind):
    return {name: _answer(obj, expr) for name, expr in ANSWERS[kind].items()}


def _restored(cases, tracking_uri, tmp_path):
    """``{label: (run_id, kind, extra)}`` -> ``{label: (module, class, answers)}``: each run
    restored and answered in one fresh interpreter without autolog; ``extra`` is code run with
    ``r`` (the restored object) and ``answers`` (add to it)."""
    out = tmp_path / "answers.pkl"
    plan = {label: (run_id, ANSWERS[kind], extra) for label, (run_id, kind, extra) in cases.items()}
    code = f"""
        import pickle, sys
        import tidymlflow
        assert not getattr(tidymlflow, "_autologged", False)
        def answer(r, expr):
            try:
                return eval(expr, {{"r": r}})
            except Exception as exc:
                return ("raised", type(exc).__name__, str(exc))
        found = {{}}
        for label, (run_id, exprs, extra) in {plan!r}.items():
            r = tidymlflow.load_results(run_id, tracking_uri={tracking_uri!r})
            answers = {{name: answer(r, expr) for name, expr in exprs.items()}}
            exec(extra, {{"r": r, "answers": answers, "pickle": pickle}})
            found[label] = (type(r).__module__, type(r).__qualname__, answers)
        pickle.dump(found, open({str(out)!r}, "wb"))
    """
    done = python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    return pickle.loads(out.read_bytes())


def _assert_same(got, want, label=""):
    assert set(got) == set(want), label
    for name, value in want.items():
        where = f"{label}: {name}"
        if isinstance(value, tuple) and all(isinstance(v, pd.DataFrame) for v in value):
            assert isinstance(got[name], tuple) and len(got[name]) == len(value), where
            for g, w in zip(got[name], value):
                pd.testing.assert_frame_equal(g, w, check_exact=True, obj=where)
        elif isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(got[name], value, check_exact=True, obj=where)
        else:
            assert got[name] == value, where


def _tuners(train):
    import py_tune
    from py_tune import grid_regular

    folds, grid = _folds(train), grid_regular(PARAM_INFO, levels=2)
    return {
        "fit_resamples": lambda: py_tune.fit_resamples(_tuned().spec and _fixed(), folds,
                                                       control={"save_pred": True}),
        "tune_grid": lambda: py_tune.tune_grid(_tuned(), folds, grid=grid),
        "tune_bayes": lambda: py_tune.tune_bayes(_tuned(), folds, PARAM_INFO,
                                                 control=py_tune.control_bayes(n_initial=3, n_iter=2,
                                                                               save_workflow=True)),
        "tune_sim_anneal": lambda: py_tune.tune_sim_anneal(_tuned(), folds, PARAM_INFO,
                                                           control=py_tune.control_sim_anneal(
                                                               max_iter=3, save_workflow=True)),
        "tune_race_anova": lambda: py_tune.tune_race_anova(_tuned(), folds, grid=grid,
                                                           control=py_tune.control_race(burn_in=3)),
        "tune_race_win_loss": lambda: py_tune.tune_race_win_loss(_tuned(), folds, grid=grid,
                                                                 control=py_tune.control_race(burn_in=3)),
    }


def _fixed():
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=0.1))


#: The settings each tuner's restore.json keeps on record (see _tuners).
CONTROL = {"fit_resamples": ("save_pred", True), "tune_bayes": ("n_initial", 3),
           "tune_sim_anneal": ("max_iter", 3), "tune_race_anova": ("burn_in", 3),
           "tune_race_win_loss": ("burn_in", 3)}


def test_every_tuner_restores_in_a_fresh_interpreter(store, split, tracking_uri, tmp_path):
    """fit_resamples and the five tuners, each cut to 2 child runs (a cut run still restores every
    candidate): the restored TuneResults answers as the original, and its finalized workflow fits
    like the original's."""
    import py_tune

    train, test = split
    tidymlflow.autolog(log_plots=False, max_tuning_runs=2)
    originals = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's own convergence and racing notes
        for tuner, call in _tuners(train).items():
            originals[tuner] = call()
    ids = {tuner: tidymlflow.run_id(results) for tuner, results in originals.items()}
    tidymlflow.autolog(disable=True)
    train.to_pickle(tmp_path / "train.pkl")
    test.to_pickle(tmp_path / "test.pkl")
    finalize = ("import py_tune; best = r.select_best('rmse', maximize=False); "
                "answers['final'] = py_tune.finalize_workflow(r.workflow, best).fit("
                f"pickle.load(open({str(tmp_path / 'train.pkl')!r}, 'rb'))).predict("
                f"pickle.load(open({str(tmp_path / 'test.pkl')!r}, 'rb')))")
    restored = _restored({t: (ids[t], "tune", finalize) for t in originals}, tracking_uri, tmp_path)
    for tuner, original in originals.items():
        module, name, got = restored[tuner]
        assert (module, name) == (type(original).__module__, type(original).__qualname__), tuner
        want = _answers(original, "tune")
        final = py_tune.finalize_workflow(original.workflow, want["select_best"])
        want["final"] = final.fit(train).predict(test)
        _assert_same(got, want, tuner)
        if tuner != "fit_resamples":
            assert original.grid[".config"].nunique() > 2, tuner  # more candidates than child runs
        local = store.client.download_artifacts(ids[tuner], "restore.json", str(tmp_path / tuner))
        with open(local, encoding="utf-8") as fh:
            payload = json.load(fh)
        assert payload["method"] == original.method, tuner
        if tuner in CONTROL:  # the tuning's settings are on record
            key, value = CONTROL[tuner]
            assert payload["control"][key] == value, tuner


def _workflow_set():
    from py_parsnip import linear_reg
    from py_workflowsets import WorkflowSet

    return WorkflowSet.from_cross(["y ~ x1", "y ~ x1 + x2"], [linear_reg(), linear_reg(penalty=0.5)])


def test_a_workflow_set_comparison_restores_in_a_fresh_interpreter(store, split, tracking_uri, tmp_path):
    """WorkflowSet.fit_resamples and tune_grid: the restored WorkflowSetResults answers as the
    original (autoplot draws where the library has one)."""
    from py_parsnip import linear_reg
    from py_tune import grid_regular, tune
    from py_workflowsets import WorkflowSet

    train, _ = split
    tidymlflow.autolog(log_plots=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = WorkflowSet.from_workflows([_tuned(), _tuned().__class__(preprocessor="y ~ x1",
                                                                       spec=linear_reg(penalty=tune()))])
        originals = {"fit_resamples": _workflow_set().fit_resamples(_folds(train)),
                     "tune_grid": ws.tune_grid(_folds(train), grid=grid_regular(PARAM_INFO, levels=2))}
    ids = {call: tidymlflow.run_id(results) for call, results in originals.items()}
    tidymlflow.autolog(disable=True)
    draw = ("answers['drawn'] = type(r.autoplot('rmse')).__name__ if hasattr(r, 'autoplot') else None; "
            "answers['tune_ids'] = [e['tune_results'].method for e in r.results]")
    restored = _restored({c: (ids[c], "set", draw) for c in originals}, tracking_uri, tmp_path)
    for call, original in originals.items():
        _module, name, got = restored[call]
        assert name == type(original).__qualname__, call
        want = _answers(original, "set")
        want["drawn"] = type(original.autoplot("rmse")).__name__ if hasattr(original, "autoplot") else None
        want["tune_ids"] = [e["tune_results"].method for e in original.results]
        _assert_same(got, want, call)


def test_a_recipe_workflow_is_pickled_only_when_asked(store, split, tracking_uri):
    tidymlflow.autolog(log_plots=False)  # before the import: the name is then the logged one
    from py_parsnip import linear_reg
    from py_recipes import all_numeric_predictors, recipe
    from py_tune import finalize_workflow, fit_resamples
    from py_workflows import workflow

    train, test = split
    frame = train.drop(columns=["date"])
    wf = workflow().add_recipe(recipe().step_normalize(all_numeric_predictors())).add_model(linear_reg())
    plain = fit_resamples(wf, _folds(frame))
    tidymlflow.autolog(log_plots=False, pickle_workflows=True)
    pickled = fit_resamples(wf, _folds(frame))
    ids = tidymlflow.run_id(plain), tidymlflow.run_id(pickled)
    tidymlflow.autolog(disable=True)

    restored = tidymlflow.load_results(ids[0], tracking_uri=tracking_uri)
    pd.testing.assert_frame_equal(restored.collect_metrics(), plain.collect_metrics(), check_exact=True)
    assert isinstance(restored.workflow, NotLogged)
    with pytest.raises(RestoreError, match=r"recipe.*pickle_workflows=True"):
        finalize_workflow(restored.workflow, {}).fit(frame)
    with pytest.raises(RestoreError, match="training data"):
        len(restored.resamples)
    names = {a.path for a in store.client.list_artifacts(ids[0], "restore")}
    assert not any(n.endswith(".pkl") for n in names)  # nothing pickled unless asked

    held = tidymlflow.load_results(ids[1], tracking_uri=tracking_uri)  # a pickle is loaded only when asked
    with pytest.raises(RestoreError, match=r"unpickle=True.*only for runs you trust"):
        held.workflow.fit(frame)
    again = tidymlflow.load_results(ids[1], tracking_uri=tracking_uri, unpickle=True)
    unseen = test.drop(columns=["date"])
    fitted = again.workflow.fit(frame).predict(unseen)
    pd.testing.assert_frame_equal(fitted, wf.fit(frame).predict(unseen), check_exact=True)


def test_runs_that_cannot_be_restored_say_why(store, split, tracking_uri, tmp_path):
    tidymlflow.autolog(log_plots=False)
    from py_tune import fit_resamples

    train, _ = split
    fit = _fixed().fit(train)
    results = fit_resamples(_fixed(), _folds(train))
    ids = tidymlflow.run_id(fit), tidymlflow.run_id(results)
    tidymlflow.autolog(disable=True)
    with pytest.raises(RestoreError, match=r"holds no restore.json.*this run: tidymlflow .*; this is"):
        tidymlflow.load_results(ids[0], tracking_uri=tracking_uri)
    local = store.client.download_artifacts(ids[1], "restore.json", str(tmp_path))
    with open(local, encoding="utf-8") as fh:
        payload = json.load(fh)
    assert payload["class"].endswith("TuneResults") and payload["format"] == 1
    assert payload["method"] == "grid" and payload["control"] == {}
    store.client.log_dict(ids[1], {**payload, "format": 99, "tidymlflow_version": "9.0"}, "restore.json")
    with pytest.raises(RestoreError, match=r"tidymlflow 9\.0 \(restore format 99\).*this tidymlflow"):
        tidymlflow.load_results(ids[1], tracking_uri=tracking_uri)
    spec = payload["workflow"]["description"]["spec"]
    broken = {**payload, "py_tidymodels_version": "0.0.1",
              "workflow": {"description": {**payload["workflow"]["description"],
                                           "spec": {**spec, "class": "py_parsnip.NoSuchSpec"}}}}
    store.client.log_dict(ids[1], broken, "restore.json")
    with pytest.raises(RestoreError, match=r"py-tidymodels 0\.0\.1.*restoring it with py-tidymodels"):
        tidymlflow.load_results(ids[1], tracking_uri=tracking_uri)


def test_a_hostile_restore_json_is_refused_before_anything_is_imported_or_read(store, split, tracking_uri,
                                                                              tmp_path):
    """A run is input from outside: restore.json may name py-tidymodels classes and the run's own
    files only; anything else is refused with the name it gave, nothing imported or read."""
    import sys

    tidymlflow.autolog(log_plots=False)
    from py_tune import fit_resamples

    run_id = tidymlflow.run_id(fit_resamples(_fixed(), _folds(split[0])))
    tidymlflow.autolog(disable=True)
    local = store.client.download_artifacts(run_id, "restore.json", str(tmp_path))
    with open(local, encoding="utf-8") as fh:
        payload = json.load(fh)
    (tmp_path / "secret.txt").write_text("not for a run")
    hostile = {
        "a module outside py-tidymodels": ({**payload, "class": "antigravity.fly"}, "antigravity"),
        "a function, not a class": ({**payload, "class": "py_tune.tune_grid"}, None),
        "a file outside the run": ({**payload, "tables": {**payload["tables"],
                                                           "metrics": "../../../secret.txt"}}, None),
        "an absolute path": ({**payload, "tables": {**payload["tables"],
                                                     "grid": str(tmp_path / "secret.txt")}}, None),
        "not an object": ([1, 2], None),
    }
    for what, (body, module) in hostile.items():
        store.client.log_dict(run_id, body, "restore.json")
        with pytest.raises(RestoreError, match="refused|not a JSON object|not a py-tidymodels"):
            tidymlflow.load_results(run_id, tracking_uri=tracking_uri)
        if module:
            assert module not in sys.modules, what


def _grouped(ws, data, call):
    """One grouped WorkflowSet call's results and the kind of its answers."""
    from py_rsample import time_series_nested_cv

    flat = data.drop(columns=["date"])
    if call in ("fit_nested", "fit_nested+evaluate"):
        results = ws.fit_nested(flat.groupby("store").head(30).reset_index(drop=True), group_col="store")
        if call == "fit_nested+evaluate":
            results.evaluate(flat.groupby("store").tail(10).reset_index(drop=True))
        return results, "nested"
    if call == "fit_global":
        return ws.fit_global(flat, group_col="store"), "global"
    cvs = time_series_nested_cv(data, group_col="store", date_column="date", initial=20, assess=5, skip=5)
    if call == "fit_nested_resamples":
        return ws.fit_nested_resamples(cvs, group_col="store"), "group_resamples"
    return ws.fit_global_resamples(data, cvs, group_col="store"), "group_resamples"


#: Code the fresh interpreter runs on a restored result whose entries hold a fitted object.
FITTED = ("f = r.results[0][{key!r}]\n"
          "try:\n    f.predict\nexcept Exception as exc:\n"
          "    answers['fit'] = (type(exc).__name__, 'log_models=True' in str(exc))")


def test_grouped_workflow_set_results_restore_in_a_fresh_interpreter(store, data, tracking_uri, tmp_path):
    """Every other WorkflowSet entry point that returns a results object (fit_nested with and
    without its evaluate, fit_global, fit_nested_resamples, fit_global_resamples): its fitted
    objects are not logged and say what to log instead; everything else answers as the original."""
    tidymlflow.autolog(log_plots=False)
    originals, ids = {}, {}
    for call in ("fit_nested", "fit_nested+evaluate", "fit_global", "fit_nested_resamples",
                 "fit_global_resamples"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            originals[call] = _grouped(_workflow_set(), data, call)
        tidymlflow.flush()
        ids[call] = next(r.info.run_id for r in store.runs() if "mlflow.parentRunId" not in r.data.tags
                         and r.info.run_id not in ids.values())
    tidymlflow.autolog(disable=True)
    fitted = {"nested": "nested_fit", "global": "fit"}
    cases = {call: (ids[call], kind, FITTED.format(key=fitted[kind]) if kind in fitted else "")
             for call, (_, kind) in originals.items()}
    restored = _restored(cases, tracking_uri, tmp_path)
    for call, (original, kind) in originals.items():
        _module, name, got = restored[call]
        assert name == type(original).__qualname__, call
        want = _answers(original, kind)
        if kind in fitted:
            want["fit"] = ("RestoreError", True)
        _assert_same(got, want, call)
        answered = [k for k, v in want.items() if not (isinstance(v, tuple) and isinstance(v[0], str))]
        assert len(answered) >= 2, (call, want)  # real answers were compared, not only errors
