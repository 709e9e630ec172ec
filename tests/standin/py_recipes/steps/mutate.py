"""Stand-in StepMutate: user functions of the frame, run at bake time (as the real one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import pandas as pd


@dataclass
class StepMutate:
    transformations: Dict[str, Callable[[pd.DataFrame], pd.Series]]

    def prep(self, data: pd.DataFrame, training: bool = True) -> "PreparedStepMutate":
        return PreparedStepMutate(transformations=self.transformations)


@dataclass
class PreparedStepMutate:
    transformations: Dict[str, Callable[[pd.DataFrame], pd.Series]]

    def bake(self, data: pd.DataFrame) -> pd.DataFrame:
        result = data.copy()
        for col_name, transform_func in self.transformations.items():
            result[col_name] = transform_func(result)
        return result
