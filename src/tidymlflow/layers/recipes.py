"""recipes layer: every prepared recipe's step settings, learned state and feature lineage.

A ``Recipe.prep`` the user calls gets its own run ``recipe``, and so does a step's ``prep`` the
user calls directly (``StepSelectGeneticAlgorithm(...).prep(data)``): the fits the step makes
inside are part of it. A prep inside a workflow fit is logged into that fit's run(s) from the
returned fit (see ``contribute``), so it works the same with ``n_jobs > 1``. Feature lineage is
read from the bakes the library itself runs while preparing (every step's ``bake`` is observed,
never called by tidymlflow). What a recipe holds is read by ``tidymlflow._read.recipes``.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

from tidymlflow.layer import Call, Layer, Patch, Recorder, log_plot, readers

#: the readers this layer uses
common, rr = readers.common, readers.recipes

MODULE = "py_recipes.recipe"
#: Where the step classes live: the package re-exports nearly all; the others are read from
#: the modules that define them (a class found twice is patched once).
STEPS = ("py_recipes.steps", "py_recipes.steps.categorical_extended", "py_recipes.steps.discretization",
         "py_recipes.steps.impute", "py_recipes.steps.transformations")
PREP_CALL = "Recipe.prep"


def log_recipe(call: Call, writer: Recorder, recipe: Any, prepared: Any = None,
               plots: bool = True) -> None:
    """Params, steps.json and, when prepared, learned tables, lineage, PCA metrics and (with
    ``plots``) the scree and correlation plots."""
    writer.log_params(rr.recipe_params(recipe))
    _log_steps(call, writer, rr.steps(recipe, prepared), plots)
    if prepared is None:
        return
    traced = rr.lineage(prepared, _seen_bakes(call))
    if traced is not None:
        trace, before, after = traced
        writer.log_dict({"input": trace[0]["before"] if trace else [],
                         "output": trace[-1]["after"] if trace else [], "steps": trace},
                        "recipe/features.json")
        if plots:
            log_plot(call, writer, "feature_correlation", before, after)


def _log_steps(call: Call, writer: Recorder, steps: list[rr.StepState], plots: bool) -> None:
    """steps.json, each step's learned table and PCA metrics, and the scree plot."""
    scree: dict[str, list[float]] = {}
    for step in steps:
        state = step.state
        if state is not None:
            ratios = _log_state(writer, step.index, step.name, state)
            if ratios:
                scree[f"step {step.index} ({step.name})"] = ratios
    writer.log_dict([step.summary() for step in steps], "recipe/steps.json")
    if plots and scree:
        log_plot(call, writer, "pca_scree", scree)


def _seen_bakes(call: Call) -> dict[int, rr.Baked]:
    """id of a prepared step -> the first bake of it the library ran inside this call."""
    return {id(instance): record for _, instance, record in call.observed if isinstance(record, rr.Baked)}


def _observe_bake(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
    """What a step's ``bake`` inside a logged call saw (see :func:`rr.baked`)."""
    data = args[0] if args else next(iter(kwargs.values()), None)
    return rr.baked(data, result)


def _log_state(writer: Recorder, i: int, name: str, state: dict[str, Any]) -> list[float] | None:
    """The step's learned table and PCA metrics; returns the explained variance ratios."""
    ratios = rr.explained_variance(state)
    for component, ratio in enumerate(ratios or ()):
        writer.log_metric(f"recipe.{i}.explained_variance_ratio", ratio, step=component)
    table = rr.learned_table(state)
    if table is not None:
        writer.log_table(table, f"recipe/learned/{i}_{name}.parquet")
    return ratios


def _log_model(writer: Recorder, prepared: Any) -> None:
    import cloudpickle

    with open(writer.artifact_path("recipe/prepared_recipe.pkl"), "wb") as fh:
        cloudpickle.dump(prepared, fh)


def _prep(call: Call) -> Generator[None, Any, None]:
    """A prep the user called: one run ``recipe: <step> > <step> ...``."""
    writer = call.start_run(common.short(rr.label(call.instance)))
    prepared = yield
    log_recipe(call, writer, prepared.recipe, prepared)
    if call.config.log_models:
        _log_model(writer, prepared)


def _step_prep(call: Call) -> Generator[None, Any, None]:
    """A step's prep the user called directly: one run named after the step's builder
    (``step_select_genetic_algorithm``), logged as a recipe of that one step."""
    step = call.instance
    name = rr.step_name(step, rr.recipe_class())
    writer = call.start_run(name)
    writer.log_params({"recipe.steps": name, **rr.step_params(0, name, step)})
    prepared = yield
    _log_steps(call, writer, [rr.StepState(0, name, step, prepared)], plots=True)


def contribute(call: Call, writer: Recorder, result: Any, children: Mapping[Any, Recorder]) -> None:
    """A fit's recipe into the fit's run; per-group recipes into their group runs; an unfitted
    workflow's recipe settings (resampling and tuning runs)."""
    if not children:
        pre: Any = getattr(result, "pre", None)
        if rr.is_prepared(pre):
            log_recipe(call, writer, pre.recipe, pre)
        elif rr.is_recipe(getattr(result, "preprocessor", None)):
            log_recipe(call, writer, result.preprocessor)
        return
    recipe = getattr(getattr(result, "workflow", None), "preprocessor", None)
    if not rr.is_recipe(recipe):
        return
    per_group = getattr(result, "group_recipes", None) or {}
    for group, prepared in per_group.items():
        if group in children and rr.is_prepared(prepared):
            log_recipe(call, children[group], prepared.recipe, prepared, plots=False)
    log_recipe(call, writer, recipe, _global_prep(call, result, recipe, per_group))


def _global_prep(call: Call, result: Any, recipe: Any, per_group: Mapping[Any, Any]) -> Any:
    """The prep shared by all groups: the groups' common recipe, else the first prep of
    ``recipe`` seen inside this call (the library preps globally before the groups)."""
    if not per_group:
        fits = list(getattr(result, "group_fits", {}).values())
        pre = getattr(fits[0], "pre", None) if fits else None
        return pre if rr.is_prepared(pre) else None
    for name, instance, prepared in call.observed:
        if name == PREP_CALL and instance is recipe and rr.is_prepared(prepared):
            return prepared
    return None


layer = Layer("recipes", (
    Patch(MODULE, PREP_CALL, _prep, observe=True),
    *(Patch(module, "Step*.prep", _step_prep) for module in STEPS),
    *(Patch(module, "*Step*.bake", observe=_observe_bake) for module in STEPS),
), contribute=contribute)
