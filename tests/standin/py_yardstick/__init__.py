"""Stand-in for py_yardstick: metric functions returning ``metric, value`` frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

__version__ = "0.1.0"


def _frame(name: str, value: float) -> pd.DataFrame:
    return pd.DataFrame({"metric": [name], "value": [float(value)]})


def _arrays(truth, estimate):
    return np.asarray(truth, dtype=float), np.asarray(estimate, dtype=float)


def rmse(truth, estimate, **kwargs) -> pd.DataFrame:
    t, e = _arrays(truth, estimate)
    return _frame("rmse", np.sqrt(np.mean((t - e) ** 2)))


def mae(truth, estimate, **kwargs) -> pd.DataFrame:
    t, e = _arrays(truth, estimate)
    return _frame("mae", np.mean(np.abs(t - e)))


def mape(truth, estimate, **kwargs) -> pd.DataFrame:
    t, e = _arrays(truth, estimate)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _frame("mape", np.mean(np.abs((t - e) / t)) * 100)


def smape(truth, estimate, **kwargs) -> pd.DataFrame:
    t, e = _arrays(truth, estimate)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _frame("smape", np.mean(2 * np.abs(e - t) / (np.abs(t) + np.abs(e))) * 100)


def r_squared(truth, estimate, **kwargs) -> pd.DataFrame:
    t, e = _arrays(truth, estimate)
    ss_res = np.sum((t - e) ** 2)
    ss_tot = np.sum((t - t.mean()) ** 2)
    return _frame("r_squared", 1 - ss_res / ss_tot if ss_tot > 0 else np.nan)


def mda(truth, estimate, **kwargs) -> pd.DataFrame:
    t, e = _arrays(truth, estimate)
    if len(t) < 2:
        return _frame("mda", np.nan)
    return _frame("mda", np.mean(np.sign(np.diff(t)) == np.sign(e[1:] - t[:-1])))


def durbin_watson(residuals, **kwargs) -> pd.DataFrame:
    r = np.asarray(residuals, dtype=float)
    denom = np.sum(r**2)
    return _frame("durbin_watson", np.sum(np.diff(r) ** 2) / denom if denom > 0 else np.nan)


def metric_set(*metrics):
    """Return a function computing every metric; a failing metric becomes NaN."""

    def compute(truth, estimate, **kwargs):
        results = []
        for fn in metrics:
            try:
                results.append(fn(truth, estimate, **kwargs))
            except Exception:
                results.append(_frame(fn.__name__, np.nan))
        if not results:
            return pd.DataFrame(columns=["metric", "value"])
        return pd.concat(results, ignore_index=True)

    compute.metrics = [fn.__name__ for fn in metrics]
    return compute
