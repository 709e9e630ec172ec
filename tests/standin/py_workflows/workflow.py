"""Stand-in Workflow / WorkflowFit / NestedWorkflowFit."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from typing import Any, Dict, Optional

import pandas as pd

from py_parsnip import ModelFit, ModelSpec, _frames
from py_recipes import PreparedRecipe, Recipe


def _escape(col: str) -> str:
    return f'Q("{col}")' if re.search(r"[\^\*\:\+\-\/\(\)\[\]\{\}]", col) else col


def _detect_outcome(original: pd.DataFrame, processed: pd.DataFrame) -> str:
    for name in ("y", "target", "outcome"):
        if name in processed.columns:
            return name
    for col in original.columns:
        if col in processed.columns and pd.api.types.is_numeric_dtype(processed[col]):
            return col
    raise ValueError("Could not auto-detect outcome column.")


def _recipe_formula(outcome: str, processed: pd.DataFrame) -> str:
    preds = [c for c in processed.columns
             if c != outcome and not pd.api.types.is_datetime64_any_dtype(processed[c])]
    if not preds:
        raise ValueError("No predictor columns found after recipe preprocessing")
    return f"{outcome} ~ {' + '.join(_escape(c) for c in preds)}"


def _jobs(n_jobs, n_tasks) -> int:
    import os

    if n_jobs is None or n_jobs == 1:
        return 1
    k = os.cpu_count() if n_jobs == -1 else n_jobs
    return max(1, min(k, n_tasks))


@dataclass(frozen=True)
class Workflow:
    preprocessor: Optional[Any] = None
    spec: Optional[ModelSpec] = None
    post: Optional[Any] = None
    case_weights: Optional[str] = None
    model_name: Optional[str] = None
    model_group_name: Optional[str] = None

    def add_formula(self, formula: str) -> "Workflow":
        if self.preprocessor is not None:
            raise ValueError("Workflow already has a preprocessor")
        return replace(self, preprocessor=formula)

    def add_recipe(self, recipe: Recipe) -> "Workflow":
        if self.preprocessor is not None:
            raise ValueError("Workflow already has a preprocessor")
        return replace(self, preprocessor=recipe)

    def add_model(self, spec: ModelSpec) -> "Workflow":
        if self.spec is not None:
            raise ValueError("Workflow already has a model")
        return replace(self, spec=spec)

    def add_model_name(self, name: str) -> "Workflow":
        return replace(self, model_name=name)

    def add_model_group_name(self, group_name: str) -> "Workflow":
        return replace(self, model_group_name=group_name)

    def update_formula(self, formula: str) -> "Workflow":
        return replace(self, preprocessor=formula)

    def update_model(self, spec: ModelSpec) -> "Workflow":
        return replace(self, spec=spec)

    def remove_formula(self) -> "Workflow":
        return replace(self, preprocessor=None)

    def remove_model(self) -> "Workflow":
        return replace(self, spec=None)

    def fit(self, data: pd.DataFrame) -> "WorkflowFit":
        if self.spec is None:
            raise ValueError("Workflow must have a model specification")
        if isinstance(self.preprocessor, str):
            formula, processed, pre = self.preprocessor, data, self.preprocessor
        elif isinstance(self.preprocessor, Recipe):
            pre = self.preprocessor.prep(data)
            processed = pre.bake(data)
            formula = _recipe_formula(_detect_outcome(data, processed), processed)
        else:
            raise ValueError("Workflow must have a formula (via add_formula()) or recipe")
        model_fit = self.spec.fit(processed, formula, original_training_data=data.copy())
        if self.model_name is not None or self.model_group_name is not None:
            model_fit = replace(model_fit, model_name=self.model_name or model_fit.model_name,
                                model_group_name=self.model_group_name or model_fit.model_group_name)
        return WorkflowFit(workflow=self, pre=pre, fit=model_fit, post=self.post, formula=formula)

    def _fit_single_group(self, group, group_data, group_col, per_group_prep, min_group_size,
                          global_recipe, verbose=False):
        try:
            data = group_data.drop(columns=[group_col])
            if isinstance(self.preprocessor, str):
                return group, self.fit(data), None, None
            outcome = _detect_outcome(data, data)
            predictors = data.drop(columns=[outcome])
            if per_group_prep and len(data) >= min_group_size:
                prepped = self.preprocessor.prep(predictors)
            else:
                if per_group_prep:
                    warnings.warn(f"Group '{group}' is smaller than min_group_size; "
                                  "using the global recipe", UserWarning)
                prepped = global_recipe
            processed = prepped.bake(predictors)
            processed[outcome] = data[outcome].loc[processed.index].to_numpy()
            formula = _recipe_formula(outcome, processed)
            model_fit = self.spec.fit(processed, formula, original_training_data=data)
            wf_fit = WorkflowFit(workflow=self, pre=prepped, fit=model_fit, post=self.post,
                                 formula=formula, recipe_prepped_without_outcome=True)
            return group, wf_fit, prepped if per_group_prep else None, None
        except Exception as exc:  # the real library prints group failures
            return group, None, None, str(exc)

    def fit_nested(self, data: pd.DataFrame, group_col: str, per_group_prep: bool = True,
                   min_group_size: int = 30, n_jobs: Optional[int] = None,
                   verbose: bool = False) -> "NestedWorkflowFit":
        if group_col not in data.columns:
            raise ValueError(f"Group column '{group_col}' not found in data")
        global_recipe = None
        if isinstance(self.preprocessor, str):
            if per_group_prep:
                warnings.warn("per_group_prep only applies to recipes; "
                              "falling back to per_group_prep=False", UserWarning)
            per_group_prep = False
        else:
            cols = [group_col, _detect_outcome(data.drop(columns=[group_col]),
                                               data.drop(columns=[group_col]))]
            global_recipe = self.preprocessor.prep(data.drop(columns=cols))
        tasks = [(g, d.copy()) for g, d in data.groupby(group_col, sort=False)]
        k = _jobs(n_jobs, len(tasks))
        if k == 1:
            results = [self._fit_single_group(g, d, group_col, per_group_prep, min_group_size,
                                              global_recipe) for g, d in tasks]
        else:
            from joblib import Parallel, delayed

            results = Parallel(n_jobs=k, backend="loky")(
                delayed(self._fit_single_group)(g, d, group_col, per_group_prep, min_group_size,
                                                global_recipe) for g, d in tasks)
        group_fits, group_recipes = {}, {}
        for g, fit, rec, err in results:
            if err:
                print(f"Warning: Group '{g}' failed: {err}")
                continue
            group_fits[g] = fit
            if rec is not None:
                group_recipes[g] = rec
        if not group_fits:
            raise RuntimeError("All groups failed to fit")
        return NestedWorkflowFit(workflow=self, group_col=group_col, group_fits=group_fits,
                                 group_recipes=group_recipes or None,
                                 group_train_data={g: d for g, d in tasks})

    def fit_global(self, data: pd.DataFrame, group_col: str) -> "WorkflowFit":
        if group_col not in data.columns:
            raise ValueError(f"Group column '{group_col}' not found in data")
        if isinstance(self.preprocessor, str):
            lhs, rhs = (s.strip() for s in self.preprocessor.split("~", 1))
            wf = self if rhs == "." or group_col in rhs.split("+") else replace(
                self, preprocessor=f"{lhs} ~ {rhs} + {group_col}")
            result = wf.fit(data)
            result.workflow = self
        else:
            result = self.fit(data)
        result.is_global_fit, result.group_col = True, group_col
        result._train_group_values = data[[group_col]].copy()
        return result


@dataclass
class WorkflowFit:
    workflow: Workflow
    pre: Any
    fit: ModelFit
    post: Optional[Any] = None
    formula: Optional[str] = None
    recipe_prepped_without_outcome: bool = False
    is_global_fit: bool = False
    group_col: Optional[str] = None
    _train_group_values: Optional[pd.DataFrame] = None
    _test_group_values: Optional[pd.DataFrame] = None

    def _bake(self, data: pd.DataFrame, outcome_col: Optional[str] = None) -> pd.DataFrame:
        if isinstance(self.pre, str):
            return data
        if not self.recipe_prepped_without_outcome:
            return self.pre.bake(data)
        outcome = outcome_col or self.formula.split("~")[0].strip()
        if outcome not in data.columns:
            return self.pre.bake(data)
        baked = self.pre.bake(data.drop(columns=[outcome]))
        baked[outcome] = data[outcome].loc[baked.index].to_numpy()
        return baked

    def predict(self, new_data: pd.DataFrame, type: str = "numeric") -> pd.DataFrame:
        return self.fit.predict(self._bake(new_data), type=type)

    def evaluate(self, test_data: pd.DataFrame, outcome_col: Optional[str] = None) -> "WorkflowFit":
        if not isinstance(self.pre, (str, PreparedRecipe)):
            raise ValueError(f"Unknown preprocessor type: {type(self.pre)}")
        self.fit = self.fit.evaluate(self._bake(test_data, outcome_col), outcome_col,
                                     original_test_data=test_data)
        if self.is_global_fit and self.group_col in test_data.columns:
            self._test_group_values = test_data[[self.group_col]].copy()
        return self

    def extract_outputs(self):
        outputs, coefs, stats = self.fit.extract_outputs()
        if self.is_global_fit and self._train_group_values is not None:
            parts = [self._train_group_values]
            if self._test_group_values is not None:
                parts.append(self._test_group_values)
            groups = pd.concat(parts)
            if len(groups) == len(outputs):
                outputs["group"] = groups[self.group_col].to_numpy()
        return outputs, coefs, stats

    def extract_fit_parsnip(self) -> ModelFit:
        return self.fit

    def extract_preprocessor(self) -> Any:
        return self.pre

    def extract_spec_parsnip(self) -> ModelSpec:
        return self.workflow.spec

    def extract_formula(self) -> str:
        return self.formula


@dataclass
class NestedWorkflowFit:
    workflow: Workflow
    group_col: str
    group_fits: Dict[Any, WorkflowFit]
    group_recipes: Optional[Dict[Any, PreparedRecipe]] = None
    group_train_data: Optional[Dict[Any, pd.DataFrame]] = None

    def predict(self, new_data: pd.DataFrame, type: str = "numeric") -> pd.DataFrame:
        parts = []
        for g, d in new_data.groupby(self.group_col, sort=False):
            if g not in self.group_fits:
                raise ValueError(f"group '{g}' was not seen in training")
            p = self.group_fits[g].predict(d.drop(columns=[self.group_col]), type=type)
            p[self.group_col] = g
            parts.append(p.reset_index(drop=True))
        return pd.concat(parts, ignore_index=True)

    def evaluate(self, test_data: pd.DataFrame, outcome_col: Optional[str] = None) -> "NestedWorkflowFit":
        self.group_test_data = {}
        for g, d in test_data.groupby(self.group_col, sort=False):
            if g in self.group_fits:
                self.group_test_data[g] = d
                self.group_fits[g].evaluate(d.drop(columns=[self.group_col]), outcome_col)
        return self

    def extract_outputs(self):
        per_group = {g: f.extract_outputs() for g, f in self.group_fits.items()}
        return _frames.combine_nested(self.group_col, per_group, set_group=True)

    def extract_formula(self) -> dict:
        return {g: f.formula for g, f in self.group_fits.items()}

    def extract_spec_parsnip(self) -> ModelSpec:
        return self.workflow.spec

    def extract_preprocessor(self, group=None):
        pres = {g: f.pre for g, f in self.group_fits.items()}
        return pres if group is None else pres[group]

    def extract_fit_parsnip(self, group=None):
        fits = {g: f.fit for g, f in self.group_fits.items()}
        return fits if group is None else fits[group]


def workflow() -> Workflow:
    return Workflow()
