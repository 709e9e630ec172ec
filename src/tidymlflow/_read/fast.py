"""The library's diagnostics at a cost that grows like the data, while tidymlflow reads a fit.

py-tidymodels' ``extract_outputs()`` computes a Ljung-Box statistic on every fit's residuals
through ``statsmodels.stats.diagnostic.acorr_ljungbox``, whose autocorrelation
(``acf(..., fft=False)``) correlates the whole series with itself: O(n^2), 20-60 s at 300k rows.
It needs at most 10 lags, so the same numbers come from 10 dot products, O(n). While tidymlflow
calls ``extract_outputs()``, ``statsmodels.tsa.stattools._stattools.acf`` (which
``acorr_ljungbox`` imports at each call) takes this path for exactly the arguments it uses and
hands every other call to the original. The tables are equal to the library's to about 1e-15
(tests/test_fast.py)."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import wrapt

_MODULE = "statsmodels.tsa.stattools._stattools"
_lock = threading.Lock()
_users = 0
_original: Callable[..., Any] | None = None


def acf_direct(x: Any, nlags: int) -> Any:
    """``acf(x, nlags=nlags, fft=False)`` (not adjusted, demeaned, no missing handling), with one
    dot product per lag instead of a full correlation."""
    import numpy as np

    d = np.asarray(x, dtype=float).ravel()
    d = d - d.mean()
    n = len(d)
    acov = np.array([np.dot(d[: n - k], d[k:]) for k in range(min(nlags, n - 1) + 1)]) / n
    return acov / acov[0]


def _fast(original: Callable[..., Any]) -> Callable[..., Any]:
    def acf(x: Any, adjusted: bool = False, nlags: int | None = None, qstat: bool = False,
            fft: bool = True, alpha: float | None = None, bartlett_confint: bool = True,
            missing: str = "none") -> Any:
        simple = (not adjusted and nlags is not None and not qstat and not fft and alpha is None
                  and missing == "none" and getattr(x, "ndim", 1) == 1 and len(x) > nlags)
        if not simple:
            return original(x, adjusted=adjusted, nlags=nlags, qstat=qstat, fft=fft, alpha=alpha,
                            bartlett_confint=bartlett_confint, missing=missing)
        return acf_direct(x, int(nlags))  # type: ignore[arg-type]

    acf.tidymlflow_fast = True  # type: ignore[attr-defined]
    return acf


@contextlib.contextmanager
def diagnostics() -> Iterator[None]:
    """The O(n) autocorrelation in place for the duration (counted across threads). statsmodels
    is not imported for it: when the library imports its acf module inside the window, the swap
    happens then (a post-import hook)."""
    global _users
    with _lock:
        _users += 1
        if _users == 1:
            _install()
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _uninstall()


_hooked = False


def _install() -> None:
    global _hooked
    module = sys.modules.get(_MODULE)
    if module is not None:
        _swap(module)
    elif not _hooked and importlib.util.find_spec("statsmodels") is not None:
        _hooked = True
        wrapt.register_post_import_hook(_on_import, _MODULE)


def _on_import(module: Any) -> None:
    with _lock:
        if _users > 0:
            _swap(module)


def _swap(module: Any) -> None:
    global _original
    if _original is None and not getattr(module.acf, "tidymlflow_fast", False):
        _original = module.acf
        module.acf = _fast(module.acf)


def _uninstall() -> None:
    global _original
    module: Any = sys.modules.get(_MODULE)
    if module is not None and _original is not None:
        module.acf = _original
    _original = None
