"""The tidymlflow model flavor: fitted py-tidymodels objects as MLflow models.

``save_model`` / ``log_model`` write a ``WorkflowFit``, ``NestedWorkflowFit``, ``ModelFit`` or
``NestedModelFit`` as an MLflow model with two flavors:

* ``tidymlflow``: :func:`load_model` gives the fitted object back, unchanged.
* ``python_function``: ``mlflow.pyfunc.load_model(uri).predict(frame)`` returns a DataFrame with
  ``.pred`` (``params={"type": "conf_int"}`` adds ``.pred_lower`` / ``.pred_upper`` where the
  engine gives intervals). Nested fits route each row to its group's model and keep the group
  column; rows come back in input order.

The model directory holds ``model.pkl`` (the fit and a zero-row input prototype, written by
:mod:`tidymlflow._jobs.serialize` so that formula-molded fits with patsy design info pickle too), the
``MLmodel`` file with the signature (input columns the fit needs, ``.pred`` out, a ``type``
param), and pinned requirements. py-tidymodels is not on PyPI: the requirements name it only when
the installed copy records the git commit it came from; otherwise ``MLmodel`` says how to get it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import io
import json
import os
import re
import shutil
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.models.model import MLMODEL_FILE_NAME, ModelInfo
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS
from mlflow.types import DataType
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from tidymlflow._jobs import serialize as _serialize
from tidymlflow._version import __version__

__all__ = ["FLAVOR_NAME", "InvalidModelInput", "load_model", "log_model", "save_model"]

FLAVOR_NAME = "tidymlflow"
#: Version of the layout of model.pkl; a model written by a newer layout refuses to load.
FORMAT_VERSION = 1
MODEL_FILE = "model.pkl"
KINDS = ("WorkflowFit", "NestedWorkflowFit", "ModelFit", "NestedModelFit")
PREDICTION_PARAM = "type"
PY_TIDYMODELS = "py-tidymodels"
PY_TIDYMODELS_REPO = "https://github.com/m-deane/py-tidymodels2"
#: The top-level packages of the py-tidymodels distribution.
PY_TIDYMODELS_PACKAGES = frozenset({
    "py_parsnip", "py_recipes", "py_workflows", "py_workflowsets", "py_rsample", "py_tune",
    "py_yardstick", "py_hardhat", "py_stacks", "py_visualize"})
#: Always pinned: what loading and serving the model imports whatever the engine.
BASE_REQUIREMENTS = ("mlflow", "pandas", "numpy", "scikit-learn", "cloudpickle", "tidymlflow")
_NESTED = ("NestedWorkflowFit", "NestedModelFit")
_PROBE_ROWS = 5


class InvalidModelInput(MlflowException, ValueError):
    """The frame given to a saved model's ``predict`` does not fit its input prototype (missing
    columns, wrong dtypes, unseen groups). A ``ValueError``, and an ``MlflowException`` so that
    ``mlflow models serve`` answers 400 with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


# ---------------------------------------------------------------------------------------------
# What a fit needs as input


@dataclass
class _Columns:
    """The input columns one (non-nested) fit needs, in training order, with known dtypes."""

    names: list[str]
    dtypes: dict[str, Any] = field(default_factory=dict)
    date_col: str | None = None
    outcome: str | None = None


def _kind(fit: Any) -> str:
    cls = type(fit)
    if cls.__name__ in KINDS and cls.__module__.partition(".")[0] in ("py_workflows", "py_parsnip"):
        return cls.__name__
    raise TypeError("tidymlflow.models saves py-tidymodels WorkflowFit, NestedWorkflowFit, ModelFit "
                    f"or NestedModelFit objects, not {cls.__module__}.{cls.__qualname__}")


def _unique(names: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(n for n in names if n is not None))


def _sides(formula: Any) -> tuple[str, str]:
    lhs, _, rhs = str(formula or "").partition("~")
    return lhs.strip(), rhs.strip()


def _name(term: str) -> str:
    quoted = re.fullmatch(r"""Q\(\s*(["'])(.*)\1\s*\)""", term.strip())
    return quoted.group(2) if quoted else term.strip()


def _formula_columns(rhs: str, known: list[str]) -> list[str]:
    """The columns of ``known`` that a formula's right-hand side reads (plain names, names inside
    calls such as ``I(x1 ** 2)`` or ``C(store)``, and ``Q("odd name")``)."""
    quoted = [m.group(2) for m in re.finditer(r"""Q\(\s*(["'])(.*?)\1\s*\)""", rhs)]
    bare = re.sub(r"""(["']).*?\1""", " ", rhs)
    idents = re.findall(r"\b[A-Za-z_]\w*\b(?!\s*\()", bare)
    found = set(quoted) | set(idents)
    if known:
        return [c for c in known if c in found]
    return _unique(c for c in [*quoted, *idents] if c not in ("Q", "C", "I"))


def _frame(value: Any) -> pd.DataFrame | None:
    return value if isinstance(value, pd.DataFrame) else None


def _blueprint_dtypes(blueprint: Any) -> dict[str, Any]:
    ptypes = getattr(blueprint, "ptypes", None)
    out: dict[str, Any] = {}
    if isinstance(ptypes, Mapping):
        for name, dtype in ptypes.items():
            with contextlib.suppress(TypeError, ValueError):
                out[str(name)] = pd.api.types.pandas_dtype(dtype)
    return out


@contextlib.contextmanager
def _quiet() -> Any:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(pd.DataFrame(a).reset_index(drop=True).equals(pd.DataFrame(b).reset_index(drop=True)))
    except Exception:
        return False


def _needed_optional(fit: Any, template: pd.DataFrame, optional: list[str],
                     cache: dict[tuple[str, ...], list[str]]) -> list[str]:
    """Which of ``optional`` (the outcome, date columns) a recipe fit's predictions depend on:
    a column is needed when predicting a few training rows without it fails or changes them."""
    key = tuple(map(str, template.columns))
    if key in cache:
        return [c for c in cache[key] if c in optional]
    sample = template.head(_PROBE_ROWS)
    needed: list[str] = []
    try:
        with _quiet():
            base = fit.predict(sample)
    except Exception:
        needed = list(optional)  # cannot tell: keep them all
    else:
        for col in optional:
            try:
                with _quiet():
                    same = _same(fit.predict(sample.drop(columns=[col])), base)
            except Exception:
                same = False
            if not same:
                needed.append(col)
    cache[key] = needed
    return needed


def _single_columns(fit: Any, cache: dict[tuple[str, ...], list[str]]) -> _Columns:
    """The input columns a WorkflowFit or ModelFit needs."""
    is_workflow = type(fit).__name__ == "WorkflowFit"
    model_fit = fit.fit if is_workflow else fit
    blueprint = getattr(model_fit, "blueprint", None)
    fit_data = getattr(model_fit, "fit_data", None) or {}
    # the blueprint keeps the formula as molded ("y ~ ." expanded); a workflow's own is as written
    formula = blueprint.get("formula") if isinstance(blueprint, dict) else getattr(blueprint, "formula", None)
    formula = formula or (getattr(fit, "formula", None) if is_workflow else None)
    lhs, rhs = _sides(formula)
    outcome = _name(lhs) if lhs and "+" not in lhs else None

    pre = getattr(fit, "pre", None) if is_workflow else None
    recipe = pre is not None and not isinstance(pre, str)
    template = _frame(getattr(pre, "template", None)) if recipe else None
    if template is not None:  # a recipe: it reads the raw columns it was prepped on
        dates = [c for c in template.columns if pd.api.types.is_datetime64_any_dtype(template[c])]
        optional = [c for c in template.columns if c == outcome or c in dates]
        needed = set(_needed_optional(fit, template, optional, cache))
        names = [c for c in template.columns if c not in optional or c in needed]
        date_col = next((c for c in names if c in dates), None)
        return _Columns(names, dict(template.dtypes), date_col, outcome)

    train = _frame(fit_data.get("original_training_data"))
    dtypes = dict(train.dtypes) if train is not None else _blueprint_dtypes(blueprint)
    known = list(train.columns) if train is not None else list(dtypes)
    if isinstance(blueprint, dict):  # raw-data engine (prophet, arima, ...): date + regressors
        date_col = blueprint.get("date_col") or fit_data.get("date_col")
        listed = blueprint.get("exog_vars")
        exog: list[Any] = list(listed) if isinstance(listed, (list, tuple)) else []
        if not isinstance(listed, (list, tuple)):
            exog = [c for c in _formula_columns(rhs, known) if c not in (outcome, date_col)]
        stamps = fit_data.get("dates")
        if date_col and date_col not in dtypes and stamps is not None:
            dtype = np.asarray(stamps).dtype
            if dtype.kind == "M":
                dtypes[date_col] = dtype
        prophet_df = _frame(fit_data.get("prophet_df"))
        for col in exog:
            if col not in dtypes and prophet_df is not None and col in prophet_df.columns:
                dtypes[col] = prophet_df[col].dtype
        return _Columns(_unique([date_col, *exog]), dtypes, date_col, outcome)
    needed = set(_formula_columns(rhs, known)) | _base_columns(blueprint)
    names = [c for c in known if c in needed and c != outcome]
    names += [c for c in sorted(needed - set(known), key=str) if c != outcome]
    return _Columns(names, dtypes, None, outcome)


def _base_columns(blueprint: Any) -> set[str]:
    """The text columns of the training frame that the library's forge requires at predict time
    whether the formula uses them or not (py_hardhat's ``factor_levels``; the outcome excepted)."""
    levels = getattr(blueprint, "factor_levels", None)
    roles = getattr(blueprint, "roles", None)
    outcomes = roles.get("outcome", []) if isinstance(roles, Mapping) else []
    if not isinstance(levels, Mapping):
        return set()
    return {str(c) for c in levels} - {str(o).split("[")[0] for o in outcomes}


@dataclass
class _Layout:
    kind: str
    ptype: pd.DataFrame
    group_col: str | None = None
    groups: list[Any] = field(default_factory=list)
    date_col: str | None = None
    outcome: str | None = None


def _dtype_of(name: str, known: Mapping[str, Any], example: pd.DataFrame | None, date_col: str | None) -> Any:
    if name in known:
        return known[name]
    if example is not None and name in example.columns:
        return example[name].dtype
    return np.dtype("datetime64[ns]") if name == date_col else np.dtype("float64")


def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame().T
    if isinstance(data, Mapping):
        values = dict(data)
        if values and all(np.ndim(v) == 0 for v in values.values()):
            return pd.DataFrame([values])
        return pd.DataFrame(values)
    if isinstance(data, list) and all(isinstance(r, Mapping) for r in data):
        return pd.DataFrame(data)
    raise InvalidModelInput(f"a py-tidymodels model predicts on a DataFrame, not {type(data).__name__}")


def _layout(fit: Any, kind: str, input_example: Any = None) -> _Layout:
    example = None if input_example is None else _as_frame(input_example)
    cache: dict[tuple[str, ...], list[str]] = {}
    if kind in _NESTED:
        group_col = str(fit.group_col)
        parts = [_single_columns(f, cache) for f in fit.group_fits.values()]
        known: dict[str, Any] = {}
        for part in parts:
            known.update({k: v for k, v in part.dtypes.items() if k not in known})
        for frame in (getattr(fit, "group_train_data", None) or {}).values():
            if isinstance(frame, pd.DataFrame):
                known.update(dict(frame.dtypes))
                break
        if group_col not in known:
            known[group_col] = pd.Series(list(fit.group_fits)).dtype
        names = _unique([group_col, *(n for p in parts for n in p.names if n != group_col)])
        date_col = next((p.date_col for p in parts if p.date_col), None)
        outcome = next((p.outcome for p in parts if p.outcome), None)
        groups = list(fit.group_fits)
    else:
        part = _single_columns(fit, cache)
        known, names, date_col, outcome, group_col, groups = part.dtypes, part.names, part.date_col, \
            part.outcome, None, []
    if example is not None:
        missing = [n for n in names if n not in example.columns]
        if missing:
            raise InvalidModelInput(f"input_example is missing column(s) {missing} that the fit needs "
                                    f"(it needs {names})")
    ptype = pd.DataFrame({n: pd.Series([], dtype=_dtype_of(n, known, example, date_col)) for n in names})
    return _Layout(kind, ptype, group_col, groups, date_col, outcome)


# ---------------------------------------------------------------------------------------------
# Checking incoming frames against the prototype


def _kind_of(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    return "text"


def _coerce(values: pd.Series, want: Any) -> pd.Series | None:
    """``values`` as the prototype's dtype, or None when they are of another kind."""
    if values.dtype == object:
        values = values.infer_objects()
    target, got = _kind_of(want), _kind_of(values.dtype)
    if target == "text":
        return values if got == "text" else None
    if target == "datetime":
        if got == "text":
            try:
                values = pd.to_datetime(values, errors="raise")
            except (ValueError, TypeError):
                return None
            got = _kind_of(values.dtype)
        if got != "datetime":
            return None
        if getattr(values.dt, "tz", None) is not None or getattr(want, "tz", None) is not None:
            return values
        return values.astype(want)
    if got != target:
        return None
    to_int = pd.api.types.is_integer_dtype(want) and not pd.api.types.is_integer_dtype(values)
    if target == "number" and to_int:
        numbers = values.to_numpy(dtype=float)
        if not np.all(np.isfinite(numbers) & (numbers == np.round(numbers))):
            return None
    return values.astype(want)


def conform(frame: pd.DataFrame, ptype: pd.DataFrame) -> pd.DataFrame:
    """``frame`` checked against the input prototype ``ptype``: every prototype column must be
    there and of the same kind (number, bool, datetime, text). Numbers and datetimes are cast to
    the training dtype (ISO date strings are parsed); other columns pass through untouched.
    Raises :class:`InvalidModelInput` naming every missing or mistyped column."""
    missing = [c for c in ptype.columns if c not in frame.columns]
    if missing:
        raise InvalidModelInput(f"input is missing column(s) {missing}; the model needs "
                                f"{list(ptype.columns)}")
    out = frame.copy(deep=False)
    wrong = []
    for col in ptype.columns:
        want = ptype[col].dtype
        cast = _coerce(frame[col], want)
        if cast is None:
            wrong.append(f"{col!r} (expected {want}, got {frame[col].dtype})")
        else:
            out[col] = cast
    if wrong:
        raise InvalidModelInput(f"input column(s) of the wrong dtype: {', '.join(wrong)}")
    return out


# ---------------------------------------------------------------------------------------------
# Predicting


def _predict_one(fit: Any, frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    pred = fit.predict(frame, type=kind)
    return pd.DataFrame(pred).reset_index(drop=True)


def _wrap_type_error(fit: Any, kind: str, exc: Exception) -> Exception:
    spec = getattr(fit, "spec", None) or getattr(getattr(fit, "workflow", None), "spec", None)
    model = f"{getattr(spec, 'model_type', '?')} ({getattr(spec, 'engine', '?')} engine)"
    return InvalidModelInput(f"prediction type {kind!r} failed for {model}: {exc}")


def predict(fit: Any, frame: pd.DataFrame, kind: str = "numeric",
            group_col: str | None = None) -> pd.DataFrame:
    """Predictions of ``fit`` for ``frame``, one row per input row in input order, with a
    RangeIndex. With ``group_col`` (nested fits) each row goes to its group's fit and the group
    column is kept; a group the fit has not seen raises :class:`InvalidModelInput` naming it."""
    try:
        if group_col is None:
            return _predict_one(fit, frame, kind)
        return _predict_nested(fit, frame, kind, group_col)
    except InvalidModelInput:
        raise
    except Exception as exc:
        if kind != "numeric":
            raise _wrap_type_error(fit, kind, exc) from exc
        raise


def _predict_nested(fit: Any, frame: pd.DataFrame, kind: str, group_col: str) -> pd.DataFrame:
    fits = fit.group_fits
    values = frame[group_col]
    present = list(pd.unique(values))
    unseen = [v for v in present if v not in fits]
    if unseen:
        raise InvalidModelInput(f"group(s) {unseen} of column {group_col!r} were not seen in training; "
                                f"known groups: {list(fits)}")
    parts = []
    for value in present:
        mask = (values == value).to_numpy()
        rows = frame.loc[mask].drop(columns=[group_col])
        pred = _predict_one(fits[value], rows, kind)
        if len(pred) != int(mask.sum()):
            raise RuntimeError(f"group {value!r}: {len(pred)} predictions for {int(mask.sum())} rows")
        pred.index = np.flatnonzero(mask)
        pred[group_col] = value
        parts.append(pred)
    if not parts:
        return pd.DataFrame({".pred": pd.Series([], dtype="float64"),
                             group_col: pd.Series([], dtype=values.dtype)})
    return pd.concat(parts).sort_index().reset_index(drop=True)


class TidyPyfuncModel:
    """What ``_load_pyfunc`` gives MLflow: the fit (``.fit``) behind a ``predict`` that checks
    its input against the zero-row input prototype (``.ptype``) first.
    ``mlflow.pyfunc.load_model(uri).get_raw_model()`` returns the py-tidymodels fit."""

    def __init__(self, fit: Any, ptype: pd.DataFrame, group_col: str | None = None) -> None:
        self.fit, self.ptype, self.group_col = fit, ptype, group_col

    def get_raw_model(self) -> Any:
        return self.fit

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        kind = str((params or {}).get(PREDICTION_PARAM) or "numeric")
        frame = conform(_as_frame(model_input), self.ptype)
        return predict(self.fit, frame, kind, self.group_col)


# ---------------------------------------------------------------------------------------------
# Signature and requirements


def _data_type(dtype: Any) -> DataType:
    if pd.api.types.is_bool_dtype(dtype):
        return DataType.boolean
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DataType.datetime
    if pd.api.types.is_integer_dtype(dtype):
        return DataType.long if np.dtype(dtype).itemsize > 4 else DataType.integer
    if pd.api.types.is_float_dtype(dtype):
        return DataType.double if np.dtype(dtype).itemsize > 4 else DataType.float
    return DataType.string


def signature(layout: _Layout) -> ModelSignature:
    """Inputs: the prototype's columns; outputs: ``.pred`` (intervals optional, the group column
    for nested fits); params: ``type`` (default ``"numeric"``)."""
    inputs = Schema([ColSpec(_data_type(layout.ptype[c].dtype), str(c)) for c in layout.ptype.columns])
    cols: list[Any] = [ColSpec(DataType.double, ".pred"),
            ColSpec(DataType.double, ".pred_lower", required=False),
            ColSpec(DataType.double, ".pred_upper", required=False)]
    if layout.group_col is not None:
        cols.append(ColSpec(_data_type(layout.ptype[layout.group_col].dtype), layout.group_col))
    params = ParamSchema([ParamSpec(PREDICTION_PARAM, DataType.string, "numeric")])
    return ModelSignature(inputs=inputs, outputs=Schema(cols), params=params)


def _direct_url(dist: metadata.Distribution) -> dict[str, Any]:
    try:
        text = dist.read_text("direct_url.json")
        info = json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _vcs_requirement(dist: metadata.Distribution) -> str | None:
    """``name @ git+<url>@<commit>`` when the installed copy came from a VCS checkout."""
    info = _direct_url(dist)
    vcs, url = info.get("vcs_info"), info.get("url")
    if not isinstance(vcs, dict) or not url:
        return None
    ref = vcs.get("commit_id") or vcs.get("requested_revision")
    prefix = "" if str(url).startswith(f"{vcs.get('vcs', 'git')}+") else f"{vcs.get('vcs', 'git')}+"
    return f"{dist.metadata['Name']} @ {prefix}{url}" + (f"@{ref}" if ref else "")


def _distribution(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _pin(name: str) -> str | None:
    dist = _distribution(name)
    if dist is None:
        return None
    return _vcs_requirement(dist) or f"{dist.metadata['Name']}=={dist.version}"


def py_tidymodels_source() -> dict[str, Any]:
    """Where the installed py-tidymodels came from: its version, the pip requirement that installs
    the same code (only when ``direct_url.json`` records a VCS commit) and a note for humans."""
    dist = _distribution(PY_TIDYMODELS)
    version = dist.version if dist is not None else None
    requirement = _vcs_requirement(dist) if dist is not None else None
    if requirement:
        note = f"{PY_TIDYMODELS} is not on PyPI; the requirements install it with: {requirement}"
    else:
        origin = _direct_url(dist).get("url") if dist is not None else None
        how = (f"version {version}" + (f", installed from {origin}" if origin else "")
               if dist is not None else "not installed as a distribution where this model was saved")
        note = (f"{PY_TIDYMODELS} is not on PyPI and is not in requirements.txt ({how}): install it "
                f"in the serving environment from {PY_TIDYMODELS_REPO}, e.g. "
                f'pip install "{PY_TIDYMODELS} @ git+{PY_TIDYMODELS_REPO}@<commit>"')
    return {"version": version, "requirement": requirement, "repository": PY_TIDYMODELS_REPO, "note": note}


def _owners(modules: Iterable[str]) -> dict[str, list[str]]:
    """The installed distributions that provide each top-level module (from ``top_level.txt`` or
    the first path part of ``RECORD`` entries; ``packages_distributions()`` without its cost)."""
    wanted, owners = set(modules), dict[str, list[str]]()
    for dist in metadata.distributions():
        top = dist.read_text("top_level.txt")
        if top:
            provided = set(top.split())
        else:
            provided = set()
            for line in (dist.read_text("RECORD") or "").splitlines():
                first = line.split(",", 1)[0].split("/", 1)[0]
                provided.add(first[:-3] if first.endswith(".py") else first)
        for module in wanted & provided:
            owners.setdefault(module, []).append(dist.metadata["Name"])
    return owners


def requirements(modules: Iterable[str]) -> tuple[list[str], list[str]]:
    """Pinned requirements for a model whose pickle imports ``modules``: the base set plus the
    distribution of every imported package (statsmodels, prophet, xgboost, patsy, ...), as
    installed, read with importlib.metadata. Also returns the imported packages that no installed
    distribution provides (py-tidymodels' packages excluded: see :func:`py_tidymodels_source`)."""
    owners = _owners(modules)
    names = list(BASE_REQUIREMENTS)
    unresolved = []
    for module in sorted(set(modules)):
        dists = owners.get(module)
        if module in PY_TIDYMODELS_PACKAGES or (dists and PY_TIDYMODELS in dists):
            continue
        if not dists:
            unresolved.append(module)
        names.extend(dists or [])
    pins = _unique(_pin(n) for n in _unique(names))
    source = py_tidymodels_source()
    if source["requirement"]:
        pins.append(source["requirement"])
    return pins, unresolved


def _write_environment(path: str, pip_requirements: list[str] | None, default: list[str],
                       note: str) -> None:
    """conda.yaml, python_env.yaml, requirements.txt (and constraints.txt) as MLflow's own flavors
    write them, with the py-tidymodels note as a comment at the top of requirements.txt."""
    from mlflow.utils.environment import (
        _CONDA_ENV_FILE_NAME,
        _CONSTRAINTS_FILE_NAME,
        _PYTHON_ENV_FILE_NAME,
        _REQUIREMENTS_FILE_NAME,
        _process_pip_requirements,
        _PythonEnv,
    )
    from mlflow.utils.yaml_utils import write_yaml

    conda_env, pip_reqs, constraints = _process_pip_requirements(default, pip_requirements, None)
    write_yaml(path, _CONDA_ENV_FILE_NAME, conda_env, sort_keys=False)
    if constraints:
        with open(os.path.join(path, _CONSTRAINTS_FILE_NAME), "w") as f:
            f.write("\n".join(constraints))
    lines = [f"# {line}" for line in note.splitlines()] if note else []
    with open(os.path.join(path, _REQUIREMENTS_FILE_NAME), "w") as f:
        f.write("\n".join([*lines, *pip_reqs]) + "\n")
    _PythonEnv.current().to_yaml(os.path.join(path, _PYTHON_ENV_FILE_NAME))


# ---------------------------------------------------------------------------------------------
# Save, log, load


def _prepare_dir(path: str) -> None:
    if os.path.exists(path) and any(os.scandir(path)):
        raise MlflowException(f"Path '{path}' already exists and is not empty",
                              error_code=RESOURCE_ALREADY_EXISTS)
    os.makedirs(path, exist_ok=True)


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def _spec(fit: Any, kind: str) -> Any:
    if kind in ("ModelFit", "NestedModelFit"):
        return fit.spec
    return getattr(fit.workflow, "spec", None)


def save_model(fit: Any, path: str | os.PathLike[str], *, input_example: Any = None,
               pip_requirements: list[str] | None = None, mlflow_model: Model | None = None) -> None:
    """Write ``fit`` (a WorkflowFit, NestedWorkflowFit, ModelFit or NestedModelFit) as an MLflow
    model in the empty or new directory ``path``, with the ``tidymlflow`` and ``python_function``
    flavors, its signature and pinned requirements.

    ``input_example``: a few input rows (a DataFrame) stored with the model and checked against
    what the fit needs. ``pip_requirements``: replaces the inferred requirements.
    ``mlflow_model`` is the ``Model`` that :func:`log_model` passes in."""
    kind = _kind(fit)
    path = os.fspath(path)
    layout = _layout(fit, kind, input_example)
    if input_example is not None:
        conform(_as_frame(input_example), layout.ptype)
    _prepare_dir(path)
    payload = {"format_version": FORMAT_VERSION, "kind": kind, "fit": fit, "ptype": layout.ptype,
               "group_col": layout.group_col}
    data, rebuilt = _serialize.dumps(payload)
    with open(os.path.join(path, MODEL_FILE), "wb") as f:
        f.write(data)
    modules = _serialize.referenced_modules(data)

    if mlflow_model is None:
        mlflow_model = Model()
    if input_example is not None:
        from mlflow.models.utils import _save_example

        _save_example(mlflow_model, _as_frame(input_example), path)
    mlflow_model.signature = signature(layout)
    source = py_tidymodels_source()
    default, unresolved = requirements(modules)
    spec = _spec(fit, kind)
    mlflow_model.metadata = {
        **(mlflow_model.metadata or {}),
        "py_tidymodels": source,
        **({"modules_without_distribution": unresolved} if unresolved else {}),
    }
    from mlflow import pyfunc
    from mlflow.utils.environment import _CONDA_ENV_FILE_NAME, _PYTHON_ENV_FILE_NAME

    pyfunc.add_to_model(mlflow_model, loader_module="tidymlflow.models", conda_env=_CONDA_ENV_FILE_NAME,
                        python_env=_PYTHON_ENV_FILE_NAME)
    groups = [g.item() if isinstance(g, np.generic) else g for g in layout.groups]
    mlflow_model.add_flavor(
        FLAVOR_NAME,
        pickled_model=MODEL_FILE,
        format_version=FORMAT_VERSION,
        serialization="cloudpickle; patsy objects written as class + attribute state",
        patsy_classes_by_state=sorted(rebuilt),
        fit_class=f"{type(fit).__module__}.{type(fit).__qualname__}",
        kind=kind,
        model_type=getattr(spec, "model_type", None),
        engine=getattr(spec, "engine", None),
        mode=getattr(spec, "mode", None),
        outcome=layout.outcome,
        date_col=layout.date_col,
        group_col=layout.group_col,
        n_groups=len(groups) or None,
        groups=[g if isinstance(g, (str, int, float, bool)) else str(g) for g in groups[:1000]] or None,
        prediction_types=["numeric", "conf_int"],
        tidymlflow_version=__version__,
        py_tidymodels_version=source["version"],
    )
    mlflow_model.model_size_bytes = _size(path)
    mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))
    _write_environment(path, pip_requirements, default,
                       "" if source["requirement"] and pip_requirements is None else source["note"])


def log_model(fit: Any, name: str = "model", registered_model_name: str | None = None,
              input_example: Any = None, pip_requirements: list[str] | None = None,
              run_id: str | None = None) -> ModelInfo:
    """Log ``fit`` as an MLflow model named ``name``, linked to run ``run_id`` (default: the
    active run, if any) and, with ``registered_model_name``, register a new version of it.
    Returns MLflow's ``ModelInfo`` (``model_uri`` is ``models:/<model_id>``)."""
    _kind(fit)
    return Model.log(artifact_path=None, name=name, flavor=sys.modules[__name__],
                     registered_model_name=registered_model_name, run_id=run_id,
                     fit=fit, input_example=input_example, pip_requirements=pip_requirements)


def log_saved_model(path: str | os.PathLike[str], name: str = "model",
                    registered_model_name: str | None = None, run_id: str | None = None) -> ModelInfo:
    """Log a model directory that :func:`save_model` wrote as :func:`log_model` logs a fit (the
    same logged model, flavor and ``MLmodel``), without loading the fit: the writer logs what a
    helper process packaged, and so never imports py-tidymodels itself."""
    source = os.fspath(path)
    saved = Model.load(os.path.join(source, MLMODEL_FILE_NAME))
    if FLAVOR_NAME not in saved.flavors:
        raise MlflowException(f"the model at {source!r} has no {FLAVOR_NAME!r} flavor",
                              error_code=INVALID_PARAMETER_VALUE)

    def copy(path: str, mlflow_model: Model, **_: Any) -> None:
        shutil.copytree(source, path, ignore=shutil.ignore_patterns(MLMODEL_FILE_NAME))
        mlflow_model.flavors = saved.flavors
        mlflow_model.signature = saved.signature
        if saved.saved_input_example_info is not None:
            mlflow_model.saved_input_example_info = saved.saved_input_example_info
        mlflow_model.metadata = {**(mlflow_model.metadata or {}), **(saved.metadata or {})}
        mlflow_model.model_size_bytes = saved.model_size_bytes
        mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))

    return Model.log(artifact_path=None, name=name, flavor=SimpleNamespace(save_model=copy),
                     flavor_name=__name__, registered_model_name=registered_model_name, run_id=run_id)


def _local_dir(model_uri: str | os.PathLike[str]) -> str:
    uri = os.fspath(model_uri)
    if os.path.isdir(uri):
        return uri
    return str(mlflow.artifacts.download_artifacts(artifact_uri=uri))


def _read(local: str) -> dict[str, Any]:
    conf = Model.load(os.path.join(local, MLMODEL_FILE_NAME)).flavors.get(FLAVOR_NAME)
    if conf is None:
        raise MlflowException(f"the model at {local!r} has no {FLAVOR_NAME!r} flavor",
                              error_code=INVALID_PARAMETER_VALUE)
    return _read_payload(os.path.join(local, conf.get("pickled_model", MODEL_FILE)))


def _read_payload(file: str) -> dict[str, Any]:
    with open(file, "rb") as f:
        payload = _serialize.loads(f.read())
    version = payload.get("format_version") if isinstance(payload, dict) else None
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise MlflowException(f"{file!r} was written by a newer tidymlflow (format {version}); this "
                              f"tidymlflow {__version__} reads format {FORMAT_VERSION}",
                              error_code=INVALID_PARAMETER_VALUE)
    return payload


def load_model(model_uri_or_path: str | os.PathLike[str]) -> Any:
    """The fitted py-tidymodels object saved at a local path or an MLflow model URI
    (``runs:/<run_id>/model``, ``models:/<name>@<alias>``, ``models:/<model_id>``, ...)."""
    return _read(_local_dir(model_uri_or_path))["fit"]


def _load_pyfunc(path: str) -> TidyPyfuncModel:
    """Loader of the ``python_function`` flavor (``path``: the model directory)."""
    payload = _read(path) if os.path.isdir(path) else _read_payload(path)
    return TidyPyfuncModel(payload["fit"], payload["ptype"], payload.get("group_col"))
