"""Assertions shared by the tests: what a logged fit must look like in MLflow."""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import re
import socket
import subprocess
import sys
import textwrap
import warnings

import pandas as pd
from conftest import REAL, STANDIN


def numeric_stats(stats: pd.DataFrame, splits=None) -> dict[str, float]:
    """The metrics a fit's stats frame must produce: every finite numeric row."""
    out = {}
    for split, metric, value in zip(stats["split"], stats["metric"], stats["value"]):
        if splits is not None and split not in splits:
            continue
        if isinstance(value, numbers.Number) and not isinstance(value, bool) and pd.notna(value):
            if abs(float(value)) != float("inf"):
                out[f"{split}_{metric}" if split else metric] = float(value)
    return out


def assert_metrics_match(run, stats: pd.DataFrame, splits=None) -> None:
    expected = numeric_stats(stats, splits)
    assert expected, "the stats frame has numeric rows"
    for key, value in expected.items():
        assert key in run.data.metrics, f"metric {key} missing"
        assert run.data.metrics[key] == pytest_approx(value), key


def pytest_approx(value):
    import pytest

    return pytest.approx(value, rel=1e-12, abs=1e-12)


def assert_tables_match(store, run, frames) -> None:
    outputs, coefs, stats = frames
    pd.testing.assert_frame_equal(store.table(run, "tidymodels/outputs.parquet"),
                                  outputs.reset_index(drop=True), check_dtype=False)
    pd.testing.assert_frame_equal(store.table(run, "tidymodels/coefficients.parquet"),
                                  coefs.reset_index(drop=True), check_dtype=False)
    read = store.table(run, "tidymodels/stats.parquet")
    expected = stats.reset_index(drop=True).copy()
    as_text = expected["value"].map(
        lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
    assert list(read.columns) == list(expected.columns)
    assert read["value"].tolist() == as_text.tolist()
    pd.testing.assert_frame_equal(read.drop(columns="value"), expected.drop(columns="value"),
                                  check_dtype=False)


def top_runs(store) -> list:
    """The runs of the experiment that have no parent."""
    return [r for r in store.runs() if "mlflow.parentRunId" not in r.data.tags]


def run_tree(store) -> dict:
    """{run name: (parent run name, metrics without the duration, rank tag)} of the experiment,
    for comparing two run trees (e.g. sequential against n_jobs=2)."""
    runs = store.runs()
    names = {r.info.run_id: r.info.run_name for r in runs}
    return {r.info.run_name: (names.get(r.data.tags.get("mlflow.parentRunId")),
                              {k: v for k, v in r.data.metrics.items() if k != "fit_duration_s"},
                              r.data.tags.get("rank"))
            for r in runs}


@contextlib.contextmanager
def noted(caplog, pattern: str):
    """The block sends a note matching ``pattern`` to the ``tidymlflow`` logger, and no
    TidyMLflowWarning: expected behaviour is a note, not a warning."""
    from tidymlflow import TidyMLflowWarning

    with caplog.at_level(logging.INFO, logger="tidymlflow"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert re.search(pattern, caplog.text), caplog.text
    assert not [w for w in caught if issubclass(w.category, TidyMLflowWarning)]

def linear_wf():
    """The workflow most tests fit: y ~ x1 + x2 with linear_reg."""
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg())


def free_port() -> int:
    """A local port nothing listens on (a closed port for dead-server tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python(code: str, tmp_path, extra_path=None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the stand-in (unless the real library is here)."""
    env = dict(os.environ)
    paths = [str(p) for p in (extra_path or [])] + ([] if REAL else [str(STANDIN)])
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
