"""Property-based tests of the engine's safety contract, through the public API only.

For random ``autolog()`` flag combinations, random short programs of py-tidymodels calls
(optionally inside a run the user started) and random odd inputs (unicode, '/', '..' and
300-character names, NaN / inf predictors, odd ``extra_tags``), each example checks:

1. every result equals the unpatched library's result (``extract_outputs()`` frames, recipe
   frames, ``TuneResults`` / ``WorkflowSetResults`` tables), the inputs are left unchanged, and
   where the unpatched library raises, the patched call raises the same type and message;
2. no run of the example's experiment is left ``RUNNING``;
3. at most one ``TidyMLflowWarning`` per patched call (strict mode off, so logging errors
   become warnings instead of exceptions).
"""

from __future__ import annotations

import math
import os
import tempfile
import uuid
import warnings
from contextlib import nullcontext
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, currently_in_test_context, given, note, settings
from hypothesis import strategies as st

import tidymlflow
from tidymlflow import TidyMLflowWarning

# Hypothesis keeps its example database and caches under $HYPOTHESIS_STORAGE_DIRECTORY (default
# ./.hypothesis): point it at the temp folder so a run leaves nothing in the checkout.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      str(Path(tempfile.gettempdir()) / "tidymlflow-hypothesis"))

# No shrink phase: an example costs up to ~2 s, and shrinking may take Hypothesis's 300-second
# budget; the edge cases found so far are pinned, minimal, in test_pinned_odd_inputs.
SETTINGS = settings(max_examples=15, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

LAYERS = ("parsnip", "workflows", "recipes", "tune", "workflowsets")
#: the layer of each patched call that opens (or claims) a run, by its ``tidymlflow.call`` tag
CALL_LAYER = {"Workflow.fit": "workflows", "ModelSpec.fit": "parsnip", "Recipe.prep": "recipes",
              "fit_resamples": "tune", "tune_grid": "tune", "WorkflowSet.fit_resamples": "workflowsets"}

# -- strategies -------------------------------------------------------------------------------

FLAGS = st.fixed_dictionaries({
    **{layer: st.booleans() for layer in LAYERS},
    "log_outputs": st.booleans(),
    "log_plots": st.booleans(),
    "log_datasets": st.booleans(),
    "max_tuning_runs": st.one_of(st.none(), st.integers(0, 3)),
    "log_fold_runs": st.booleans(),
})

STEP = st.one_of(
    st.tuples(st.just("workflow_fit"), st.booleans(), st.booleans()),  # (evaluate, recipe)
    st.tuples(st.just("spec_fit"), st.booleans()),                      # (evaluate,)
    st.tuples(st.just("recipe_prep")),
    st.tuples(st.just("fit_resamples"), st.integers(2, 3), st.booleans()),  # (v, save_pred)
    st.tuples(st.just("tune_grid"), st.integers(2, 3), st.booleans()),      # (v, two params)
    st.tuples(st.just("workflowset_fit_resamples"), st.integers(2, 3)),     # (v,)
)

ODD_FIXED = ["x/1", "..", "../x", "a/../b", "/", "ünï cødé ∑", "名前/列", "x" * 300, "é/" * 150,
             " lead space", "x.1", "x-1", "x 1", ".", "tab\there", "new\nline", "emoji 📈"]
ODD = st.one_of(st.sampled_from(ODD_FIXED), st.text(min_size=1, max_size=12))
TAG_VALUES = st.one_of(ODD, st.just("v" * 9000), st.just(""), st.integers(), st.floats(allow_nan=True))

ODD_CASE = st.fixed_dictionaries({
    "kind": st.sampled_from(["workflow_fit", "workflow_fit_evaluate", "workflow_recipe_fit", "spec_fit",
                             "recipe_prep", "fit_resamples", "tune_grid", "workflowset_fit_resamples"]),
    "column": ODD,        # replaces the predictor name x1
    "model_name": ODD,    # Workflow.add_model_name / the odd workflow's id in a WorkflowSet
    "formula": st.sampled_from(["quoted", "dot"]),  # y ~ Q("<column>") + x2, or y ~ .
    "bad": st.sampled_from([None, math.nan, math.inf, -math.inf]),  # written into the odd column
    "bad_rows": st.lists(st.integers(0, 39), min_size=1, max_size=3, unique=True),
    "outcome": st.sampled_from(["normal", "constant", "with_zero"]),
    "only_odd_workflow": st.booleans(),  # the WorkflowSet holds the odd workflow alone
    "extra_tags": st.one_of(st.none(), st.dictionaries(ODD, TAG_VALUES, max_size=3)),
    "log_plots": st.booleans(),
    "max_tuning_runs": st.one_of(st.none(), st.integers(0, 3)),
    "user_run": st.booleans(),
})


# -- program steps: each returns {label: frame} and runs every library call through ``rec`` ---

PARAM_INFO_1 = {"penalty": {"range": (0.01, 1.0)}}
PARAM_INFO_2 = {"penalty": {"range": (0.001, 1.0), "trans": "log"}, "mixture": {"range": (0.0, 1.0)}}


def _recipe():
    from py_recipes import all_numeric_predictors, recipe

    return recipe().step_impute_mean(all_numeric_predictors()).step_normalize(all_numeric_predictors())


def _workflow(formula="y ~ x1 + x2", recipe=False, name=None, spec=None):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    wf = workflow().add_model(spec if spec is not None else linear_reg())
    wf = wf.add_recipe(_recipe()) if recipe else wf.add_formula(formula)
    return wf.add_model_name(name) if name is not None else wf


def _fit_frames(fit) -> dict:
    outputs, coefs, stats = fit.extract_outputs()
    return {"type": type(fit).__name__, "outputs": outputs, "coefs": coefs, "stats": stats}


def _tune_frames(results) -> dict:
    return {"type": type(results).__name__, "metrics": results.collect_metrics(),
            "predictions": results.collect_predictions(), "grid": results.grid}


def _ws_frames(results) -> dict:
    return {"type": type(results).__name__, "summary": results.collect_metrics(),
            "raw": results.collect_metrics(summarize=False), "ranked": results.rank_results("rmse")}


def run_step(step, train, test, rec) -> dict:
    kind = step[0]
    if kind == "workflow_fit":
        _, evaluate, recipe = step
        fit = rec("Workflow.fit", _workflow(recipe=recipe).fit, train)
        if evaluate:
            assert rec("WorkflowFit.evaluate", fit.evaluate, test) is fit
        return _fit_frames(fit)
    if kind == "spec_fit":
        from py_parsnip import linear_reg

        fit = rec("ModelSpec.fit", linear_reg().fit, train, "y ~ x1 + x2")
        if step[1]:
            assert rec("ModelFit.evaluate", fit.evaluate, test) is fit
        return _fit_frames(fit)
    if kind == "recipe_prep":
        prepped = rec("Recipe.prep", _recipe().prep, train)
        return {"type": type(prepped).__name__, "juice": prepped.juice(), "bake": prepped.bake(test)}
    from py_rsample import vfold_cv

    folds = vfold_cv(train, v=step[1], seed=5)
    if kind == "fit_resamples":
        from py_tune import fit_resamples

        control = {"save_pred": True} if step[2] else None
        return _tune_frames(rec("fit_resamples", fit_resamples, _workflow(), folds, control=control))
    if kind == "tune_grid":
        from py_parsnip import linear_reg
        from py_tune import grid_regular, tune, tune_grid

        if step[2]:
            spec, grid = linear_reg(penalty=tune(), mixture=tune()), grid_regular(PARAM_INFO_2, levels=2)
        else:
            spec, grid = linear_reg(penalty=tune()), grid_regular(PARAM_INFO_1, levels=3)
        return _tune_frames(rec("tune_grid", tune_grid, _workflow(spec=spec), folds, grid=grid))
    if kind == "workflowset_fit_resamples":
        from py_parsnip import linear_reg
        from py_workflowsets import WorkflowSet

        ws = WorkflowSet.from_cross(["y ~ x1", "y ~ x1 + x2"], [linear_reg()])
        return _ws_frames(rec("WorkflowSet.fit_resamples", ws.fit_resamples, folds))
    raise AssertionError(kind)


# -- harness ----------------------------------------------------------------------------------


class Recorder:
    """Runs one library call and keeps the TidyMLflowWarnings it raised."""

    def __init__(self):
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, label, fn, *args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return fn(*args, **kwargs)
            finally:
                ours = [str(w.message) for w in caught if issubclass(w.category, TidyMLflowWarning)]
                self.calls.append((label, ours))


def run_program(steps, rec) -> list:
    """Every step's outcome: ("ok", frames) or ("raised", type, message)."""
    outcomes = []
    for step in steps:
        try:
            outcomes.append(("ok", step()))
        except Exception as exc:
            outcomes.append(("raised", type(exc), str(exc)))
    return outcomes


def assert_same_outcomes(expected: list, got: list) -> None:
    assert len(expected) == len(got)
    for i, (want, have) in enumerate(zip(expected, got)):
        if want[0] == "raised":
            assert have[0] == "raised", f"step {i}: the library raised {want[1].__name__}: {want[2]!r}, " \
                                        f"the patched call returned"
            assert have[1] is want[1] and have[2] == want[2], \
                f"step {i}: expected {want[1].__name__}: {want[2]!r}, got {have[1].__name__}: {have[2]!r}"
            continue
        assert have[0] == "ok", f"step {i}: the library returned, the patched call raised " \
                                f"{have[1].__name__}: {have[2]!r}"
        assert set(have[1]) == set(want[1])
        for key, value in want[1].items():
            if isinstance(value, pd.DataFrame):
                pd.testing.assert_frame_equal(have[1][key], value, check_exact=True, obj=f"step {i} {key}")
            else:
                assert have[1][key] == value, f"step {i} {key}"


def fresh_experiment(client, root) -> str:
    """A new experiment per example (artifacts under pytest's tmp_path), made the active one."""
    name = f"prop-{uuid.uuid4().hex}"
    exp = client.create_experiment(name, artifact_location=str(root / name))
    mlflow.set_experiment(experiment_id=exp)
    return exp


def assert_no_running_runs(client, experiment_id) -> None:
    runs = client.search_runs([experiment_id], max_results=1000)
    running = [(r.info.run_name, r.data.tags.get("tidymlflow.call")) for r in runs
               if r.info.status == "RUNNING"]
    assert not running, f"runs left RUNNING: {running}"


def assert_one_warning_per_call(rec) -> None:
    noisy = [(label, msgs) for label, msgs in rec.calls if len(msgs) > 1]
    assert not noisy, f"more than one TidyMLflowWarning in a patched call: {noisy}"


def assert_enabled_calls_logged(client, experiment_id, rec, flags) -> None:
    """Guards against a vacuous pass: every call of an enabled layer left a run tagged with it."""
    tagged = {r.data.tags.get("tidymlflow.call")
              for r in client.search_runs([experiment_id], max_results=1000)}
    for label, _ in rec.calls:
        if label in CALL_LAYER and flags.get(CALL_LAYER[label], True):
            assert label in tagged, f"{label} logged no run (tidymlflow.call tags: {tagged})"


def cleanup() -> None:
    tidymlflow.autolog(disable=True)
    while mlflow.active_run() is not None:
        mlflow.end_run()


def _check(store, tmp_path, steps, flags, user_run, extra_assert=None):
    """Reference (unpatched) run, then the patched run; compares and checks the invariants."""
    exp = fresh_experiment(store.client, tmp_path)
    try:
        tidymlflow.autolog(disable=True)
        reference = Recorder()
        expected = run_program([lambda s=s: s(reference) for s in steps], reference)
        assert all(not msgs for _, msgs in reference.calls)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tidymlflow.autolog(**flags)
        ours = [str(w.message) for w in caught if issubclass(w.category, TidyMLflowWarning)]
        assert not ours, f"autolog() itself warned (layers not active?): {ours}"
        patched = Recorder()
        with (mlflow.start_run(run_name="user") if user_run else nullcontext()):
            got = run_program([lambda s=s: s(patched) for s in steps], patched)
        tidymlflow.autolog(disable=True)
        if currently_in_test_context():
            note(f"outcomes: {[o[:1] + o[2:] if o[0] == 'raised' else ('ok',) for o in expected]}")
            note(f"warnings per call: {patched.calls}")

        assert_same_outcomes(expected, got)
        assert [label for label, _ in patched.calls] == [label for label, _ in reference.calls]
        assert_no_running_runs(store.client, exp)
        assert_one_warning_per_call(patched)
        assert_enabled_calls_logged(store.client, exp, patched, flags)
        if extra_assert is not None:
            extra_assert(exp)
    finally:
        cleanup()


@pytest.fixture
def lenient(monkeypatch):
    """Strict mode off (read at call time): logging errors become one warning per call."""
    monkeypatch.setenv("TIDYMLFLOW_STRICT", "0")


# -- properties 1, 2 and 4: random flags, random programs, optional user run -------------------


@SETTINGS
@given(flags=FLAGS, program=st.lists(STEP, min_size=1, max_size=3), user_run=st.booleans(),
       n_train=st.integers(40, 60))
def test_autolog_keeps_results_for_random_flags_and_programs(store, split, tmp_path, lenient,
                                                             flags, program, user_run, n_train):
    train = split[0].iloc[:n_train].reset_index(drop=True)
    test = split[1].iloc[:20].reset_index(drop=True)
    pristine = (train.copy(), test.copy())
    steps = [lambda rec, step=step: run_step(step, train, test, rec) for step in program]

    def nothing_logged_when_every_layer_is_off(exp):
        if not any(flags[layer] for layer in LAYERS):
            runs = store.client.search_runs([exp], max_results=1000)
            assert [r.info.run_name for r in runs] == (["user"] if user_run else [])
            assert all(not r.data.params and not r.data.metrics for r in runs)

    _check(store, tmp_path, steps, flags, user_run, nothing_logged_when_every_layer_is_off)
    pd.testing.assert_frame_equal(train, pristine[0])
    pd.testing.assert_frame_equal(test, pristine[1])


# -- properties 3 and 4: odd names, non-finite predictors, odd outcomes, odd extra_tags ---------


def _odd_frame(frame: pd.DataFrame, case: dict, train: bool) -> pd.DataFrame:
    out = frame.rename(columns={"x1": case["column"]})
    position = list(out.columns).index(case["column"])
    if train and case["bad"] is not None:
        values = out.iloc[:, position].to_numpy(dtype=float, copy=True)
        values[case["bad_rows"]] = case["bad"]
        out.isetitem(position, values)
    if case["outcome"] == "constant":
        out["y"] = 1.0
    elif case["outcome"] == "with_zero":
        out.loc[0, "y"] = 0.0
    return out


def _odd_step(case, train, test):
    kind, name = case["kind"], case["model_name"]
    formula = f'y ~ Q("{case["column"]}") + x2' if case["formula"] == "quoted" else "y ~ ."

    def step(rec):
        if kind in ("workflow_fit", "workflow_fit_evaluate", "workflow_recipe_fit"):
            wf = _workflow(formula, recipe=kind == "workflow_recipe_fit", name=name)
            fit = rec("Workflow.fit", wf.fit, train)
            if kind == "workflow_fit_evaluate":
                assert rec("WorkflowFit.evaluate", fit.evaluate, test) is fit
            return _fit_frames(fit)
        if kind == "spec_fit":
            from py_parsnip import linear_reg

            return _fit_frames(rec("ModelSpec.fit", linear_reg().fit, train, formula))
        if kind == "recipe_prep":
            prepped = rec("Recipe.prep", _recipe().prep, train)
            return {"type": type(prepped).__name__, "juice": prepped.juice()}
        from py_parsnip import linear_reg
        from py_rsample import vfold_cv

        folds = vfold_cv(train, v=2, seed=5)
        if kind == "fit_resamples":
            from py_tune import fit_resamples

            return _tune_frames(rec("fit_resamples", fit_resamples, _workflow(formula, name=name), folds))
        if kind == "tune_grid":
            from py_tune import grid_regular, tune, tune_grid

            wf = _workflow(formula, name=name, spec=linear_reg(penalty=tune()))
            return _tune_frames(rec("tune_grid", tune_grid, wf, folds,
                                    grid=grid_regular(PARAM_INFO_1, levels=3)))
        from py_workflowsets import WorkflowSet

        preprocessors = {name: formula} if case["only_odd_workflow"] else {name: formula, "plain": "y ~ x2"}
        ws = WorkflowSet.from_cross(preprocessors, [linear_reg()])
        return _ws_frames(rec("WorkflowSet.fit_resamples", ws.fit_resamples, folds))

    return step


_PLAIN = {"column": "x1", "model_name": "m", "formula": "quoted", "bad": None, "bad_rows": [0],
          "outcome": "normal", "only_odd_workflow": False, "extra_tags": None, "log_plots": False,
          "max_tuning_runs": None, "user_run": False}


def _check_odd_case(store, split, tmp_path, case):
    train = _odd_frame(split[0].iloc[:48].reset_index(drop=True), case, train=True)
    test = _odd_frame(split[1].iloc[:20].reset_index(drop=True), case, train=False)
    pristine = (train.copy(), test.copy())
    flags = {"log_plots": case["log_plots"], "extra_tags": case["extra_tags"],
             "max_tuning_runs": case["max_tuning_runs"]}
    try:
        tidymlflow.autolog(**flags)
    except (TypeError, ValueError) as exc:  # a documented refusal must name the flag
        assert "extra_tags" in str(exc)
        flags["extra_tags"] = None
    finally:
        tidymlflow.autolog(disable=True)

    _check(store, tmp_path, [_odd_step(case, train, test)], flags, case["user_run"])
    pd.testing.assert_frame_equal(train, pristine[0])
    pd.testing.assert_frame_equal(test, pristine[1])


@SETTINGS
@given(case=ODD_CASE)
def test_autolog_keeps_results_and_errors_for_odd_inputs(store, split, tmp_path, lenient, case):
    _check_odd_case(store, split, tmp_path, case)


_PLAIN = {"column": "x1", "model_name": "m", "formula": "quoted", "bad": None, "bad_rows": [0],
          "outcome": "normal", "only_odd_workflow": False, "extra_tags": None, "log_plots": False,
          "max_tuning_runs": None, "user_run": False}


@pytest.mark.parametrize("case", [
    # a constant outcome (non-finite r_squared in every fold) with fewer child runs than candidates
    {**_PLAIN, "kind": "tune_grid", "outcome": "constant", "max_tuning_runs": 1},
    # a WorkflowSet whose only workflow fails in every fold (NaN in its predictor)
    {**_PLAIN, "kind": "workflowset_fit_resamples", "column": "a/../b", "model_name": "名前/列",
     "bad": math.nan, "only_odd_workflow": True},
    # 300-character names, '..' / '/' / over-long tag keys and values, inside a user run, with plots
    {**_PLAIN, "kind": "workflow_fit_evaluate", "column": "x" * 300, "model_name": "é/" * 150,
     "formula": "dot", "extra_tags": {"..": "x" * 9000, "a/../b": "", "k" * 300: "ü∑"},
     "log_plots": True, "user_run": True},
], ids=["tune_grid-constant-outcome", "workflowset-all-folds-fail", "long-names-odd-tags"])
def test_pinned_odd_inputs(store, split, tmp_path, lenient, case):
    """The same property as above for edge cases the random draw reaches only rarely."""
    _check_odd_case(store, split, tmp_path, case)
