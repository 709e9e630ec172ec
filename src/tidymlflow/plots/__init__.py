"""The plot gallery (docs/contract.md, "Plots").

Each plot is a function from DataFrames (the tables tidymlflow logs) to a figure; it knows no layer,
no run and no writer. matplotlib figures are drawn on the Agg canvas without pyplot, so the user's
current figure and open figures are never touched; the two interactive plots are plotly html.
matplotlib and plotly are imported on first use only.
"""

from __future__ import annotations

import html
from typing import Any

from tidymlflow._jobs.names import INTERACTIVE, PLOT_NAMES

__all__ = ["INTERACTIVE", "PLOT_NAMES", "draw", "draw_png", "save"]


def draw(name: str, *args: Any, **kwargs: Any) -> Any:
    """The figure for plot ``name`` (None when its input has nothing to show): plotly for the
    interactive plots, matplotlib for the rest."""
    if name not in PLOT_NAMES:
        raise ValueError(f"unknown plot {name!r}; valid names are {sorted(PLOT_NAMES)}")
    if name in INTERACTIVE:
        from tidymlflow.plots import interactive

        return getattr(interactive, name)(*args, **kwargs)
    return draw_png(name, *args, **kwargs)


#: The plots that can be drawn on the figure this thread drew the last one of their kind on
#: (``draw_png(..., reuse=True)``): the same image in about half the time.
REUSABLE = frozenset({"residual_diagnostics"})


def draw_png(name: str, *args: Any, reuse: bool = False, **kwargs: Any) -> Any:
    """The matplotlib figure for plot ``name``: every plot has one, the interactive ones as their
    png twin, readable where the html cannot be shown. ``reuse`` (the writer, which saves each
    figure at once): a plot of :data:`REUSABLE` is drawn on the figure of the last one, which
    that figure's next use changes."""
    if name not in PLOT_NAMES:
        raise ValueError(f"unknown plot {name!r}; valid names are {sorted(PLOT_NAMES)}")
    if reuse and name in REUSABLE:
        kwargs["reuse"] = True
    from matplotlib import rc_context

    from tidymlflow.plots import static

    # titles at a fixed height: no axes here has ticks above it, and matplotlib's search for a
    # title's place measures every tick label (a tenth of a figure's drawing time)
    with rc_context({"axes.titley": 1.0}):
        return getattr(static, name)(*args, **kwargs)


#: Shown in an interactive plot's page until plotly.js has loaded; a page that cannot reach the
#: CDN (no internet) shows it instead of a blank page.
OFFLINE_MESSAGE = ("plotly.js could not be loaded, so this interactive plot cannot be drawn here (it "
                   "loads plotly.js from the internet). The same plot is in {png}; log with "
                   "plotly_js=\"embed\" for html that works offline.")


def save(figure: Any, path: str, plotly_js: str = "cdn") -> None:
    """Write ``figure`` to ``path`` (html for plotly, png for matplotlib). The figure is left to
    the garbage collector: clearing it here took a tenth of a png's time, on the path a script's
    exit waits on."""
    if path.endswith(".html"):
        _save_html(figure, path, plotly_js)
        return
    # zlib level 1: a tenth larger file, a twentieth faster plot
    figure.savefig(path, format="png", pil_kwargs={"compress_level": 1})


def _save_html(figure: Any, path: str, plotly_js: str) -> None:
    """plotly html with a visible message that its script hides once plotly.js is there."""
    page = figure.to_html(include_plotlyjs="cdn" if plotly_js == "cdn" else True, full_html=True)
    png = html.escape(path.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".png")
    note = ('<div id="tidymlflow-offline" style="font:14px sans-serif;color:#555;padding:12px;'
            f'border:1px solid #ccc;margin:8px">{html.escape(OFFLINE_MESSAGE.format(png=png))}</div>')
    hide = ('<script>if (window.Plotly) {document.getElementById("tidymlflow-offline")'
            '.style.display = "none";}</script>')
    page = page.replace("<body>", "<body>" + note, 1).replace("</body>", hide + "</body>", 1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
