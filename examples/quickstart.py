"""Quickstart: one run of each kind, tracked in MLflow: a workflow fit and its evaluate, a
per-store nested fit, a recipe workflow, a tuning grid and a workflow-set comparison.

Run it with ``python examples/quickstart.py``. It logs to ``sqlite:///mlruns.db`` in the current
folder (artifacts in ``./mlartifacts``) unless MLFLOW_TRACKING_URI is set, and prints how to
open the MLflow UI.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///mlruns.db")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

if importlib.util.find_spec("py_workflows") is None:  # no py-tidymodels: use the test stand-in
    missing = [m for m in ("patsy", "statsmodels") if importlib.util.find_spec(m) is None]
    if missing:  # the stand-in molds and diagnoses as the library does, with these
        sys.exit(f"quickstart: without py-tidymodels it runs on the test stand-in, which needs "
                 f"{' and '.join(missing)}: python -m pip install -e '.[quickstart]'")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "standin"))
    print("py-tidymodels is not installed: using the stand-in from tests/standin")

import tidymlflow  # noqa: E402

tidymlflow.autolog()

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from py_parsnip import linear_reg  # noqa: E402
from py_recipes import recipe  # noqa: E402
from py_rsample import vfold_cv  # noqa: E402
from py_tune import grid_regular, tune, tune_grid  # noqa: E402
from py_workflows import workflow  # noqa: E402

EXPERIMENT = "tidymlflow-quickstart"
if mlflow.get_experiment_by_name(EXPERIMENT) is None:  # artifacts next to the database
    mlflow.create_experiment(EXPERIMENT, artifact_location=(Path.cwd() / "mlartifacts").as_uri())
mlflow.set_experiment(EXPERIMENT)

rng = np.random.default_rng(0)
n = 200
data = pd.DataFrame({
    "date": pd.date_range("2024-01-01", periods=n, freq="D"),
    "store": np.repeat(["north", "south"], n // 2),
    "price": rng.normal(10, 2, n),
    "promo": rng.integers(0, 2, n).astype(float),
})
data["y"] = 50 - 2 * data["price"] + 5 * data["promo"] + rng.normal(0, 1, n)
flat = data.drop(columns=["store"])
train, test = flat.iloc[:160], flat.iloc[160:]

wf = workflow().add_formula("y ~ price + promo").add_model(linear_reg())
fit = wf.fit(train).evaluate(test)
nested = wf.fit_nested(data.iloc[:160], group_col="store", per_group_prep=False)

# a recipe workflow: normalize, then PCA (the recipe's learned state is logged with the fit)
rec = recipe().step_normalize(["price", "promo"]).step_pca(["price", "promo"], num_comp=2)
workflow().add_recipe(rec).add_model(linear_reg()).fit(train.drop(columns=["date"]))

# a tuning grid: a parent run with one child per candidate, best first
folds = vfold_cv(train.drop(columns=["date"]), v=5, seed=1)
tuned = workflow().add_formula("y ~ price + promo").add_model(linear_reg(penalty=tune(), mixture=tune()))
tune_grid(tuned, folds, grid=grid_regular({"penalty": {"range": (0.001, 1.0)},
                                           "mixture": {"range": (0.0, 1.0)}}, levels=3))

try:  # a workflow-set comparison (the real py_workflowsets also needs seaborn)
    from py_workflowsets import WorkflowSet
except ImportError as exc:
    print(f"skipping the workflow set: {exc}")
else:
    WorkflowSet.from_cross(["y ~ price", "y ~ price + promo"],
                           [linear_reg(), linear_reg(penalty=0.1, mixture=1.0)]).fit_resamples(folds)

outputs, coefficients, stats = fit.extract_outputs()
test_rmse = stats.loc[(stats["split"] == "test") & (stats["metric"] == "rmse"), "value"].iloc[0]
tidymlflow.flush()  # the writer process writes in the background: wait for it before reading back
runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
print(f"test rmse {float(test_rmse):.3f}; {len(runs)} runs in experiment 'tidymlflow-quickstart'")
experiment_id = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
print(f"Open them with:  mlflow ui --backend-store-uri {mlflow.get_tracking_uri()}")
print(f"then: http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
