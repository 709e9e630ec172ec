"""Process-wide autolog state: the active configuration and strict mode."""

from __future__ import annotations

import os

from tidymlflow._config import AutologConfig

#: The active configuration; None until autolog() is called, or after autolog(disable=True).
config: AutologConfig | None = None


def strict() -> bool:
    """Strict mode (``TIDYMLFLOW_STRICT=1``) re-raises logging errors instead of warning."""
    return os.environ.get("TIDYMLFLOW_STRICT", "").strip().lower() in ("1", "true", "yes", "on")
