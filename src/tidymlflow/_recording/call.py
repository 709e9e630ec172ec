"""A call being logged: the handler's view of one outermost patched call (:class:`Call`), the
runs it opens, and its hand-over to the writer at the end. The user's side of the boundary."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tidymlflow._jobs import handover
from tidymlflow._jobs.records import FORMAT, Manifest
from tidymlflow._jobs.stage import Stage
from tidymlflow._recording import habits as _habits
from tidymlflow._recording import provenance
from tidymlflow._recording import runs as _runs
from tidymlflow._recording.recorder import Recorder
from tidymlflow._recording.runs import Target
from tidymlflow._runtime import safety as _safety
from tidymlflow._runtime import state as _state
from tidymlflow._runtime.config import AutologConfig
from tidymlflow.errors import TidyMLflowError

#: The tag that says why a run FAILED: the user's exception, ``<type>: <message>``.
ERROR_TAG = "tidymlflow.error"

#: A handler runs around the original call: the code before its one ``yield`` runs before the
#: call (start runs here), ``yield`` returns the call's result, the code after logs it. A handler
#: yields exactly once; to log nothing it yields and returns. The engine flushes and ends every
#: run the handler started.
Handler = Callable[["Call"], Generator[None, Any, None]]

#: Adds a layer's view of another layer's result to that result's run(s):
#: ``contribute(call, writer, result, children)`` where ``children`` maps group -> child writer
#: for per-group results (empty otherwise).
Contributor = Callable[["Call", Recorder, Any, Mapping[Any, Recorder]], None]


class Contributing(Protocol):
    """A loaded layer as a call sees it: what it adds to another layer's runs."""

    @property
    def contribute(self) -> Contributor | None: ...


#: Jobs not yet written from which the writer counts as behind (:meth:`Call.writer_behind`): a
#: fit's own job and its evaluation's are not a backlog, a loop's third is.
BEHIND = 2

#: The most nested calls one call records (see :meth:`Call.observe`).
MAX_OBSERVED = 512


class WriterError(TidyMLflowError):
    """A part of a call's job the writer could not log (its message names the original error)."""


@dataclass
class Call:
    """The handler's view of one outermost patched call: its arguments, the configuration, the
    runs it opens and the logging errors it collects."""

    layer: str
    name: str
    wrapped: Callable[..., Any]
    instance: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    config: AutologConfig
    layers: Mapping[str, Contributing] = field(default_factory=dict)
    duration: float | None = None
    errors: list[BaseException] = field(default_factory=list)
    observed: list[tuple[str, Any, Any]] = field(default_factory=list)
    _runs: list[tuple[Recorder, bool]] = field(default_factory=list)  # (writer, tidymlflow ends it)
    _observed_keys: set[tuple[str, int]] = field(default_factory=set)
    _target: Target | None = None
    _stage: Stage | None = None
    _base_tags: dict[str, str] | None = None

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
    def target(self) -> Target:
        """Where this call's runs go: tracking URI, experiment and the user's run, as of its start."""
        if self._target is None:
            self._target = _runs.current_target()
        return self._target

    @property
    def stage(self) -> Stage:
        """The call's job, staged in the journal of its tracking URI."""
        if self._stage is None:
            self._stage = Stage(self.target.journal)
        return self._stage

    def start_run(self, name: str, *, parent: Recorder | None = None, hierarchical: bool = False,
                  tags: Mapping[str, Any] | None = None, start_time: int | None = None) -> Recorder:
        """Open the run for this call (or a child of ``parent``); the engine ends it.
        ``start_time`` (ms) orders runs in the MLflow UI, whose default sort is newest first."""
        if self._base_tags is None:
            self._base_tags = _runs.base_tags(self.layer, self.name, self.config.extra_tags)
        writer, owned = _runs.open_run(self.stage, len(self._runs), self.target, name, self._base_tags,
                                       parent=parent, hierarchical=hierarchical, start_time=start_time)
        if tags:
            writer.set_tags(tags)
        self._runs.append((writer, owned))
        return writer

    def resume_run(self, handle: str) -> Recorder:
        """A writer for a run logged earlier (e.g. the fit that ``evaluate()`` belongs to)."""
        writer = Recorder(self.stage, len(self._runs), handle, kind="existing")
        self._runs.append((writer, False))
        return writer

    def finish(self, status: str) -> None:
        """Hand the call's runs to the writer, ending the ones this call opened with ``status``."""
        if not self._runs:
            return
        skipped = sum(writer.skipped_metrics for writer, _ in self._runs)
        end = _runs.now_ms()
        for writer, owned in self._runs:
            if owned:
                writer.status = status
                writer.end_time = writer.end_time or end
        manifest = Manifest(FORMAT, self.name, self.layer, tuple(sys.argv[:1]), self.target.record(),
                            tuple(w.record() for w, _ in self._runs), provenance.tags())
        handles = [w.handle for w, _ in self._runs]
        created = next((w.handle for w, owned in self._runs if owned), None)
        self._runs.clear()
        try:
            job = self.stage.commit(manifest)
        except Exception as exc:  # the journal's disk is full or gone: nothing can be kept
            self.stage.discard()
            self.errors.append(exc)
            return
        self._stage = None
        if created is not None and self.target.user_run is None:  # a top-level run of its own
            _habits.created(created)
        self.errors.extend(WriterError(e) for e in handover.get().submit(job, handles, self.name))
        if skipped:
            self.info(f"{skipped} non-finite or non-numeric metric value(s) were not logged")

    def remember(self, result: Any) -> None:
        """``tidymlflow.run_id(result)``: the call's first run, unless the handler registered
        the result itself (fits, with their groups)."""
        if self._runs and result is not None and _runs.registry.lookup(result) is None:
            _runs.registry.register(result, _runs.LoggedRun(self._runs[0][0].handle))

    def writer_behind(self) -> bool:
        """The writer is behind this process by :data:`BEHIND` jobs or more (a loop of calls): the
        larger part of logging a fit is then left to it (see
        :func:`tidymlflow._log.fits.hand_over`); otherwise it is done here, beside the writer."""
        return handover.get().outstanding() >= BEHIND

    def abandon(self) -> None:
        """Drop a job that was interrupted before it was handed over."""
        if self._stage is not None:
            self._stage.discard()
            self._stage = None
        self._runs.clear()

    def observe(self, name: str, instance: Any, record: Callable[[], Any]) -> None:
        """Record a nested call (``record()`` makes what is kept): the first per (call,
        instance) only, and at most :data:`MAX_OBSERVED` per call, so that per-fold calls inside
        a long tuning run do not keep their results alive."""
        key = (name, id(instance))
        if key in self._observed_keys or len(self.observed) >= MAX_OBSERVED:
            return
        self._observed_keys.add(key)
        try:
            kept = record()
        except Exception:  # a reader that cannot read this object: nothing is kept of it
            return
        self.observed.append((name, instance, kept))

    def contribute(self, writer: Recorder, result: Any,
                   children: Mapping[Any, Recorder] | None = None) -> None:
        """Let every enabled layer add its part of ``result`` (e.g. a fit's recipe) to its run(s)."""
        for name, layer in self.layers.items():
            if layer.contribute is not None and self.config.layer_enabled(name):
                try:
                    layer.contribute(self, writer, result, children or {})
                except Exception as exc:  # one layer's part failing leaves the rest logged
                    self.errors.append(exc)

    # -- messages -----------------------------------------------------------------------------
    def info(self, message: str) -> None:
        """A note about what was (not) logged and why: expected behaviour, so it goes to the
        ``tidymlflow`` logger (INFO), not to warnings."""
        if not self.config.silent:
            _safety.logger.info("tidymlflow: %s: %s", self.name, message)

    def fail(self, exc: BaseException) -> None:
        """The user's call raised: say why on the call's run (tag ``tidymlflow.error``)."""
        if self._runs:
            self._runs[0][0].set_tags({ERROR_TAG: f"{type(exc).__name__}: {exc}"})

    def report_errors(self, raise_in_strict: bool = True) -> None:
        """Turn the logging errors of this call into one warning (or raise in strict mode)."""
        if not self.errors:
            return
        first = self.errors[0]
        if raise_in_strict and _state.strict():
            raise first
        if not self.config.silent:
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            what = str(first) if isinstance(first, WriterError) else f"{type(first).__name__}: {first}"
            _safety.warn(f"tidymlflow: logging {self.name} failed: {what}{more}. The call's result is "
                         "unaffected.", stacklevel=4)


_PARAMS: dict[Any, list[str]] = {}


def _parameter_names(fn: Callable[..., Any]) -> list[str]:
    """Positional parameter names of ``fn``, without ``self`` for a bound method (cached)."""
    func = getattr(fn, "__func__", fn)
    names = _PARAMS.get(func)
    if names is None:
        names = _PARAMS[func] = list(inspect.signature(func).parameters)
    return names[1:] if func is not fn else names
