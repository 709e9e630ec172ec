"""Benchmark: how many writers a loop of scripts leaves, and what they hold while idle (issue 21).

    python benchmarks/bench_writers.py [--scripts 10]

A shell loop as users write it: ``--scripts`` fit + evaluate scripts run one after the other,
over two folders (each with its own relative sqlite store) and a different environment value
each (``SEED=<i>``, as a parameter sweep sets it), every script a fresh process with the writer
that stays between scripts (``TIDYMLFLOW_WRITER_IDLE=600``, the default). Then the writer processes of this
loop (found by the loop's own journal folder in their environment) and their proportional set
size (PSS, from ``/proc/<pid>/smaps_rollup``: shared pages split between the processes that
share them), summed over the writer and its plotting processes: just after the last script and
38 s after it, when the plotting processes have left (both for information), and idle, 128 s
after it, when the writer rests (it restarts lean ``TIDYMLFLOW_WRITER_REST`` = 120 s after its
last script).

Then the same writer serves a script logging to a tracking server that answers every request
3 s late (a proxy in front of a real ``mlflow server``) while a fit + evaluate script on a local
sqlite store runs ``--repeats`` times, paired with the same script without autolog: what
autologging adds to the sqlite script, whole process, the wait at exit included.

Budgets: exactly 1 writer; its idle PSS <= 250 MB (writer and plotting processes together); the
sqlite script beside the slow server adds <= 1 s (median of the pairs).
Uses the real py-tidymodels when importable, else the test stand-in. Linux only (``/proc``).
Exits 1 when a budget is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDIN = None if importlib.util.find_spec("py_workflows") else str(ROOT / "tests" / "standin")
WRITERS_BUDGET = 1
PSS_BUDGET_MB = 250.0
SLOW_BUDGET_S = 1.0
QUIET = 30.0  # seconds after which an idle writer's plotting processes leave (_writer.server.QUIET)
REST = 120.0  # seconds after which an idle writer rests (TIDYMLFLOW_WRITER_REST's default)

SCRIPT = """
import os
import numpy as np, pandas as pd
if os.environ.get("BENCH_AUTOLOG", "1") == "1":
    import tidymlflow
    tidymlflow.autolog()
from py_parsnip import linear_reg
from py_workflows import workflow
rng = np.random.default_rng(int(__import__("os").environ["SEED"]))
df = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.normal(size=300)})
df["y"] = 2 * df.x1 - df.x2 + rng.normal(size=300)
workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(df.iloc[:240]).evaluate(df.iloc[240:])
"""


def _processes(journal: Path) -> list[int]:
    """Processes whose environment names this loop's journal (the writer and its plotters)."""
    marker = f"TIDYMLFLOW_JOURNAL_DIR={journal}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


def _writers(pids: list[int]) -> list[int]:
    """The writers among ``pids``: those whose parent is not one of them."""
    parents = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            parents[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return [pid for pid, parent in parents.items() if parent not in parents]


def _pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _timed(folder: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return time.perf_counter() - start


def beside_a_slow_server(tmp: Path, env: dict[str, str], repeats: int) -> bool:
    """What autologging adds to a sqlite script while the writer also serves a slow server."""
    sys.path.insert(0, str(ROOT / "tests"))
    from servers import late_answers, mlflow_server

    slow_folder, near = tmp / "slow", tmp / "near"
    for folder in (slow_folder, near):
        folder.mkdir(exist_ok=True)
        (folder / "train.py").write_text(SCRIPT)
    with mlflow_server(f"sqlite:///{tmp / 'server.db'}", tmp / "artifacts", tmp / "server.log") as url, \
            late_answers(url, "", delay=3.0, times=10**6) as proxy:
        slow = subprocess.Popen([sys.executable, "train.py"], cwd=slow_folder, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                env={**env, "SEED": "0", "MLFLOW_TRACKING_URI": proxy})
        time.sleep(15)  # its jobs are being written, 3 s a request
        added = []
        for _ in range(repeats):
            on = _timed(near, {**env, "SEED": "1"})
            off = _timed(near, {**env, "SEED": "1", "BENCH_AUTOLOG": "0"})
            added.append(on - off)
        slow.kill()
    median = statistics.median(added)
    ok = median <= SLOW_BUDGET_S
    print(f"a sqlite fit + evaluate script beside a server answering 3 s late: added {median:+.2f} s "
          f"(median of {repeats} pairs; budget +{SLOW_BUDGET_S:.0f} s): {'ok' if ok else 'MISSED'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scripts", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-writers-"))
    journal = tmp / "journal"
    env = {**os.environ, "TIDYMLFLOW_WRITER_IDLE": "600", "TIDYMLFLOW_JOURNAL_DIR": str(journal),
           "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_TRACKING_URI": "sqlite:///local.db"}
    env.pop("TIDYMLFLOW_WRITER", None)
    if STANDIN:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (STANDIN, env.get("PYTHONPATH")) if p)
    for i in range(args.scripts):
        folder = tmp / f"project{i % 2}"
        folder.mkdir(exist_ok=True)
        (folder / "train.py").write_text(SCRIPT)
        done = subprocess.run([sys.executable, "train.py"], cwd=folder, env={**env, "SEED": str(i)},
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            print(done.stderr[-2000:])
            return 1
    pids = _processes(journal)
    print(f"just after the last script: {len(pids)} process(es), PSS "
          f"{sum(_pss_mb(pid) for pid in pids):.0f} MB (the writer and its plotting processes)")
    time.sleep(QUIET + 8)  # the plotting processes have left
    pids = _processes(journal)
    print(f"38 s after it: {len(pids)} process(es), PSS {sum(_pss_mb(pid) for pid in pids):.0f} MB")
    time.sleep(REST - QUIET)  # idle: the writer rests
    pids = _processes(journal)
    writers = _writers(pids)
    pss = sum(_pss_mb(pid) for pid in pids)
    ok = len(writers) == WRITERS_BUDGET and pss <= PSS_BUDGET_MB
    print(f"{args.scripts} scripts over 2 folders and {args.scripts} SEED values: {len(writers)} writer(s) "
          f"(budget {WRITERS_BUDGET}), {len(pids)} process(es), idle PSS {pss:.0f} MB "
          f"(budget {PSS_BUDGET_MB:.0f} MB): {'ok' if ok else 'MISSED'}")
    ok &= beside_a_slow_server(tmp, env, args.repeats)
    for pid in _processes(journal):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
