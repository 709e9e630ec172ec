"""Reading shared by every layer: how settings are written as params, how the ``stats`` frame
becomes metrics, groups and ranking. Pure: plain attributes and frames in, plain values out; no
MLflow and no py-tidymodels import."""

from __future__ import annotations

import inspect
import math
import numbers
import re
import sys
from collections.abc import Hashable, Iterator, Mapping
from typing import Any, TypeVar

import pandas as pd

#: Metrics where lower is better; every other metric ranks higher-is-better.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape", "smape", "mse", "mase", "log_loss", "brier_score"})

#: The metric a comparison ranks by when the results name none.
DEFAULT_METRIC = "rmse"

K = TypeVar("K", bound=Hashable)


def lower_is_better(metric: str) -> bool:
    """True when a smaller value of ``metric`` is better (rmse), False when larger is (rsq)."""
    return metric in LOWER_IS_BETTER


def rank_order(scores: Mapping[K, Any], metric: str) -> list[K]:
    """The keys of ``scores`` best first for ``metric``; missing or NaN scores last, ties in
    their order of appearance. The one ranking rule of every comparison (tuning candidates,
    workflow sets, best workflow per group)."""
    sign = 1.0 if lower_is_better(metric) else -1.0

    def key(item: K) -> tuple[bool, float]:
        value = number(scores.get(item))
        bad = value is None or math.isnan(value)
        return (bad, 0.0 if bad or value is None else sign * value)

    return sorted(scores, key=key)


#: The longest run name tidymlflow gives; longer ones end with an ellipsis.
MAX_NAME = 90


def short(text: str, limit: int = MAX_NAME) -> str:
    """``text`` cut to ``limit`` characters, ending with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def value_text(value: Any) -> str:
    """A parameter value as a run name shows it: floats with 4 significant digits, integers
    (numpy's too) whole."""
    whole = isinstance(value, (numbers.Integral, bool))
    if isinstance(value, float) or (isinstance(value, numbers.Real) and not whole):
        return f"{float(value):.4g}"
    return param_text(value)


def snake_case(name: str) -> str:
    """A CamelCase class name in snake_case (``StepImputeMean`` -> ``step_impute_mean``)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def param_text(value: Any) -> str:
    """How a setting is shown as an MLflow param value."""
    if type(value).__name__ == "TuneParameter":
        return "tune()"
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, numbers.Number)) or value is None:
        return str(value)
    if hasattr(value, "get_params"):  # sklearn estimators and friends
        return type(value).__name__
    if callable(value):
        return selector_text(value)
    return str(value)


def selector_text(fn: Any) -> str:
    """A selector closure written as the call that made it (``starts_with('x')``); other
    callables by qualified name."""
    qualname = getattr(fn, "__qualname__", None) or type(fn).__name__
    outer, sep, _ = qualname.partition(".<locals>.")
    if not sep or not getattr(fn, "__closure__", None):
        return f"{outer}()" if sep else qualname
    maker = getattr(sys.modules.get(getattr(fn, "__module__", ""), None), outer, None)
    try:
        names = list(inspect.signature(maker).parameters) if callable(maker) else []
    except (TypeError, ValueError):
        names = []
    cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))
    args = [_arg_text(cells[n]) for n in names if n in cells]
    return f"{outer}({', '.join(args)})"


def _arg_text(value: Any) -> str:
    if callable(value):
        return selector_text(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_arg_text(v) for v in value)
    return repr(value)


def _is_spec(value: Any) -> bool:
    return all(hasattr(value, a) for a in ("model_type", "engine", "args"))


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if _is_spec(value):
        out[f"{prefix}.model_type"] = value.model_type
        out[f"{prefix}.engine"] = value.engine
        for k, v in (value.args or {}).items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = param_text(value)


def model_params(spec: Any) -> dict[str, str]:
    """``model_type``, ``engine``, ``mode`` and ``args.<name>`` (nested specs flattened)."""
    params = {"model_type": spec.model_type, "engine": spec.engine, "mode": spec.mode}
    for name, value in (spec.args or {}).items():
        _flatten(f"args.{name}", value, params)
    return params


def formula_of(model_fit: Any, default: Any = None) -> Any:
    """The formula a ModelFit was actually fitted with (blueprint object or dict)."""
    bp = getattr(model_fit, "blueprint", None)
    if isinstance(bp, dict):
        return bp.get("formula", default)
    return getattr(bp, "formula", default)


def number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (numpy scalars included, bools not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def stats_metrics(stats: pd.DataFrame, splits: Any = None) -> tuple[dict[str, float], dict[str, str]]:
    """Numeric ``stats`` rows as metrics ``<split>_<metric>`` (``<metric>`` for an empty split)
    and text rows as tags ``stats.<metric>``. ``splits`` keeps only those splits' rows.
    Non-finite numbers are kept here; the writer skips and counts them."""
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    for split, metric, value in zip(stats["split"], stats["metric"], stats["value"]):
        split = "" if split is None or (isinstance(split, float) and math.isnan(split)) else str(split)
        if splits is not None and split not in splits:
            continue
        found = number(value)
        if found is not None:
            metrics[f"{split}_{metric}" if split else str(metric)] = found
        elif value is not None and not (isinstance(value, float) and math.isnan(value)):
            tags[f"stats.{metric}"] = str(value)
    return metrics, tags


def by_group(frame: pd.DataFrame, group_col: str) -> Iterator[tuple[Any, pd.DataFrame]]:
    """Rows of a nested fit's frame per group value, in order of appearance."""
    if group_col not in frame.columns:
        return iter(())
    return iter(frame.groupby(group_col, sort=False))


def group_summary(per_group: dict[Any, dict[str, float]]) -> dict[str, float]:
    """``<name>_mean`` and ``<name>_std`` of every metric across groups."""
    table = pd.DataFrame.from_dict(per_group, orient="index")
    summary: dict[str, float] = {}
    for name in table.columns:
        column = pd.to_numeric(table[name], errors="coerce")
        summary[f"{name}_mean"] = column.mean()
        summary[f"{name}_std"] = column.std()
    return summary
