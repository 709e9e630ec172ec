"""Stand-in for py_workflows (NestedWorkflowFit is not exported, as in the real package)."""

__version__ = "0.1.0"  # set before the imports: tidymlflow reads it while they run

from py_workflows.workflow import Workflow, WorkflowFit, workflow


__all__ = ["workflow", "Workflow", "WorkflowFit"]
