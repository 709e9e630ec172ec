"""The autolog engine: layer discovery, post-import patching, the safe wrapper, unpatching.
It knows no layer and imports no py-tidymodels module."""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Optional

import wrapt

from tidymlflow import _state
from tidymlflow._call import Call
from tidymlflow.errors import TidyMLflowWarning
from tidymlflow.layer import Handler, Layer, Patch

ENTRY_POINT_GROUP = "tidymlflow.layers"


@dataclass
class _Installed:
    module: Any
    target: str
    wrapper: Any
    original: Any
    rebound: list = field(default_factory=list)  # module dicts whose name now holds the wrapper


_lock = threading.RLock()
_layers: Optional[dict[str, Layer]] = None
_patches_by_module: dict[str, list[tuple[str, Patch]]] = {}
_hooked: set[str] = set()
_installed: dict[tuple[str, str], _Installed] = {}


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


def activate(config) -> None:
    """Make ``config`` active and patch every registered layer's modules (now or on import)."""
    with _lock:
        _state.config = config
        for layer_name, layer in discover_layers().items():
            for patch in layer.patches:
                entries = _patches_by_module.setdefault(patch.module, [])
                if (layer_name, patch) not in entries:
                    entries.append((layer_name, patch))
        for module_name in _patches_by_module:
            module = sys.modules.get(module_name)
            if module is not None:
                _install_module(module)
            elif module_name not in _hooked:
                _hooked.add(module_name)
                wrapt.register_post_import_hook(_install_module, module_name)


def deactivate() -> None:
    """Remove every patch and restore the original objects everywhere they were bound."""
    with _lock:
        _state.config = None
        for inst in _installed.values():
            wrapt.unwrap_object(inst.module, inst.target, inst.wrapper, missing_ok=True)
            _rebind({id(inst.wrapper): (inst.wrapper, inst.original)}, None)
        _installed.clear()


def _install_module(module) -> None:
    """Post-import hook: wrap the patch targets that live in ``module``."""
    with _lock:
        if _state.config is None:
            return
        swaps = {}
        for layer_name, patch in _patches_by_module.get(module.__name__, ()):
            key = (patch.module, patch.target)
            if key in _installed:
                continue
            try:
                original = wrapt.resolve_path(module, patch.target)[2]
                wrapper = wrapt.wrap_function_wrapper(module, patch.target,
                                                      _wrapper(layer_name, patch))
            except Exception as exc:  # an absent target (other library version) is skipped
                _skip(patch, exc)
                continue
            inst = _installed[key] = _Installed(module, patch.target, wrapper, original)
            if patch.rebind:
                swaps[id(original)] = (original, wrapper, inst)
        if swaps:
            _rebind({k: (o, w) for k, (o, w, _) in swaps.items()},
                    {id(o): inst for o, _, inst in swaps.values()})


def _skip(patch: Patch, exc: Exception) -> None:
    if _state.config is not None and not _state.config.silent and not isinstance(exc, AttributeError):
        warnings.warn(f"tidymlflow: could not patch {patch.module}.{patch.target}: {exc}",
                      TidyMLflowWarning, stacklevel=2)


def _rebind(swaps: dict[int, tuple[Any, Any]], record: Optional[dict[int, _Installed]]) -> None:
    """Replace module-level references ``old -> new`` in every loaded module (names imported
    with ``from x import f`` before patching), recording them when ``record`` is given."""
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name, value in list(namespace.items()):
            swap = swaps.get(id(value))
            if swap is not None and value is swap[0]:
                namespace[name] = swap[1]
                if record is not None:
                    record[id(value)].rebound.append((namespace, name))


def _wrapper(layer_name: str, patch: Patch) -> Callable:
    def wrapper(wrapped, instance, args, kwargs):
        config = _state.config
        outer = _state.active_call.get()
        if config is None or outer is not None:  # disabled, or nested inside a patched call
            result = wrapped(*args, **kwargs)
            if outer is not None and patch.observe:
                outer.observe(patch.call, instance, result)
            return result
        call = Call(layer_name, patch.call, wrapped, instance, args, kwargs, config)
        token = _state.active_call.set(call)
        try:
            return _run(call, patch.handler, wrapped, args, kwargs)
        finally:
            _state.active_call.reset(token)

    return wrapper


def _run(call: Call, handler: Optional[Handler], wrapped, args, kwargs):
    """Run the original exactly once; log around it without ever changing its outcome."""
    gen = _start(call, handler)
    start = time.perf_counter()
    try:
        result = wrapped(*args, **kwargs)
    except BaseException:
        if gen is not None:
            gen.close()
            call.finish("FAILED")
            call.report_errors(raise_in_strict=False)
        raise
    if gen is not None:
        call.duration = time.perf_counter() - start
        try:
            gen.send(result)
        except StopIteration:
            pass
        except Exception as exc:
            call.errors.append(exc)
        call.finish("FINISHED")
        call.report_errors()
    return result


def _start(call: Call, handler: Optional[Handler]):
    """Run the handler up to its ``yield``; None when this call logs nothing."""
    if handler is None or not call.config.layer_enabled(call.layer):
        return None
    try:
        if call.config.exclusive:
            from tidymlflow._runs import user_run

            if user_run() is not None:
                return None
        gen = handler(call)
        next(gen)
        return gen
    except StopIteration:
        return None
    except Exception as exc:
        call.errors.append(exc)
        call.finish("FAILED")
        call.report_errors()
        return None
