"""The matplotlib plots (png). Figures are built with ``matplotlib.figure.Figure`` on the Agg
canvas, never through pyplot. Every function takes DataFrames / plain values and returns a figure,
or None when its input has nothing to draw."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tidymlflow._read.common import lower_is_better

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
from tidymlflow.plots import data as d

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]
ACTUAL, FITTED, NEUTRAL = "#333333", PALETTE[0], "#999999"
MAX_LAGS = 40


def _figure(width: float = 9.0, height: float = 5.5, rows: int = 1, cols: int = 1,
            left: float = 0.8, bottom: float = 0.7, **kw: Any) -> tuple[Figure, Any]:
    """A figure on the Agg canvas with fixed margins in inches (a layout engine would draw the
    figure twice)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = min(height, 30.0)
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1 - 0.3 / width, bottom=bottom / height,
                        top=1 - 0.7 / height, hspace=0.45, wspace=0.35)
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


_kept = threading.local()  # per thread: figures kept for reuse, by kind


def _reused(kind: object, make: Any) -> tuple[Figure, Any]:
    """The figure of ``kind`` this thread drew last, emptied of what was drawn on it (its axes,
    their ticks and styles kept), else a new one from ``make()``. Building a figure and the
    ticks of its axes is about half of a small plot's time, and a figure emptied this way draws
    the very same image as a new one (``tests/plots``: byte for byte)."""
    from matplotlib.transforms import Bbox

    kept = _kept.__dict__.setdefault("figures", {})
    if kind not in kept:
        kept[kind] = make()
        return kept[kind]
    fig, axes = kept[kind]
    for ax in axes.flat:
        for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts]:
            artist.remove()
        if ax.legend_ is not None:
            ax.legend_.remove()
        ax.dataLim.set(Bbox.null())
        ax.ignore_existing_data_limits = True
        ax._request_autoscale_view()  # the limits of the new data, at drawing
    return fig, axes


def _dates(ax: Axes, is_date: bool) -> None:
    """Compact date ticks on the x axis of ``ax`` when x holds dates."""
    if is_date:
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _few_ticks(*axes: Any) -> None:
    """At most about five ticks on each numeric axis given (``ax.xaxis``, ``ax.yaxis``): matplotlib
    builds every tick as a set of artists, the larger part of a small panel's drawing time."""
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=NEUTRAL)


# -- fits ---------------------------------------------------------------------------------------
def residual_diagnostics(outputs: pd.DataFrame, title: str | None = None, *,
                         reuse: bool = False) -> Figure | None:
    """2x2: training residuals (actuals - fitted) over time or index, ACF, PACF, histogram.
    ``reuse``: drawn on the figure this thread drew the last one on (the writer's way: the same
    image, in about half the time); the figure returned is then changed by the next call."""
    x, resid = d.train_residuals(outputs)
    if len(resid) == 0:
        return None
    is_date = bool(np.issubdtype(np.asarray(x).dtype, np.datetime64))
    fig, ax = _reused(("residual_diagnostics", is_date), lambda: _figure(10, 7, 2, 2)) if reuse \
        else _figure(10, 7, 2, 2)
    xs, ys = d.thin(x, resid)
    ax[0, 0].plot(xs, ys, color=FITTED, lw=0.8)
    ax[0, 0].axhline(0, color=NEUTRAL, lw=0.8)
    ax[0, 0].set_title("Residuals (actuals - fitted), training rows")
    _dates(ax[0, 0], is_date)
    lags = min(MAX_LAGS, max(1, len(resid) // 2 - 1))
    acf = d.acf(resid, lags)
    band = 1.96 / math.sqrt(len(resid))
    for a, values, name in ((ax[0, 1], acf, "ACF"), (ax[1, 0], d.pacf(acf), "PACF")):
        a.vlines(range(1, len(values)), 0, values[1:], color=FITTED)
        a.axhspan(-band, band, color=PALETTE[0], alpha=0.12)
        a.axhline(0, color=NEUTRAL, lw=0.8)
        a.set_title(f"{name} (95% band)")
        a.set_xlabel("lag")
        if not np.any(values[1:]):
            _note(a, "constant residuals")
    _histogram(ax[1, 1], resid)
    _few_ticks(*(a.yaxis for a in ax.flat), ax[0, 1].xaxis, ax[1, 0].xaxis, ax[1, 1].xaxis)
    fig.suptitle((title or "Residual diagnostics") + d.thin_note(len(resid)))
    return fig


def _histogram(ax: Axes, resid: np.ndarray) -> None:
    bins = int(min(50, max(5, math.sqrt(len(resid)))))
    constant = d.is_constant(resid)
    spread = float(np.std(resid))
    ax.hist(resid, bins=1 if constant else bins, density=not constant, color=FITTED, alpha=0.6)
    if not constant:
        grid = np.linspace(resid.min(), resid.max(), 200)
        mean = float(np.mean(resid))
        ax.plot(grid, np.exp(-0.5 * ((grid - mean) / spread) ** 2) / (spread * math.sqrt(2 * math.pi)),
                color=PALETTE[1], label="normal")
        ax.legend(frameon=False)
    ax.set_title("Distribution")


def decomposition(outputs: pd.DataFrame, title: str | None = None) -> Figure | None:
    """Actuals, trend, seasonal and remainder over time (outputs that carry them)."""
    parts = d.decomposition(outputs)
    if parts is None:
        return None
    fig, ax = _figure(10, 8, 4, 1, sharex=True)
    series = [(name, values) for name, values in parts.items() if name != "x"]
    for a, (name, values) in zip(ax[:, 0], series):
        xs, ys = d.thin(parts["x"], values)
        a.plot(xs, ys, color=ACTUAL if name == "actuals" else FITTED, lw=0.9)
        a.set_ylabel(name)
    _dates(ax[-1, 0], np.issubdtype(np.asarray(parts["x"]).dtype, np.datetime64))
    fig.suptitle((title or "Decomposition") + d.thin_note(len(parts["x"])))
    return fig


# -- recipes ------------------------------------------------------------------------------------
def pca_scree(ratios: Mapping[str, Sequence[float]]) -> Figure | None:
    """Explained variance per component (bars) and cumulative (line), one panel per PCA step."""
    arrays = {k: np.asarray(v, dtype=float) for k, v in ratios.items() if len(v)}
    if not arrays:
        return None
    fig, ax = _figure(9, 4 * len(arrays), len(arrays), 1)
    for a, (label, values) in zip(ax[:, 0], arrays.items()):
        comps = np.arange(1, len(values) + 1)
        a.bar(comps, values, color=FITTED, label="component")
        a.plot(comps, np.nancumsum(values), color=PALETTE[1], marker="o", label="cumulative")
        a.set_ylim(0, 1.05)
        a.set_xticks(comps)
        a.set_xlabel("component")
        a.set_ylabel("explained variance ratio")
        a.set_title(label)
        a.legend(frameon=False)
    fig.suptitle("PCA scree")
    return fig


def feature_correlation(before: pd.DataFrame, after: pd.DataFrame, limit: int = 50) -> Figure | None:
    """Correlation of the numeric columns before and after the recipe (skipped above ``limit``)."""
    frames = [d.numeric(before), d.numeric(after)]
    if any(f.shape[1] > limit for f in frames) or all(f.shape[1] == 0 for f in frames):
        return None
    fig, ax = _figure(13, 7.5, 1, 2, left=1.6, bottom=1.6)
    image = None
    for a, frame, name in zip(ax[0], frames, ("before", "after")):
        a.grid(False)
        if frame.shape[1] == 0:
            _note(a, "no numeric columns")
            continue
        corr = frame.corr().to_numpy()
        image = a.imshow(np.ma.masked_invalid(corr), cmap="RdBu_r", vmin=-1, vmax=1)
        _ticks(a, list(frame.columns), list(frame.columns))
        a.set_title(f"{name} the recipe ({frame.shape[1]} numeric columns)")
    if image is not None:
        fig.colorbar(image, ax=ax[0].tolist(), shrink=0.8)
    return fig


def _ticks(ax: Axes, xlabels: list[str], ylabels: list[str]) -> None:
    size = 8 if max(len(xlabels), len(ylabels)) <= 20 else 5
    ax.set_xticks(range(len(xlabels)), [str(v)[:20] for v in xlabels], rotation=90, fontsize=size)
    ax.set_yticks(range(len(ylabels)), [str(v)[:30] for v in ylabels], fontsize=size)


# -- resampling and tuning ----------------------------------------------------------------------
def cv_folds(rows: pd.DataFrame, max_metrics: int = 6) -> Figure | None:
    """Each metric per fold position, with its mean."""
    if rows is None or rows.empty:
        return None
    names = list(dict.fromkeys(rows["metric"]))[:max_metrics]
    fig, ax = _figure(9, 2.6 * len(names), len(names), 1, sharex=True)
    for a, name in zip(ax[:, 0], names):
        part = rows[rows["metric"] == name].sort_values("position")
        values = pd.to_numeric(part["value"], errors="coerce")
        a.plot(part["position"] + 1, values, marker="o", color=FITTED)
        if values.notna().any():
            a.axhline(values.mean(), color=PALETTE[1], ls="--", lw=1, label=f"mean {values.mean():.4g}")
            a.legend(frameon=False)
        a.set_ylabel(name)
    ax[-1, 0].set_xlabel("fold")
    fig.suptitle("Metrics per fold")
    return fig


def parameter_sensitivity(summary: pd.DataFrame, params: Sequence[str], metric: str) -> Figure | None:
    """The ranking metric against the tuned parameters: a line for one parameter, a heatmap
    for two, the two most influential otherwise."""
    chosen = d.influential(summary, list(params), metric)
    if not chosen:
        return None
    if len(chosen) == 1:
        return _sensitivity_line(summary, chosen[0], metric)
    grid = d.heat_grid(summary, chosen[0], chosen[1], f"{metric}_mean")
    fig, ax = _figure(9, 7, left=1.0, bottom=1.1)
    a = ax[0, 0]
    a.grid(False)
    values = grid.to_numpy(dtype=float)
    image = a.imshow(np.ma.masked_invalid(values), cmap="viridis_r"
                     if lower_is_better(metric) else "viridis", aspect="auto", origin="lower")
    _annotate(a, values, limit=150)
    _ticks(a, list(grid.columns), list(grid.index))
    a.set_xlabel(chosen[1])
    a.set_ylabel(chosen[0])
    fig.colorbar(image, ax=a, label=f"mean {metric}")
    others = [p for p in params if p not in chosen]
    fig.suptitle(f"Sensitivity of {metric}" + (f" (averaged over {', '.join(others)})" if others else ""))
    return fig


def _sensitivity_line(summary: pd.DataFrame, param: str, metric: str) -> Figure | None:
    frame = d.by_param(summary, param, metric)
    fig, ax = _figure(9, 5)
    a = ax[0, 0]
    a.errorbar(frame["x"], frame["mean"], yerr=frame["std"], marker="o", color=FITTED, capsize=3)
    if d.log_scaled(frame["x"]):
        a.set_xscale("log")
    a.set_xlabel(param)
    a.set_ylabel(f"mean {metric} (± std)")
    _few_ticks(a.yaxis)
    fig.suptitle(f"Sensitivity of {metric} to {param}")
    return fig


# -- workflow sets and groups -------------------------------------------------------------------
def _workflow_axes(table: pd.DataFrame,
                   metric: str) -> tuple[Figure, Axes, pd.DataFrame, dict[str, str]] | None:
    """(figure, axes, ranked table, colours) for one row per workflow, best on top; None when
    there is nothing to rank."""
    table = d.ranked(table, metric)
    if table.empty:
        return None
    fig, ax = _figure(10, 1.5 + 0.3 * len(table), left=_label_width(table["wflow_id"]))
    a = ax[0, 0]
    colors = d.colors(table["model"], PALETTE)
    a.set_yticks(range(len(table)), table["wflow_id"].astype(str).str[:40])
    a.invert_yaxis()
    return fig, a, table, colors


def workflow_comparison(table: pd.DataFrame, metric: str) -> Figure | None:
    """Horizontal bars of the ranking metric per workflow, best on top, coloured by model type."""
    parts = _workflow_axes(table, metric)
    if parts is None:
        return None
    fig, a, table, colors = parts
    bars = a.barh(range(len(table)), table["mean"], color=[colors[m] for m in table["model"]])
    if len(table) <= 60:
        a.bar_label(bars, fmt="%.4g", padding=3, fontsize=8)
    a.set_xlabel(f"mean {metric}")
    _few_ticks(a.xaxis)
    _legend(a, colors)
    fig.suptitle(f"Workflows by {metric} ({'lower' if lower_is_better(metric) else 'higher'} is better)")
    return fig


def _label_width(labels: pd.Series) -> float:
    """Inches for the longest of ``labels`` (cut to 40 characters) at the tick font size."""
    return 0.4 + 0.075 * min(40, int(labels.astype(str).str.len().max() or 1))


def _legend(ax: Axes, colors: Mapping[str, str]) -> None:
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=str(m)) for m, c in colors.items()], frameon=False,
              loc="best", fontsize=8)


def cv_stability(table: pd.DataFrame, metric: str) -> Figure | None:
    """Mean ± std of the ranking metric per workflow, across resamples."""
    parts = _workflow_axes(table, metric)
    if parts is None:
        return None
    fig, a, table, colors = parts
    for i, row in enumerate(table.itertuples(index=False)):
        a.errorbar(row.mean, i, xerr=0 if pd.isna(row.std) else row.std, fmt="o", capsize=3,
                   color=colors[row.model])
    a.set_xlabel(f"{metric}: mean ± std across resamples")
    _few_ticks(a.xaxis)
    _legend(a, colors)
    fig.suptitle("Stability across resamples")
    return fig


def per_group_heatmap(table: pd.DataFrame, metric: str, columns: str = "wflow_id") -> Figure | None:
    """Group x workflow (or split) grid of a metric; ``table`` has group, ``columns`` and value."""
    if table is None or table.empty:
        return None
    grid = table.pivot_table(index="group", columns=columns, values="value", aggfunc="mean")
    left = _label_width(pd.Series(grid.index, dtype=str))
    bottom = _label_width(pd.Series(grid.columns, dtype=str))
    fig, ax = _figure(left + 2.5 + 0.6 * grid.shape[1], bottom + 1.5 + 0.3 * grid.shape[0], left=left,
                      bottom=bottom)
    a = ax[0, 0]
    a.grid(False)
    values = grid.to_numpy(dtype=float)
    image = a.imshow(np.ma.masked_invalid(values), cmap="viridis_r" if lower_is_better(metric)
                     else "viridis", aspect="auto")
    _ticks(a, list(grid.columns), list(grid.index))
    _annotate(a, values)
    fig.colorbar(image, ax=a, label=metric)
    fig.suptitle(f"{metric} per group")
    return fig


def _annotate(ax: Axes, values: np.ndarray, limit: int = 400) -> None:
    """Write each cell's value on a heatmap (small grids only)."""
    if values.size > limit:
        return
    from matplotlib.patheffects import withStroke

    halo = [withStroke(linewidth=2, foreground="white")]
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7, path_effects=halo)


def coefficient_variation(coefs: pd.DataFrame, group_col: str, max_terms: int = 24) -> Figure | None:
    """Each coefficient's values across groups (points over a box), one panel per term on its
    own scale, so an intercept does not flatten the slopes."""
    frame = d.coefficients(coefs, group_col)
    if frame is None:
        return None
    terms = list(dict.fromkeys(frame["variable"]))[:max_terms]
    cols = min(len(terms), 6)
    rows = math.ceil(len(terms) / cols)
    fig, ax = _figure(max(4.0, 2.0 * cols + 1), 1.2 + 2.4 * rows, rows, cols, left=0.7, bottom=0.5)
    rng = np.random.default_rng(0)
    for a, term in zip(ax.flat, terms):
        values = frame.loc[frame["variable"] == term, "coefficient"].to_numpy(dtype=float)
        a.boxplot([values], showfliers=False, widths=0.5)
        a.scatter(1 + rng.uniform(-0.12, 0.12, len(values)), values, s=10, color=FITTED, alpha=0.6)
        a.set_xticks([])
        a.set_title(str(term)[:25], fontsize=9)
    for a in list(ax.flat)[len(terms):]:
        a.set_visible(False)
    fig.suptitle(f"Coefficients across {frame[group_col].nunique()} groups of {group_col}")
    return fig


# -- png twins of the interactive plots ------------------------------------------------------------
MAX_TWIN_GROUPS = 6


def forecast(outputs: pd.DataFrame, group_col: str | None = None,
             intervals: pd.DataFrame | None = None, title: str | None = None) -> Figure | None:
    """The forecast html plot as a png, readable offline: train actuals and fitted, test actuals
    and predictions, the prediction interval; one panel per group (the first few) when grouped."""
    if outputs is None or outputs.empty or not d.x_axis(outputs)[1]:
        return None
    groups: list[tuple[Any, pd.DataFrame]] = [(None, outputs)]
    shown = ""
    if group_col and group_col in outputs.columns and outputs[group_col].nunique() > 1:
        groups = list(outputs.groupby(group_col, sort=False))
        if len(groups) > MAX_TWIN_GROUPS:
            shown = f" (first {MAX_TWIN_GROUPS} of {len(groups)} groups; all in forecast.html)"
            groups = groups[:MAX_TWIN_GROUPS]
    fig, ax = _figure(10, 1.5 + 3.0 * len(groups), len(groups), 1)
    for a, (group, frame) in zip(ax[:, 0], groups):
        _forecast_lines(a, frame, intervals if group is None else None)
        if group is not None:
            a.set_title(f"{group_col}={group}")
    ax[0, 0].legend(frameon=False, fontsize=8, ncol=3)
    _few_ticks(*(a.yaxis for a in ax[:, 0]))
    fig.suptitle((title or "Forecast") + shown + d.thin_note(*(frame for _, frame in groups)))
    return fig


def _forecast_lines(ax: Axes, frame: pd.DataFrame, intervals: pd.DataFrame | None) -> None:
    x, is_date = d.x_axis(frame)
    split = (frame["split"].astype(str).to_numpy() if "split" in frame.columns
             else np.full(len(frame), "train"))
    for part, dash, label, color in (("train", "-", "fitted", FITTED),
                                     ("test", ":", "prediction", PALETTE[1])):
        mask = split == part
        if not mask.any():
            continue
        for column, name, line_color, style in (("actuals", f"{part} actuals", ACTUAL, dash),
                                                ("fitted", f"{part} {label}", color, "-")):
            if column in frame.columns:
                xs, ys = d.thin(x[mask], pd.to_numeric(frame[column], errors="coerce").to_numpy()[mask])
                ax.plot(xs, ys, lw=1.0, label=name, color=line_color, ls=style)
    if intervals is not None and {".pred_lower", ".pred_upper"}.issubset(intervals.columns):
        ix, _ = d.x_axis(intervals)
        xs, lower = d.thin(ix, pd.to_numeric(intervals[".pred_lower"], errors="coerce").to_numpy())
        _, upper = d.thin(ix, pd.to_numeric(intervals[".pred_upper"], errors="coerce").to_numpy())
        ax.fill_between(xs, lower, upper, color=PALETTE[1], alpha=0.2, label="prediction interval")
    _dates(ax, is_date)


def parallel_coordinates(summary: pd.DataFrame, params: Sequence[str], metric: str) -> Figure | None:
    """The parallel-coordinates html plot as a png: every candidate a line through its parameter
    values (each axis scaled to its own range) to its mean metric, coloured by that metric."""
    from matplotlib import colormaps

    column = f"{metric}_mean"
    params = [p for p in params if p in summary.columns]
    if not params or column not in summary.columns:
        return None
    axes = {p: d.numeric_param(summary, p) for p in params}
    axes[f"mean {metric}"] = pd.to_numeric(summary[column], errors="coerce")
    scaled = np.column_stack([_unit(v.to_numpy(dtype=float)) for v in axes.values()])
    values = axes[f"mean {metric}"].to_numpy(dtype=float)
    cmap = colormaps["viridis_r" if lower_is_better(metric) else "viridis"]
    spread = np.nanmax(values) - np.nanmin(values) if np.isfinite(values).any() else 0.0
    fig, ax = _figure(max(6.0, 2.0 * len(axes)), 5)
    a = ax[0, 0]
    for row, value in zip(scaled, values):
        share = 0.5 if not spread or not np.isfinite(value) else (value - np.nanmin(values)) / spread
        a.plot(range(len(axes)), row, color=cmap(share), lw=1.0, alpha=0.8)
    a.set_xticks(range(len(axes)), list(axes))
    a.set_yticks([0, 1], ["min", "max"])
    fig.suptitle(f"Candidates: parameters to {metric} (each axis from its min to its max)")
    return fig


def _unit(values: np.ndarray) -> np.ndarray:
    """Values scaled to 0..1 (0.5 when constant)."""
    low, high = np.nanmin(values), np.nanmax(values)
    if not np.isfinite(high - low) or high == low:
        return np.full(len(values), 0.5)
    return (values - low) / (high - low)
