"""The autolog engine: layer discovery, post-import patching, the safe wrapper, unpatching.
It knows no layer and imports no py-tidymodels module."""

from __future__ import annotations

import dataclasses
import fnmatch
import gc
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Generator
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

import wrapt

from tidymlflow._engine.declare import Layer, Patch
from tidymlflow._jobs import handover
from tidymlflow._recording.call import Call, Handler
from tidymlflow._recording.runs import py_tidymodels_version, user_run
from tidymlflow._runtime import imports as _imports
from tidymlflow._runtime import safety as _safety
from tidymlflow._runtime import state as _state
from tidymlflow._runtime.config import AutologConfig
from tidymlflow.errors import TidyMLflowError, TidyMLflowWarning

ENTRY_POINT_GROUP = "tidymlflow.layers"

@dataclass
class _Installed:
    module: ModuleType
    target: str
    wrapper: Any
    original: Any
    rebind: bool = False  # references bound elsewhere were re-pointed to the wrapper


_lock = threading.RLock()
_layers: dict[str, Layer] | None = None
_patches_by_module: dict[str, list[tuple[str, Patch]]] = {}
_hooked: set[str] = set()
_installed: dict[tuple[str, str], _Installed] = {}
_version_checked: set[str] = set()
_stuck: set[tuple[str, str]] = set()  # patches another library wrapped over; reported once
_original_codes: dict[int, str] = {}  # id of the code of every patched original -> its name
_unpatched_told: set[str] = set()


def layer_names() -> set[str]:
    """The names registered in the ``tidymlflow.layers`` entry-point group, without loading their
    layers (which import pandas: ``autolog()`` starts the writer first)."""
    if _layers is not None:
        return set(_layers)
    return {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def discover_layers() -> dict[str, Layer]:
    """Layers registered in the ``tidymlflow.layers`` entry-point group (loaded once)."""
    global _layers
    if _layers is None:
        found: dict[str, Layer] = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                layer = ep.load()
            except Exception as exc:  # a broken plugin must not break autolog()
                warnings.warn(f"tidymlflow: layer '{ep.name}' failed to load: {exc}",
                              TidyMLflowWarning, stacklevel=3)
                continue
            found[ep.name] = layer
        _layers = found
    return _layers


def activate(config: AutologConfig) -> None:
    """Make ``config`` active and patch every registered layer's modules (now or on import)."""
    with _lock:
        _state.config = config
        _patches_by_module.clear()
        for layer_name, layer in discover_layers().items():
            for patch in layer.patches:
                _patches_by_module.setdefault(patch.module, []).append((layer_name, patch))
        _state.library_packages = frozenset(name.partition(".")[0] for name in _patches_by_module)
        later = [m for m in _patches_by_module if m not in sys.modules]
        for name in [m for m in _patches_by_module if m in sys.modules]:  # imported before autolog():
            _install_module(sys.modules[name])  # re-point what others bound
        _imports.on_import(later, _install_imported, _hooked)


def deactivate() -> None:
    """Remove every patch it can and restore the original objects everywhere they were bound.
    A patch that another library wrapped after us cannot be removed: it stays inert (the
    wrapper passes straight through without a configuration) and is reported."""
    with _lock:
        _state.config = None
        stuck: list[str] = []
        restore: dict[int, tuple[Any, Any]] = {}
        for key, inst in list(_installed.items()):
            try:
                wrapt.unwrap_object(inst.module, inst.target, inst.wrapper, missing_ok=True)
            except Exception as exc:  # wrapt.WrapperNotOutermostError: someone wrapped us
                if key not in _stuck:  # reported once; it stays installed, and inert
                    _stuck.add(key)
                    stuck.append(f"{inst.module.__name__}.{inst.target} ({type(exc).__name__})")
                continue
            _stuck.discard(key)
            if inst.rebind:
                restore[id(inst.wrapper)] = (inst.wrapper, inst.original)
            del _installed[key]
        if restore:
            _rebind(restore)
    if stuck:
        _drift(f"autolog(disable=True) could not remove {len(stuck)} patch(es), because another "
               f"library wrapped them after tidymlflow; they now pass calls through unchanged: "
               f"{', '.join(stuck)}")


def _drift(message: str) -> None:
    """A mismatch between tidymlflow and the installed library: one warning, an error in strict
    mode."""
    if _state.strict():
        raise TidyMLflowError(f"tidymlflow: {message}")
    _safety.warn(f"tidymlflow: {message}", stacklevel=3)


def _install_imported(module: ModuleType) -> None:
    """Post-import hook: ``module`` was imported after ``autolog()``, and has just run. Nothing
    outside it can hold its functions yet (the modules that import names from it do so after
    this hook), so no reference needs re-pointing: the heap is not searched (13 ms per module)."""
    _install_module(module, rebind=False)


def _install_module(module: ModuleType, rebind: bool = True) -> None:
    """Wrap the patch targets that live in ``module``; ``rebind``: re-point the references to
    them bound elsewhere (the module was imported before ``autolog()``)."""
    with _lock:
        if _state.config is None:
            return
        swaps: dict[int, tuple[Any, Any]] = {}
        missing: list[str] = []
        ours = {id(inst.wrapper) for inst in _installed.values()}
        for layer_name, patch in _patches_by_module.get(module.__name__, ()):
            concrete = _expand(module, patch)
            if not concrete:
                missing.append(f"{patch.module}.{patch.target}")
            for one in concrete:
                if (one.module, one.target) not in _installed:
                    _check_version(layer_name)
                    if not _install_one(module, layer_name, one, ours, swaps):
                        missing.append(f"{one.module}.{one.target}")
        if swaps and rebind:
            _rebind(swaps)
    if missing:
        _drift(f"the installed py-tidymodels ({py_tidymodels_version()}) has no "
               f"{', '.join(missing)}; these calls are not logged")


def _install_one(module: ModuleType, layer_name: str, patch: Patch, ours: set[int],
                 swaps: dict[int, tuple[Any, Any]]) -> bool:
    """Wrap one concrete target (False: the installed library has no such target). A target
    that is already one of ``ours`` (a class re-exported by another patched module) is left."""
    try:
        original = wrapt.resolve_path(module, patch.target)[2]
        if id(original) in ours:
            return True
        wrapper = wrapt.wrap_function_wrapper(module, patch.target, _wrapper(layer_name, patch))
    except AttributeError:
        return False
    key = (patch.module, patch.target)
    _installed[key] = _Installed(module, patch.target, wrapper, original, patch.rebind)
    ours.add(id(wrapper))
    if patch.rebind:
        swaps[id(original)] = (original, wrapper)
    code = getattr(getattr(original, "__func__", original), "__code__", None)
    if code is not None and not patch.observer_only:  # an observer passes calls through: never a guard
        _original_codes[id(code)] = f"{patch.module}.{patch.target}"  # kept alive by original
    return True


def _expand(module: ModuleType, patch: Patch) -> list[Patch]:
    """The concrete patches of ``patch`` in ``module``: itself, or for a pattern
    (``"Step*.prep"``) one per class of the module whose name matches and that has the method
    (a method a class inherits from a matched class is patched there, once)."""
    if not patch.is_pattern:
        return [patch]
    owner, _, method = patch.target.rpartition(".")
    classes = [value for name, value in sorted(vars(module).items())
               if isinstance(value, type) and fnmatch.fnmatchcase(name, owner) and name == value.__name__]
    found: list[Patch] = []
    for cls in classes:
        defining = next((base for base in cls.__mro__ if method in vars(base)), None)
        if defining is cls or (defining is not None and defining not in classes):
            found.append(dataclasses.replace(patch, target=f"{cls.__name__}.{method}"))
    return found


def _check_version(layer_name: str) -> None:
    """Warn once per layer when py-tidymodels is outside the range the layer was verified on."""
    if layer_name in _version_checked:
        return
    _version_checked.add(layer_name)
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    layer = discover_layers().get(layer_name)
    if layer is None:
        return
    supported, version = layer.supported, py_tidymodels_version()
    if version == "unknown":  # nothing to compare: say so quietly
        _safety.logger.info("tidymlflow: the py-tidymodels version is unknown; layer '%s' was verified "
                            "with %s", layer_name, supported)
        return
    try:
        inside = Version(version) in SpecifierSet(supported)
    except (InvalidVersion, InvalidSpecifier):
        inside = False
    if not inside:
        warnings.warn(f"tidymlflow: layer '{layer_name}' was verified with py-tidymodels {supported}; "
                      f"found {version}. It still logs; report anything that looks wrong.",
                      TidyMLflowWarning, stacklevel=3)


def _rebind(swaps: dict[int, tuple[Any, Any]]) -> None:
    """Replace references ``old -> new`` wherever a name can hold them: module namespaces, other
    namespaces (``exec``, ``runpy``, profilers) and closure cells, e.g. ``from py_tune import
    tune_grid`` done before ``autolog()`` (and back on unpatching)."""
    olds = [old for old, _ in swaps.values()]
    for ref in gc.get_referrers(*olds):
        if isinstance(ref, types.CellType):
            swap = swaps.get(id(ref.cell_contents))
            if swap is not None and ref.cell_contents is swap[0]:
                ref.cell_contents = swap[1]
        elif isinstance(ref, dict) and ("__name__" in ref or "__builtins__" in ref):
            for name, value in list(ref.items()):
                swap = swaps.get(id(value))
                if swap is not None and value is swap[0]:
                    ref[name] = swap[1]


def _wrapper(layer_name: str, patch: Patch) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True  # noqa: F841 (pytest and IPython leave our frames out of tracebacks)
        config = _state.config
        outer = _state.active_call.get()
        if config is None or outer is not None or patch.observer_only:  # off, nested, or observer
            result = _safety.call_as_caller(wrapped, args, kwargs)
            if outer is not None and patch.observe is not False and config is not None \
                    and config.layer_enabled(layer_name):
                outer.observe(patch.target, instance, lambda: patch.record(instance, args, kwargs, result))
            return result
        call = Call(layer_name, patch.target, wrapped, instance, args, kwargs, config,
                    layers=discover_layers())
        token = _state.active_call.set(call)  # the calls nested in it stay quiet, even when it logs nothing
        try:
            return _run(call, None if _inside_library() else patch.handler, wrapped, args, kwargs)
        finally:
            _state.active_call.reset(token)

    return wrapper


def _inside_library() -> bool:
    """True when this outermost patched call was made by library code: by a library function
    that was reached without its patch (:func:`_reached_unpatched`), or by any py-tidymodels
    code on the stack (a step's ``prep``, a fitness function, a tuner's helper, a worker
    thread of the library). Such a call belongs to the library call the user made: it logs no
    run of its own, and the calls nested in it stay quiet."""
    packages = _state.library_packages
    return _reached_unpatched() or (bool(packages) and _safety.library_on_stack(packages))


def _reached_unpatched() -> bool:
    """True inside a patched library call that was reached through a reference bound before
    ``autolog()`` (a name local to a function, for example): the calls nested in it belong to
    it and never log on their own. Said once per function, with the fix."""
    name = _safety.running_original(_original_codes) if _original_codes else None
    if name is None:
        return False
    if name not in _unpatched_told:
        _unpatched_told.add(name)
        _safety.warn(f"tidymlflow: {name} was called through a name bound before tidymlflow.autolog() "
                     "(for example imported inside a function), so it is not logged, and the fits "
                     "inside it are not logged as runs of their own. Call tidymlflow.autolog() before "
                     "that import, or call it through its module.", stacklevel=4)
    return True


def _run(call: Call, handler: Handler | None, wrapped: Callable[..., Any], args: tuple[Any, ...],
         kwargs: dict[str, Any]) -> Any:
    """Run the original exactly once; log around it without ever changing its outcome."""
    __tracebackhide__ = True  # noqa: F841
    _report_writer()
    gen = _start(call, handler)
    with _safety.mlflow_autolog_paused(gen is not None):
        start = time.perf_counter()
        try:
            result = _safety.call_as_caller(wrapped, args, kwargs)
        except BaseException as exc:
            if gen is not None:
                with _safety.quiet():
                    gen.close()
                    call.fail(exc)
                    call.finish("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
                call.report_errors(raise_in_strict=False)
            raise
        if gen is not None:
            call.duration = time.perf_counter() - start
            try:
                with _safety.quiet():
                    _resume(call, gen, result)
                    call.remember(result)
                    call.finish("FINISHED")
            finally:
                call.abandon()  # interrupted before the hand-over: no half-staged job is left
            call.report_errors()
            _report_writer(synchronous_only=True)  # in-process: a job kept is said at once
    return result


def _report_writer(synchronous_only: bool = False) -> None:
    """What the writer reported since the last call: warnings, or an error in strict mode."""
    writer = handover.current()
    if writer is not None and (writer.synchronous or not synchronous_only):
        writer.report()


def _start(call: Call, handler: Handler | None) -> Generator[None, Any, None] | None:
    """Run the handler up to its ``yield``; None when this call logs nothing."""
    if handler is None or not call.config.layer_enabled(call.layer):
        return None
    with _safety.quiet():
        try:
            if call.config.exclusive and user_run() is not None:
                return None
            gen = handler(call)
            next(gen)
            return gen
        except StopIteration:
            call.errors.append(_protocol_error(call, "returned before its yield"))
        except Exception as exc:
            call.errors.append(exc)
        call.finish("FAILED")
    call.report_errors()
    return None


def _resume(call: Call, gen: Generator[None, Any, None], result: Any) -> None:
    """Send the result to the handler; a handler that yields again is closed and reported."""
    try:
        gen.send(result)
    except StopIteration:
        return
    except Exception as exc:
        call.errors.append(exc)
        return
    gen.close()
    call.errors.append(_protocol_error(call, "yielded more than once"))


def _protocol_error(call: Call, what: str) -> TidyMLflowError:
    return TidyMLflowError(f"the handler of {call.name} (layer '{call.layer}') {what}; "
                           "a handler yields exactly once")
