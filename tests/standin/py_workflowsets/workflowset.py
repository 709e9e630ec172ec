"""Stand-in WorkflowSet and its results classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

_LOWER_IS_BETTER = {"rmse", "mae", "mape", "smape", "mse", "log_loss", "brier_score"}


def _prep_type(prep) -> str:
    return "formula" if isinstance(prep, str) else "recipe"


@dataclass
class WorkflowSet:
    workflows: Dict[str, Any] = field(default_factory=dict)
    info: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def workflow_ids(self) -> List[str]:
        return list(self.workflows)

    def __len__(self) -> int:
        return len(self.workflows)

    def __iter__(self):
        return iter(self.workflows)

    def __getitem__(self, wflow_id: str):
        return self.workflows[wflow_id]

    @classmethod
    def _build(cls, items) -> "WorkflowSet":
        wfs = dict(items)
        info = pd.DataFrame({"wflow_id": list(wfs), "info": [{} for _ in wfs], "option": [{} for _ in wfs],
                             # the real library reports "formula" even for recipe workflows
                             "preprocessor": ["formula" for _ in wfs],
                             "model": [wf.spec.model_type for wf in wfs.values()]})
        return cls(workflows=wfs, info=info)

    @classmethod
    def from_workflows(cls, workflows, ids=None) -> "WorkflowSet":
        if workflows and isinstance(workflows[0], tuple):
            return cls._build(workflows)
        ids = ids or [f"workflow_{i + 1}" for i in range(len(workflows))]
        return cls._build(zip(ids, workflows))

    @classmethod
    def from_cross(cls, preproc, models, ids=None) -> "WorkflowSet":
        from py_workflows import workflow

        if isinstance(preproc, dict):
            named = list(preproc.items())
        elif preproc and isinstance(preproc[0], tuple):
            named = list(preproc)
        else:
            named = [(f"prep_{i + 1}", p) for i, p in enumerate(preproc)]
        items = []
        for pid, prep in named:
            for j, model in enumerate(models):
                wf = workflow().add_model(model)
                wf = wf.add_formula(prep) if isinstance(prep, str) else wf.add_recipe(prep)
                items.append((f"{pid}_{model.model_type}_{j + 1}", wf))
        return cls._build(items)

    def _fit_single_workflow_resamples(self, wflow_id, resamples, metrics, control):
        import py_tune

        try:
            res = py_tune.fit_resamples(self.workflows[wflow_id], resamples, metrics=metrics,
                                        control=control, n_jobs=1)
            return {"wflow_id": wflow_id, "tune_results": res, "metrics": res.collect_metrics()}
        except Exception as exc:
            print(f"Warning: workflow {wflow_id} failed: {exc}")
            return None

    def fit_resamples(self, resamples, metrics=None, control=None, n_jobs=None,
                      verbose=False) -> "WorkflowSetResults":
        from py_workflows.workflow import _jobs

        ids = self.workflow_ids
        if _jobs(n_jobs, len(ids)) == 1:
            out = [self._fit_single_workflow_resamples(i, resamples, metrics, control) for i in ids]
        else:
            from joblib import Parallel, delayed

            out = Parallel(n_jobs=_jobs(n_jobs, len(ids)), backend="loky")(
                delayed(self._fit_single_workflow_resamples)(i, resamples, metrics, control)
                for i in ids)
        return WorkflowSetResults([r for r in out if r is not None], self, metrics)

    def tune_grid(self, resamples, grid=None, metrics=None, control=None) -> "WorkflowSetResults":
        import py_tune

        results = []
        for wid, wf in self.workflows.items():
            print(f"Tuning {wid}...")
            g = grid.get(wid) if isinstance(grid, dict) else grid
            try:
                res = py_tune.tune_grid(wf, resamples, grid=g, metrics=metrics, control=control)
                results.append({"wflow_id": wid, "tune_results": res, "metrics": res.collect_metrics()})
            except Exception as exc:
                print(f"Warning: workflow {wid} failed: {exc}")
        return WorkflowSetResults(results, self, metrics)

    def workflow_map(self, fn: str = "fit_resamples", resamples=None, metrics=None, grid=None, **kw):
        if fn == "fit_resamples":
            return self.fit_resamples(resamples, metrics=metrics, **kw)
        if fn == "tune_grid":
            return self.tune_grid(resamples, grid=grid, metrics=metrics, **kw)
        raise ValueError(f"Unknown function '{fn}'")

    def fit_nested(self, data, group_col, per_group_prep=False, min_group_size=30, n_jobs=None,
                   verbose=False) -> "WorkflowSetNestedResults":
        results = []
        for wid, wf in self.workflows.items():
            try:
                nested = wf.fit_nested(data, group_col, per_group_prep=per_group_prep,
                                       min_group_size=min_group_size, n_jobs=1)
                o, c, s = nested.extract_outputs()
                results.append({"wflow_id": wid, "nested_fit": nested, "outputs": o, "coefs": c,
                                "stats": s})
            except Exception as exc:
                print(f"Warning: workflow {wid} failed: {exc}")
        return WorkflowSetNestedResults(results, self, group_col)

    def fit_global(self, data, group_col) -> "WorkflowSetResults":
        results = []
        for wid, wf in self.workflows.items():
            print(f"Fitting {wid} (global)")
            try:
                fit = wf.fit_global(data, group_col)
                o, c, s = fit.extract_outputs()
                results.append({"wflow_id": wid, "fit": fit, "metrics": s, "outputs": o, "coefs": c})
            except Exception as exc:
                print(f"Warning: workflow {wid} failed: {exc}")
        return WorkflowSetResults(results, self, None)


def _info_cols(ws: WorkflowSet, df: pd.DataFrame) -> pd.DataFrame:
    info = ws.info.set_index("wflow_id")
    df["preprocessor"] = df["wflow_id"].map(info["preprocessor"])
    df["model"] = df["wflow_id"].map(info["model"])
    return df


@dataclass
class WorkflowSetResults:
    results: List[dict]
    workflow_set: WorkflowSet
    metrics: Any = None

    def collect_metrics(self, summarize: bool = True) -> pd.DataFrame:
        parts = []
        for r in self.results:
            m = r["metrics"].copy()
            m["wflow_id"] = r["wflow_id"]
            parts.append(m)
        raw = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["metric", "value", ".resample", ".config", "wflow_id"])
        if not summarize:
            return raw
        agg = raw.groupby(["wflow_id", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
        agg = agg.reset_index().rename(columns={"count": "n"})
        agg["n"] = agg["n"].astype("int64")
        return _info_cols(self.workflow_set, agg)

    def rank_results(self, rank_metric=None, metric=None, select_best=False, n=10) -> pd.DataFrame:
        summary = self.collect_metrics()
        rank_metric = rank_metric or metric or summary["metric"].iloc[0]
        wide = summary.pivot_table(index="wflow_id", columns="metric", values=["mean", "n", "std"])
        wide.columns = [f"{m}_{stat}" for stat, m in wide.columns]
        wide = wide.reset_index()
        wide = _info_cols(self.workflow_set, wide)
        wide = wide.sort_values(f"{rank_metric}_mean", ascending=rank_metric in _LOWER_IS_BETTER)
        if select_best:
            wide = wide.drop_duplicates("model")
        wide.insert(0, "rank", np.arange(1, len(wide) + 1))
        return wide.head(n)


@dataclass
class WorkflowSetNestedResults:
    results: List[dict]
    workflow_set: WorkflowSet
    group_col: str

    def evaluate(self, test_data) -> "WorkflowSetNestedResults":
        for r in self.results:
            r["nested_fit"].evaluate(test_data)
            r["outputs"], r["coefs"], r["stats"] = r["nested_fit"].extract_outputs()
        return self

    def collect_metrics(self, by_group: bool = True, split: str = "all") -> pd.DataFrame:
        parts = []
        for r in self.results:
            s = r["stats"].copy()
            parts.append(pd.DataFrame({"wflow_id": r["wflow_id"], "group": s[self.group_col],
                                       "metric": s["metric"], "value": s["value"],
                                       "split": s["split"]}))
        df = _info_cols(self.workflow_set, pd.concat(parts, ignore_index=True))
        if split != "all":
            df = df[df["split"] == split]
        if by_group:
            return df.reset_index(drop=True)
        df = df.assign(value=pd.to_numeric(df["value"], errors="coerce")).dropna(subset=["value"])
        agg = df.groupby(["wflow_id", "metric", "split"], sort=False)["value"].agg(
            ["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
        return _info_cols(self.workflow_set, agg)

    def rank_results(self, metric: str, split: str = "test", by_group: bool = False, n: int = 10):
        df = self.collect_metrics(by_group=True, split=split)
        df = df[df["metric"] == metric].assign(value=lambda d: pd.to_numeric(d["value"]))
        asc = metric in _LOWER_IS_BETTER
        if by_group:
            df = df.sort_values(["group", "value"], ascending=[True, asc])
            df.insert(1, "rank", df.groupby("group").cumcount() + 1)
            return df[["group", "rank", "wflow_id", "value", "preprocessor", "model"]]
        agg = df.groupby("wflow_id")["value"].agg(["mean", "std", "count"]).reset_index()
        agg = _info_cols(self.workflow_set, agg.rename(columns={"count": "n"}))
        agg = agg.sort_values("mean", ascending=asc)
        agg.insert(0, "rank", np.arange(1, len(agg) + 1))
        return agg.head(n)

    def extract_best_workflow(self, metric: str, split: str = "test", by_group: bool = False):
        ranked = self.rank_results(metric, split=split, by_group=by_group, n=10**6)
        if by_group:
            best = ranked[ranked["rank"] == 1]
            return best[["group", "wflow_id", "value", "preprocessor", "model"]].reset_index(drop=True)
        return ranked["wflow_id"].iloc[0]

    def extract_outputs(self):
        outs, coefs = [], []
        for r in self.results:
            outs.append(r["outputs"].assign(wflow_id=r["wflow_id"]))
            coefs.append(r["coefs"].assign(wflow_id=r["wflow_id"]))
        return (pd.concat(outs, ignore_index=True), pd.concat(coefs, ignore_index=True),
                self.collect_metrics(by_group=True, split="all"))
