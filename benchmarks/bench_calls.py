"""Benchmark: the resampling, tuning and WorkflowSet calls with and without autolog, run counts
and the time logging adds. Budget: logging adds at most 1 s per call or 50 % of the call's own
time, whichever is larger (e.g. a tuning parent with 16 candidate runs on a local sqlite store).

    python benchmarks/bench_calls.py [--repeats 3]

Uses the real py-tidymodels when importable, else the test stand-in. Logs to a temporary sqlite
store. Exits 1 when a budget is missed or a call's run count is not 1 parent.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
if importlib.util.find_spec("py_workflows") is None:
    sys.path.insert(0, str(ROOT / "tests" / "standin"))


def calls(train):
    """name -> zero-argument callable for each of the six functions."""
    import py_tune as pt
    from py_parsnip import linear_reg
    from py_rsample import vfold_cv
    from py_workflows import workflow

    folds = vfold_cv(train, v=5, seed=1)
    plain = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg())
    tuned = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=pt.tune(), mixture=pt.tune()))
    info = {"penalty": {"range": (0.001, 1.0), "trans": "log"}, "mixture": {"range": (0.0, 1.0)}}
    grid = pt.grid_regular(info, levels=4)
    flat = {"penalty": {"range": (0.001, 1.0)}, "mixture": {"range": (0.0, 1.0)}}
    return {
        **workflowset_calls(train, folds),
        "fit_resamples": lambda: pt.fit_resamples(plain, folds),
        "tune_grid": lambda: pt.tune_grid(tuned, folds, grid=grid),
        "tune_bayes": lambda: pt.tune_bayes(tuned, folds, flat,
                                            control=pt.control_bayes(n_initial=3, n_iter=3)),
        "tune_sim_anneal": lambda: pt.tune_sim_anneal(tuned, folds, flat,
                                                      control=pt.control_sim_anneal(max_iter=5)),
        "tune_race_anova": lambda: pt.tune_race_anova(tuned, folds, grid=grid,
                                                      control=pt.control_race(burn_in=3)),
        "tune_race_win_loss": lambda: pt.tune_race_win_loss(tuned, folds, grid=grid,
                                                            control=pt.control_race(burn_in=3)),
    }


def workflowset_calls(train, folds):
    """WorkflowSet calls: 3 formulas x 3 models, and 3 x 1 over 4 groups."""
    try:
        from py_workflowsets import WorkflowSet
    except ImportError:
        return {}
    import pandas as pd
    import py_tune as pt
    from py_parsnip import linear_reg, rand_forest
    from py_rsample import time_series_nested_cv

    formulas = ["y ~ x1", "y ~ x2", "y ~ x1 + x2"]
    models = [linear_reg(), linear_reg(penalty=0.1, mixture=0.5),
              rand_forest(trees=10).set_mode("regression")]
    wide = WorkflowSet.from_cross(formulas, models)
    narrow = WorkflowSet.from_cross(formulas, models[:1])
    tuned = WorkflowSet.from_cross(formulas[:2], [linear_reg(penalty=pt.tune())])
    grid = pt.grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=4)
    groups = train.assign(store=["A", "B", "C", "D"] * (len(train) // 4),
                          date=pd.date_range("2022-01-01", periods=len(train)))
    cvs = time_series_nested_cv(groups, group_col="store", date_column="date", initial=20, assess=10, skip=5)
    flat = groups.drop(columns=["date"])
    return {
        "WorkflowSet.fit_resamples": lambda: wide.fit_resamples(folds),
        "WorkflowSet.tune_grid": lambda: tuned.tune_grid(folds, grid=grid),
        "WorkflowSet.fit_nested+evaluate": lambda: narrow.fit_nested(flat, "store").evaluate(flat),
        "WorkflowSet.fit_global": lambda: narrow.fit_global(flat, "store"),
        "WorkflowSet.fit_nested_resamples": lambda: narrow.fit_nested_resamples(cvs, "store"),
    }


def timed(fn) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import mlflow
    import numpy as np
    import pandas as pd

    import tidymlflow

    tmp = Path(tempfile.mkdtemp(prefix="tidymlflow-bench-"))
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'bench.db'}")
    client = mlflow.MlflowClient()
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x1": rng.normal(size=200), "x2": rng.normal(size=200)})
    train["y"] = 3 + train["x1"] - 2 * train["x2"] + rng.normal(scale=0.5, size=200)
    ok = True
    print(f"{'call':<34} {'runs':>5} {'library s':>10} {'with log s':>11} {'added s':>8}")
    for name, fn in calls(train).items():
        tidymlflow.autolog(disable=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the library's progress lines
            timed(fn)  # warm-up
        with contextlib.redirect_stdout(io.StringIO()):
            base = statistics.median(timed(fn) for _ in range(args.repeats))
        exp = client.create_experiment(f"bench-{name}", artifact_location=str(tmp / name))
        mlflow.set_experiment(experiment_id=exp)
        tidymlflow.autolog(max_tuning_runs=None)
        with contextlib.redirect_stdout(io.StringIO()):
            logged = statistics.median(timed(fn) for _ in range(args.repeats))
        tidymlflow.autolog(disable=True)
        runs = client.search_runs([exp], max_results=5000)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        per_call = len(runs) // args.repeats
        added = logged - base
        budget = max(1.0, 0.5 * base)
        ok &= len(parents) == args.repeats and added <= budget
        print(f"{name:<34} {per_call:>5} {base:>10.3f} {logged:>11.3f} {added:>8.3f}"
              f"{'' if added <= budget else '  OVER BUDGET'}")
    print("budget met" if ok else "budget MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
