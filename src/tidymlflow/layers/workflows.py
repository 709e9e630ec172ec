"""workflows layer: ``Workflow.fit`` / ``fit_nested`` / ``fit_global`` and the fits' ``evaluate``."""

from __future__ import annotations

from tidymlflow import fitlog
from tidymlflow.layer import Layer, Patch

MODULE = "py_workflows.workflow"


def _run_name(workflow) -> str:
    return workflow.model_name or workflow.spec.model_type


def _fit(call):
    writer = call.start_run(_run_name(call.instance))
    fit = yield
    fitlog.log_single(call, writer, fit, data=call.argument("data"))


def _fit_global(call):
    writer = call.start_run(_run_name(call.instance))
    fit = yield
    group_col = call.argument("group_col")
    writer.set_tags({"group_col": group_col})
    fitlog.log_single(call, writer, fit, data=call.argument("data"),
                      extra_params={"group_col": group_col})


def _fit_nested(call):
    name = fitlog.nested_run_name(call.instance.spec, call.argument("group_col"))
    parent = call.start_run(name, hierarchical=True)
    nested = yield
    fitlog.log_nested(call, parent, nested, data=call.argument("data"))


layer = Layer("workflows", (
    Patch(MODULE, "Workflow.fit", "Workflow.fit", _fit),
    Patch(MODULE, "Workflow.fit_nested", "Workflow.fit_nested", _fit_nested),
    Patch(MODULE, "Workflow.fit_global", "Workflow.fit_global", _fit_global),
    Patch(MODULE, "WorkflowFit.evaluate", "WorkflowFit.evaluate", fitlog.evaluate),
    Patch(MODULE, "NestedWorkflowFit.evaluate", "NestedWorkflowFit.evaluate", fitlog.evaluate),
))
