"""Conformance: every callable a layer patches exists in py-tidymodels with the signature recorded from
the real library (py-tidymodels 0.1.0, commit 06b2603) in ``signatures.json``. A pattern target
(``Step*.prep``) is recorded by the parameters every matching method starts with (the rest have
defaults), and must match at least one class of its module.

The same test runs against the stand-in and the real library, so the stand-in cannot drift from the
real signatures, and a new patch target must be recorded before it passes. Targets are resolved
through the class ``__dict__`` and ``inspect.unwrap``, so the result is the same whether or not
tidymlflow's wrappers are installed. py-tidymodels modules are imported inside the tests only.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import warnings
from pathlib import Path

import pytest

from tidymlflow._engine.patching import discover_layers

SIGNATURES = Path(__file__).with_name("signatures.json")

with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter("always")
    _LAYERS = discover_layers()
LOAD_WARNINGS = [str(w.message) for w in _caught]

PATCH_KEYS = sorted({f"{p.module}:{p.target}" for layer in _LAYERS.values() for p in layer.patches})


def _recorded() -> dict[str, list[dict]]:
    return json.loads(SIGNATURES.read_text(encoding="utf-8"))


def _resolve(key: str):
    """The original callable behind ``module:target``, seen through any wrapper."""
    module_name, target = key.split(":")
    # import_module, not getattr: the attribute py_tune.tune is a function shadowing the module
    obj = importlib.import_module(module_name)
    for part in target.split("."):
        if inspect.isclass(obj):
            owner = next((k for k in obj.__mro__ if part in vars(k)), None)
            assert owner is not None, f"{key}: {obj.__name__} has no attribute {part!r}"
            obj = vars(owner)[part]
            if isinstance(obj, (staticmethod, classmethod)):
                obj = obj.__func__
        else:
            assert hasattr(obj, part), f"{key}: {getattr(obj, '__name__', obj)!r} has no attribute {part!r}"
            obj = getattr(obj, part)
    obj = inspect.unwrap(obj)
    assert callable(obj), f"{key} is not callable: {obj!r}"
    return obj


def _describe(fn) -> list[dict]:
    return [{"name": p.name, "kind": p.kind.name,
             "default": None if p.default is inspect.Parameter.empty
             else re.sub(r" at 0x[0-9a-fA-F]+", "", repr(p.default))}
            for p in inspect.signature(fn).parameters.values()]


def test_every_patch_is_recorded():
    assert not LOAD_WARNINGS, f"layers failed to load: {LOAD_WARNINGS}"
    recorded = set(_recorded())
    assert set(PATCH_KEYS) == recorded, (
        f"patched but not recorded: {sorted(set(PATCH_KEYS) - recorded)}; "
        f"recorded but not patched: {sorted(recorded - set(PATCH_KEYS))}")


def _pattern(key: str) -> bool:
    return any(ch in key.split(":")[1] for ch in "*?[")


def _matches(key: str) -> list:
    """The methods a pattern key patches (through the engine's own expansion)."""
    from tidymlflow._engine.patching import _expand
    from tidymlflow.layer import Patch

    module_name, target = key.split(":")
    module = importlib.import_module(module_name)
    return [_resolve(f"{module_name}:{p.target}") for p in _expand(module, Patch(module_name, target))]


@pytest.mark.parametrize("key", [k for k in PATCH_KEYS if not _pattern(k)])
def test_target_signature_matches_the_real_library(key):
    expected = _recorded().get(key)
    assert expected is not None, f"{key} is not recorded in {SIGNATURES.name}"
    assert _describe(_resolve(key)) == expected


@pytest.mark.parametrize("key", [k for k in PATCH_KEYS if _pattern(k)])
def test_pattern_targets_match_classes_with_the_recorded_parameters(key):
    expected = _recorded().get(key)
    assert expected is not None, f"{key} is not recorded in {SIGNATURES.name}"
    module_name = key.split(":")[0]
    if importlib.util.find_spec("py_workflows.workflow").origin.find("standin") >= 0 \
            and module_name != "py_recipes.steps":  # the stand-in keeps every step in the package
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(module_name)
        return
    methods = _matches(key)
    assert methods, f"{key} matches no class"
    for fn in methods:
        described = _describe(fn)
        assert described[:len(expected)] == expected, fn.__qualname__
        assert all(p["default"] is not None for p in described[len(expected):]), fn.__qualname__


def test_resolution_sees_through_autolog():
    import tidymlflow
    from tidymlflow._engine.patching import _expand
    from tidymlflow.layer import Patch

    tidymlflow.autolog()  # conftest switches it off again
    recorded = _recorded()
    wrapped = []
    for key in PATCH_KEYS:
        module_name, target = key.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:  # a step module only the real library has
            continue
        for one in _expand(module, Patch(module_name, target)):
            owner = module
            *path, name = one.target.split(".")
            for part in path:
                owner = getattr(owner, part)
            raw = inspect.getattr_static(owner, name)
            if inspect.unwrap(raw) is not raw:
                wrapped.append(one.target)
            described = _describe(_resolve(f"{module_name}:{one.target}"))
            assert described[:len(recorded[key])] == recorded[key], key
    assert "Workflow.fit" in wrapped and "StepNormalize.prep" in wrapped, wrapped
