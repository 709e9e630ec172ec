"""Stand-in StepSelectGeneticAlgorithm: its prep fits its model spec once per fold for every
candidate feature set (through ``py_recipes.utils``' fitness evaluator, with
``ModelSpec.fit``), as the real step does; prep returns a prepared copy with private fields."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, List, Optional, Union

import numpy as np
import pandas as pd

from py_recipes.utils import create_model_fitness_evaluator


@dataclass
class StepSelectGeneticAlgorithm:
    outcome: str
    model: Any
    columns: Union[None, str, List[str], Callable] = None
    metric: str = "rmse"
    maximize: bool = False
    population_size: int = 50
    generations: int = 100
    mutation_rate: float = 0.1
    cv_folds: int = 5
    random_state: Optional[int] = None
    skip: bool = False
    id: Optional[str] = None
    _selected_features: List[str] = field(default_factory=list, init=False, repr=False)
    _best_fitness: float = field(default=float("nan"), init=False, repr=False)
    _is_prepared: bool = field(default=False, init=False, repr=False)

    def prep(self, data: pd.DataFrame, training: bool = True):
        if self.skip or not training:
            return self
        if self.outcome not in data.columns:
            raise ValueError(f"Outcome '{self.outcome}' not found in data")
        candidates = [c for c in (self.columns or data.columns) if c != self.outcome]
        numeric = data[candidates].select_dtypes(include=[np.number]).columns.tolist()
        if not numeric:
            raise ValueError("No numeric columns to select from after resolving selector")
        fitness = create_model_fitness_evaluator(data, self.outcome, self.model, self.metric,
                                                 self.maximize, self.cv_folds, self.random_state)
        best, score = self._search(fitness, len(numeric))
        prepared = replace(self)
        prepared._selected_features = [c for c, keep in zip(numeric, best) if keep]
        prepared._best_fitness = float(score)
        prepared._is_prepared = True
        return prepared

    def _search(self, fitness: Callable[[np.ndarray], float], n: int):
        rng = np.random.default_rng(self.random_state)
        population = rng.integers(0, 2, size=(self.population_size, n))
        population[:, 0] = 1  # never an empty set
        best, best_score = population[0], -np.inf
        for _ in range(self.generations):
            scores = np.array([fitness(member) for member in population])
            top = int(np.argmax(scores))
            if scores[top] > best_score:
                best, best_score = population[top].copy(), scores[top]
            flips = rng.random(population.shape) < self.mutation_rate
            population = np.where(flips, 1 - population, population)
            population[:, 0] = np.where(population.sum(axis=1) == 0, 1, population[:, 0])
        return best, best_score

    def bake(self, data: pd.DataFrame) -> pd.DataFrame:
        if not self._is_prepared:
            raise RuntimeError("Step must be prepared before baking")
        keep = list(self._selected_features)
        if self.outcome in data.columns:
            keep = [self.outcome] + keep
        return data[keep].copy()
