"""recipes layer: every prepared recipe's step settings, learned state and feature lineage.

A ``Recipe.prep`` the user calls gets its own run ``recipe``. A prep inside a workflow fit is
logged into that fit's run(s) from the returned fit (see ``contribute``), so it works the same
with ``n_jobs > 1``. Everything is read generically from the step dataclasses.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any, Optional

from tidymlflow import tidymodels as tm
from tidymlflow.layer import Layer, Patch
from tidymlflow.plots import log_plot

MODULE = "py_recipes.recipe"
PREP_CALL = "Recipe.prep"
_RESOLVED = ("columns", "original_columns")  # where prepared steps keep their resolved columns
_SAMPLE_ROWS = 256  # rows replayed through the prepared steps to trace columns
_MAX_ROWS = 100_000  # learned-state rows per step
_INLINE = 20  # arrays / lists / dicts up to this size are written out in steps.json


# -- names and settings -----------------------------------------------------------------------
_BUILDERS: dict[type, dict[str, str]] = {}


def step_name(step: Any, recipe: Any = None) -> str:
    """The builder name of a step (``StepImputeMean`` -> ``step_impute_mean``)."""
    cls = type(recipe) if recipe is not None else None
    if cls is not None and cls not in _BUILDERS:
        _BUILDERS[cls] = {n.replace("_", ""): n for n in dir(cls) if n.startswith("step_")}
    name = type(step).__name__
    found = _BUILDERS.get(cls, {}).get(name.lower())
    if found:
        return found
    return tm.snake_case(name)


def _fields(obj: Any) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(obj):
        return [(f.name, getattr(obj, f.name, None)) for f in dataclasses.fields(obj)]
    return list(vars(obj).items()) if hasattr(obj, "__dict__") else []


def settings(step: Any) -> dict[str, Any]:
    """A spec step's public fields (its settings)."""
    return {k: v for k, v in _fields(step) if not k.startswith("_")}


def learned(spec_step: Any, prepared: Any) -> dict[str, Any]:
    """What prep learned: a Prepared class's fields, or a prepared copy's private fields."""
    if type(prepared) is type(spec_step):
        return {k.lstrip("_"): v for k, v in _fields(prepared)
                if k.startswith("_") and k != "_is_prepared"}
    return dict(_fields(prepared))


def recipe_params(recipe: Any) -> dict[str, str]:
    """``recipe.steps`` and ``recipe.<i>.<step>.<field>`` for every step."""
    names = [step_name(s, recipe) for s in recipe.steps]
    params = {"recipe.steps": ",".join(names)}
    for i, (name, step) in enumerate(zip(names, recipe.steps)):
        for key, value in settings(step).items():
            params[f"recipe.{i}.{name}.{key}"] = tm.param_text(value)
    return params


# -- learned state: summary (steps.json) and tables (learned/<i>_<step>.parquet) ---------------
def _fitted_attrs(obj: Any) -> dict[str, Any]:
    """sklearn-style learned attributes (``mean_``, ``components_``, ``categories_``)."""
    attrs = getattr(obj, "__dict__", None)
    if not isinstance(attrs, dict) or isinstance(obj, type):
        return {}
    return {k: v for k, v in attrs.items() if k.endswith("_") and not k.startswith("_")}


def _scalar(value: Any) -> bool:
    import numpy as np

    return value is None or isinstance(value, (str, bool, int, float, np.generic))


def summary(value: Any, depth: int = 0) -> Any:
    """A JSON-ready summary: small values inline, large arrays by shape, objects by class."""
    import numpy as np
    import pandas as pd

    if _scalar(value):
        value = value.item() if isinstance(value, np.generic) else value
        return value[:1000] if isinstance(value, str) else value
    if callable(value) and not hasattr(value, "get_params"):
        return tm.param_text(value)
    if depth >= 3:
        return type(value).__name__
    if isinstance(value, Mapping):
        if len(value) <= _INLINE:
            return {str(k): summary(v, depth + 1) for k, v in value.items()}
        return {"type": "dict", "n": len(value), "keys": [str(k) for k in list(value)[:10]]}
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return {"type": type(value).__name__, "shape": list(value.shape)}
    if isinstance(value, np.ndarray):
        if value.size <= _INLINE and value.dtype.kind in "biufUSO":
            return summary(value.tolist(), depth + 1)
        return {"type": "ndarray", "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, (list, tuple, set)):
        items = list(value)
        if len(items) <= _INLINE:
            return [summary(v, depth + 1) for v in items]
        return {"type": "list", "n": len(items), "head": [summary(v, depth + 1) for v in items[:10]]}
    out: dict[str, Any] = {"class": type(value).__name__}
    out.update({k: summary(v, depth + 1) for k, v in _fitted_attrs(value).items()})
    return out


class _Rows:
    """Long-format learned state: state, column, index, value, text."""

    def __init__(self, columns: Optional[list]):
        self.columns = columns or []
        self.rows: list[tuple] = []

    def add(self, state: str, column: Any, index: Any, value: Any) -> None:
        if len(self.rows) >= _MAX_ROWS:
            return
        number = tm._number(value.item() if hasattr(value, "item") else value)
        text = None if number is not None or value is None else str(value)
        self.rows.append((state, None if column is None else str(column), index, number, text))

    def walk(self, state: str, value: Any, column: Any = None, depth: int = 0) -> None:
        import numpy as np
        import pandas as pd

        if depth > 3 or _scalar(value) or callable(value) and not hasattr(value, "__dict__"):
            if depth and _scalar(value):
                self.add(state, column, None, value)
            return
        if isinstance(value, pd.Series):
            value = value.to_dict()
        if isinstance(value, Mapping):
            for key, item in value.items():
                self.walk(state, item, key, depth + 1)
        elif isinstance(value, pd.DataFrame):
            for col in value.columns:
                for i, item in enumerate(value[col].tolist()):
                    self.add(state, col, i, item)
        elif isinstance(value, (np.ndarray, list, tuple)):
            self._array(state, value, column, depth)
        else:
            for attr, item in _fitted_attrs(value).items():
                self.walk(f"{state}.{attr.rstrip('_')}", item, column, depth + 1)

    def _array(self, state: str, value: Any, column: Any, depth: int) -> None:
        import numpy as np

        items = list(value)
        if isinstance(value, np.ndarray) and value.ndim == 2:
            arr = value
        elif items and not all(_scalar(v) for v in items):  # e.g. categories_: one array per column
            per_column = column is None and len(items) == len(self.columns)
            for i, item in enumerate(items):
                self.walk(state, item, self.columns[i] if per_column else column, depth + 1)
            return
        else:
            arr = np.asarray(items, dtype=object if not items else None)
        if arr.ndim == 2:
            names = self.columns if arr.shape[1] == len(self.columns) else range(arr.shape[1])
            for i, row in enumerate(arr):
                for name, item in zip(names, row):
                    self.add(state, name, i, item)
        elif column is None and arr.dtype.kind in "biuf" and len(arr) == len(self.columns):
            for name, item in zip(self.columns, arr):
                self.add(state, name, None, item)
        else:
            for i, item in enumerate(items):
                self.add(state, column, i, item)

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["state", "column", "index", "value", "text"]).astype(
            {"index": "Int64", "value": "float64"})


def learned_table(state: dict[str, Any]):
    """The tabular part of a step's learned state in long format, or None when it has none."""
    resolved = next((state[k] for k in _RESOLVED if isinstance(state.get(k), list)), None)
    rows = _Rows(resolved)
    for name, value in state.items():
        if name not in _RESOLVED:
            rows.walk(name, value)
    return rows.frame() if rows.rows else None


def explained_variance(state: dict[str, Any]) -> Optional[list[float]]:
    """The explained variance ratios of a PCA-like step's learned state, if any."""
    for value in state.values():
        ratio = getattr(value, "explained_variance_ratio_", None)
        if ratio is not None:
            return [float(r) for r in ratio]
    return None


# -- feature lineage ----------------------------------------------------------------------------
def lineage(prepared: Any) -> Optional[tuple[list[dict[str, Any]], Any, Any]]:
    """Columns before and after each step, traced by baking a sample of the training frame;
    with the sample before and after the whole recipe."""
    template = getattr(prepared, "template", None)
    if template is None or not hasattr(template, "columns"):
        return None
    for sample in (template.head(_SAMPLE_ROWS), template):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return _replay(prepared, sample)
        except Exception:
            if len(sample) == len(template):
                return None
    return None


def _replay(prepared: Any, data: Any) -> tuple[list[dict[str, Any]], Any, Any]:
    """(the trace, the sample before, the sample after the recipe)."""
    trace, recipe, sample = [], getattr(prepared, "recipe", None), data
    for i, step in enumerate(prepared.prepared_steps):
        before = [str(c) for c in data.columns]
        data = step.bake(data)
        after = [str(c) for c in data.columns]
        spec = recipe.steps[i] if recipe is not None else step
        trace.append({"index": i, "step": step_name(spec, recipe), "before": before, "after": after,
                      "added": [c for c in after if c not in set(before)],
                      "removed": [c for c in before if c not in set(after)]})
    return trace, sample, data


# -- logging --------------------------------------------------------------------------------------
def log_recipe(call, writer, recipe: Any, prepared: Any = None, plots: bool = True) -> None:
    """Params, steps.json and, when prepared, learned tables, lineage, PCA metrics and (with
    ``plots``) the scree and correlation plots."""
    writer.log_params(recipe_params(recipe))
    steps, scree = [], {}
    for i, step in enumerate(recipe.steps):
        name = step_name(step, recipe)
        entry = {"index": i, "step": name, "class": type(step).__name__,
                 "settings": {k: summary(v) for k, v in settings(step).items()}}
        if prepared is not None and i < len(prepared.prepared_steps):
            state = learned(step, prepared.prepared_steps[i])
            entry["prepared_class"] = type(prepared.prepared_steps[i]).__name__
            entry["learned"] = {k: summary(v) for k, v in state.items()}
            ratios = _log_state(call, writer, i, name, state)
            if ratios:
                scree[f"step {i} ({name})"] = ratios
        steps.append(entry)
    writer.log_dict(steps, "recipe/steps.json")
    if prepared is None:
        return
    traced = lineage(prepared)
    if traced is not None:
        trace, before, after = traced
        writer.log_dict({"input": trace[0]["before"] if trace else [],
                         "output": trace[-1]["after"] if trace else [], "steps": trace},
                        "recipe/features.json")
        if plots:
            log_plot(call, writer, "feature_correlation", before, after)
    if plots and scree:
        log_plot(call, writer, "pca_scree", scree)


def _log_state(call, writer, i: int, name: str, state: dict[str, Any]) -> Optional[list[float]]:
    """The step's learned table and PCA metrics; returns the explained variance ratios."""
    ratios = explained_variance(state)
    for component, ratio in enumerate(ratios or ()):
        writer.log_metric(f"recipe.{i}.explained_variance_ratio", ratio, step=component)
    table = learned_table(state)
    if table is not None:
        writer.log_table(table, f"recipe/learned/{i}_{name}.parquet")
    return ratios


def _log_model(writer, prepared: Any) -> None:
    import cloudpickle

    with open(writer.artifact_path("recipe/prepared_recipe.pkl"), "wb") as fh:
        cloudpickle.dump(prepared, fh)


def _prep(call):
    """A prep the user called: one run ``recipe``."""
    writer = call.start_run("recipe")
    prepared = yield
    log_recipe(call, writer, prepared.recipe, prepared)
    if call.config.log_models:
        _log_model(writer, prepared)


def _is_prepared(obj: Any) -> bool:
    return hasattr(obj, "prepared_steps") and hasattr(obj, "recipe")


def contribute(call, writer, result: Any, children: Mapping[Any, Any]) -> None:
    """A fit's recipe into the fit's run; per-group recipes into their group runs; an unfitted
    workflow's recipe settings (resampling and tuning runs)."""
    if not children:
        pre = getattr(result, "pre", None)
        if _is_prepared(pre):
            log_recipe(call, writer, pre.recipe, pre)
        elif hasattr(getattr(result, "preprocessor", None), "steps"):
            log_recipe(call, writer, result.preprocessor)
        return
    recipe = getattr(getattr(result, "workflow", None), "preprocessor", None)
    if recipe is None or not hasattr(recipe, "steps"):
        return
    per_group = getattr(result, "group_recipes", None) or {}
    for group, prepared in per_group.items():
        if group in children and _is_prepared(prepared):
            log_recipe(call, children[group], prepared.recipe, prepared, plots=False)
    log_recipe(call, writer, recipe, _global_prep(call, result, recipe, per_group))


def _global_prep(call, result: Any, recipe: Any, per_group: Mapping) -> Any:
    """The prep shared by all groups: the groups' common recipe, else the first prep of
    ``recipe`` seen inside this call (the library preps globally before the groups)."""
    if not per_group:
        fits = list(getattr(result, "group_fits", {}).values())
        pre = getattr(fits[0], "pre", None) if fits else None
        return pre if _is_prepared(pre) else None
    for name, instance, prepared in call.observed:
        if name == PREP_CALL and instance is recipe and _is_prepared(prepared):
            return prepared
    return None


layer = Layer("recipes", (Patch(MODULE, "Recipe.prep", PREP_CALL, _prep, observe=True),),
              contribute=contribute)
