"""Logging of resampling and tuning results (``TuneResults``) as runs: the resampler, per-fold and
per-candidate metrics, and a child run per candidate. Shared by the layers whose calls return
tuning results; everything is read from the returned results, so parallel calls log exactly like
sequential ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tidymlflow._log import comparison, restore
from tidymlflow._log.fits import log_duration, log_info
from tidymlflow._log.plots import log_plot
from tidymlflow._read import common, fits
from tidymlflow._read import resamples as rs
from tidymlflow._recording.call import Call
from tidymlflow._recording.recorder import Recorder


def log_cv(writer: Recorder, rows: pd.DataFrame, prefix: str = "cv_") -> None:
    """Metrics ``<prefix><metric>_mean/_std``, the per-fold series ``<prefix><metric>_fold``
    (step = fold position) and the param ``<prefix><metric>_n`` (folds with a value)."""
    summary: dict[str, float] = {}
    for metric, stats in rs.cv_summary(rows).items():
        summary.update({f"{prefix}{metric}_{k}": v for k, v in stats.items()})
    log_summary(writer, summary)
    for metric, part in rows.groupby("metric", sort=False):
        values = pd.to_numeric(part["value"], errors="coerce")
        for position, value in zip(part["position"], values):
            writer.log_metric(f"{prefix}{metric}_fold", value, step=int(position))


def log_summary(writer: Recorder, summary: Mapping[str, float], step: int = 0) -> None:
    """A resampling summary: ``*_mean`` / ``*_std`` as metrics, the ``*_n`` counts as params (a
    count is not a score, and a one-value metric is only a bar in the UI)."""
    writer.log_metrics({k: v for k, v in summary.items() if not k.endswith("_n")}, step=step)
    writer.log_params({k: int(v) for k, v in summary.items() if k.endswith("_n")})


def log_workflow(call: Call, writer: Recorder, workflow: Any) -> None:
    """Params and tags of an unfitted workflow, as a fit of it would log them, and its recipe."""
    info = fits.describe_workflow(workflow)
    if info is None:
        return
    log_info(writer, info)
    call.contribute(writer, workflow)


def _fold_runs(call: Call, parent: Recorder, rows: pd.DataFrame, folds: pd.DataFrame) -> None:
    """One child per fold with that fold's metrics and boundaries (``log_fold_runs``)."""
    bounds = {int(r["position"]): r for r in folds.to_dict("records")} if not folds.empty else {}
    for position, part in rows.groupby("position", sort=True):
        fold = bounds.get(int(position), {})
        name = str(fold.get("fold", part[".resample"].iloc[0]))
        tags = {"fold": name, "fold.position": int(position),
                **{f"fold.{k}": v for k, v in fold.items() if k not in ("fold", "position")}}
        child = call.start_run(name, parent=parent, tags=tags)
        child.log_metrics({f"cv_{m}_fold": v for m, v in zip(part["metric"], part["value"])})


def _predictions(writer: Recorder, results: Any, path: str) -> str | None:
    if isinstance(results.predictions, pd.DataFrame) and not results.predictions.empty:
        writer.log_table(results.predictions, path)
        return path
    return None


def _restorable(call: Call, writer: Recorder, workflow: Any, results: Any, metrics: str | None,
                grid: str | None, predictions: str | None) -> None:
    """``restore.json`` of a ``TuneResults`` (tables already logged named), for ``load_results``."""
    parts = restore.tune_results(call, writer, results, restore.own_workflow(results, workflow),
                                 {"metrics": metrics, "grid": grid, "predictions": predictions})
    restore.log(writer, restore.qualname(results), {**parts, "control": restore.settings(call)})


def log_restorable_set(call: Call, parent: Recorder, results: Any) -> None:
    """What ``load_results`` needs to rebuild a WorkflowSet call's results from the comparison's
    parent (every WorkflowSet entry point that returns a results object)."""
    restore.workflow_set_results(call, parent, results)


def log_resamples(call: Call, writer: Recorder, workflow: Any, results: Any, resamples: Any = None,
                  restorable: bool = False) -> None:
    """A ``fit_resamples`` result: resampler, ``cv_*`` metrics, folds and metrics tables
    (``restorable``: and what ``load_results`` needs to rebuild it)."""
    resamples = resamples if resamples is not None else results.resamples
    log_workflow(call, writer, workflow)
    writer.log_params(rs.resample_params(resamples))
    log_duration(call, writer)
    folds = rs.folds_table(resamples)
    writer.log_table(folds, "resamples/folds.parquet")
    if not rs.has_metrics(results.metrics):
        call.info("the results hold no metric rows; only the run's settings were logged")
        if restorable:
            _restorable(call, writer, workflow, results, None, None, None)
        return
    rows = rs.with_positions(results.metrics)
    log_cv(writer, rows)
    writer.log_table(results.metrics, "resamples/metrics.parquet")
    log_plot(call, writer, "cv_folds", rows)
    predictions = _predictions(writer, results, "resamples/predictions.parquet")
    if restorable:
        _restorable(call, writer, workflow, results, "resamples/metrics.parquet", None, predictions)
    if call.config.log_fold_runs:
        _fold_runs(call, writer, rows, folds)


def log_tuning(call: Call, parent: Recorder, workflow: Any, results: Any, method: str,
               resamples: Any = None, metrics_arg: Any = None, *, folds_table_too: bool = True,
               best_as_cv: bool = False, restorable: bool = False) -> pd.DataFrame | None:
    """A tuning result: the parent's summary and one child per candidate, best first.
    ``best_as_cv`` also logs the best candidate's ``cv_*`` metrics on the parent (a workflow's
    run inside a WorkflowSet); ``restorable``: and what ``load_results`` needs to rebuild it.
    Returns the candidate summary (None without metric rows)."""
    resamples = resamples if resamples is not None else results.resamples
    grid = results.grid if isinstance(results.grid, pd.DataFrame) else pd.DataFrame()
    params = rs.param_columns(grid)
    log_workflow(call, parent, workflow)
    parent.log_params({**rs.resample_params(resamples), "tune.method": method,
                       "tune.n_candidates": grid[".config"].nunique() if ".config" in grid else len(grid),
                       "tune.params": ",".join(params)})
    log_duration(call, parent)
    folds = rs.folds_table(resamples)
    if folds_table_too:
        parent.log_table(folds, "resamples/folds.parquet")
    parent.log_table(grid, "tune/grid.parquet")
    grid_path = "tune/grid.parquet" if grid is results.grid else None
    if not rs.has_metrics(results.metrics):
        call.info("the results hold no metric rows (py-tidymodels computes tuning metrics only for "
                  "formula workflows); logged the settings and grid only")
        if restorable:
            _restorable(call, parent, workflow, results, None, grid_path, None)
        return None
    rows = rs.with_positions(results.metrics)
    names = rs.metric_names(rows, metrics_arg)
    summary = rs.summarize(rows, grid, names[0])
    parent.log_table(results.metrics, "tune/metrics.parquet")
    parent.log_table(summary, "tune/summary.parquet")
    predictions = _predictions(parent, results, "tune/predictions.parquet")
    if restorable:
        _restorable(call, parent, workflow, results, "tune/metrics.parquet", grid_path, predictions)
    best = summary.iloc[0]
    parent.log_params({f"best.{p}": common.param_text(rs.plain(best[p])) for p in params})
    parent.log_params({"tune.metric": names[0]})
    parent.log_metrics({f"best_cv_{m}_mean": best.get(f"{m}_mean") for m in names})
    if best_as_cv:
        log_cv(parent, rows[rows[".config"] == best[".config"]])
    _describe_tuning(call, parent, workflow, summary, params, names[0], len(folds))
    for plot in ("parameter_sensitivity", "parallel_coordinates"):
        log_plot(call, parent, plot, summary, params, names[0])
    _candidates(call, parent, workflow, rows, summary, params, folds)
    return summary


def _describe_tuning(call: Call, parent: Recorder, workflow: Any, summary: pd.DataFrame,
                     params: list[str], metric: str, n_folds: int) -> None:
    """The tuning parent's description: what was tuned, the leaderboard and the best values."""
    info = fits.describe_workflow(workflow)
    what = info.label() if info is not None else "the workflow"
    ranked = summary[summary["rank"].notna()]
    top = ranked.iloc[0] if len(ranked) else None
    best = ", ".join(f"{p}={common.value_text(rs.plain(top[p]))}" for p in params) if top is not None else ""
    comparison.describe(
        parent, f"**{call.name}** of `{what}`: {len(summary)} candidates over {n_folds} resamples, "
        f"ranked by mean {metric} ({comparison.better(metric)}).",
        ["rank", *params, f"{metric} mean", f"{metric} std"],
        [[int(r["rank"]), *(rs.plain(r[p]) for p in params), r.get(f"{metric}_mean"), r.get(f"{metric}_std")]
         for r in ranked.to_dict("records")],
        f"\nBest: {best}" if best else "")


def _candidates(call: Call, parent: Recorder, workflow: Any, rows: pd.DataFrame,
                summary: pd.DataFrame, params: list[str], folds: pd.DataFrame) -> None:
    """A child per candidate, best first, up to ``max_tuning_runs``."""
    ranked = summary[summary["rank"].notna()]
    cap = call.config.max_tuning_runs
    chosen = ranked if cap is None else ranked.head(cap)
    info = fits.describe_workflow(workflow)
    by_config = dict(iter(rows.groupby(".config", sort=False)))
    records = {str(r[".config"]): r for r in chosen.to_dict("records")}

    def fill(child: Recorder, config: str) -> None:
        if info is not None:
            child.log_params(info.params())
        child.log_params({f"args.{p}": common.param_text(rs.plain(records[config][p])) for p in params})
        child.log_params({"tune.config": config})
        part = by_config.get(records[config][".config"])
        if part is not None:
            log_cv(child, part)
            if call.config.log_fold_runs:
                _fold_runs(call, child, part, folds)

    comparison.ranked_children(
        call, parent, list(records),
        name=lambda config, rank: rs.candidate_label(records[config], params, rank),
        tags=lambda config: {"tune.config": config, **(info.tags() if info is not None else {})},
        fill=fill)
    omitted = len(ranked) - len(chosen)
    if omitted:
        call.info(f"logged the best {len(chosen)} of {len(ranked)} candidates as child runs; "
                  f"{omitted} omitted (max_tuning_runs={cap}); all are in tune/summary.parquet")
