"""workflowsets layer: one parent per comparison, a child per workflow, a grandchild per group or
candidate. Everything is logged from the returned results object in the calling process, so
``n_jobs > 1`` logs what a sequential call logs. The fits inside never log on their own.

Every call follows one skeleton (:func:`_log_set`): rank the workflows that produced scores, open a
child per workflow best first (``tidymlflow._log.comparison``), then the parent's shared content,
the winner's metrics, and the call's own tables and plots."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tidymlflow.layer import (
    Call,
    Handler,
    Layer,
    LoggedRun,
    Patch,
    Recorder,
    comparison,
    fits,
    log_plot,
    readers,
    registry,
    resampling,
)

#: the readers this layer uses
common, rs, wsr = readers.common, readers.resamples, readers.workflowsets

MODULE = "py_workflowsets.workflowset"
PREFIX = "workflowset"
RUN_NAME_TAG = "mlflow.runName"  # setting it renames the run


@dataclass
class _Set:
    """One comparison of a WorkflowSet call: what is ranked, by which metric, and what failed."""

    ws: Any
    metric: str
    scores: Mapping[str, Any]  # wflow_id -> the ranking metric's value
    ok: list[str]  # workflows with results (info.parquet status "ok")
    failed: Mapping[str, str | None] = field(default_factory=dict)
    child_tags: Mapping[str, Any] = field(default_factory=dict)
    params: bool = True  # log the workflow's params and recipe on its child
    tuned: Mapping[str, str] = field(default_factory=dict)  # wflow_id -> its best tuned values


def _log_set(call: Call, parent: Recorder, s: _Set, fill: Callable[[Recorder, str], None],
             best: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The skeleton: children best first, the parent's shared content, the winner's metrics."""
    order = common.rank_order(s.scores, s.metric)

    def fill_child(child: Recorder, wid: str) -> None:
        if s.params:
            resampling.log_workflow(call, child, s.ws[wid])
        fill(child, wid)

    comparison.ranked_children(call, parent, order, name=lambda wid, rank: _label(s.ws, wid, rank,
                                                                                   s.tuned.get(wid, "")),
                               tags=lambda wid: {"wflow_id": wid, **s.child_tags}, fill=fill_child)
    _parent(call, parent, s, order)
    comparison.best_metrics(parent, order, best)
    _describe(call, parent, s, order)
    return order


def _describe(call: Call, parent: Recorder, s: _Set, order: list[str], what: str | None = None) -> None:
    """The parent's description: the leaderboard of workflows and the ones that failed."""
    models = wsr.model_types(s.ws)
    rows = []
    for rank, wid in enumerate(order, start=1):
        info = readers.fits.describe_workflow(s.ws[wid])
        pre = info.label().split(": ", 1)[-1] if info is not None else ""
        rows.append([rank, wid, models.get(wid, ""), pre, s.scores.get(wid)])
    failed = [w for w in s.ws.workflows if w not in s.ok]
    comparison.describe(
        parent, f"**{what or call.name}** of {len(s.ws.workflows)} workflows, ranked by {s.metric} "
        f"({comparison.better(s.metric)}).", ["rank", "wflow_id", "model", "preprocessor", s.metric], rows,
        f"\nFailed inside py-tidymodels: {', '.join(failed)} (see {PREFIX}/info.parquet)" if failed else "")


def _label(ws: Any, wid: str, rank: int, tuned: str = "") -> str:
    """A workflow's run name: its rank, its wflow_id and what it is, with its best tuned values
    (``tuned``) or else the model settings in which it differs from a sibling of the same model
    and preprocessor (``#2 prep_1_linear_reg_2: linear_reg(penalty=0.1, mixture=1.0): y ~ price``)."""
    info = readers.fits.describe_workflow(ws[wid])
    if info is None:
        return common.short(f"#{rank} {wid}")
    differs = tuned or _differing_args(ws, wid, info.label())
    what = info.label()
    if differs:
        model, _, rest = what.partition(": ")
        what = f"{model}({differs}): {rest}" if rest else f"{model}({differs})"
    return common.short(f"#{rank} {wid}: {what}")


def _differing_args(ws: Any, wid: str, label: str) -> str:
    """``k=v, ...`` for the model args in which ``wid`` differs from the siblings that share its
    label (model and preprocessor); empty when none does."""
    def args(w: str) -> dict[str, str]:
        spec = getattr(ws[w], "spec", None)
        params = common.model_params(spec) if spec is not None else {}
        return {k.removeprefix("args."): v for k, v in params.items() if k.startswith("args.")}

    twins = [w for w in ws.workflows if w != wid and (i := readers.fits.describe_workflow(ws[w])) is not None
             and i.label() == label]
    if not twins:
        return ""
    own = args(wid)
    keys = [k for k in own if any(args(t).get(k) != own[k] for t in twins)]
    return ", ".join(f"{k}={own[k]}" for k in keys)


def _parent(call: Call, parent: Recorder, s: _Set, order: list[str]) -> None:
    """What every WorkflowSet parent carries: counts, best workflow, info and preprocessors."""
    failed = len(s.ws.workflows) - len(s.ok)
    parent.log_params({"n_workflows": len(s.ws.workflows), f"{PREFIX}.metric": s.metric})
    if order:
        parent.log_params({"best_wflow_id": order[0]})
        parent.set_tags({"best_wflow_id": order[0]})
    parent.set_tags({f"{PREFIX}.n_failed": failed})
    if failed:
        call.info(f"{failed} workflow(s) failed inside py-tidymodels; see {PREFIX}/info.parquet")
    parent.log_table(wsr.info_table(s.ws, s.ok, s.failed), f"{PREFIX}/info.parquet")
    parent.log_dict(wsr.preprocessors(s.ws), f"{PREFIX}/preprocessors.json")
    fits.log_duration(call, parent)


def _safe(call: Call, what: str, fn: Callable[[], Any]) -> Any:
    """A library method on the results; a failure there skips that table with a note."""
    try:
        return fn()
    except Exception as exc:
        call.info(f"skipped {what}: the library raised {type(exc).__name__}: {exc}")
        return None


def _table(call: Call, writer: Recorder, what: str, fn: Callable[[], Any]) -> None:
    frame = _safe(call, f"{PREFIX}/{what}.parquet", fn)
    if isinstance(frame, pd.DataFrame):
        writer.log_table(frame.reset_index(drop=True), f"{PREFIX}/{what}.parquet")


def _comparison(call: Call, parent: Recorder, ws: Any, scores: Mapping[str, tuple[Any, Any]],
                metric: str, stability: bool = True) -> None:
    """workflow_comparison (and cv_stability) from {wflow_id: (mean, std)}."""
    models = wsr.model_types(ws)
    table = pd.DataFrame([{"wflow_id": w, "model": models.get(w, ""), "mean": m, "std": sd}
                          for w, (m, sd) in scores.items()])
    log_plot(call, parent, "workflow_comparison", table, metric)
    if stability:
        log_plot(call, parent, "cv_stability", table, metric)


def _run_name(call: Call, fn: str) -> str:
    return f"WorkflowSet.{fn} ({len(call.instance.workflows)} workflows)"


def _mean_metrics(summary: Mapping[str, float], prefix: str = "best_") -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in summary.items() if k.endswith("_mean")}


# -- fit_resamples / tune_grid / workflow_map --------------------------------------------------------
def _resample_handler(fn: str | None) -> Handler:
    def handler(call: Call) -> Generator[None, Any, None]:
        method = fn or call.argument("fn")
        if method not in ("fit_resamples", "tune_grid"):
            yield  # an unknown fn raises in the library; nothing to log
            return
        parent = call.start_run(_run_name(call, method), hierarchical=True)
        results = yield
        _log_resample_set(call, parent, results, call.argument("resamples"), method == "tune_grid")

    return handler


def _log_resample_set(call: Call, parent: Recorder, results: Any, resamples: Any, tuned: bool) -> None:
    ws = results.workflow_set
    entries = wsr.entries(results, "tune_results")
    rows, names = wsr.resample_scores(entries, tuned, results.metrics)
    metric = names[0] if names else common.DEFAULT_METRIC
    failed = {w: "no metric rows: every resample failed, or the library computes none for it"
              for w in entries if w not in rows}

    def fill(child: Recorder, wid: str) -> None:
        if tuned:
            resampling.log_tuning(call, child, ws[wid], entries[wid]["tune_results"], "grid", resamples,
                       results.metrics, folds_table_too=False, best_as_cv=True)
        elif wid in rows:
            resampling.log_cv(child, rows[wid])

    means = {wid: frame.groupby("metric", sort=False)["value"].mean() for wid, frame in rows.items()}
    best = {wid: _best_values(entries[wid]["tune_results"].grid, frame) for wid, frame in rows.items()} \
        if tuned else {}
    scored = _Set(ws, metric, {wid: rs.mean_std(frame, metric)[0] for wid, frame in rows.items()},
                  ok=list(rows), failed=failed, params=not tuned, tuned=best)
    _log_set(call, parent, scored, fill,
             best={w: {f"best_cv_{m}_mean": v for m, v in means[w].items()} for w in rows})
    parent.log_params(rs.resample_params(resamples))
    parent.log_table(rs.folds_table(resamples), "resamples/folds.parquet")
    _comparison(call, parent, ws, {w: rs.mean_std(f, metric) for w, f in rows.items()}, metric)
    _table(call, parent, "metrics", results.collect_metrics)
    _table(call, parent, "rank_results", lambda: results.rank_results(metric, n=len(ws.workflows)))
    resampling.log_restorable_set(call, parent, results)


def _best_values(grid: Any, best_rows: pd.DataFrame) -> str:
    """``penalty=0.01, mixture=0.5``: the tuned values of the candidate whose rows are given."""
    params = rs.param_columns(grid)
    if not params or best_rows.empty or ".config" not in getattr(grid, "columns", ()):
        return ""
    match = grid[grid[".config"] == best_rows[".config"].iloc[0]]
    if match.empty:
        return ""
    record = match.iloc[0]
    return ", ".join(f"{p}={common.value_text(rs.plain(record[p]))}" for p in params)


# -- fit_nested and its evaluate ---------------------------------------------------------------------
def _nested(call: Call) -> Generator[None, Any, None]:
    parent = call.start_run(_run_name(call, "fit_nested"), hierarchical=True)
    results = yield
    _log_nested_set(call, parent, results)


def _log_nested_set(call: Call, parent: Recorder, results: Any) -> None:
    ws, group_col = results.workflow_set, results.group_col
    ok = wsr.entries(results, "nested_fit")
    metric = wsr.split_metric(next(iter(ok.values()))["stats"], "train") if ok else common.DEFAULT_METRIC
    per_wf, summaries = wsr.nested_scores(ok, group_col, "train")
    groups: dict[str, dict[Any, str]] = {}

    def fill(child: Recorder, wid: str) -> None:
        child.log_params({"group_col": group_col, "n_groups": len(per_wf[wid])})
        child.log_metrics(summaries[wid])
        grand = _group_runs(call, child, wid, group_col, per_wf[wid], Recorder.log_metrics)
        call.contribute(child, ok[wid]["nested_fit"], grand)
        groups[wid] = {g: w.handle for g, w in grand.items()}

    scored = _Set(ws, metric, {w: s.get(f"train_{metric}_mean") for w, s in summaries.items()},
                  ok=list(ok), failed=wsr.errors(results), child_tags={"group_col": group_col})
    children: dict[str, str] = {}
    order = _log_set(call, parent, scored, _remember(fill, children),
                     best={w: _mean_metrics(s) for w, s in summaries.items()})
    parent.log_params({"group_col": group_col, "n_groups": len({g for v in per_wf.values() for g in v})})
    _nested_tables(call, parent, results, metric, "train")
    _nested_plots(call, parent, results, per_wf, summaries, metric, "train", order[0] if order else None)
    resampling.log_restorable_set(call, parent, results)
    registry.register(results, LoggedRun(parent.handle, children=children, groups=groups, metric=metric))


def _remember(fill: Callable[[Recorder, str], None],
              children: dict[str, str]) -> Callable[[Recorder, str], None]:
    """``fill`` that also records each child's run id by wflow_id."""
    def wrapped(child: Recorder, wid: str) -> None:
        fill(child, wid)
        children[wid] = child.handle

    return wrapped


def _group_runs(call: Call, child: Recorder, wid: str, group_col: str, per_group: Mapping[Any, Any],
                log: Callable[[Recorder, Any], None]) -> dict[Any, Recorder]:
    """A grandchild ``<wflow_id> / <group>`` per group, filled by ``log(grandchild, value)``."""
    grand = {}
    for group, value in per_group.items():
        g = call.start_run(f"{wid} / {group}", parent=child,
                           tags={"wflow_id": wid, "group_col": group_col, "group": str(group)})
        log(g, value)
        grand[group] = g
    return grand


def _nested_plots(call: Call, parent: Recorder, results: Any, per_wf: Mapping[str, Mapping[Any, Any]],
                  summaries: Mapping[str, Mapping[str, float]], metric: str, split: str,
                  best: str | None) -> None:
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


def _nested_tables(call: Call, parent: Recorder, results: Any, metric: str, split: str) -> None:
    _table(call, parent, "metrics", lambda: results.collect_metrics(by_group=False, split="all"))
    _table(call, parent, "metrics_by_group", lambda: results.collect_metrics(by_group=True, split="all"))
    n = len(results.workflow_set.workflows)
    _table(call, parent, "rank_results", lambda: results.rank_results(metric, split=split, n=n))
    _table(call, parent, "best_by_group",
           lambda: results.extract_best_workflow(metric, split=split, by_group=True))
    frames = _safe(call, "the combined tables", results.extract_outputs)
    if frames is not None:
        fits.log_tables(call, parent, frames)


def _nested_evaluate(call: Call) -> Generator[None, Any, None]:
    """Test metrics into the groups' runs, summaries into the workflows', tables on the parent."""
    logged = registry.lookup(call.instance)
    results = yield
    if logged is None or logged.children is None or logged.metric is None:
        return
    step = logged.next_step()
    per_wf, summaries = wsr.nested_scores(wsr.entries(results, "nested_fit"), results.group_col, "test")
    metric = logged.metric
    order = common.rank_order({w: s.get(f"test_{metric}_mean") for w, s in summaries.items()}, metric)
    ws = results.workflow_set
    for position, wid in enumerate(order, start=1):  # one ranking: the test split's from now on
        if wid not in logged.children:
            continue
        child = call.resume_run(logged.children[wid])
        child.log_metrics(summaries[wid], step=step)
        child.set_tags({"rank": position, RUN_NAME_TAG: _label(ws, wid, position)})
        for group, metrics in per_wf[wid].items():
            handle = logged.groups[wid].get(group)
            if handle is not None:
                call.resume_run(handle).log_metrics(metrics, step=step)
    parent = call.resume_run(logged.handle)
    if order:
        parent.set_tags({"best_wflow_id": order[0], f"{PREFIX}.rank_split": "test"})
    scored = _Set(ws, f"test_{metric}", {w: s.get(f"test_{metric}_mean") for w, s in summaries.items()},
                  ok=list(logged.children), failed=wsr.errors(results))
    _describe(call, parent, scored, [w for w in order if w in logged.children],
              what="WorkflowSet.fit_nested, evaluated on the test split,")
    comparison.best_metrics(parent, order, {w: _mean_metrics(s) for w, s in summaries.items()}, step=step)
    _nested_tables(call, parent, results, metric, "test")
    _nested_plots(call, parent, results, per_wf, summaries, metric, "test", order[0] if order else None)
    resampling.log_restorable_set(call, parent, results)  # the evaluated results, as load_results gives them


# -- fit_global ------------------------------------------------------------------------------------
def _global(call: Call) -> Generator[None, Any, None]:
    parent = call.start_run(_run_name(call, "fit_global"), hierarchical=True)
    results = yield
    group_col = call.argument("group_col")
    ws = results.workflow_set
    ok = wsr.entries(results, "fit")
    metric = wsr.split_metric(next(iter(ok.values()))["metrics"], "train") if ok else common.DEFAULT_METRIC
    scores = {w: common.stats_metrics(r["metrics"], splits={"train"})[0] for w, r in ok.items()}

    def fill(child: Recorder, wid: str) -> None:
        fits.log_single(call, child, ok[wid]["fit"], extra_params={"group_col": group_col}, timed=False)

    scored = _Set(ws, metric, {w: s.get(f"train_{metric}") for w, s in scores.items()}, ok=list(ok),
                  failed=wsr.errors(results), child_tags={"group_col": group_col}, params=False)
    _log_set(call, parent, scored, fill, best={w: {f"best_{k}": v for k, v in s.items()}
                                               for w, s in scores.items()})
    parent.log_params({"group_col": group_col})
    _table(call, parent, "metrics", results.collect_metrics)
    _comparison(call, parent, ws, {w: (s.get(f"train_{metric}"), float("nan")) for w, s in scores.items()},
                metric, stability=False)
    resampling.log_restorable_set(call, parent, results)


# -- fit_nested_resamples / fit_global_resamples -----------------------------------------------------
def _group_resamples(fn: str) -> Handler:
    def handler(call: Call) -> Generator[None, Any, None]:
        parent = call.start_run(_run_name(call, fn), hierarchical=True)
        results = yield
        _log_group_resamples(call, parent, results, call.argument("resamples"))

    return handler


def _log_group_resamples(call: Call, parent: Recorder, results: Any, resamples: Any) -> None:
    ws, group_col = results.workflow_set, results.group_col
    by_wf = wsr.group_fold_rows(results)
    metric = wsr.group_metric(by_wf, results.metrics)
    summaries = {wid: wsr.across_groups(groups) for wid, groups in by_wf.items()}

    def fill(child: Recorder, wid: str) -> None:
        child.log_params({"group_col": group_col, "n_groups": len(by_wf[wid])})
        resampling.log_summary(child, summaries[wid])
        _group_runs(call, child, wid, group_col, by_wf[wid], resampling.log_cv)

    scored = _Set(ws, metric, {w: s.get(f"cv_{metric}_mean") for w, s in summaries.items()},
                  ok=list(by_wf), child_tags={"group_col": group_col})
    _log_set(call, parent, scored, fill, best={w: _mean_metrics(s) for w, s in summaries.items()})
    parent.log_params({"group_col": group_col, **wsr.group_resample_params(resamples),
                       "n_groups": len({g for v in by_wf.values() for g in v})})
    n = len(ws.workflows)
    _table(call, parent, "metrics", lambda: results.collect_metrics(by_group=False))
    _table(call, parent, "metrics_by_group", lambda: results.collect_metrics(by_group=True))
    _table(call, parent, "rank_results", lambda: results.rank_results(metric, by_group=False, n=n))
    _table(call, parent, "best_by_group", lambda: wsr.best_by_group(results, metric))
    _comparison(call, parent, ws, {w: (s.get(f"cv_{metric}_mean"), s.get(f"cv_{metric}_std"))
                                   for w, s in summaries.items()}, metric)
    table = pd.DataFrame([{"group": g, "wflow_id": w, "value": rs.mean_std(frame, metric)[0]}
                          for w, groups in by_wf.items() for g, frame in groups.items()])
    log_plot(call, parent, "per_group_heatmap", table, metric)
    resampling.log_restorable_set(call, parent, results)


_CALLS: dict[str, Handler] = {
    "fit_resamples": _resample_handler("fit_resamples"),
    "tune_grid": _resample_handler("tune_grid"),
    "workflow_map": _resample_handler(None),
    "fit_nested": _nested,
    "fit_global": _global,
    "fit_nested_resamples": _group_resamples("fit_nested_resamples"),
    "fit_global_resamples": _group_resamples("fit_global_resamples"),
}

layer = Layer("workflowsets", (
    *(Patch(MODULE, f"WorkflowSet.{m}", h) for m, h in _CALLS.items()),
    Patch(MODULE, "WorkflowSetNestedResults.evaluate", _nested_evaluate),
))
