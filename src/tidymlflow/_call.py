"""One outermost patched call: its arguments, the runs it logs to, and its logging errors."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from tidymlflow import _runs, _state
from tidymlflow.errors import TidyMLflowWarning

if TYPE_CHECKING:
    from tidymlflow._config import AutologConfig
    from tidymlflow._writer import RunWriter


class Call:
    """The handler's view of a patched call (arguments, configuration, runs)."""

    def __init__(self, layer: str, name: str, wrapped: Callable, instance: Any, args: tuple,
                 kwargs: dict, config: AutologConfig):
        self.layer, self.name, self.config = layer, name, config
        self.wrapped, self.instance, self.args, self.kwargs = wrapped, instance, args, kwargs
        self.duration: Optional[float] = None
        self.errors: list[BaseException] = []
        self._runs: list[tuple[RunWriter, bool]] = []  # (writer, tidymlflow ends it)
        self.observed: list[tuple[str, Any, Any]] = []  # (call, instance, result) of nested calls
        self._observed_keys: set[tuple[str, int]] = set()
        self._client = None
        self._base_tags: Optional[dict] = None

    # -- arguments ----------------------------------------------------------------------------
    def argument(self, name: str, default: Any = None) -> Any:
        """The value the caller passed for ``name`` (positionally or by keyword), else default."""
        if name in self.kwargs:
            return self.kwargs[name]
        params = _parameter_names(self.wrapped)
        if name in params and params.index(name) < len(self.args):
            return self.args[params.index(name)]
        return default

    # -- runs ---------------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient()
        return self._client

    def start_run(self, name: str, *, parent: Optional[RunWriter] = None,
                  hierarchical: bool = False, tags: Optional[dict] = None) -> RunWriter:
        """Open the run for this call (or a child of ``parent``); the engine ends it."""
        if self._base_tags is None:
            self._base_tags = _runs.base_tags(self.layer, self.name, self.config.extra_tags)
        writer, owned = _runs.open_run(self.client, name, self._base_tags, parent=parent,
                                       hierarchical=hierarchical)
        if tags:
            writer.set_tags(tags)
        self._runs.append((writer, owned))
        return writer

    def resume_run(self, run_id: str) -> RunWriter:
        """A writer for a run logged earlier (e.g. the fit that ``evaluate()`` belongs to)."""
        from tidymlflow._writer import RunWriter

        writer = RunWriter(self.client, run_id)
        self._runs.append((writer, False))
        return writer

    def finish(self, status: str) -> None:
        """Flush every writer (children first) and end the runs this call opened."""
        skipped = 0
        for writer, owned in reversed(self._runs):
            skipped += writer.skipped_metrics
            try:
                writer.flush()
            except Exception as exc:  # keep going: the remaining runs still get ended
                self.errors.append(exc)
            if owned:
                try:
                    self.client.set_terminated(writer.run_id, status)
                except Exception as exc:
                    self.errors.append(exc)
        self._runs.clear()
        if skipped:
            self.info(f"{skipped} non-finite or non-numeric metric value(s) were not logged")

    def observe(self, name: str, instance: Any, result: Any) -> None:
        """Record a nested call's result: the first per (call, instance) only, so that per-fold
        calls inside a long tuning run do not keep their results alive."""
        key = (name, id(instance))
        if key not in self._observed_keys:
            self._observed_keys.add(key)
            self.observed.append((name, instance, result))

    def contribute(self, writer: RunWriter, result: Any, children: Optional[dict] = None) -> None:
        """Let every enabled layer add its part of ``result`` (e.g. a fit's recipe) to its run(s)."""
        from tidymlflow._engine import discover_layers

        for name, layer in discover_layers().items():
            if layer.contribute is not None and self.config.layer_enabled(name):
                try:
                    layer.contribute(self, writer, result, children or {})
                except Exception as exc:  # one layer's part failing leaves the rest logged
                    self.errors.append(exc)

    # -- messages -----------------------------------------------------------------------------
    def info(self, message: str) -> None:
        if not self.config.silent:
            warnings.warn(f"tidymlflow: {self.name}: {message}", TidyMLflowWarning, stacklevel=2)

    def report_errors(self, raise_in_strict: bool = True) -> None:
        """Turn the logging errors of this call into one warning (or raise in strict mode)."""
        if not self.errors:
            return
        first = self.errors[0]
        if raise_in_strict and _state.strict():
            raise first
        if not self.config.silent:
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            warnings.warn(f"tidymlflow: logging {self.name} failed: {type(first).__name__}: "
                          f"{first}{more}. The call's result is unaffected.",
                          TidyMLflowWarning, stacklevel=4)


_PARAMS: dict[Any, list[str]] = {}


def _parameter_names(fn: Callable) -> list[str]:
    """Positional parameter names of ``fn``, without ``self`` for a bound method (cached)."""
    func = getattr(fn, "__func__", fn)
    names = _PARAMS.get(func)
    if names is None:
        names = _PARAMS[func] = list(inspect.signature(func).parameters)
    return names[1:] if func is not fn else names
