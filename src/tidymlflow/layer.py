"""What a layer is: the calls it patches and how each is logged. Layers are registered in the
``tidymlflow.layers`` entry-point group; the engine imports no layer and no layer's target."""

from __future__ import annotations

from collections.abc import Callable, Generator
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
    """

    module: str
    target: str
    call: str
    handler: Optional[Handler] = None
    rebind: bool = False


@dataclass(frozen=True)
class Layer:
    """A named group of patches, switched on and off together by its ``autolog()`` flag."""

    name: str
    patches: tuple[Patch, ...]

__all__ = ["Call", "Handler", "Layer", "Patch"]
