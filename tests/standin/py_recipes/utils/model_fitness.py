"""Stand-in fitness evaluator: a feature mask -> a score from fitting ``model_spec`` with
``ModelSpec.fit`` on each fold (k-fold, shuffled with its own seed), as the real one does."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import pandas as pd


def create_model_fitness_evaluator(data: pd.DataFrame, outcome_col: str, model_spec: Any,
                                   metric: str = "rmse", maximize: bool = False, cv_folds: int = 5,
                                   random_state: Optional[int] = None) -> Callable[[np.ndarray], float]:
    features = [c for c in data.select_dtypes(include=[np.number]).columns if c != outcome_col]
    order = np.random.default_rng(random_state).permutation(len(data))
    folds = np.array_split(order, max(cv_folds, 1))

    def fitness(mask: np.ndarray) -> float:
        selected = [f for f, keep in zip(features, mask) if keep]
        if not selected:
            return -np.inf
        formula = f"{outcome_col} ~ {' + '.join(selected)}"
        scores = []
        for held in (folds if cv_folds > 1 else [order]):
            train = data.drop(index=data.index[held]) if cv_folds > 1 else data
            test = data.iloc[held]
            pred = model_spec.fit(train, formula).predict(test)[".pred"].to_numpy()
            truth = test[outcome_col].to_numpy()
            scores.append(float(np.sqrt(np.mean((truth - pred) ** 2))) if metric == "rmse"
                          else float(np.mean(np.abs(truth - pred))))
        score = float(np.mean(scores))
        return score if maximize else 1.0 / (1.0 + abs(score))

    return fitness
