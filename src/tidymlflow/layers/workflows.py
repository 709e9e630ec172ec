"""workflows layer: ``Workflow.fit`` / ``fit_nested`` / ``fit_global`` and the fits' ``evaluate``."""

from __future__ import annotations

from typing import Any

from tidymlflow.layer import Call, Layer, Patch, fits, readers

MODULE = "py_workflows.workflow"


def _spec(workflow: Any) -> Any:
    return workflow.spec


def _known(call: Call) -> readers.fits.FitInfo:
    """A workflow's fit before it runs: its spec and formula (or recipe)."""
    info = readers.fits.describe_workflow(call.instance)
    if info is None:  # no model: the library raises; the run is named after the workflow
        return readers.fits.FitInfo(None, "formula", None, "workflow")
    return info


layer = Layer("workflows", (
    Patch(MODULE, "Workflow.fit", fits.fit_handler(_known)),
    Patch(MODULE, "Workflow.fit_nested", fits.nested_handler(_spec, _known)),
    Patch(MODULE, "Workflow.fit_global", fits.fit_handler(_known, grouped=True)),
    Patch(MODULE, "WorkflowFit.evaluate", fits.evaluate),
    Patch(MODULE, "NestedWorkflowFit.evaluate", fits.evaluate),
))
