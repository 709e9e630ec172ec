"""Stand-in tune_sim_anneal: a random walk over candidates, one tune_grid call per visited
configuration (``tune_grid`` bound by name in this module, as in the real library)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from py_tune.tune import TuneResults, grid_random, tune_grid


@dataclass
class SimAnnealControl:
    max_iter: int = 50
    no_improve: int = 20
    save_workflow: bool = False


def control_sim_anneal(max_iter=50, no_improve=20, save_workflow=False, **_) -> SimAnnealControl:
    return SimAnnealControl(max_iter, no_improve, save_workflow)


def tune_sim_anneal(workflow, resamples, param_info=None, initial=None, metrics=None,
                    control=None) -> TuneResults:
    control = control or SimAnnealControl()
    if param_info is None:  # the real library's check and message
        raise ValueError("param_info is required for simulated annealing")
    start = grid_random(param_info, size=1)
    current = start.drop(columns=".config").iloc[0].to_dict()
    parts, rows = [], []
    for i in range(1 + control.max_iter):
        config = f"config_{i + 1:03d}"
        one = pd.DataFrame([current])
        res = tune_grid(workflow, resamples, grid=one, metrics=metrics)
        m = res.metrics.copy()
        m[".config"] = config
        parts.append(m)
        rows.append({**current, ".config": config})
        nxt = {}
        for name, spec in param_info.items():  # a neighbour of the current point
            lo, hi = spec["range"]
            step = (hi - lo) * np.random.normal(scale=0.1)
            nxt[name] = float(np.clip(current[name] + step, lo, hi))
        current = nxt
    metrics_df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return TuneResults(metrics=metrics_df, workflow=workflow if control.save_workflow else None,
                       resamples=resamples, grid=pd.DataFrame(rows), method="sim_anneal")


__all__ = ["tune_sim_anneal", "SimAnnealControl", "control_sim_anneal"]
