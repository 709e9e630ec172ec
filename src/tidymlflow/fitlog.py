"""Logging of fitted models (single and per-group) and of their later ``evaluate()`` calls.
Shared by the layers whose calls return py-tidymodels fits; it knows fits, not layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import pandas as pd

from tidymlflow import tidymodels as tm
from tidymlflow._runs import registry
from tidymlflow.plots import log_plot

TABLES = ("outputs", "coefficients", "stats")


def describe(fit: Any) -> dict[str, Any]:
    """Spec, formula, preprocessor kind and run name of a WorkflowFit or ModelFit."""
    if hasattr(fit, "workflow"):  # WorkflowFit
        spec = fit.workflow.spec
        pre = "formula" if isinstance(fit.pre, str) else "recipe"
        formula = fit.formula
        name = fit.workflow.model_name or spec.model_type
    else:  # ModelFit
        spec, pre = fit.spec, "formula"
        formula = tm.formula_of(fit)
        name = fit.model_name or spec.model_type
    return {"spec": spec, "preprocessor": pre, "formula": formula, "name": name}


def model_tags(spec: Any, preprocessor: str) -> dict[str, str]:
    """Tags ``model_type``, ``engine`` and ``preprocessor`` of a fit."""
    return {"model_type": spec.model_type, "engine": spec.engine, "preprocessor": preprocessor}


def fit_params(info: dict[str, Any]) -> dict[str, Any]:
    """Model params plus ``preprocessor`` and, when known, ``formula``."""
    params = {**tm.model_params(info["spec"]), "preprocessor": info["preprocessor"]}
    if info["formula"] is not None:
        params["formula"] = info["formula"]
    return params


def log_tables(call, writer, frames: tuple) -> None:
    """The three DataFrames as ``tidymodels/*.parquet`` (when ``log_outputs``)."""
    if call.config.log_outputs:
        for name, frame in zip(TABLES, frames):
            writer.log_table(frame, f"tidymodels/{name}.parquet")


def log_dataset(call, writer, data: Any, context: str) -> None:
    """Record a frame as an MLflow dataset input (schema and digest, no rows)."""
    if not call.config.log_datasets or data is None or not hasattr(data, "columns"):
        return
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    dataset = mlflow.data.from_pandas(data, name=context)
    writer.add_dataset(DatasetInput(dataset._to_mlflow_entity(),
                                    [InputTag("mlflow.data.context", context)]))


def log_single(call, writer, fit: Any, data: Any = None, extra_params: Optional[dict] = None,
               timed: bool = True) -> None:
    """Params, tags, metrics and the three tables of one fit; remember its run for evaluate().
    ``timed`` logs the call's duration as the fit's (False for one fit among many)."""
    info = describe(fit)
    writer.log_params({**fit_params(info), **(extra_params or {})})
    writer.set_tags(model_tags(info["spec"], info["preprocessor"]))
    if timed and call.duration is not None:
        writer.log_metric("fit_duration_s", call.duration)
    frames = fit.extract_outputs()
    metrics, tags = tm.stats_metrics(frames[2])
    writer.log_metrics(metrics)
    writer.set_tags(tags)
    log_tables(call, writer, frames)
    fit_plots(call, writer, frames[0])
    log_dataset(call, writer, data, "train")
    call.contribute(writer, fit)
    _register(fit, writer.run_id)


def _register(fit: Any, run_id: str, **info: Any) -> None:
    registry.register(fit, run_id, evaluations=0, **info)
    inner = getattr(fit, "fit", None)
    if inner is not None and not callable(inner):  # WorkflowFit.fit is the ModelFit
        registry.register(inner, run_id, evaluations=0, **info)


def nested_run_name(spec: Any, group_col: str) -> str:
    """Run name of a per-group fit: ``<model_type> by <group_col>``."""
    return f"{spec.model_type} by {group_col}"


def log_nested(call, parent, nested: Any, data: Any = None) -> None:
    """Parent (group summary, combined tables) and one child run per group."""
    group_col = nested.group_col
    frames = nested.extract_outputs()
    stats_by_group = dict(tm.by_group(frames[2], group_col))
    children, writers, per_group = {}, {}, {}
    infos = {g: describe(f) for g, f in nested.group_fits.items()}
    for group, fit in nested.group_fits.items():
        info = infos[group]
        child = call.start_run(f"{group_col}={group}", parent=parent,
                               tags={**model_tags(info["spec"], info["preprocessor"]),
                                     "group_col": group_col, "group": str(group)})
        child.log_params({**fit_params(info), "group_col": group_col})
        group_stats = stats_by_group.get(group)
        if group_stats is not None:
            per_group[group], tags = tm.stats_metrics(group_stats)
            child.log_metrics(per_group[group])
            child.set_tags(tags)
        children[group], writers[group] = child.run_id, child
        _register(fit, child.run_id)
    first = next(iter(infos.values()))
    params = {**fit_params(first), "group_col": group_col, "n_groups": len(children)}
    if len({i["formula"] for i in infos.values()}) != 1:
        params.pop("formula", None)
    parent.log_params(params)
    parent.set_tags({**model_tags(first["spec"], first["preprocessor"]), "group_col": group_col})
    parent.log_metrics(tm.group_summary(per_group))
    if call.duration is not None:
        parent.log_metric("fit_duration_s", call.duration)
    log_tables(call, parent, frames)
    nested_plots(call, parent, frames, group_col)
    log_dataset(call, parent, data, "train")
    call.contribute(parent, nested, writers)
    registry.register(nested, parent.run_id, evaluations=0, children=children)


def evaluate(call):
    """Handler for every ``*.evaluate``: add test metrics and refresh tables in the fit's run(s)."""
    entry = registry.lookup(call.instance)
    if entry is None:
        return  # a fit that was not logged is not logged by its evaluate either
    fit = yield
    step = entry["evaluations"]
    entry["evaluations"] += 1
    frames = fit.extract_outputs()
    writer = call.resume_run(entry["run_id"])
    test_data = call.argument("test_data")
    if "children" not in entry:
        metrics, _ = tm.stats_metrics(frames[2], splits={"test"})
        writer.log_metrics(metrics, step=step)
        wanted = "forecast" in call.config.log_plots
        log_plot(call, writer, "forecast", frames[0], intervals=intervals(fit, test_data) if wanted else None)
    else:
        per_group = {}
        for group, stats in tm.by_group(frames[2], fit.group_col):
            run_id = entry["children"].get(group)
            if run_id is not None:
                per_group[group], _ = tm.stats_metrics(stats, splits={"test"})
                call.resume_run(run_id).log_metrics(per_group[group], step=step)
        writer.log_metrics(tm.group_summary(per_group), step=step)
        nested_plots(call, writer, frames, fit.group_col)
    log_tables(call, writer, frames)
    log_dataset(call, writer, test_data, "test")


def fit_handler(run_name: Callable[[Any], str], grouped: bool = False):
    """Handler for a single-fit call (``fit``; ``fit_global`` with ``grouped``)."""

    def handler(call):
        writer = call.start_run(run_name(call.instance))
        fit = yield
        extra = {"group_col": call.argument("group_col")} if grouped else {}
        writer.set_tags(extra)
        log_single(call, writer, fit, data=call.argument("data"), extra_params=extra)

    return handler


def nested_handler(spec_of: Callable[[Any], Any]):
    """Handler for a per-group call (``fit_nested``): parent before, children after."""

    def handler(call):
        name = nested_run_name(spec_of(call.instance), call.argument("group_col"))
        parent = call.start_run(name, hierarchical=True)
        nested = yield
        log_nested(call, parent, nested, data=call.argument("data"))

    return handler


# -- plots --------------------------------------------------------------------------------------
def fit_plots(call, writer, outputs: Any) -> None:
    """Residual diagnostics, forecast and decomposition of one fit (each only when it applies)."""
    for name in ("residual_diagnostics", "forecast", "decomposition"):
        log_plot(call, writer, name, outputs)


def nested_plots(call, writer, frames: tuple, group_col: str) -> None:
    """Per-group forecast, the metric per group and split, and coefficients across groups."""
    outputs, coefs, stats = frames
    log_plot(call, writer, "forecast", outputs, group_col)
    metric = "rmse" if (stats["metric"] == "rmse").any() else None
    if metric is not None and group_col in stats.columns:
        rows = stats[(stats["metric"] == metric) & stats["split"].isin(["train", "test"])]
        table = pd.DataFrame({"group": rows[group_col].to_numpy(), "split": rows["split"].to_numpy(),
                              "value": pd.to_numeric(rows["value"], errors="coerce").to_numpy()})
        log_plot(call, writer, "per_group_heatmap", table, metric, "split")
    log_plot(call, writer, "coefficient_variation", coefs, group_col)


def intervals(fit: Any, test_data: Any) -> Any:
    """Prediction intervals on the test rows (``predict(type="conf_int")``) when the engine
    gives them and plots want them; None otherwise. The fit is not changed."""
    if test_data is None or not hasattr(test_data, "columns"):
        return None
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = fit.predict(test_data, type="conf_int")
    except Exception:  # most engines support only type="numeric"
        return None
    if not {".pred_lower", ".pred_upper"}.issubset(getattr(pred, "columns", ())):
        return None
    pred = pred.reset_index(drop=True)
    if "date" in test_data.columns and "date" not in pred.columns:
        pred["date"] = test_data["date"].to_numpy()[: len(pred)]
    return pred
