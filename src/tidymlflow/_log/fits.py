"""Logging of fitted models (single and per-group) and of their later ``evaluate()`` calls.
Shared by the layers whose calls return py-tidymodels fits; it knows fits, not layers."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

from tidymlflow._log import comparison, sampling
from tidymlflow._log.plots import Logging, log_plot
from tidymlflow._read import common, fits
from tidymlflow._read.fits import FitInfo, Outputs
from tidymlflow._recording.call import Call, Handler
from tidymlflow._recording.recorder import Recorder
from tidymlflow._recording.runs import LoggedRun, registry


def log_info(writer: Recorder, info: FitInfo, **extra_params: Any) -> None:
    """The params and tags that identify a fit (or an unfitted workflow)."""
    writer.log_params({**info.params(), **extra_params})
    writer.set_tags(info.tags())


def log_duration(call: Call, writer: Recorder) -> None:
    """The call's own duration as ``fit_duration_s`` (the library's time, not tidymlflow's)."""
    if call.duration is not None:
        writer.log_metric("fit_duration_s", call.duration)


def log_known(writer: Recorder, info: FitInfo | None) -> None:
    """What is known of a fit before it runs (spec, engine, formula or recipe): a run whose fit
    fails still says what was fitted. The fit's own params replace these when it succeeds."""
    if info is not None and info.spec is not None:
        log_info(writer, info)


def log_tables(call: Logging, writer: Recorder, frames: Outputs) -> None:
    """The three DataFrames as ``tidymodels/*.parquet`` (when ``log_outputs``)."""
    if call.config.log_outputs:
        for name, frame in zip(fits.TABLES, frames):
            writer.log_table(frame, f"tidymodels/{name}.parquet")


def log_model(call: Call, writer: Recorder, fit: Any) -> None:
    """With ``log_models``, the fit as an MLflow model named ``model`` linked to its run (and
    registered under ``registered_model_name``); the run's tag ``tidymlflow.model_uri`` points at
    it. A model that cannot be logged is one of the call's logging errors; the rest stays."""
    if not call.config.log_models:
        return
    try:
        writer.log_model(fit, call.config.registered_model_name)
    except Exception as exc:
        call.errors.append(exc)


def log_dataset(call: Call, writer: Recorder, data: Any, context: str) -> None:
    """Record a frame as an MLflow dataset input (schema and digest, no rows)."""
    if not call.config.log_datasets or data is None or not hasattr(data, "columns"):
        return
    writer.add_dataset(data, context)


class OutputsError(RuntimeError):
    """py-tidymodels' own ``extract_outputs()`` failed on a fit."""


def outputs(call: Logging, fit: Any, logged: str) -> Outputs | None:
    """The fit's three tables, or None with one error that says what is missing and why (the
    library's ``extract_outputs()`` fails for some fits, e.g. an object-dtype outcome)."""
    try:
        return fits.outputs(fit)
    except Exception as exc:
        call.errors.append(OutputsError(
            f"py-tidymodels' extract_outputs() failed ({type(exc).__name__}: {exc}); logged {logged}, "
            "but no metrics, tables or plots of this fit"))
        return None


def log_single(call: Call, writer: Recorder, fit: Any, data: Any = None,
               extra_params: Mapping[str, Any] | None = None, timed: bool = True) -> None:
    """Params, tags, metrics and the three tables of one fit; remember its run for evaluate().
    ``timed`` logs the call's duration as the fit's (False for one fit among many). The tables
    and what follows from them are worked out by the writer from the fit handed over
    (:func:`hand_over`), else here."""
    info = fits.describe(fit)
    log_info(writer, info, **(extra_params or {}))
    if timed:
        log_duration(call, writer)
    plots = _plotted(call, writer, info, extra_params)
    _register(fit, LoggedRun(writer.handle, plots=plots))
    log_model(call, writer, fit)
    if not hand_over(call, writer, fit, "fit", 0, FIT_PLOTS if plots else ()):
        if not fit_outputs(call, writer, fit, plots):
            return
    log_dataset(call, writer, data, "train")
    call.contribute(writer, fit)


def _plotted(call: Call, writer: Recorder, info: FitInfo, extra: Mapping[str, Any] | None) -> bool:
    """Whether this fit's plots are drawn: a model fitted again and again in this process (a
    loop) has them for its first fits and then every ``plot_every_n_fits``-th
    (:mod:`~tidymlflow._log.sampling`); a run without them carries a tag that says why."""
    if not call.config.log_plots:
        return True
    why = sampling.sampler.skipped(info.label(), {**info.params(), **(extra or {})},
                                   call.config.plot_every_n_fits)
    if why is not None:
        writer.set_tags({sampling.SKIPPED_TAG: why})
    return why is None


def fit_outputs(call: Logging, writer: Recorder, fit: Any, plots: bool = True) -> bool:
    """A fit's training metrics and tags, its three tables and (``plots``) its plots; False when
    the library cannot give its tables."""
    frames = outputs(call, fit, "its params and duration")
    if frames is None:
        return False
    metrics, tags = common.stats_metrics(frames.stats)
    writer.log_metrics(metrics)
    writer.set_tags(tags)
    log_tables(call, writer, frames)
    if plots:
        fit_plots(call, writer, frames)
    return True


def training_outputs(call: Logging, writer: Recorder, fit: Any) -> None:
    """What :func:`fit_outputs` logs of a fit, but its tables, from the fit after its
    ``evaluate()`` (the training rows of its tables are the fit's own): the writer's way when a
    fit's evaluation came before its own tables were worked out."""
    frames = outputs(call, fit, "no metrics or plots of the fit")
    if frames is None:
        return
    metrics, tags = common.stats_metrics(frames.stats, splits={"train", ""})
    writer.log_metrics(metrics)
    writer.set_tags(tags)
    fit_plots(call, writer, frames)


def evaluation_outputs(call: Logging, writer: Recorder, fit: Any, test_data: Any, step: int,
                       plots: bool = True) -> None:
    """An evaluated single fit's test metrics (at ``step``), its forecast on the test rows with
    the engine's intervals (``plots``: unless its fit's plots were skipped), and its three tables
    again."""
    frames = outputs(call, fit, "nothing of this evaluation")
    if frames is None:
        return
    metrics, _ = common.stats_metrics(frames.stats, splits={"test"})
    writer.log_metrics(metrics, step=step)
    if plots:
        wanted = "forecast" in call.config.log_plots
        log_plot(call, writer, "forecast", frames.outputs,
                 intervals=fits.intervals(fit, test_data) if wanted else None)
    log_tables(call, writer, frames)


#: The plots of a single fit (each drawn only when it applies).
FIT_PLOTS = ("residual_diagnostics", "forecast", "decomposition")


def hand_over(call: Call, writer: Recorder, obj: Any, kind: str, step: int, plots: tuple[str, ...]) -> bool:
    """When the writer is behind (a loop of calls), hand a fit (``kind`` ``fit``) or a fit and its
    test data (``evaluate``) to it: its helper processes work out the tables, metrics and plots,
    and the library's ``extract_outputs()`` (the larger part of logging a small fit) does not run
    in the user's process. A single fit is worked out here, beside the writer (whose helper
    would first have to import the library: +0.15 s on a script of one fit, measured). False
    when it is worked out here (also a fit that cannot be pickled)."""
    if not call.writer_behind():
        return False
    try:
        writer.hand_outputs(obj, kind, step=step, tables=call.config.log_outputs,
                            plots=tuple(p for p in plots if p in call.config.log_plots),
                            plotly_js=call.config.plotly_js)
    except Exception:
        return False
    return True


def _register(fit: Any, logged: LoggedRun) -> None:
    """Remember the run of a fit and of the ModelFit inside a WorkflowFit."""
    registry.register(fit, logged)
    inner = fits.inner_model_fit(fit)
    if inner is not None:
        registry.register(inner, logged)


def log_nested(call: Call, parent: Recorder, nested: Any, data: Any = None) -> None:
    """Parent (group summary, combined tables) and one child run per group, best first by the
    training metric (tag ``rank``; ``evaluate()`` ranks them again on the test split)."""
    group_col = nested.group_col
    frames = outputs(call, nested, "the params of the parent and of every group")
    stats_by_group = dict(common.by_group(frames.stats, group_col)) if frames is not None else {}
    children: dict[Any, str] = {}
    writers: dict[Any, Recorder] = {}
    per_group: dict[Any, dict[str, float]] = {}
    group_tags: dict[Any, dict[str, str]] = {}
    for group, group_stats in stats_by_group.items():
        if group in nested.group_fits:
            per_group[group], group_tags[group] = common.stats_metrics(group_stats)
    infos = {g: fits.describe(f) for g, f in nested.group_fits.items()}
    metric = f"train_{common.DEFAULT_METRIC}"
    order = common.rank_order({g: per_group.get(g, {}).get(metric) for g in infos}, common.DEFAULT_METRIC)

    def fill(child: Recorder, group: Any) -> None:
        child.log_params({**infos[group].params(), "group_col": group_col})
        if group in per_group:
            child.log_metrics(per_group[group])
            child.set_tags(group_tags[group])
        children[group], writers[group] = child.handle, child
        _register(nested.group_fits[group], LoggedRun(child.handle))

    comparison.ranked_children(
        call, parent, order, name=lambda g, _: f"{group_col}={g}", fill=fill,
        tags=lambda g: {**infos[g].tags(), "group_col": group_col, "group": str(g)})
    first = next(iter(infos.values()))
    params = {**first.params(), "group_col": group_col, "n_groups": len(children)}
    if len({i.formula for i in infos.values()}) != 1:
        params.pop("formula", None)
    parent.log_params(params)
    parent.set_tags({**first.tags(), "group_col": group_col})
    parent.log_metrics(common.group_summary(per_group))
    _describe_nested(parent, first, group_col, per_group)
    log_duration(call, parent)
    if frames is not None:
        log_tables(call, parent, frames)
        nested_plots(call, parent, frames, group_col)
    log_dataset(call, parent, data, "train")
    call.contribute(parent, nested, writers)
    log_model(call, parent, nested)
    registry.register(nested, LoggedRun(parent.handle, children=children))


def _describe_nested(parent: Recorder, info: FitInfo, group_col: str,
                     per_group: Mapping[Any, Mapping[str, float]], split: str = "train") -> None:
    """The per-group parent's description: one row per group with its metrics on ``split``, best
    first (the order and the ``rank`` tags of the group runs)."""
    names = [f"{split}_{n}" for n in ("rmse", "mae", "r_squared")
             if any(f"{split}_{n}" in m for m in per_group.values())]
    key = f"{split}_{common.DEFAULT_METRIC}"
    order = common.rank_order({g: m.get(key) for g, m in per_group.items()}, common.DEFAULT_METRIC)
    comparison.describe(parent, f"**{info.label()}**, one model per `{group_col}` ({len(per_group)} groups), "
                        f"best first by {key}.",
                        [group_col, *names], [[g, *(per_group[g].get(n) for n in names)] for g in order])


def evaluate(call: Call) -> Generator[None, Any, None]:
    """Handler for every ``*.evaluate``: add test metrics and refresh tables in the fit's run(s).
    A fit that was not logged is not logged by its evaluate either."""
    logged = registry.lookup(call.instance)
    fit = yield
    if logged is None:
        return
    step = logged.next_step()
    test_data = call.argument("test_data")
    if logged.children is None:
        writer = call.resume_run(logged.handle)
        plots = ("forecast",) if logged.plots else ()
        if not hand_over(call, writer, (fit, test_data), "evaluate", step, plots):
            evaluation_outputs(call, writer, fit, test_data, step, logged.plots)
        log_dataset(call, writer, test_data, "test")
    else:
        _evaluate_nested(call, logged, fit, test_data, step)


def _evaluate_nested(call: Call, logged: LoggedRun, fit: Any, test_data: Any, step: int) -> None:
    """A per-group fit's evaluation: test metrics per group run and ranked again, the summary,
    description, plots and tables in the parent."""
    assert logged.children is not None
    frames = outputs(call, fit, "nothing of this evaluation")
    if frames is None:
        return
    writer = call.resume_run(logged.handle)
    per_group = {}
    for group, stats in common.by_group(frames.stats, fit.group_col):
        if group in logged.children:
            per_group[group], _ = common.stats_metrics(stats, splits={"test"})
    metric = f"test_{common.DEFAULT_METRIC}"
    order = common.rank_order({g: m.get(metric) for g, m in per_group.items()}, common.DEFAULT_METRIC)
    for rank, group in enumerate(order, start=1):  # one ranking: the test split's from now on
        child = call.resume_run(logged.children[group])
        child.log_metrics(per_group[group], step=step)
        child.set_tags({"rank": rank})
    writer.log_metrics(common.group_summary(per_group), step=step)
    first = next(iter(fit.group_fits.values()), None)
    if first is not None:
        _describe_nested(writer, fits.describe(first), fit.group_col, per_group, "test")
    nested_plots(call, writer, frames, fit.group_col)
    log_tables(call, writer, frames)
    log_dataset(call, writer, test_data, "test")


def fit_handler(known: Callable[[Call], FitInfo], grouped: bool = False) -> Handler:
    """Handler for a single-fit call (``fit``; ``fit_global`` with ``grouped``), in a run named
    after the model and its preprocessor. What is ``known`` before the call is logged first, so
    a fit that fails still says what it was."""

    def handler(call: Call) -> Generator[None, Any, None]:
        info = known(call)
        writer = call.start_run(info.label())
        log_known(writer, info)
        fit = yield
        extra = {"group_col": call.argument("group_col")} if grouped else {}
        writer.set_tags(extra)
        log_single(call, writer, fit, data=call.argument("data"), extra_params=extra)

    return handler


def nested_handler(spec_of: Callable[[Any], Any], known: Callable[[Call], FitInfo | None]) -> Handler:
    """Handler for a per-group call (``fit_nested``): parent before, children after."""

    def handler(call: Call) -> Generator[None, Any, None]:
        name = fits.nested_run_name(spec_of(call.instance), call.argument("group_col"))
        parent = call.start_run(name, hierarchical=True)
        log_known(parent, known(call))
        nested = yield
        log_nested(call, parent, nested, data=call.argument("data"))

    return handler


# -- plots --------------------------------------------------------------------------------------
def fit_plots(call: Logging, writer: Recorder, frames: Outputs) -> None:
    """Residual diagnostics, forecast and decomposition of one fit (each only when it applies)."""
    for name in FIT_PLOTS:
        log_plot(call, writer, name, frames.outputs)


def nested_plots(call: Call, writer: Recorder, frames: Outputs, group_col: str) -> None:
    """Per-group forecast, the metric per group and split, and coefficients across groups."""
    log_plot(call, writer, "forecast", frames.outputs, group_col)
    table = fits.nested_metric_table(frames.stats, group_col, common.DEFAULT_METRIC)
    if table is not None:
        log_plot(call, writer, "per_group_heatmap", table, common.DEFAULT_METRIC, "split")
    log_plot(call, writer, "coefficient_variation", frames.coefficients, group_col)
