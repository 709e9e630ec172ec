"""workflowsets layer. For now a guard: WorkflowSet calls own their call, so the fits inside them
never log. Their own run trees arrive with the WorkflowSet issue."""

from __future__ import annotations

from tidymlflow.layer import Layer, Patch

MODULE = "py_workflowsets.workflowset"
_METHODS = ("fit_resamples", "tune_grid", "workflow_map", "fit_nested", "fit_global",
            "fit_nested_resamples", "fit_global_resamples")

layer = Layer("workflowsets", tuple(
    [Patch(MODULE, f"WorkflowSet.{m}", f"WorkflowSet.{m}") for m in _METHODS]
    + [Patch(MODULE, "WorkflowSetNestedResults.evaluate", "WorkflowSetNestedResults.evaluate")]))
