"""tune layer: ``fit_resamples`` and the five tuners, however the user imported them.

Each call is one run (``fit_resamples``) or one parent with a child per candidate (tuners), logged
from the returned ``TuneResults`` in the calling process. Tuners that call ``tune_grid`` inside
own the call, so their inner calls never log.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from tidymlflow.layer import Call, Handler, Layer, Patch, fits, readers, resampling

_TUNERS = (
    ("py_tune.tune", "tune_grid", "grid"),
    ("py_tune.bayes", "tune_bayes", "bayes"),
    ("py_tune.sim_anneal", "tune_sim_anneal", "sim_anneal"),
    ("py_tune.tune_race_anova", "tune_race_anova", "race_anova"),
    ("py_tune.tune_race_win_loss", "tune_race_win_loss", "race_win_loss"),
)


def _fit_resamples(call: Call) -> Generator[None, Any, None]:
    workflow = call.argument("workflow")
    writer = call.start_run(f"fit_resamples: {readers.fits.model_name(workflow)}",
                            hierarchical=call.config.log_fold_runs)
    fits.log_known(writer, readers.fits.describe_workflow(workflow))
    results = yield
    resampling.log_resamples(call, writer, workflow, results, call.argument("resamples"), restorable=True)


def _tuner(function: str, method: str) -> Handler:
    def handler(call: Call) -> Generator[None, Any, None]:
        workflow = call.argument("workflow")
        parent = call.start_run(f"{function}: {readers.fits.model_name(workflow)}", hierarchical=True)
        fits.log_known(parent, readers.fits.describe_workflow(workflow))
        results = yield
        resampling.log_tuning(call, parent, workflow, results, method, call.argument("resamples"),
                             call.argument("metrics"), restorable=True)

    return handler


layer = Layer("tune", (
    Patch("py_tune.tune", "fit_resamples", _fit_resamples, rebind=True),
    *(Patch(module, name, _tuner(name, method), rebind=True) for module, name, method in _TUNERS),
))
