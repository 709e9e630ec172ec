"""The model flavor (tidymlflow.models): save, load in a fresh interpreter, registry, serving.

Every kind the stand-in can represent runs against it (formula fits through patsy, a recipe, a
raw-data time-series engine, nested and global fits); prophet_reg and boost_tree exist only in the
real py-tidymodels and run only there (boost_tree also needs xgboost).
"""

from __future__ import annotations

import copyreg
import json
import os
import pickle
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import REAL, STANDIN
from mlflow.exceptions import MlflowException
from mlflow.types import DataType
from servers import free_port, started

from tidymlflow import models
from tidymlflow._jobs import serialize as _serialize

REAL_ONLY = pytest.mark.skipif(not REAL, reason="exists only in the real py-tidymodels, not in the stand-in")


def _has_xgboost() -> bool:
    import importlib.util

    return importlib.util.find_spec("xgboost") is not None


# -- the fits -------------------------------------------------------------------------------------------


def _frames(data, split):
    """Flat train/test (date, x1, x2, y) and grouped train/test (first 30 / last 10 rows of each
    store, still ordered by store as fit.predict orders nested predictions)."""
    by_store = data.groupby("store", sort=False)
    return {"train": split[0], "test": split[1],
            "gtrain": by_store.head(30).reset_index(drop=True),
            "gtest": by_store.tail(10).reset_index(drop=True)}


def _wf(spec, formula="y ~ x1 + x2"):
    from py_workflows import workflow

    return workflow().add_formula(formula).add_model(spec)


def _recipe_wf():
    from py_parsnip import linear_reg
    from py_recipes import recipe
    from py_recipes.selectors import all_numeric_predictors
    from py_workflows import workflow

    rec = (recipe().step_normalize(all_numeric_predictors()).step_dummy(["store"])
           .step_pca(all_numeric_predictors(), num_comp=2))
    return workflow().add_recipe(rec).add_model(linear_reg())


def _case(name, f):
    """(fit, test frame, whether the engine gives conf_int) for one case."""
    from py_parsnip import arima_reg, linear_reg, rand_forest

    if name == "linear_reg_sklearn":
        return _wf(linear_reg()).fit(f["train"]), f["test"], False
    if name == "linear_reg_statsmodels":  # a ModelFit, not a workflow
        return linear_reg().set_engine("statsmodels").fit(f["train"], "y ~ x1 + x2"), f["test"], True
    if name == "formula_terms":  # patsy calls, an interaction and a categorical
        return linear_reg().fit(f["gtrain"], "y ~ I(x1 ** 2) + x1:x2 + C(store)"), f["gtest"], False
    if name == "rand_forest":
        return _wf(rand_forest(trees=25).set_mode("regression")).fit(f["train"]), f["test"], False
    if name == "recipe":  # step_normalize, step_dummy, step_pca
        return _recipe_wf().fit(f["gtrain"]), f["gtest"], False
    if name == "arima_reg":
        return _wf(arima_reg(non_seasonal_ar=1), "y ~ date").fit(f["train"]), f["test"], True
    if name == "prophet_reg":
        from py_parsnip import prophet_reg

        return _wf(prophet_reg()).fit(f["train"]), f["test"], True
    if name == "boost_tree":
        from py_parsnip import boost_tree

        return _wf(boost_tree(trees=20)).fit(f["train"]), f["test"], False
    if name == "nested_workflow":
        return _wf(linear_reg()).fit_nested(f["gtrain"], group_col="store"), f["gtest"], False
    if name == "nested_model":
        return linear_reg().fit_nested(f["gtrain"], "y ~ x1 + x2", group_col="store"), f["gtest"], False
    if name == "nested_arima":
        return (_wf(arima_reg(non_seasonal_ar=1), "y ~ date").fit_nested(f["gtrain"], group_col="store"),
                f["gtest"], True)
    if name == "global":
        return _wf(linear_reg()).fit_global(f["gtrain"], group_col="store"), f["gtest"], False
    raise AssertionError(name)


CASES = ["linear_reg_sklearn", "linear_reg_statsmodels", "formula_terms", "rand_forest", "recipe",
         "arima_reg", "prophet_reg", "boost_tree", "nested_workflow", "nested_model", "nested_arima",
         "global"]


def _skip_reason(name):
    if name == "prophet_reg" and not REAL:
        return "prophet_reg exists only in the real py-tidymodels"
    if name == "boost_tree" and not REAL:
        return "boost_tree exists only in the real py-tidymodels"
    if name == "boost_tree" and not _has_xgboost():
        return "boost_tree's xgboost engine needs xgboost, which is not installed"
    return None


def _quiet_predict(fit, frame, kind="numeric"):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(0)  # prophet draws its intervals; the same seed gives the same draws
        return fit.predict(frame, type=kind)


# -- 1. predictions after a load in a fresh interpreter ----------------------------------------------------

_FRESH = """
import json, os, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, pandas as pd
import mlflow
import tidymlflow.models
root = sys.argv[1]
manifest = json.load(open(os.path.join(root, "manifest.json")))
for name, conf_int in manifest.items():
    test = pd.read_pickle(os.path.join(root, name + ".test.pkl"))
    model = mlflow.pyfunc.load_model(os.path.join(root, name))
    model.predict(test).to_pickle(os.path.join(root, name + ".pyfunc.pkl"))
    if conf_int:
        np.random.seed(0)
        model.predict(test, params={"type": "conf_int"}).to_pickle(os.path.join(root, name + ".ci.pkl"))
    native = tidymlflow.models.load_model(os.path.join(root, name))
    np.random.seed(0)
    native.predict(test).to_pickle(os.path.join(root, name + ".native.pkl"))
print(json.dumps({"autolog_loaded": sorted(m for m in sys.modules
                                            if m.startswith(("tidymlflow.layers", "tidymlflow._engine")))}))
"""


def _run_fresh(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if not REAL:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(STANDIN), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(_FRESH), str(root)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def _save_cases(root: Path, frames, cases, with_conf_int: bool):
    """Save every runnable case and its test frame under ``root``: (manifest for the fresh
    interpreter, what each fit itself predicted, the fits and their test frames)."""
    manifest, expected, fits = {}, {}, {}
    for name in cases:
        if _skip_reason(name):
            continue
        fit, test, conf_int = _case(name, frames)
        conf_int = conf_int and with_conf_int
        models.save_model(fit, root / name)
        test.to_pickle(root / f"{name}.test.pkl")
        expected[name] = (_quiet_predict(fit, test),
                          _quiet_predict(fit, test, "conf_int") if conf_int else None)
        manifest[name] = conf_int
        fits[name] = (fit, test)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return manifest, expected, fits


@pytest.fixture(scope="module")
def fresh(data, split, tmp_path_factory):
    """Every runnable case saved with save_model, then loaded and predicted on in ONE fresh
    interpreter (no autolog, no state from this process). Returns the folder and, per case, what
    the fit itself predicted (numeric, and conf_int where the engine gives it)."""
    root = tmp_path_factory.mktemp("fresh")
    _, expected, _ = _save_cases(root, _frames(data, split), CASES, with_conf_int=True)
    return root, expected, _run_fresh(root)


def test_the_fresh_interpreter_ran_without_autolog(fresh):
    _, expected, out = fresh
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"autolog_loaded": []}
    assert {"linear_reg_sklearn", "linear_reg_statsmodels", "formula_terms", "rand_forest", "recipe",
            "arima_reg", "nested_workflow", "nested_model", "nested_arima", "global"} <= set(expected)


@pytest.mark.parametrize("name", CASES)
def test_predictions_after_load_in_a_fresh_interpreter_equal_the_fits(fresh, name):
    reason = _skip_reason(name)
    if reason:
        pytest.skip(reason)
    root, expected, out = fresh
    assert out.returncode == 0, out.stderr[-3000:]
    numeric, conf_int = expected[name]
    got = pd.read_pickle(root / f"{name}.pyfunc.pkl")  # mlflow.pyfunc: RangeIndex, input order
    pd.testing.assert_frame_equal(got, numeric.reset_index(drop=True), check_exact=True)
    native = pd.read_pickle(root / f"{name}.native.pkl")  # tidymlflow.models.load_model: the fit itself
    pd.testing.assert_frame_equal(native, numeric, check_exact=True)
    if conf_int is not None:
        got = pd.read_pickle(root / f"{name}.ci.pkl")
        assert {".pred_lower", ".pred_upper"} <= set(got.columns)
        pd.testing.assert_frame_equal(got, conf_int.reset_index(drop=True), check_exact=True)


# -- 2. what the model directory says ---------------------------------------------------------------------


def _mlmodel(path: Path):
    return mlflow.models.Model.load(str(path / "MLmodel"))


def test_mlmodel_has_both_flavors_signature_and_prototype(data, split, tmp_path):
    frames = _frames(data, split)
    lm, _, _ = _case("linear_reg_sklearn", frames)
    models.save_model(lm, tmp_path / "lm")
    m = _mlmodel(tmp_path / "lm")
    assert m.flavors["python_function"]["loader_module"] == "tidymlflow.models"
    conf = m.flavors["tidymlflow"]
    assert conf["kind"] == "WorkflowFit" and conf["model_type"] == "linear_reg" and conf["pickled_model"]
    assert m.signature.inputs.input_names() == ["x1", "x2"]  # neither the outcome nor the unused date
    assert [c.name for c in m.signature.inputs.inputs] == ["x1", "x2"]
    assert m.signature.outputs.input_names()[0] == ".pred"
    (param,) = m.signature.params.params
    assert param.name == "type" and param.default == "numeric"

    from py_parsnip import linear_reg

    dot = _wf(linear_reg(), "y ~ .").fit(frames["train"])  # expanded to the non-date columns
    models.save_model(dot, tmp_path / "dot")
    assert _mlmodel(tmp_path / "dot").signature.inputs.input_names() == ["x1", "x2"]

    arima, _, _ = _case("arima_reg", frames)
    models.save_model(arima, tmp_path / "arima")
    inputs = _mlmodel(tmp_path / "arima").signature.inputs
    assert inputs.input_names() == ["date"] and inputs.inputs[0].type == DataType.datetime

    nested, _, _ = _case("nested_workflow", frames)
    models.save_model(nested, tmp_path / "nested")
    m = _mlmodel(tmp_path / "nested")
    assert m.signature.inputs.input_names() == ["store", "x1", "x2"]
    assert m.flavors["tidymlflow"]["group_col"] == "store"
    assert m.flavors["tidymlflow"]["groups"] == ["A", "B", "C", "D"]
    assert "store" in m.signature.outputs.input_names()

    recipe_fit, _, _ = _case("recipe", frames)
    models.save_model(recipe_fit, tmp_path / "recipe")
    # the recipe reads store, x1, x2; its predictions depend neither on y nor on date
    assert _mlmodel(tmp_path / "recipe").signature.inputs.input_names() == ["store", "x1", "x2"]
    assert type(mlflow.pyfunc.load_model(str(tmp_path / "recipe")).get_raw_model()) is type(recipe_fit)
    raw = models._load_pyfunc(str(tmp_path / "recipe"))
    assert list(raw.ptype.columns) == ["store", "x1", "x2"] and len(raw.ptype) == 0
    assert raw.ptype["x1"].dtype == np.float64


def test_requirements_are_pinned_and_py_tidymodels_is_explained(data, split, tmp_path):
    from importlib.metadata import version

    frames = _frames(data, split)
    fit, _, _ = _case("linear_reg_statsmodels", frames)
    models.save_model(fit, tmp_path / "m")
    text = (tmp_path / "m" / "requirements.txt").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    for dist in ("mlflow", "pandas", "numpy", "scikit-learn", "cloudpickle", "tidymlflow", "patsy"):
        assert f"{dist}=={version(dist)}" in lines, (dist, lines)
    if REAL:  # the real statsmodels engine pickles statsmodels objects
        assert f"statsmodels=={version('statsmodels')}" in lines
    meta = _mlmodel(tmp_path / "m").metadata["py_tidymodels"]
    assert meta["repository"] == "https://github.com/m-deane/py-tidymodels2"
    # neither the editable real install nor the stand-in records a git commit: a note, no requirement
    assert meta["requirement"] is None and "not on PyPI" in meta["note"]
    assert text.startswith("# py-tidymodels is not on PyPI")
    assert not any(line.startswith("py-tidymodels") for line in lines)


class _FakeDist:
    def __init__(self, direct_url):
        self.metadata = {"Name": "py-tidymodels"}
        self.version = "0.1.0"
        self._direct_url = direct_url

    def read_text(self, name):
        return json.dumps(self._direct_url) if name == "direct_url.json" else None


def test_a_git_install_of_py_tidymodels_becomes_a_pinned_requirement(monkeypatch):
    git = {"url": "https://github.com/m-deane/py-tidymodels2",
           "vcs_info": {"vcs": "git", "commit_id": "06b2603deadbeef", "requested_revision": "main"}}
    monkeypatch.setattr(models, "_distribution",
                        lambda name: _FakeDist(git) if name == "py-tidymodels" else None)
    source = models.py_tidymodels_source()
    assert source["requirement"] == "py-tidymodels @ git+https://github.com/m-deane/py-tidymodels2@06b2603deadbeef"
    pins, _ = models.requirements({"py_parsnip", "numpy"})
    assert pins[-1] == source["requirement"]

    editable = {"url": "file:///src/py-tidymodels2", "dir_info": {"editable": True}}
    monkeypatch.setattr(models, "_distribution",
                        lambda name: _FakeDist(editable) if name == "py-tidymodels" else None)
    source = models.py_tidymodels_source()
    assert source["requirement"] is None and "file:///src/py-tidymodels2" in source["note"]


# -- 3. serialization --------------------------------------------------------------------------------------


def test_formula_fits_refuse_plain_pickling_and_the_local_pickler_leaves_no_trace(split):
    from py_parsnip import linear_reg

    fit = linear_reg().fit(split[0], "y ~ x1 + x2")
    with pytest.raises(NotImplementedError):
        cloudpickle.dumps(fit)
    table = dict(copyreg.dispatch_table)
    data, rebuilt = _serialize.dumps(fit)
    assert "patsy.design_info.DesignInfo" in rebuilt
    assert dict(copyreg.dispatch_table) == table  # nothing registered globally
    with pytest.raises(NotImplementedError):
        pickle.dumps(fit)  # still refused everywhere else
    again = _serialize.loads(data)
    pd.testing.assert_frame_equal(again.predict(split[1]), fit.predict(split[1]), check_exact=True)
    assert {"patsy", "numpy", "pandas", "sklearn"} <= _serialize.referenced_modules(data)


# -- 4. checking what comes in -------------------------------------------------------------------------


def test_incoming_frames_are_checked_against_the_prototype(data, split, tmp_path):
    frames = _frames(data, split)
    fit, test, _ = _case("linear_reg_sklearn", frames)
    models.save_model(fit, tmp_path / "m")
    model = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    raw = models._load_pyfunc(str(tmp_path / "m"))  # the pyfunc implementation, without mlflow's check
    with pytest.raises(models.InvalidModelInput, match=r"missing column\(s\) \['x1'\]"):
        raw.predict(test.drop(columns=["x1"]))
    with pytest.raises(MlflowException, match="x1"):  # mlflow's schema check names it first
        model.predict(test.drop(columns=["x1"]))
    with pytest.raises(models.InvalidModelInput, match=r"'x2' \(expected float64, got"):
        raw.predict(test.assign(x2="a"))
    with pytest.raises(MlflowException, match="x2"):
        model.predict(test.assign(x2="a"))
    # whole numbers given as integers are cast to the training dtype: same predictions
    ints = test.assign(x1=test["x1"].round().astype("int64"))
    pd.testing.assert_frame_equal(raw.predict(ints), fit.predict(ints.astype({"x1": float})),
                                  check_exact=True)

    arima, atest, _ = _case("arima_reg", frames)
    models.save_model(arima, tmp_path / "arima")
    raw = models._load_pyfunc(str(tmp_path / "arima"))
    as_text = atest.assign(date=atest["date"].dt.strftime("%Y-%m-%d"))  # ISO strings are parsed
    pd.testing.assert_frame_equal(raw.predict(as_text), arima.predict(atest).reset_index(drop=True),
                                  check_exact=True)


def test_nested_models_route_by_group_and_name_an_unseen_one(data, split, tmp_path):
    frames = _frames(data, split)
    fit, test, _ = _case("nested_model", frames)
    models.save_model(fit, tmp_path / "m")
    model = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    shuffled = test.sample(frac=1.0, random_state=3).reset_index(drop=True)
    got = model.predict(shuffled)
    assert got["store"].tolist() == shuffled["store"].tolist()  # input order, group column kept
    for store, rows in shuffled.groupby("store"):
        expect = fit.group_fits[store].predict(rows.drop(columns=["store"]))[".pred"].to_numpy()
        np.testing.assert_array_equal(got.loc[rows.index, ".pred"].to_numpy(), expect)
    bad = pd.concat([test, test.head(2).assign(store="E")], ignore_index=True)
    known = r"known groups: \['A', 'B', 'C', 'D'\]"
    with pytest.raises(models.InvalidModelInput, match=r"\['E'\] of column 'store'.*" + known):
        model.predict(bad)


def test_a_per_group_recipe_predicts_what_evaluate_computes(data, split, tmp_path):
    from py_parsnip import linear_reg
    from py_recipes import recipe
    from py_recipes.selectors import all_numeric_predictors
    from py_workflows import workflow

    frames = _frames(data, split)
    rec = recipe().step_normalize(all_numeric_predictors()).step_pca(all_numeric_predictors(), num_comp=2)
    fit = workflow().add_recipe(rec).add_model(linear_reg()).fit_nested(
        frames["gtrain"], group_col="store", per_group_prep=True, min_group_size=10)
    assert fit.group_recipes  # one prepared recipe per group
    models.save_model(fit, tmp_path / "m")
    model = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    assert model.metadata.get_input_schema().input_names() == ["store", "x1", "x2"]
    got = model.predict(frames["gtest"])
    fit.evaluate(frames["gtest"])  # each group's WorkflowFit bakes its own recipe once
    evaluated = pd.concat([fit.group_fits[g].fit.evaluation_data["test_predictions"].reset_index(drop=True)
                           for g in ["A", "B", "C", "D"]], ignore_index=True)
    np.testing.assert_array_equal(got[".pred"].to_numpy(), evaluated[".pred"].to_numpy())


def test_save_refuses_other_objects_full_folders_and_short_examples(data, split, tmp_path):
    frames = _frames(data, split)
    fit, test, _ = _case("linear_reg_sklearn", frames)
    with pytest.raises(TypeError, match="WorkflowFit, NestedWorkflowFit, ModelFit"):
        models.save_model(fit.workflow, tmp_path / "spec")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(MlflowException, match="not empty"):
        models.save_model(fit, tmp_path / "full")
    with pytest.raises(models.InvalidModelInput, match=r"input_example is missing column\(s\) \['x2'\]"):
        models.save_model(fit, tmp_path / "short", input_example=test[["x1"]].head(3))
    models.save_model(fit, tmp_path / "ok", input_example=test.head(3))
    assert _mlmodel(tmp_path / "ok").saved_input_example_info is not None


# -- 5. registry and serving ----------------------------------------------------------------------------


def test_registered_champion_predicts_like_the_fit(store, data, split, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # what the working folder held before is not this test's
    frames = _frames(data, split)
    fit, test, _ = _case("formula_terms", frames)
    name = f"tidymlflow-m-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run():
        info = models.log_model(fit, registered_model_name=name, input_example=test.head(3))
    assert info.registered_model_version == 1 and "tidymlflow" in info.flavors
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "champion", info.registered_model_version)
    got = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(test)
    pd.testing.assert_frame_equal(got, fit.predict(test), check_exact=True)
    back = models.load_model(f"models:/{name}@champion")
    assert type(back) is type(fit)
    pd.testing.assert_frame_equal(back.predict(test), fit.predict(test), check_exact=True)
    assert not (tmp_path / "mlruns").exists()  # nothing went to MLflow's default local store


def test_a_saved_model_logs_as_the_fit_would(store, data, split, tmp_path, monkeypatch):
    """The writer logs a model directory a helper process saved (it never loads the fit itself):
    the logged model, its MLmodel and its files are those of logging the fit directly."""
    monkeypatch.chdir(tmp_path)
    fit, test, _ = _case("formula_terms", _frames(data, split))
    name = f"tidymlflow-m-{uuid.uuid4().hex[:8]}"
    models.save_model(fit, tmp_path / "saved")
    with mlflow.start_run() as run:
        direct = models.log_model(fit)
        saved = models.log_saved_model(tmp_path / "saved", registered_model_name=name, run_id=run.info.run_id)
    client = mlflow.MlflowClient()
    both = [client.get_logged_model(i.model_id) for i in (direct, saved)]
    same = [(m.name, m.source_run_id, m.model_type,
             {k: v for k, v in m.tags.items() if k != "mlflow.modelVersions"}) for m in both]
    assert same[0] == same[1]
    folders = [Path(mlflow.artifacts.download_artifacts(f"models:/{i.model_id}", dst_path=str(tmp_path / k)))
               for k, i in (("a", direct), ("b", saved))]
    assert sorted(p.name for p in folders[0].iterdir()) == sorted(p.name for p in folders[1].iterdir())
    varying = ("model_uuid", "model_id", "utc_time_created", "artifact_path", "run_id")
    mlmodels = [{k: v for k, v in mlflow.models.Model.load(str(f / "MLmodel")).to_dict().items()
                 if k not in varying} for f in folders]
    assert mlmodels[0] == mlmodels[1]
    assert mlflow.models.Model.load(str(folders[1] / "MLmodel")).model_id == saved.model_id
    assert saved.registered_model_version == 1
    got = mlflow.pyfunc.load_model(f"models:/{name}/1").predict(test)
    pd.testing.assert_frame_equal(got, fit.predict(test), check_exact=True)
    with pytest.raises(MlflowException, match="no 'tidymlflow' flavor"):
        (tmp_path / "other").mkdir()
        mlflow.models.Model().save(str(tmp_path / "other" / "MLmodel"))
        models.log_saved_model(tmp_path / "other", run_id=run.info.run_id)


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_mlflow_models_serve_answers_like_the_fit(store, data, split, tmp_path, tracking_uri):
    frames = _frames(data, split)
    fit, test, _ = _case("nested_arima", frames)  # groups routed, dates sent as JSON strings
    name = f"tidymlflow-serve-{uuid.uuid4().hex[:8]}"
    info = models.log_model(fit, registered_model_name=name)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", info.registered_model_version)

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true",
           # the server's worker is started by name from PATH: this interpreter's, as in an active venv
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    if not REAL:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(STANDIN), env.get("PYTHONPATH")) if p)
    log_path = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@champion",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    with started(cmd, f"{url}/ping", log_path, env, cwd=tmp_path):
        payload = json.loads(test.to_json(orient="split", date_format="iso", index=False))
        status, body = _post(f"{url}/invocations", {"dataframe_split": payload})
        assert status == 200, body
        served = pd.DataFrame(body["predictions"])
        expected = fit.predict(test)
        np.testing.assert_allclose(served[".pred"], expected[".pred"], rtol=0, atol=1e-12)
        assert served["store"].tolist() == test["store"].tolist()

        with_ci = {"dataframe_split": payload, "params": {"type": "conf_int"}}
        status, body = _post(f"{url}/invocations", with_ci)
        assert status == 200, body
        served = pd.DataFrame(body["predictions"])
        expected = fit.predict(test, type="conf_int")
        for col in (".pred", ".pred_lower", ".pred_upper"):
            np.testing.assert_allclose(served[col], expected[col], rtol=0, atol=1e-12)

        unseen = json.loads(test.head(2).assign(store="E").to_json(orient="split", date_format="iso",
                                                                    index=False))
        status, body = _post(f"{url}/invocations", {"dataframe_split": unseen})
        assert status == 400 and "['E']" in body.get("message", ""), body


# -- 6. frames with columns the formula does not use ---------------------------------------------------

WIDE_CASES = ["linear_reg_sklearn", "recipe", "rand_forest", "prophet_reg", "nested_workflow", "global"]


def _wide(frames):
    """The same frames with a text column no formula uses (and the date column they all have, which
    only prophet uses): the library's forge still requires every text column it saw at fit time
    (py_hardhat's factor levels). A second date column the library refuses at fit time."""
    def widen(frame):
        out = frame.copy()
        out["region"] = np.where(np.arange(len(out)) % 2 == 0, "east", "west")
        return out

    return {name: widen(frame) for name, frame in frames.items()}


@pytest.fixture(scope="module")
def wide(data, split, tmp_path_factory):
    """Each kind of fit on frames with an extra text column, saved, loaded and predicted on in a
    fresh interpreter."""
    root = tmp_path_factory.mktemp("wide")
    _, expected, fits = _save_cases(root, _wide(_frames(data, split)), WIDE_CASES, with_conf_int=False)
    return root, {name: numeric for name, (numeric, _) in expected.items()}, fits, _run_fresh(root)


@pytest.mark.parametrize("name", WIDE_CASES)
def test_fits_on_wide_frames_load_and_predict_in_a_fresh_interpreter(wide, name):
    reason = _skip_reason(name)
    if reason:
        pytest.skip(reason)
    root, expected, fits, out = wide
    assert out.returncode == 0, out.stderr[-3000:]
    got = pd.read_pickle(root / f"{name}.pyfunc.pkl")
    pd.testing.assert_frame_equal(got, expected[name].reset_index(drop=True), check_exact=True)
    inputs = _mlmodel(root / name).signature.inputs.input_names()
    assert "region" in inputs or name == "prophet_reg", inputs  # the forge requires it
    assert ("date" in inputs) == (name == "prophet_reg") and "y" not in inputs, inputs


def test_a_wide_frames_model_names_the_column_a_frame_lacks(wide):
    root, _, fits, _ = wide
    _, test = fits["linear_reg_sklearn"]
    model = mlflow.pyfunc.load_model(str(root / "linear_reg_sklearn"))
    with pytest.raises(MlflowException, match="region"):
        model.predict(test.drop(columns=["region"]))


def test_conf_int_on_an_engine_without_intervals_names_the_engine(data, split, tmp_path):
    fit, test, _ = _case("linear_reg_sklearn", _frames(data, split))
    models.save_model(fit, tmp_path / "lm")
    model = mlflow.pyfunc.load_model(str(tmp_path / "lm"))
    with pytest.raises(Exception, match=r"linear_reg.*sklearn.*conf_int|conf_int.*linear_reg.*sklearn"):
        model.predict(test, params={"type": "conf_int"})


@pytest.mark.parametrize("name", WIDE_CASES)
def test_mlflow_models_serve_answers_wide_frames_like_the_fit(wide, name, tmp_path):
    reason = _skip_reason(name)
    if reason:
        pytest.skip(reason)
    root, expected, _, _ = wide
    test = pd.read_pickle(root / f"{name}.test.pkl")
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    if not REAL:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(STANDIN), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(root / name),
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    with started(cmd, f"{url}/ping", tmp_path / "serve.log", env, cwd=tmp_path):
        payload = json.loads(test.to_json(orient="split", date_format="iso", index=False))
        status, body = _post(f"{url}/invocations", {"dataframe_split": payload})
    assert status == 200, body
    served = pd.DataFrame(body["predictions"])
    np.testing.assert_allclose(served[".pred"], expected[name][".pred"].to_numpy(), rtol=0, atol=1e-9)
