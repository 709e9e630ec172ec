"""Table preparation shared by the plots: residuals, autocorrelation, thinning, grids, ranking.
Every function tolerates NaN, single rows and constant values."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tidymlflow._read.common import lower_is_better

MAX_POINTS = 5000  # per line; longer series are thinned by an even stride


def x_axis(frame: pd.DataFrame) -> tuple[np.ndarray, bool]:
    """The date column when it is a usable datetime, else the row position; (values, is_date)."""
    if "date" in frame.columns:
        dates = pd.to_datetime(frame["date"], errors="coerce")
        if len(dates) and dates.notna().all():
            return dates.to_numpy(), True
    return np.arange(len(frame)), False


def train_rows(outputs: pd.DataFrame) -> pd.DataFrame:
    """The training rows of an outputs frame (all rows when it has no split)."""
    if "split" in outputs.columns and (outputs["split"] == "train").any():
        return outputs[outputs["split"] == "train"]
    return outputs


def train_residuals(outputs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Training residuals as actuals - fitted (the library's own column is wrong for some
    engines), with their x values; rows with NaN are dropped."""
    rows = train_rows(outputs)
    if not {"actuals", "fitted"}.issubset(rows.columns):
        return np.array([]), np.array([])
    resid = (pd.to_numeric(rows["actuals"], errors="coerce")
             - pd.to_numeric(rows["fitted"], errors="coerce")).to_numpy(dtype=float)
    x, _ = x_axis(rows)
    keep = np.isfinite(resid)
    return x[keep], resid[keep]


def thin(x: Any, y: Any, limit: int = MAX_POINTS) -> tuple[Any, Any]:
    """At most ``limit`` points of a line, by an even stride."""
    step = max(1, math.ceil(len(y) / limit))
    return x[::step], y[::step]


def thin_note(*frames: Any) -> str:
    """What a title says when a line of these frames (or lengths) was thinned: how many points
    of how many are drawn."""
    longest = max((f if isinstance(f, int) else len(f) for f in frames), default=0)
    if longest <= MAX_POINTS:
        return ""
    step = math.ceil(longest / MAX_POINTS)
    return f" (every {step}th of {longest:,} points drawn)"


def is_constant(values: np.ndarray) -> bool:
    """True when the values differ only by floating-point noise."""
    values = np.asarray(values, dtype=float)
    return len(values) == 0 or float(np.ptp(values)) <= 1e-9 * max(1.0, float(np.abs(values).max()))


def acf(values: np.ndarray, lags: int) -> np.ndarray:
    """Autocorrelation at lags 0..lags (zeros after lag 0 for a constant series)."""
    x = np.asarray(values, dtype=float) - np.mean(values)
    denom = float(np.dot(x, x))
    out = np.zeros(lags + 1)
    out[0] = 1.0
    if not is_constant(values):
        for k in range(1, min(lags, len(x) - 1) + 1):
            out[k] = float(np.dot(x[:-k], x[k:])) / denom
    return out


def pacf(acf_values: np.ndarray) -> np.ndarray:
    """Partial autocorrelation from the autocorrelation (Durbin-Levinson)."""
    lags = len(acf_values) - 1
    out = np.zeros(lags + 1)
    out[0] = 1.0
    phi = np.zeros(lags + 1)
    for k in range(1, lags + 1):
        num = acf_values[k] - np.dot(phi[1:k], acf_values[k - 1:0:-1])
        den = 1.0 - np.dot(phi[1:k], acf_values[1:k])
        pk = num / den if abs(den) > 1e-12 else 0.0
        phi[1:k] = phi[1:k] - pk * phi[k - 1:0:-1]
        phi[k] = pk
        out[k] = pk
    return out


def decomposition(outputs: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """x, actuals, trend, seasonal, remainder of the training rows, or None without them."""
    parts = ("actuals", "trend", "seasonal", "remainder")
    rows = train_rows(outputs)
    if not set(parts).issubset(rows.columns):
        return None
    values = {p: pd.to_numeric(rows[p], errors="coerce").to_numpy(dtype=float) for p in parts}
    if not all(np.isfinite(values[p]).any() for p in parts[1:]):
        return None
    return {"x": x_axis(rows)[0], **values}


def numeric(frame: pd.DataFrame | None) -> pd.DataFrame:
    """The numeric columns of ``frame`` as floats (empty for None)."""
    if frame is None:
        return pd.DataFrame()
    return frame.select_dtypes(include="number").astype(float)


def numeric_param(summary: pd.DataFrame, param: str) -> pd.Series:
    """A parameter column as numbers (a categorical one as the order of its levels)."""
    values = pd.to_numeric(summary[param], errors="coerce")
    if values.isna().all():  # a categorical parameter: its levels in order of appearance
        codes = {v: i for i, v in enumerate(dict.fromkeys(summary[param].astype(str)))}
        values = summary[param].astype(str).map(codes).astype(float)
    return values


def influential(summary: pd.DataFrame, params: list[str], metric: str) -> list[str]:
    """Up to two parameters, the ones whose values move the metric's mean the most."""
    column = f"{metric}_mean"
    params = [p for p in params if p in summary.columns and summary[p].nunique(dropna=True) > 1]
    if column not in summary.columns or not params or pd.to_numeric(summary[column]).isna().all():
        return [p for p in params[:1]] if params else []
    spread = {}
    for p in params:
        means = summary.groupby(_binned(summary[p]), observed=True)[column].mean()
        spread[p] = float(means.max() - means.min()) if means.notna().any() else 0.0
    return sorted(params, key=lambda p: -spread[p])[:2]


def _binned(values: pd.Series, bins: int = 10) -> pd.Series:
    """Numbers as they are when few, else the median of their quantile bin (random grids);
    anything not numeric as text."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        return values.astype(str)
    if numbers.nunique() <= 12:
        return numbers
    codes = pd.qcut(numbers.rank(method="first"), min(bins, len(numbers)), labels=False)
    return numbers.groupby(codes).transform("median")


def heat_grid(summary: pd.DataFrame, rows: str, cols: str, value: str) -> pd.DataFrame:
    """Mean of ``value`` over ``rows`` x ``cols`` (binned when continuous), labelled for ticks."""
    frame = pd.DataFrame({"r": _binned(summary[rows]), "c": _binned(summary[cols]),
                          "v": pd.to_numeric(summary[value], errors="coerce")})
    grid = frame.pivot_table(index="r", columns="c", values="v", aggfunc="mean", dropna=False)
    grid.index = [_label(v) for v in grid.index]
    grid.columns = [_label(v) for v in grid.columns]
    return grid


def _label(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (float, np.floating)) else str(value)


def by_param(summary: pd.DataFrame, param: str, metric: str) -> pd.DataFrame:
    """Mean and std of the metric per value of one parameter, sorted by the parameter."""
    frame = pd.DataFrame({"x": numeric_param(summary, param),
                          "mean": pd.to_numeric(summary.get(f"{metric}_mean"), errors="coerce"),
                          "std": pd.to_numeric(summary.get(f"{metric}_std"), errors="coerce")})
    frame = frame.groupby("x", as_index=False).mean().sort_values("x")
    frame["std"] = frame["std"].fillna(0.0)
    return frame


def log_scaled(values: Iterable[float]) -> bool:
    """True when positive values span two or more orders of magnitude."""
    arr = np.asarray(list(values), dtype=float)
    arr = arr[np.isfinite(arr)]
    return len(arr) > 2 and arr.min() > 0 and arr.max() / arr.min() >= 100


def ranked(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """wflow_id, model, mean, std sorted best first (missing values dropped)."""
    if table is None or table.empty:
        return pd.DataFrame(columns=["wflow_id", "model", "mean", "std"])
    out = table.copy()
    out["mean"] = pd.to_numeric(out["mean"], errors="coerce")
    out["std"] = pd.to_numeric(out["std"], errors="coerce") if "std" in out else np.nan
    out["model"] = out["model"].astype(str) if "model" in out else "model"
    out = out.dropna(subset=["mean"])
    return out.sort_values("mean", ascending=lower_is_better(metric), kind="stable").reset_index(drop=True)


def colors(models: Sequence[Any], palette: Sequence[str]) -> dict[str, str]:
    """One palette colour per distinct value, in order of appearance."""
    return {m: palette[i % len(palette)] for i, m in enumerate(dict.fromkeys(map(str, models)))}


def coefficients(coefs: pd.DataFrame | None, group_col: str) -> pd.DataFrame | None:
    """variable, coefficient, group of a nested fit's coefficients; None when nothing varies."""
    if coefs is None or not {"variable", "coefficient", group_col}.issubset(coefs.columns):
        return None
    frame = coefs[["variable", "coefficient", group_col]].copy()
    frame["coefficient"] = pd.to_numeric(frame["coefficient"], errors="coerce")
    frame = frame.dropna(subset=["coefficient"])
    return frame if not frame.empty else None
