"""Stand-in for py_workflowsets."""

from py_workflowsets.workflowset import (
    WorkflowSet,
    WorkflowSetNestedResamples,
    WorkflowSetNestedResults,
    WorkflowSetResults,
)

__version__ = "0.1.0"

__all__ = ["WorkflowSet", "WorkflowSetResults", "WorkflowSetNestedResults", "WorkflowSetNestedResamples"]
