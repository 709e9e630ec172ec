"""Stand-in step classes. As in the real package, each step module defines a ``Step*`` spec
class and (for most) a ``PreparedStep*`` class, and ``py_recipes.steps`` re-exports them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
class StepZv:
    columns: Optional[List[str]] = None

    def prep(self, data: pd.DataFrame, training: bool = True) -> "PreparedStepZv":
        cols = _numeric(data) if self.columns is None else [c for c in self.columns if c in data]
        return PreparedStepZv([c for c in cols if data[c].nunique() <= 1])


@dataclass
class PreparedStepZv:
    columns_to_remove: List[str]

    def bake(self, data: pd.DataFrame) -> pd.DataFrame:
        return data.drop(columns=[c for c in self.columns_to_remove if c in data.columns])


@dataclass
class StepSelectVarianceThreshold:
    """Supervised-style selector: prep returns a prepared copy with private learned fields."""

    threshold: float = 0.0
    columns: Columns = None
    skip: bool = False
    id: Optional[str] = None
    _selected_features: List[str] = field(default_factory=list, init=False, repr=False)
    _variances: dict = field(default_factory=dict, init=False, repr=False)
    _is_prepared: bool = field(default=False, init=False, repr=False)

    def prep(self, data: pd.DataFrame, training: bool = True):
        cols = _resolve(self.columns, data, _numeric)
        prepared = replace(self)
        prepared._variances = {c: float(data[c].var()) for c in cols}
        prepared._selected_features = [c for c in cols if prepared._variances[c] > self.threshold]
        prepared._is_prepared = True
        return prepared

    def bake(self, data: pd.DataFrame, training: bool = False) -> pd.DataFrame:
        dropped = [c for c in self._variances if c not in self._selected_features]
        return data.drop(columns=[c for c in dropped if c in data.columns])


@dataclass
class StepLag:
    """A step whose prepared form carries its settings over unchanged."""

    columns: List[str] = field(default_factory=list)
    lags: List[int] = field(default_factory=lambda: [1])

    def prep(self, data: pd.DataFrame, training: bool = True) -> "PreparedStepLag":
        return PreparedStepLag(list(self.columns), list(self.lags))


@dataclass
class PreparedStepLag:
    columns: List[str]
    lags: List[int]

    def bake(self, data: pd.DataFrame) -> pd.DataFrame:
        out = data.copy()
        for c in self.columns:
            for k in self.lags:
                out[f"{c}_lag_{k}"] = data[c].shift(k)
        return out
