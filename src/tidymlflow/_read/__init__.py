"""Pure readers of py-tidymodels objects and results: what a fit, a recipe, a resampler, a tuning
result or a workflow set holds, as plain values, typed records and DataFrames. Nothing here
imports MLflow or writes anything, so every reader is unit-tested without a store."""

from tidymlflow._read import common, fits, recipes, resamples, workflowsets

__all__ = ["common", "fits", "recipes", "resamples", "workflowsets"]
