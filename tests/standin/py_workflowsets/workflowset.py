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

    def tune_grid(self, resamples, grid, metrics=None, control=None) -> "WorkflowSetResults":
        import py_tune

        results = []
        for wid, wf in self.workflows.items():  # no error handling here, as in the real library
            print(f"Tuning {wid}...")
            g = grid.get(wid, grid) if isinstance(grid, dict) else grid
            res = py_tune.tune_grid(wf, resamples, grid=g, metrics=metrics, control=control)
            m = res.collect_metrics()
            m["wflow_id"] = wid
            results.append({"wflow_id": wid, "tune_results": res, "metrics": m})
        return WorkflowSetResults(results, self, metrics)

    def workflow_map(self, fn: str, resamples=None, metrics=None, grid=None, **kwargs):
        if fn == "fit_resamples":  # keyword calls, as in the real library
            return self.fit_resamples(resamples=resamples, metrics=metrics, **kwargs)
        if fn == "tune_grid":
            return self.tune_grid(resamples=resamples, grid=grid, metrics=metrics, **kwargs)
        raise ValueError(f"Unknown function: {fn}")

    def _fit_single_workflow_nested(self, wid, data, group_col, per_group_prep, min_group_size):
        try:
            nested = self.workflows[wid].fit_nested(data, group_col, per_group_prep=per_group_prep,
                                                    min_group_size=min_group_size, n_jobs=1)
            o, c, s = nested.extract_outputs()
            return {"wflow_id": wid, "nested_fit": nested, "outputs": o, "coefs": c, "stats": s}, None
        except Exception as exc:
            return ({"wflow_id": wid, "nested_fit": None, "outputs": None, "coefs": None, "stats": None,
                     "error": str(exc)}, f"Workflow '{wid}' failed: {exc}")

    def fit_nested(self, data, group_col, per_group_prep=False, min_group_size=30, n_jobs=None,
                   verbose=False) -> "WorkflowSetNestedResults":
        args = (data, group_col, per_group_prep, min_group_size)
        out = _map(self._fit_single_workflow_nested, [(wid, *args) for wid in self.workflows], n_jobs)
        for _, err in out:
            if err:
                print(f"Warning: {err}")
        return WorkflowSetNestedResults([r for r, _ in out], self, group_col)

    def fit_global(self, data, group_col) -> "WorkflowSetResults":
        results = []
        for wid, wf in self.workflows.items():
            print(f"Fitting {wid} globally with group feature...")
            try:
                fit = wf.fit_global(data, group_col)
                o, c, s = fit.extract_outputs()
                results.append({"wflow_id": wid, "fit": fit, "metrics": s, "outputs": o, "coefs": c})
            except Exception as exc:
                print(f"  Error fitting {wid}: {exc}")
                results.append({"wflow_id": wid, "fit": None, "metrics": None, "outputs": None,
                                "coefs": None, "error": str(exc)})
        return WorkflowSetResults(results, self, None)

    def _fit_single_workflow_group_resamples(self, wid, group, cv, group_col, metrics):
        import py_tune
        from py_rsample import RSplit, Split

        try:
            splits = [RSplit(Split(s.split.data.drop(columns=[group_col]), s.split.in_id,
                                   s.split.out_id, s.split.id)) for s in cv]
            res = py_tune.fit_resamples(self.workflows[wid], resamples=splits, metrics=metrics, n_jobs=1)
            fold_metrics = res.collect_metrics()
            fold_metrics["wflow_id"], fold_metrics["group"] = wid, group
            return {"wflow_id": wid, "group": group, "cv_results": res, "fold_metrics": fold_metrics}, None
        except Exception as exc:
            return None, f"Workflow '{wid}', Group '{group}' failed: {exc}"

    def fit_nested_resamples(self, resamples, group_col, metrics=None, n_jobs=None, verbose=False):
        tasks = [(wid, g, cv, group_col, metrics) for wid in self.workflows for g, cv in resamples.items()]
        out = _map(self._fit_single_workflow_group_resamples, tasks, n_jobs)
        for _, err in out:
            if err:
                print(f"Warning: {err}")
        return WorkflowSetNestedResamples([r for r, _ in out if r is not None], self, group_col, metrics)

    def _fit_single_workflow_group_global(self, wid, group, cv, data, group_col):
        from py_yardstick import mae, r_squared, rmse

        try:
            group_data = data[data[group_col] == group]
            rows = []
            for k, split in enumerate(cv.splits):
                train = group_data.iloc[split.split.in_id]
                test = group_data.iloc[split.split.out_id]
                fit = self.workflows[wid].fit_global(train, group_col=group_col)
                pred = fit.predict(test)
                truth = test[fit.formula.split("~")[0].strip()]
                for fn in (rmse, mae, r_squared):
                    m = fn(truth.to_numpy(), pred[".pred"].to_numpy())
                    rows.append({"wflow_id": wid, "group": group, "fold": k + 1,
                                 "metric": m.iloc[0]["metric"], "value": m.iloc[0]["value"]})
            return {"wflow_id": wid, "group": group, "cv_results": None,
                    "fold_metrics": pd.DataFrame(rows)}, None
        except Exception as exc:
            return None, f"Workflow '{wid}', Group '{group}' failed: {exc}"

    def fit_global_resamples(self, data, resamples, group_col, metrics=None, n_jobs=None,
                             verbose=False):
        tasks = [(wid, g, cv, data, group_col) for wid in self.workflows for g, cv in resamples.items()]
        out = _map(self._fit_single_workflow_group_global, tasks, n_jobs)
        for _, err in out:
            if err:
                print(f"Warning: {err}")
        return WorkflowSetNestedResamples([r for r, _ in out if r is not None], self, group_col, metrics)


def _map(fn, tasks, n_jobs):
    from py_workflows.workflow import _jobs

    k = _jobs(n_jobs, len(tasks))
    if k == 1:
        return [fn(*t) for t in tasks]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=k, backend="loky")(delayed(fn)(*t) for t in tasks)


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
        raw["value"] = pd.to_numeric(raw["value"], errors="coerce")
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
            if r.get("nested_fit") is None:
                continue
            r["nested_fit"].evaluate(test_data)
            r["outputs"], r["coefs"], r["stats"] = r["nested_fit"].extract_outputs()
        return self

    def collect_metrics(self, by_group: bool = True, split: str = "all") -> pd.DataFrame:
        parts = []
        for r in self.results:
            if r.get("stats") is None:
                continue
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
        for r in [r for r in self.results if r.get("outputs") is not None]:
            outs.append(r["outputs"].assign(wflow_id=r["wflow_id"]))
            coefs.append(r["coefs"].assign(wflow_id=r["wflow_id"]))
        return (pd.concat(outs, ignore_index=True), pd.concat(coefs, ignore_index=True),
                self.collect_metrics(by_group=True, split="all"))


@dataclass
class WorkflowSetNestedResamples:
    results: List[dict]
    workflow_set: WorkflowSet
    group_col: str
    metrics: Any = None

    def collect_metrics(self, by_group: bool = True, summarize: bool = True) -> pd.DataFrame:
        parts = []
        for r in self.results:
            fm = r["fold_metrics"]
            if summarize:
                agg = fm.groupby(["wflow_id", "group", "metric"])["value"].agg(["mean", "std", "count"])
                parts.append(agg.reset_index().rename(columns={"count": "n"}))
            else:
                parts.append(fm)
        if not parts:
            return pd.DataFrame()
        df = pd.concat(parts, ignore_index=True)
        if not by_group and summarize:
            df = df.groupby(["wflow_id", "metric"]).agg({"mean": "mean", "std": "mean", "n": "sum"})
            df = df.reset_index()
            df["group"] = "global"
        return df.merge(self.workflow_set.info[["wflow_id", "preprocessor", "model"]], on="wflow_id",
                        how="left")

    def rank_results(self, metric: str = "rmse", by_group: bool = False, n: int = 10) -> pd.DataFrame:
        m = self.collect_metrics(by_group=by_group, summarize=True)
        m = m[m["metric"] == metric].copy()
        if by_group:
            m["rank"] = m.groupby("group")["mean"].rank(method="min")
            ranked = m[m["rank"] <= n].sort_values(["group", "rank"])
        else:
            m["rank"] = m["mean"].rank(method="min")  # always ascending, as in the real library
            ranked = m[m["rank"] <= n].sort_values("rank")
        return ranked[["group", "rank", "wflow_id", "mean", "std", "preprocessor", "model"]]
