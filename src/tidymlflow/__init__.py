"""tidymlflow: MLflow autologging for py-tidymodels with one call, ``tidymlflow.autolog()``.

Importing this package imports neither mlflow, matplotlib, plotly nor py-tidymodels.
"""

from __future__ import annotations

import types
from collections.abc import Collection, Mapping

from tidymlflow._version import __version__
from tidymlflow.errors import TidyMLflowError, TidyMLflowWarning
from tidymlflow.readback import collect, load_outputs

__all__ = ["autolog", "collect", "load_outputs", "run_id", "TidyMLflowError", "TidyMLflowWarning",
           "__version__"]


def autolog(
    *,
    parsnip: bool = True,
    workflows: bool = True,
    recipes: bool = True,
    tune: bool = True,
    workflowsets: bool = True,
    log_outputs: bool = True,
    log_plots: bool | Collection[str] = True,
    plotly_js: str = "cdn",
    log_models: bool = False,
    registered_model_name: str | None = None,
    log_datasets: bool = True,
    log_fold_runs: bool = False,
    max_tuning_runs: int | None = 20,
    extra_tags: Mapping[str, str] | None = None,
    exclusive: bool = False,
    disable: bool = False,
    silent: bool = False,
    layers: Mapping[str, bool] | None = None,
) -> None:
    """Record every py-tidymodels fit, prep, resampling, tuning and workflow-set call in MLflow.

    Each flag is described in the README (and docs/contract.md).
    Calling it again replaces the configuration; ``disable=True`` removes every patch.
    Raises TypeError / ValueError naming the offending flag.
    """
    flags = dict(locals())
    from tidymlflow import _engine
    from tidymlflow._config import build_config

    config = build_config(flags, registered=_engine.discover_layers())
    if config.disable:
        _engine.deactivate()
    else:
        _engine.activate(config)


def run_id(obj: object) -> str | None:
    """The id of the run that logged ``obj`` (a fit, a nested fit or a results object), or None
    when tidymlflow did not log it (or it was logged before this process started)."""
    from tidymlflow._runs import registry

    logged = registry.lookup(obj)
    return None if logged is None else logged.run_id


def __getattr__(name: str) -> types.ModuleType:
    """``tidymlflow.models`` loads MLflow on first use only (PEP 562)."""
    if name == "models":
        import importlib

        return importlib.import_module(f"tidymlflow.{name}")
    raise AttributeError(f"module 'tidymlflow' has no attribute {name!r}")
