"""The public API for writing a layer.

A layer declares the calls it patches (:class:`Patch`) and how each is logged (a :data:`Handler`
receiving a :class:`Call`) in a :class:`Layer`, registered in the ``tidymlflow.layers``
entry-point group. A handler records into runs through :class:`Recorder` (``call.start_run``);
the helpers below are what the built-in layers use, and all they import from tidymlflow: a fit's
handler and its tables, resampling and tuning runs, the ranked-comparison skeleton, plots into
runs, and the registry from fitted objects to the runs that logged them. Readers of the
library's objects live in :mod:`tidymlflow._read` and are re-exported here as ``readers``.
"""

from __future__ import annotations

from tidymlflow import _read as readers
from tidymlflow._engine.declare import Layer, Observer, Patch
from tidymlflow._log import comparison, fits
from tidymlflow._log import resamples as resampling
from tidymlflow._log.plots import log_plot
from tidymlflow._recording.call import ERROR_TAG, MAX_OBSERVED, Call, Contributor, Handler, WriterError
from tidymlflow._recording.recorder import Recorder
from tidymlflow._recording.runs import LoggedRun, now_ms, registry

__all__ = ["ERROR_TAG", "MAX_OBSERVED", "Call", "Contributor", "Handler", "Layer", "LoggedRun", "Observer",
           "Patch", "Recorder", "WriterError", "comparison", "fits", "log_plot", "now_ms", "readers",
           "registry", "resampling"]
