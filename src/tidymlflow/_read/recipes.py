"""What a recipe holds: step names and settings, what each prepared step learned (as a JSON
summary and a long table), and the columns before and after every step. Read generically from
the step dataclasses; pure readers, no MLflow."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tidymlflow._read import common

_RESOLVED = ("columns", "original_columns")  # where prepared steps keep their resolved columns
_SAMPLE_ROWS = 256  # first rows kept of what a step baked (the feature-correlation plot)
_MAX_ROWS = 100_000  # learned-state rows per step
_INLINE = 20  # arrays / lists / dicts up to this size are written out in steps.json


# -- names and settings -----------------------------------------------------------------------
_BUILDERS: dict[type, dict[str, str]] = {}


def step_name(step: Any, recipe: Any = None) -> str:
    """The builder name of a step (``StepImputeMean`` -> ``step_impute_mean``), looked up on
    ``recipe`` (a Recipe or its class) when given."""
    name = type(step).__name__
    if recipe is not None:
        cls = recipe if isinstance(recipe, type) else type(recipe)
        if cls not in _BUILDERS:
            _BUILDERS[cls] = {n.replace("_", ""): n for n in dir(cls) if n.startswith("step_")}
        found = _BUILDERS[cls].get(name.lower())
        if found:
            return found
    return common.snake_case(name)


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


def label(recipe: Any) -> str:
    """A recipe as a run name shows it: ``recipe: impute_mean > normalize > pca``."""
    names = [step_name(s, recipe).removeprefix("step_") for s in recipe.steps]
    return "recipe: " + " > ".join(names) if names else "recipe"


def recipe_params(recipe: Any) -> dict[str, str]:
    """``recipe.steps`` and ``recipe.<i>.<step>.<field>`` for every step."""
    names = [step_name(s, recipe) for s in recipe.steps]
    params = {"recipe.steps": ",".join(names)}
    for i, (name, step) in enumerate(zip(names, recipe.steps)):
        params.update(step_params(i, name, step))
    return params


def step_params(index: int, name: str, step: Any) -> dict[str, str]:
    """``recipe.<index>.<name>.<field>`` for every setting of one step."""
    return {f"recipe.{index}.{name}.{key}": common.param_text(value) for key, value in settings(step).items()}


def recipe_class() -> Any:
    """The library's ``Recipe`` class when ``py_recipes.recipe`` is imported (its builder
    names name the steps), else None. Never imports it."""
    module = sys.modules.get("py_recipes.recipe")
    return getattr(module, "Recipe", None)


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
        return common.param_text(value)
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

    def __init__(self, columns: list | None):
        self.columns = columns or []
        self.rows: list[tuple] = []

    def add(self, state: str, column: Any, index: Any, value: Any) -> None:
        if len(self.rows) >= _MAX_ROWS:
            return
        number = common.number(value.item() if hasattr(value, "item") else value)
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

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["state", "column", "index", "value", "text"]).astype(
            {"index": "Int64", "value": "float64"})


def learned_table(state: dict[str, Any]) -> Any:
    """The tabular part of a step's learned state in long format, or None when it has none."""
    resolved = next((state[k] for k in _RESOLVED if isinstance(state.get(k), list)), None)
    rows = _Rows(resolved)
    for name, value in state.items():
        if name not in _RESOLVED:
            rows.walk(name, value)
    return rows.frame() if rows.rows else None


def explained_variance(state: dict[str, Any]) -> list[float] | None:
    """The explained variance ratios of a PCA-like step's learned state, if any."""
    for value in state.values():
        ratio = getattr(value, "explained_variance_ratio_", None)
        if ratio is not None:
            return [float(r) for r in ratio]
    return None


# -- feature lineage ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Baked:
    """What one ``bake`` the library ran saw: the columns in and out, and the first rows of
    each (the input of the feature-correlation plot). Read from the call's own arguments and
    result; nothing is baked again."""

    before: list[str]
    after: list[str]
    sample_before: Any
    sample_after: Any


def baked(data: Any, result: Any) -> Baked | None:
    """The :class:`Baked` record of ``bake(data) -> result`` (None for anything not a frame)."""
    if not hasattr(data, "columns") or not hasattr(result, "columns"):
        return None
    return Baked([str(c) for c in data.columns], [str(c) for c in result.columns],
                 data.head(_SAMPLE_ROWS).copy(), result.head(_SAMPLE_ROWS).copy())


def lineage(prepared: Any, seen: Mapping[int, Baked]) -> tuple[list[dict[str, Any]], Any, Any] | None:
    """Columns before and after each step, from the bakes the library itself ran while
    preparing (``seen``: id of a prepared step -> its first bake); with the first rows before
    and after the whole recipe. None when a step's bake was not seen (the recipe was prepared
    in another process, or before ``autolog()``)."""
    trace: list[dict[str, Any]] = []
    records: list[Baked] = []
    recipe = getattr(prepared, "recipe", None)
    for i, step in enumerate(getattr(prepared, "prepared_steps", ())):
        record = seen.get(id(step))
        if record is None:
            return None
        spec = recipe.steps[i] if recipe is not None and i < len(recipe.steps) else step
        before, after = record.before, record.after
        trace.append({"index": i, "step": step_name(spec, recipe), "before": before, "after": after,
                      "added": [c for c in after if c not in set(before)],
                      "removed": [c for c in before if c not in set(after)]})
        records.append(record)
    if not records:
        return None
    return trace, records[0].sample_before, records[-1].sample_after


def is_prepared(obj: Any) -> bool:
    """True for a PreparedRecipe (it has prepared steps and its recipe)."""
    return hasattr(obj, "prepared_steps") and hasattr(obj, "recipe")


def is_recipe(obj: Any) -> bool:
    """True for an unprepared Recipe (it has steps)."""
    return hasattr(obj, "steps")


@dataclass(frozen=True)
class StepState:
    """One step of a recipe: its builder name and settings and, once prepared, what it learned."""

    index: int
    name: str
    spec: Any
    prepared: Any = None

    @cached_property
    def state(self) -> dict[str, Any] | None:
        """What prep learned (None for an unprepared step)."""
        return None if self.prepared is None else learned(self.spec, self.prepared)

    def summary(self) -> dict[str, Any]:
        """The step's entry in ``recipe/steps.json``."""
        entry: dict[str, Any] = {"index": self.index, "step": self.name, "class": type(self.spec).__name__,
                                 "settings": {k: summary(v) for k, v in settings(self.spec).items()}}
        state = self.state
        if state is not None:
            entry["prepared_class"] = type(self.prepared).__name__
            entry["learned"] = {k: summary(v) for k, v in state.items()}
        return entry


def steps(recipe: Any, prepared: Any = None) -> list[StepState]:
    """Every step of ``recipe``, with its prepared counterpart when ``prepared`` is given."""
    done = list(prepared.prepared_steps) if prepared is not None else []
    return [StepState(i, step_name(step, recipe), step, done[i] if i < len(done) else None)
            for i, step in enumerate(recipe.steps)]
