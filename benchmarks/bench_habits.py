"""Benchmark: what read-your-writes costs a user's MLflow calls when nothing is pending (issue 21).

    python benchmarks/bench_habits.py [--rounds 7] [--calls 100]

With ``tidymlflow.autolog()`` on, the end of a user's run (``with mlflow.start_run():``) and
MLflow reads (``mlflow.search_runs``, ``MlflowClient.get_run``) first wait for the jobs handed to
the writer. Here nothing is pending (a fit was written and flushed before), so the wait must cost
nothing. Measured in one process on a local sqlite store, in alternating rounds with autolog on
and off (``autolog(disable=True)`` gives MLflow its own functions back): per round, ``--calls``
runs started and ended, and as many ``get_run`` reads. Paired medians of the per-call difference.

Budget: the end of a user's run with nothing pending adds <= 5 ms.
Uses the real py-tidymodels when importable, else the test stand-in. Exits 1 when missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not importlib.util.find_spec("py_workflows"):
    sys.path.insert(0, str(ROOT / "tests" / "standin"))
END_RUN_BUDGET_MS = 5.0


def _round(calls: int) -> tuple[float, float]:
    """Seconds per (start + end of a run) and per ``get_run``."""
    import mlflow

    start = time.perf_counter()
    ids = []
    for _ in range(calls):
        with mlflow.start_run() as run:
            ids.append(run.info.run_id)
    ends = (time.perf_counter() - start) / calls
    client = mlflow.MlflowClient()
    start = time.perf_counter()
    for run_id in ids:
        client.get_run(run_id)
    return ends, (time.perf_counter() - start) / calls


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-habits-")
    os.environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "TIDYMLFLOW_JOURNAL_DIR": f"{tmp}/journal",
                       "TIDYMLFLOW_WRITER_IDLE": "0"})
    import mlflow
    import numpy as np
    import pandas as pd

    import tidymlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp}/m.db")
    mlflow.set_experiment("bench-habits")
    tidymlflow.autolog()
    from py_parsnip import linear_reg
    from py_workflows import workflow

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x1": rng.normal(size=200)})
    df["y"] = 2 * df.x1 + rng.normal(size=200)
    workflow().add_formula("y ~ x1").add_model(linear_reg()).fit(df)
    tidymlflow.flush()  # nothing pending from here on
    _round(10)  # warm-up: MLflow's store and the run path are loaded
    ends, reads = [], []
    for _ in range(args.rounds):
        tidymlflow.autolog()
        on = _round(args.calls)
        tidymlflow.autolog(disable=True)
        off = _round(args.calls)
        ends.append((on[0] - off[0]) * 1000)
        reads.append((on[1] - off[1]) * 1000)
    end_ms, read_ms = statistics.median(ends), statistics.median(reads)
    ok = end_ms <= END_RUN_BUDGET_MS
    print(f"nothing pending, {args.rounds} paired rounds of {args.calls}: the end of a user's run adds "
          f"{end_ms:+.3f} ms (budget {END_RUN_BUDGET_MS:.0f} ms): {'ok' if ok else 'MISSED'}; "
          f"a get_run adds {read_ms:+.3f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
