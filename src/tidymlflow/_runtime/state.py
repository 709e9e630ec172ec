"""Process-wide autolog state: the active configuration and strict mode."""

from __future__ import annotations

import contextvars
import os
from typing import Any

from tidymlflow._runtime.config import AutologConfig

#: The active configuration; None until autolog() is called, or after autolog(disable=True).
config: AutologConfig | None = None

#: The top-level packages of every patched module (``py_parsnip``, ``py_recipes``...): code of
#: these packages is the library's own. Set by autolog().
library_packages: frozenset[str] = frozenset()


def strict() -> bool:
    """Strict mode (``TIDYMLFLOW_STRICT=1``) re-raises logging errors instead of warning."""
    return os.environ.get("TIDYMLFLOW_STRICT", "").strip().lower() in ("1", "true", "yes", "on")


#: The outermost patched call in this thread / task (a ``Call``); nested patched calls see it and
#: stay quiet, and MLflow reads made inside it do not wait for the writer.
active_call: contextvars.ContextVar[Any] = contextvars.ContextVar("tidymlflow_active_call", default=None)
