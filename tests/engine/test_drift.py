"""Drift between tidymlflow and the installed library is loud: missing targets, versions outside a
layer's verified range, handlers that break the one-yield protocol, patches that cannot be
removed. A throw-away module stands in for a library so the engine is tested on its own."""

from __future__ import annotations

import functools
import sys
import types
import warnings
from collections.abc import Generator
from typing import Any

import pytest

import tidymlflow
from tidymlflow import TidyMLflowError, TidyMLflowWarning
from tidymlflow._engine import patching as _engine
from tidymlflow.layer import Call, Layer, Patch

MODULE = "tidymlflow_drift_fake"


class Thing:
    def fit(self, x: int) -> int:
        return x + 1


def _yields_twice(call: Call) -> Generator[None, Any, None]:
    yield
    yield


def _never_yields(call: Call) -> Generator[None, Any, None]:
    if call.instance is not None:
        return
    yield  # pragma: no cover - the protocol break under test never reaches it


def _quiet(call: Call) -> Generator[None, Any, None]:
    yield


@pytest.fixture
def fake(monkeypatch):
    """Install a fake library module and a layer patching it; returns a function adding the layer."""
    module = types.ModuleType(MODULE)
    module.Thing = type("Thing", (Thing,), {})
    module.Thing.fit = Thing.fit
    monkeypatch.setitem(sys.modules, MODULE, module)

    def add(*patches: Patch, supported: str = ">=0") -> types.ModuleType:
        monkeypatch.setitem(_engine.discover_layers(), "fake", Layer("fake", patches, supported=supported))
        return module

    yield add
    tidymlflow.autolog(disable=True)


def test_missing_target_warns_naming_it(fake, monkeypatch):
    monkeypatch.setenv("TIDYMLFLOW_STRICT", "0")
    fake(Patch(MODULE, "Thing.fit", _quiet), Patch(MODULE, "Thing.vanished", _quiet))
    with pytest.warns(TidyMLflowWarning, match=rf"{MODULE}\.Thing\.vanished"):
        tidymlflow.autolog()


def test_missing_target_is_an_error_in_strict_mode(fake):
    fake(Patch(MODULE, "Thing.vanished", _quiet))
    with pytest.raises(TidyMLflowError, match="Thing.vanished"):
        tidymlflow.autolog()


def test_version_outside_the_verified_range_warns_once(fake, monkeypatch):
    monkeypatch.setattr(_engine, "_version_checked", set())
    module = fake(Patch(MODULE, "Thing.fit", _quiet), supported=">=99")
    with pytest.warns(TidyMLflowWarning, match=r"layer 'fake' was verified with py-tidymodels >=99"):
        tidymlflow.autolog()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tidymlflow.autolog(disable=True)
        tidymlflow.autolog()  # checked once per process
    assert module.Thing().fit(1) == 2


@pytest.mark.parametrize("handler, what", [(_yields_twice, "yielded more than once"),
                                           (_never_yields, "returned before its yield")])
def test_handler_breaking_the_protocol_is_an_error(fake, monkeypatch, handler, what):
    module = fake(Patch(MODULE, "Thing.fit", handler))
    tidymlflow.autolog()
    with pytest.raises(TidyMLflowError, match=what):
        module.Thing().fit(1)
    monkeypatch.setenv("TIDYMLFLOW_STRICT", "0")
    with pytest.warns(TidyMLflowWarning, match=what):
        assert module.Thing().fit(1) == 2  # the user's result is untouched


def test_disable_removes_what_it_can_and_names_the_rest(fake, monkeypatch):
    monkeypatch.setenv("TIDYMLFLOW_STRICT", "0")
    module = fake(Patch(MODULE, "Thing.fit", _quiet))
    original = module.Thing.__dict__["fit"]
    tidymlflow.autolog()
    ours = module.Thing.__dict__["fit"]

    @functools.wraps(ours)
    def theirs(self, x):  # another library wraps after us, the plain-closure way
        return ours(self, x)

    module.Thing.fit = theirs
    with pytest.warns(TidyMLflowWarning, match=rf"could not remove 1 patch.*{MODULE}\.Thing\.fit"):
        tidymlflow.autolog(disable=True)
    assert module.Thing().fit(1) == 2  # still works: ours passes straight through
    assert module.Thing.__dict__["fit"] is theirs and ours is not original
    module.Thing.fit = original  # the other library lets go
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tidymlflow.autolog(disable=True)  # nothing left to report
