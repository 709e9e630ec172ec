"""Stand-in for py_recipes. As in the real package, ``py_recipes.recipe`` is the function."""

from py_recipes.recipe import PreparedRecipe, Recipe, recipe
from py_recipes.steps import StepMutate, StepNormalize
from py_recipes.selectors import all_nominal, all_numeric, all_numeric_predictors, all_predictors

__version__ = "0.1.0"

__all__ = ["Recipe", "PreparedRecipe", "recipe", "StepMutate", "StepNormalize", "all_numeric", "all_nominal",
           "all_predictors", "all_numeric_predictors"]
