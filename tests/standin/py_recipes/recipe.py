"""Stand-in Recipe / PreparedRecipe. The builders import their step classes from the step
modules inside the method, as the real library's do; ``prep`` preps each step on the frame the
previous one baked, and bakes it, as the real ``Recipe.prep`` does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import pandas as pd

Columns = Union[None, List[str], Callable]


@dataclass
class Recipe:
    steps: List[Any] = field(default_factory=list)
    template: Optional[pd.DataFrame] = None
    roles: Dict[str, Any] = field(default_factory=dict)

    def add_step(self, step) -> "Recipe":
        self.steps.append(step)
        return self

    def step_normalize(self, columns: Columns = None, method: str = "zscore") -> "Recipe":
        from py_recipes.steps.basic import StepNormalize
        return self.add_step(StepNormalize(columns, method))

    def step_dummy(self, columns: Columns, one_hot: bool = True) -> "Recipe":
        from py_recipes.steps.basic import StepDummy
        return self.add_step(StepDummy(columns, one_hot))

    def step_pca(self, columns: Columns = None, num_comp: Optional[int] = None,
                 threshold: Optional[float] = None) -> "Recipe":
        from py_recipes.steps.basic import StepPCA
        return self.add_step(StepPCA(columns, num_comp, threshold))

    def step_impute_mean(self, columns: Columns = None) -> "Recipe":
        from py_recipes.steps.basic import StepImputeMean
        return self.add_step(StepImputeMean(columns))

    def step_log(self, columns: Columns = None, base: float = float(np.e), offset: float = 0.0,
                 signed: bool = False) -> "Recipe":
        from py_recipes.steps.basic import StepLog
        return self.add_step(StepLog(columns, base, offset, signed))

    def step_zv(self, columns: Optional[List[str]] = None) -> "Recipe":
        from py_recipes.steps.basic import StepZv
        return self.add_step(StepZv(columns))

    def step_select_variance_threshold(self, threshold: float = 0.0, columns: Columns = None,
                                       skip: bool = False, id: Optional[str] = None) -> "Recipe":
        from py_recipes.steps.basic import StepSelectVarianceThreshold
        return self.add_step(StepSelectVarianceThreshold(threshold, columns, skip, id))

    def step_lag(self, columns: List[str], lags: Optional[List[int]] = None) -> "Recipe":
        from py_recipes.steps.basic import StepLag
        return self.add_step(StepLag(list(columns), list(lags or [1])))

    def step_mutate(self, transformations: Dict[str, Callable]) -> "Recipe":
        from py_recipes.steps.mutate import StepMutate
        return self.add_step(StepMutate(transformations))

    def step_select_genetic_algorithm(self, outcome: str, model: Any, columns: Columns = None,
                                      metric: str = "rmse", maximize: bool = False,
                                      population_size: int = 50, generations: int = 100,
                                      cv_folds: int = 5, random_state: Optional[int] = None,
                                      **kwargs) -> "Recipe":
        from py_recipes.steps.genetic_selection import StepSelectGeneticAlgorithm
        return self.add_step(StepSelectGeneticAlgorithm(
            outcome=outcome, model=model, columns=columns, metric=metric, maximize=maximize,
            population_size=population_size, generations=generations, cv_folds=cv_folds,
            random_state=random_state, **kwargs))

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
