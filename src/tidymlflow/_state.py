"""Process-wide autolog state: the active configuration and the call now owning logging."""

from __future__ import annotations

import contextvars
import os
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from tidymlflow._call import Call
    from tidymlflow._config import AutologConfig

#: The active configuration; None until autolog() is called, or after autolog(disable=True).
config: Optional[AutologConfig] = None

#: The outermost patched call in this thread / task; nested patched calls see it and stay quiet.
active_call: contextvars.ContextVar[Optional[Call]] = contextvars.ContextVar(
    "tidymlflow_active_call", default=None)


def strict() -> bool:
    """Strict mode (``TIDYMLFLOW_STRICT=1``) re-raises logging errors instead of warning."""
    return os.environ.get("TIDYMLFLOW_STRICT", "").strip().lower() in ("1", "true", "yes", "on")
