"""In a loop of fits (the writer behind), a fit's tables are worked out by the writer's helper
processes from the fit handed over pickled: the library's ``extract_outputs()`` then runs in a
helper (never in the writer, which holds MLflow alone) instead of the user's process, at most
once per logged result, and the loop logs exactly what the same calls log one at a time (each
read in the user's process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.writer_process

#: Put on a script's PYTHONPATH: every process started from it notes each outermost call of a
#: fit's ``extract_outputs()`` with its pid (forked helpers note their own pid).
COUNT = r'''
import os, threading
import wrapt

_depth = threading.local()

def _counted(wrapped, instance, args, kwargs):
    depth = getattr(_depth, "n", 0)
    if depth == 0:
        with open(os.environ["EXTRACT_LOG"], "a") as fh:
            fh.write(f"{os.getpid()}\n")
    _depth.n = depth + 1
    try:
        return wrapped(*args, **kwargs)
    finally:
        _depth.n = depth

def _watch(module):
    for name in ("WorkflowFit", "ModelFit"):
        if "extract_outputs" in vars(getattr(module, name, object)):
            wrapt.wrap_function_wrapper(module, f"{name}.extract_outputs", _counted)

wrapt.register_post_import_hook(_watch, "py_workflows.workflow")
wrapt.register_post_import_hook(_watch, "py_parsnip.model_spec")
'''

SCRIPT = r'''
import os, sys
import tidymlflow
tidymlflow.autolog()
import numpy as np, pandas as pd
from py_parsnip import linear_reg
from py_workflows import workflow

def data(seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=120), "x2": rng.normal(size=120)})
    df["y"] = 1 + 2 * df.x1 - df.x2 + rng.normal(scale=0.3, size=120)
    df["date"] = pd.date_range("2024-01-01", periods=120, freq="D")  # a forecast plot too
    return df

mode, count = sys.argv[1], int(sys.argv[2])
with open(os.environ["EXTRACT_LOG"], "a") as fh:
    fh.write("script %d\n" % os.getpid())
for seed in range(count):
    df = data(seed)
    fit = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(df.iloc[:90])
    if mode == "one-by-one":
        tidymlflow.flush()  # each call written before the next, as in a notebook
    fit.evaluate(df.iloc[90:])
    if mode == "one-by-one":
        tidymlflow.flush()
print("writer", tidymlflow._writer.client.current().writer_pid(), flush=True)
'''


@pytest.fixture
def env(tmp_path):
    """A user's script with the writer process and the counting hook on its path."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(COUNT)
    (tmp_path / "script.py").write_text(SCRIPT)
    values = {**os.environ, "TIDYMLFLOW_WRITER": "process", "MLFLOW_DISABLE_TELEMETRY": "true",
              "TIDYMLFLOW_JOURNAL_DIR": str(tmp_path / "journal"),
              "PYTHONPATH": os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)}
    for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        values.pop(key, None)
    return values


def _script(tmp_path: Path, env: dict[str, str], uri: str, log: Path, mode: str, count: int) -> int:
    out = subprocess.run([sys.executable, "script.py", mode, str(count)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300,
                         env={**env, "MLFLOW_TRACKING_URI": uri, "EXTRACT_LOG": str(log)})
    assert out.returncode == 0, out.stderr
    assert "tidymlflow" not in out.stderr.replace("tidymlflow: writing", ""), out.stderr  # no warning
    return int(out.stdout.split()[-1])


def _callers(log: Path) -> tuple[int, list[int]]:
    """The script's pid and the pid of every outermost ``extract_outputs()`` call."""
    lines = log.read_text().split("\n")
    script = int(next(line for line in lines if line.startswith("script ")).split()[1])
    return script, [int(line) for line in lines if line.isdigit()]


def test_a_single_fit_is_read_in_the_script_once_per_logged_result(tmp_path, env):
    """With the writer not behind (a fit, then its evaluation), the script reads each result
    once, beside the writer, as before; nothing is extracted twice."""
    uri, log = f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "extract.log"
    _script(tmp_path, env, uri, log, "one-by-one", 1)
    script, callers = _callers(log)
    assert callers == [script, script]


def test_in_a_loop_extract_outputs_leaves_the_script_and_runs_at_most_once_per_result(tmp_path, env):
    from mlflow import MlflowClient

    uri, log = f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "extract.log"
    writer = _script(tmp_path, env, uri, log, "loop", 12)
    script, callers = _callers(log)
    # the fit's result and the evaluation's: at most once each (a fit whose evaluation came
    # before its tables were worked out is read once for both), in the writer's helpers as soon
    # as the writer is behind, never in the writer itself
    assert len(callers) <= 2 * 12 and writer not in callers, (script, writer, callers)
    assert callers.count(script) < len(callers) / 2, (script, callers)
    runs = MlflowClient(uri).search_runs(["0"])
    assert len(runs) == 12 and {r.info.status for r in runs} == {"FINISHED"}
    # the plot sampling rule: the first 10 fits of the model drawn, the 11th and 12th not
    assert sum("tidymlflow.plots_skipped" in r.data.tags for r in runs) == 2
    run = runs[-1]  # the first
    assert {"train_rmse", "test_rmse", "fit_duration_s"} <= set(run.data.metrics)
    files = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, "plots")}
    files |= {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, "tidymodels")}
    assert {"plots/residual_diagnostics.png", "plots/forecast.png", "plots/forecast.html",
            "tidymodels/outputs.parquet", "tidymodels/stats.parquet",
            "tidymodels/coefficients.parquet"} <= files


#: Tags that differ between any two runs (their identity and provenance, not their content).
VOLATILE = ("tidymlflow.handle", "mlflow.source", "mlflow.user", "mlflow.log-model", "mlflow.parentRunId")


def _content(client, run) -> dict:
    """Everything a run logged, timing and identity left out: params, tags, every metric's
    history as (step, value), every file with its bytes (the html of a plotly figure carries a
    random element id, so its name only)."""
    run_id = run.info.run_id
    history = {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k))
               for k in run.data.metrics if k != "fit_duration_s"}
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith(VOLATILE)}
    root = Path(client.download_artifacts(run_id, ""))
    files = {str(p.relative_to(root)): (b"" if p.suffix == ".html" else p.read_bytes())
             for p in root.rglob("*") if p.is_file()}
    return {"name": run.info.run_name, "params": run.data.params, "tags": tags, "metrics": history,
            "files": files}


def test_a_loop_of_fits_logs_what_the_same_fits_log_one_at_a_time(tmp_path, env):
    """A loop (fits handed over to the writer's helpers, a fit's outputs left to its queued
    evaluation, tables and forecast not written twice) leaves out nothing and adds nothing: the
    same params, tags, metric histories, tables and plot images as the same calls written one by
    one, each read in the script."""
    from mlflow import MlflowClient

    loop, single = f"sqlite:///{tmp_path / 'loop.db'}", f"sqlite:///{tmp_path / 'single.db'}"
    _script(tmp_path, env, loop, tmp_path / "a.log", "loop", 8)
    _script(tmp_path, env, single, tmp_path / "b.log", "one-by-one", 8)
    script, callers = _callers(tmp_path / "a.log")
    assert callers.count(script) < len(callers)  # the loop handed fits over
    got = {}
    for uri in (loop, single):
        client = MlflowClient(uri)
        runs = sorted(client.search_runs(["0"]), key=lambda r: r.info.start_time)
        assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}
        got[uri] = [_content(client, r) for r in runs]
    for looped, alone in zip(got[loop], got[single]):
        assert looped.keys() == alone.keys()
        for key in looped:
            assert looped[key] == alone[key], key
    assert "plots/residual_diagnostics.png" in got[loop][0]["files"]
