"""Benchmark: a loop of small fits (issue 26).

    python benchmarks/bench_loop.py [--fits 200] [--pairs 3] [--plot-every 10]

A backtest, a per-series loop, a simulation study: ``--fits`` x
``workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(train).evaluate(test)`` on
300 rows, in a fresh process each, alternating without autolog and with it (the writer process,
warm from an untimed round before; a local sqlite store). Per pair: the loop's time in the
process (per fit), the time until every run is written (``tidymlflow.flush()`` after the loop),
and the runs written, read back from the store (each with its tables and plots). Medians of the
pairs against the budgets:

* per fit in the user's process: added <= 10 ms;
* the writer keeps up: >= 20 fit + evaluate runs a second (runs written / time from the loop's
  start to the last one written);
* the loop with every run written by the script's end: added <= 12 s;
* nothing dropped: every run FINISHED with its three tables and test metrics, and the residual
  plot on the runs the sampling rule draws (``autolog(plot_every_n_fits=...)``: the first 10
  fits, then every n-th; ``--plot-every 1`` draws every run's plot) and the tag
  ``tidymlflow.plots_skipped`` on the others.

Uses the real py-tidymodels when importable, else the test stand-in. Exits 1 when a budget is
missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDIN = None if importlib.util.find_spec("py_workflows") else str(ROOT / "tests" / "standin")
PER_FIT_BUDGET_MS = 10.0
RUNS_PER_S_BUDGET = 20.0
LOOP_BUDGET_S = 12.0

SCRIPT = """
import os, sys, time
import numpy as np, pandas as pd
on = os.environ["BENCH_MODE"] == "on"
if on:
    import tidymlflow
    tidymlflow.autolog(plot_every_n_fits=int(os.environ["BENCH_PLOT_EVERY"]))
from py_parsnip import linear_reg
from py_workflows import workflow
rng = np.random.default_rng(0)
df = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.normal(size=300)})
df["y"] = 2 * df.x1 - df.x2 + rng.normal(size=300)
train, test = df.iloc[:240], df.iloc[240:]
wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg())
start = time.perf_counter()
for _ in range(int(sys.argv[1])):
    wf.fit(train).evaluate(test)
loop = time.perf_counter() - start
if on:
    tidymlflow.flush()
print("TIMES", loop, time.perf_counter() - start)
"""


def _run(folder: Path, env: dict[str, str], mode: str, fits: int) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "script.py", str(fits)], cwd=folder, capture_output=True,
                          text=True, timeout=1800, env={**env, "BENCH_MODE": mode})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    line = next(x for x in done.stdout.splitlines() if x.startswith("TIMES "))
    loop, total = (float(v) for v in line.split()[1:])
    return loop, total


def _complete_runs(uri: str) -> tuple[int, int]:
    """Runs FINISHED with their three tables and test metrics, and with the residual plot or
    the tag saying why the sampling rule skipped it; and how many have the plot."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    count = plotted = 0
    for run in client.search_runs(["0"], max_results=50000):
        files = {a.path for a in client.list_artifacts(run.info.run_id, "tidymodels")}
        drawn = "plots/residual_diagnostics.png" in {
            a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        plotted += drawn
        count += (run.info.status == "FINISHED" and "test_rmse" in run.data.metrics
                  and {"tidymodels/outputs.parquet", "tidymodels/coefficients.parquet",
                       "tidymodels/stats.parquet"} <= files
                  and (drawn or "tidymlflow.plots_skipped" in run.data.tags))
    return count, plotted


def _expected_plots(fits: int, every: int) -> int:
    """Runs with plots under the sampling rule (the first fits, then every n-th)."""
    from tidymlflow._log.sampling import PLOTTED_FIRST

    return sum(1 for i in range(1, fits + 1) if every == 1 or i <= PLOTTED_FIRST or i % every == 0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fits", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--plot-every", type=int, default=10,
                        help="autolog(plot_every_n_fits=...): 10 is the default, 1 draws every run's plots")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    (tmp / "script.py").write_text(SCRIPT)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "TIDYMLFLOW_JOURNAL_DIR": str(tmp / "journal"),
           "TIDYMLFLOW_WRITER_IDLE": "600", "BENCH_PLOT_EVERY": str(args.plot_every)}
    env.pop("TIDYMLFLOW_WRITER", None)
    if STANDIN:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (STANDIN, env.get("PYTHONPATH")) if p)
    warm_uri = f"sqlite:///{tmp / 'warm.db'}"
    _run(tmp, {**env, "MLFLOW_TRACKING_URI": warm_uri}, "on", 5)  # the writer and the store, warm
    per_fit, added, rates, complete = [], [], [], []
    for i in range(args.pairs):
        uri = f"sqlite:///{tmp / f'pair{i}.db'}"
        off_loop, off_total = _run(tmp, {**env, "MLFLOW_TRACKING_URI": uri}, "off", args.fits)
        on_loop, on_total = _run(tmp, {**env, "MLFLOW_TRACKING_URI": uri}, "on", args.fits)
        per_fit.append((on_loop - off_loop) / args.fits * 1000)
        added.append(on_total - off_total)
        rates.append(args.fits / on_total)
        complete.append(_complete_runs(uri))
    fit_ms, rate, loop_s = (statistics.median(v) for v in (per_fit, rates, added))
    results = [
        ("per fit in the process, added", fit_ms, "ms", fit_ms <= PER_FIT_BUDGET_MS,
         f"<= +{PER_FIT_BUDGET_MS:.0f} ms"),
        ("runs written a second", rate, "/s", rate >= RUNS_PER_S_BUDGET, f">= {RUNS_PER_S_BUDGET:.0f}/s"),
        (f"loop of {args.fits} with every run written, added", loop_s, "s", loop_s <= LOOP_BUDGET_S,
         f"<= +{LOOP_BUDGET_S:.0f} s"),
    ]
    ok = True
    for name, value, unit, good, budget in results:
        ok &= good
        verdict = "ok" if good else "MISSED"
        print(f"{name}: {value:.1f} {unit} (median of {args.pairs}; budget {budget}): {verdict}")
    plots = _expected_plots(args.fits, args.plot_every)
    whole = all(c == (args.fits, plots) for c in complete)
    print(f"runs complete (FINISHED, three tables, residual plot or the tag that skips it), and with "
          f"the plot (plot_every_n_fits={args.plot_every}: {plots} expected): {complete} of {args.fits} "
          f"each: {'ok' if whole else 'MISSED'}")
    return 0 if ok and whole else 1


if __name__ == "__main__":
    sys.exit(main())
