"""parsnip layer: ``ModelSpec.fit`` / ``fit_nested`` / ``fit_global`` and the fits' ``evaluate``."""

from __future__ import annotations

from tidymlflow import fitlog
from tidymlflow.layer import Layer, Patch

MODULE = "py_parsnip.model_spec"


def _fit(call):
    spec = call.instance
    writer = call.start_run(spec.model_type)
    fit = yield
    fitlog.log_single(call, writer, fit, data=call.argument("data"))


def _fit_global(call):
    spec = call.instance
    writer = call.start_run(spec.model_type)
    fit = yield
    group_col = call.argument("group_col")
    writer.set_tags({"group_col": group_col})
    fitlog.log_single(call, writer, fit, data=call.argument("data"),
                      extra_params={"group_col": group_col})


def _fit_nested(call):
    parent = call.start_run(fitlog.nested_run_name(call.instance, call.argument("group_col")),
                            hierarchical=True)
    nested = yield
    fitlog.log_nested(call, parent, nested, data=call.argument("data"))


layer = Layer("parsnip", (
    Patch(MODULE, "ModelSpec.fit", "ModelSpec.fit", _fit),
    Patch(MODULE, "ModelSpec.fit_nested", "ModelSpec.fit_nested", _fit_nested),
    Patch(MODULE, "ModelSpec.fit_global", "ModelSpec.fit_global", _fit_global),
    Patch(MODULE, "ModelFit.evaluate", "ModelFit.evaluate", fitlog.evaluate),
    Patch(MODULE, "NestedModelFit.evaluate", "NestedModelFit.evaluate", fitlog.evaluate),
))
