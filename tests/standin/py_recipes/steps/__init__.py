"""Recipe steps (stand-in): the package re-exports every step class of its modules."""

from py_recipes.steps.basic import (
    PreparedStepDummy,
    PreparedStepImputeMean,
    PreparedStepLag,
    PreparedStepLog,
    PreparedStepNormalize,
    PreparedStepPCA,
    PreparedStepZv,
    StepDummy,
    StepImputeMean,
    StepLag,
    StepLog,
    StepNormalize,
    StepPCA,
    StepSelectVarianceThreshold,
    StepZv,
)
from py_recipes.steps.genetic_selection import StepSelectGeneticAlgorithm
from py_recipes.steps.mutate import PreparedStepMutate, StepMutate

__all__ = [
    "StepNormalize", "PreparedStepNormalize", "StepDummy", "PreparedStepDummy", "StepPCA",
    "PreparedStepPCA", "StepImputeMean", "PreparedStepImputeMean", "StepLog", "PreparedStepLog",
    "StepZv", "PreparedStepZv", "StepSelectVarianceThreshold", "StepLag", "PreparedStepLag",
    "StepMutate", "PreparedStepMutate", "StepSelectGeneticAlgorithm",
]
