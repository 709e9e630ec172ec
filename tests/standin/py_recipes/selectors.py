"""Selector closures (they do not pickle with plain pickle, as in the real library)."""

from __future__ import annotations

import pandas as pd

_OUTCOMES = ("y", "target", "outcome")


def all_numeric():
    def select(df: pd.DataFrame):
        return [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    return select


def all_nominal():
    def select(df: pd.DataFrame):
        return [c for c in df.columns
                if not pd.api.types.is_numeric_dtype(df[c])
                and not pd.api.types.is_datetime64_any_dtype(df[c])]
    return select


def all_predictors():
    def select(df: pd.DataFrame):
        return [c for c in df.columns if c not in _OUTCOMES]
    return select


def all_numeric_predictors():
    def select(df: pd.DataFrame):
        return [c for c in all_numeric()(df) if c not in _OUTCOMES]
    return select
