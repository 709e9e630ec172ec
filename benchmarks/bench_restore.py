"""Benchmark: what restorable tunings cost, and how fast one comes back (issue 23).

    python benchmarks/bench_restore.py --baseline SRC [--pairs 5]

1. The added logging cost of a 16-candidate ``tune_grid`` (5 folds, 300 rows), whole script to
   everything written (``tidymlflow.flush()``), paired in one run: the script without autolog,
   with this tidymlflow, and with the tidymlflow in ``SRC`` (the ``src`` folder of a checkout
   from before ``load_results``: ``git worktree add /tmp/base <rev>`` and pass ``/tmp/base/src``).
   Budget: this tidymlflow's added cost is at most 1.10 x the baseline's (median of the pairs).
2. Restoring a 100-candidate tuning logged to a local sqlite store with ``load_results``,
   in-process, median of 5. Budget: under 1 s.

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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDIN = None if importlib.util.find_spec("py_workflows") else str(ROOT / "tests" / "standin")
RATIO_BUDGET = 1.10
RESTORE_BUDGET_S = 1.0

SCRIPT = """
import os, sys
import numpy as np, pandas as pd
if os.environ["BENCH_MODE"] != "off":
    import tidymlflow
    tidymlflow.autolog(log_plots=False)
from py_parsnip import linear_reg
from py_rsample import vfold_cv
from py_tune import grid_regular, tune, tune_grid
from py_workflows import workflow
rng = np.random.default_rng(0)
n = int(sys.argv[1])
df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
df["y"] = 2 * df.x1 - df.x2 + rng.normal(size=n)
wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune(), mixture=tune()))
levels = int(sys.argv[2])
grid = grid_regular({"penalty": {"range": (0.001, 1.0)}, "mixture": {"range": (0.0, 1.0)}}, levels=levels)
results = tune_grid(wf, vfold_cv(df, v=5, seed=1), grid=grid)
if os.environ["BENCH_MODE"] != "off":
    tidymlflow.flush()
    print("RUN", tidymlflow.run_id(results))
"""


def _run(folder: Path, env: dict[str, str], mode: str, src: str | None, levels: int) -> tuple[float, str]:
    paths = [p for p in (src, STANDIN, env.get("PYTHONPATH")) if p]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "script.py", "300", str(levels)], cwd=folder, capture_output=True,
                          text=True, timeout=600,
                          env={**env, "BENCH_MODE": mode, "PYTHONPATH": os.pathsep.join(paths)})
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    run = next((line.split()[1] for line in done.stdout.splitlines() if line.startswith("RUN ")), "")
    return took, run


def logging_cost(folder: Path, env: dict[str, str], baseline: str, pairs: int) -> bool:
    src = str(ROOT / "src")
    added_now, added_before = [], []
    for _ in range(pairs):
        off = _run(folder, env, "off", None, 4)[0]
        now = _run(folder, env, "on", src, 4)[0]
        before = _run(folder, env, "on", baseline, 4)[0]
        added_now.append(now - off)
        added_before.append(before - off)
    now_m, before_m = statistics.median(added_now), statistics.median(added_before)
    ratio = now_m / before_m if before_m > 0 else float("inf")
    ok = ratio <= RATIO_BUDGET
    print(f"16-candidate tune_grid, added by autolog: {now_m:+.2f} s now, {before_m:+.2f} s before "
          f"(median of {pairs}); ratio {ratio:.2f} (budget {RATIO_BUDGET:.2f}): {'ok' if ok else 'MISSED'}")
    return ok


def restore_time(folder: Path, env: dict[str, str]) -> bool:
    _, run_id = _run(folder, env, "on", str(ROOT / "src"), 10)  # 10 x 10 = 100 candidates
    sys.path[:0] = [str(ROOT / "src"), *([STANDIN] if STANDIN else [])]
    os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_DISABLE_TELEMETRY")})
    os.chdir(folder)
    import tidymlflow

    times = []
    for _ in range(5):
        start = time.perf_counter()
        restored = tidymlflow.load_results(run_id)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    ok = median < RESTORE_BUDGET_S and restored.grid[".config"].nunique() == 100
    print(f"load_results of a 100-candidate tuning (local sqlite): {median:.3f} s (median of 5; "
          f"budget < {RESTORE_BUDGET_S:.0f} s): {'ok' if ok else 'MISSED'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="src folder of a tidymlflow before load_results")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    (folder / "script.py").write_text(SCRIPT)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_TRACKING_URI": "sqlite:///bench.db",
           "TIDYMLFLOW_JOURNAL_DIR": str(folder / "journal"), "TIDYMLFLOW_WRITER_IDLE": "60"}
    ok = logging_cost(folder, env, args.baseline, args.pairs)
    ok &= restore_time(folder, env)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
