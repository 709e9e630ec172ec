"""workflows layer: ``Workflow.fit`` / ``fit_nested`` / ``fit_global`` and the fits' ``evaluate``."""

from __future__ import annotations

from tidymlflow import fitlog
from tidymlflow.layer import Layer, Patch

MODULE = "py_workflows.workflow"


def _run_name(workflow) -> str:
    return workflow.model_name or workflow.spec.model_type


def _spec(workflow):
    return workflow.spec


layer = Layer("workflows", (
    Patch(MODULE, "Workflow.fit", "Workflow.fit", fitlog.fit_handler(_run_name)),
    Patch(MODULE, "Workflow.fit_nested", "Workflow.fit_nested", fitlog.nested_handler(_spec)),
    Patch(MODULE, "Workflow.fit_global", "Workflow.fit_global",
          fitlog.fit_handler(_run_name, grouped=True)),
    Patch(MODULE, "WorkflowFit.evaluate", "WorkflowFit.evaluate", fitlog.evaluate),
    Patch(MODULE, "NestedWorkflowFit.evaluate", "NestedWorkflowFit.evaluate", fitlog.evaluate),
))
