"""Stand-in tuning core: fit_resamples, tune_grid and TuneResults."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional

import numpy as np
import warnings

import pandas as pd

_INT_PARAMS = {"trees", "tree_depth", "min_n", "stop_iter", "mtry", "neighbors", "epochs"}


class TuneParameter:
    def __init__(self, id: Optional[str] = None):
        self.id = id if id is not None else f"tune_{builtins_id(self)}"

    def __repr__(self) -> str:
        return f"tune(id='{self.id}')"


def builtins_id(obj) -> int:
    return id(obj)


def tune(id: Optional[str] = None) -> TuneParameter:
    return TuneParameter(id)


def _values(spec: dict, levels: int) -> np.ndarray:
    if "values" in spec:
        return np.asarray(spec["values"])
    lo, hi = spec["range"]
    if spec.get("trans") == "log":
        vals = np.logspace(np.log10(lo), np.log10(hi), levels)
    else:
        vals = np.linspace(lo, hi, levels)
    return np.round(vals).astype(int) if spec.get("type") == "int" else vals


def _finish(grid: pd.DataFrame) -> pd.DataFrame:
    for c in grid.columns:
        if c in _INT_PARAMS:
            grid[c] = grid[c].astype(int)
    grid[".config"] = [f"config_{i + 1:03d}" for i in range(len(grid))]
    return grid


def grid_regular(param_info: Dict[str, Dict[str, Any]], levels: int = 3) -> pd.DataFrame:
    axes = [_values(spec, levels) for spec in param_info.values()]
    mesh = np.meshgrid(*axes, indexing="ij")
    return _finish(pd.DataFrame({n: m.ravel() for n, m in zip(param_info, mesh)}))


def grid_random(param_info: Dict[str, Dict[str, Any]], size: int = 10, seed=None) -> pd.DataFrame:
    if seed is not None:
        np.random.seed(seed)
    cols = {}
    for name, spec in param_info.items():
        lo, hi = spec["range"]
        if spec.get("trans") == "log":
            cols[name] = 10 ** np.random.uniform(np.log10(lo), np.log10(hi), size)
        else:
            cols[name] = np.random.uniform(lo, hi, size)
    return _finish(pd.DataFrame(cols))


@dataclass
class TuneResults:
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    workflow: Any = None
    resamples: Any = None
    grid: pd.DataFrame = field(default_factory=pd.DataFrame)
    method: str = "grid"

    def collect_metrics(self) -> pd.DataFrame:
        return self.metrics.copy()

    def collect_predictions(self) -> pd.DataFrame:
        return self.predictions.copy()

    def show_best(self, metric: str, n: int = 5, maximize: bool = True) -> pd.DataFrame:
        m = self.metrics[self.metrics["metric"] == metric]
        summary = m.groupby(".config")["value"].mean().reset_index()
        summary.columns = [".config", "mean"]
        summary = summary.sort_values("mean", ascending=not maximize).head(n)
        return summary.merge(self.grid, on=".config")

    def select_best(self, metric: str, maximize: bool = True) -> Dict[str, Any]:
        best = self.show_best(metric, n=1, maximize=maximize)
        cols = [c for c in best.columns if c not in (".config", "mean")]
        return best[cols].iloc[0].to_dict() if cols else {}

    def select_by_one_std_err(self, metric: str, maximize: bool = True) -> Dict[str, Any]:
        # the simplest candidate within one std of the best; "simplest": the smallest first param
        m = self.metrics[self.metrics["metric"] == metric]
        summary = m.groupby(".config")["value"].agg(["mean", "std"]).reset_index()
        summary.columns = [".config", "mean", "std"]
        best = summary["mean"].idxmax() if maximize else summary["mean"].idxmin()
        mean, std = summary.loc[best, "mean"], summary.loc[best, "std"]
        close = summary[summary["mean"] >= mean - std] if maximize else summary[summary["mean"] <= mean + std]
        close = close.merge(self.grid, on=".config")
        cols = [c for c in close.columns if c not in (".config", "mean", "std")]
        if cols:
            close = close.sort_values(cols[0])
        return close[cols].iloc[0].to_dict()


def _metric_fn(metrics):
    from py_yardstick import mae, metric_set, r_squared, rmse

    if metrics is None:
        return metric_set(rmse, mae, r_squared)
    return metrics if callable(metrics) else metric_set(*metrics)


def _outcome(workflow, wf_fit) -> Optional[str]:
    if isinstance(workflow.preprocessor, str):
        return workflow.preprocessor.split("~")[0].strip()
    bp = wf_fit.fit.blueprint
    roles = bp.get("roles", {}) if isinstance(bp, dict) else bp.roles
    if isinstance(bp, dict) and "outcome_name" in bp:
        return bp["outcome_name"]
    return roles.get("outcome", [None])[0]


def _fit_single_fold(workflow, split, fold_idx, metrics, save_pred, config=".", params=None):
    from py_rsample import testing, training

    config_name = "config_001" if config == "." else config
    try:
        wf = workflow if params is None else _update_workflow_params(workflow, params)
        train, test = training(split), testing(split)
        wf_fit = wf.fit(train)
        preds = wf_fit.predict(test)
        # tune_grid computes metrics only for formula workflows (a real-library limitation)
        outcome = _outcome(wf, wf_fit) if params is None or isinstance(wf.preprocessor, str) else None
        metrics_df = pd.DataFrame()
        if outcome and outcome in test.columns:
            metrics_df = _metric_fn(metrics)(test[outcome], preds[".pred"])
            metrics_df[".resample"], metrics_df[".config"] = f"Fold{fold_idx + 1:02d}", config_name
        preds_df = pd.DataFrame()
        if save_pred:
            preds_df = preds.reset_index(drop=True)
            preds_df[".resample"], preds_df[".config"] = f"Fold{fold_idx + 1:02d}", config_name
            preds_df[".row"] = test.index.tolist()
        return metrics_df, preds_df, None
    except Exception as exc:
        return pd.DataFrame(), pd.DataFrame(), f"Fold {fold_idx + 1} failed with error: {exc}"


def _fit_single_config_fold(workflow, params, config_name, split, fold_idx, metrics, save_pred):
    return _fit_single_fold(workflow, split, fold_idx, metrics, save_pred, config_name, params)


def _run(tasks, fn, n_jobs):
    from py_workflows.workflow import _jobs

    k = _jobs(n_jobs, len(tasks))
    if k == 1:
        return [fn(*t) for t in tasks]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=k, backend="loky")(delayed(fn)(*t) for t in tasks)


def _validate_n_jobs(n_jobs, task_count):
    """Like py_tune.parallel_utils.validate_n_jobs: called by fit_resamples / tune_grid
    directly, it warns with stacklevel=3, i.e. at the line that called them."""
    if n_jobs is not None and n_jobs > task_count:
        warnings.warn(f"n_jobs={n_jobs} is greater than task count ({task_count}). "
                      f"Only {task_count} worker(s) will be utilized.", UserWarning, stacklevel=3)


def _collect(results):
    metrics, preds = [], []
    for m, p, err in results:
        if err:
            print(f"Warning: {err}")
        if not m.empty:
            metrics.append(m)
        if not p.empty:
            preds.append(p)
    m = (pd.concat(metrics, ignore_index=True) if metrics
         else pd.DataFrame(columns=["metric", "value", ".resample", ".config"]))
    return m, pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()


def fit_resamples(workflow, resamples, metrics=None, control=None, n_jobs=None,
                  verbose=False) -> TuneResults:
    save_pred = bool((control or {}).get("save_pred", False))
    tasks = [(workflow, s, i, metrics, save_pred) for i, s in enumerate(resamples)]
    _validate_n_jobs(n_jobs, len(tasks))
    m, p = _collect(_run(tasks, _fit_single_fold, n_jobs))
    return TuneResults(metrics=m, predictions=p, workflow=workflow, resamples=resamples,
                       grid=pd.DataFrame({".config": ["config_001"]}))


def tune_grid(workflow, resamples, grid=None, metrics=None, param_info=None, control=None,
              n_jobs=None, verbose=False) -> TuneResults:
    save_pred = bool((control or {}).get("save_pred", False))
    if grid is None or isinstance(grid, int):
        info = param_info or {k: {"range": (0.0, 1.0)} for k, v in workflow.spec.args.items()
                              if isinstance(v, TuneParameter)}
        grid_df = grid_regular(info, levels=grid or 3)
    else:
        grid_df = grid.copy()
        if ".config" not in grid_df.columns:
            grid_df[".config"] = [f"config_{i + 1:03d}" for i in range(len(grid_df))]
    tasks = [(workflow, {k: v for k, v in row.items() if k != ".config"}, row[".config"],
              split, i, metrics, save_pred)
             for _, row in grid_df.iterrows() for i, split in enumerate(resamples)]
    _validate_n_jobs(n_jobs, len(tasks))
    m, p = _collect(_run(tasks, _fit_single_config_fold, n_jobs))
    return TuneResults(metrics=m, predictions=p, workflow=workflow, resamples=resamples,
                       grid=grid_df)


def _update_workflow_params(workflow, params: Dict[str, Any]):
    return replace(workflow, spec=replace(workflow.spec, args={**workflow.spec.args, **params}))


def finalize_workflow(workflow, best_params: Dict[str, Any]):
    return _update_workflow_params(workflow, best_params)
