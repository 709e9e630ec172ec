"""Plot sampling in a loop of fits (``autolog(plot_every_n_fits=...)``).

A backtest, a per-series loop or a simulation study fits the same model hundreds of times in one
process. Every run keeps its params, metrics, tables, datasets and model, but drawing each run's
plots (a residual png costs the writer about as much as everything else in the run) would leave
the writer minutes behind the loop. So the plots of a model are drawn for its first
:data:`PLOTTED_FIRST` fits in a process and then for every ``n``-th; the runs in between carry
the tag :data:`SKIPPED_TAG` saying why. The rule is deterministic (a count, not the writer's
pace): the same script draws the same plots every time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

#: Fits of one model in a process that always get their plots.
PLOTTED_FIRST = 10
#: The tag on a run whose plots the rule skipped.
SKIPPED_TAG = "tidymlflow.plots_skipped"


class PlotSampler:
    """Counts the fits of each model (its run name and params) in this process since
    ``autolog()``."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Count from zero: ``autolog()`` was called (again)."""
        with self._lock:
            self._counts.clear()

    def skipped(self, name: str, params: Mapping[str, Any], every: int) -> str | None:
        """Count a fit of the model ``name`` with ``params``; the reason its plots are skipped
        (the value of :data:`SKIPPED_TAG`), or None when they are drawn."""
        key = name + "\0" + json.dumps({str(k): str(v) for k, v in params.items()}, sort_keys=True)
        with self._lock:
            count = self._counts[key] = self._counts.get(key, 0) + 1
        if every <= 1 or count <= PLOTTED_FIRST or count % every == 0:
            return None
        return (f"fit {count} of this model in this process: its plots are drawn for the first "
                f"{PLOTTED_FIRST} fits and every {every}th after (autolog(plot_every_n_fits={every}); "
                "1 draws them all)")


sampler = PlotSampler()
