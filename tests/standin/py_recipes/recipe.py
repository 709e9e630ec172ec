"""Stand-in Recipe / PreparedRecipe with four steps and their prepared counterparts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import pandas as pd

Columns = Union[None, List[str], Callable]


def _resolve(columns: Columns, data: pd.DataFrame, default: Callable) -> List[str]:
    if columns is None:
        return default(data)
    if callable(columns):
        return list(columns(data))
    return [columns] if isinstance(columns, str) else list(columns)


def _numeric(df):
    return [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]


@dataclass
class StepNormalize:
    columns: Columns = None
    method: str = "zscore"

    def prep(self, data: pd.DataFrame, training: bool = True) -> "PreparedStepNormalize":
        from sklearn.preprocessing import MinMaxScaler, StandardScaler

        cols = _resolve(self.columns, data, _numeric)
        scaler = (StandardScaler() if self.method == "zscore" else MinMaxScaler()).fit(data[cols])
        return PreparedStepNormalize(cols, scaler, self.method)


@dataclass
class PreparedStepNormalize:
    columns: List[str]
    scaler: Any
    method: str

    def bake(self, data: pd.DataFrame) -> pd.DataFrame:
        out = data.copy()
        if self.columns:
            out[self.columns] = self.scaler.transform(data[self.columns])
        return out


@dataclass
class StepDummy:
    columns: Columns = None
    one_hot: bool = True

    def prep(self, data: pd.DataFrame, training: bool = True) -> "PreparedStepDummy":
        from sklearn.preprocessing import OneHotEncoder

        cols = _resolve(self.columns, data, lambda d: [])
        enc = OneHotEncoder(sparse_output=False, handle_unknown="ignore").fit(data[cols].astype(str))
        names = [f"{c}_{lev}" for c, levs in zip(cols, enc.categories_) for lev in levs]
        return PreparedStepDummy(cols, enc, self.one_hot, names)


@dataclass
class PreparedStepDummy:
    columns: List[str]
    encoder: Any
    one_hot: bool
    feature_names: List[str]

    def bake(self, data: pd.DataFrame) -> pd.DataFrame:
        enc = pd.DataFrame(self.encoder.transform(data[self.columns].astype(str)),
                           columns=self.feature_names, index=data.index)
        return pd.concat([data.drop(columns=self.columns), enc], axis=1)


@dataclass
class StepPCA:
    columns: Columns = None
    num_comp: Optional[int] = None
    threshold: Optional[float] = None

    def prep(self, data: pd.DataFrame, training: bool = True) -> "PreparedStepPCA":
        from sklearn.decomposition import PCA

        cols = _resolve(self.columns, data, _numeric)
        n = self.num_comp or min(5, len(cols))
        return PreparedStepPCA(cols, PCA(n_components=n).fit(data[cols]), n)


@dataclass
class PreparedStepPCA:
    columns: List[str]
    pca: Any
    num_comp: int

    def bake(self, data: pd.DataFrame) -> pd.DataFrame:
        comps = self.pca.transform(data[self.columns])
        pcs = pd.DataFrame(comps, columns=[f"PC{i + 1}" for i in range(comps.shape[1])],
                           index=data.index)
        return pd.concat([data.drop(columns=self.columns), pcs], axis=1)


@dataclass
class StepImputeMean:
    columns: Columns = None

    def prep(self, data: pd.DataFrame, training: bool = True) -> "PreparedStepImputeMean":
        cols = _resolve(self.columns, data, _numeric)
        return PreparedStepImputeMean(cols, {c: float(data[c].mean()) for c in cols})


@dataclass
class PreparedStepImputeMean:
    columns: List[str]
    means: Dict[str, float]

    def bake(self, data: pd.DataFrame) -> pd.DataFrame:
        return data.fillna(self.means)


@dataclass
class StepLog:
    """A step kept without special handling in tidymlflow (generic logging path)."""

    columns: Columns = None
    base: float = float(np.e)
    offset: float = 0.0
    signed: bool = False

    def prep(self, data: pd.DataFrame, training: bool = True) -> "PreparedStepLog":
        cols = _resolve(self.columns, data, _numeric)
        return PreparedStepLog(cols, self.base, self.offset, self.signed, True)


@dataclass
class PreparedStepLog:
    columns: List[str]
    base: float
    offset: float
    signed: bool
    inplace: bool

    def bake(self, data: pd.DataFrame) -> pd.DataFrame:
        out = data.copy()
        out[self.columns] = np.log(data[self.columns] + self.offset) / np.log(self.base)
        return out


@dataclass
class Recipe:
    steps: List[Any] = field(default_factory=list)
    template: Optional[pd.DataFrame] = None
    roles: Dict[str, Any] = field(default_factory=dict)

    def add_step(self, step) -> "Recipe":
        self.steps.append(step)
        return self

    def step_normalize(self, columns: Columns = None, method: str = "zscore") -> "Recipe":
        return self.add_step(StepNormalize(columns, method))

    def step_dummy(self, columns: Columns, one_hot: bool = True) -> "Recipe":
        return self.add_step(StepDummy(columns, one_hot))

    def step_pca(self, columns: Columns = None, num_comp: Optional[int] = None,
                 threshold: Optional[float] = None) -> "Recipe":
        return self.add_step(StepPCA(columns, num_comp, threshold))

    def step_impute_mean(self, columns: Columns = None) -> "Recipe":
        return self.add_step(StepImputeMean(columns))

    def step_log(self, columns: Columns = None, base: float = float(np.e), offset: float = 0.0,
                 signed: bool = False) -> "Recipe":
        return self.add_step(StepLog(columns, base, offset, signed))

    def prep(self, data: pd.DataFrame, training: bool = True) -> "PreparedRecipe":
        current, prepared = data.copy(), []
        for step in self.steps:
            p = step.prep(current, training=training)
            current = p.bake(current)
            prepared.append(p)
        return PreparedRecipe(recipe=self, prepared_steps=prepared, template=data)


@dataclass
class PreparedRecipe:
    recipe: Recipe
    prepared_steps: List[Any]
    template: pd.DataFrame

    def bake(self, new_data: pd.DataFrame) -> pd.DataFrame:
        out = new_data.copy()
        for p in self.prepared_steps:
            out = p.bake(out)
        return out

    def juice(self) -> pd.DataFrame:
        return self.bake(self.template)


def recipe(data: Optional[pd.DataFrame] = None) -> Recipe:
    return Recipe(template=data)
