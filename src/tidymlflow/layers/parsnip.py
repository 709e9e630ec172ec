"""parsnip layer: ``ModelSpec.fit`` / ``fit_nested`` / ``fit_global`` and the fits' ``evaluate``."""

from __future__ import annotations

from typing import Any

from tidymlflow.layer import Call, Layer, Patch, fits, readers

MODULE = "py_parsnip.model_spec"


def _spec(spec: Any) -> Any:
    return spec


def _known(call: Call) -> readers.fits.FitInfo:
    """A spec's fit before it runs: the spec and the formula argument."""
    spec = call.instance
    return readers.fits.FitInfo(spec, "formula", call.argument("formula"), str(spec.model_type))


layer = Layer("parsnip", (
    Patch(MODULE, "ModelSpec.fit", fits.fit_handler(_known)),
    Patch(MODULE, "ModelSpec.fit_nested", fits.nested_handler(_spec, _known)),
    Patch(MODULE, "ModelSpec.fit_global", fits.fit_handler(_known, grouped=True)),
    Patch(MODULE, "ModelFit.evaluate", fits.evaluate),
    Patch(MODULE, "NestedModelFit.evaluate", fits.evaluate),
))
