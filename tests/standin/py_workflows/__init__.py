"""Stand-in for py_workflows (NestedWorkflowFit is not exported, as in the real package)."""

from py_workflows.workflow import Workflow, WorkflowFit, workflow

__version__ = "0.1.0"

__all__ = ["workflow", "Workflow", "WorkflowFit"]
