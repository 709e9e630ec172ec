"""The plot gallery of the run layout contract (spec section 4).

Each plot is a function from DataFrames (the tables tidymlflow logs) to a figure; it knows no layer.
Layers ask for plots by name with :func:`log_plot`. matplotlib figures are drawn on the Agg canvas
without pyplot, so the user's current figure and open figures are never touched; the two
interactive plots are plotly html. matplotlib and plotly are imported on first use only.
"""

from __future__ import annotations

import warnings
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
        from tidymlflow.plots import interactive as module
    else:
        from tidymlflow.plots import static as module
    return getattr(module, name)(*args, **kwargs)


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


def log_plot(call: Any, writer: Any, name: str, *args: Any, **kwargs: Any) -> bool:
    """Draw plot ``name`` into ``writer``'s ``plots/`` folder when the configuration asks for it.
    A plot that fails is skipped with a note (raised in strict mode); it never stops the rest of
    the logging."""
    if name not in call.config.log_plots:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy/matplotlib chatter about odd data
            figure = draw(name, *args, **kwargs)
            if figure is None:
                return False
            ext = "html" if name in INTERACTIVE else "png"
            save(name, figure, writer.artifact_path(f"plots/{name}.{ext}"), call.config.plotly_js)
    except Exception as exc:
        from tidymlflow._state import strict

        if strict():
            raise
        call.info(f"plot {name!r} skipped: {type(exc).__name__}: {exc}")
        return False
    return True
