"""Stand-in racing core shared by tune_race_anova and tune_race_win_loss."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from py_tune.tune import TuneResults


@dataclass
class RaceControl:
    burn_in: int = 3
    alpha: float = 0.05
    randomize: bool = False
    save_pred: bool = False


def control_race(burn_in=3, alpha=0.05, randomize=False, save_pred=False, **_) -> RaceControl:
    return RaceControl(burn_in, alpha, randomize, save_pred)


def restore_rset(resamples, indices):
    """A plain list of the selected splits, as in the real library."""
    return [resamples[i] for i in indices]


def combine(a: TuneResults, b: TuneResults) -> TuneResults:
    preds = pd.concat([a.predictions, b.predictions], ignore_index=True)
    return TuneResults(metrics=pd.concat([a.metrics, b.metrics], ignore_index=True),
                       predictions=preds, workflow=a.workflow, resamples=a.resamples, grid=a.grid)


def race(tune_grid, workflow, resamples, grid, metrics, control, method) -> TuneResults:
    """Burn-in on the first folds, then one tune_grid per further fold for the configs still in
    the race (the worse half is dropped each round). Every inner call labels folds from Fold01."""
    control = control or RaceControl()
    n = len(resamples)
    burn = min(control.burn_in, n)
    results = tune_grid(workflow, restore_rset(resamples, range(burn)), grid=grid, metrics=metrics,
                        control={"save_pred": control.save_pred})
    full = results.grid
    first = results.metrics["metric"].iloc[0] if len(results.metrics) else None
    for idx in range(burn, n):
        if first is None:
            break
        means = (results.metrics[results.metrics["metric"] == first]
                 .groupby(".config")["value"].mean().sort_values())
        keep = list(means.index[: max(1, (len(means) + 1) // 2)])
        survivors = full[full[".config"].isin(keep)]
        nxt = tune_grid(workflow, restore_rset(resamples, [idx]), grid=survivors, metrics=metrics,
                        control={"save_pred": control.save_pred})
        results = combine(results, nxt)
    results.grid = full
    results.method = method
    return results
