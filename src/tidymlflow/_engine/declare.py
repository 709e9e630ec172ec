"""What a layer declares: the calls it patches (:class:`Patch`) and the layer itself
(:class:`Layer`), each checked when the layer is loaded. Read by the engine; written by layer
authors through :mod:`tidymlflow.layer`."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidymlflow._recording.call import Contributor, Handler

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
