"""What a layer is: the calls it patches and how each is logged. Layers are registered in the
``tidymlflow.layers`` entry-point group; the engine imports no layer and no layer's target."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from tidymlflow._call import Call

#: A handler runs around the original call: the code before ``yield`` runs before it (start runs
#: here), ``yield`` returns the call's result, the code after logs it. The engine flushes and ends
#: every run the handler started.
Handler = Callable[["Call"], Generator[None, Any, None]]


@dataclass(frozen=True)
class Patch:
    """One patched callable: ``target`` (``"Class.method"`` or ``"function"``) in ``module``.

    ``call`` is the ``tidymlflow.call`` tag. ``handler`` None makes the patch a guard only: the
    call owns logging, so nothing nested inside it logs. ``rebind`` re-points references to a
    free function that other modules (or the user) imported by name before the patch.
    ``observe`` records the result of this call when it runs nested inside another patched call
    of the same thread (``Call.observed``; the first per instance), so the outer call can log
    what it did.
    """

    module: str
    target: str
    call: str
    handler: Optional[Handler] = None
    rebind: bool = False
    observe: bool = False


#: Adds a layer's view of another layer's result to that result's run(s):
#: ``contribute(call, writer, result, children)`` where ``children`` maps group -> child writer
#: for per-group results (empty otherwise).
Contributor = Callable[["Call", Any, Any, Mapping[Any, Any]], None]


@dataclass(frozen=True)
class Layer:
    """A named group of patches, switched on and off together by its ``autolog()`` flag."""

    name: str
    patches: tuple[Patch, ...]
    contribute: Optional[Contributor] = None

__all__ = ["Call", "Contributor", "Handler", "Layer", "Patch"]
