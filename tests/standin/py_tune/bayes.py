"""Stand-in tune_bayes: random candidates, one tune_grid call each (bound by name here)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from py_tune.tune import TuneResults, grid_random, tune_grid


@dataclass
class BayesControl:
    n_initial: int = 5
    n_iter: int = 25
    no_improve: int = 10
    save_workflow: bool = False


def control_bayes(n_initial=5, n_iter=25, no_improve=10, save_workflow=False, **_) -> BayesControl:
    return BayesControl(n_initial, n_iter, no_improve, save_workflow)


def tune_bayes(workflow, resamples, param_info=None, metrics=None, control=None) -> TuneResults:
    control = control or BayesControl()
    if param_info is None:  # the real library's check and message
        raise ValueError("param_info is required for Bayesian optimization")
    candidates = grid_random(param_info, size=control.n_initial + control.n_iter)
    metrics_parts, rows = [], []
    for i, (_, row) in enumerate(candidates.iterrows()):
        config = f"config_{i + 1:03d}"
        one = pd.DataFrame([row.drop(".config").to_dict()])
        res = tune_grid(workflow, resamples, grid=one, metrics=metrics)
        m = res.metrics.copy()
        m[".config"] = config
        metrics_parts.append(m)
        rows.append({**one.iloc[0].to_dict(), ".config": config})
    metrics_df = pd.concat(metrics_parts, ignore_index=True) if metrics_parts else pd.DataFrame()
    return TuneResults(metrics=metrics_df, workflow=workflow if control.save_workflow else None,
                       resamples=resamples, grid=pd.DataFrame(rows), method="bayes")


__all__ = ["tune_bayes", "BayesControl", "control_bayes"]
