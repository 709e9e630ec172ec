"""parsnip layer: ``ModelSpec.fit`` / ``fit_nested`` / ``fit_global`` and the fits' ``evaluate``."""

from __future__ import annotations

from tidymlflow import fitlog
from tidymlflow.layer import Layer, Patch

MODULE = "py_parsnip.model_spec"


def _run_name(spec) -> str:
    return spec.model_type


def _spec(spec):
    return spec


layer = Layer("parsnip", (
    Patch(MODULE, "ModelSpec.fit", "ModelSpec.fit", fitlog.fit_handler(_run_name)),
    Patch(MODULE, "ModelSpec.fit_nested", "ModelSpec.fit_nested", fitlog.nested_handler(_spec)),
    Patch(MODULE, "ModelSpec.fit_global", "ModelSpec.fit_global",
          fitlog.fit_handler(_run_name, grouped=True)),
    Patch(MODULE, "ModelFit.evaluate", "ModelFit.evaluate", fitlog.evaluate),
    Patch(MODULE, "NestedModelFit.evaluate", "NestedModelFit.evaluate", fitlog.evaluate),
))
