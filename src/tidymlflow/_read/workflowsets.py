"""What a WorkflowSet and its results hold: workflows, their preprocessors, which ones failed,
and the per-workflow (and per-group) scores every comparison ranks by. Pure readers of the
returned results objects; no MLflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tidymlflow._read import common, resamples


def entries(results: Any, key: str) -> dict[str, dict[str, Any]]:
    """The per-workflow result entries that hold ``key`` (``tune_results``, ``nested_fit``,
    ``fit``), by wflow_id."""
    return {r["wflow_id"]: r for r in results.results if r.get(key) is not None}


def errors(results: Any) -> dict[str, str]:
    """The library's error text of every workflow that failed, by wflow_id."""
    return {r["wflow_id"]: r["error"] for r in results.results if r.get("error")}


def preprocessors(ws: Any) -> dict[str, Any]:
    """Per workflow: its formula, or its recipe's step classes (``preprocessors.json``)."""
    out: dict[str, Any] = {}
    for wid, wf in ws.workflows.items():
        pre = getattr(wf, "preprocessor", None)
        if isinstance(pre, str):
            out[wid] = {"preprocessor": "formula", "formula": pre}
        else:
            out[wid] = {"preprocessor": "recipe",
                        "steps": [type(s).__name__ for s in getattr(pre, "steps", None) or ()]}
    return out


def info_table(ws: Any, ok: list[str], failed: Mapping[str, str | None]) -> pd.DataFrame:
    """The set's ``info`` frame with a ``status`` and an ``error`` per workflow."""
    info = ws.info.copy()
    for col in ("info", "option"):  # dict cells do not fit parquet
        if col in info.columns:
            info[col] = info[col].map(str)
    info["status"] = ["ok" if w in ok else "failed" for w in info["wflow_id"]]
    info["error"] = [failed.get(w) for w in info["wflow_id"]]
    return info


def model_types(ws: Any) -> dict[str, str]:
    """The model type of every workflow, by wflow_id."""
    return dict(zip(ws.info["wflow_id"], ws.info["model"]))


def resample_scores(tuned_entries: Mapping[str, dict[str, Any]], tuned: bool,
                    metric_arg: Any) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Per workflow, metric rows with fold positions (when tuned: the best candidate's rows);
    and the metric names in ranking order."""
    rows: dict[str, pd.DataFrame] = {}
    names: list[str] = []
    for wid, entry in tuned_entries.items():
        metrics = entry["tune_results"].metrics
        if not resamples.has_metrics(metrics):
            continue
        frame = resamples.with_positions(metrics)
        names += [n for n in resamples.metric_names(frame, metric_arg) if n not in names]
        if tuned:
            summary = resamples.summarize(frame, entry["tune_results"].grid, names[0])
            frame = frame[frame[".config"] == summary[".config"].iloc[0]]
        rows[wid] = frame
    return rows, names


def split_metric(stats: pd.DataFrame, split: str) -> str:
    """The ranking metric for a split of a stats frame: rmse when present, else the first
    numeric one."""
    metrics, _ = common.stats_metrics(stats, splits={split})
    names = [k[len(split) + 1:] for k in metrics]
    return common.DEFAULT_METRIC if common.DEFAULT_METRIC in names or not names else names[0]


def nested_scores(ok: Mapping[str, dict[str, Any]], group_col: str,
                  split: str) -> tuple[dict[str, dict[Any, dict[str, float]]], dict[str, dict[str, float]]]:
    """{wid: {group: metrics}} for one split, and {wid: summary across groups}."""
    per_wf: dict[str, dict[Any, dict[str, float]]] = {}
    summaries: dict[str, dict[str, float]] = {}
    for wid, entry in ok.items():
        groups = {g: common.stats_metrics(s, splits={split})[0]
                  for g, s in common.by_group(entry["stats"], group_col)}
        per_wf[wid], summaries[wid] = groups, common.group_summary(groups)
    return per_wf, summaries


def group_fold_rows(results: Any) -> dict[str, dict[Any, pd.DataFrame]]:
    """{wid: {group: fold metric rows with positions}} of a per-group resampling result."""
    by_wf: dict[str, dict[Any, pd.DataFrame]] = {}
    for r in results.results:
        frame = r.get("fold_metrics")
        if isinstance(frame, pd.DataFrame) and not frame.empty:
            by_wf.setdefault(r["wflow_id"], {})[r["group"]] = resamples.with_positions(frame)
    return by_wf


def group_metric(by_wf: Mapping[str, Mapping[Any, pd.DataFrame]], metric_arg: Any) -> str:
    """The ranking metric of per-group fold rows: the metric set's first, else the first seen."""
    names = list(dict.fromkeys(m for groups in by_wf.values() for f in groups.values() for m in f["metric"]))
    declared = [n for n in getattr(metric_arg, "metrics", None) or () if n in names]
    return str((declared or names or [common.DEFAULT_METRIC])[0])


def across_groups(groups: Mapping[Any, pd.DataFrame]) -> dict[str, float]:
    """``cv_<metric>_mean/_std/_n`` across groups as the library's ``by_group=False``: the mean of
    the groups' means and stds, the sum of their counts."""
    frame = pd.concat(groups.values(), ignore_index=True)
    per_group = frame.groupby(["group", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
    out: dict[str, float] = {}
    for metric, part in per_group.groupby(level="metric", sort=False):
        out.update({f"cv_{metric}_mean": part["mean"].mean(), f"cv_{metric}_std": part["std"].mean(),
                    f"cv_{metric}_n": int(part["count"].sum())})
    return out


def group_resample_params(resampler: Any) -> dict[str, Any]:
    """The resampler params of a per-group call: one group's settings, all groups' fold count."""
    if not isinstance(resampler, dict) or not resampler:
        return resamples.resample_params(resampler)
    params = resamples.resample_params(next(iter(resampler.values())))
    params["resamples.n"] = sum(len(list(cv)) for cv in resampler.values())
    return params


def best_by_group(results: Any, metric: str) -> pd.DataFrame:
    """The best workflow of every group for ``metric`` (from ``collect_metrics(by_group=True)``)."""
    table = results.collect_metrics(by_group=True)
    table = table[table["metric"] == metric].reset_index(drop=True)
    keys = [(g, i) for i, g in enumerate(table["group"])]
    first: dict[Any, int] = {}
    for group, row in common.rank_order(dict(zip(keys, table["mean"])), metric):
        first.setdefault(group, row)  # rows come best first: the first per group is its best
    best = table.iloc[list(first.values())]
    return best[["group", "wflow_id", "mean", "std", "preprocessor", "model"]]
