"""tidymlflow: MLflow autologging for py-tidymodels with one call, ``tidymlflow.autolog()``.

Importing this package imports neither mlflow, matplotlib, plotly nor py-tidymodels.
"""

from __future__ import annotations

import types
from collections.abc import Collection, Mapping
from typing import Any

from tidymlflow._version import __version__
from tidymlflow.errors import TidyMLflowError, TidyMLflowWarning
from tidymlflow.readback import collect, load_outputs

__all__ = ["autolog", "collect", "flush", "load_outputs", "load_results", "run_id", "TidyMLflowError",
           "TidyMLflowWarning", "__version__"]


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
    plot_every_n_fits: int = 10,
    pickle_workflows: bool = False,
    extra_tags: Mapping[str, str] | None = None,
    exclusive: bool = False,
    disable: bool = False,
    silent: bool = False,
    layers: Mapping[str, bool] | None = None,
    writer: str | None = None,
) -> None:
    """Record every py-tidymodels fit, prep, resampling, tuning and workflow-set call in MLflow.

    Layers (each patches nothing until its py-tidymodels module is imported; off, its calls and
    everything nested in them log nothing):
        parsnip: ``ModelSpec.fit`` / ``fit_nested`` / ``fit_global`` and the fits' ``evaluate``.
        workflows: ``Workflow.fit`` / ``fit_nested`` / ``fit_global`` and their ``evaluate``.
        recipes: ``Recipe.prep`` and a step's ``prep`` you call yourself; a workflow's recipe.
        tune: ``fit_resamples`` and the five tuners (a parent with a child per candidate).
        workflowsets: every ``WorkflowSet`` call and ``WorkflowSetNestedResults.evaluate``.
        layers: ``{entry_point_name: bool}`` for layers other packages register.

    What is logged:
        log_outputs: the fit's three DataFrames as parquet artifacts (with CSV twins).
        log_plots: True, False, or a collection of plot names (``tidymlflow.plots.PLOT_NAMES``).
        plotly_js: ``"cdn"`` (small html, needs internet to render) or ``"embed"`` (offline).
        log_models: every fit as an MLflow model ``model`` (pickled: off by default).
        registered_model_name: register each logged model as a new version (needs log_models).
        log_datasets: training / evaluation frames as MLflow dataset inputs (schema, no rows).
        log_fold_runs: one extra child run per resample fold.
        max_tuning_runs: child runs per tuning call, best first; None = every candidate.
        plot_every_n_fits: a model fitted again and again (a loop: a backtest, a per-series
            loop) gets its plots for its first 10 fits since ``autolog()`` and then every n-th;
            the runs between keep everything else and the tag ``tidymlflow.plots_skipped``.
            1 draws every fit's plots.
        pickle_workflows: pickle each unfitted workflow of a tuning or comparison that JSON cannot
            describe (a recipe workflow), so that ``load_results`` restores it (off: nothing is
            pickled unless asked).
        extra_tags: tags added to every run tidymlflow creates (made valid as MLflow needs).

    Behaviour:
        exclusive: never log into a run you started.
        silent: no tidymlflow warnings or info messages.
        writer: ``"process"`` (the default, or ``TIDYMLFLOW_WRITER``) writes from a process of
            its own, which starts now and gets ready while the script goes on; ``"inline"``
            writes in this process.
        disable: remove every patch and restore the originals (what was handed over is still
            written).

    Calling it again replaces the configuration. Raises TypeError / ValueError naming the
    offending flag, or the offending ``TIDYMLFLOW_*`` environment variable. The README and
    docs/contract.md describe the runs, names and artifacts.
    """
    flags = dict(locals())
    from tidymlflow._engine import patching as _engine
    from tidymlflow._jobs import handover
    from tidymlflow._log import sampling as _sampling
    from tidymlflow._recording import habits as _habits
    from tidymlflow._recording import runs as _runs
    from tidymlflow._runtime import env as _env
    from tidymlflow._runtime.config import build_config
    from tidymlflow._writer import client as _service

    config = build_config(flags, registered=_engine.layer_names())
    _env.check_environment()  # a bad TIDYMLFLOW_* variable is named before anything is patched
    if config.disable:
        _engine.deactivate()
        _habits.uninstall()
    else:
        handover.provide(_service.get, _service.current)  # the writer the calls hand their jobs to
        # the writer first: it imports MLflow while the layers load (pandas) and the script starts
        _service.get(warm=_runs.current_target().record(), config=config)
        _sampling.sampler.reset()  # a loop's fits are counted from here
        _engine.activate(config)
        _habits.install()  # MLflow reads in this process see what was logged (read-your-writes)


def flush(timeout: float | None = None) -> list[str]:
    """Wait until everything logged so far is written to MLflow (or kept in the journal when it
    cannot be), and return the ids of the runs written since the last ``flush()``.

    Raises TimeoutError when ``timeout`` seconds pass first; in strict mode
    (``TIDYMLFLOW_STRICT=1``) raises the writer's errors.
    """
    from tidymlflow._jobs import handover

    writer = handover.current()
    if writer is None:
        return []
    if not writer.flush(timeout):
        raise TimeoutError(f"tidymlflow.flush(): the writer did not finish within {timeout} s; it goes on")
    writer.report()
    written = writer.written()
    new, writer.flushed = written[writer.flushed:], len(written)
    return new


def run_id(obj: object, timeout: float | None = 60.0) -> str | None:
    """The id of the run that logged ``obj`` (a fit, a nested fit or a results object), or None
    when tidymlflow did not log it (or it was logged before this process started, or its run
    could not be written yet). Waits for the writer to create the run, at most ``timeout`` s."""
    from tidymlflow._jobs import handover
    from tidymlflow._recording.runs import registry

    logged = registry.lookup(obj)
    writer = handover.current()
    if logged is None or writer is None:
        return None
    return writer.run_id(logged.handle, timeout)


def load_results(run_id: str, *, client: Any = None, tracking_uri: str | None = None,
                 unpickle: bool = False) -> Any:
    """The results object of a logged tuning or WorkflowSet comparison, rebuilt from its parent
    run ``run_id`` without fitting anything (see :func:`tidymlflow.results.load_results`;
    ``unpickle=True`` loads workflows logged with ``pickle_workflows=True``)."""
    from tidymlflow.results import load_results as _load

    return _load(run_id, client=client, tracking_uri=tracking_uri, unpickle=unpickle)


def __getattr__(name: str) -> types.ModuleType:
    """``tidymlflow.models`` loads MLflow on first use only (PEP 562)."""
    if name == "models":
        import importlib

        return importlib.import_module(f"tidymlflow.{name}")
    raise AttributeError(f"module 'tidymlflow' has no attribute {name!r}")
