"""Stand-in for py_rsample: chronological splits, v-fold and rolling-origin resamples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional

import numpy as np
import pandas as pd

__version__ = "0.1.0"


@dataclass(frozen=True)
class Split:
    data: pd.DataFrame
    in_id: np.ndarray
    out_id: np.ndarray
    id: str = "Split1"


class RSplit:
    def __init__(self, split: Split):
        self._split = split

    @property
    def split(self) -> Split:
        return self._split

    def training(self) -> pd.DataFrame:
        return self._split.data.iloc[self._split.in_id].reset_index(drop=True)

    def testing(self) -> pd.DataFrame:
        return self._split.data.iloc[self._split.out_id].reset_index(drop=True)

    analysis = training
    assessment = testing

    def __len__(self) -> int:
        return len(self._split.in_id) + len(self._split.out_id)


def training(split: RSplit) -> pd.DataFrame:
    return split.training()


def testing(split: RSplit) -> pd.DataFrame:
    return split.testing()


def initial_time_split(data, prop=None, lag=0, date_column=None, train_start=None,
                       train_end=None, test_start=None, test_end=None) -> RSplit:
    prop = 0.75 if prop is None else prop
    n_train = int(np.floor(len(data) * prop))
    in_id = np.arange(0, n_train)
    out_id = np.arange(max(n_train - lag, 0), len(data))
    return RSplit(Split(data, in_id, out_id, "Split1"))


initial_split = initial_time_split


@dataclass
class VFoldCV:
    splits: List[RSplit]
    v: int
    stratified: bool = False
    strata: Optional[str] = None

    def __iter__(self) -> Iterator[RSplit]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)

    def __getitem__(self, i):
        return self.splits[i]


def vfold_cv(data, v=10, repeats=1, strata=None, seed=None) -> VFoldCV:
    if seed is not None:
        np.random.seed(seed)
    n = len(data)
    splits = []
    for r in range(repeats):
        order = np.random.permutation(n)
        folds = np.array_split(order, v)
        for k, out in enumerate(folds):
            out_id = np.sort(out)
            in_id = np.setdiff1d(np.arange(n), out_id)
            sid = f"Fold{k + 1:02d}" if repeats == 1 else f"Repeat{r + 1}_Fold{k + 1:02d}"
            splits.append(RSplit(Split(data, in_id, out_id, sid)))
    return VFoldCV(splits=splits, v=v, stratified=strata is not None, strata=strata)


def _to_rows(value, data: pd.DataFrame, date_column: str) -> int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    dates = pd.to_datetime(data[date_column])
    step = dates.diff().median()
    if isinstance(value, str):
        num, unit = value.split()[0], value.split()[1].rstrip("s")
        days = {"day": 1, "week": 7, "month": 30, "year": 365}[unit] * float(num)
        value = pd.Timedelta(days=days)
    return int(round(value / step))


@dataclass
class TimeSeriesCV:
    data: pd.DataFrame
    date_column: str
    initial: int
    assess: int
    skip: int = 0
    cumulative: bool = True
    lag: int = 0
    slice_limit: Optional[int] = None
    splits: List[RSplit] = field(default_factory=list)

    def __iter__(self) -> Iterator[RSplit]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)

    def __getitem__(self, i):
        return self.splits[i]


def time_series_cv(data, date_column, initial, assess, skip=0, cumulative=True, lag=0,
                   slice_limit=None) -> TimeSeriesCV:
    init = _to_rows(initial, data, date_column)
    ass = _to_rows(assess, data, date_column)
    sk = _to_rows(skip, data, date_column)
    lg = _to_rows(lag, data, date_column)
    splits, start_end, k = [], init, 0
    while start_end + ass <= len(data):
        k += 1
        start = 0 if cumulative else start_end - init
        in_id = np.arange(start, start_end)
        out_id = np.arange(start_end - lg, start_end + ass)
        splits.append(RSplit(Split(data, in_id, out_id, f"Slice{k:03d}")))
        start_end += ass + sk
    if slice_limit is not None:
        splits = splits[-slice_limit:]
    return TimeSeriesCV(data, date_column, init, ass, sk, cumulative, lg, slice_limit, splits)


def time_series_nested_cv(data, group_col, date_column, **kw) -> dict[Any, TimeSeriesCV]:
    return {
        g: time_series_cv(d.copy(), date_column, **kw)  # the group column stays, as in the real library
        for g, d in data.groupby(group_col, sort=False)
    }
