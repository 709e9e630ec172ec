"""recipes layer. For now a guard: ``Recipe.prep`` owns its call, so nothing inside it logs.
Step settings, learned state and feature lineage arrive with the recipes issue."""

from __future__ import annotations

from tidymlflow.layer import Layer, Patch

layer = Layer("recipes", (Patch("py_recipes.recipe", "Recipe.prep", "Recipe.prep"),))
