"""What a fitted (or unfitted) workflow / model spec is: its spec, preprocessor, formula, name,
and its three output DataFrames. Pure readers of py-tidymodels objects; no MLflow."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from tidymlflow._read import common, recipes
from tidymlflow._runtime import fastpath as fast
from tidymlflow._runtime.weak import WeakIdMap

#: The names of the library's three output DataFrames, in ``extract_outputs()`` order.
TABLES = ("outputs", "coefficients", "stats")


class Outputs(NamedTuple):
    """The three DataFrames of ``extract_outputs()``, by name instead of by position."""

    outputs: pd.DataFrame
    coefficients: pd.DataFrame
    stats: pd.DataFrame


def outputs(fit: Any) -> Outputs:
    """``fit.extract_outputs()`` as named tables (any fit, nested fit or nested results),
    computed once per state of a fit (:data:`cache`) with diagnostics that cost O(n)."""
    hit = cache.get(fit)
    if hit is not None:
        return Outputs(*hit)
    with fast.diagnostics():
        frames = tuple(fit.extract_outputs())
    cache.put(fit, frames)
    return Outputs(*frames)


def _state(fit: Any) -> tuple[Any, ...] | None:
    """What identifies a fit's state for its tables: the objects the ``evaluation_data`` of the
    fit and of every fit inside it holds; ``evaluate()`` changes it. None for objects that hold
    no fit (results objects are read afresh each time)."""
    parts: list[Any] = []

    def visit(obj: Any, depth: int) -> None:
        data = getattr(obj, "evaluation_data", None)
        if isinstance(data, dict):
            parts.append((id(obj), tuple((k, id(v)) for k, v in data.items())))
        if depth < 3:
            inner = inner_model_fit(obj)
            if inner is not None:
                visit(inner, depth + 1)
            groups = getattr(obj, "group_fits", None)
            for group_fit in groups.values() if isinstance(groups, dict) else ():
                visit(group_fit, depth + 1)

    visit(fit, 0)
    return tuple(parts) if parts else None


class OutputsCache:
    """The three tables of each live fit in its current state, for tidymlflow's own reads (a
    layer and the one that contributes to its run read them once). Never an answer to the
    user's ``extract_outputs()``: the library computes that, every time. An entry goes with its
    fit, and is replaced when ``evaluate()`` changes the fit."""

    def __init__(self) -> None:
        self._map: WeakIdMap[tuple[tuple[Any, ...], tuple[Any, ...]]] = WeakIdMap()

    def get(self, fit: Any) -> tuple[Any, ...] | None:
        entry = self._map.get(fit)
        return entry[1] if entry is not None and entry[0] == _state(fit) else None

    def put(self, fit: Any, frames: tuple[Any, ...]) -> None:
        state = _state(fit)
        if state is not None:
            self._map.put(fit, (state, frames))


cache = OutputsCache()


@dataclass(frozen=True)
class FitInfo:
    """What identifies a fit (or an unfitted workflow) in its run: params, tags and run name."""

    spec: Any
    preprocessor: str  # "formula" or "recipe"
    formula: str | None
    name: str
    recipe: Any = None  # the (unprepared) recipe of a recipe workflow

    def label(self) -> str:
        """The run name: ``linear_reg: y ~ x1 + x2`` or ``linear_reg: recipe: normalize > pca``."""
        if self.recipe is not None:
            return common.short(f"{self.name}: {recipes.label(self.recipe)}")
        return common.short(f"{self.name}: {self.formula}" if self.formula else self.name)

    def params(self) -> dict[str, Any]:
        """Model params plus ``preprocessor`` and, when known, ``formula``."""
        params: dict[str, Any] = {**common.model_params(self.spec), "preprocessor": self.preprocessor}
        if self.formula is not None:
            params["formula"] = self.formula
        return params

    def tags(self) -> dict[str, str]:
        """Tags ``model_type``, ``engine`` and ``preprocessor``."""
        return {"model_type": self.spec.model_type, "engine": self.spec.engine,
                "preprocessor": self.preprocessor}


def preprocessor_kind(pre: Any) -> str:
    """``formula`` for a formula string, ``recipe`` for anything else."""
    return "formula" if isinstance(pre, str) else "recipe"


def model_name(workflow_or_fit: Any) -> str:
    """The name runs use: the user's model name, else the spec's model type."""
    spec = getattr(workflow_or_fit, "spec", None)
    return str(getattr(workflow_or_fit, "model_name", None) or getattr(spec, "model_type", "model"))


def _recipe_of(pre: Any) -> Any:
    """The recipe of a preprocessor: a PreparedRecipe's recipe, a Recipe, or None (formula)."""
    if recipes.is_prepared(pre):
        return pre.recipe
    return pre if recipes.is_recipe(pre) else None


def describe(fit: Any) -> FitInfo:
    """The FitInfo of a WorkflowFit or a ModelFit."""
    if hasattr(fit, "workflow"):  # WorkflowFit
        return FitInfo(fit.workflow.spec, preprocessor_kind(fit.pre), fit.formula, model_name(fit.workflow),
                       _recipe_of(fit.pre))
    return FitInfo(fit.spec, "formula", common.formula_of(fit), model_name(fit))


def describe_workflow(workflow: Any) -> FitInfo | None:
    """The FitInfo of an unfitted workflow (None without a model): its own formula, if any."""
    spec = getattr(workflow, "spec", None)
    if spec is None:
        return None
    pre = getattr(workflow, "preprocessor", None)
    return FitInfo(spec, preprocessor_kind(pre), pre if isinstance(pre, str) else None, model_name(workflow),
                   _recipe_of(pre))


def nested_run_name(spec: Any, group_col: str) -> str:
    """Run name of a per-group fit: ``<model_type> by <group_col>``."""
    return f"{spec.model_type} by {group_col}"


def inner_model_fit(fit: Any) -> Any:
    """The ModelFit inside a WorkflowFit (its ``fit`` attribute), else None."""
    inner = getattr(fit, "fit", None)
    return inner if inner is not None and not callable(inner) else None


def intervals(fit: Any, test_data: Any) -> pd.DataFrame | None:
    """Prediction intervals on the test rows (``predict(type="conf_int")``) when the engine
    gives them; None otherwise. Asked of the model fit itself, on the rows its ``evaluate``
    stored (for a workflow: already baked by the library), so no recipe step (and no code of the
    user's) runs again; the fit is not changed."""
    model_fit = inner_model_fit(fit) or fit
    stored = getattr(model_fit, "evaluation_data", None)
    rows = stored.get("test_data") if isinstance(stored, dict) else None
    if rows is None or not hasattr(rows, "columns"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = model_fit.predict(rows, type="conf_int")
    except Exception:  # most engines support only type="numeric"
        return None
    if not {".pred_lower", ".pred_upper"}.issubset(getattr(pred, "columns", ())):
        return None
    pred = pred.reset_index(drop=True)
    dates = next((frame["date"] for frame in (rows, test_data)
                  if hasattr(frame, "columns") and "date" in frame.columns and len(frame) == len(pred)), None)
    if dates is not None and "date" not in pred.columns:
        pred["date"] = dates.to_numpy()
    return pred


def nested_metric_table(stats: pd.DataFrame, group_col: str, metric: str) -> pd.DataFrame | None:
    """group, split, value of one metric per group for the train and test splits (the input of
    the per-group heatmap of a nested fit); None when the metric or the group column is missing."""
    if not (stats["metric"] == metric).any() or group_col not in stats.columns:
        return None
    rows = stats[(stats["metric"] == metric) & stats["split"].isin(["train", "test"])]
    return pd.DataFrame({"group": rows[group_col].to_numpy(), "split": rows["split"].to_numpy(),
                         "value": pd.to_numeric(rows["value"], errors="coerce").to_numpy()})
