"""The plotly plots (html): ``forecast`` and ``parallel_coordinates``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tidymlflow._read.common import lower_is_better

if TYPE_CHECKING:
    from plotly.graph_objects import Figure
from tidymlflow.plots import data as d
from tidymlflow.plots.static import ACTUAL, FITTED, PALETTE

MAX_GROUPS = 50  # groups in a forecast's selector

_LAYOUT = {"template": "plotly_white", "height": 520, "margin": {"l": 60, "r": 30, "t": 60, "b": 50},
           "legend": {"orientation": "h", "y": -0.15}}


def _traces(frame: pd.DataFrame, intervals: pd.DataFrame | None, label: str = "") -> list[Any]:
    """Train actuals and fitted, test actuals and predictions, and the interval band."""
    import plotly.graph_objects as go

    traces = []
    suffix = f" ({label})" if label else ""
    x, _ = d.x_axis(frame)
    split = (frame["split"].astype(str).to_numpy() if "split" in frame.columns
             else np.full(len(frame), "train"))
    for part, actual_dash, fitted_name, color in (("train", None, "fitted", FITTED),
                                                  ("test", "dot", "prediction", PALETTE[1])):
        mask = split == part
        if not mask.any():
            continue
        for column, name, style in (("actuals", f"{part} actuals", {"color": ACTUAL, "dash": actual_dash}),
                                    ("fitted", f"{part} {fitted_name}", {"color": color})):
            if column in frame.columns:
                xs, ys = d.thin(x[mask], pd.to_numeric(frame[column], errors="coerce").to_numpy()[mask])
                traces.append(go.Scatter(x=xs, y=ys, mode="lines", name=name + suffix,
                                         line={"width": 1.2, **style}))
    if intervals is not None and {".pred_lower", ".pred_upper"}.issubset(intervals.columns):
        ix, _ = d.x_axis(intervals)
        band = {"mode": "lines", "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip"}
        xs, upper = d.thin(ix, pd.to_numeric(intervals[".pred_upper"], errors="coerce").to_numpy())
        _, lower = d.thin(ix, pd.to_numeric(intervals[".pred_lower"], errors="coerce").to_numpy())
        traces.append(go.Scatter(x=xs, y=upper, name="upper" + suffix, **band))
        traces.append(go.Scatter(x=xs, y=lower, name="prediction interval" + suffix,
                                 fill="tonexty", fillcolor="rgba(255,127,14,0.2)",
                                 **{**band, "showlegend": True}))
    return traces


def forecast(outputs: pd.DataFrame, group_col: str | None = None,
             intervals: pd.DataFrame | None = None, title: str | None = None) -> Figure | None:
    """Actuals, fitted values, test predictions and the prediction interval over time; one set
    of lines per group with a group selector for per-group fits."""
    import plotly.graph_objects as go

    if outputs is None or outputs.empty or not d.x_axis(outputs)[1]:
        return None
    groups, shown = [(None, outputs)], ""
    if group_col and group_col in outputs.columns and outputs[group_col].nunique() > 1:
        groups = list(outputs.groupby(group_col, sort=False))
        if len(groups) > MAX_GROUPS:  # keep the file small: the first groups only
            shown = f" (first {MAX_GROUPS} of {len(groups)} groups)"
            groups = groups[:MAX_GROUPS]
    fig = go.Figure()
    counts = []
    for group, frame in groups:
        traces = _traces(frame, intervals if group is None else None, "" if group is None else str(group))
        for trace in traces:
            trace.visible = group is None or group == groups[0][0]
            fig.add_trace(trace)
        counts.append(len(traces))
    fig.update_layout(title=(title or "Forecast") + shown + d.thin_note(*(frame for _, frame in groups)),
                      xaxis_title="date", yaxis_title="value", **_LAYOUT)
    if len(groups) > 1:
        fig.update_layout(updatemenus=[_selector(groups, counts, group_col)])
    return fig


def _selector(groups: list[Any], counts: list[int], group_col: str | None) -> dict[str, Any]:
    buttons, start, total = [], 0, sum(counts)
    for (group, _), n in zip(groups, counts):
        visible = [start <= i < start + n for i in range(total)]
        buttons.append({"label": str(group), "method": "update", "args": [{"visible": visible}]})
        start += n
    return {"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right", "y": 1.12,
            "showactive": True, "active": 0, "pad": {"r": 4}, "name": group_col}


def parallel_coordinates(summary: pd.DataFrame, params: Sequence[str], metric: str) -> Figure | None:
    """Each candidate as a line through its parameter values to its mean metric."""
    import plotly.graph_objects as go

    column = f"{metric}_mean"
    params = [p for p in params if p in summary.columns]
    if not params or column not in summary.columns:
        return None
    dims = [_dimension(summary[p], p) for p in params]
    values = pd.to_numeric(summary[column], errors="coerce")
    dims.append({"label": f"mean {metric}", "values": values.tolist()})
    scale = "Viridis_r" if lower_is_better(metric) else "Viridis"
    fig = go.Figure(go.Parcoords(dimensions=dims, line={"color": values.fillna(values.max()).tolist(),
                                                         "colorscale": scale, "showscale": True}))
    fig.update_layout(title=f"Candidates: parameters to {metric}", template="plotly_white", height=480)
    return fig


def _dimension(values: pd.Series, label: str) -> dict[str, Any]:
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return {"label": label, "values": numbers.tolist()}
    levels = list(dict.fromkeys(values.astype(str)))
    codes = values.astype(str).map({v: i for i, v in enumerate(levels)})
    return {"label": label, "values": codes.tolist(), "tickvals": list(range(len(levels))),
            "ticktext": levels}
