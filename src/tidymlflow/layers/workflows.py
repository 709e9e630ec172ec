"""workflows layer: ``Workflow.fit`` / ``fit_nested`` / ``fit_global`` and the fits' ``evaluate``."""

from __future__ import annotations

from typing import Any

from tidymlflow._log import fits
from tidymlflow._read.fits import model_name
from tidymlflow.layer import Layer, Patch

MODULE = "py_workflows.workflow"


def _spec(workflow: Any) -> Any:
    return workflow.spec


layer = Layer("workflows", (
    Patch(MODULE, "Workflow.fit", fits.fit_handler(model_name)),
    Patch(MODULE, "Workflow.fit_nested", fits.nested_handler(_spec)),
    Patch(MODULE, "Workflow.fit_global", fits.fit_handler(model_name, grouped=True)),
    Patch(MODULE, "WorkflowFit.evaluate", fits.evaluate),
    Patch(MODULE, "NestedWorkflowFit.evaluate", fits.evaluate),
))
