"""Benchmark: drawing and saving every default plot of a single fit (a workflow with a recipe:
residual diagnostics, forecast, decomposition, PCA scree, feature correlation) on 1,000 rows.
Budget (issue 6): under 1 s for all of them together.

    python benchmarks/bench_plots.py [--repeats 5] [--rows 1000]

Prints the median time per plot and the total; exits 1 when the budget is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tidymlflow import plots

BUDGET_S = 1.0


def tables(rows: int) -> dict[str, tuple]:
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    actuals = 50 + 0.02 * t + 4 * np.sin(2 * np.pi * t / 7) + rng.normal(size=rows)
    outputs = pd.DataFrame({
        "date": pd.date_range("2022-01-01", periods=rows), "actuals": actuals,
        "fitted": actuals + rng.normal(scale=0.7, size=rows),
        "split": ["train"] * (rows - 100) + ["test"] * 100, "trend": 50 + 0.02 * t,
        "seasonal": 4 * np.sin(2 * np.pi * t / 7), "remainder": rng.normal(size=rows)})
    intervals = pd.DataFrame({"date": outputs["date"].iloc[-100:], ".pred_lower": actuals[-100:] - 2,
                              ".pred_upper": actuals[-100:] + 2})
    before = pd.DataFrame(rng.normal(size=(rows, 10)), columns=[f"x{i}" for i in range(10)])
    after = pd.DataFrame(rng.normal(size=(rows, 5)), columns=[f"PC{i}" for i in range(1, 6)])
    return {
        "residual_diagnostics": (outputs,),
        "forecast": (outputs, None, intervals),
        "decomposition": (outputs,),
        "pca_scree": ({"step 1 (step_pca)": [0.4, 0.25, 0.15, 0.1, 0.05]},),
        "feature_correlation": (before, after),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tidymlflow-plots-"))
    total = 0.0
    for name, inputs in tables(args.rows).items():
        path = folder / (f"{name}.html" if name in plots.INTERACTIVE else f"{name}.png")
        times = []
        for _ in range(args.repeats + 1):  # the first call also pays the imports
            start = time.perf_counter()
            plots.save(plots.draw(name, *inputs), str(path))
            if name in plots.INTERACTIVE:  # and its png twin, as logging does
                plots.save(plots.draw_png(name, *inputs), str(path.with_suffix(".png")))
            times.append(time.perf_counter() - start)
        median = statistics.median(times[1:])
        total += median
        print(f"{name:<22} {median * 1000:7.1f} ms  {path.stat().st_size // 1024:5d} KB")
    print(f"{'total':<22} {total * 1000:7.1f} ms  (budget {BUDGET_S * 1000:.0f} ms)")
    return 0 if total < BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
