"""Logging a plot into a run: draw it by name from DataFrames, save it into the run's ``plots/``
folder, and turn a failure into a note (raised in strict mode)."""

from __future__ import annotations

from typing import Any

from tidymlflow import _state, plots
from tidymlflow._writer import RunWriter
from tidymlflow.layer import Call


class PlotError(RuntimeError):
    """A plot could not be drawn or saved; the rest of the call's logging went on."""


def log_plot(call: Call, writer: RunWriter, name: str, *args: Any, **kwargs: Any) -> bool:
    """Draw plot ``name`` into ``writer``'s ``plots/`` folder when the configuration asks for it:
    a png, and for the interactive plots also the html (the png is what shows offline).
    A plot that fails is skipped and counted among the call's logging errors (one warning; raised
    at once in strict mode); it never stops the rest of the logging. Returns whether a file was
    written."""
    if name not in call.config.log_plots:
        return False
    try:  # numpy/matplotlib chatter about odd data is silenced by the engine (_safety.quiet)
        figure = plots.draw_png(name, *args, **kwargs)
        if figure is None:
            return False
        plots.save(figure, writer.artifact_path(f"plots/{name}.png"))
        if name in plots.INTERACTIVE:  # the html, with the png as its offline twin
            plots.save(plots.draw(name, *args, **kwargs), writer.artifact_path(f"plots/{name}.html"),
                       call.config.plotly_js)
    except Exception as exc:
        if _state.strict():
            raise
        call.errors.append(PlotError(f"plot {name!r} skipped: {type(exc).__name__}: {exc}"))
        return False
    return True
