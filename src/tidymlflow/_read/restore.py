"""A description of an unfitted workflow that rebuilds it exactly, as JSON: its formula, its model
spec (type, engine, mode, arguments, ``tune()`` placeholders included) and its names. Pure readers
of library objects; no MLflow. What cannot be described so (a recipe, an argument that is not a
plain value) is named, so that the caller can pickle it or say what is missing."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

#: The version of the description; a newer one is refused with both versions named.
FORMAT = 1
#: The run artifact that says how to rebuild a call's result (written by ``tidymlflow._log.restore``,
#: read by ``tidymlflow.results``).
RESTORE = "restore.json"

_SPEC_FIELDS = ("model_type", "engine", "mode", "date_col")
_WORKFLOW_FIELDS = ("case_weights", "model_name", "model_group_name")


class NotDescribable(ValueError):
    """The workflow holds something a JSON description cannot rebuild."""


def _is_tune(value: Any) -> bool:
    return type(value).__name__ == "TuneParameter" and type(value).__module__.startswith("py_tune")


def _value(name: str, value: Any) -> Any:
    """One argument as JSON: plain values as they are, ``tune()`` as ``{"tune": id}``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and type(value) in (int, float):
        if isinstance(value, float) and not math.isfinite(value):
            return {"float": repr(value)}
        return value
    if _is_tune(value):
        return {"tune": getattr(value, "id", None)}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [_value(name, v) for v in value]}
    raise NotDescribable(f"argument {name!r} is a {type(value).__name__}, not a plain value")


def describe(workflow: Any) -> dict[str, Any]:
    """The JSON description of an unfitted formula workflow; :class:`NotDescribable` naming what
    stands in the way (a recipe, an argument that is not a plain value, post-processing)."""
    preprocessor = getattr(workflow, "preprocessor", None)
    spec = getattr(workflow, "spec", None)
    if not dataclasses.is_dataclass(workflow) or spec is None or not dataclasses.is_dataclass(spec):
        raise NotDescribable(f"a {type(workflow).__name__} without a model spec")
    if preprocessor is not None and not isinstance(preprocessor, str):
        raise NotDescribable(f"its preprocessor is a {type(preprocessor).__name__} (a recipe)")
    if getattr(workflow, "post", None) is not None:
        raise NotDescribable("it has post-processing")
    return {
        "format": FORMAT,
        "class": qualname(workflow),
        "formula": preprocessor,
        **{k: getattr(workflow, k, None) for k in _WORKFLOW_FIELDS},
        "spec": {"class": qualname(spec), **{k: getattr(spec, k, None) for k in _SPEC_FIELDS},
                 "args": {str(k): _value(str(k), v) for k, v in (getattr(spec, "args", None) or {}).items()}},
    }


def qualname(obj: Any) -> str:
    """The dotted path of ``obj``'s class (how restore.json names classes)."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def decode_value(value: Any, tune: Any) -> Any:
    """Invert :func:`_value`; ``tune`` is the library's ``tune()``."""
    if isinstance(value, dict):
        if "tune" in value:
            return tune(value["tune"])
        if "float" in value:
            return float(value["float"])
        if "list" in value:
            return [decode_value(v, tune) for v in value["list"]]
        if "tuple" in value:
            return tuple(decode_value(v, tune) for v in value["tuple"])
    return value
