"""The public API for writing a layer: the calls it patches (:class:`Patch`), how each is logged
(a handler receiving a :class:`Call`), and the layer itself (:class:`Layer`). Layers are
registered in the ``tidymlflow.layers`` entry-point group; the engine imports no layer and no
layer's target."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tidymlflow import _habits, _runs, _safety, _service, _state
from tidymlflow._config import AutologConfig
from tidymlflow._job import FORMAT, Stage
from tidymlflow._runs import Target
from tidymlflow._writer import RunWriter
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
Contributor = Callable[["Call", RunWriter, Any, Mapping[Any, RunWriter]], None]


_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_TARGET = re.compile(r"[A-Za-z_*?\[\]][\w*?\[\]]*(\.[A-Za-z_]\w*)?")

#: What an observer patch keeps of a nested call: ``observe(instance, args, kwargs, result)``
#: returns the record (kept small: it lives until the outer call ends).
Observer = Callable[[Any, tuple[Any, ...], dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Patch:
    """One patched callable: ``target`` (``"Class.method"`` or ``"function"``) in ``module``.

    ``target`` is also the ``tidymlflow.call`` tag. Its class part may be a pattern
    (``"Step*.prep"``, :mod:`fnmatch` syntax): every class of ``module`` whose name matches and
    that has the method is patched, each under its own name (``StepLog.prep``).

    What the patch does with a call:

    * ``handler`` set: an outermost call is logged by it; the calls nested inside stay quiet.
    * no ``handler`` and no ``observe``: a guard: the call owns logging, so nothing nested
      inside it logs (and it logs nothing itself).
    * ``observe`` set: the result of this call is recorded when it runs nested inside a logged
      call of the same thread (``Call.observed``; the first per instance), so the outer call
      can log what the library did without doing it again. ``True`` keeps the result itself; an
      :data:`Observer` keeps what it returns. Without a ``handler``, an observer patch is inert
      outside a logged call (no guard, nothing recorded).

    ``rebind`` re-points references to a free function that other modules (or the user)
    imported by name before the patch. tidymlflow never answers a call itself: the original
    always runs, once, and its result is returned unchanged.
    """

    module: str
    target: str
    handler: Handler | None = None
    rebind: bool = False
    observe: bool | Observer = False

    def __post_init__(self) -> None:
        """A patch is checked when its layer is loaded: a clear error, never a silent no-op."""
        where = f"tidymlflow: Patch({self.module!r}, {self.target!r})"
        if not _MODULE.fullmatch(str(self.module)):
            raise ValueError(f"{where}: module must be a dotted module name")
        if not _TARGET.fullmatch(str(self.target)):
            raise ValueError(f"{where}: target must be 'function' or 'Class.method' (the class part may be "
                             "a pattern such as 'Step*.prep')")
        if self.is_pattern and "." not in self.target:
            raise ValueError(f"{where}: a pattern names classes: give the method too ('Step*.prep')")
        if self.handler is not None and not inspect.isgeneratorfunction(self.handler):
            raise TypeError(f"{where}: handler must be a generator function that yields once "
                            f"(got {self.handler!r})")
        if not isinstance(self.observe, bool) and not callable(self.observe):
            raise TypeError(f"{where}: observe must be True, False or a function (got {self.observe!r})")
        if self.rebind and "." in self.target:
            raise ValueError(f"{where}: rebind applies to free functions, not to methods")

    @property
    def is_pattern(self) -> bool:
        """True when the class part of ``target`` is a pattern matching several classes."""
        return any(ch in self.target for ch in "*?[")

    @property
    def observer_only(self) -> bool:
        """Records nested calls and does nothing else (no run, no guard)."""
        return self.handler is None and self.observe is not False

    def record(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
        """What ``Call.observed`` keeps of one nested call."""
        if callable(self.observe):
            return self.observe(instance, args, kwargs, result)
        return result


@dataclass(frozen=True)
class Layer:
    """A named group of patches, switched on and off together by its ``autolog()`` flag.

    ``supported`` is the py-tidymodels version range (a PEP 440 specifier) the layer was
    verified against; outside it the layer still patches, with one warning."""

    name: str
    patches: tuple[Patch, ...]
    contribute: Contributor | None = None
    supported: str = ">=0.1.0,<0.2"

    def __post_init__(self) -> None:
        """A layer is checked when it is loaded (see :meth:`Patch.__post_init__` for each patch)."""
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        where = f"tidymlflow: Layer({self.name!r})"
        bad = [p for p in self.patches if not isinstance(p, Patch)]
        if bad:
            raise TypeError(f"{where}: patches must be Patch objects, got {bad[0]!r}")
        if self.contribute is not None and not callable(self.contribute):
            raise TypeError(f"{where}: contribute must be a function or None")
        try:
            SpecifierSet(self.supported)
        except InvalidSpecifier:
            raise ValueError(f"{where}: supported must be a version range such as '>=0.1,<0.2', "
                             f"got {self.supported!r}") from None


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
    layers: Mapping[str, Layer] = field(default_factory=dict)
    duration: float | None = None
    errors: list[BaseException] = field(default_factory=list)
    observed: list[tuple[str, Any, Any]] = field(default_factory=list)
    _runs: list[tuple[RunWriter, bool]] = field(default_factory=list)  # (writer, tidymlflow ends it)
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

    def start_run(self, name: str, *, parent: RunWriter | None = None, hierarchical: bool = False,
                  tags: Mapping[str, Any] | None = None, start_time: int | None = None) -> RunWriter:
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

    def resume_run(self, handle: str) -> RunWriter:
        """A writer for a run logged earlier (e.g. the fit that ``evaluate()`` belongs to)."""
        writer = RunWriter(self.stage, len(self._runs), handle, kind="existing")
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
        manifest = {"format": FORMAT, "call": self.name, "layer": self.layer, "argv": sys.argv[:1],
                    "target": self.target.manifest(), "runs": [w.record() for w, _ in self._runs]}
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
        self.errors.extend(WriterError(e) for e in _service.get().submit(job, handles))
        if skipped:
            self.info(f"{skipped} non-finite or non-numeric metric value(s) were not logged")

    def remember(self, result: Any) -> None:
        """``tidymlflow.run_id(result)``: the call's first run, unless the handler registered
        the result itself (fits, with their groups)."""
        if self._runs and result is not None and _runs.registry.lookup(result) is None:
            _runs.registry.register(result, _runs.LoggedRun(self._runs[0][0].handle))

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

    def contribute(self, writer: RunWriter, result: Any,
                   children: Mapping[Any, RunWriter] | None = None) -> None:
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


__all__ = ["Call", "Contributor", "Handler", "Layer", "Patch"]
