"""The plot gallery (docs/contract.md, "Plots").

Each plot is a function from DataFrames (the tables tidymlflow logs) to a figure; it knows no layer,
no run and no writer. matplotlib figures are drawn on the Agg canvas without pyplot, so the user's
current figure and open figures are never touched; the two interactive plots are plotly html.
matplotlib and plotly are imported on first use only.
"""

from __future__ import annotations

from typing import Any

PLOT_NAMES: frozenset[str] = frozenset({
    "residual_diagnostics", "forecast", "decomposition", "pca_scree", "feature_correlation",
    "cv_folds", "parameter_sensitivity", "parallel_coordinates", "workflow_comparison",
    "cv_stability", "per_group_heatmap", "coefficient_variation",
})

#: Plots drawn with plotly and saved as html; every other plot is a matplotlib png.
INTERACTIVE: frozenset[str] = frozenset({"forecast", "parallel_coordinates"})


def draw(name: str, *args: Any, **kwargs: Any) -> Any:
    """The figure for plot ``name`` (None when its input has nothing to show)."""
    if name not in PLOT_NAMES:
        raise ValueError(f"unknown plot {name!r}; valid names are {sorted(PLOT_NAMES)}")
    if name in INTERACTIVE:
        from tidymlflow.plots import interactive

        return getattr(interactive, name)(*args, **kwargs)
    from tidymlflow.plots import static

    return getattr(static, name)(*args, **kwargs)


def save(name: str, figure: Any, path: str, plotly_js: str = "cdn") -> None:
    """Write ``figure`` to ``path`` (png or html) and release it."""
    if name in INTERACTIVE:
        figure.write_html(path, include_plotlyjs="cdn" if plotly_js == "cdn" else True,
                          full_html=True, auto_open=False)
        return
    try:
        figure.savefig(path, format="png")
    finally:
        figure.clear()

