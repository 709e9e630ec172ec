"""Benchmark: ``tidymlflow.readback.collect("stats")`` over 50 and over 500 logged fits.

    python benchmarks/bench_collect.py [--sizes 50 500] [--repeats 3] [--workers 8] [--server]

Logs tiny ``linear_reg`` fits (``log_plots=False``, ``log_datasets=False``) into a temporary
sqlite store, then times ``collect("stats")`` with the default thread pool, the sequential
baseline (``max_workers=1``), and, for reference, the obvious hand-written loop over
``MlflowClient.list_artifacts`` / ``download_artifacts`` by run id. Prints the median of
``--repeats`` timings in seconds. ``--server`` logs to and reads from a local ``mlflow server``
(REST tracking, proxied ``mlflow-artifacts:``) on the same sqlite file instead, where every
artifact is an HTTP request. Uses the real py-tidymodels when importable, else the test stand-in.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
REAL = importlib.util.find_spec("py_workflows") is not None
if not REAL:
    sys.path.insert(0, str(ROOT / "tests" / "standin"))


def log_fits(n: int, data: Any) -> None:
    from py_parsnip import linear_reg
    from py_workflows import workflow

    with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints a "View run" line per run over HTTP
        for _ in range(n):
            workflow().add_formula("y ~ x1").add_model(linear_reg()).fit(data)


def naive_collect(client: Any, experiment_id: str) -> Any:
    """What one writes by hand: every run, list its folder, download by run id, read, concat."""
    import pandas as pd

    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in client.search_runs([experiment_id], max_results=5000):
            rid = run.info.run_id
            if any(f.path == "tidymodels/stats.parquet" for f in client.list_artifacts(rid, "tidymodels")):
                local = client.download_artifacts(rid, "tidymodels/stats.parquet", os.path.join(tmp, rid))
                frames.append(pd.read_parquet(local).assign(run_id=rid))
    return pd.concat(frames, ignore_index=True)


@contextlib.contextmanager
def mlflow_server(root: str) -> Iterator[str]:
    """A local ``mlflow server`` on a free port; its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(os.path.join(root, "server.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--artifacts-destination", f"{root}/artifacts"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--no-naive", action="store_true", help="skip the hand-written loop")
    parser.add_argument("--server", action="store_true", help="through a local mlflow server")
    args = parser.parse_args()

    import mlflow
    import numpy as np
    import pandas as pd

    import tidymlflow
    from tidymlflow.readback import collect

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x1": rng.normal(size=40)})
    data["y"] = 1 + 2 * data["x1"] + rng.normal(scale=0.3, size=40)
    print(f"py-tidymodels: {'real' if REAL else 'stand-in'}; store: "
          f"{'mlflow server (REST, mlflow-artifacts:)' if args.server else 'sqlite + local artifacts'}; "
          f"cpus: {os.cpu_count()}; repeats: {args.repeats} (median shown)")

    with tempfile.TemporaryDirectory(prefix="bench-collect-") as root, contextlib.ExitStack() as stack:
        uri = stack.enter_context(mlflow_server(root)) if args.server else f"sqlite:///{root}/mlflow.db"
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(uri)
        exp = client.create_experiment(
            "bench-collect", artifact_location=None if args.server else f"{root}/artifacts")
        mlflow.set_experiment(experiment_id=exp)
        tidymlflow.autolog(log_plots=False, log_datasets=False, silent=True)
        logged = 0
        for size in sorted(args.sizes):
            start = time.perf_counter()
            log_fits(size - logged, data)
            logged = size
            log_s = time.perf_counter() - start
            pooled, frame = timed(lambda: collect("stats", max_workers=args.workers), args.repeats)
            sequential, again = timed(lambda: collect("stats", max_workers=1), args.repeats)
            assert frame["run_id"].nunique() == size and frame.equals(again)
            line = (f"{size:4d} runs ({len(frame)} rows; logging took {log_s:.1f} s): "
                    f"collect max_workers={args.workers}: {pooled:.3f} s   "
                    f"max_workers=1: {sequential:.3f} s")
            if not args.no_naive:
                naive, _ = timed(lambda: naive_collect(client, exp), 1)
                line += f"   hand-written run-id loop: {naive:.3f} s"
            print(line, flush=True)
        tidymlflow.autolog(disable=True)


if __name__ == "__main__":
    main()
