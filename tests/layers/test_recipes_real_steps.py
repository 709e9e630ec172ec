"""Every step builder of the real py-tidymodels that preps on a plain frame is logged without a
logging error, and preps and bakes exactly as without autolog (global random draws included).
The stand-in has a handful of steps, so this breadth check needs the real library."""

from __future__ import annotations

import inspect
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REAL

import tidymlflow

pytestmark = pytest.mark.skipif(not REAL, reason="needs the real py-tidymodels (99 step builders)")

# Values for required builder arguments, by name.
_ARGS = {
    "columns": ["x1", "x2"], "column": "date", "outcome": "y", "date_column": "date",
    "date_col": "date", "window": 3, "windows": [3], "lags": [1, 2], "lag": 1, "return_col": "x1",
    "ratios": {"x1_x2": ("x1", "x2")}, "terms": [("x1", "x2")], "interactions": [("x1", "x2")],
    "cutoffs": [0.0], "breaks": [-1.0, 0.0, 1.0], "model": None, "kwargs": {},
}


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"date": pd.date_range("2022-01-01", periods=n, freq="D")})
    for i in range(1, 5):
        df[f"x{i}"] = rng.normal(size=n) + 3
    df["cat"] = rng.choice(["a", "b", "c"], size=n)
    df["y"] = 2 * df["x1"] - df["x2"] + rng.normal(scale=0.3, size=n)
    return df


def _builders():
    from py_recipes.recipe import Recipe

    for name in sorted(n for n in dir(Recipe) if n.startswith("step_")):
        params = inspect.signature(getattr(Recipe, name)).parameters
        required = [p for p, v in params.items() if p != "self" and v.default is inspect.Parameter.empty
                    and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
        if all(p in _ARGS for p in required):
            yield name, {p: _ARGS[p] for p in required}


def _prep_and_bake(name, kwargs, df):
    """The frame the builder's recipe bakes from ``df`` and the next global draw (None when the
    step cannot prep on this frame)."""
    from py_recipes import recipe

    np.random.seed(7)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepped = getattr(recipe(), name)(**kwargs).prep(df)
            return prepped.bake(df), np.random.random()
    except Exception:
        return None


def _same(a, b) -> bool:
    return a is not None and b is not None and a[0].equals(b[0]) and list(a[0].dtypes) == list(b[0].dtypes) \
        and a[1] == b[1]


def test_every_preppable_step_builder_logs_and_bakes_as_without_autolog(store, capsys):
    df = _frame()
    before = {n: (k, _prep_and_bake(n, k, df)) for n, k in _builders()}
    candidates = {n: (k, result) for n, (k, result) in before.items() if result is not None}
    # a step that reseeds from entropy gives other results run to run without autolog too
    repeatable = {n for n, (k, (baked, draw)) in candidates.items()
                  if _same(_prep_and_bake(n, k, df), (baked, draw))}
    tidymlflow.autolog()
    logged = []
    for name, (kwargs, off) in candidates.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            on = _prep_and_bake(name, kwargs, df)
        ours = [w for w in caught if "tidymlflow" in str(w.message)]
        assert ours == [], f"{name}: {ours[0].message}"
        if name in repeatable:
            assert _same(on, off), f"{name} bakes otherwise with autolog on"
        logged.append(name)
    assert len(repeatable) >= len(candidates) - 3, sorted(set(candidates) - repeatable)

    runs = {r.data.params.get("recipe.steps"): r for r in store.runs()}
    assert len(runs) == len(logged)
    for name in logged:
        run = runs[name]
        local = store.client.download_artifacts(run.info.run_id, "recipe/steps.json",
                                                str(store.root / name))
        with open(local, encoding="utf-8") as fh:
            (step,) = json.load(fh)
        assert step["step"] == name and "learned" in step
    selection = [n for n in logged if n.startswith(("step_select", "step_filter"))]
    series = [n for n in logged if n in {"step_lag", "step_diff", "step_rolling", "step_date",
                                         "step_fourier", "step_timeseries_signature", "step_ewm"}]
    with capsys.disabled():
        print(f"\n{len(logged)} step builders prepped, baked as without autolog and logged "
              f"({len(selection)} selection/filter, {len(series)} time-series)")
    assert len(logged) >= 30 and len(selection) >= 5 and len(series) >= 3
