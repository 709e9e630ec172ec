"""Stand-in py_recipes.utils: the model-based fitness evaluator of the selection steps."""

from py_recipes.utils.model_fitness import create_model_fitness_evaluator

__all__ = ["create_model_fitness_evaluator"]
