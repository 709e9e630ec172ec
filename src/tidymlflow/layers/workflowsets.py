"""workflowsets layer: one parent per comparison, a child per workflow, a grandchild per group or
candidate. Everything is logged from the returned results object in the calling process, so
``n_jobs > 1`` logs what a sequential call logs. The fits inside never log on their own."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Optional

import pandas as pd

from tidymlflow import fitlog, tunelog
from tidymlflow import tidymodels as tm
from tidymlflow._runs import registry
from tidymlflow.layer import Layer, Patch
from tidymlflow.plots import log_plot

MODULE = "py_workflowsets.workflowset"
PREFIX = "workflowset"


# -- ranking and shared parent content ------------------------------------------------------------
def _rank(scores: dict[str, float], metric: str) -> list[str]:
    """Workflow ids best first for ``metric`` (missing scores last)."""
    sign = 1 if metric in tm.LOWER_IS_BETTER else -1

    def key(wid):
        value = scores.get(wid)
        bad = value is None or (isinstance(value, float) and math.isnan(value))
        return (bad, 0.0 if bad else sign * value)

    return sorted(scores, key=key)


def _safe(call, what: str, fn: Callable[[], Any]) -> Any:
    """A library method on the results; a failure there skips that table with a note."""
    try:
        return fn()
    except Exception as exc:
        call.info(f"skipped {what}: the library raised {type(exc).__name__}: {exc}")
        return None


def _table(call, writer, what: str, fn: Callable[[], Any]) -> None:
    frame = _safe(call, f"{PREFIX}/{what}.parquet", fn)
    if isinstance(frame, pd.DataFrame):
        writer.log_table(frame.reset_index(drop=True), f"{PREFIX}/{what}.parquet")


def _preprocessors(ws) -> dict[str, Any]:
    out = {}
    for wid, wf in ws.workflows.items():
        pre = getattr(wf, "preprocessor", None)
        if isinstance(pre, str):
            out[wid] = {"preprocessor": "formula", "formula": pre}
        else:
            out[wid] = {"preprocessor": "recipe",
                        "steps": [type(s).__name__ for s in getattr(pre, "steps", None) or ()]}
    return out


def _info(ws, ok: list[str], errors: dict[str, str]) -> pd.DataFrame:
    info = ws.info.copy()
    for col in ("info", "option"):  # dict cells do not fit parquet
        if col in info.columns:
            info[col] = info[col].map(str)
    info["status"] = ["ok" if w in ok else "failed" for w in info["wflow_id"]]
    info["error"] = [errors.get(w) for w in info["wflow_id"]]
    return info


def _parent(call, parent, ws, ok: list[str], order: list[str], metric: str,
            errors: Optional[dict] = None) -> None:
    """What every WorkflowSet parent carries: counts, best workflow, info and preprocessors."""
    failed = len(ws.workflows) - len(ok)
    parent.log_params({"n_workflows": len(ws.workflows), f"{PREFIX}.metric": metric})
    if order:
        parent.log_params({"best_wflow_id": order[0]})
        parent.set_tags({"best_wflow_id": order[0]})
    parent.set_tags({f"{PREFIX}.n_failed": failed})
    if failed:
        call.info(f"{failed} workflow(s) failed inside py-tidymodels; see {PREFIX}/info.parquet")
    parent.log_table(_info(ws, ok, errors or {}), f"{PREFIX}/info.parquet")
    parent.log_dict(_preprocessors(ws), f"{PREFIX}/preprocessors.json")
    if call.duration is not None:
        parent.log_metric("fit_duration_s", call.duration)


def _comparison(call, parent, ws, scores: dict[str, tuple[float, float]], metric: str,
                stability: bool = True) -> None:
    """workflow_comparison (and cv_stability) from {wflow_id: (mean, std)}."""
    models = dict(zip(ws.info["wflow_id"], ws.info["model"]))
    table = pd.DataFrame([{"wflow_id": w, "model": models.get(w, ""), "mean": m, "std": s}
                          for w, (m, s) in scores.items()])
    log_plot(call, parent, "workflow_comparison", table, metric)
    if stability:
        log_plot(call, parent, "cv_stability", table, metric)


def _child(call, parent, name: str, wid: str, rank: int, workflow: Any, **tags: Any):
    child = call.start_run(name, parent=parent, tags={"wflow_id": wid, "rank": rank, **tags})
    tunelog.workflow_params(call, child, workflow)
    return child


def _run_name(call, fn: str) -> str:
    return f"WorkflowSet.{fn} ({len(call.instance.workflows)} workflows)"


# -- fit_resamples / tune_grid / workflow_map --------------------------------------------------------
def _resample_handler(fn: Optional[str]):
    def handler(call):
        method = fn or call.argument("fn")
        if method not in ("fit_resamples", "tune_grid"):
            return  # an unknown fn raises in the library; nothing to log
        parent = call.start_run(_run_name(call, method), hierarchical=True)
        results = yield
        _log_resample_set(call, parent, results, call.argument("resamples"), method == "tune_grid")

    return handler


def _scores(entries: dict, tuned: bool, metric_arg: Any) -> tuple[dict, dict, list[str]]:
    """Per workflow: metric rows with fold positions (the best candidate's when tuned)."""
    rows, summaries, names = {}, {}, []
    for wid, entry in entries.items():
        metrics = entry["tune_results"].metrics
        if not tunelog.has_metrics(metrics):
            continue
        frame = tunelog.with_positions(metrics)
        names += [n for n in tunelog.metric_names(frame, metric_arg) if n not in names]
        if tuned:
            summaries[wid] = tunelog.summarize(frame, entry["tune_results"].grid, names[0])
            frame = frame[frame[".config"] == summaries[wid][".config"].iloc[0]]
        rows[wid] = frame
    return rows, summaries, names


def _log_resample_set(call, parent, results, resamples, tuned: bool) -> None:
    ws = results.workflow_set
    entries = {r["wflow_id"]: r for r in results.results if r.get("tune_results") is not None}
    rows, _, names = _scores(entries, tuned, results.metrics)
    errors = {w: "no metric rows: every resample failed, or the library computes none for it"
              for w in entries if w not in rows}
    metric = names[0] if names else "rmse"
    order = _rank({wid: _mean(frame, metric) for wid, frame in rows.items()}, metric)
    for rank, wid in enumerate(order, start=1):
        child = call.start_run(wid, parent=parent, tags={"wflow_id": wid, "rank": rank})
        result = entries[wid]["tune_results"]
        if tuned:
            tunelog.log_tuning(call, child, ws[wid], result, "grid", resamples, results.metrics,
                               folds_table_too=False, best_as_cv=True)
        else:
            tunelog.workflow_params(call, child, ws[wid])
            if wid in rows:
                tunelog.log_cv(child, rows[wid])
    _parent(call, parent, ws, order, order, metric, errors)
    parent.log_params(tunelog.resample_params(resamples))
    if order and order[0] in rows:
        best = rows[order[0]].groupby("metric", sort=False)["value"].mean()
        parent.log_metrics({f"best_cv_{m}_mean": v for m, v in best.items()})
    parent.log_table(tunelog.folds_table(resamples), "resamples/folds.parquet")
    _comparison(call, parent, ws, {w: _mean_std(f, metric) for w, f in rows.items()}, metric)
    _table(call, parent, "metrics", results.collect_metrics)
    _table(call, parent, "rank_results", lambda: results.rank_results(metric, n=len(ws.workflows)))


def _mean(frame: pd.DataFrame, metric: str) -> float:
    return _mean_std(frame, metric)[0]


def _mean_std(frame: pd.DataFrame, metric: str) -> tuple[float, float]:
    values = pd.to_numeric(frame.loc[frame["metric"] == metric, "value"], errors="coerce")
    return float(values.mean()), float(values.std())


# -- fit_nested and its evaluate ---------------------------------------------------------------------
def _nested(call):
    parent = call.start_run(_run_name(call, "fit_nested"), hierarchical=True)
    results = yield
    _log_nested_set(call, parent, results)


def _split_metric(stats: pd.DataFrame, split: str) -> str:
    """The ranking metric for a split: rmse when present, else the first numeric one."""
    metrics, _ = tm.stats_metrics(stats, splits={split})
    names = [k[len(split) + 1:] for k in metrics]
    return "rmse" if "rmse" in names or not names else names[0]


def _nested_scores(ok: dict, group_col: str, split: str) -> tuple[dict, dict]:
    """{wid: {group: metrics}} for one split, and {wid: group summary}."""
    per_wf, summaries = {}, {}
    for wid, entry in ok.items():
        stats = tm.by_group(entry["stats"], group_col)
        groups = {g: tm.stats_metrics(s, splits={split})[0] for g, s in stats}
        per_wf[wid], summaries[wid] = groups, tm.group_summary(groups)
    return per_wf, summaries


def _log_nested_set(call, parent, results) -> None:
    ws, group_col = results.workflow_set, results.group_col
    ok = {r["wflow_id"]: r for r in results.results if r.get("nested_fit") is not None}
    errors = {r["wflow_id"]: r.get("error") for r in results.results if r.get("error")}
    metric = _split_metric(next(iter(ok.values()))["stats"], "train") if ok else "rmse"
    per_wf, summaries = _nested_scores(ok, group_col, "train")
    order = _rank({w: s.get(f"train_{metric}_mean") for w, s in summaries.items()}, metric)
    children, groups = {}, {}
    for rank, wid in enumerate(order, start=1):
        child = _child(call, parent, wid, wid, rank, ws[wid], group_col=group_col)
        child.log_params({"group_col": group_col, "n_groups": len(per_wf[wid])})
        child.log_metrics(summaries[wid])
        grand = {}
        for group, metrics in per_wf[wid].items():
            g = call.start_run(f"{wid} / {group}", parent=child,
                               tags={"wflow_id": wid, "group_col": group_col, "group": str(group)})
            g.log_metrics(metrics)
            grand[group] = g
        call.contribute(child, ok[wid]["nested_fit"], grand)
        children[wid], groups[wid] = child.run_id, {g: w.run_id for g, w in grand.items()}
    _parent(call, parent, ws, list(ok), order, metric, errors)
    parent.log_params({"group_col": group_col, "n_groups": len({g for v in per_wf.values() for g in v})})
    if order:
        parent.log_metrics({f"best_{k}": v for k, v in summaries[order[0]].items() if k.endswith("_mean")})
    _nested_tables(call, parent, results, metric, "train")
    _nested_plots(call, parent, results, per_wf, summaries, metric, "train", order[0] if order else None)
    registry.register(results, parent.run_id, evaluations=0, children=children, groups=groups,
                      metric=metric)


def _nested_plots(call, parent, results, per_wf: dict, summaries: dict, metric: str, split: str,
                  best: Optional[str]) -> None:
    """workflow_comparison across groups, the group x workflow heatmap and the best workflow's
    coefficients across groups."""
    key = f"{split}_{metric}"
    _comparison(call, parent, results.workflow_set,
                {w: (s.get(f"{key}_mean"), s.get(f"{key}_std")) for w, s in summaries.items()}, metric,
                stability=False)
    table = pd.DataFrame([{"group": g, "wflow_id": w, "value": m.get(key)}
                          for w, groups in per_wf.items() for g, m in groups.items()])
    log_plot(call, parent, "per_group_heatmap", table, metric)
    entry = next((r for r in results.results if r["wflow_id"] == best), None)
    if entry is not None and entry.get("coefs") is not None:
        log_plot(call, parent, "coefficient_variation", entry["coefs"], results.group_col)


def _nested_tables(call, parent, results, metric: str, split: str) -> None:
    _table(call, parent, "metrics", lambda: results.collect_metrics(by_group=False, split="all"))
    _table(call, parent, "metrics_by_group", lambda: results.collect_metrics(by_group=True, split="all"))
    n = len(results.workflow_set.workflows)
    _table(call, parent, "rank_results", lambda: results.rank_results(metric, split=split, n=n))
    _table(call, parent, "best_by_group",
           lambda: results.extract_best_workflow(metric, split=split, by_group=True))
    frames = _safe(call, "the combined tables", results.extract_outputs)
    if frames is not None:
        fitlog.log_tables(call, parent, frames)


def _nested_evaluate(call):
    """Test metrics into the groups' runs, summaries into the workflows', tables on the parent."""
    entry = registry.lookup(call.instance)
    if entry is None:
        return
    results = yield
    step = entry["evaluations"]
    entry["evaluations"] += 1
    ok = {r["wflow_id"]: r for r in results.results if r.get("nested_fit") is not None}
    per_wf, summaries = _nested_scores(ok, results.group_col, "test")
    metric = entry["metric"]
    order = _rank({w: s.get(f"test_{metric}_mean") for w, s in summaries.items()}, metric)
    for rank, wid in enumerate(order, start=1):
        if wid not in entry["children"]:
            continue
        child = call.resume_run(entry["children"][wid])
        child.log_metrics(summaries[wid], step=step)
        child.set_tags({"rank": rank})
        for group, metrics in per_wf[wid].items():
            run_id = entry["groups"][wid].get(group)
            if run_id is not None:
                call.resume_run(run_id).log_metrics(metrics, step=step)
    parent = call.resume_run(entry["run_id"])
    if order:
        parent.set_tags({"best_wflow_id": order[0], f"{PREFIX}.rank_split": "test"})
        parent.log_metrics({f"best_{k}": v for k, v in summaries[order[0]].items() if k.endswith("_mean")},
                           step=step)
    _nested_tables(call, parent, results, metric, "test")
    _nested_plots(call, parent, results, per_wf, summaries, metric, "test", order[0] if order else None)


# -- fit_global ------------------------------------------------------------------------------------
def _global(call):
    parent = call.start_run(_run_name(call, "fit_global"), hierarchical=True)
    results = yield
    group_col = call.argument("group_col")
    ws = results.workflow_set
    ok = {r["wflow_id"]: r for r in results.results if r.get("fit") is not None}
    errors = {r["wflow_id"]: r.get("error") for r in results.results if r.get("error")}
    metric = _split_metric(next(iter(ok.values()))["metrics"], "train") if ok else "rmse"
    scores = {w: tm.stats_metrics(r["metrics"], splits={"train"})[0] for w, r in ok.items()}
    order = _rank({w: s.get(f"train_{metric}") for w, s in scores.items()}, metric)
    for rank, wid in enumerate(order, start=1):
        child = call.start_run(wid, parent=parent,
                               tags={"wflow_id": wid, "rank": rank, "group_col": group_col})
        fitlog.log_single(call, child, ok[wid]["fit"], extra_params={"group_col": group_col}, timed=False)
    _parent(call, parent, ws, list(ok), order, metric, errors)
    parent.log_params({"group_col": group_col})
    if order:
        parent.log_metrics({f"best_{k}": v for k, v in scores[order[0]].items()})
    _table(call, parent, "metrics", results.collect_metrics)
    _comparison(call, parent, ws, {w: (s.get(f"train_{metric}"), float("nan")) for w, s in scores.items()},
                metric, stability=False)


# -- fit_nested_resamples / fit_global_resamples -----------------------------------------------------
def _group_resamples(fn: str):
    def handler(call):
        parent = call.start_run(_run_name(call, fn), hierarchical=True)
        results = yield
        _log_group_resamples(call, parent, results, call.argument("resamples"))

    return handler


def _group_resample_params(resamples: Any) -> dict[str, Any]:
    if not isinstance(resamples, dict) or not resamples:
        return tunelog.resample_params(resamples)
    params = tunelog.resample_params(next(iter(resamples.values())))
    params["resamples.n"] = sum(len(list(cv)) for cv in resamples.values())
    return params


def _log_group_resamples(call, parent, results, resamples) -> None:
    ws, group_col = results.workflow_set, results.group_col
    by_wf: dict[str, dict[Any, pd.DataFrame]] = {}
    for r in results.results:
        frame = r.get("fold_metrics")
        if isinstance(frame, pd.DataFrame) and not frame.empty:
            by_wf.setdefault(r["wflow_id"], {})[r["group"]] = tunelog.with_positions(frame)
    names = list(dict.fromkeys(m for groups in by_wf.values() for f in groups.values() for m in f["metric"]))
    declared = [n for n in getattr(results.metrics, "metrics", None) or () if n in names]
    metric = (declared or names or ["rmse"])[0]
    summaries = {wid: _across_groups(groups) for wid, groups in by_wf.items()}
    order = _rank({w: s.get(f"cv_{metric}_mean") for w, s in summaries.items()}, metric)
    for rank, wid in enumerate(order, start=1):
        child = _child(call, parent, wid, wid, rank, ws[wid], group_col=group_col)
        child.log_params({"group_col": group_col, "n_groups": len(by_wf[wid])})
        child.log_metrics(summaries[wid])
        for group, frame in by_wf[wid].items():
            g = call.start_run(f"{wid} / {group}", parent=child,
                               tags={"wflow_id": wid, "group_col": group_col, "group": str(group)})
            tunelog.log_cv(g, frame)
    _parent(call, parent, ws, list(by_wf), order, metric)
    parent.log_params({"group_col": group_col, **_group_resample_params(resamples),
                       "n_groups": len({g for v in by_wf.values() for g in v})})
    if order:
        parent.log_metrics({f"best_{k}": v for k, v in summaries[order[0]].items() if k.endswith("_mean")})
    n = len(ws.workflows)
    _table(call, parent, "metrics", lambda: results.collect_metrics(by_group=False))
    _table(call, parent, "metrics_by_group", lambda: results.collect_metrics(by_group=True))
    _table(call, parent, "rank_results", lambda: results.rank_results(metric, by_group=False, n=n))
    _table(call, parent, "best_by_group", lambda: _best_by_group(results, metric))
    _comparison(call, parent, ws, {w: (s.get(f"cv_{metric}_mean"), s.get(f"cv_{metric}_std"))
                                   for w, s in summaries.items()}, metric)
    table = pd.DataFrame([{"group": g, "wflow_id": w,
                           "value": _mean(frame, metric)} for w, groups in by_wf.items()
                          for g, frame in groups.items()])
    log_plot(call, parent, "per_group_heatmap", table, metric)


def _across_groups(groups: dict[Any, pd.DataFrame]) -> dict[str, float]:
    """``cv_<metric>_mean/_std/_n`` across groups as the library's ``by_group=False``: the mean of
    the groups' means and stds, the sum of their counts."""
    frame = pd.concat(groups.values(), ignore_index=True)
    per_group = frame.groupby(["group", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
    out = {}
    for metric, part in per_group.groupby(level="metric", sort=False):
        out.update({f"cv_{metric}_mean": part["mean"].mean(), f"cv_{metric}_std": part["std"].mean(),
                    f"cv_{metric}_n": int(part["count"].sum())})
    return out


def _best_by_group(results, metric: str) -> pd.DataFrame:
    table = results.collect_metrics(by_group=True)
    table = table[table["metric"] == metric]
    ascending = metric in tm.LOWER_IS_BETTER
    best = table.sort_values("mean", ascending=ascending, kind="stable").groupby("group", sort=False).head(1)
    return best[["group", "wflow_id", "mean", "std", "preprocessor", "model"]]


_CALLS = {
    "fit_resamples": _resample_handler("fit_resamples"),
    "tune_grid": _resample_handler("tune_grid"),
    "workflow_map": _resample_handler(None),
    "fit_nested": _nested,
    "fit_global": _global,
    "fit_nested_resamples": _group_resamples("fit_nested_resamples"),
    "fit_global_resamples": _group_resamples("fit_global_resamples"),
}

layer = Layer("workflowsets", (
    *(Patch(MODULE, f"WorkflowSet.{m}", f"WorkflowSet.{m}", h) for m, h in _CALLS.items()),
    Patch(MODULE, "WorkflowSetNestedResults.evaluate", "WorkflowSetNestedResults.evaluate",
          _nested_evaluate),
))
