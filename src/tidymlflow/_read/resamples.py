"""What a resampler and a ``TuneResults`` hold: the resampler's settings, its folds, the metric
rows with fold positions, and the per-candidate summary with ranks. Pure readers; no MLflow."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tidymlflow._read import common

_RESAMPLE_TYPES = {"VFoldCV": "vfold_cv", "TimeSeriesCV": "time_series_cv"}
_SKIP_SETTINGS = {"data", "splits"}


# -- the resampler ------------------------------------------------------------------------------
def resample_type(resamples: Any) -> str:
    """The resampler as its builder name (``VFoldCV`` -> ``vfold_cv``)."""
    name = type(resamples).__name__
    return _RESAMPLE_TYPES.get(name) or common.snake_case(name)


def _splits(resamples: Any) -> list:
    return list(resamples) if resamples is not None else []


def resample_params(resamples: Any) -> dict[str, Any]:
    """``resamples.type``, ``resamples.n`` and the resampler's scalar settings."""
    if resamples is None:
        return {}
    params: dict[str, Any] = {"resamples.type": resample_type(resamples),
                              "resamples.n": len(_splits(resamples))}
    settings: dict[str, Any] = {k: v for k, v in getattr(resamples, "__dict__", {}).items()
                                if not k.startswith("_") and k not in _SKIP_SETTINGS
                                and (v is None or isinstance(v, (str, bool, int, float)))}
    v = settings.get("v")
    if isinstance(v, int) and v > 0 and "repeats" not in settings:
        settings["repeats"] = max(1, params["resamples.n"] // v)
    params.update({f"resamples.{k}": common.param_text(v) for k, v in settings.items()})
    return params


def folds_table(resamples: Any) -> pd.DataFrame:
    """One row per fold: id, position, train/test row ranges and sizes, and date ranges when the
    resampler has a date column."""
    date_col = getattr(resamples, "date_column", None)
    rows = []
    for position, rsplit in enumerate(_splits(resamples)):
        split = getattr(rsplit, "split", rsplit)
        row = {"fold": str(getattr(split, "id", position + 1)), "position": position}
        for part, ids in (("train", split.in_id), ("test", split.out_id)):
            row[f"{part}_n"] = len(ids)
            row[f"{part}_start"] = int(ids[0]) if len(ids) else None
            row[f"{part}_end"] = int(ids[-1]) if len(ids) else None
            if date_col is not None and date_col in split.data.columns and len(ids):
                dates = split.data[date_col].iloc[ids]
                row[f"{part}_start_date"], row[f"{part}_end_date"] = dates.min(), dates.max()
        rows.append(row)
    return pd.DataFrame(rows)


# -- metrics ------------------------------------------------------------------------------------
def with_positions(metrics: pd.DataFrame) -> pd.DataFrame:
    """The raw metrics with the fold ``position`` of each row: the number in the ``.resample``
    label, or the evaluation order when labels repeat (racing tuners restart at Fold01)."""
    m = metrics.reset_index(drop=True).copy()
    if ".resample" not in m.columns:  # fit_global_resamples labels folds 1, 2, ... in "fold"
        m[".resample"] = m["fold"].astype(str) if "fold" in m.columns else "Fold01"
    if ".config" not in m.columns:
        m[".config"] = "config_001"
    keys = [".config", "metric"]
    label = pd.to_numeric(m[".resample"].astype(str).str.extract(r"(\d+)$")[0], errors="coerce")
    if label.isna().any() or m.duplicated(keys + [".resample"]).any():
        m["position"] = m.groupby(keys, sort=False).cumcount()
    else:
        m["position"] = label.astype(int) - 1
    return m


def has_metrics(metrics: Any) -> bool:
    """True when ``metrics`` is a non-empty long metrics frame."""
    return isinstance(metrics, pd.DataFrame) and not metrics.empty and {
        "metric", "value", ".config"}.issubset(metrics.columns)


def metric_names(metrics: pd.DataFrame, metrics_arg: Any = None) -> list[str]:
    """Metric names in ranking order: the metric set's order, else order of appearance."""
    seen = list(dict.fromkeys(metrics["metric"].astype(str)))
    declared = [str(n) for n in getattr(metrics_arg, "metrics", None) or () if str(n) in seen]
    return declared + [n for n in seen if n not in declared]


def summarize(metrics: pd.DataFrame, grid: pd.DataFrame | None, rank_by: str) -> pd.DataFrame:
    """Per candidate: params, ``<metric>_mean/_std/_n`` and ``rank`` (1 = best for ``rank_by``)."""
    stats = metrics.groupby([".config", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
    wide = stats.unstack("metric")
    wide.columns = [f"{m}_{'n' if s == 'count' else s}" for s, m in wide.columns]
    wide = wide.reset_index()
    if grid is not None and ".config" in getattr(grid, "columns", ()):
        wide = grid.drop_duplicates(".config").merge(wide, on=".config", how="right")
    means = pd.to_numeric(wide[f"{rank_by}_mean"], errors="coerce")
    scores = {i: float(v) for i, v in enumerate(means) if pd.notna(v)}
    ranks = {i: r for r, i in enumerate(common.rank_order(scores, rank_by), start=1)}
    wide["rank"] = pd.array([ranks.get(i) for i in range(len(wide))], dtype="Int64")
    return wide.sort_values("rank", na_position="last", kind="stable").reset_index(drop=True)


def mean_std(rows: pd.DataFrame, metric: str) -> tuple[float, float]:
    """Mean and std of one metric's values in long metric rows."""
    values = pd.to_numeric(rows.loc[rows["metric"] == metric, "value"], errors="coerce")
    return float(values.mean()), float(values.std())


def cv_summary(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per metric: ``mean``, ``std``, ``n`` (non-missing values) of long metric rows."""
    out = {}
    for metric, part in rows.groupby("metric", sort=False):
        values = pd.to_numeric(part["value"], errors="coerce")
        out[str(metric)] = {"mean": values.mean(), "std": values.std(), "n": int(values.notna().sum())}
    return out


def plain(value: Any) -> Any:
    """A numpy scalar as its Python value."""
    return value.item() if hasattr(value, "item") else value


def candidate_label(record: dict[str, Any], params: list[str], rank: int) -> str:
    """A tuning candidate's run name: ``#1 penalty=0.01 mixture=0.5`` (its ``.config`` when no
    parameter was tuned)."""
    values = " ".join(f"{p}={common.value_text(plain(record[p]))}" for p in params)
    return common.short(f"#{rank} {values or record['.config']}")


def param_columns(grid: pd.DataFrame | None) -> list[str]:
    """The tuned parameter columns of a grid (all but ``.config``)."""
    return [c for c in getattr(grid, "columns", ()) if c != ".config"]
