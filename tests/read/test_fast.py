"""The per-fit cost: tidymlflow computes a fit's three tables once per state, with an O(n)
autocorrelation for the library's Ljung-Box statistic, and the tables equal the library's own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tidymlflow

statsmodels = pytest.importorskip("statsmodels")  # a test dependency; the library's engines use it


@pytest.mark.parametrize("n, nlags", [(2, 1), (11, 10), (57, 10), (5000, 10), (300, 3)])
def test_direct_acf_equals_statsmodels(n, nlags):
    from statsmodels.tsa.stattools import acf

    from tidymlflow._runtime.fastpath import acf_direct

    rng = np.random.default_rng(n)
    x = np.cumsum(rng.normal(size=n)) + 1e6  # a trend on a large level: cancellation is exercised
    np.testing.assert_allclose(acf_direct(x, nlags), acf(x, nlags=nlags, fft=False), rtol=1e-9, atol=1e-12)


def test_ljung_box_through_the_swap_equals_the_original_and_the_swap_is_undone():
    import statsmodels.stats.diagnostic as sm_diag
    import statsmodels.tsa.stattools._stattools as st

    from tidymlflow._runtime import fastpath as fast

    x = np.random.default_rng(1).normal(size=2000)
    expected = sm_diag.acorr_ljungbox(x, lags=10)
    before, before_lb = st.acf, sm_diag.acorr_ljungbox
    assert not getattr(before, "tidymlflow_fast", False)
    with fast.diagnostics():
        assert getattr(st.acf, "tidymlflow_fast", False)
        assert getattr(sm_diag.acorr_ljungbox, "tidymlflow_fast", False)
        got = sm_diag.acorr_ljungbox(x, lags=10)
        via_acf = before_lb(x, lags=10)  # statsmodels' own Ljung-Box on the swapped acf
        # any other use of acf is the original's
        np.testing.assert_array_equal(st.acf(x, nlags=5, fft=True), before(x, nlags=5, fft=True))
    assert st.acf is before and sm_diag.acorr_ljungbox is before_lb
    pd.testing.assert_frame_equal(got, expected, rtol=1e-9)
    pd.testing.assert_frame_equal(via_acf, expected, rtol=1e-9)


@pytest.mark.parametrize("x, kwargs", [
    (np.arange(300) % 17, {"lags": 10}),  # integers, as the library may pass them
    (np.r_[np.random.default_rng(2).normal(size=99), np.nan], {"lags": 5}),  # a NaN: NaN out
    (np.random.default_rng(3).normal(size=200), {"lags": np.int64(7)}),
    (np.random.default_rng(4).normal(size=200), {"lags": [1, 4]}),  # the rest: statsmodels' own
    (np.random.default_rng(5).normal(size=200), {"lags": 6, "boxpierce": True}),
    (np.random.default_rng(6).normal(size=200), {"lags": 6, "model_df": 2}),
    (np.random.default_rng(7).normal(size=200), {}),
    (np.random.default_rng(8).normal(size=5), {"lags": 10}),  # more lags than rows
])
def test_ljung_box_swap_equals_statsmodels_for_any_call(x, kwargs):
    import statsmodels.stats.diagnostic as sm_diag

    from tidymlflow._runtime import fastpath as fast

    def outcome():
        try:
            return sm_diag.acorr_ljungbox(x, **kwargs)
        except Exception as exc:  # the same error inside the window as outside
            return type(exc)

    expected = outcome()
    with fast.diagnostics():
        got = outcome()
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected, rtol=1e-9)
    else:
        assert got is expected


def _long_frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=n, freq="h"),
                       "x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    df["y"] = 3 + df["x1"] - 2 * df["x2"] + np.sin(np.arange(n) / 50) + rng.normal(scale=0.3, size=n)
    return df


def test_logged_tables_equal_the_librarys_own(store):
    """What tidymlflow logs (computed with the O(n) autocorrelation) equals extract_outputs()
    computed by the library alone."""
    from py_parsnip import linear_reg

    df = _long_frame(4000)
    train, test = df.iloc[:3000], df.iloc[3000:]
    plain = linear_reg().fit(train, "y ~ x1 + x2")
    plain = plain.evaluate(test)
    expected = plain.extract_outputs()  # autolog is off: the library's own computation

    tidymlflow.autolog()
    fit = linear_reg().fit(train, "y ~ x1 + x2").evaluate(test)
    run = store.run("linear_reg: y ~ x1 + x2")
    for name, frame in zip(("outputs", "coefficients", "stats"), expected):
        logged = store.table(run, f"tidymodels/{name}.parquet")
        if name == "stats":  # stored with values as text where the column mixes types
            logged["value"] = pd.to_numeric(logged["value"], errors="coerce")
            frame = frame.assign(value=pd.to_numeric(frame["value"], errors="coerce"))
        pd.testing.assert_frame_equal(logged.reset_index(drop=True), frame.reset_index(drop=True),
                                      check_dtype=False, rtol=1e-9)
    assert "ljung_box_stat" in set(expected[2]["metric"])
    assert np.isfinite(run.data.metrics["train_ljung_box_stat"])
    assert fit is not None


def _counting(fn, calls):
    def counted(*args, **kwargs):
        calls.append(args)
        return fn(*args, **kwargs)

    return counted


def test_tables_are_computed_once_per_logged_state_and_the_users_call_is_the_librarys(store, monkeypatch):
    """tidymlflow computes a fit's tables once per logged state (after the fit, after evaluate),
    on the O(n) path; the user's own extract_outputs() is never served from them: the library
    computes it, with statsmodels, every time. Written in-process, so that tidymlflow's work on
    the fit handed over is counted here (with the writer process it is a helper's)."""
    import statsmodels.stats.diagnostic as sm_diag
    from py_parsnip import linear_reg

    from tidymlflow._runtime import fastpath as fast

    df = _long_frame(600)
    library, ours = [], []  # the library computes Ljung-Box in every extract_outputs()
    monkeypatch.setattr(sm_diag, "acorr_ljungbox", _counting(sm_diag.acorr_ljungbox, library))
    monkeypatch.setattr(fast, "ljung_box_direct", _counting(fast.ljung_box_direct, ours))
    tidymlflow.autolog(writer="inline")
    fit = linear_reg().fit(df.iloc[:500], "y ~ x1 + x2")
    assert (len(library), len(ours)) == (0, 1)  # logging the fit: once, on the direct path
    first = fit.extract_outputs()
    second = fit.extract_outputs()
    assert (len(library), len(ours)) == (2, 1)  # the user's calls: the library's, each time
    pd.testing.assert_frame_equal(first[0], second[0])
    evaluated = fit.evaluate(df.iloc[500:])
    assert (len(library), len(ours)) == (2, 2)  # evaluate changed the fit: logged once more
    third = evaluated.extract_outputs()
    assert set(third[0]["split"]) == {"train", "test"} and len(library) == 3
    tidymlflow.autolog(disable=True)
    pd.testing.assert_frame_equal(third[2], evaluated.extract_outputs()[2])


def test_statsmodels_is_not_imported_for_the_swap_and_is_swapped_when_the_library_imports_it():
    import subprocess
    import sys

    code = """
import sys
from tidymlflow._runtime import fastpath as fast
with fast.diagnostics():
    assert "statsmodels.tsa.stattools._stattools" not in sys.modules
    import numpy as np
    import statsmodels.stats.diagnostic as sm_diag   # imported by the library's engines
    sm_diag.acorr_ljungbox(np.arange(50.0) % 7, lags=3)   # the library's call: no statsmodels.tsa
    assert "statsmodels.tsa.stattools._stattools" not in sys.modules
    from statsmodels.tsa.stattools._stattools import acf   # as acorr_ljungbox does, inside the window
    print(getattr(acf, "tidymlflow_fast", False))
    print(float(acf(np.arange(50.0) % 7, nlags=3, fft=False)[1]))
import statsmodels.tsa.stattools._stattools as st
print(getattr(st.acf, "tidymlflow_fast", False))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    fast_flag, value, after = out.stdout.split()
    from statsmodels.tsa.stattools import acf

    assert fast_flag == "True" and after == "False"
    assert float(value) == pytest.approx(acf(np.arange(50.0) % 7, nlags=3, fft=False)[1], rel=1e-12)
