"""tidymlflow: MLflow autologging for py-tidymodels with one call, ``tidymlflow.autolog()``.

Importing this package imports neither mlflow, matplotlib, plotly nor py-tidymodels.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Optional, Union

from tidymlflow.errors import TidyMLflowWarning

__version__ = "0.1.0"

__all__ = ["autolog", "TidyMLflowWarning", "__version__"]


def autolog(
    *,
    parsnip: bool = True,
    workflows: bool = True,
    recipes: bool = True,
    tune: bool = True,
    workflowsets: bool = True,
    log_outputs: bool = True,
    log_plots: Union[bool, Collection[str]] = True,
    plotly_js: str = "cdn",
    log_models: bool = False,
    log_datasets: bool = True,
    log_fold_runs: bool = False,
    max_tuning_runs: Optional[int] = 20,
    extra_tags: Optional[Mapping[str, str]] = None,
    exclusive: bool = False,
    disable: bool = False,
    silent: bool = False,
    layers: Optional[Mapping[str, bool]] = None,
) -> None:
    """Record every py-tidymodels fit, prep, resampling, tuning and workflow-set call in MLflow.

    Each flag is described in the README and in the run layout contract (spec section 1).
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
