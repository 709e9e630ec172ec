"""Logging of resampling and tuning results (``TuneResults``) as runs: the resampler, per-fold and
per-candidate metrics, and a child run per candidate. Shared by the layers whose calls return
tuning results; it knows results objects, not layers, and reads everything from the returned
results, so parallel calls log exactly like sequential ones."""

from __future__ import annotations

from typing import Any, Optional

import pandas as pd

from tidymlflow import fitlog
from tidymlflow import tidymodels as tm
from tidymlflow.plots import log_plot

_RESAMPLE_TYPES = {"VFoldCV": "vfold_cv", "TimeSeriesCV": "time_series_cv"}
_SKIP_SETTINGS = {"data", "splits"}


# -- the resampler ------------------------------------------------------------------------------
def resample_type(resamples: Any) -> str:
    """The resampler as its builder name (``VFoldCV`` -> ``vfold_cv``)."""
    name = type(resamples).__name__
    return _RESAMPLE_TYPES.get(name) or tm.snake_case(name)


def _splits(resamples: Any) -> list:
    return list(resamples) if resamples is not None else []


def resample_params(resamples: Any) -> dict[str, Any]:
    """``resamples.type``, ``resamples.n`` and the resampler's scalar settings."""
    if resamples is None:
        return {}
    params: dict[str, Any] = {"resamples.type": resample_type(resamples),
                              "resamples.n": len(_splits(resamples))}
    settings = {k: v for k, v in getattr(resamples, "__dict__", {}).items()
                if not k.startswith("_") and k not in _SKIP_SETTINGS
                and (v is None or isinstance(v, (str, bool, int, float)))}
    if isinstance(settings.get("v"), int) and settings["v"] > 0 and "repeats" not in settings:
        settings["repeats"] = max(1, params["resamples.n"] // settings["v"])
    params.update({f"resamples.{k}": tm.param_text(v) for k, v in settings.items()})
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


def summarize(metrics: pd.DataFrame, grid: Optional[pd.DataFrame], rank_by: str) -> pd.DataFrame:
    """Per candidate: params, ``<metric>_mean/_std/_n`` and ``rank`` (1 = best for ``rank_by``)."""
    stats = metrics.groupby([".config", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
    wide = stats.unstack("metric")
    wide.columns = [f"{m}_{'n' if s == 'count' else s}" for s, m in wide.columns]
    wide = wide.reset_index()
    if grid is not None and ".config" in getattr(grid, "columns", ()):
        wide = grid.drop_duplicates(".config").merge(wide, on=".config", how="right")
    key = f"{rank_by}_mean"
    wide["rank"] = wide[key].rank(method="first", ascending=rank_by in tm.LOWER_IS_BETTER).astype("Int64")
    return wide.sort_values("rank", na_position="last", kind="stable").reset_index(drop=True)


def param_columns(grid: Optional[pd.DataFrame]) -> list[str]:
    """The tuned parameter columns of a grid (all but ``.config``)."""
    return [c for c in getattr(grid, "columns", ()) if c != ".config"]


def log_cv(writer, rows: pd.DataFrame, prefix: str = "cv_") -> None:
    """``<prefix><metric>_mean/_std/_n`` and the per-fold series ``<prefix><metric>``."""
    for metric, part in rows.groupby("metric", sort=False):
        values = pd.to_numeric(part["value"], errors="coerce")
        writer.log_metrics({f"{prefix}{metric}_mean": values.mean(), f"{prefix}{metric}_std": values.std(),
                            f"{prefix}{metric}_n": int(values.notna().sum())})
        for position, value in zip(part["position"], values):
            writer.log_metric(f"{prefix}{metric}", value, step=int(position))


# -- runs ---------------------------------------------------------------------------------------
def model_type(workflow: Any) -> str:
    """The name used in run names: the workflow's model name, else its model type."""
    spec = getattr(workflow, "spec", None)
    return getattr(workflow, "model_name", None) or getattr(spec, "model_type", "model")


def workflow_info(workflow: Any) -> Optional[dict[str, Any]]:
    """Spec, preprocessor kind and formula of an unfitted workflow (None without a model)."""
    spec = getattr(workflow, "spec", None)
    if spec is None:
        return None
    pre = getattr(workflow, "preprocessor", None)
    return {"spec": spec, "preprocessor": "formula" if isinstance(pre, str) else "recipe",
            "formula": pre if isinstance(pre, str) else None}


def workflow_params(call, writer, workflow: Any) -> None:
    """Params and tags of an unfitted workflow, as a fit of it would log them."""
    info = workflow_info(workflow)
    if info is None:
        return
    writer.log_params(fitlog.fit_params(info))
    writer.set_tags(fitlog.model_tags(info["spec"], info["preprocessor"]))
    call.contribute(writer, workflow)


def _fold_runs(call, parent, rows: pd.DataFrame, folds: pd.DataFrame) -> None:
    """One child per fold with that fold's metrics and boundaries (``log_fold_runs``)."""
    bounds = {int(r["position"]): r for r in folds.to_dict("records")} if not folds.empty else {}
    for position, part in rows.groupby("position", sort=True):
        fold = bounds.get(int(position), {})
        name = str(fold.get("fold", part[".resample"].iloc[0]))
        tags = {"fold": name, "fold.position": int(position),
                **{f"fold.{k}": v for k, v in fold.items() if k not in ("fold", "position")}}
        child = call.start_run(name, parent=parent, tags=tags)
        child.log_metrics({f"cv_{m}": v for m, v in zip(part["metric"], part["value"])})


def log_resamples(call, writer, workflow: Any, results: Any, resamples: Any = None) -> None:
    """A ``fit_resamples`` result: resampler, ``cv_*`` metrics, folds and metrics tables."""
    resamples = resamples if resamples is not None else results.resamples
    workflow_params(call, writer, workflow)
    writer.log_params(resample_params(resamples))
    if call.duration is not None:
        writer.log_metric("fit_duration_s", call.duration)
    folds = folds_table(resamples)
    writer.log_table(folds, "resamples/folds.parquet")
    metrics = results.metrics
    if not has_metrics(metrics):
        call.info("the results hold no metric rows; only the run's settings were logged")
        return
    rows = with_positions(metrics)
    log_cv(writer, rows)
    writer.log_table(metrics, "resamples/metrics.parquet")
    log_plot(call, writer, "cv_folds", rows)
    if isinstance(results.predictions, pd.DataFrame) and not results.predictions.empty:
        writer.log_table(results.predictions, "resamples/predictions.parquet")
    if call.config.log_fold_runs:
        _fold_runs(call, writer, rows, folds)


def log_tuning(call, parent, workflow: Any, results: Any, method: str, resamples: Any = None,
               metrics_arg: Any = None, *, folds_table_too: bool = True,
               best_as_cv: bool = False) -> Optional[pd.DataFrame]:
    """A tuning result: the parent's summary and one child per candidate, best first.
    ``best_as_cv`` also logs the best candidate's ``cv_*`` metrics on the parent (a workflow's
    run inside a WorkflowSet). Returns the candidate summary (None without metric rows)."""
    resamples = resamples if resamples is not None else results.resamples
    grid = results.grid if isinstance(results.grid, pd.DataFrame) else pd.DataFrame()
    params = param_columns(grid)
    workflow_params(call, parent, workflow)
    parent.log_params({**resample_params(resamples), "tune.method": method,
                       "tune.n_candidates": grid[".config"].nunique() if ".config" in grid else len(grid),
                       "tune.params": ",".join(params)})
    if call.duration is not None:
        parent.log_metric("fit_duration_s", call.duration)
    folds = folds_table(resamples)
    if folds_table_too:
        parent.log_table(folds, "resamples/folds.parquet")
    parent.log_table(grid, "tune/grid.parquet")
    if not has_metrics(results.metrics):
        call.info("the results hold no metric rows (py-tidymodels computes tuning metrics only for "
                  "formula workflows); logged the settings and grid only")
        return None
    rows = with_positions(results.metrics)
    names = metric_names(rows, metrics_arg)
    summary = summarize(rows, grid, names[0])
    parent.log_table(results.metrics, "tune/metrics.parquet")
    parent.log_table(summary, "tune/summary.parquet")
    if isinstance(results.predictions, pd.DataFrame) and not results.predictions.empty:
        parent.log_table(results.predictions, "tune/predictions.parquet")
    best = summary.iloc[0]
    parent.log_params({f"best.{p}": tm.param_text(_plain(best[p])) for p in params})
    parent.log_params({"tune.metric": names[0]})
    parent.log_metrics({f"best_cv_{m}_mean": best.get(f"{m}_mean") for m in names})
    if best_as_cv:
        log_cv(parent, rows[rows[".config"] == best[".config"]])
    for plot in ("parameter_sensitivity", "parallel_coordinates"):
        log_plot(call, parent, plot, summary, params, names[0])
    _candidates(call, parent, workflow, rows, summary, params, folds)
    return summary


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _candidates(call, parent, workflow, rows, summary, params, folds) -> None:
    ranked = summary[summary["rank"].notna()]
    cap = call.config.max_tuning_runs
    chosen = ranked if cap is None else ranked.head(cap)
    info = workflow_info(workflow)
    by_config = dict(iter(rows.groupby(".config", sort=False)))
    for record in chosen.to_dict("records"):
        config = str(record[".config"])
        tags = {"tune.config": config, "rank": int(record["rank"])}
        if info is not None:
            tags.update(fitlog.model_tags(info["spec"], info["preprocessor"]))
        child = call.start_run(config, parent=parent, tags=tags)
        if info is not None:
            child.log_params(fitlog.fit_params(info))
        child.log_params({f"args.{p}": tm.param_text(_plain(record[p])) for p in params})
        child.log_params({"tune.config": config})
        part = by_config.get(record[".config"])
        if part is not None:
            log_cv(child, part)
            if call.config.log_fold_runs:
                _fold_runs(call, child, part, folds)
    omitted = len(ranked) - len(chosen)
    if omitted:
        call.info(f"logged the best {len(chosen)} of {len(ranked)} candidates as child runs; "
                  f"{omitted} omitted (max_tuning_runs={cap}); all are in tune/summary.parquet")
