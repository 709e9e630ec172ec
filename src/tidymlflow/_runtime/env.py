"""The ``TIDYMLFLOW_*`` environment variables: their parsing and their check at ``autolog()``.
No dependency, so the writer process reads them without importing anything else."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping

#: Variables with a fixed set of values (compared without case; empty means the default).
_ENV_CHOICES = {"TIDYMLFLOW_WRITER": ("process", "inline"), "TIDYMLFLOW_PLOT_PROCESS": ("0", "1"),
                "TIDYMLFLOW_STRICT": ("0", "1", "true", "false", "yes", "no", "on", "off")}
#: Variables that hold a number of seconds (finite, >= 0).
_ENV_SECONDS = ("TIDYMLFLOW_WRITER_IDLE", "TIDYMLFLOW_WRITER_REST", "TIDYMLFLOW_EXIT_TIMEOUT")
_ENV_JOURNAL = "TIDYMLFLOW_JOURNAL_DIR"
_ENV_KNOWN = (*_ENV_CHOICES, *_ENV_SECONDS, _ENV_JOURNAL)


def seconds(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """The number of seconds in environment variable ``name`` (``default`` when unset or empty);
    ValueError naming the variable for anything but a finite number >= 0."""
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number of seconds (finite, 0 or more), got {raw!r}")
    return value


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Every ``TIDYMLFLOW_*`` variable, checked at ``autolog()``: a bad value, or a name that
    looks like a misspelt one, is a ValueError naming it (rather than a silent default or a
    traceback at exit)."""
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if not name.startswith("TIDYMLFLOW_"):
            continue
        raw = value.strip()
        if name in _ENV_CHOICES:
            if raw and raw.lower() not in _ENV_CHOICES[name]:
                raise ValueError(f"{name} must be one of {', '.join(_ENV_CHOICES[name])}, got {value!r}")
        elif name in _ENV_SECONDS:
            seconds(name, 0.0, env)
        elif name == _ENV_JOURNAL:
            if raw and os.path.exists(raw) and not os.path.isdir(raw):
                raise ValueError(f"{name} must name a folder, and {raw!r} is a file")
        else:
            near = difflib.get_close_matches(name, _ENV_KNOWN, n=1, cutoff=0.85)
            if near:
                raise ValueError(f"{name} is not a tidymlflow setting; did you mean {near[0]}?")
