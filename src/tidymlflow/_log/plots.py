"""Logging a plot into a run: its name and input DataFrames go to the writer, which draws it."""

from __future__ import annotations

from typing import Any, Protocol

from tidymlflow._recording.recorder import Recorder
from tidymlflow._runtime.config import AutologConfig


class Logging(Protocol):
    """What logging a result needs of its call: the configuration and where its errors go (a
    :class:`~tidymlflow.layer.Call`, or a fit's outputs worked out where it was handed over)."""

    @property
    def config(self) -> AutologConfig: ...

    @property
    def errors(self) -> list[BaseException]: ...


def log_plot(call: Logging, writer: Recorder, name: str, *args: Any, **kwargs: Any) -> bool:
    """Plot ``name`` of these inputs into ``writer``'s ``plots/`` folder when the configuration
    asks for it: the writer draws a png, and for the interactive plots also the html (the png is
    what shows offline). A plot that fails is skipped and counted among the call's logging errors
    (one warning; raised in strict mode); it never stops the rest of the logging. Returns whether
    the plot was handed over."""
    if name not in call.config.log_plots:
        return False
    try:
        writer.log_plot(name, args, kwargs, call.config.plotly_js)
    except Exception as exc:
        call.errors.append(exc)
        return False
    return True
