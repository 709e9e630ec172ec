"""MLflow run context provider: stamps tidymlflow and py-tidymodels versions on every run."""

from __future__ import annotations

import sys

from mlflow.tracking.context.abstract_context import RunContextProvider


class TidymlflowRunContext(RunContextProvider):
    """Active once tidymlflow.autolog() has been called or py-tidymodels is imported."""

    def in_context(self) -> bool:
        from tidymlflow._runtime import state as _state

        return _state.config is not None or "py_parsnip" in sys.modules

    def tags(self) -> dict[str, str]:
        from tidymlflow._recording.runs import py_tidymodels_version, tidymlflow_version

        return {"tidymlflow.version": tidymlflow_version(),
                "py_tidymodels.version": py_tidymodels_version()}
