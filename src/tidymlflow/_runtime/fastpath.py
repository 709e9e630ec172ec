"""The library's diagnostics at a cost that grows like the data, while tidymlflow reads a fit.

py-tidymodels' ``extract_outputs()`` computes a Ljung-Box statistic on every fit's residuals
through ``statsmodels.stats.diagnostic.acorr_ljungbox``, whose autocorrelation
(``acf(..., fft=False)``) correlates the whole series with itself: O(n^2), 20-60 s at 300k rows.
It needs at most 10 lags, so the same numbers come from 10 dot products, O(n). And the acf module
it imports at each call pulls in ``statsmodels.tsa`` and ``scipy.signal`` (0.1-0.3 s on a
script's first fit, which a script without autolog never pays).

So while tidymlflow calls ``extract_outputs()``, two functions take a direct path for exactly the
arguments the library uses and hand every other call to the original:
``acorr_ljungbox`` (the library's call: an int ``lags``, nothing else; no ``statsmodels.tsa``
import) and ``statsmodels.tsa.stattools._stattools.acf`` (any other path to it). The tables are
equal to the library's to about 1e-15 (tests/read/test_fast.py). statsmodels is never imported for
this: a module the library imports inside the window is swapped then (a post-import hook)."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import wrapt

_lock = threading.RLock()  # a hook may run inside _install (its module imported meanwhile)
_users = 0


def acf_direct(x: Any, nlags: int) -> Any:
    """``acf(x, nlags=nlags, fft=False)`` (not adjusted, demeaned, no missing handling), with one
    dot product per lag instead of a full correlation."""
    import numpy as np

    d = np.asarray(x, dtype=float).ravel()
    d = d - d.mean()
    n = len(d)
    acov = np.array([np.dot(d[: n - k], d[k:]) for k in range(min(nlags, n - 1) + 1)]) / n
    return acov / acov[0]


def ljung_box_direct(x: Any, lags: int) -> Any:
    """``acorr_ljungbox(x, lags=lags)``: the Ljung-Box statistic and its chi-square p-value at
    lags 1..``lags``, statsmodels' formula on :func:`acf_direct`."""
    import numpy as np
    import pandas as pd
    from scipy import stats

    nobs = len(x)
    k = np.arange(1, lags + 1)
    sacf = acf_direct(x, lags)
    q = nobs * (nobs + 2) * np.cumsum(sacf[1:] ** 2 / (nobs - k))
    return pd.DataFrame({"lb_stat": q, "lb_pvalue": stats.chi2.sf(q, k)}, index=k)


def _fast_acf(original: Callable[..., Any]) -> Callable[..., Any]:
    def acf(x: Any, adjusted: bool = False, nlags: int | None = None, qstat: bool = False,
            fft: bool = True, alpha: float | None = None, bartlett_confint: bool = True,
            missing: str = "none") -> Any:
        simple = (not adjusted and nlags is not None and not qstat and not fft and alpha is None
                  and missing == "none" and getattr(x, "ndim", 1) == 1 and len(x) > nlags)
        if not simple:
            return original(x, adjusted=adjusted, nlags=nlags, qstat=qstat, fft=fft, alpha=alpha,
                            bartlett_confint=bartlett_confint, missing=missing)
        return acf_direct(x, int(nlags))  # type: ignore[arg-type]

    return acf


def _fast_ljungbox(original: Callable[..., Any]) -> Callable[..., Any]:
    def acorr_ljungbox(x: Any, lags: Any = None, boxpierce: bool = False, model_df: int = 0,
                       period: int | None = None, return_df: bool = True, auto_lag: bool = False) -> Any:
        import numpy as np

        simple = (isinstance(lags, (int, np.integer)) and not isinstance(lags, bool) and lags >= 1
                  and not boxpierce and model_df == 0 and period is None and not auto_lag
                  and getattr(x, "ndim", 1) == 1 and len(x) > lags
                  and np.asarray(x).dtype.kind in "iuf")
        if not simple:
            return original(x, lags=lags, boxpierce=boxpierce, model_df=model_df, period=period,
                            return_df=return_df, auto_lag=auto_lag)
        return ljung_box_direct(x, int(lags))

    return acorr_ljungbox


#: module -> (attribute, the fast version of the original): what the window swaps
_SWAPS: dict[str, tuple[str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = {
    "statsmodels.stats.diagnostic": ("acorr_ljungbox", _fast_ljungbox),
    "statsmodels.tsa.stattools._stattools": ("acf", _fast_acf),
}
_originals: dict[str, Callable[..., Any]] = {}


@contextlib.contextmanager
def diagnostics() -> Iterator[None]:
    """The O(n) Ljung-Box and autocorrelation in place for the duration (counted across
    threads). statsmodels is not imported for it: a module the library imports inside the
    window is swapped then (a post-import hook)."""
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


_hooked: set[str] = set()


def _install() -> None:
    """Swap the modules already imported; hook the others (once each: a hook stays)."""
    for name in _SWAPS:
        module = sys.modules.get(name)
        if module is not None:
            _swap(module)
        elif name not in _hooked and importlib.util.find_spec("statsmodels") is not None:
            _hooked.add(name)  # not imported now: the hook runs at its import, not here
            wrapt.register_post_import_hook(_on_import, name)


def _on_import(module: Any) -> None:
    with _lock:
        if _users > 0:
            _swap(module)


def _swap(module: Any) -> None:
    name = module.__name__
    attribute, fast = _SWAPS[name]
    current = getattr(module, attribute)
    if name not in _originals and not getattr(current, "tidymlflow_fast", False):
        _originals[name] = current
        replacement = fast(current)
        replacement.tidymlflow_fast = True  # type: ignore[attr-defined]
        setattr(module, attribute, replacement)


def _uninstall() -> None:
    for name, original in list(_originals.items()):
        module = sys.modules.get(name)
        if module is not None:
            setattr(module, _SWAPS[name][0], original)
    _originals.clear()
