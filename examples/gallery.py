"""Plot gallery: log one run of each kind and copy every plot tidymlflow drew into a folder.

    python examples/gallery.py [OUTPUT_FOLDER]     # default: ./gallery

Logs to MLFLOW_TRACKING_URI when it is set, else to a new sqlite store in a temporary folder,
into the experiment ``tidymlflow-gallery`` (artifacts next to the store; nothing is written to
./mlruns), keeps the store and prints how to open it in the MLflow UI. Uses the real
py-tidymodels when importable, else the test stand-in.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="tidymlflow-gallery-"))
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{TMP / 'gallery.db'}")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
if importlib.util.find_spec("py_workflows") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "standin"))
    print("py-tidymodels is not installed: using the stand-in from tests/standin")

import tidymlflow  # noqa: E402

tidymlflow.autolog(silent=True)

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from py_parsnip import arima_reg, linear_reg, rand_forest  # noqa: E402
from py_recipes import recipe  # noqa: E402
from py_rsample import vfold_cv  # noqa: E402
from py_tune import fit_resamples, grid_regular, tune, tune_grid  # noqa: E402
from py_workflows import workflow  # noqa: E402

EXPERIMENT = "tidymlflow-gallery"


def data(n: int = 365) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frames = []
    for i, store in enumerate(["north", "south", "east", "west"]):
        t = np.arange(n)
        x1, x2 = rng.normal(size=n), rng.normal(size=n)
        y = (50 + 5 * i + 0.02 * t + 4 * np.sin(2 * np.pi * t / 7) + (2 + i) * x1 - x2
             + rng.normal(scale=1.5, size=n))
        frames.append(pd.DataFrame({"date": pd.date_range("2024-01-01", periods=n), "store": store,
                                    "x1": x1, "x2": x2, "x3": x1 * 0.6 + rng.normal(size=n), "y": y}))
    return pd.concat(frames, ignore_index=True)


def runs() -> None:
    df = data()
    one = df[df["store"] == "north"].drop(columns=["store"]).reset_index(drop=True)
    train, test = one.iloc[:300], one.iloc[300:]
    arima_reg(non_seasonal_ar=2).fit(train[["date", "y"]], "y ~ date").evaluate(test[["date", "y"]])
    _wf("y ~ x1 + x2").fit(train).evaluate(test)
    _seasonal(train, test)
    rec = recipe().step_normalize(["x1", "x2", "x3"]).step_pca(["x1", "x2", "x3"], num_comp=3)
    rec.prep(one.drop(columns=["date"]))
    flat = df.drop(columns=["date"])
    _wf("y ~ x1 + x2").fit_nested(df, group_col="store", per_group_prep=False)
    folds = vfold_cv(train.drop(columns=["date"]), v=5, seed=1)
    fit_resamples(_wf("y ~ x1 + x2"), folds)
    tuned = workflow().add_formula("y ~ x1 + x2 + x3").add_model(linear_reg(penalty=tune(), mixture=tune()))
    tune_grid(tuned, folds, grid=grid_regular({"penalty": {"range": (0.001, 10.0), "trans": "log"},
                                               "mixture": {"range": (0.0, 1.0)}}, levels=5))
    _workflowsets(folds, flat)


def _wf(formula: str, model=None):
    return workflow().add_formula(formula).add_model(model or linear_reg())


def _seasonal(train, test) -> None:
    try:
        from py_parsnip import seasonal_reg
    except ImportError:  # the stand-in has no seasonal_reg
        return
    seasonal_reg(seasonal_period_1=7).fit(train[["date", "y"]], "y ~ date").evaluate(test[["date", "y"]])


def _workflowsets(folds, flat) -> None:
    try:
        from py_workflowsets import WorkflowSet
    except ImportError:  # py_workflowsets needs seaborn
        return
    models = [linear_reg(), linear_reg(penalty=0.5, mixture=1.0),
              rand_forest(trees=50).set_mode("regression")]
    ws = WorkflowSet.from_cross(["y ~ x1", "y ~ x1 + x2", "y ~ x1 + x2 + x3"], models)
    ws.fit_resamples(folds)
    WorkflowSet.from_cross(["y ~ x1", "y ~ x1 + x2"], models[:1] + models[2:]).fit_nested(
        flat, group_col="store")


def collect(output: Path) -> list[Path]:
    tidymlflow.flush()  # everything logged so far is written
    client = mlflow.MlflowClient()
    written = []
    for run in mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list"):
        if not client.list_artifacts(run.info.run_id, "plots"):
            continue
        folder = TMP / "downloads" / run.info.run_id
        folder.mkdir(parents=True, exist_ok=True)
        local = Path(client.download_artifacts(run.info.run_id, "plots", str(folder)))
        for plot in sorted(local.iterdir()):
            target = output / f"{_slug(run.info.run_name)}__{plot.name}"
            shutil.copy(plot, target)
            written.append(target)
    return written


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def main() -> None:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else "gallery")
    output.mkdir(parents=True, exist_ok=True)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:  # artifacts next to the store, not ./mlruns
        mlflow.create_experiment(EXPERIMENT, artifact_location=(TMP / "artifacts").as_uri())
    mlflow.set_experiment(EXPERIMENT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs()
    for path in collect(output):
        print(f"{path}  ({path.stat().st_size // 1024} KB)")
    shutil.rmtree(TMP / "downloads", ignore_errors=True)
    print(f"Open the runs with:  mlflow ui --backend-store-uri {mlflow.get_tracking_uri()}")


if __name__ == "__main__":
    main()
